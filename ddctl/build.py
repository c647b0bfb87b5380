"""Build the dream image through the SDK's low-level streaming build, as events.

No rendering here: `build_image()` calls `on_event(BuildEvent)` for every step, log
line and download progress, and returns a BuildSummary; a failed build raises a
DdctlError naming the failing step and its last log lines.
"""

import collections
import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from typing import Optional

from docker.errors import APIError, ImageNotFound

from ddctl import __version__
from ddctl.client import explain, resolve_endpoint, translate_errors
from ddctl.context import build_context_tar, dockerfile_bases, find_context
from ddctl.errors import DdctlError, UsageError, one_line

DEFAULT_TAG = "ddctl/deepdream:latest"
TAIL_LINES = 12  # how many of the current step's last lines are kept
_STEP_RE = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_FETCH_RE = re.compile(r"fetch-weights: (\d+) of (\d+|\?) bytes")
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_NOISE = (" ---> ", "Removing intermediate container ", "Successfully built ", "Successfully tagged ")
_SHA1_RE = re.compile(r"^[0-9a-fA-F]{40}$")
BVLC_GOOGLENET_SHA1 = "405fc5acd08a3bb12de8ee5e23a96bec22f08204"


@dataclass
class BuildEvent:
    kind: str  # step | log | download | pull | done
    step: int = 0  # current step number (1-based), 0 before the first
    steps_total: int = 0
    text: str = ""  # the step's instruction, or the log line
    current: Optional[int] = None  # download bytes so far
    total: Optional[int] = None  # download size when known
    image_id: Optional[str] = None


@dataclass
class BuildSummary:
    tag: str
    image_id: str
    size: int  # bytes
    weights: str  # io.ddctl.weights label (bvlc_googlenet | untrained | custom | ?)
    weights_sha1: str
    seconds: float
    labels: dict = field(default_factory=dict)


class BuildFailed(DdctlError):
    """The daemon reported an error during the build."""


class StreamParser:
    """Turns the decoded chunks of `api.build(decode=True)` into BuildEvents.

    Chunks look like {"stream": "Step 3/9 : RUN ...\\n"}, {"status": "Downloading",
    "progressDetail": {"current": 1, "total": 9}, "id": "..."}, {"aux": {"ID": "sha256:..."}},
    {"errorDetail": {"message": "..."}, "error": "..."}.
    """

    def __init__(self, tail=TAIL_LINES):
        self.step = 0
        self.steps_total = 0
        self.step_text = ""
        self.tail = collections.deque(maxlen=tail)
        self.image_id = None
        self.error = None
        self.weights_failure = None
        self._partial = ""

    def _ev(self, kind, **kw):
        return BuildEvent(kind, step=self.step, steps_total=self.steps_total, **kw)

    def feed(self, chunk):
        """A list of BuildEvents for one decoded chunk."""
        events = []
        if not isinstance(chunk, dict):
            return events
        if "stream" in chunk:
            text = self._partial + str(chunk["stream"])
            lines = text.split("\n")
            self._partial = lines.pop()  # keep an unterminated line for the next chunk
            for line in lines:
                events.extend(self._line(line.rstrip("\r")))
        if "status" in chunk:  # a pull inside the build (FROM an absent image)
            detail = chunk.get("progressDetail") or {}
            status = str(chunk.get("status"))
            if detail.get("current") is not None:
                events.append(
                    self._ev(
                        "download", text=status, current=detail.get("current"), total=detail.get("total")
                    )
                )
            else:
                events.append(self._ev("pull", text=" ".join(filter(None, [chunk.get("id"), status]))))
        aux = chunk.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            self.image_id = aux["ID"]
        if "errorDetail" in chunk or "error" in chunk:
            detail = chunk.get("errorDetail") or {}
            self.error = str(detail.get("message") or chunk.get("error") or "unknown error").strip()
        return events

    def close(self):
        """Events for a last line that had no newline."""
        if self._partial:
            line, self._partial = self._partial, ""
            return self._line(line)
        return []

    def _line(self, line):
        line = _ANSI_RE.sub("", line)
        m = _STEP_RE.match(line)
        if m:
            self.step, self.steps_total = int(m.group(1)), int(m.group(2))
            self.step_text = m.group(3).strip()
            self.tail.clear()
            return [self._ev("step", text=self.step_text)]
        if not line.strip():
            return []
        if line.startswith("Successfully built "):
            self.image_id = self.image_id or line.split()[-1]
        if not line.startswith(_NOISE):
            self.tail.append(line)
        if line.startswith("ddctl: "):
            # The image's own one-sentence reason (fetch-weights.py, init-weights.py, Dockerfile).
            self.weights_failure = line[len("ddctl: ") :].strip()
        events = [self._ev("log", text=line)]
        m = _FETCH_RE.search(line)
        if m:
            total = None if m.group(2) == "?" else int(m.group(2))
            events.append(self._ev("download", text="weights", current=int(m.group(1)), total=total))
        return events

    def failure(self):
        """The DdctlError for a failed build: the step, then its last lines."""
        where = (
            f"step {self.step}/{self.steps_total} ({one_line(self.step_text, 60)})"
            if self.step
            else "before the first step"
        )
        error = self.error or ""
        m = re.match(r"^The command '.*' returned a non-zero code: (\d+)$", error, re.S)
        if m:
            error = f"its command exited with code {m.group(1)}"
        if self.weights_failure:
            head = f"The image build failed at {where}: {self.weights_failure}"
        else:
            head = f"The image build failed at {where}: {one_line(error, 300)}"
        lines = [line for line in self.tail if not line.startswith("ddctl: ")]
        if lines:
            head += "\nLast lines of that step:\n" + "\n".join("  " + one_line(line, 200) for line in lines)
        return BuildFailed(head)


def weights_buildargs(weights="download", weights_url=None, weights_sha1=None):
    """(buildargs, weights file path or None) for the --weights options; UsageError when they clash."""
    weights = weights or "download"
    if bool(weights_url) != bool(weights_sha1):
        raise UsageError("--weights-url and --weights-sha1 go together: give both, or neither.")
    if weights_sha1 and not _SHA1_RE.match(weights_sha1):
        raise UsageError(f"--weights-sha1 {weights_sha1!r} is not a 40-digit hex SHA1.")
    if weights == "untrained":
        if weights_url:
            raise UsageError("--weights-url makes no sense with --weights untrained.")
        return {"WEIGHTS": "untrained"}, None
    if weights == "download":
        args = {"WEIGHTS": "download"}
        if weights_url:
            args.update(WEIGHTS_URL=weights_url, WEIGHTS_SHA1=weights_sha1.lower())
            if weights_sha1.lower() != BVLC_GOOGLENET_SHA1:
                args["WEIGHTS_NAME"] = "custom"
        return args, None
    # A path to a .caffemodel on the host.
    path = os.path.expanduser(weights)
    if not os.path.isfile(path):
        raise UsageError(
            f"--weights {weights}: no such file (use download, untrained or a path to a .caffemodel file)."
        )
    if weights_url:
        raise UsageError("--weights-url makes no sense with a weights file.")
    sha1 = _sha1(path)
    return {
        "WEIGHTS": "file",
        "WEIGHTS_SHA1": sha1,
        "WEIGHTS_NAME": "bvlc_googlenet" if sha1 == BVLC_GOOGLENET_SHA1 else "custom",
        "WEIGHTS_SOURCE": os.path.basename(path),
    }, path


def _sha1(path):
    h = hashlib.sha1()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise UsageError(f"Cannot read the weights file {path}: {exc.strerror}.")
    return h.hexdigest()


def ensure_base_images(client, root, on_event=None, ep=None):
    """Use each FROM image as it is when present; pull it only when absent."""
    for image in dockerfile_bases(root):
        with translate_errors(ep):
            try:
                client.images.get(image)
                continue
            except ImageNotFound:
                pass
        if on_event:
            on_event(BuildEvent("pull", text=f"{image} is absent: pulling it"))
        repo, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "latest")
        try:
            client.images.pull(repo, tag=tag or "latest")
        except Exception as exc:
            why = explain(exc, ep or resolve_endpoint())
            raise DdctlError(
                f"The base image {image} is absent and cannot be pulled ({why}): "
                f"run provision/bootstrap-base-image.sh (makes it offline) or `docker pull {image}`."
            )


def extra_labels(env=None):
    """Labels from DDCTL_LABELS="k=v,k2=v2", put on everything ddctl creates (tests use it)."""
    env = os.environ if env is None else env
    labels = {}
    for item in (env.get("DDCTL_LABELS") or "").split(","):
        if "=" in item:
            k, v = item.split("=", 1)
            labels[k.strip()] = v.strip()
    return labels


def build_image(
    client,
    tag=DEFAULT_TAG,
    weights="download",
    weights_url=None,
    weights_sha1=None,
    nocache=False,
    labels=None,
    on_event=None,
    root=None,
    ep=None,
):
    """Build the image; on_event(BuildEvent) for progress; returns a BuildSummary."""
    on_event = on_event or (lambda e: None)
    buildargs, weights_path = weights_buildargs(weights, weights_url, weights_sha1)
    root = root or find_context()
    ensure_base_images(client, root, on_event, ep)
    buildargs["DDCTL_VERSION"] = __version__
    context = build_context_tar(root, weights_path)
    all_labels = {"io.ddctl.image": "deepdream", "io.ddctl.version": __version__}
    all_labels.update(extra_labels())
    all_labels.update(labels or {})
    parser = StreamParser()
    started = time.monotonic()
    with translate_errors(ep):
        try:
            stream = client.api.build(
                fileobj=context,
                custom_context=True,
                encoding="gzip",
                tag=tag,
                buildargs=buildargs,
                network_mode="host",
                decode=True,
                rm=True,
                forcerm=True,
                nocache=nocache,
                labels=all_labels,
                pull=False,
            )
            for chunk in stream:
                for event in parser.feed(chunk):
                    on_event(event)
            for event in parser.close():
                on_event(event)
        except APIError as exc:
            # Refused before streaming: a bad Dockerfile, an unknown build arg...
            raise BuildFailed(f"The daemon refused the build: {one_line(exc.explanation or exc, 300)}")
    if parser.error:
        raise parser.failure()
    if not parser.image_id:
        raise BuildFailed(
            "The build ended without an image ID: the daemon's stream was cut. Run `ddctl build` again."
        )
    on_event(BuildEvent("done", step=parser.step, steps_total=parser.steps_total, image_id=parser.image_id))
    with translate_errors(ep):
        image = client.images.get(tag)
    return summarize(image, tag, time.monotonic() - started)


def summarize(image, tag, seconds=0.0):
    labels = (image.attrs.get("Config") or {}).get("Labels") or {}
    return BuildSummary(
        tag=tag,
        image_id=image.id,
        size=int(image.attrs.get("Size") or 0),
        weights=labels.get("io.ddctl.weights", "?"),
        weights_sha1=labels.get("io.ddctl.weights.sha1", ""),
        seconds=seconds,
        labels=labels,
    )


def human_size(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
