"""The doctor's Security group: which addresses are loopback, which modes are unsafe, what
`docker info` gives away, and the checks' verdicts on facts made here. No daemon needed."""

import os
import socket
import stat

import pytest

from ddctl.client import Endpoint
from ddctl.doctor import security as sec
from ddctl.doctor.checks import CHECKS, tls_from_env
from ddctl.doctor.fixes import FIXES, apply_fixes
from ddctl.doctor.result import FAIL, OK, SKIPPED, WARN
from ddctl.doctor.runner import Context, run_checks


# ---------------------------------------------------------------- addresses
@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.0.0.2",
        "127.1.2.3",
        "127.255.255.254",
        "::1",
        "[::1]",
        "0:0:0:0:0:0:0:1",
        "::ffff:127.0.0.1",
        "localhost",
        "LOCALHOST",
        "localhost.",
        "ip6-localhost",
        "dev.localhost",
    ],
)
def test_loopback_addresses(host):
    assert sec.is_loopback(host)
    assert sec.where(host) == "loopback"


@pytest.mark.parametrize(
    "host",
    [
        "",
        None,
        "0.0.0.0",
        "::",
        "128.0.0.1",
        "126.255.255.255",
        "10.0.2.15",
        "192.168.59.103",
        "::2",
        "fe80::1%eth0",
        "::ffff:10.0.0.1",
        "localhost.example.com",
        "mylocalhost",
        "docker.example",
    ],
)
def test_addresses_that_are_not_loopback(host):
    assert not sec.is_loopback(host)


@pytest.mark.parametrize("host", ["", "0.0.0.0", "::", "[::]", "0:0:0:0:0:0:0:0"])
def test_all_interfaces(host):
    assert sec.is_all_interfaces(host) and sec.where(host) == "all"


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.1", "::1", "example.com"])
def test_not_all_interfaces(host):
    assert not sec.is_all_interfaces(host)


def test_names_that_resolve_only_to_loopback_count_as_loopback():
    def resolve(addrs):
        return lambda host, port: [(0, 0, 0, "", (a, 0)) for a in addrs]

    def fails(host, port):
        raise socket.gaierror("Name or service not known")

    assert sec.resolves_to_loopback("myhost", resolve=resolve(["127.0.1.1"]))
    assert sec.resolves_to_loopback("myhost", resolve=resolve(["127.0.1.1", "::1"]))
    assert not sec.resolves_to_loopback("myhost", resolve=resolve(["127.0.1.1", "10.0.0.5"]))
    assert not sec.resolves_to_loopback("myhost", resolve=resolve([]))
    assert not sec.resolves_to_loopback("nowhere.invalid", resolve=fails)
    assert not sec.resolves_to_loopback(
        "10.0.0.5", resolve=resolve(["127.0.0.1"])
    )  # literals are not looked up
    assert sec.resolves_to_loopback("localhost", resolve=fails)  # by name, no lookup


def test_network_addresses():
    assert sec.where("192.168.59.103") == "network" and sec.where("docker.example") == "network"


@pytest.mark.parametrize(
    "url, expected",
    [
        ("tcp://127.0.0.1:23750", ("127.0.0.1", 23750)),
        ("tcp://[::1]:2375", ("::1", 2375)),
        ("https://docker.example", ("docker.example", 2376)),
        ("http://0.0.0.0", ("0.0.0.0", 2375)),
        ("myreg.example:5000", ("myreg.example", 5000)),
        ("unix:///var/run/docker.sock", None),
        ("ssh://me@host", None),
    ],
)
def test_split_tcp(url, expected):
    assert sec.split_tcp(url) == expected


# ---------------------------------------------------------------- modes
@pytest.mark.parametrize(
    "mode, group, gid, owner, uid, status",
    [
        (0o660, "docker", 105, "root", 0, OK),  # the default with a docker group
        (0o660, "root", 0, "root", 0, OK),  # dockerd without a docker group
        (0o600, "users", 100, "root", 0, OK),  # the group cannot write: harmless
        (0o640, "users", 100, "root", 0, OK),  # reading a socket is not connecting
        (0o755, "staff", 20, "ann", 501, OK),  # Docker Desktop on macOS: only ann writes
        (0o660, "ann", 1000, "ann", 1000, OK),  # rootless Docker: ann's private group
        (0o666, "docker", 105, "root", 0, FAIL),  # `chmod 666`
        (0o662, "root", 0, "root", 0, FAIL),
        (0o777, "ann", 1000, "ann", 1000, FAIL),
        (0o660, "users", 100, "root", 0, WARN),  # `chgrp users`
        (0o670, "staff", 50, "root", 0, WARN),
        (0o660, "users", 100, "ann", 1000, WARN),  # rootless socket in a shared primary group
    ],
)
def test_socket_modes(mode, group, gid, owner, uid, status):
    got, problem = sec.socket_mode_risk(mode, group, gid, owner, uid)
    assert got == status
    assert (problem is None) == (status == OK)


def test_socket_mode_problems_say_who():
    assert sec.socket_mode_risk(0o666, "docker", 105, "root", 0)[1] == "writable by every local user"
    assert "users, which is not the docker group" in sec.socket_mode_risk(0o660, "users", 100, "root", 0)[1]


@pytest.mark.parametrize(
    "mode, status",
    [
        (0o600, OK),
        (0o400, OK),
        (0o700, OK),
        (0o644, FAIL),
        (0o604, FAIL),
        (0o444, FAIL),
        (0o640, WARN),
        (0o440, WARN),
        (0o620, WARN),
        (0o602, WARN),
    ],
)
def test_key_modes(mode, status):
    assert sec.key_mode_risk(mode)[0] == status


# ---------------------------------------------------------------- docker info
DEFAULT_REGISTRY_CONFIG = {
    "InsecureRegistryCIDRs": ["127.0.0.0/8", "::1/128"],
    "IndexConfigs": {"docker.io": {"Name": "docker.io", "Secure": True, "Official": True}},
    "Mirrors": [],
}


def test_the_default_registry_config_is_safe():
    assert sec.insecure_registries(DEFAULT_REGISTRY_CONFIG) == []
    assert sec.insecure_registries(None) == [] and sec.insecure_registries({}) == []


def test_insecure_registries_beyond_loopback():
    rc = {
        "InsecureRegistryCIDRs": ["10.1.2.0/24", "127.0.0.0/8", "127.5.0.0/16", "0.0.0.0/0", "::1/128"],
        "IndexConfigs": {
            "docker.io": {"Secure": True},
            "localhost:5000": {"Secure": False},
            "127.0.0.1:5000": {"Secure": False},
            "[::1]:5000": {"Secure": False},
            "myreg.example:5000": {"Secure": False},
            "good.example": {"Secure": True},
        },
        "Mirrors": ["https://mirror.example/", "http://plain.example:5000/", "http://127.0.0.1:5001/"],
    }
    assert sec.insecure_registries(rc) == [
        "10.1.2.0/24",
        "0.0.0.0/0",
        "myreg.example:5000",
        "http://plain.example:5000/ (mirror over plain HTTP)",
    ]


# what dockerd 20.10 puts in `docker info` (Warnings), verbatim, and a later engine's form
W_PLAIN = (
    "WARNING: API is accessible on http://127.0.0.1:35075 without encryption.\n"
    "         Access to the remote API is equivalent to root access on the host. Refer\n"
    "         to the 'Docker daemon attack surface' section in the documentation for\n"
    "         more information: https://docs.docker.com/go/attack-surface/"
)
W_ALL = "[DEPRECATION NOTICE]: API is accessible on http://0.0.0.0:2375 without encryption."
W_NOVERIFY = "WARNING: API is accessible on https://[::]:2376 without TLS client verification.\n  Access ..."
W_OTHER = "WARNING: bridge-nf-call-iptables is disabled"


def test_daemon_listeners_from_the_warnings():
    found = sec.daemon_listeners([W_OTHER, W_PLAIN, W_ALL, W_NOVERIFY])
    assert [(f["host"], f["port"], f["plain"], f["where"]) for f in found] == [
        ("127.0.0.1", 35075, True, "loopback"),
        ("0.0.0.0", 2375, True, "all"),
        ("::", 2376, False, "all"),
    ]
    assert sec.daemon_listeners([W_OTHER]) == [] and sec.daemon_listeners(None) == []


# ---------------------------------------------------------------- the checks on made-up facts
def ctx_for(host, env=None, port_speaks=None, info=None):
    env = dict(env or {}, DOCKER_HOST=host) if host else dict(env or {})
    c = Context(env=env)
    c.endpoint = Endpoint(host=host, source="DOCKER_HOST")
    c.tls = tls_from_env(env)
    c.port_speaks = port_speaks
    c.info = info or {}
    return c


@pytest.mark.parametrize(
    "host, speaks, status",
    [
        ("tcp://127.0.0.1:23750", "plain", WARN),
        ("tcp://[::1]:2375", "plain", WARN),
        ("tcp://localhost:2375", None, WARN),  # nothing answered yet: ddctl would speak plain
        ("tcp://192.168.59.103:2375", "plain", FAIL),
        ("tcp://0.0.0.0:2375", "plain", FAIL),
        ("tcp://docker.example:2375", None, FAIL),
        ("unix:///var/run/docker.sock", None, OK),
        ("ssh://me@docker.example", None, OK),
    ],
)
def test_transport(host, speaks, status, monkeypatch):
    def no_dns(host, port):  # unit tests send nothing to a resolver
        raise socket.gaierror("Name or service not known")

    monkeypatch.setattr(sec.socket, "getaddrinfo", no_dns)
    r = sec.check_transport(ctx_for(host, port_speaks=speaks))
    assert r.status == status
    if status != OK:
        assert "plain HTTP" in r.detail and "root" in r.detail
        assert "DOCKER_TLS_VERIFY" in r.hint and "ssh://" in r.hint


def test_transport_over_tls_is_fine_and_verification_is_judged_apart():
    env = {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/certs"}
    r = sec.check_transport(ctx_for("tcp://10.0.0.5:2376", env, "tls"))
    assert r.status == OK and r.detail == "10.0.0.5:2376 speaks TLS"
    r = sec.check_tls_verify(ctx_for("tcp://10.0.0.5:2376", env, "tls"))
    assert r.status == OK and "verified" in r.detail


def test_docker_tls_without_verify():
    r = sec.check_tls_verify(ctx_for("tcp://10.0.0.5:2376", {"DOCKER_TLS": "1"}, "tls"))
    assert r.status == WARN
    assert "DOCKER_TLS is set without DOCKER_TLS_VERIFY" in r.detail and "pose as the daemon" in r.detail
    assert "DOCKER_TLS_VERIFY=1" in r.hint and "unset DOCKER_TLS" in r.hint


@pytest.mark.parametrize("verify", [None, ""])
def test_cert_path_without_verify(verify):
    env = {"DOCKER_CERT_PATH": "/certs"}
    if verify is not None:
        env["DOCKER_TLS_VERIFY"] = verify
    r = sec.check_tls_verify(ctx_for("tcp://10.0.0.5:2376", env, "tls"))
    assert r.status == WARN and "do not verify the daemon" in r.detail


def test_tls_verify_does_not_apply_to_sockets_and_plain_ports():
    assert sec.check_tls_verify(ctx_for("unix:///x.sock", {"DOCKER_TLS": "1"})).status == SKIPPED
    assert sec.check_tls_verify(ctx_for("tcp://127.0.0.1:1", {"DOCKER_TLS": "1"}, "plain")).status == SKIPPED


def test_a_world_writable_socket_fails_and_names_the_fix(tmp_path):
    path = str(tmp_path / "d.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    try:
        os.chmod(path, 0o666)
        r = sec.check_socket_mode(ctx_for("unix://" + path))
        assert r.status == FAIL and "0666" in r.detail and "writable by every local user" in r.detail
        assert f"sudo chmod 660 {path}" in r.hint and "never `chmod 666`" in r.hint
        assert r.fix is None  # the doctor does not touch sockets
        os.chmod(path, 0o600)
        assert sec.check_socket_mode(ctx_for("unix://" + path)).status == OK
    finally:
        s.close()
    assert sec.check_socket_mode(ctx_for("tcp://127.0.0.1:1")).status == SKIPPED
    assert sec.check_socket_mode(ctx_for("unix://" + str(tmp_path / "none.sock"))).status == SKIPPED


def write_certs(d, key_mode=0o644):
    d.mkdir(exist_ok=True)
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (d / name).write_text(name)
        os.chmod(d / name, 0o644)
    os.chmod(d / "key.pem", key_mode)
    return d


def modes(d):
    return {p.name: stat.S_IMODE(os.stat(p).st_mode) for p in d.iterdir()}


def test_a_readable_key_is_flagged_and_fixed_alone(tmp_path):
    d = write_certs(tmp_path / "certs")
    ctx = ctx_for("tcp://127.0.0.1:2376", {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(d)}, "tls")
    r = sec.check_key_mode(ctx)
    assert r.status == FAIL and "0644" in r.detail and "readable by every local user" in r.detail
    assert r.fix and str(d / "key.pem") in r.fix and f"chmod 600 {d / 'key.pem'}" in r.hint
    r.name = "key-mode"
    done = apply_fixes([r], ctx)
    assert done == [
        {"check": "key-mode", "ok": True, "message": f"set {d / 'key.pem'} to mode 0600 (was 0644)"}
    ]
    assert modes(d) == {"ca.pem": 0o644, "cert.pem": 0o644, "key.pem": 0o600}
    assert (d / "key.pem").read_text() == "key.pem"
    assert sec.check_key_mode(ctx).status == OK


def test_a_group_readable_key_warns(tmp_path):
    d = write_certs(tmp_path / "certs", 0o640)
    r = sec.check_key_mode(ctx_for("tcp://127.0.0.1:2376", {"DOCKER_CERT_PATH": str(d)}, "tls"))
    assert r.status == WARN and "readable by its group" in r.detail


def test_the_default_key_is_looked_at_even_when_not_in_use(tmp_path):
    write_certs(tmp_path / ".docker")
    r = sec.check_key_mode(ctx_for("unix:///x.sock", {"HOME": str(tmp_path)}))
    assert r.status == FAIL and "(not in use now)" in r.detail and r.data["in_use"] is False
    assert sec.check_key_mode(ctx_for("unix:///x.sock", {"HOME": str(tmp_path / "none")})).status == SKIPPED


def test_the_fix_follows_a_symlink_to_a_key_of_ones_own(tmp_path):
    real = write_certs(tmp_path / "real")
    link = tmp_path / "link"
    link.mkdir()
    os.symlink(real / "key.pem", link / "key.pem")
    ctx = ctx_for("tcp://127.0.0.1:2376", {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(link)}, "tls")
    r = sec.check_key_mode(ctx)
    assert r.fix
    sec.fix_key_mode(ctx, r)
    assert stat.S_IMODE(os.stat(real / "key.pem").st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_key_of_another_user_is_flagged_but_never_fixed(tmp_path):
    d = write_certs(tmp_path / "certs")
    os.chown(d / "key.pem", 65534, 65534)
    ctx = ctx_for("tcp://127.0.0.1:2376", {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(d)}, "tls")
    r = sec.check_key_mode(ctx)
    assert r.status == FAIL and r.fix is None and "its owner" in r.hint
    assert apply_fixes([r], ctx) == []  # no fix announced, none run
    r.data["key"] = str(d / "key.pem")  # even if asked directly, it refuses
    with pytest.raises(ValueError, match="not a file of yours"):
        sec.fix_key_mode(ctx, r)
    assert stat.S_IMODE(os.stat(d / "key.pem").st_mode) == 0o644


def test_listeners_on_the_network_fail_on_loopback_warn():
    ok = sec.check_listeners(ctx_for("unix:///x", info={"Warnings": [W_OTHER]}))
    assert ok.status == OK
    local = sec.check_listeners(ctx_for("unix:///x", info={"Warnings": [W_PLAIN]}))
    assert local.status == WARN and "http://127.0.0.1:35075" in local.detail
    everywhere = sec.check_listeners(ctx_for("unix:///x", info={"Warnings": [W_PLAIN, W_ALL]}))
    assert everywhere.status == FAIL and "http://0.0.0.0:2375 (all interfaces)" in everywhere.detail
    assert "--tlsverify" in everywhere.hint and "ssh://" in everywhere.hint
    noverify = sec.check_listeners(ctx_for("unix:///x", info={"Warnings": [W_NOVERIFY]}))
    assert noverify.status == FAIL and "without client verification" in noverify.detail
    assert sec.check_listeners(ctx_for("unix:///x", info={})).status == SKIPPED  # Podman: not told


def test_registries_rootless_and_userns_from_info():
    rc = dict(DEFAULT_REGISTRY_CONFIG, InsecureRegistryCIDRs=["10.1.2.0/24", "127.0.0.0/8"])
    r = sec.check_registries(ctx_for("unix:///x", info={"RegistryConfig": rc}))
    assert r.status == WARN and "10.1.2.0/24" in r.detail and "insecure-registries" in r.hint
    assert (
        sec.check_registries(ctx_for("unix:///x", info={"RegistryConfig": DEFAULT_REGISTRY_CONFIG})).status
        == OK
    )
    rootful = ctx_for("unix:///x", info={"SecurityOptions": ["name=seccomp,profile=default"]})
    rootless = ctx_for("unix:///x", info={"SecurityOptions": ["name=seccomp", "name=rootless"]})
    remapped = ctx_for("unix:///x", info={"SecurityOptions": ["name=userns"]})
    for c in (rootful, rootless, remapped):  # informational: never a warning
        assert sec.check_rootless(c).status == OK and sec.check_userns(c).status == OK
    assert "runs as root" in sec.check_rootless(rootful).detail
    assert sec.check_rootless(rootless).data["rootless"] is True
    assert sec.check_userns(remapped).data["userns"] is True
    assert sec.check_userns(rootful).data["userns"] is False


# ---------------------------------------------------------------- registration
def test_the_security_group_comes_last_and_each_check_has_a_group_title_and_order():
    names = [c.name for c in CHECKS]
    first = names.index("transport")
    assert all(c.group == "security" for c in CHECKS[first:])
    assert all(c.group == "" for c in CHECKS[:first])
    assert {c.name for c in sec.SECURITY_CHECKS} == {
        "transport",
        "tls-verify",
        "socket-mode",
        "key-mode",
        "listeners",
        "registries",
        "rootless",
        "userns",
    }
    assert FIXES["key-mode"] is sec.fix_key_mode
    assert all(len(c.title) <= 19 for c in CHECKS)  # the screen's title column


def test_results_carry_their_group_into_json():
    ctx = ctx_for("unix:///nonexistent/x.sock")
    results = run_checks(sec.SECURITY_CHECKS[:1], ctx)
    assert results[0].as_dict()["group"] == "security" and results[0].title == "Transport"
