"""One small function per check: check_X(ctx) -> CheckResult. CHECKS gives their order.

Every check says what it found in one line and, when something is wrong, the command
that fixes it; the sentences quote the error the user would otherwise meet
(docker CLI / docker-py), so that a search for that error lands here.
"""

import errno
import ipaddress
import os
import re
import shutil
import socket
import ssl
import stat
from typing import Optional
from urllib.parse import urlsplit

import docker
from docker.constants import DEFAULT_DOCKER_API_VERSION, IS_WINDOWS_PLATFORM, MINIMUM_DOCKER_API_VERSION
from docker.utils import parse_host

from ddctl.client import (
    DOCKER_ERRORS,
    DOCTOR_HINT,
    Endpoint,
    api_version_key,
    explain,
    make_client,
    resolve_endpoint,
)
from ddctl.doctor import certs
from ddctl.doctor.result import fail, ok, skipped, warn
from ddctl.doctor.runner import Check
from ddctl.doctor.security import SECURITY_CHECKS
from ddctl.doctor.swarm import SWARM_CHECKS
from ddctl.errors import DdctlError, one_line
from ddctl.image import (
    BVLC_GOOGLENET,
    BVLC_GOOGLENET_SHA1,
    DEFAULT_TAG,
    UNTRAINED,
    VERSION_LABEL,
    WEIGHTS_LABEL,
    WEIGHTS_SHA1_LABEL,
    WEIGHTS_SOURCE_LABEL,
)

IMAGE = DEFAULT_TAG
IMAGE_BYTES = 1.5e9  # what the dream image needs on the daemon's disk
PROFILE = "/var/lib/boot2docker/profile"
ENV_HINT = 'eval "$(ddctl doctor env)"'
CA_BUNDLE_VARS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


# ----------------------------------------------------------------------------- helpers
def _quiet(msg):
    """explain()'s sentence without the 'Try `ddctl doctor`.' we are already in."""
    return msg.replace(" " + DOCTOR_HINT, "").replace(DOCTOR_HINT, "").strip()


def split_host(host):
    """(scheme, address) of an endpoint: ('unix', '/path') or ('tcp', ('h', port))."""
    parts = urlsplit(host)
    scheme = parts.scheme
    if scheme in ("unix", "http+unix"):
        return "unix", host.split("://", 1)[1] if "://" in host else host
    if scheme in ("tcp", "http", "https"):
        port = parts.port or (2376 if scheme == "https" else 2375)
        return "tcp", (parts.hostname, port)
    return scheme, parts.netloc + parts.path


def tls_from_env(env):
    """The TLS settings docker-py's kwargs_from_env derives from the environment, or None."""
    verify = env.get("DOCKER_TLS_VERIFY")
    verify = False if verify == "" else verify is not None
    cert_path = env.get("DOCKER_CERT_PATH")
    if not (cert_path or verify):
        return None
    d = cert_path or os.path.join(os.path.expanduser("~"), ".docker")
    return {
        "dir": d,
        "ca": os.path.join(d, "ca.pem"),
        "cert": os.path.join(d, "cert.pem"),
        "key": os.path.join(d, "key.pem"),
        "verify": verify,
        "source": "DOCKER_CERT_PATH" if cert_path else "~/.docker (DOCKER_TLS_VERIFY is set)",
    }


def tls_from_config(tls):
    """The same dict from a docker.tls.TLSConfig (a context's TLS material)."""
    if not tls:
        return None
    cert, key = tls.cert if tls.cert else (None, None)
    ca = tls.ca_cert if isinstance(tls.ca_cert, str) else None
    d = os.path.dirname(cert or ca or "") or None
    return {"dir": d, "ca": ca, "cert": cert, "key": key, "verify": bool(tls.verify), "source": "context"}


def contexts_by_host():
    """{host: context name} for the contexts in $DOCKER_CONFIG (or ~/.docker)."""
    try:
        from docker.context import ContextAPI

        return {c.Host: c.Name for c in ContextAPI.contexts() if c.Host and c.Name != "default"}
    except Exception:
        return {}


def well_known_sockets(env):
    """(engine, path, usual context name) of the sockets other engines create (anchors table)."""
    home = os.path.expanduser("~") if "HOME" not in env else env["HOME"]
    uid = os.getuid()
    run = env.get("XDG_RUNTIME_DIR") or f"/run/user/{uid}"
    colima_home = env.get("COLIMA_HOME") or os.path.join(home, ".colima")
    out: list[tuple[str, str, Optional[str]]] = [
        ("Docker Desktop", os.path.join(home, ".docker/run/docker.sock"), "desktop-linux"),
        ("Docker Desktop", os.path.join(home, ".docker/desktop/docker.sock"), "desktop-linux"),
    ]
    try:
        profiles = sorted(os.listdir(colima_home))
    except OSError:
        profiles = []
    for p in profiles:
        out.append(
            (
                f"Colima ({p})",
                os.path.join(colima_home, p, "docker.sock"),
                "colima" if p == "default" else f"colima-{p}",
            )
        )
    out += [
        ("Rancher Desktop", os.path.join(home, ".rd/docker.sock"), "rancher-desktop"),
        ("OrbStack", os.path.join(home, ".orbstack/run/docker.sock"), "orbstack"),
        ("rootless Docker", os.path.join(run, "docker.sock"), "rootless"),
        ("Podman (rootless)", os.path.join(run, "podman/podman.sock"), None),
        ("Podman", "/run/podman/podman.sock", None),
        ("Docker Engine", "/var/run/docker.sock", "default"),
    ]
    return out


def probe_sockets(ctx, exclude=()):
    """Live sockets of other engines: [{"engine", "host", "context"}], in table order."""
    found, seen = [], {os.path.realpath(p) for p in exclude}
    known = contexts_by_host()
    for engine, path, _usual in well_known_sockets(ctx.env):
        real = os.path.realpath(path)
        if real in seen or not os.path.exists(path):
            continue
        seen.add(real)
        host = "unix://" + path
        try:
            client = make_client(Endpoint(host=host, source="probe"), timeout=min(ctx.timeout, 3))
            client.close()
        except Exception:
            continue
        context = known.get(host) or ("default" if path == "/var/run/docker.sock" else None)
        found.append({"engine": engine, "host": host, "context": context})
    ctx.found = found
    return found


def found_hint(found, ep=None):
    if not found:
        return None
    f = found[0]
    if ep is not None and ep.source == "DOCKER_HOST":  # DOCKER_HOST beats any context
        how = f"`export DOCKER_HOST={f['host']}` or "
    else:
        how = f"`docker context use {f['context']}` or " if f["context"] else ""
    more = f" ({len(found) - 1} more with -v)" if len(found) > 1 else ""
    return f"{f['engine']} answers at {f['host']}: use it with {how}`{ENV_HINT}`{more}."


def group_advice(st, uid=None, login_groups=None, getgrgid=None, getpwuid=None):
    """Why this user may not open a socket owned by st.st_uid:st.st_gid, and what to do."""
    if getgrgid is None or getpwuid is None:
        import grp  # POSIX only: imported here so that ddctl starts where they do not exist
        import pwd

        getgrgid, getpwuid = getgrgid or grp.getgrgid, getpwuid or pwd.getpwuid
    uid = os.getuid() if uid is None else uid
    login = set(os.getgroups() + [os.getegid()]) if login_groups is None else set(login_groups)
    try:
        user = getpwuid(uid)
        name, primary = user.pw_name, user.pw_gid
    except KeyError:
        name, primary = str(uid), None
    try:
        g = getgrgid(st.st_gid)
        gname, members = g.gr_name, list(g.gr_mem)
    except KeyError:
        gname, members = str(st.st_gid), []
    mode = stat.S_IMODE(st.st_mode)
    in_db = name in members or primary == st.st_gid
    if st.st_gid in login and not mode & 0o020:
        return (
            f"the socket's mode {mode:04o} gives its group no write access",
            "the daemon sets the socket mode: check its --group option (never `chmod 666` the socket)",
        )
    if in_db and st.st_gid not in login:
        return (
            f"{name} is in the {gname} group but not in this login",
            f"log out and in, or run `newgrp {gname}`",
        )
    return (
        f"the socket is {mode:04o} for group {gname} and {name} is not in that group",
        f"`sudo usermod -aG {gname} {name}`, then log out and in; or use rootless Docker "
        f"(never `chmod 666` the socket)",
    )


# ----------------------------------------------------------------------------- checks
def check_endpoint(ctx):
    env = ctx.env
    dh = env.get("DOCKER_HOST")
    if dh:
        try:
            parse_host(dh, IS_WINDOWS_PLATFORM, False)
        except Exception as exc:
            return fail(
                "endpoint",
                f"DOCKER_HOST={dh!r} is not a valid address (the SDK says: {exc})",
                hint="use unix:///var/run/docker.sock, tcp://HOST:2376 or ssh://USER@HOST, "
                "or `unset DOCKER_HOST`",
                data={"DOCKER_HOST": dh},
            )
        if dh.startswith("ssh://"):
            try:
                import paramiko  # noqa: F401
            except ImportError:
                return fail(
                    "endpoint",
                    f"DOCKER_HOST={dh} is an ssh:// endpoint, which needs paramiko",
                    hint="`pip install paramiko`",
                )
    try:
        ep = resolve_endpoint(env)
    except DdctlError as exc:
        if dh:  # TLS files unusable: the tls-files check says which and why
            ep = Endpoint(host=dh, source="DOCKER_HOST")
            if env.get("DOCKER_CONTEXT"):
                ep.conflicts.append(
                    f"DOCKER_CONTEXT={env['DOCKER_CONTEXT']} is ignored because DOCKER_HOST is set"
                )
        else:
            from_env = bool(env.get("DOCKER_CONTEXT"))
            r = fail(
                "endpoint",
                _quiet(exc.message),
                hint="`unset DOCKER_CONTEXT`, or create it (`docker context ls` lists those that exist)"
                if from_env
                else "`docker context use default`, or create it (`docker context ls`)",
                data={"DOCKER_CONTEXT": env.get("DOCKER_CONTEXT")},
            )
            if from_env:  # --fix says it cannot: the variable lives in the user's shell
                r.fix = "unset DOCKER_CONTEXT"
            else:
                r.fix = "make `default` the current context again (what `docker context use default` does)"
            found = probe_sockets(ctx)
            if found:
                r.data["found"] = found
                r.hint += "; " + found_hint(found)
            return r
    ctx.endpoint = ep
    ctx.tls = tls_from_env(env) if ep.source == "DOCKER_HOST" else tls_from_config(ep.tls)
    why = {"DOCKER_HOST": "from DOCKER_HOST", "default": "default: no DOCKER_HOST, no context"}.get(
        ep.source, f"context {ep.context!r}, from {ep.source}"
    )
    detail = f"{ep.host} ({why})"
    data = {
        "host": ep.host,
        "source": ep.source,
        "context": ep.context,
        "tls": bool(ctx.tls),
        "tls_verify": bool(ctx.tls and ctx.tls["verify"]),
    }
    if ep.conflicts:
        return warn(
            "endpoint",
            f"{detail}; " + "; ".join(ep.conflicts),
            hint="`unset DOCKER_CONTEXT` (or `unset DOCKER_HOST` to use the context)",
            data=data,
        )
    tls_vars = [k for k in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH") if env.get(k)]
    if tls_vars and ep.host.startswith(("unix://", "npipe://")):
        return warn(
            "endpoint",
            f"{detail}; {' and '.join(tls_vars)} {'are' if len(tls_vars) > 1 else 'is'} set but the "
            "endpoint is a local socket, which never uses TLS: left over from a docker-machine or "
            "boot2docker shell? (the docker CLI ignores them here; a later tcp:// DOCKER_HOST would use them)",
            hint=f"`unset {' '.join(tls_vars)}`",
            data=data,
        )
    if ep.source == "DOCKER_HOST" and env.get("DOCKER_CERT_PATH") and env.get("DOCKER_TLS_VERIFY") is None:
        return warn(
            "endpoint",
            f"{detail}; DOCKER_CERT_PATH is set without DOCKER_TLS_VERIFY: the docker CLI "
            "speaks plain HTTP there and the SDK uses TLS without verifying the daemon",
            hint="`export DOCKER_TLS_VERIFY=1`",
            data=data,
        )
    return ok("endpoint", detail, data=data)


def check_socket(ctx):
    kind, path = split_host(ctx.endpoint.host)
    if kind != "unix":
        return skipped("socket", f"not a unix socket endpoint ({ctx.endpoint.host})")
    data = {"path": path}
    user_error = (
        f"docker says: Cannot connect to the Docker daemon at unix://{path}. Is the docker daemon running?"
    )
    problem = hint = None
    if os.path.islink(path) and not os.path.exists(path):
        problem = f"{path} is a dangling symlink to {os.readlink(path)} (its engine is not running)"
    elif not os.path.exists(path):
        where = os.path.dirname(path)
        problem = f"{path} does not exist" + ("" if os.path.isdir(where) else f" (nor does {where})")
    elif not stat.S_ISSOCK(os.stat(path).st_mode):
        problem = f"{path} is not a socket"
    else:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(ctx.timeout)
        try:
            s.connect(path)
        except OSError as exc:
            st = os.stat(path)
            data.update(
                errno=exc.errno, owner=st.st_uid, group=st.st_gid, mode=f"{stat.S_IMODE(st.st_mode):04o}"
            )
            if exc.errno == errno.ECONNREFUSED:
                problem = f"{path} is stale: nobody listens on it (the daemon stopped or crashed)"
            elif exc.errno in (errno.EACCES, errno.EPERM):
                why, hint = group_advice(st)
                return fail(
                    "socket",
                    f"permission denied on {path}: {why}",
                    hint=hint,
                    data=dict(
                        data,
                        user_sees=f"permission denied while trying to connect to the "
                        f"Docker daemon socket at unix://{path}",
                    ),
                )
            else:
                problem = f"cannot connect to {path}: {exc.strerror or exc}"
        else:
            return ok("socket", f"{path} accepts connections", data=data)
        finally:
            s.close()
    found = probe_sockets(ctx, exclude=[path])
    data["found"] = found
    data["user_sees"] = user_error
    hint = found_hint(found, ctx.endpoint) or (
        "start the daemon (`sudo systemctl start docker`, or your engine's app: "
        "Docker Desktop, `colima start`, `podman machine start`)"
    )
    return fail("socket", problem, hint=hint, data=data)


def _speaks(addr, timeout):
    """'tls', 'plain' or 'unknown': what protocol the daemon port answers in."""
    with socket.create_connection(addr, timeout=timeout) as s:
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
        reply = b""
        try:
            while len(reply) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
        except socket.timeout:
            pass
    if b"HTTP request to an HTTPS server" in reply or reply.startswith(b"\x15\x03"):
        return "tls"
    if reply.startswith(b"HTTP/"):
        return "plain"
    return "unknown"


def check_protocol(ctx):
    kind, addr = split_host(ctx.endpoint.host)
    if kind != "tcp":
        return skipped("protocol", f"not a tcp:// endpoint ({kind})")
    host, port = addr
    want_tls = ctx.tls is not None
    data = {"address": f"{host}:{port}", "client_speaks": "tls" if want_tls else "plain"}
    try:
        speaks = _speaks(addr, ctx.timeout)
    except ConnectionRefusedError:
        found = probe_sockets(ctx)
        return fail(
            "protocol",
            f"nothing listens on {host}:{port} (connection refused)",
            hint=found_hint(found, ctx.endpoint)
            or "start the daemon, or check the port in DOCKER_HOST (2376 is TLS, 2375 plain)",
            data=dict(data, found=found),
        )
    except OSError as exc:
        return fail(
            "protocol",
            f"{host}:{port} does not answer ({exc.strerror or exc}): is the VM or host up?",
            data=data,
        )
    ctx.port_speaks = data["port_speaks"] = speaks
    if speaks == "tls" and not want_tls:
        return fail(
            "protocol",
            f"{host}:{port} speaks TLS but ddctl would speak plain HTTP "
            f"(docker says: Client sent an HTTP request to an HTTPS server.)",
            hint="`export DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=<folder with ca.pem, cert.pem, key.pem>`",
            data=data,
        )
    if speaks == "plain" and want_tls:
        return fail(
            "protocol",
            f"{host}:{port} speaks plain HTTP but TLS is on (DOCKER_TLS_VERIFY/"
            f"DOCKER_CERT_PATH; docker says: tls: first record does not look like a TLS "
            f"handshake, the SDK: [SSL: WRONG_VERSION_NUMBER])",
            hint="`unset DOCKER_TLS_VERIFY DOCKER_CERT_PATH`, or use the daemon's TLS port (2376)",
            data=data,
        )
    if speaks == "unknown":
        return warn("protocol", f"{host}:{port} answers, but not like a Docker daemon", data=data)
    return ok(
        "protocol",
        f"{host}:{port} speaks {'TLS' if speaks == 'tls' else 'plain HTTP'}, like ddctl",
        data=data,
    )


def check_tls_files(ctx):
    t = ctx.tls
    if not t:
        return skipped("tls-files", "the endpoint does not use TLS")
    data = {k: t[k] for k in ("ca", "cert", "key", "verify", "source")}
    problems = certs.check_client_files(t["ca"] if t["verify"] else None, t["cert"], t["key"])
    if t["verify"] and not t["ca"]:
        problems.insert(0, ("fail", "TLS verification is on but there is no ca.pem"))
    where = t["dir"] or "the context"
    bundles = [v for v in CA_BUNDLE_VARS if ctx.env.get(v)]
    if not problems and t["verify"] and bundles:
        return warn(
            "tls-files",
            f"{where}: the files fit, but {' and '.join(bundles)} {'are' if len(bundles) > 1 else 'is'} set: requests makes "
            f"docker-py verify the daemon against that bundle instead of ca.pem (\"unable to "
            f"get local issuer certificate\"); ddctl ignores it",
            hint=f"for your own docker-py scripts: `env -u {' -u '.join(bundles)} python ...`",
            data=dict(data, bundles=bundles),
        )
    if not problems:
        cert = certs.load_cert(t["cert"]) if t["cert"] else None
        until = f", cert.pem valid until {certs.not_after(cert):%Y-%m-%d}" if cert else ""
        return ok("tls-files", f"{where}: ca.pem, cert.pem and key.pem fit together{until}", data=data)
    data["problems"] = [p[1] for p in problems]
    status, first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    hint = (
        "get a new client certificate from the daemon's CA (docker-machine: "
        "`docker-machine regenerate-certs NAME`; then `eval \"$(docker-machine env NAME)\"`)"
    )
    if any("missing" in p[1] for p in problems):
        hint = f"point DOCKER_CERT_PATH at the folder holding ca.pem, cert.pem and key.pem (now {where})"
    return (fail if status == "fail" else warn)("tls-files", f"{where}: {first}{more}", hint=hint, data=data)


def check_server_cert(ctx):
    kind, addr = split_host(ctx.endpoint.host)
    if kind != "tcp" or not ctx.tls:
        return skipped("server-cert", "the endpoint does not use TLS")
    if ctx.port_speaks != "tls":
        return skipped("server-cert", "the port does not speak TLS")
    host, port = addr
    t = ctx.tls
    sc = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    sc.check_hostname = False  # we want the certificate even when it does not fit
    sc.verify_mode = ssl.CERT_NONE
    try:
        if t["cert"] and t["key"]:
            sc.load_cert_chain(t["cert"], t["key"])
    except (OSError, ssl.SSLError):
        pass
    try:
        with socket.create_connection(addr, timeout=ctx.timeout) as raw:
            with sc.wrap_socket(raw, server_hostname=None) as s:
                der = s.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        return fail("server-cert", f"no TLS handshake with {host}:{port}: {exc}")
    if not der:
        return fail("server-cert", f"{host}:{port} sent no certificate in the TLS handshake")
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    ips, names = certs.server_names(cert)
    valid_for = ", ".join(ips + names) or "no address"
    data = {
        "address": host,
        "san_ips": ips,
        "san_names": names,
        "not_after": f"{certs.not_after(cert):%Y-%m-%d}",
    }
    if not certs.name_matches(host, ips, names):
        other = ips + [n for n in names if "*" not in n]
        use = (
            f"`export DOCKER_HOST=tcp://{other[0]}:{port}` (an address it was issued for), or "
            if other
            else ""
        )
        data["user_sees"] = f"x509: certificate is valid for {valid_for}, not {host}"
        return fail(
            "server-cert",
            f"the daemon's certificate is valid for {valid_for}, not {host} (the address in DOCKER_HOST)",
            hint=f"{use}issue a new server certificate: `docker-machine regenerate-certs NAME`. "
            f"On boot2docker the certificate was made before eth1 had its address: "
            f"`ddctl doctor profile --apply` adds the wait4eth1 fix, then restart the VM and "
            f"run `{ENV_HINT}`.",
            data=data,
        )
    if t["verify"] and t["ca"] and os.path.exists(t["ca"]):
        try:
            ca = certs.load_cert(t["ca"])
            if not certs.issued_by(cert, ca):
                return fail(
                    "server-cert",
                    f"the daemon's certificate was not issued by {t['ca']} "
                    f"(docker says: x509: certificate signed by unknown authority)",
                    hint="use the ca.pem of the daemon's CA (docker-machine: "
                    "`docker-machine regenerate-certs NAME`)",
                    data=data,
                )
        except Exception:
            pass
    p = certs.validity_problem(cert, "the daemon's certificate")
    if p:
        return (fail if p[0] == "fail" else warn)(
            "server-cert",
            p[1],
            hint="`docker-machine regenerate-certs NAME` (or renew it on the daemon's host)",
            data=data,
        )
    return ok("server-cert", f"issued for {valid_for}; {host} is one of them", data=data)


def engine_identity(version, info):
    os_name = info.get("OperatingSystem", "")
    comps = " ".join(c.get("Name", "") for c in version.get("Components") or [])
    if "Podman" in comps or "podman" in version.get("Platform", {}).get("Name", "").lower():
        return "Podman"
    if "Docker Desktop" in os_name:
        return "Docker Desktop"
    if "OrbStack" in os_name:
        return "OrbStack"
    if "boot2docker" in os_name.lower():
        return "boot2docker"
    if any("rootless" in o for o in info.get("SecurityOptions") or []):
        return "rootless Docker"
    name = (info.get("Name") or "").lower()
    if name.startswith("colima"):
        return "Colima"
    if "rancher-desktop" in name:
        return "Rancher Desktop"
    return f"Docker Engine on {os_name}" if os_name else "Docker Engine"


def check_connection(ctx):
    if ctx.tls and ctx.endpoint.tls is None and ctx.endpoint.source == "DOCKER_HOST":
        r = skipped("connection", "the TLS files are unusable, so the SDK cannot even try")
        r.data["blocks"] = True
        return r
    try:
        ctx.client = make_client(ctx.endpoint, timeout=ctx.timeout)
        ctx.client.ping()
        ctx.version = ctx.client.version()
        ctx.info = ctx.client.info()
    except DOCKER_ERRORS as exc:
        raw = str(exc)
        detail = _quiet(explain(exc, ctx.endpoint))
        ssl_reason = re.search(r"\[SSL: ([A-Z0-9_]+)\] ([^(]+?) \(_ssl", raw)
        if ssl_reason and "alert" in ssl_reason.group(2):
            detail = (
                f"the daemon at {ctx.endpoint.host} refused this client's certificate "
                f"(TLS alert: {ssl_reason.group(2).split('alert ')[-1]})"
            )
        else:
            detail = one_line(detail, 200)
        return fail("connection", detail, hint=found_hint(ctx.found, ctx.endpoint), data={"error": raw[:500]})
    except Exception as exc:
        return fail("connection", _quiet(explain(exc, ctx.endpoint)))
    ctx.engine = engine_identity(ctx.version, ctx.info)
    return ok(
        "connection",
        f"the Docker API answers at {ctx.endpoint.host}",
        data={"api_version": ctx.client.api.api_version},
    )


def check_daemon(ctx):
    v, info = ctx.version, ctx.info
    api, min_api = v.get("ApiVersion", "?"), v.get("MinAPIVersion", "?")
    data = {
        "version": v.get("Version"),
        "api_version": api,
        "min_api_version": min_api,
        "sdk_api_version": DEFAULT_DOCKER_API_VERSION,
        "sdk_min_api_version": MINIMUM_DOCKER_API_VERSION,
        "sdk": docker.__version__,
        "engine": ctx.engine,
        "os": info.get("OperatingSystem"),
        "root_dir": info.get("DockerRootDir"),
        "name": info.get("Name"),
    }
    detail = f"{ctx.engine}, Engine {v.get('Version')}, API {api}"
    if api_version_key(api) and api_version_key(api) < api_version_key(MINIMUM_DOCKER_API_VERSION):
        return fail(
            "daemon",
            f"{detail}: older than the oldest API the SDK speaks ({MINIMUM_DOCKER_API_VERSION})",
            hint="upgrade Docker Engine",
            data=data,
        )
    if api_version_key(min_api) and api_version_key(min_api) > api_version_key(DEFAULT_DOCKER_API_VERSION):
        return fail(
            "daemon",
            f"{detail}: it refuses API {DEFAULT_DOCKER_API_VERSION} (client version "
            f"{DEFAULT_DOCKER_API_VERSION} is too old. Minimum supported API version is {min_api})",
            hint="`pip install -U docker`",
            data=data,
        )
    return ok(
        "daemon",
        f"{detail} (SDK {docker.__version__} speaks {MINIMUM_DOCKER_API_VERSION}-"
        f"{DEFAULT_DOCKER_API_VERSION}, uses {ctx.client.api.api_version})",
        data=data,
    )


def _is_local(ctx):
    kind, addr = split_host(ctx.endpoint.host)
    if kind == "unix":
        return ctx.engine.startswith(("Docker Engine", "rootless", "Podman"))
    if kind == "tcp":
        try:
            return ipaddress.ip_address(addr[0]).is_loopback
        except ValueError:
            return addr[0] == "localhost"
    return False


def _image(ctx):
    try:
        return ctx.client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        return None


def check_disk(ctx):
    root = ctx.info.get("DockerRootDir") or ""
    if not _is_local(ctx) or not os.path.isdir(root):
        return skipped("disk", f"the daemon's disk ({root or '?'}) is not on this machine ({ctx.engine})")
    free = shutil.disk_usage(root).free
    data = {"root_dir": root, "free_bytes": free, "needed_bytes": int(IMAGE_BYTES)}
    detail = f"{free / 1e9:.1f} GB free in {root}"
    if free >= IMAGE_BYTES:
        return ok("disk", detail, data=data)
    if _image(ctx) is None:
        return fail(
            "disk",
            f"{detail}; building the dream image needs about {IMAGE_BYTES / 1e9:.1f} GB",
            hint="`docker system prune` (removes stopped containers and unused images)",
            data=data,
        )
    return warn("disk", f"{detail}; little room left for dreams", hint="`docker system prune`", data=data)


def check_image(ctx):
    img = _image(ctx)
    if img is None:
        return warn("image", f"{IMAGE} is not built yet", hint="`ddctl build` (about a minute, ~1.5 GB)")
    labels = img.labels or {}
    weights, sha1 = labels.get(WEIGHTS_LABEL, "?"), labels.get(WEIGHTS_SHA1_LABEL, "")
    data = {
        "id": img.short_id,
        "weights": weights,
        "weights_sha1": sha1,
        "weights_source": labels.get(WEIGHTS_SOURCE_LABEL),
        "version": labels.get(VERSION_LABEL),
    }
    if weights == UNTRAINED:
        return warn(
            "image",
            f"{IMAGE} holds untrained weights: dreams will be noise, not dogs",
            hint="rebuild it with the real bvlc_googlenet weights (`ddctl build`, WEIGHTS=download)",
            data=data,
        )
    if weights == BVLC_GOOGLENET and sha1 and sha1 != BVLC_GOOGLENET_SHA1:
        return warn("image", f"{IMAGE} says bvlc_googlenet but its SHA1 is {sha1[:12]}…", data=data)
    return ok(
        "image",
        f"{IMAGE} ({img.short_id}) holds {weights} weights" + (f", SHA1 {sha1[:12]}…" if sha1 else ""),
        data=data,
    )


def check_profile(ctx):
    if ctx.engine != "boot2docker":
        return skipped("boot2docker-profile", f"not a boot2docker VM ({ctx.engine})")
    from ddctl.doctor import profile

    try:
        state = profile.inspect(ctx.client, PROFILE)
    except DdctlError as exc:
        return warn("boot2docker-profile", f"cannot read {PROFILE}: {exc.message}")
    if state == "present":
        return ok("boot2docker-profile", f"{PROFILE} waits for eth1 before making TLS certificates")
    return warn(
        "boot2docker-profile",
        f"{PROFILE} does not wait for eth1: TLS certificates may miss the VM's address after a reboot",
        hint="`ddctl doctor profile --apply`, then restart the VM",
        fix=f"append the wait4eth1 snippet to {PROFILE} (existing lines kept)",
        data={"state": state},
    )


def check_leftovers(ctx):
    """Dream containers (and temp folders) a killed ddctl left behind."""
    from ddctl.containers import TEMP_PREFIX, leftovers, stale_temp_folders

    found = leftovers(ctx.client)
    folders = stale_temp_folders()
    if not found and not folders:
        return ok("leftovers", "no dream container nor temp folder left by a killed ddctl")
    names = [c.name for c in found]
    running = [c.name for c in found if c.status == "running"]
    what = []
    if names:
        what.append(f"{len(names)} dream container(s) of a ddctl that is gone ({', '.join(names)})")
    if folders:
        what.append(f"{len(folders)} temp folder(s) {TEMP_PREFIX}<pid>-* of one")
    return warn(
        "leftovers",
        " and ".join(what) + (f"; {len(running)} still running" if running else ""),
        hint="`ddctl doctor --fix` removes them (so does the next `ddctl run` or `ddctl layers`)",
        fix="remove the leftover dream containers and temp folders",
        data={"containers": names, "running": running, "folders": folders},
    )


CHECKS = (
    Check("endpoint", "Endpoint", check_endpoint),
    Check("socket", "Socket", check_socket, ("endpoint",)),
    Check("protocol", "Protocol", check_protocol, ("endpoint",)),
    Check("tls-files", "TLS files", check_tls_files, ("endpoint",)),
    Check("server-cert", "Server certificate", check_server_cert, ("protocol",)),
    Check("connection", "Connection", check_connection, ("endpoint", "socket", "protocol")),
    Check("daemon", "Daemon", check_daemon, ("connection",)),
    Check("disk", "Disk space", check_disk, ("connection",)),
    Check("image", "Dream image", check_image, ("connection",)),
    Check("boot2docker-profile", "boot2docker profile", check_profile, ("connection",)),
    Check("leftovers", "Leftover dreams", check_leftovers, ("connection",)),
    *SWARM_CHECKS,
    *SECURITY_CHECKS,
)
