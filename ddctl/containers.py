"""Every container ddctl creates goes through here: its settings, its labels, its user.

- `engine_settings()`: the create() arguments of a container that runs the engine (a dream,
  the layer list): no network, the invoking user, labelled io.ddctl.run=<id> plus
  DDCTL_LABELS. One place, so that the dream container's lock-down is written once.
- `create()`: the one call of `client.containers.create`.
- `run_to_completion()`: a short-lived helper container, always removed.

SDK errors propagate: the CLI's error boundary (ddctl/cli.py) turns them into sentences.
"""

import contextlib
import os
import re
import uuid
from typing import Optional

from ddctl.errors import UsageError

RUN_LABEL = "io.ddctl.run"  # on every container of a ddctl run (README "Labels")
# The dream container's memory limit (no swap beyond it). Measured peaks (README "Big
# pictures"): a 1280x1024 picture dreamed whole ~2.7 GB, a 24 MP picture in 768 px tiles
# ~2.4 GB; 4 GB leaves room for those and stops a runaway before it takes the machine.
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


def memory_limit(env=None) -> int:
    """The dream container's memory limit in bytes: DDCTL_MEMORY (e.g. 6g) or DEFAULT_MEMORY."""
    env = os.environ if env is None else env
    try:
        return parse_memory(env.get("DDCTL_MEMORY") or DEFAULT_MEMORY)
    except ValueError as exc:
        raise UsageError(f"DDCTL_MEMORY: {exc}.")


def human_bytes(n: int) -> str:
    return f"{n / (1 << 30):.1f} GB" if n >= 1 << 30 else f"{n >> 20} MB"


def extra_labels(env=None) -> dict[str, str]:
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
    kind: str, run_id: str, command: list, labels: Optional[dict] = None, memory: Optional[int] = None
) -> dict:
    """create() arguments for a container running the engine: `ddctl-<kind>-<run_id>`, no
    network, as the invoking user, labelled with DDCTL_LABELS, `labels` and io.ddctl.run,
    memory limited to `memory` bytes (default memory_limit()) with no swap beyond it."""
    memory = memory or memory_limit()
    return as_invoking_user(
        dict(
            command=command,
            name=f"ddctl-{kind}-{run_id}",
            labels={**extra_labels(), **(labels or {}), RUN_LABEL: run_id},
            network_disabled=True,
            network_mode="none",
            mem_limit=memory,
            memswap_limit=memory,
        )
    )


def create(client, image, **create_kwargs):
    """client.containers.create(image, ...): the one place ddctl makes a container."""
    return client.containers.create(image, **create_kwargs)


def run_to_completion(client, image, timeout=None, **create_kwargs):
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
