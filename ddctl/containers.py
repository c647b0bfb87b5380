"""Every container ddctl creates goes through here: its settings, its labels, its user.

- `engine_settings()`: the create() arguments of a container that runs the engine (a dream,
  the layer list): locked down (`lockdown()`: no network, every capability dropped,
  no-new-privileges, read-only root with a tmpfs /tmp, a pids limit and a memory limit),
  never uid 0 (`container_user()`), labelled io.ddctl.run=<id>, io.ddctl.owner (this
  machine and process) plus DDCTL_LABELS. One place, so the lock-down is written once.
- `leftovers()` / `remove_leftovers()`: containers and temp folders of a ddctl that was
  killed (its owner process is gone), which the next command and `ddctl doctor --fix` remove.
- `Reaper`: a small watcher process that removes the dream container if ddctl dies
  without removing it (kill -9), so nothing dreams on alone.
- `create()`: the one call of `client.containers.create`.
- `run_to_completion()`: a short-lived helper container, always removed.

SDK errors propagate: the CLI's error boundary (ddctl/cli.py) turns them into sentences.
"""

import contextlib
import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Optional

from ddctl.errors import UsageError

if TYPE_CHECKING:  # annotations only: the Reaper starts without importing docker
    import docker
    from docker.models.containers import Container

RUN_LABEL = "io.ddctl.run"  # on every container of a ddctl run (README "Labels")
OWNER_LABEL = "io.ddctl.owner"  # <host>:<pid>:<start time> of the ddctl that made it

# The lock-down (README "The dream container").
DREAM_UID = 1000  # the image's `dreamer`: the engine's user when ddctl runs as root
PIDS_LIMIT = 512  # the engine's threads (numba, OpenBLAS: one per core) fit many times over
MEMORY_SHARE = 0.75  # of the daemon's memory (docker info MemTotal): the rest stays for the host
MIN_MEMORY = 512 * 1024 * 1024
SCRATCH = {"/tmp": "rw,nosuid,nodev,noexec,size=256m"}  # numba's cache copy, matplotlib config
TEMP_PREFIX = "ddctl-"  # temp folders: ddctl-<pid>-XXXX


# The dream container's memory limit (no swap beyond it). Measured peaks (README "Big
# pictures"): a 1280x1024 picture dreamed whole ~2.7 GB, a 24 MP picture in 768 px tiles
# ~2.4 GB; 4 GB leaves room for those and stops a runaway before it takes the machine.
# A daemon with less memory (a small Docker VM) gets 75% of what it has.
DEFAULT_MEMORY = "4g"
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_memory(text: str) -> int:
    """'4g', '3500m', '512M', '2G' -> bytes; ValueError for anything else (or < 256 MB)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmg]?)b?\s*", str(text).lower())
    if not m:
        raise ValueError(f"{text!r} is not a memory size (e.g. 4g or 3500m)")
    size = int(float(m.group(1)) * _UNITS[m.group(2)])
    if size < 256 << 20:
        raise ValueError(f"{text!r} is too little memory for a dream (at least 256m)")
    return size


def human_bytes(n: int) -> str:
    return f"{n / (1 << 30):.1f} GB" if n >= 1 << 30 else f"{n >> 20} MB"


def memory_limit(
    env: Optional[Mapping[str, str]] = None, client: "Optional[docker.DockerClient]" = None
) -> int:
    """The dream container's memory limit in bytes: DDCTL_MEMORY (e.g. 6g) when set;
    otherwise DEFAULT_MEMORY (4 GB), or 75% of the daemon's memory (`docker info`
    MemTotal, the VM's on Docker Desktop) when that is less."""
    env = os.environ if env is None else env
    try:
        limit = parse_memory(env.get("DDCTL_MEMORY") or DEFAULT_MEMORY)
    except ValueError as exc:
        raise UsageError(f"DDCTL_MEMORY: {exc}.")
    if env.get("DDCTL_MEMORY") or client is None:
        return limit
    total = 0
    with contextlib.suppress(Exception):
        total = int(client.info().get("MemTotal") or 0)
    if total > 0:
        limit = min(limit, max(MIN_MEMORY, int(total * MEMORY_SHARE) >> 20 << 20))
    return limit


def lockdown(client: "Optional[docker.DockerClient]", memory: Optional[int] = None) -> dict:
    """create() arguments that lock a container down (every engine container gets them)."""
    mem = memory or memory_limit(client=client)
    return dict(
        network_disabled=True,
        network_mode="none",
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        read_only=True,
        tmpfs=dict(SCRATCH),
        pids_limit=PIDS_LIMIT,
        mem_limit=mem,
        memswap_limit=mem,  # no swap on top
    )


def container_user() -> str:
    """uid:gid the engine runs as: the caller's, so files belong to them; never 0 (root's
    dreams run as the image's dreamer, and ddctl copies the files out as root)."""
    uid, gid = invoking_user()
    if uid is None or uid == 0:
        return f"{DREAM_UID}:{DREAM_UID}"
    return f"{uid}:{gid}"


def container_ids() -> tuple[int, int]:
    """(uid, gid) of container_user(), for files ddctl puts into the container."""
    uid, gid = container_user().split(":")
    return int(uid), int(gid)


def runs_as_root() -> bool:
    return invoking_user()[0] == 0


def _start_time(pid: int) -> str:
    """The process's start time (clock ticks since boot, /proc), '' where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def owner_label() -> str:
    """<host>:<pid>:<start time> of this process, for telling a killed run's leftovers."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def owner_alive(owner: str) -> Optional[bool]:
    """True/False for an owner label of this machine; None when it is another machine's."""
    try:
        host, pid_text, started = owner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, someone else's
    return not started or _start_time(pid) in ("", started)


def leftovers(client: "docker.DockerClient") -> list:
    """Containers of ddctl runs whose ddctl is gone (killed): made on this machine by a
    process that no longer exists. Containers without an owner label (another tool, an
    older ddctl) are never touched; with DDCTL_LABELS set, only those carrying them."""
    filters = [RUN_LABEL] + [f"{k}={v}" for k, v in extra_labels().items()]
    found = []
    for c in client.containers.list(all=True, filters={"label": filters}):
        owner = (c.labels or {}).get(OWNER_LABEL)
        if owner and owner_alive(owner) is False:
            found.append(c)
    return found


def remove_leftovers(client: "docker.DockerClient", containers_too: bool = True) -> tuple[list, list]:
    """Remove what killed runs left: their containers (with their anonymous volumes) and
    this user's temp folders ddctl-<pid>-* of dead processes. ([names], [folders])."""
    names = []
    if containers_too:
        for c in leftovers(client):
            with contextlib.suppress(Exception):
                c.remove(force=True, v=True)
                names.append(c.name)
    folders = []
    for path in stale_temp_folders():
        shutil.rmtree(path, ignore_errors=True)
        folders.append(path)
    return names, folders


def stale_temp_folders() -> list:
    """This user's temp folders ddctl-<pid>-* whose ddctl process is gone."""
    found = []
    for path in sorted(glob.glob(os.path.join(tempfile.gettempdir(), TEMP_PREFIX + "*-*"))):
        pid_text = os.path.basename(path)[len(TEMP_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        try:
            if not os.path.isdir(path) or os.stat(path).st_uid != os.getuid():
                continue
            os.kill(int(pid_text), 0)
            continue  # its ddctl still runs
        except ProcessLookupError:
            found.append(path)
        except OSError:
            continue
    return found


def temp_folder() -> "tempfile.TemporaryDirectory[str]":
    """A TemporaryDirectory named ddctl-<pid>-XXXX (a killed run's is found by its pid)."""
    return tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-")


class Reaper:
    """A watcher process (its own session, so a signal to ddctl's group spares it) that
    removes the container when ddctl ends without saying it is done: kill -9 included.

    It reads its stdin, a pipe from ddctl: at EOF without the word "done" first, it
    removes the container (force, with its anonymous volumes)."""

    def __init__(self, container_id: str) -> None:
        self.proc = None
        with contextlib.suppress(OSError):
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ddctl.containers", "reap", container_id],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )

    def done(self) -> None:
        """ddctl removed the container itself: the watcher just ends."""
        if self.proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"done\n")
            self.proc.stdin.close()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)


def _reap(container_id: str) -> int:
    said = sys.stdin.buffer.read()  # until ddctl closes the pipe, or dies
    if b"done" in said:
        return 0
    from ddctl.client import make_client

    client = make_client(timeout=30)
    with contextlib.suppress(Exception):
        client.api.remove_container(container_id, force=True, v=True)
    return 0


def extra_labels(env: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """Labels from DDCTL_LABELS="k=v,k2=v2", put on everything ddctl creates (tests use it)."""
    env = os.environ if env is None else env
    labels = {}
    for item in (env.get("DDCTL_LABELS") or "").split(","):
        if "=" in item:
            k, v = item.split("=", 1)
            labels[k.strip()] = v.strip()
    return labels


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def invoking_user() -> tuple[Optional[int], Optional[int]]:
    """(uid, gid) of whoever runs ddctl, or (None, None) where there are none (Windows)."""
    if hasattr(os, "getuid"):
        return os.getuid(), os.getgid()
    return None, None


def as_invoking_user(create_kwargs: dict) -> dict:
    """create_kwargs with `user` set so that the container's files belong to the caller."""
    uid, gid = invoking_user()
    if uid is not None:
        create_kwargs["user"] = f"{uid}:{gid}"
    return create_kwargs


def engine_settings(
    kind: str,
    run_id: str,
    command: list,
    labels: Optional[dict] = None,
    memory: Optional[int] = None,
    *,
    client: "Optional[docker.DockerClient]",
) -> dict:
    """create() arguments for a container running the engine: `ddctl-<kind>-<run_id>`,
    locked down (lockdown(client): the daemon's memory sets the limit), never uid 0,
    labelled with DDCTL_LABELS, `labels`, io.ddctl.run and io.ddctl.owner."""
    return dict(
        command=command,
        name=f"ddctl-{kind}-{run_id}",
        labels={**extra_labels(), **(labels or {}), RUN_LABEL: run_id, OWNER_LABEL: owner_label()},
        user=container_user(),
        **lockdown(client, memory),
    )


def create(client: "docker.DockerClient", image: str, **create_kwargs: Any) -> "Container":
    """client.containers.create(image, ...): the one place ddctl makes a container."""
    return client.containers.create(image, **create_kwargs)


def run_to_completion(
    client: "docker.DockerClient", image: str, timeout: Optional[float] = None, **create_kwargs: Any
) -> tuple[int, str, str]:
    """Run `image` once and return (exit status, stdout text, stderr text).

    The container is removed whatever happens (an error, Ctrl-C), so a helper run never
    leaves anything behind on the daemon. SDK errors propagate.
    """
    container = create(client, image, **create_kwargs)
    try:
        container.start()
        code = int(container.wait(timeout=timeout).get("StatusCode", 1))
        out = container.logs(stdout=True, stderr=False).decode("utf-8", "replace")
        err = container.logs(stdout=False, stderr=True).decode("utf-8", "replace")
        return code, out, err
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)


if __name__ == "__main__":  # python3 -m ddctl.containers reap CONTAINER_ID (the Reaper)
    if len(sys.argv) == 3 and sys.argv[1] == "reap":
        sys.exit(_reap(sys.argv[2]))
    sys.exit(2)
