"""`ddctl doctor`'s Security group against real dockerd processes started here (never fakes).

Three daemons of this module's own (doctor_daemons.py), all on 127.0.0.0/8 and ::1 only:
  plain: unix socket + plain HTTP on 127.0.0.1:PLAIN (and [::1]:PLAIN6 when the host has
         IPv6 loopback), with an insecure registry 10.1.2.0/24 in its settings (never contacted)
  tls:   unix socket + TLS (--tlsverify) on 127.0.0.1:TLS, certificate for 127.0.0.1
  wide:  a unix socket only, made world-writable by one test and put back
Each scenario runs `python -m ddctl doctor` (text and --json) with a clean environment.
"""

import json
import os
import shutil
import socket
import stat

import pytest
from doctor_daemons import Dockerd, doctor, doctor_lab, free_port, run_doctor, tls_flags


def _has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def lab():
    def daemons(lab):
        lab.plain_port, lab.tls_port = free_port(), free_port()
        lab.plain6_port = free_port() if _has_ipv6_loopback() else None
        hosts = [f"tcp://127.0.0.1:{lab.plain_port}"]
        if lab.plain6_port:
            hosts.append(f"tcp://[::1]:{lab.plain6_port}")
        lab.plain = Dockerd(lab.base, "p", hosts, ["--tls=false", "--insecure-registry", "10.1.2.0/24"])
        lab.tls = Dockerd(lab.base, "t", [f"tcp://127.0.0.1:{lab.tls_port}"], tls_flags(lab.pki["server"]))
        lab.wide = Dockerd(lab.base, "w", [])
        return [lab.plain, lab.tls, lab.wide]

    with doctor_lab("dds-", daemons, server_ips=("127.0.0.1",)) as lab:
        yield lab


def line_of(text, title):
    return next(line for line in text.splitlines() if title in line)


def test_plain_tcp_on_loopback_is_a_security_warning_with_the_fix(lab):
    rc, c, text = doctor(lab, DOCKER_HOST=f"tcp://127.0.0.1:{lab.plain_port}")
    assert rc == 0, text  # a warning, not a failure: the port is on loopback
    t = c["transport"]
    assert t["group"] == "security" and t["status"] == "warn"
    assert f"127.0.0.1:{lab.plain_port} speaks plain HTTP" in t["detail"] and "root" in t["detail"]
    assert "DOCKER_TLS_VERIFY=1" in t["hint"] and "ssh://" in t["hint"]
    assert c["connection"]["status"] == "ok"  # it works: that is the point, it is also unsafe
    # the daemon itself says it listens in plain HTTP (docker info Warnings)
    li = c["listeners"]
    assert li["status"] == "warn" and f"http://127.0.0.1:{lab.plain_port}" in li["detail"]
    assert c["registries"]["status"] == "warn" and "10.1.2.0/24" in c["registries"]["detail"]
    assert "127.0.0.0/8" not in c["registries"]["detail"]
    assert c["rootless"]["status"] == "ok" and c["rootless"]["data"]["rootless"] is False
    assert c["userns"]["status"] == "ok" and c["userns"]["data"]["userns"] is False
    lines = text.splitlines()
    assert "Security" in lines and lines.index("Security") < lines.index(line_of(text, "] Transport"))
    assert line_of(text, "] Transport").startswith("[!]")
    assert "DOCKER_TLS_VERIFY=1" in text and "0 failed" in lines[-1]


def test_plain_tcp_on_ipv6_loopback_is_a_warning_too(lab):
    if not lab.plain6_port:
        pytest.skip("no IPv6 loopback on this host")
    rc, c, text = doctor(lab, DOCKER_HOST=f"tcp://[::1]:{lab.plain6_port}")
    assert rc == 0, text
    assert c["connection"]["status"] == "ok"
    assert c["transport"]["status"] == "warn" and c["transport"]["data"]["where"] == "loopback"


def test_the_socket_of_a_daemon_listening_on_tcp_still_reports_the_listener(lab):
    rc, c, text = doctor(lab, DOCKER_HOST=f"unix://{lab.plain.sock}")
    assert rc == 0, text
    assert c["transport"]["status"] == "ok" and c["socket-mode"]["status"] == "ok"
    assert c["listeners"]["status"] == "warn"


def test_a_world_writable_socket_is_a_failure(lab):
    sock = lab.wide.sock
    before = os.stat(sock)
    assert stat.S_IMODE(before.st_mode) == 0o660
    rc, c, _ = doctor(lab, DOCKER_HOST=f"unix://{sock}")
    assert rc == 0 and c["socket-mode"]["status"] == "ok"
    os.chmod(sock, 0o666)
    try:
        rc, c, text = doctor(lab, DOCKER_HOST=f"unix://{sock}")
        fixed = run_doctor(lab, "--fix", DOCKER_HOST=f"unix://{sock}")
        after_fix = stat.S_IMODE(os.stat(sock).st_mode)
    finally:
        os.chmod(sock, 0o660)
    assert rc == 1, text
    s = c["socket-mode"]
    assert s["status"] == "fail" and f"{sock} is 0666" in s["detail"]
    assert "writable by every local user" in s["detail"] and "root on this host" in s["detail"]
    assert f"sudo chmod 660 {sock}" in s["hint"] and "never `chmod 666`" in s["hint"]
    assert c["connection"]["status"] == "ok" and c["listeners"]["status"] == "ok"
    assert line_of(text, "] Socket permissions").startswith("[✗]") and "1 failed" in text.splitlines()[-1]
    assert fixed.returncode == 1 and after_fix == 0o666  # --fix leaves the daemon's socket alone


def test_a_socket_group_that_is_not_docker_is_a_warning(lab):
    sock = lab.wide.sock
    gid = os.stat(sock).st_gid
    os.chown(sock, -1, 100)  # "users"
    try:
        rc, c, text = doctor(lab, DOCKER_HOST=f"unix://{sock}")
    finally:
        os.chown(sock, -1, gid)
    assert rc == 0, text
    s = c["socket-mode"]
    assert s["status"] == "warn" and "not the docker group" in s["detail"]
    assert s["data"]["group"] != "docker" and "sudo chgrp docker" in s["hint"]


def snapshot(*roots):
    """{path: (mode, bytes, mtime)} of every file under roots."""
    out = {}
    for root in roots:
        for d, _dirs, files in os.walk(root):
            for name in files:
                p = os.path.join(d, name)
                st = os.lstat(p)
                with open(p, "rb") as f:
                    out[p] = (stat.S_IMODE(st.st_mode), f.read(), st.st_mtime_ns)
    return out


def test_a_readable_key_is_flagged_and_fix_repairs_its_mode_and_nothing_else(lab, tmp_path):
    certs = tmp_path / "certs"
    shutil.copytree(lab.pki["good"], certs)
    key = certs / "key.pem"
    os.chmod(key, 0o644)
    env = dict(
        DOCKER_HOST=f"tcp://127.0.0.1:{lab.tls_port}", DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(certs)
    )
    rc, c, text = doctor(lab, **env)
    assert rc == 1, text
    k = c["key-mode"]
    assert (
        k["status"] == "fail"
        and f"{key} is 0644" in k["detail"]
        and "readable by every local user" in k["detail"]
    )
    assert k["fix"] and f"chmod 600 {key}" in k["hint"] and "ddctl doctor --fix` will set" in text
    assert [n for n, r in c.items() if r["status"] == "fail"] == ["key-mode"]  # all else works
    assert c["transport"]["status"] == "ok" and c["tls-verify"]["status"] == "ok"

    before = snapshot(str(tmp_path), lab.home, lab.cfg)
    fixed = run_doctor(lab, "--fix", "--json", **env)
    after = snapshot(str(tmp_path), lab.home, lab.cfg)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    doc = json.loads(fixed.stdout)
    assert doc["fixes"] == [
        {"check": "key-mode", "ok": True, "message": f"set {key} to mode 0600 (was 0644)"}
    ]
    assert {x["name"]: x for x in doc["checks"]}["key-mode"]["status"] == "ok"  # checked again
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    assert changed == {str(key)}
    assert (
        after[str(key)][0] == 0o600 and after[str(key)][1:] == before[str(key)][1:]
    )  # same bytes, same mtime

    again = run_doctor(lab, "--fix", **env)
    assert again.returncode == 0 and "fixed" not in again.stdout  # nothing left to do


def test_fix_never_touches_a_key_that_belongs_to_someone_else(lab, tmp_path):
    certs = tmp_path / "certs"
    shutil.copytree(lab.pki["good"], certs)
    key = certs / "key.pem"
    os.chmod(key, 0o644)
    os.chown(key, 65534, 65534)  # nobody's
    env = dict(
        DOCKER_HOST=f"tcp://127.0.0.1:{lab.tls_port}", DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(certs)
    )
    rc, c, _ = doctor(lab, **env)
    assert rc == 1 and c["key-mode"]["status"] == "fail" and c["key-mode"]["fix"] is None
    assert "its owner" in c["key-mode"]["hint"]
    fixed = run_doctor(lab, "--fix", "--json", **env)
    assert json.loads(fixed.stdout)["fixes"] == [] and fixed.returncode == 1
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o644


def test_tls_without_verifying_the_daemon_is_a_warning(lab):
    rc, c, text = doctor(
        lab,
        DOCKER_HOST=f"tcp://127.0.0.1:{lab.tls_port}",
        DOCKER_CERT_PATH=lab.pki["good"],  # docker-py: TLS, no verification
        DOCKER_TLS="1",  # the docker CLI: the same
    )
    assert rc == 0, text
    assert c["connection"]["status"] == "ok"  # it works, unverified
    v = c["tls-verify"]
    assert v["status"] == "warn" and "DOCKER_TLS is set without DOCKER_TLS_VERIFY" in v["detail"]
    assert "ddctl and docker-py encrypt but do not verify the daemon" in v["detail"]
    assert "export DOCKER_TLS_VERIFY=1" in v["hint"]
    assert c["transport"]["status"] == "ok" and c["key-mode"]["status"] == "ok"
