"""`ddctl doctor` against real dockerd processes started here (never fakes).

Two daemons are shared by the whole module:
  plain: unix socket + plain tcp on 127.0.0.1:PLAIN
  tls:   unix socket + TLS (--tlsverify) on 127.0.0.1:TLS and 127.0.0.2:TLS, with a server
         certificate for 127.0.0.2 only (boot2docker's "eth1 came up late", on loopback)
Every scenario runs the CLI as a subprocess (`python -m ddctl doctor --json` and the text
form) with a clean environment, and checks the diagnosis, the fix, the exit code and that
the text fits one screen.
"""

import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile

import docker
import pytest
from dockertest import TEST_LABEL
from doctor_daemons import ROOT, Dockerd, clean_env, doctor, doctor_lab, free_port, tls_flags

TINY = "ddctl-test/doctor-sh:latest"


@pytest.fixture(scope="module")
def lab():
    def daemons(lab):
        lab.plain_port, lab.tls_port = free_port(), free_port()
        lab.plain = Dockerd(lab.base, "p", [f"tcp://127.0.0.1:{lab.plain_port}"], ["--tls=false"])
        lab.tls = Dockerd(
            lab.base,
            "t",
            [f"tcp://127.0.0.1:{lab.tls_port}", f"tcp://127.0.0.2:{lab.tls_port}"],
            tls_flags(lab.pki["server"]),
        )
        return [lab.plain, lab.tls]

    with doctor_lab("ddd-", daemons) as lab:
        yield lab


def test_a_healthy_unix_socket_is_all_green(lab):
    rc, c, text = doctor(lab, DOCKER_HOST=f"unix://{lab.plain.sock}")
    assert rc == 0, text
    assert c["endpoint"]["status"] == "ok" and "from DOCKER_HOST" in c["endpoint"]["detail"]
    assert c["socket"]["status"] == "ok" and c["connection"]["status"] == "ok"
    assert c["daemon"]["status"] == "ok" and c["daemon"]["data"]["root_dir"] == lab.plain.data_root
    client = docker.DockerClient(base_url=f"unix://{lab.plain.sock}")
    version = client.version()["Version"]
    client.close()
    assert f"Engine {version}, API " in c["daemon"]["detail"] and c["daemon"]["data"]["version"] == version
    assert c["image"]["status"] == "warn" and "not built" in c["image"]["detail"]
    # No image on this daemon: enough room for one is ok, too little a failure.
    free = shutil.disk_usage(lab.plain.data_root).free
    assert c["disk"]["status"] == ("ok" if free >= 1.5e9 else "fail")
    assert c["disk"]["data"]["root_dir"] == lab.plain.data_root
    assert abs(c["disk"]["data"]["free_bytes"] - free) < 200e6
    assert "[✓] Socket" in text and "0 failed" in text.splitlines()[-1]


def test_a_missing_socket_points_at_the_engine_that_answers(lab):
    rd = os.path.join(lab.home, ".rd")
    os.makedirs(rd, exist_ok=True)
    link = os.path.join(rd, "docker.sock")
    os.symlink(lab.tls.sock, link)  # Rancher Desktop's socket, served by the tls daemon
    try:
        missing = os.path.join(lab.base, "missing.sock")
        rc, c, text = doctor(lab, DOCKER_HOST=f"unix://{missing}")
    finally:
        os.unlink(link)
    assert rc == 1
    s = c["socket"]
    assert s["status"] == "fail" and f"{missing} does not exist" in s["detail"]
    assert "Is the docker daemon running?" in s["data"]["user_sees"]
    assert f"Rancher Desktop answers at unix://{link}" in s["hint"]
    assert f"export DOCKER_HOST=unix://{link}" in s["hint"]
    assert c["connection"]["status"] == "skipped" and "Socket" in c["connection"]["detail"]
    assert "[✗] Socket" in text and "1 failed" in text


def test_a_dangling_symlink_is_named(lab):
    link = os.path.join(lab.base, "dangling.sock")
    os.symlink(os.path.join(lab.base, "gone", "docker.sock"), link)
    try:
        rc, c, _ = doctor(lab, DOCKER_HOST=f"unix://{link}")
    finally:
        os.unlink(link)
    assert rc == 1 and "dangling symlink" in c["socket"]["detail"]


def test_a_stale_socket_is_told_from_a_missing_one(lab):
    path = os.path.join(lab.base, "stale.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()  # the file stays, nobody listens
    try:
        rc, c, text = doctor(lab, DOCKER_HOST=f"unix://{path}")
    finally:
        os.unlink(path)
    assert rc == 1
    assert c["socket"]["status"] == "fail" and "stale: nobody listens" in c["socket"]["detail"]
    assert "start the daemon" in c["socket"]["hint"] or "answers at" in c["socket"]["hint"]


def test_permission_denied_names_the_group_and_the_fix(lab):
    st = os.stat(lab.plain.sock)
    assert st.st_mode & 0o007 == 0  # 0660: nobody is neither owner nor group
    rc, c, text = doctor(lab, user="nobody", DOCKER_HOST=f"unix://{lab.plain.sock}")
    assert rc == 1
    s = c["socket"]
    assert s["status"] == "fail" and "permission denied" in s["detail"]
    assert "nobody is not in that group" in s["detail"]
    assert "usermod -aG" in s["hint"] and "nobody" in s["hint"] and "chmod 666" in s["hint"]


def test_plain_http_to_a_tls_port(lab):
    rc, c, text = doctor(lab, DOCKER_HOST=f"tcp://127.0.0.2:{lab.tls_port}")
    assert rc == 1
    p = c["protocol"]
    assert p["status"] == "fail" and "speaks TLS but ddctl would speak plain HTTP" in p["detail"]
    assert "Client sent an HTTP request to an HTTPS server" in p["detail"]
    assert "DOCKER_TLS_VERIFY=1" in p["hint"]


def test_tls_to_a_plain_port(lab):
    rc, c, text = doctor(
        lab,
        DOCKER_HOST=f"tcp://127.0.0.1:{lab.plain_port}",
        DOCKER_TLS_VERIFY="1",
        DOCKER_CERT_PATH=lab.pki["good"],
    )
    assert rc == 1
    p = c["protocol"]
    assert p["status"] == "fail" and "speaks plain HTTP but TLS is on" in p["detail"]
    assert "unset DOCKER_TLS_VERIFY DOCKER_CERT_PATH" in p["hint"]


def test_a_good_tls_endpoint_is_green(lab):
    rc, c, text = doctor(
        lab,
        DOCKER_HOST=f"tcp://127.0.0.2:{lab.tls_port}",
        DOCKER_TLS_VERIFY="1",
        DOCKER_CERT_PATH=lab.pki["good"],
    )
    assert rc == 0, text
    assert c["tls-files"]["status"] == "ok" and c["server-cert"]["status"] == "ok"
    assert c["server-cert"]["data"]["san_ips"] == ["127.0.0.2"]
    assert c["daemon"]["data"]["root_dir"] == lab.tls.data_root


def test_a_ca_bundle_in_the_environment_is_named_and_ignored(lab):
    rc, c, text = doctor(
        lab,
        DOCKER_HOST=f"tcp://127.0.0.2:{lab.tls_port}",
        DOCKER_TLS_VERIFY="1",
        DOCKER_CERT_PATH=lab.pki["good"],
        REQUESTS_CA_BUNDLE="/etc/ssl/certs/ca-certificates.crt",
    )
    assert rc == 0, text
    t = c["tls-files"]
    assert t["status"] == "warn" and "REQUESTS_CA_BUNDLE is set" in t["detail"]
    assert c["connection"]["status"] == "ok"  # ddctl's own client still verifies with ca.pem


def test_the_server_certificate_issued_for_another_address(lab):
    rc, c, text = doctor(
        lab,
        DOCKER_HOST=f"tcp://127.0.0.1:{lab.tls_port}",
        DOCKER_TLS_VERIFY="1",
        DOCKER_CERT_PATH=lab.pki["good"],
    )
    assert rc == 1
    s = c["server-cert"]
    assert s["status"] == "fail"
    assert "certificate is valid for 127.0.0.2, not 127.0.0.1" in s["detail"]
    assert f"export DOCKER_HOST=tcp://127.0.0.2:{lab.tls_port}" in s["hint"]
    assert "docker-machine regenerate-certs" in s["hint"] and "wait4eth1" in s["hint"]
    assert c["tls-files"]["status"] == "ok"  # the client side is fine: it is the server's cert
    assert c["connection"]["status"] == "fail"  # and the SDK indeed fails
    assert "valid for 127.0.0.2, not 127.0.0.1" in text


def test_an_expired_client_certificate(lab):
    rc, c, text = doctor(
        lab,
        DOCKER_HOST=f"tcp://127.0.0.2:{lab.tls_port}",
        DOCKER_TLS_VERIFY="1",
        DOCKER_CERT_PATH=lab.pki["expired"],
    )
    assert rc == 1
    t = c["tls-files"]
    assert t["status"] == "fail" and "cert.pem expired on" in t["detail"]
    assert "regenerate-certs" in t["hint"]
    assert c["server-cert"]["status"] == "ok"


def write_context(cfg, name, host):
    meta = os.path.join(cfg, "contexts", "meta", hashlib.sha256(name.encode()).hexdigest())
    os.makedirs(meta, exist_ok=True)
    with open(os.path.join(meta, "meta.json"), "w") as f:
        json.dump(
            {"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}}, f
        )


@pytest.fixture
def cfg(lab, tmp_path):
    d = tmp_path / "docker-config"
    d.mkdir()
    write_context(str(d), "lab", f"unix://{lab.plain.sock}")
    return d


def set_current(cfg, name):
    (cfg / "config.json").write_text(json.dumps({"auths": {}, "currentContext": name}))


def test_the_current_context_reaches_its_daemon(lab, cfg):
    set_current(cfg, "lab")
    rc, c, text = doctor(lab, DOCKER_CONFIG=str(cfg))
    assert rc == 0, text
    assert (
        "context 'lab'" in c["endpoint"]["detail"]
        and c["endpoint"]["data"]["host"] == f"unix://{lab.plain.sock}"
    )
    assert c["daemon"]["data"]["root_dir"] == lab.plain.data_root


def test_docker_host_and_docker_context_conflict(lab, cfg):
    rc, c, text = doctor(
        lab, DOCKER_CONFIG=str(cfg), DOCKER_HOST=f"unix://{lab.tls.sock}", DOCKER_CONTEXT="lab"
    )
    assert rc == 0
    e = c["endpoint"]
    assert e["status"] == "warn" and "DOCKER_CONTEXT=lab is ignored because DOCKER_HOST is set" in e["detail"]
    assert c["daemon"]["data"]["root_dir"] == lab.tls.data_root


def test_a_context_that_does_not_exist(lab, cfg):
    rc, c, text = doctor(lab, DOCKER_CONFIG=str(cfg), DOCKER_CONTEXT="nope")
    assert rc == 1
    e = c["endpoint"]
    assert e["status"] == "fail" and "'nope'" in e["detail"] and "does not exist" in e["detail"]
    assert "unset DOCKER_CONTEXT" in e["hint"]
    assert c["connection"]["status"] == "skipped"


def test_fix_resets_a_current_context_that_does_not_exist(lab, cfg):
    set_current(cfg, "gone")
    rc, c, _ = doctor(lab, DOCKER_CONFIG=str(cfg))
    assert rc == 1 and c["endpoint"]["fix"]
    e = clean_env(lab, DOCKER_CONFIG=str(cfg))
    r = subprocess.run(
        [sys.executable, "-m", "ddctl", "doctor", "--fix"],
        env=e,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "fixed" in r.stdout and "currentContext='gone'" in r.stdout, r.stdout + r.stderr
    cfgdoc = json.loads((cfg / "config.json").read_text())
    assert "currentContext" not in cfgdoc and cfgdoc["auths"] == {}  # other keys kept


# ------------------------------------------------------------------ doctor env in a real bash
def bash(lab, script, **env):
    e = clean_env(lab, **env)
    e["PATH"] = os.path.dirname(sys.executable) + os.pathsep + e.get("PATH", "")
    return subprocess.run(
        ["bash", "-c", script], env=e, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


PING = "python -c 'import docker; c = docker.from_env(); c.ping(); print(c.info()[\"DockerRootDir\"])'"


def test_eval_doctor_env_reaches_the_current_context(lab, cfg):
    set_current(cfg, "lab")  # docker-py 7.1 ignores contexts: only the exported DOCKER_HOST gets there
    r = bash(lab, f'eval "$(python -m ddctl doctor env --shell bash)" && {PING}', DOCKER_CONFIG=str(cfg))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == lab.plain.data_root
    # The hint to eval is part of the output, as a comment (docker-machine's form), once.
    shown = bash(lab, "python -m ddctl doctor env --shell bash", DOCKER_CONFIG=str(cfg))
    hint = 'eval "$(ddctl doctor env --shell bash)"'
    assert (shown.stdout + shown.stderr).count(hint) == 1, shown.stdout + shown.stderr
    assert f"# {hint}" in shown.stdout.splitlines()


def test_eval_doctor_env_reaches_the_engine_found(lab):
    rd = os.path.join(lab.home, ".rd")
    os.makedirs(rd, exist_ok=True)
    link = os.path.join(rd, "docker.sock")
    os.symlink(lab.tls.sock, link)
    try:
        r = bash(
            lab,
            f'eval "$(python -m ddctl doctor env --shell bash)" && {PING}',
            DOCKER_HOST=f"unix://{lab.base}/missing.sock",
            DOCKER_TLS_VERIFY="1",
        )
    finally:
        os.unlink(link)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == lab.tls.data_root


def test_eval_doctor_env_carries_tls_settings(lab):
    e = clean_env(
        lab,
        DOCKER_HOST=f"tcp://127.0.0.2:{lab.tls_port}",
        DOCKER_TLS_VERIFY="1",
        DOCKER_CERT_PATH=lab.pki["good"],
    )
    out = subprocess.run(
        [sys.executable, "-m", "ddctl", "doctor", "env", "--shell", "bash"],
        env=e,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert f'export DOCKER_CERT_PATH="{lab.pki["good"]}"' in out.stdout
    r = bash(lab, out.stdout + "\n" + PING)  # a fresh shell with no DOCKER_* of its own
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == lab.tls.data_root


# ------------------------------------------------------------------ boot2docker profile repair
def tiny_image_tar():
    """A tiny image made of this host's /bin/sh and sync with their libraries (no registry)."""
    files = {
        os.path.realpath(shutil.which("sh")): "bin/sh",
        os.path.realpath(shutil.which("sync")): "bin/sync",
    }
    for exe in list(files):
        out = subprocess.run(["ldd", exe], capture_output=True, text=True).stdout
        for part in out.split():
            if part.startswith("/") and os.path.exists(part):
                files[os.path.realpath(part)] = part.lstrip("/")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for src, dst in files.items():
            tar.add(src, arcname=dst)
    return buf.getvalue()


@pytest.fixture(scope="module")
def plain_client(lab):
    from ddctl.client import Endpoint, make_client

    client = make_client(Endpoint(host=f"unix://{lab.plain.sock}", source="test"), timeout=60)
    client.api.import_image_from_data(
        tiny_image_tar(),
        repository="ddctl-test/doctor-sh",
        tag="latest",
        changes=[f"LABEL {k}={v}" for k, v in TEST_LABEL.items()],
    )
    yield client
    for ct in client.containers.list(all=True, filters={"label": "io.ddctl.doctor=1"}):
        ct.remove(force=True)
    client.close()


def profile_cmd(lab, *args):
    e = clean_env(lab, DOCKER_HOST=f"unix://{lab.plain.sock}")
    return subprocess.run(
        [sys.executable, "-m", "ddctl", "doctor", "profile", *args],
        env=e,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


MACHINE_PROFILE = """
EXTRA_ARGS='
--label provider=virtualbox

'
CACERT=/var/lib/boot2docker/ca.pem
DOCKER_HOST='-H tcp://0.0.0.0:2376'
DOCKER_STORAGE=aufs
DOCKER_TLS=auto
SERVERKEY=/var/lib/boot2docker/server-key.pem
SERVERCERT=/var/lib/boot2docker/server.pem"""  # no newline at the end, as hand edits leave it


def test_the_profile_repair_keeps_every_line_and_adds_the_wait_once(lab, plain_client):
    folder = os.path.join(lab.base, "b2d")
    os.makedirs(folder)
    path = os.path.join(folder, "profile")
    with open(path, "w") as f:
        f.write(MACHINE_PROFILE)
    before = profile_cmd(lab, "--path", path)
    assert before.returncode == 1 and "does not wait for eth1" in before.stdout
    first = profile_cmd(lab, "--path", path, "--apply")
    assert first.returncode == 0, first.stderr
    assert (
        "Appended" in first.stdout and "restart the VM" in first.stdout and "ddctl doctor env" in first.stdout
    )
    second = profile_cmd(lab, "--path", path, "--apply")
    assert second.returncode == 0 and "already waits for eth1" in second.stdout
    text = open(path).read()
    assert text.startswith(MACHINE_PROFILE + "\n")  # every existing line kept, unchanged
    assert text.count("# >>> ddctl wait4eth1") == 1 and text.count("\nwait4eth1\n") == 1
    after = profile_cmd(lab, "--path", path)
    assert after.returncode == 0 and "waits for eth1" in after.stdout
    assert not plain_client.containers.list(all=True, filters={"label": "io.ddctl.doctor=1"})
    # the appended profile is still valid sh: source it with eth1 "up" (fake ip) in 1 try
    fake = os.path.join(lab.base, "fakebin")
    os.makedirs(fake, exist_ok=True)
    with open(os.path.join(fake, "ip"), "w") as f:
        f.write(
            "#!/bin/sh\necho '3: eth1: <BROADCAST,MULTICAST,UP,LOWER_UP> state UP'\necho '    inet 192.168.59.103/24'\n"
        )
    os.chmod(os.path.join(fake, "ip"), 0o755)
    r = subprocess.run(
        ["sh", "-c", f". {path}; echo CACERT=$CACERT"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": fake + ":/usr/bin:/bin", "WAIT4ETH1_SETTLE": "0"},
    )
    assert r.returncode == 0 and "eth1 is up" in r.stdout and "CACERT=/var/lib/boot2docker/ca.pem" in r.stdout


def test_the_profile_repair_in_a_folder_that_does_not_exist(lab, plain_client):
    r = profile_cmd(lab, "--path", os.path.join(lab.base, "no-such-dir", "profile"), "--apply")
    assert r.returncode != 0 and "does not exist on the daemon's host" in r.stderr
