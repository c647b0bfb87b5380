"""What `ddctl doctor --fix` may do: one small function per fixable check.

A fix runs only for a check that announced it (CheckResult.fix); it returns a sentence
saying what it did, or raises DdctlError saying why it could not.
"""

import json
import os

from ddctl.doctor import profile, security, swarm
from ddctl.doctor.checks import PROFILE
from ddctl.errors import DdctlError


def config_path(env):
    d = env.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(d, "config.json")


def fix_current_context(ctx, result):
    """The config's currentContext names a context that does not exist: back to default.
    A DOCKER_CONTEXT variable cannot be fixed from here: say so."""
    if result.data.get("DOCKER_CONTEXT"):
        raise DdctlError(
            "ddctl cannot change your shell's environment: run `unset DOCKER_CONTEXT` yourself "
            "(or `eval \"$(ddctl doctor env)\"`)"
        )
    path = config_path(ctx.env)
    with open(path) as f:
        cfg = json.load(f)
    old = cfg.pop("currentContext", None)
    tmp = path + ".ddctl-tmp"
    with open(tmp, "w") as f:
        json.dump(cfg, f, indent="\t")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return f"removed currentContext={old!r} from {path}: the default context is current again"


def fix_profile(ctx, result):
    state, lines, image = profile.apply(ctx.client, PROFILE)
    if state == "present":
        return f"{PROFILE} already waits for eth1; nothing changed"
    return (
        f"appended the wait4eth1 snippet to {PROFILE} (its {lines} lines kept; ran in {image}); "
        + profile.RESTART
    )


def fix_leftovers(ctx, result):
    """Remove what killed ddctl runs left (containers with their volumes, temp folders)."""
    from ddctl.containers import remove_leftovers

    names, folders = remove_leftovers(ctx.client)
    wanted = len(result.data.get("containers", [])) + len(result.data.get("folders", []))
    if wanted and not names and not folders:
        raise DdctlError("the daemon refused to remove them (see `docker ps -a --filter label=io.ddctl.run`)")
    return f"removed {len(names)} leftover dream container(s) and {len(folders)} temp folder(s)"


FIXES = {
    "endpoint": fix_current_context,
    "leftovers": fix_leftovers,
    "boot2docker-profile": fix_profile,
    **security.FIXES,
    **swarm.FIXES,
}


def apply_fixes(results, ctx):
    """Run the fixes the results announced: [{"check", "ok", "message"}]."""
    done = []
    for r in results:
        func = FIXES.get(r.name)
        if not r.fix or func is None:
            continue
        try:
            done.append({"check": r.name, "ok": True, "message": func(ctx, r)})
        except (DdctlError, OSError, ValueError) as exc:
            done.append({"check": r.name, "ok": False, "message": f"could not {r.fix}: {exc}"})
    return done
