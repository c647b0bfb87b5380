"""Dream on a picture: fetch and verify it on the host, run the engine's container, follow it.

No rendering here: `dream()` calls `on_event(RunEvent)` and returns a RunResult. The
container runs with no network, as the invoking user, labelled io.ddctl.run=<id>, and
is removed whatever happens (Ctrl-C included). Input and results travel either through
bind mounts (a local daemon) or through the API's archive copy (a remote daemon, or
forced with --copy / DDCTL_TRANSFER=copy).
"""

import io
import json
import os
import posixpath
import signal
import tarfile
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Optional

from docker.errors import APIError, ImageNotFound, NotFound
from docker.types import Mount

from ddctl.build import DEFAULT_TAG, extra_labels
from ddctl.client import resolve_endpoint, translate_errors
from ddctl.errors import DdctlError, Interrupted, UsageError
from ddctl.fetch import get_picture

DEFAULT_OUTPUT = "dreams"
RUN_LABEL = "io.ddctl.run"
IMAGES = "/images"  # the engine's output folder inside the image
INPUT_DIR = "/input"  # where ddctl puts the input inside the container
ENGINE_DEFAULTS = {"layer": "inception_4c/output", "iterations": 10, "octaves": 4, "octave_scale": 1.4}
# A phone's 12-megapixel photo would take 20x the time of the notebook's 1024x576 example
# and several GB of memory (more than many Docker VMs have): dream at a size that fits,
# as every modern DeepDream tool does, unless asked otherwise (--max-size 0).
DEFAULT_MAX_SIZE = 1280
STOP_TIMEOUT = 3  # seconds between SIGTERM and SIGKILL on Ctrl-C


@dataclass
class DreamOptions:
    layer: str = ENGINE_DEFAULTS["layer"]
    iterations: int = ENGINE_DEFAULTS["iterations"]
    octaves: int = ENGINE_DEFAULTS["octaves"]
    octave_scale: float = ENGINE_DEFAULTS["octave_scale"]
    step_size: Optional[float] = None
    jitter: Optional[int] = None
    seed: Optional[int] = None
    save_steps: bool = False
    max_size: Optional[int] = None


@dataclass
class RunEvent:
    kind: str  # fetched | image | build-needed | transfer | container | start | step | saved | done | log
    data: dict = field(default_factory=dict)


@dataclass
class RunResult:
    path: str  # the final picture on the host
    transfer: str  # mount | copy
    files: list  # every host file this run wrote
    elapsed: float
    run_id: str


# --- pure helpers (unit-tested) -------------------------------------------------------


def engine_command(source_in_container, name, opts):
    """The engine's argv per the README contract."""
    cmd = [
        source_in_container,
        opts.layer,
        str(opts.iterations),
        str(opts.octaves),
        _num(opts.octave_scale),
        "--name",
        name,
        "--progress",
        "json",
    ]
    if opts.step_size is not None:
        cmd += ["--step-size", _num(opts.step_size)]
    if opts.jitter is not None:
        cmd += ["--jitter", str(opts.jitter)]
    if opts.seed is not None:
        cmd += ["--seed", str(opts.seed)]
    if opts.save_steps:
        cmd.append("--save-steps")
    if opts.max_size is not None:
        cmd += ["--max-size", str(opts.max_size)]
    return cmd


def _num(x):
    return repr(float(x)).rstrip("0").rstrip(".") if float(x) != int(float(x)) else str(int(float(x)))


def choose_transfer(ep, force=None, env=None):
    """('mount'|'copy', why) for this endpoint; force or DDCTL_TRANSFER override."""
    env = os.environ if env is None else env
    mode = force or env.get("DDCTL_TRANSFER") or ""
    if mode:
        if mode not in ("mount", "copy"):
            raise UsageError(f"DDCTL_TRANSFER={mode!r}: use copy or mount.")
        how = "--copy" if force else f"DDCTL_TRANSFER={mode}"
        return mode, f"{how} asked for it"
    if ep.is_local_socket:
        return "mount", f"the daemon is local ({ep.host})"
    return "copy", f"the daemon is remote ({ep.host}) and cannot see this machine's folders"


def prepare_output_dir(path):
    """The absolute output folder, created when missing; UsageError when unusable."""
    full = os.path.abspath(os.path.expanduser(path or DEFAULT_OUTPUT))
    if os.path.exists(full) and not os.path.isdir(full):
        raise UsageError(f"The output folder {path} exists and is not a folder: choose another with -o DIR.")
    try:
        os.makedirs(full, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"Cannot create the output folder {path} ({exc.strerror}): choose another with -o DIR."
        )
    if not os.access(full, os.W_OK | os.X_OK):
        raise UsageError(
            f"The output folder {path} is not writable by this user: choose another with -o DIR."
        )
    return full


def free_stem(directory, stem, ext, taken=()):
    """stem, or stem-2, stem-3, ... so that neither stem<ext> nor stem-steps exists (the engine's rule)."""
    k = 1
    while True:
        cand = stem if k == 1 else f"{stem}-{k}"
        if (
            (cand + ext) not in taken
            and not os.path.lexists(os.path.join(directory, cand + ext))
            and not os.path.lexists(os.path.join(directory, cand + "-steps"))
        ):
            return cand
        k += 1


def plan_extraction(names, directory):
    """Map the top-level entries of the container's /images to fresh names in directory.

    names: top-level names found in the archive (files and folders). A final picture X.png
    and its steps folder X-steps move together: both get the first free suffix.
    """
    plan, taken = {}, set()
    files = sorted(n for n in names if os.path.splitext(n)[1])
    for name in files:
        stem, ext = os.path.splitext(name)
        new = free_stem(directory, stem, ext, taken)
        plan[name] = new + ext
        taken.update({new + ext, new + "-steps"})
        if stem + "-steps" in names:
            plan[stem + "-steps"] = new + "-steps"
    for name in sorted(set(names) - set(plan)):
        new, k = name, 1
        while new in taken or os.path.lexists(os.path.join(directory, new)):
            k += 1
            new = f"{name}-{k}"
        plan[name] = new
        taken.add(new)
    return plan


def extract_new_files(tar_fileobj, directory, uid=None):
    """Extract the container's /images archive into directory, never overwriting.

    Returns {container path: host path} for every regular file written.
    """
    written = {}
    with tarfile.open(fileobj=tar_fileobj, mode="r|*") as tar:
        members = []
        # The archive of /images has the folder itself as its first component.
        for m in tar:
            parts = [p for p in m.name.split("/") if p not in ("", ".")]
            if len(parts) < 2 or ".." in parts or not (m.isfile() or m.isdir()):
                continue
            rel = parts[1:]
            if m.isfile():
                data = tar.extractfile(m).read()
                members.append((rel, data))
            else:
                members.append((rel, None))
    tops = {rel[0] for rel, _ in members}
    plan = plan_extraction(tops, directory)
    for rel, data in members:
        target = os.path.join(directory, plan[rel[0]], *rel[1:])
        if data is None:
            os.makedirs(target, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        written[posixpath.join(IMAGES, *rel)] = target
    return written


def input_archive(picture_path, filename, uid=None, gid=None):
    """A tar holding input/<filename>, readable by the container's user."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        d = tarfile.TarInfo("input")
        d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
        tar.addfile(d)
        info = tar.gettarinfo(picture_path, "input/" + filename)
        info.mode, info.uid, info.gid = 0o644, uid or 0, gid or 0
        info.uname = info.gname = ""
        with open(picture_path, "rb") as f:
            tar.addfile(info, f)
    return buf.getvalue()


def parse_engine_line(line):
    """A dict for one of the engine's JSON progress lines, or None for any other line."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and "event" in obj else None


class LineSplitter:
    """Bytes chunks in, complete text lines out."""

    def __init__(self):
        self._buf = b""

    def feed(self, chunk):
        self._buf += chunk
        *lines, self._buf = self._buf.split(b"\n")
        return [line.decode("utf-8", "replace") for line in lines]

    def close(self):
        rest, self._buf = self._buf, b""
        return [rest.decode("utf-8", "replace")] if rest.strip() else []


class DreamProgress:
    """Octave, iteration and an ETA weighted by each octave's pixel count.

    The small octaves cost far less than the last, full-size one: counting steps alone
    would promise an early finish. Work = sum of width*height over steps.
    """

    def __init__(self, start, octave_scale=1.4):
        self.steps_total = int(start.get("steps_total") or 0)
        self.octaves = max(1, int(start.get("octaves") or 1))
        self.iterations = max(1, int(start.get("iterations") or 1))
        w, h = int(start.get("width") or 0), int(start.get("height") or 0)
        s = float(octave_scale or 1.4)
        self.work_total = float(sum(w * h / s ** (2 * k) for k in range(self.octaves)) * self.iterations)
        self.work_done = 0.0
        self.step = 0
        self.octave = 0
        self.iteration = 0
        self.elapsed = 0.0

    def update(self, step):
        self.step = int(step.get("step") or self.step + 1)
        self.octave = int(step.get("octave") or 0)
        self.iteration = int(step.get("iteration") or 0)
        self.elapsed = float(step.get("elapsed") or 0.0)
        self.work_done += int(step.get("width") or 0) * int(step.get("height") or 0)
        # Trust the steps when the size prediction was off.
        floor = self.work_done * self.steps_total / self.step if self.step and self.steps_total else 0
        if self.work_total < self.work_done or (self.step >= self.steps_total and self.steps_total):
            self.work_total = max(self.work_done, floor)

    @property
    def fraction(self):
        if self.work_total > 0:
            return min(1.0, self.work_done / self.work_total)
        return self.step / self.steps_total if self.steps_total else 0.0

    @property
    def eta(self):
        f = self.fraction
        if f <= 0:
            return None
        return max(0.0, self.elapsed * (1 - f) / f)


def host_path(container_path, output_dir, copied=None):
    if copied and container_path in copied:
        return copied[container_path]
    rel = posixpath.relpath(container_path, IMAGES)
    return os.path.join(output_dir, *rel.split("/"))


def invoking_user():
    """(uid, gid) of whoever runs ddctl, or (None, None) where there are none (Windows)."""
    if hasattr(os, "getuid"):
        return os.getuid(), os.getgid()
    return None, None


def as_invoking_user(create_kwargs):
    """create_kwargs with `user` set so that the container's files belong to the caller."""
    uid, gid = invoking_user()
    if uid is not None:
        create_kwargs["user"] = f"{uid}:{gid}"
    return create_kwargs


# --- the run itself ----------------------------------------------------------------------


def ensure_image(client, tag, build=None, on_event=None, ep=None):
    """The image for tag; build(tag) is called when it is absent, or a sentence says how."""
    with translate_errors(ep):
        try:
            return client.images.get(tag)
        except ImageNotFound:
            pass
    cmd = "ddctl build" + ("" if tag == DEFAULT_TAG else f" --tag {tag}")
    if build is None:
        raise DdctlError(f"The image {tag} does not exist yet: run `{cmd}` first, then this command again.")
    if on_event:
        on_event(RunEvent("build-needed", {"tag": tag, "command": cmd}))
    build(tag)
    with translate_errors(ep):
        return client.images.get(tag)


def dream(
    client,
    source,
    opts=None,
    output_dir=DEFAULT_OUTPUT,
    image=DEFAULT_TAG,
    transfer=None,
    build=None,
    on_event=None,
    ep=None,
    labels=None,
):
    """Fetch source, dream on it in a container, return a RunResult."""
    opts = opts or DreamOptions()
    on_event = on_event or (lambda e: None)
    ep = ep or resolve_endpoint()
    mode, why = choose_transfer(ep, transfer)
    outdir = prepare_output_dir(output_dir)
    with tempfile.TemporaryDirectory(prefix="ddctl-") as tmp:
        picture = get_picture(source, tmp)
        on_event(
            RunEvent(
                "fetched",
                {
                    "source": source,
                    "path": picture.path,
                    "width": picture.width,
                    "height": picture.height,
                    "format": picture.format,
                },
            )
        )
        img = ensure_image(client, image, build, on_event, ep)
        img_labels = (img.attrs.get("Config") or {}).get("Labels") or {}
        on_event(RunEvent("image", {"tag": image, "weights": img_labels.get("io.ddctl.weights", "?")}))
        on_event(RunEvent("transfer", {"mode": mode, "why": why, "output_dir": outdir}))
        labels = {**extra_labels(), **(labels or {})}
        try:
            return _run_container(client, img, picture, opts, outdir, mode, on_event, ep, labels)
        except _BindUnavailable:
            # A "local" socket whose daemon lives elsewhere (ddctl in a container, a VM
            # without this folder shared): the archive copy works wherever the daemon is.
            on_event(
                RunEvent(
                    "transfer",
                    {
                        "mode": "copy",
                        "output_dir": outdir,
                        "why": "the daemon cannot see this machine's folders",
                    },
                )
            )
            return _run_container(client, img, picture, opts, outdir, "copy", on_event, ep, labels)


class _BindUnavailable(DdctlError):
    """The daemon cannot see the folders to bind-mount."""


def _run_container(client, img, picture, opts, outdir, mode, on_event, ep, labels):
    run_id = uuid.uuid4().hex[:12]
    uid, gid = invoking_user()
    source_in = f"{INPUT_DIR}/{picture.filename}"
    kwargs = dict(
        command=engine_command(source_in, picture.stem, opts),
        name=f"ddctl-run-{run_id}",
        labels={**labels, RUN_LABEL: run_id},
        network_disabled=True,
        network_mode="none",
        detach=True,
        tty=False,
        stdin_open=False,
    )
    as_invoking_user(kwargs)
    if mode == "mount":
        kwargs["mounts"] = [
            Mount(IMAGES, outdir, type="bind"),
            Mount(source_in, picture.path, type="bind", read_only=True),
        ]
    container, interrupted, copied = None, False, {}
    saved, done, error, other = [], None, None, []
    started = time.monotonic()
    try:
        with translate_errors(ep):
            try:
                container = client.containers.create(img.id, **kwargs)
            except APIError as exc:
                if mode == "mount" and "bind source path does not exist" in str(exc):
                    raise _BindUnavailable(str(exc))
                raise
            on_event(RunEvent("container", {"id": container.short_id, "run_id": run_id}))
            if mode == "copy":
                container.put_archive("/", input_archive(picture.path, picture.filename, uid, gid))
            try:
                container.start()
                stdout = container.logs(stream=True, follow=True, stdout=True, stderr=False)
                for line in _lines(stdout):
                    ev = _engine_event(line, on_event, other)
                    kind = ev and ev["event"]
                    if kind == "saved":
                        saved.append(ev.get("path"))
                    elif kind == "done":
                        done = ev
                    elif kind == "error":
                        error = ev
                status = container.wait()
                code = int(status.get("StatusCode", 1))
                if mode == "copy":
                    copied = _copy_out(container, outdir)
                stderr = container.logs(stdout=False, stderr=True, tail=15).decode("utf-8", "replace")
                state = (container.attrs or {}).get("State") or {}
                try:
                    container.reload()
                    state = container.attrs.get("State") or {}
                except NotFound:
                    pass
            except (NotFound, APIError) as exc:
                if isinstance(exc, NotFound) or "marked for removal" in str(exc):
                    raise DdctlError(
                        f"The dream container {container.name} was removed while it ran "
                        f"(by another program?): run the command again."
                    )
                raise
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if container is not None:
            _cleanup(container, outdir, mode, interrupted)
    if interrupted:
        raise Interrupted(
            f"interrupted: the container was stopped and removed; what was already written stays in {outdir}."
        )
    if code != 0 or done is None:
        raise _failure(code, error, stderr, other, state)
    path = host_path(done.get("path", ""), outdir, copied)
    files = [host_path(p, outdir, copied) for p in saved if p]
    if mode == "copy":
        files = sorted(copied.values())
    return RunResult(
        path=path,
        transfer=mode,
        files=files,
        elapsed=float(done.get("elapsed") or time.monotonic() - started),
        run_id=run_id,
    )


def _lines(chunks):
    splitter = LineSplitter()
    for chunk in chunks:
        yield from splitter.feed(chunk)
    yield from splitter.close()


def _engine_event(line, on_event, other):
    ev = parse_engine_line(line)
    if ev is None:
        if line.strip():
            other.append(line.rstrip())
            del other[:-15]
            on_event(RunEvent("log", {"line": line.rstrip()}))
        return None
    on_event(RunEvent(ev["event"], ev))
    return ev


def _copy_out(container, outdir):
    """get_archive('/images') extracted into outdir without overwriting; {container path: host path}."""
    stream, _stat = container.get_archive(IMAGES)
    with tempfile.TemporaryFile() as f:
        for chunk in stream:
            f.write(chunk)
        f.seek(0)
        return extract_new_files(f, outdir)


def _cleanup(container, outdir, mode, interrupted):
    """Stop (on Ctrl-C) and always remove the container; Ctrl-C is ignored meanwhile."""
    in_main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
    try:
        if interrupted:
            try:
                container.stop(timeout=STOP_TIMEOUT)
            except Exception:
                pass
            if mode == "copy":
                try:  # keep what the engine had written so far
                    _copy_out(container, outdir)
                except Exception:
                    pass
        try:
            container.remove(force=True)
        except NotFound:
            pass
        except Exception:
            try:
                container.remove(force=True)
            except Exception:
                pass
    finally:
        if in_main:
            signal.signal(signal.SIGINT, old)


def _failure(code, error, stderr, other, state):
    if error and error.get("message"):
        msg = " ".join(str(error["message"]).split())
        if code == 2 or error.get("code") in ("unknown_layer", "bad_input", "too_many_octaves"):
            return UsageError(msg)
        return DdctlError(f"The dream engine failed: {msg}")
    if state.get("OOMKilled") or code == 137:
        return DdctlError(
            "The dream container ran out of memory (or was killed): try a smaller "
            "--max-size or fewer octaves."
        )
    if code == 130:
        return Interrupted("The dream engine was interrupted.")
    tail = [line for line in (stderr.splitlines() + other) if line.strip()][-6:]
    detail = ("\n" + "\n".join("  " + line for line in tail)) if tail else ""
    if code == 0:
        return DdctlError("The dream engine ended without reporting its picture." + detail)
    return DdctlError(f"The dream engine failed (exit {code})." + detail)
