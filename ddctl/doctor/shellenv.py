"""`ddctl doctor env`: the shell lines that point DOCKER_* at a daemon, in the formats of
`boot2docker shellinit` and `docker-machine env` (one line per variable, a trailing
comment that says how to eval them; the eval hint itself goes to stderr)."""

import os

from ddctl.client import DOCKER_ERRORS, explain, make_client, resolve_endpoint
from ddctl.doctor.checks import CA_BUNDLE_VARS, probe_sockets, tls_from_config, tls_from_env
from ddctl.doctor.runner import Context
from ddctl.errors import DdctlError, DockerUnavailable

SHELLS = ("bash", "zsh", "fish", "powershell", "cmd")
VARS = ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")


def detect_shell(env=None):
    env = os.environ if env is None else env
    name = os.path.basename(env.get("SHELL", "")).lower()
    if name.endswith(".exe"):
        name = name[:-4]
    if name in ("pwsh", "powershell"):
        return "powershell"
    if name in SHELLS:
        return name
    if not name and os.name == "nt":
        return "powershell"
    return "bash"  # sh, dash, ksh...: `export NAME="v"` works in every POSIX shell


def _dq(value, specials):
    return "".join("\\" + c if c in specials else c for c in value)


def set_line(shell, name, value):
    if shell in ("bash", "zsh"):
        return f'export {name}="{_dq(value, chr(34) + chr(92) + "$`")}"'
    if shell == "fish":
        return f'set -gx {name} "{_dq(value, chr(34) + chr(92) + "$")}";'
    if shell == "powershell":
        return f'$Env:{name} = "{value.replace(chr(96), "``").replace(chr(34), "`" + chr(34)).replace("$", "`$")}"'
    if shell == "cmd":
        return f"SET {name}={value}"
    raise ValueError(f"unknown shell {shell!r}")


def unset_line(shell, name):
    return {
        "bash": f"unset {name}",
        "zsh": f"unset {name}",
        "fish": f"set -e {name};",
        "powershell": f"Remove-Item Env:\\{name} -ErrorAction SilentlyContinue",
        "cmd": f"SET {name}=",
    }[shell]


def eval_hint(shell, args=""):
    cmd = f"ddctl doctor env{args}"
    return {
        "bash": f'eval "$({cmd})"',
        "zsh": f'eval "$({cmd})"',
        "fish": f"eval ({cmd})",
        "powershell": f"& {cmd} | Invoke-Expression",
        "cmd": f"@FOR /f \"tokens=*\" %i IN ('{cmd}') DO @%i",
    }[shell]


def render(shell, settings, args=""):
    """settings: [(NAME, value or None to unset)] -> the text for stdout."""
    lines = [set_line(shell, n, v) if v is not None else unset_line(shell, n) for n, v in settings]
    rem = "REM" if shell == "cmd" else "#"
    lines += [f"{rem} Run this command to configure your shell:", f"{rem} {eval_hint(shell, args)}"]
    return "\n".join(lines) + "\n"


def tcp_form(host):
    """DOCKER_HOST as the docker CLI spells it (docker-py may have made tcp:// https://)."""
    for prefix in ("https://", "http://"):
        if host.startswith(prefix):
            return "tcp://" + host[len(prefix) :]
    if host.startswith("http+unix://"):
        return "unix://" + host[len("http+unix://") :]
    return host


def settings_for(host, tls, env):
    """The variables that make docker-py and the docker CLI use `host` with `tls`."""
    out = [("DOCKER_HOST", tcp_form(host))]
    if tls:
        out.append(("DOCKER_TLS_VERIFY", "1" if tls["verify"] else None))
        out.append(("DOCKER_CERT_PATH", tls["dir"]))
    else:
        out += [("DOCKER_TLS_VERIFY", None), ("DOCKER_CERT_PATH", None)]
    if env.get("DOCKER_CONTEXT"):
        out.append(("DOCKER_CONTEXT", None))  # DOCKER_HOST wins anyway; avoid the conflict
    return out


def overriding_bundles(tls, env=None):
    """CA bundle variables that make requests (and so docker-py) ignore ca.pem."""
    env = os.environ if env is None else env
    return [v for v in CA_BUNDLE_VARS if env.get(v)] if tls and tls.get("verify") else []


def unset_settings():
    return [(n, None) for n in VARS + ("DOCKER_MACHINE_NAME",)]


def choose(env=None, timeout=3):
    """(host, tls, why): the endpoint in effect when it answers, else a live one found."""
    env = dict(os.environ if env is None else env)
    reason = None
    try:
        ep = resolve_endpoint(env)
        try:
            make_client(ep, timeout=timeout).close()
            tls = tls_from_env(env) if ep.source == "DOCKER_HOST" else tls_from_config(ep.tls)
            return ep.host, tls, f"the endpoint in use answers ({ep.source})"
        except DOCKER_ERRORS as exc:
            reason = explain(exc, ep)
    except DdctlError as exc:
        reason = exc.message
    ctx = Context(env=env, timeout=timeout)
    found = probe_sockets(ctx)
    if found:
        f = found[0]
        return f["host"], None, f"{f['engine']} answers there (the endpoint in use does not: {reason})"
    raise DockerUnavailable(f"No Docker daemon answers, so there is nothing to point the shell at: {reason}")
