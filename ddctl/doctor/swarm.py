"""The doctor's swarm checks: what kind of swarm node the endpoint is, and what killed
`ddctl swarm run` batches left behind (`--fix` removes it).

This module does not import checks.py (which registers SWARM_CHECKS after its own).
"""

from __future__ import annotations

from ddctl.doctor.result import ok, skipped, warn
from ddctl.doctor.runner import Check
from ddctl.errors import DdctlError
from ddctl.swarm.batch import batch_leftovers, remove_batch
from ddctl.swarm.registry import REGISTRY_SERVICE


def _role(ctx) -> str:
    sw = (ctx.info or {}).get("Swarm") or {}
    if sw.get("LocalNodeState") != "active":
        return "none"
    return "manager" if sw.get("ControlAvailable") else "worker"


def check_swarm(ctx):
    role = _role(ctx)
    sw = (ctx.info or {}).get("Swarm") or {}
    if role == "none":
        return ok("swarm", "not part of a swarm (only `ddctl swarm run` needs one)", data={"role": role})
    if role == "worker":
        managers = ", ".join(m.get("Addr", "?") for m in sw.get("RemoteManagers") or []) or "?"
        return warn(
            "swarm",
            f"a swarm worker (node {sw.get('NodeID', '?')[:12]}): `ddctl swarm run` needs a manager",
            hint=f"point DOCKER_HOST (or the context) at a manager: {managers} (ssh:// or a TLS port there)",
            data={"role": role, "managers": managers},
        )
    nodes = ctx.client.api.nodes()
    states: dict[str, int] = {}
    rows = []
    for n in nodes:
        st = n["Status"]["State"]
        states[st] = states.get(st, 0) + 1
        rows.append(
            {
                "hostname": n["Description"]["Hostname"],
                "role": n["Spec"].get("Role"),
                "state": st,
                "availability": n["Spec"].get("Availability"),
            }
        )
    try:
        has_registry = bool(ctx.client.api.services(filters={"name": REGISTRY_SERVICE}))
    except Exception:
        has_registry = False
    counts = ", ".join(f"{v} {k}" for k, v in sorted(states.items()))
    reg = "registry service present" if has_registry else "no registry service yet (made on first use)"
    detail = f"manager of {len(nodes)} nodes ({counts}); {reg}"
    data = {"role": role, "nodes": rows, "registry": has_registry}
    down = [r["hostname"] for r in rows if r["state"] != "ready"]
    if down:
        return warn(
            "swarm",
            detail,
            hint=f"nodes not ready: {', '.join(down)} (their tasks run elsewhere); `docker node rm` the gone ones",
            data=data,
        )
    return ok("swarm", detail, hint=None if has_registry else "`ddctl swarm setup` starts it now", data=data)


def check_swarm_leftovers(ctx):
    if _role(ctx) != "manager":
        return skipped("swarm-leftovers", "not a swarm manager")
    left = batch_leftovers(ctx.client)
    if not left:
        return ok("swarm-leftovers", "no services, networks or volumes left by `ddctl swarm run`")
    things = sorted(x for items in left.values() for x in items)
    return warn(
        "swarm-leftovers",
        f"{len(left)} killed batch(es) left {len(things)} things: {', '.join(things[:6])}"
        + (" …" if len(things) > 6 else ""),
        hint="`ddctl swarm clean` (or `ddctl doctor --fix`)",
        fix="remove the services, networks and volumes of those batches",
        data={"batches": left},
    )


def fix_swarm_leftovers(ctx, result):
    removed = remove_batch(ctx.client)
    left = sorted(x for items in batch_leftovers(ctx.client).values() for x in items)
    if left:
        raise DdctlError(
            f"{', '.join(left)} still in use by tasks that are stopping (a node may be finishing an "
            f"image pull); run `ddctl doctor --fix` again in a minute"
            + (f" (removed meanwhile: {', '.join(removed)})" if removed else "")
        )
    return f"removed {len(removed)}: {', '.join(removed)}" if removed else "nothing left to remove"


SWARM_CHECKS = (
    Check("swarm", "Swarm", check_swarm, ("connection",)),
    Check("swarm-leftovers", "Swarm leftovers", check_swarm_leftovers, ("connection",)),
)
FIXES = {"swarm-leftovers": fix_swarm_leftovers}
