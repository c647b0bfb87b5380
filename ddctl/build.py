"""Build the dream image through the SDK's low-level streaming build, as events.

No rendering here: `build_image()` calls `on_event(BuildEvent)` for every step, log
line and download progress, and returns a BuildSummary; a failed build raises a
DdctlError naming the failing step and its last log lines. The weights options are
checked before (ddctl/image.py `weights_buildargs`); SDK errors propagate to the CLI's
error boundary.
"""

import collections
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from docker import DockerClient
from docker.errors import APIError, ImageNotFound
from docker.models.images import Image

from ddctl import __version__
from ddctl.client import explain
from ddctl.containers import extra_labels
from ddctl.context import build_context_tar, dockerfile_bases, find_context
from ddctl.errors import DdctlError, one_line
from ddctl.image import (
    DEFAULT_TAG,
    IMAGE_KIND,
    IMAGE_LABEL,
    VERSION_LABEL,
    WEIGHTS_LABEL,
    WEIGHTS_SHA1_LABEL,
    WeightsChoice,
    labels_of,
    weights_buildargs,
)

TAIL_LINES = 12  # how many of the current step's last lines are kept
_STEP_RE = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_FETCH_RE = re.compile(r"fetch-weights: (\d+) of (\d+|\?) bytes")
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_NOISE = (" ---> ", "Removing intermediate container ", "Successfully built ", "Successfully tagged ")


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

    def __init__(self, tail: int = TAIL_LINES) -> None:
        self.step = 0
        self.steps_total = 0
        self.step_text = ""
        self.tail: collections.deque[str] = collections.deque(maxlen=tail)
        self.image_id: Optional[str] = None
        self.error: Optional[str] = None
        self.weights_failure: Optional[str] = None
        self._partial = ""

    def _ev(self, kind: str, **kw: Any) -> BuildEvent:
        return BuildEvent(kind, step=self.step, steps_total=self.steps_total, **kw)

    def feed(self, chunk: Any) -> list[BuildEvent]:
        """A list of BuildEvents for one decoded chunk."""
        events: list[BuildEvent] = []
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

    def close(self) -> list[BuildEvent]:
        """Events for a last line that had no newline."""
        if self._partial:
            line, self._partial = self._partial, ""
            return self._line(line)
        return []

    def _line(self, line: str) -> list[BuildEvent]:
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

    def failure(self) -> BuildFailed:
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


def ensure_base_images(
    client: DockerClient, root: str, on_event: Optional[Callable[[BuildEvent], None]] = None
) -> None:
    """Use each FROM image as it is when present; pull it only when absent."""
    for image in dockerfile_bases(root):
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
            why = explain(exc)
            raise DdctlError(
                f"The base image {image} is absent and cannot be pulled ({why}): "
                f"run provision/bootstrap-base-image.sh (makes it offline) or `docker pull {image}`."
            )


def build_image(
    client: DockerClient,
    tag: str = DEFAULT_TAG,
    weights: Optional[WeightsChoice] = None,
    nocache: bool = False,
    labels: Optional[dict] = None,
    on_event: Optional[Callable[[BuildEvent], None]] = None,
    root: Optional[str] = None,
) -> "BuildSummary":
    """Build the image; on_event(BuildEvent) for progress; returns a BuildSummary.

    weights: what image.weights_buildargs() returned (default: the published weights).
    """
    on_event = on_event or (lambda e: None)
    buildargs, weights_path = weights or weights_buildargs()
    buildargs = dict(buildargs, DDCTL_VERSION=__version__)
    root = root or find_context()
    ensure_base_images(client, root, on_event)
    context = build_context_tar(root, weights_path)
    all_labels = {IMAGE_LABEL: IMAGE_KIND, VERSION_LABEL: __version__}
    all_labels.update(extra_labels())
    all_labels.update(labels or {})
    parser = StreamParser()
    started = time.monotonic()
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
    return summarize(client.images.get(tag), tag, time.monotonic() - started)


def summarize(image: Image, tag: str, seconds: float = 0.0) -> BuildSummary:
    labels = labels_of(image)
    return BuildSummary(
        tag=tag,
        image_id=image.id,
        size=int(image.attrs.get("Size") or 0),
        weights=labels.get(WEIGHTS_LABEL, "?"),
        weights_sha1=labels.get(WEIGHTS_SHA1_LABEL, ""),
        seconds=seconds,
        labels=labels,
    )


def human_size(n: float) -> str:
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("KB", "MB"):
        n /= 1000.0
        if n < 1000:
            return f"{n:.1f} {unit}"
    return f"{n / 1000.0:.1f} GB"
