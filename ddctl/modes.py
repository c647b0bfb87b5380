"""The engine's modes that make several pictures in one container: `ddctl zoom` (frames and
videos) and `ddctl sheet` (a grid of layers). One container per command: Caffe and the net
are loaded once.

The container's life reuses ddctl/run/container.py (create settings from
ddctl/containers.py, follow the events, collect, clean up); what differs from `ddctl run`:
the engine's argv, no input for a resumed zoom, and the archive copy: a zoom's folder and
its videos move together (`X/`, `X.mp4`, `X.gif` all get the same -2 suffix when taken), and
a resumed zoom's folder goes into the container first and comes back merged (its new frames
added, its zoom.json and resume state replaced). No rendering here: on_event(RunEvent).
"""

import io
import os
import posixpath
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from docker.types import Mount

from ddctl import containers
from ddctl.client import Endpoint
from ddctl.errors import Interrupted
from ddctl.fetch import Picture
from ddctl.image import DEFAULT_TAG
from ddctl.run import container as life
from ddctl.run.dream import RunEvent, check_objective
from ddctl.run.launch import launch
from ddctl.run.naming import host_path
from ddctl.run.options import IMAGES, INPUT_DIR, DreamOptions

MERGED = ("zoom.json", ".resume.npz")  # files of a resumed zoom's folder that a run replaces
VIDEO_EXTS = (".mp4", ".gif", ".png")  # what sits beside a folder of the same name


@dataclass
class ModeJob:
    """An engine mode checked and ready to run."""

    kind: str  # zoom | sheet: the container is named ddctl-<kind>-<id>
    command: list  # the engine's argv
    outdir: str  # absolute, exists, writable
    picture: Optional[Picture] = None  # the input (None: a resumed zoom needs none)
    transfer: Optional[str] = None  # mount | copy when forced (--copy)
    resume: Optional[str] = None  # the zoom folder (a name in outdir) being continued
    opts: DreamOptions = field(default_factory=DreamOptions)  # its --model and --guide
    objectives: list = field(default_factory=list)  # LAYERs checked against the net first


@dataclass
class ModeResult:
    path: str  # the result on the host: the video, or the sheet
    done: dict  # the engine's "done" event
    transfer: str
    files: list  # every host file this run wrote
    run_id: str


def source_in(picture: Picture) -> str:
    return f"{INPUT_DIR}/{picture.filename}"


def run_mode(
    client,
    job: ModeJob,
    ep: Endpoint,
    image: str = DEFAULT_TAG,
    build: Optional[Callable[[str], object]] = None,
    on_event: Optional[Callable[[RunEvent], None]] = None,
    labels: Optional[dict] = None,
) -> ModeResult:
    """Run the prepared job in one container on `client`; the result's host paths."""
    on_event = on_event or (lambda e: None)

    def emit(kind, data):
        on_event(RunEvent(kind, data))

    mode, outcome = launch(
        client,
        ep,
        image,
        job.outdir,
        job.transfer,
        lambda image_id, mode: _run(client, image_id, job, mode, emit, labels or {}),
        emit,
        build,
        # LAYERs and a --model checked (the model by a short container) before the mode's
        check=lambda mode: check_objective(client, image, job.opts, mode, labels or {}, job.objectives),
    )
    failure = outcome.failure()
    if failure is not None:
        raise failure
    done = outcome.done or {}
    path = host_path(done.get("path", ""), job.outdir, outcome.copied)
    if mode == "copy":
        files = sorted(outcome.copied.values())
    else:
        files = [host_path(p, job.outdir) for p in outcome.saved if p]
    return ModeResult(path=path, done=done, transfer=mode, files=files, run_id=outcome.run_id)


def _run(client, image_id, job: ModeJob, mode, emit, labels) -> life.Outcome:
    run_id = containers.new_run_id()
    outcome = life.Outcome(run_id=run_id)
    # locked down like a dream (containers.engine_settings), stopped when ddctl is gone
    kwargs = life.stdin_watched(
        containers.engine_settings(job.kind, run_id, list(job.command), labels, client=client)
    )
    if mode == "mount":
        kwargs["mounts"] = [Mount(IMAGES, job.outdir, type="bind")]
        if job.picture is not None:
            kwargs["mounts"].append(
                Mount(source_in(job.picture), job.picture.path, type="bind", read_only=True)
            )
        kwargs["mounts"] += life.option_mounts(job.opts)
    else:
        kwargs["mounts"] = life.copy_mounts()
    # Ctrl-C with the archive copy: keep what the engine had written (a zoom resumes from it)
    keep = (lambda c: copy_back(c, job.outdir, job.resume)) if mode == "copy" else None
    try:
        with life.living(client, image_id, kwargs, mode, emit, run_id, keep) as container:
            if mode == "copy":
                life.send_input(container, job.picture, job.opts)
                if job.resume:
                    container.put_archive(IMAGES, folder_archive(job.outdir, job.resume))
            life.follow(container, emit, outcome)
            life.collect(container, job.outdir, "mount", outcome)  # the copy is ours, below
            if mode == "copy":
                outcome.copied = copy_back(container, job.outdir, job.resume)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted: the container was stopped and removed; what was already written stays in "
            f"{job.outdir}" + (" (continue it with --resume)." if job.kind == "zoom" else ".")
        )
    return outcome


# --- the archive copy ------------------------------------------------------------------------


def folder_archive(outdir: str, name: str) -> bytes:
    """A tar of outdir/name as name/..., owned by the invoking user (the engine writes into it)."""
    uid, gid = containers.container_ids()  # the engine's user (never 0), who writes into it
    buf = io.BytesIO()
    root = os.path.join(outdir, name)
    with tarfile.open(fileobj=buf, mode="w") as tar:
        d = tarfile.TarInfo(name)
        d.type, d.mode, d.mtime, d.uid, d.gid = tarfile.DIRTYPE, 0o755, int(time.time()), uid or 0, gid or 0
        tar.addfile(d)
        for entry in sorted(os.listdir(root)):
            path = os.path.join(root, entry)
            if not os.path.isfile(path) or os.path.islink(path):
                continue
            info = tar.gettarinfo(path, f"{name}/{entry}")
            info.mode, info.uid, info.gid, info.uname, info.gname = 0o644, uid or 0, gid or 0, "", ""
            with open(path, "rb") as f:
                tar.addfile(info, f)
    return buf.getvalue()


def _base(top: str) -> str:
    stem, ext = os.path.splitext(top)
    return stem if ext in VIDEO_EXTS else top


def plan_names(tops, directory: str, keep: Optional[str] = None) -> dict:
    """{top-level name in the container: name in directory}. A folder X and its X.mp4, X.gif
    (or a sheet X.png) share one base that gets the first suffix (-2, -3, ...) free for all of
    them; `keep` (a resumed zoom's folder) keeps its name, and so do its videos."""
    plan, taken = {}, set()
    for base in sorted({_base(t) for t in tops}):
        group = [t for t in tops if _base(t) == base]
        if keep is not None and base == keep:
            plan.update({t: t for t in group})
            continue
        k = 1
        while True:
            new = base if k == 1 else f"{base}-{k}"
            names = [new + t[len(base) :] for t in group]
            others = [new] + [new + ext for ext in VIDEO_EXTS]
            if not any(
                n in taken or os.path.lexists(os.path.join(directory, n)) for n in set(names + others)
            ):
                break
            k += 1
        for t, n in zip(group, names):
            plan[t] = n
        taken.update(names + others)
    return plan


def copy_back(container, outdir: str, keep: Optional[str] = None) -> dict:
    """The container's /images copied into outdir, never overwriting; a resumed zoom's folder
    (`keep`) merged: new frames added, its zoom.json and resume state replaced, the state
    removed when the container's is gone (the zoom is complete). {container path: host path}."""
    stream, _stat = container.get_archive(IMAGES)
    members = []
    with tempfile.TemporaryFile() as f:
        for chunk in stream:
            f.write(chunk)
        f.seek(0)
        with tarfile.open(fileobj=f, mode="r|*") as tar:
            for m in tar:
                parts = [p for p in m.name.split("/") if p not in ("", ".")]
                if len(parts) < 2 or ".." in parts or not m.isfile():
                    continue
                rel = parts[1:]
                if rel[-1].startswith(".tmp-"):
                    continue  # a file the engine was still writing
                fileobj = tar.extractfile(m)
                if fileobj is not None:
                    members.append((rel, fileobj.read()))
    tops = {rel[0] for rel, _ in members}
    plan = plan_names(tops, outdir, keep)
    written = {}
    for rel, data in members:
        target = os.path.join(outdir, plan[rel[0]], *rel[1:])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        merged = keep is not None and rel[0] == keep and len(rel) == 2 and rel[1] in MERGED
        if merged:
            tmp = target + ".ddctl-tmp"
            with open(tmp, "wb") as out:
                out.write(data)
            os.replace(tmp, target)
        else:
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue  # a frame the host already has (the same bytes: it was uploaded)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
        written[posixpath.join(IMAGES, *rel)] = target
    if keep is not None and keep in tops:
        in_container = {rel[1] for rel, _ in members if rel[0] == keep and len(rel) == 2}
        state = os.path.join(outdir, keep, ".resume.npz")
        if ".resume.npz" not in in_container and os.path.exists(state):
            os.unlink(state)
    return written
