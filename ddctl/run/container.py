"""The dream container's life: create, follow, collect, and always clean up.

settings() the container's settings (ddctl/containers.py: no network, the invoking user,
           labels, the lock-down), the input mounted;
living()   the life every engine container shares (a dream, a batch, a zoom, a sheet):
           created, watched, its stdin attached; stopped on Ctrl-C, always removed;
follow()   starts it and reads the engine's events from its stdout as they come;
collect()  waits for its exit, copies the results out (archive copy), reads its state;
cleanup()  stops it on Ctrl-C and always removes it (Ctrl-C ignored meanwhile).

SDK errors propagate to the CLI's error boundary, except the two that mean something
here: a bind source the daemon cannot see (BindUnavailable: the caller falls back to the
archive copy) and a container removed by someone else while it ran.
"""

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from docker.errors import APIError, NotFound
from docker.types import Mount

from ddctl import containers
from ddctl.errors import DdctlError, Interrupted, UsageError
from ddctl.run.archive import copy_out, files_archive, input_archive, model_files
from ddctl.run.options import GUIDE_DIR, IMAGES, INPUT_DIR, MODEL_DIR, DreamOptions, engine_command
from ddctl.run.progress import lines_of, parse_engine_line

STOP_TIMEOUT = 3  # seconds between SIGTERM and SIGKILL on Ctrl-C
KEPT_LINES = 15  # the engine's last non-event lines, kept for a failure's message
REFUSALS = (
    "unknown_layer",
    "bad_input",
    "too_many_octaves",
    "bad_channel",
    "bad_objective",
    "bad_model",
)  # engine error codes that are usage errors

Emit = Callable[[str, dict], None]  # emit(kind, data)


class BindUnavailable(DdctlError):
    """The daemon cannot see the folders to bind-mount."""


@dataclass
class Outcome:
    """What the engine said and how its container ended."""

    saved: list = field(default_factory=list)  # container paths of "saved" events
    done: Optional[dict] = None  # the "done" event
    error: Optional[dict] = None  # the "error" event
    other: list = field(default_factory=list)  # its last non-event stdout lines
    code: Optional[int] = None
    stderr: str = ""
    state: dict = field(default_factory=dict)  # the container's State (OOMKilled...)
    copied: dict = field(default_factory=dict)  # {container path: host path} (archive copy)
    run_id: str = ""  # the io.ddctl.run label of its container
    memory: int = 0  # its memory limit, bytes

    def failure(self) -> Optional[DdctlError]:
        """The DdctlError this outcome means, or None when the dream is done."""
        if self.code == 0 and self.done is not None:
            return None
        code, error = self.code, self.error
        if error and error.get("message"):
            msg = " ".join(str(error["message"]).split())
            if code == 2 or error.get("code") in REFUSALS:
                return UsageError(msg)
            return DdctlError(f"The dream engine failed: {msg}")
        if self.state.get("OOMKilled") or (code == 137 and not self.state):
            return DdctlError(oom_message(self.memory))
        if code == 137:
            return DdctlError("The dream container was killed (by another program?): run the command again.")
        if code == 130:
            return Interrupted("The dream engine was interrupted.")
        tail = [line for line in (self.stderr.splitlines() + self.other) if line.strip()][-6:]
        detail = ("\n" + "\n".join("  " + line for line in tail)) if tail else ""
        if code == 0:
            return DdctlError("The dream engine ended without reporting its picture." + detail)
        return DdctlError(f"The dream engine failed (exit {code})." + detail)


def oom_message(memory: int) -> str:
    """What to do when the dream container was killed for memory (OOMKilled)."""
    limit = f" (its limit is {containers.human_bytes(memory)})" if memory else ""
    return (
        f"The dream container ran out of memory{limit}: dream a smaller picture with --max-size "
        f"(e.g. --max-size 1280), cut it in smaller tiles with --tile (e.g. --tile 512), or allow "
        f"more with DDCTL_MEMORY (e.g. DDCTL_MEMORY=6g)."
    )


def settings(
    client,
    picture,
    opts: DreamOptions,
    outdir: str,
    mode: str,
    labels: dict,
    run_id: str,
    memory: Optional[int] = None,
) -> dict:
    """The settings of one picture's dream container (for living())."""
    source_in = f"{INPUT_DIR}/{picture.filename}"
    command = engine_command(source_in, picture.stem, opts)
    kwargs = stdin_watched(
        containers.engine_settings("run", run_id, command, labels, memory=memory, client=client)
    )
    if mode == "mount":
        kwargs["mounts"] = [
            Mount(IMAGES, outdir, type="bind"),
            Mount(source_in, picture.path, type="bind", read_only=True),
        ]
        kwargs["mounts"] += option_mounts(opts)
    else:
        kwargs["mounts"] = copy_mounts()
    return kwargs


def stdin_watched(kwargs: dict) -> dict:
    """Engine settings made to stop the engine when ddctl is gone: --exit-with-stdin makes the
    engine stop when its stdin closes, and stdin_open with detach=False is how the SDK sets
    StdinOnce (the daemon closes that stdin when ddctl's attach ends; ddctl still starts and
    follows the container itself)."""
    kwargs["command"] = ["--exit-with-stdin"] + list(kwargs["command"])
    kwargs.update(detach=False, tty=False, stdin_open=True)
    return kwargs


def copy_mounts() -> list:
    """The archive copy's mounts: the root is read-only, so files go in and out through two
    anonymous volumes (removed with the container)."""
    return [Mount(IMAGES, None, type="volume"), Mount(INPUT_DIR, None, type="volume")]


@contextlib.contextmanager
def living(
    client,
    image_id: str,
    kwargs: dict,
    mode: str,
    emit: Emit,
    run_id: str,
    keep: Optional[Callable[[Any], object]] = None,
    again: str = "run the command again",
) -> Iterator[Any]:
    """One engine container's life around the caller's work (the with block): created
    (BindUnavailable when the daemon cannot see the folders to mount), watched by a Reaper
    (removed if ddctl is killed), its stdin attached, announced as a `container` event. Then,
    whatever happens: on Ctrl-C stopped and keep(container) called (to copy out what must
    stay), always removed, the attach and the watcher released. Ctrl-C comes out as
    KeyboardInterrupt after that; a container removed by someone else while it ran as one
    sentence ending in `again`."""
    container, reaper, stdin, interrupted = None, None, None, False
    try:
        try:
            container = containers.create(client, image_id, **kwargs)
        except APIError as exc:
            if mode == "mount" and "bind source path does not exist" in str(exc):
                raise BindUnavailable(str(exc))
            raise
        reaper = containers.Reaper(container.id)  # removes it if ddctl is killed
        stdin = attach_stdin(container)
        emit("container", {"id": container.short_id, "run_id": run_id})
        try:
            yield container
        except (NotFound, APIError) as exc:
            if isinstance(exc, NotFound) or "marked for removal" in str(exc):
                raise DdctlError(
                    f"The dream container {container.name} was removed while it ran "
                    f"(by another program?): {again}."
                )
            raise
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if container is not None:
            cleanup(container, interrupted, keep)
        release(stdin, reaper)


def option_mounts(opts: DreamOptions) -> list:
    """The read-only bind mounts of a dream's --model files and --guide picture."""
    mounts = []
    if opts.model is not None:
        mounts.append(Mount(MODEL_DIR, opts.model.folder, type="bind", read_only=True))
    if opts.guide is not None:
        guide_in = f"{GUIDE_DIR}/{opts.guide.filename}"
        mounts.append(Mount(guide_in, opts.guide.path, type="bind", read_only=True))
    return mounts


def option_files(opts: Optional[DreamOptions]) -> list:
    """[(host path, path under the input folder)] of a dream's --model files and --guide
    picture: what the archive copy puts where option_mounts() would mount them."""
    if opts is None:
        return []
    files = model_files(opts.model)
    if opts.guide is not None:
        files.append((opts.guide.path, f"{GUIDE_DIR[len(INPUT_DIR) + 1 :]}/{opts.guide.filename}"))
    return files


def send_input(container, picture, opts: Optional[DreamOptions] = None) -> None:
    """The archive copy's way in: the picture (and the model's and guide's files) put into
    the container's input volume, owned by the caller; a resumed zoom has no picture."""
    uid, gid = containers.container_ids()
    extra = option_files(opts)
    if picture is not None:
        container.put_archive(INPUT_DIR, input_archive(picture.path, picture.filename, uid, gid, extra))
    elif extra:
        container.put_archive(INPUT_DIR, files_archive(extra, uid, gid))


def attach_stdin(container):
    """The container's stdin, attached (the engine's --exit-with-stdin watches it); None
    when the daemon refuses (the Reaper and the next command still clean up)."""
    try:
        return container.attach_socket(params={"stdin": 1, "stream": 1})
    except Exception:
        return None


def release(stdin, reaper) -> None:
    """After the container is removed: close the attached stdin, dismiss the watcher."""
    if stdin is not None:
        with contextlib.suppress(Exception):
            getattr(stdin, "_sock", stdin).close()
            stdin.close()
    if reaper is not None:
        reaper.done()


def follow(container, emit: Emit, outcome: Outcome) -> None:
    """Start the container and read the engine's events until its stdout ends."""
    container.start()
    stdout = container.logs(stream=True, follow=True, stdout=True, stderr=False)
    for line in lines_of(stdout):
        ev = parse_engine_line(line)
        if ev is None:
            if line.strip():
                outcome.other.append(line.rstrip())
                del outcome.other[:-KEPT_LINES]
                emit("log", {"line": line.rstrip()})
            continue
        emit(ev["event"], ev)
        kind = ev["event"]
        if kind == "saved":
            outcome.saved.append(ev.get("path"))
        elif kind == "done":
            outcome.done = ev
        elif kind == "error":
            outcome.error = ev


def collect(container, outdir: str, mode: str, outcome: Outcome) -> None:
    """Wait for the exit; copy the results out (archive copy); read stderr and the state."""
    outcome.code = int(container.wait().get("StatusCode", 1))
    if mode == "copy":
        outcome.copied = copy_out(container, outdir)
    outcome.stderr = container.logs(stdout=False, stderr=True, tail=KEPT_LINES).decode("utf-8", "replace")
    outcome.state = (container.attrs or {}).get("State") or {}
    try:
        container.reload()
        outcome.state = container.attrs.get("State") or {}
    except NotFound:
        pass


def cleanup(container, interrupted: bool, keep: Optional[Callable[[Any], object]] = None) -> None:
    """Stop it (on Ctrl-C, then keep(container): copy out what must stay) and always remove
    it; Ctrl-C is ignored meanwhile."""
    in_main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
    try:
        if interrupted:
            with contextlib.suppress(Exception):
                container.stop(timeout=STOP_TIMEOUT)
            if keep is not None:
                with contextlib.suppress(Exception):
                    keep(container)
        for _attempt in range(2):
            try:
                container.remove(force=True, v=True)  # v: its anonymous volumes too
                break
            except NotFound:
                break
            except Exception:
                continue
    finally:
        if in_main:
            signal.signal(signal.SIGINT, old)


def run(
    client, image_id: str, picture, opts: DreamOptions, outdir: str, mode: str, emit: Emit, labels: dict
) -> Outcome:
    """The container's whole life; an Outcome, or Interrupted on Ctrl-C (container removed)."""
    run_id = containers.new_run_id()
    outcome = Outcome(run_id=run_id, memory=containers.memory_limit(client=client))
    kwargs = settings(client, picture, opts, outdir, mode, labels, run_id, outcome.memory)
    keep = (lambda c: copy_out(c, outdir)) if mode == "copy" else None  # what was written so far
    try:
        with living(client, image_id, kwargs, mode, emit, run_id, keep) as container:
            if mode == "copy":
                send_input(container, picture, opts)
            follow(container, emit, outcome)
            collect(container, outdir, mode, outcome)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted: the container was stopped and removed; what was already written stays in {outdir}."
        )
    return outcome
