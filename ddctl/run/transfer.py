"""How the input and results travel: bind mounts (a local daemon) or the API's archive
copy (a remote daemon, or forced with --copy / DDCTL_TRANSFER=copy)."""

import os
from typing import Optional

from ddctl.client import Endpoint
from ddctl.containers import DREAM_UID, runs_as_root
from ddctl.errors import UsageError

MODES = ("mount", "copy")


def forced_transfer(force: Optional[str] = None, env=None) -> Optional[str]:
    """The mode --copy or DDCTL_TRANSFER asks for, or None; UsageError for a bad setting."""
    env = os.environ if env is None else env
    mode = force or env.get("DDCTL_TRANSFER") or ""
    if mode and mode not in MODES:
        raise UsageError(f"DDCTL_TRANSFER={mode!r}: use copy or mount.")
    return mode or None


def choose_transfer(ep: Endpoint, force: Optional[str] = None, env=None) -> tuple:
    """('mount'|'copy', why) for this endpoint; force or DDCTL_TRANSFER override."""
    mode = forced_transfer(force, env)
    if runs_as_root():
        # The engine never runs as uid 0: as the image's dreamer it could not write a
        # root-owned folder, so the files travel by copy and then belong to root.
        return "copy", f"ddctl runs as root: the engine runs as uid {DREAM_UID}, the files are copied out"
    if mode:
        how = "--copy" if force else f"DDCTL_TRANSFER={mode}"
        return mode, f"{how} asked for it"
    if ep.is_local_socket:
        return "mount", f"the daemon is local ({ep.host})"
    return "copy", f"the daemon is remote ({ep.host}) and cannot see this machine's folders"
