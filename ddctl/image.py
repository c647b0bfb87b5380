"""The dream image's facts, in one place: its default tag, its labels, the weights it may
hold, and `ensure_image()` (the image for a tag, or what to do when it is absent).

README "Contracts between the parts" / "The image" is the contract these names follow.
Nothing else in ddctl spells the default tag, a label key or the weights' SHA1.
"""

import hashlib
import os
import re
from typing import Callable, Optional

from docker import DockerClient
from docker.errors import ImageNotFound
from docker.models.images import Image

from ddctl.caffemodel import check_weights_file
from ddctl.errors import DdctlError, UsageError
from ddctl.redact import redact_url

DEFAULT_TAG = "ddctl/deepdream:latest"

# Labels the image carries (set by the Dockerfile and by `ddctl build`).
IMAGE_LABEL = "io.ddctl.image"  # = IMAGE_KIND
IMAGE_KIND = "deepdream"
VERSION_LABEL = "io.ddctl.version"
WEIGHTS_LABEL = "io.ddctl.weights"  # bvlc_googlenet | untrained | custom
WEIGHTS_SHA1_LABEL = "io.ddctl.weights.sha1"
WEIGHTS_SOURCE_LABEL = "io.ddctl.weights.source"

# The published bvlc_googlenet weights (the Dockerfile downloads and checks them).
BVLC_GOOGLENET = "bvlc_googlenet"
BVLC_GOOGLENET_SHA1 = "405fc5acd08a3bb12de8ee5e23a96bec22f08204"
UNTRAINED = "untrained"
CUSTOM = "custom"
_SHA1_RE = re.compile(r"^[0-9a-fA-F]{40}$")

WeightsChoice = tuple[dict, Optional[str]]  # (build args, weights file to send or None)


def labels_of(image: Image) -> dict:
    """The labels of a docker Image (an empty dict when it has none)."""
    return (image.attrs.get("Config") or {}).get("Labels") or {}


def weights_of(image: Image) -> str:
    """The io.ddctl.weights label of an image ('?' when it has none)."""
    return labels_of(image).get(WEIGHTS_LABEL, "?")


def build_command(tag: str) -> str:
    """The `ddctl build` command that makes the image `tag`."""
    return "ddctl build" + ("" if tag == DEFAULT_TAG else f" --tag {tag}")


# Docker's reference grammar (distribution/reference), without a digest: [host[:port]/]name[:tag]
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)"
_TAG_RE = re.compile(rf"^{_HOST}?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?$")


def check_tag(tag: str, option: str = "--tag") -> str:
    """tag when Docker would accept it as an image name; UsageError (exit 2) before Docker is asked."""
    if not tag or len(tag) > 255 or not _TAG_RE.match(tag):
        raise UsageError(
            f"{option} {tag!r} is not a valid image name: use lowercase letters, digits and . _ - / "
            f"with an optional :tag, e.g. {DEFAULT_TAG}."
        )
    return tag


def dream_image_or_refuse(image: Image, tag: str) -> Image:
    """image when it is a ddctl dream image (label io.ddctl.image=deepdream); UsageError otherwise."""
    if labels_of(image).get(IMAGE_LABEL) != IMAGE_KIND:
        raise UsageError(
            f"{tag} is not a ddctl dream image (it lacks the label {IMAGE_LABEL}={IMAGE_KIND}): give a "
            f"dream image with --image (default {DEFAULT_TAG}), or build one with `ddctl build`."
        )
    return image


def check_build_tag(client: DockerClient, tag: str) -> None:
    """UsageError when `tag` names an image ddctl did not build (a base image, someone's
    app): the build would take that name from it."""
    try:
        existing = client.images.get(tag)
    except ImageNotFound:
        return
    if labels_of(existing).get(IMAGE_LABEL) != IMAGE_KIND:
        raise UsageError(
            f"--tag {tag} names an image that is not a ddctl dream image (it lacks the label "
            f"{IMAGE_LABEL}={IMAGE_KIND}): building would take that name from it; choose another tag."
        )


def weights_buildargs(
    weights: Optional[str] = "download", weights_url: Optional[str] = None, weights_sha1: Optional[str] = None
) -> WeightsChoice:
    """(build args, weights file path or None) for the --weights options; UsageError when they clash.

    Checked before Docker is asked: nothing here talks to the daemon.
    """
    weights = weights or "download"
    if bool(weights_url) != bool(weights_sha1):
        raise UsageError("--weights-url and --weights-sha1 go together: give both, or neither.")
    if weights_sha1 and not _SHA1_RE.match(weights_sha1):
        raise UsageError(f"--weights-sha1 {weights_sha1!r} is not a 40-digit hex SHA1.")
    if weights == UNTRAINED:
        if weights_url:
            raise UsageError("--weights-url makes no sense with --weights untrained.")
        return {"WEIGHTS": UNTRAINED}, None
    if weights == "download":
        args = {"WEIGHTS": "download"}
        if weights_url and weights_sha1:  # they go together (checked above)
            # WEIGHTS_URL is used only in a build stage the image does not descend from; the
            # label gets the URL without user:password nor query values (WEIGHTS_SOURCE).
            args.update(
                WEIGHTS_URL=weights_url,
                WEIGHTS_SOURCE=redact_url(weights_url),
                WEIGHTS_SHA1=weights_sha1.lower(),
            )
            if weights_sha1.lower() != BVLC_GOOGLENET_SHA1:
                args["WEIGHTS_NAME"] = CUSTOM
        return args, None
    # A path to a .caffemodel on the host.
    path = os.path.expanduser(weights)
    if os.path.isdir(path):
        raise UsageError(
            f"--weights {weights} is a folder: give the .caffemodel file in it (or download, untrained)."
        )
    if not os.path.exists(path):
        raise UsageError(
            f"--weights {weights}: no such file (use download, untrained or a path to a .caffemodel file)."
        )
    if not os.path.isfile(path):  # a device, a pipe, a socket
        raise UsageError(f"--weights {weights} is not a regular file: give a .caffemodel file.")
    if weights_url:
        raise UsageError("--weights-url makes no sense with a weights file.")
    check_weights_file(path, f"--weights {weights}")  # a text file fails here, not in the build
    sha1 = _sha1(path)
    return {
        "WEIGHTS": "file",
        "WEIGHTS_SHA1": sha1,
        "WEIGHTS_NAME": BVLC_GOOGLENET if sha1 == BVLC_GOOGLENET_SHA1 else CUSTOM,
        "WEIGHTS_SOURCE": os.path.basename(path),
    }, path


def _sha1(path: str) -> str:
    h = hashlib.sha1()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise UsageError(f"Cannot read the weights file {path}: {exc.strerror}.")
    return h.hexdigest()


def ensure_image(client: DockerClient, tag: str, build: Optional[Callable[[str], object]] = None) -> Image:
    """The docker Image for `tag`; when absent, build(tag) makes it, or a sentence says how.

    SDK errors propagate (the CLI's error boundary words them).
    """
    check_tag(tag, "--image")
    try:
        return dream_image_or_refuse(client.images.get(tag), tag)
    except ImageNotFound:
        pass
    if build is None:
        raise DdctlError(
            f"The image {tag} does not exist yet: run `{build_command(tag)}` first, then this command again."
        )
    build(tag)
    return client.images.get(tag)
