"""The doctor's "Security" group: the dangerous "fixes" people apply when Docker does not answer.

`dockerd -H tcp://0.0.0.0:2375`, `chmod 666 /var/run/docker.sock`, `DOCKER_TLS=1` without
verification, a key.pem everyone can read: each works, and each hands root on the daemon's
host to someone else (Docker's "Docker daemon attack surface" page). Each check here says
what it found, why it is a risk, and the fix.

The classifiers (is_loopback, socket_mode_risk, key_mode_risk, insecure_registries,
daemon_listeners) are pure and unit-tested; the checks only gather the facts for them.
This module does not import checks.py (which registers SECURITY_CHECKS after its own).
"""

import ipaddress
import os
import re
import socket
import stat
from typing import Optional
from urllib.parse import urlsplit

from ddctl.doctor.result import FAIL, OK, WARN, CheckResult, fail, ok, skipped, warn
from ddctl.doctor.runner import Check

GROUP = "security"
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
LOOPBACK_NETS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
TLS_HINT = (
    "TLS, the docker-machine way (dockerd --tlsverify with --tlscacert/--tlscert/--tlskey on port "
    "2376, and `export DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=<folder with ca.pem, cert.pem, key.pem>`), "
    "or SSH (`export DOCKER_HOST=ssh://USER@HOST`)"
)


# ----------------------------------------------------------------------------- classifiers
def _strip(host: str) -> str:
    h = (host or "").strip().lower()
    if h.startswith("[") and "]" in h:
        h = h[1 : h.index("]")]
    return h.split("%", 1)[0].rstrip(".")  # fe80::1%eth0, "localhost."


def _ip(host: str):
    try:
        ip = ipaddress.ip_address(_strip(host))
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped:  # ::ffff:127.0.0.1
        ip = ip.ipv4_mapped
    return ip


def is_loopback(host: Optional[str]) -> bool:
    """127.0.0.0/8, ::1 (also ::ffff:127.x) and localhost (RFC 6761: *.localhost too)."""
    if not host:
        return False
    h = _strip(host)
    if h in LOOPBACK_NAMES or h.endswith(".localhost"):
        return True
    ip = _ip(h)
    return bool(ip and ip.is_loopback)


def resolves_to_loopback(host: Optional[str], resolve=None) -> bool:
    """is_loopback, or a name whose every address is loopback (Debian maps the host's own
    name to 127.0.1.1 in /etc/hosts). A name that does not resolve is not loopback."""
    if is_loopback(host):
        return True
    if not host or _ip(host) is not None:
        return False
    try:
        addrs = {str(a[4][0]) for a in (resolve or socket.getaddrinfo)(_strip(host), None)}
    except (OSError, UnicodeError):
        return False
    return bool(addrs) and all(is_loopback(a) for a in addrs)


def is_all_interfaces(host: Optional[str]) -> bool:
    """0.0.0.0, :: or no host at all: a listener on every interface of the machine."""
    if not host or not _strip(host):
        return True
    ip = _ip(host)
    return bool(ip and ip.is_unspecified)


def split_tcp(url: str):
    """(host, port) of a tcp://, http:// or https:// address, else None."""
    parts = urlsplit(url if "://" in url else "tcp://" + url)
    if parts.scheme not in ("tcp", "http", "https"):
        return None
    try:
        port = parts.port
    except ValueError:
        port = None
    return (parts.hostname or "", port or (2376 if parts.scheme == "https" else 2375))


def where(host: str) -> str:
    """'loopback', 'all' (every interface) or 'network' for a listening or target address."""
    if is_loopback(host):
        return "loopback"
    return "all" if is_all_interfaces(host) else "network"


def socket_mode_risk(
    mode: int, group: str, gid: int, owner: str, owner_uid: int
) -> tuple[str, Optional[str]]:
    """(status, problem) for a Docker socket with permission bits `mode`, owned by owner:group.

    Connecting to a unix socket needs write permission, so the write bits are who may
    drive the daemon. Writable by others (`chmod 666`): a failure. Writable by a group
    other than docker (or root, or the owner's own private group): a warning.
    """
    if mode & 0o002:
        return FAIL, "writable by every local user"
    if mode & 0o020 and not (group == "docker" or gid == 0 or (owner_uid != 0 and group == owner)):
        return WARN, f"writable by the group {group}, which is not the docker group"
    return OK, None


def key_mode_risk(mode: int) -> tuple[str, Optional[str]]:
    """(status, problem) for a client key.pem: readable by others fails, by the group warns."""
    if mode & 0o004:
        return FAIL, "readable by every local user"
    if mode & 0o040:
        return WARN, "readable by its group"
    if mode & 0o022:
        return WARN, "writable by others than its owner"
    return OK, None


def _loopback_net(net) -> bool:
    return any(net.version == n.version and net.subnet_of(n) for n in LOOPBACK_NETS)


def insecure_registries(registry_config: Optional[dict]) -> list[str]:
    """The registries `docker info` says are pulled from without TLS verification, beyond 127.0.0.0/8.

    From RegistryConfig: InsecureRegistryCIDRs (127.0.0.0/8 and ::1/128 are the daemon's own
    default), IndexConfigs with Secure false, and Mirrors spoken to over plain http://.
    """
    rc = registry_config or {}
    out = []
    for cidr in rc.get("InsecureRegistryCIDRs") or []:
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            out.append(cidr)
            continue
        if not _loopback_net(net):
            out.append(cidr)
    for name, idx in sorted((rc.get("IndexConfigs") or {}).items()):
        if (idx or {}).get("Secure") is False:
            host = split_tcp(name)
            if not (host and is_loopback(host[0])):
                out.append(name)
    for m in rc.get("Mirrors") or []:
        t = split_tcp(m)
        if m.lower().startswith("http://") and not (t and is_loopback(t[0])):
            out.append(f"{m} (mirror over plain HTTP)")
    return out


LISTENER_RE = re.compile(
    r"API is accessible on (https?)://(\S+?) without (encryption|TLS client verification)"
)


def daemon_listeners(warnings) -> list[dict]:
    """The TCP listeners dockerd itself warns about in `docker info` (Warnings).

    dockerd adds "API is accessible on http://ADDR without encryption." for each plain
    tcp host and "... on https://ADDR without TLS client verification." for --tls without
    --tlsverify. Returns [{"url", "host", "port", "plain", "where"}].
    """
    out = []
    for w in warnings or []:
        m = LISTENER_RE.search(w or "")
        if not m:
            continue
        scheme, addr, _what = m.groups()
        hp = split_tcp(f"{scheme}://{addr}")
        host, port = hp if hp else ("", None)
        out.append(
            {
                "url": f"{scheme}://{addr}",
                "host": host,
                "port": port,
                "plain": scheme == "http",
                "where": where(host),
            }
        )
    return out


# ----------------------------------------------------------------------------- helpers
def _names(st) -> tuple[str, str, list[str]]:
    import grp  # POSIX only: imported here so that ddctl starts where they do not exist
    import pwd

    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        g = grp.getgrgid(st.st_gid)
        group, members = g.gr_name, list(g.gr_mem)
    except KeyError:
        group, members = str(st.st_gid), []
    return owner, group, members


def _kind(ctx):
    host = ctx.endpoint.host
    if "://" not in host:
        return "unix", host
    scheme, rest = host.split("://", 1)
    if scheme in ("unix", "http+unix"):
        return "unix", rest
    t = split_tcp(host)
    return ("tcp", t) if t else (scheme, rest)


def _owned_by_me(st) -> bool:
    return st.st_uid == os.geteuid()


# ----------------------------------------------------------------------------- checks
def check_transport(ctx) -> CheckResult:
    kind, addr = _kind(ctx)
    if kind == "unix":
        return ok("transport", f"a local socket ({addr}): the API is not on the network")
    if kind == "npipe":
        return ok("transport", f"a local named pipe ({addr}): the API is not on the network")
    if kind == "ssh":
        return ok("transport", f"{ctx.endpoint.host}: encrypted and authenticated by SSH")
    if kind != "tcp":
        return skipped("transport", f"not a network endpoint ({ctx.endpoint.host})")
    host, port = addr
    plain = ctx.port_speaks == "plain" or (ctx.port_speaks != "tls" and ctx.tls is None)
    local = resolves_to_loopback(host)
    data = {"address": f"{host}:{port}", "plain": plain, "where": "loopback" if local else where(host)}
    if not plain:
        return ok("transport", f"{host}:{port} speaks TLS", data=data)
    speaks = (
        "speaks plain HTTP" if ctx.port_speaks == "plain" else "is set up for plain HTTP (no TLS settings)"
    )
    if local:
        return warn(
            "transport",
            f"{host}:{port} {speaks}: no encryption, no authentication; every local user "
            f"and process that reaches that port is root on the daemon's host, bypassing the "
            f"socket's permissions",
            hint="use the unix socket (`unset DOCKER_HOST`), " + TLS_HINT,
            data=data,
        )
    return fail(
        "transport",
        f"{host}:{port} {speaks} over the network: no encryption, no authentication; "
        f"anyone who can reach that port is root on the daemon's host",
        hint="use " + TLS_HINT,
        data=data,
    )


def check_tls_verify(ctx) -> CheckResult:
    kind, addr = _kind(ctx)
    if kind != "tcp":
        return skipped("tls-verify", f"not a tcp:// endpoint ({ctx.endpoint.host})")
    if ctx.port_speaks == "plain":
        return skipped("tls-verify", "the port speaks plain HTTP (see Transport)")
    env, t = ctx.env, ctx.tls
    found = []
    if ctx.endpoint.source == "DOCKER_HOST":
        if env.get("DOCKER_TLS") and not env.get("DOCKER_TLS_VERIFY"):
            found.append(
                "DOCKER_TLS is set without DOCKER_TLS_VERIFY: the docker CLI encrypts but does not verify the daemon"
            )
        if t and not t["verify"]:
            why = (
                "DOCKER_TLS_VERIFY is empty"
                if env.get("DOCKER_TLS_VERIFY") == ""
                else "DOCKER_TLS_VERIFY is unset"
            )
            found.append(f"{why}: ddctl and docker-py encrypt but do not verify the daemon")
    elif t and not t["verify"]:
        found.append(f"the context {ctx.endpoint.context!r} skips TLS verification (SkipTLSVerify)")
    data = {"address": "%s:%s" % addr, "findings": found}
    if found:
        return warn(
            "tls-verify",
            "; ".join(found)
            + ": whoever answers on the path can pose as the daemon and see what is sent to it "
            "(pictures, build contexts, registry credentials)",
            hint="`export DOCKER_TLS_VERIFY=1` with the daemon's ca.pem in DOCKER_CERT_PATH "
            "(what `docker-machine env` prints)" + ("; `unset DOCKER_TLS`" if env.get("DOCKER_TLS") else ""),
            data=data,
        )
    if t and t["verify"]:
        return ok("tls-verify", "the daemon's certificate is verified against ca.pem", data=data)
    return skipped("tls-verify", "ddctl does not use TLS for this endpoint", data=data)


def check_socket_mode(ctx) -> CheckResult:
    kind, path = _kind(ctx)
    if kind != "unix":
        return skipped("socket-mode", f"not a unix socket endpoint ({ctx.endpoint.host})")
    try:
        st = os.stat(path)
    except OSError as exc:
        return skipped("socket-mode", f"cannot see {path} ({exc.strerror or exc}; see Socket)")
    if not stat.S_ISSOCK(st.st_mode):
        return skipped("socket-mode", f"{path} is not a socket (see Socket)")
    mode = stat.S_IMODE(st.st_mode)
    owner, group, members = _names(st)
    status, problem = socket_mode_risk(mode, group, st.st_gid, owner, st.st_uid)
    who = "root on this host" if st.st_uid == 0 else f"{owner} on this host (the daemon runs as {owner})"
    data = {"path": path, "mode": f"{mode:04o}", "owner": owner, "group": group, "group_members": members}
    facts = f"{path} is {mode:04o} {owner}:{group}"
    if status == FAIL:
        return fail(
            "socket-mode",
            f"{facts}: {problem}, and whoever can write to the Docker socket is {who}",
            hint=f"`sudo chmod 660 {path}` (restarting the daemon also recreates it 0660); give users "
            f"access with the docker group (`sudo usermod -aG docker USER`) or rootless Docker, "
            f"never `chmod 666`",
            data=data,
        )
    if status == WARN:
        listed = ", ".join(members) if members else "its members"
        return warn(
            "socket-mode",
            f"{facts}: {problem}; {listed} {'is' if len(members) == 1 else 'are'} {who}",
            hint=f'let the docker group own it: `"group": "docker"` in /etc/docker/daemon.json '
            f"(dockerd --group docker) and restart the daemon; until then `sudo chgrp docker {path}`",
            data=data,
        )
    detail = facts
    if mode & 0o020 and st.st_gid != 0 and group != owner:
        listed = f" ({', '.join(members)})" if members else ""
        detail += f": the {group} group's members{listed} are {who}"
    return ok("socket-mode", detail, data=data)


def client_key(ctx) -> tuple[Optional[str], bool]:
    """(path, in use) of the client key.pem to look at: the one in use, else the default one."""
    t = ctx.tls
    if t and t.get("key"):
        return t["key"], True
    d = ctx.env.get("DOCKER_CERT_PATH") or os.path.join(
        ctx.env.get("HOME") or os.path.expanduser("~"), ".docker"
    )
    path = os.path.join(d, "key.pem")
    return (path, False) if os.path.exists(path) else (None, False)


def check_key_mode(ctx) -> CheckResult:
    path, in_use = client_key(ctx)
    if not path:
        return skipped("key-mode", "no client key.pem in use or in ~/.docker")
    try:
        st = os.stat(path)
    except OSError as exc:
        return skipped("key-mode", f"cannot see {path} ({exc.strerror or exc}; see TLS files)")
    mode = stat.S_IMODE(st.st_mode)
    owner, group, _members = _names(st)
    status, problem = key_mode_risk(mode)
    data = {"key": path, "in_use": in_use, "mode": f"{mode:04o}", "owner": owner, "group": group}
    facts = f"{path} is {mode:04o} {owner}:{group}" + ("" if in_use else " (not in use now)")
    if status == OK:
        return ok("key-mode", facts, data=data)
    mine = _owned_by_me(st) and stat.S_ISREG(st.st_mode)
    r = (fail if status == FAIL else warn)(
        "key-mode",
        f"{facts}: {problem}; whoever holds this key is trusted by the daemon, i.e. is root on its host",
        hint=f"`chmod 600 {path}`" + ("" if mine else f" (as {owner}, its owner)"),
        data=data,
    )
    if mine:
        r.fix = f"set {path} to mode 0600 (it is yours; nothing else is touched)"
    return r


def check_listeners(ctx) -> CheckResult:
    info = ctx.info or {}
    if "Warnings" not in info:
        return skipped("listeners", "the daemon does not report its listeners (no Warnings in docker info)")
    found = daemon_listeners(info.get("Warnings"))
    data = {"listeners": found}
    if not found:
        return ok("listeners", "the daemon reports no TCP listener without TLS", data=data)
    exposed = [f for f in found if f["where"] != "loopback"]
    shown = ", ".join(
        f"{f['url']}"
        + (" (all interfaces)" if f["where"] == "all" else "")
        + ("" if f["plain"] else " without client verification")
        for f in found
    )
    hint = (
        "remove the tcp:// host from dockerd's -H flags or \"hosts\" in /etc/docker/daemon.json, "
        "or add --tlsverify with --tlscacert/--tlscert/--tlskey; reach a remote daemon over "
        "`ssh://USER@HOST`"
    )
    if exposed:
        return fail(
            "listeners",
            f"the daemon listens on {shown}: anyone who can reach it over the network is root on its host",
            hint=hint,
            data=data,
        )
    return warn(
        "listeners",
        f"the daemon listens on {shown}: every local user and process is root on its host through it",
        hint=hint,
        data=data,
    )


def check_registries(ctx) -> CheckResult:
    rc = (ctx.info or {}).get("RegistryConfig")
    if rc is None:
        return skipped("registries", "the daemon does not report its registry settings")
    found = insecure_registries(rc)
    data = {"insecure": found}
    if not found:
        return ok("registries", "only 127.0.0.0/8 may be pulled from without TLS (the default)", data=data)
    return warn(
        "registries",
        f"pulled from without TLS verification: {', '.join(found)}; anyone on the path can "
        f"swap the images this daemon runs",
        hint='remove them from "insecure-registries" in /etc/docker/daemon.json and give the registry '
        "a certificate (/etc/docker/certs.d/HOST:PORT/ca.crt)",
        data=data,
    )


def _options(ctx) -> list[str]:
    return list((ctx.info or {}).get("SecurityOptions") or [])


def check_rootless(ctx) -> CheckResult:
    rootless = any("name=rootless" in o for o in _options(ctx))
    if rootless:
        return ok(
            "rootless",
            "rootless: the daemon runs as an unprivileged user, so its API and a container "
            "escape are that user, not root",
            data={"rootless": True},
        )
    return ok(
        "rootless",
        "the daemon runs as root (not rootless): whoever drives its API is root on its host",
        data={"rootless": False},
    )


def check_userns(ctx) -> CheckResult:
    opts = _options(ctx)
    if any("name=userns" in o for o in opts):
        return ok(
            "userns",
            "user namespaces remapped: root in a container is an unprivileged uid on the host",
            data={"userns": True},
        )
    if any("name=rootless" in o for o in opts):
        return ok(
            "userns",
            "no userns-remap, but rootless: container uids map into the daemon user's range",
            data={"userns": False},
        )
    return ok(
        "userns",
        "no userns-remap: uid 0 in a container is uid 0 on the host (dream containers never run as uid 0)",
        data={"userns": False},
    )


def fix_key_mode(ctx, result) -> str:
    """chmod 0600 the key.pem a check flagged, if it is a regular file this user owns."""
    path = result.data["key"]
    real = os.path.realpath(path)
    fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NOCTTY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not _owned_by_me(st):
            raise ValueError(f"{real} is not a file of yours; left as it is")
        was = stat.S_IMODE(st.st_mode)
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return f"set {real} to mode 0600 (was {was:04o})"


SECURITY_CHECKS = tuple(
    Check(name, title, func, requires, group=GROUP)
    for name, title, func, requires in (
        ("transport", "Transport", check_transport, ("endpoint",)),
        ("tls-verify", "TLS verification", check_tls_verify, ("endpoint",)),
        ("socket-mode", "Socket permissions", check_socket_mode, ("endpoint",)),
        ("key-mode", "Client key", check_key_mode, ("endpoint",)),
        ("listeners", "Daemon listeners", check_listeners, ("connection",)),
        ("registries", "Insecure registries", check_registries, ("connection",)),
        ("rootless", "Rootless", check_rootless, ("connection",)),
        ("userns", "User namespaces", check_userns, ("connection",)),
    )
)
FIXES = {"key-mode": fix_key_mode}
