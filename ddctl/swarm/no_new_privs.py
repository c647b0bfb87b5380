"""Prelude of every script ddctl runs as a swarm task (sent before it as `python3 -I -c`).

Engine 20.10's service API cannot ask for no-new-privileges (API 1.46 can), so the task
sets it on itself, first thing: the kernel then keeps it for the task and every process it
starts (the engine included), and nothing can unset it. Standard library only.
"""

import ctypes as _ctypes

_PR_SET_NO_NEW_PRIVS = 38  # linux/prctl.h
if _ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
    raise SystemExit("ddctl task: cannot set no-new-privileges (errno %d)" % _ctypes.get_errno())
