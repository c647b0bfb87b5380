"""Issue 9 on the real daemon: the dream container imports only its own code and runs
locked down. Everything created carries the session's io.ddctl.test label and is removed."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from dockertest import TEST_LABEL, TEST_LABEL_FILTER, TEST_LABELS_ENV
from dreamcli import StderrReader, interrupt_after, popen
from image_fixtures import REPO
from PIL import Image

PLANTED = "planted code ran"


def plant(folder):
    """An engine/ package and a numpy.py in the output folder that leave a mark if imported."""
    (folder / "engine").mkdir()
    mark = "open('/images/PWNED-%s', 'w').write('" + PLANTED + "')\n"
    (folder / "engine" / "__init__.py").write_text(mark % "engine")
    (folder / "numpy.py").write_text(mark % "numpy")
    rng = np.random.RandomState(0)
    Image.fromarray(rng.randint(0, 256, (96, 128, 3), dtype=np.uint8)).save(str(folder / "in.png"))
    for p in [folder, folder / "engine"]:
        os.chmod(str(p), 0o777)


@pytest.mark.parametrize("user,workdir", [("0:0", "/images"), ("1000:1000", None), (None, "/images")])
def test_the_image_never_imports_from_the_output_folder(docker_client, dream_image, tmp_path, user, workdir):
    """Even run by hand as root with the output folder as working folder (the old layout)."""
    out = tmp_path / "out"
    out.mkdir()
    plant(out)
    container = docker_client.containers.create(
        dream_image,
        command=["--progress", "json", "--", "in.png", "inception_3b/output", "1", "1"],
        volumes={str(out): {"bind": "/images", "mode": "rw"}},
        working_dir=workdir,
        user=user,
        labels=dict(TEST_LABEL),
        network_disabled=True,
        environment={"PYTHONPATH": "/images"},  # ignored by the isolated Python
    )
    try:
        container.start()
        code = container.wait(timeout=600)["StatusCode"]
        logs = container.logs().decode("utf-8", "replace")
    finally:
        container.remove(force=True)
    assert code == 0, logs
    events = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert events[-1]["event"] == "done"
    assert not list(out.glob("PWNED*"))


def test_a_weights_url_secret_is_not_in_labels_nor_history(docker_client, dream_image, http_server):
    """--weights-url with user:password and ?token= : the image's label and `docker history`
    carry the URL without them (the download runs in a stage the image does not descend from)."""
    import hashlib

    from image_fixtures import copy_from_image

    from ddctl.build import build_image
    from ddctl.image import weights_buildargs

    data = copy_from_image(docker_client, dream_image, "/opt/ddctl/model/bvlc_googlenet.caffemodel")

    server = http_server({"/w.caffemodel?token=t0k3nSECRET": data})
    port = server.url.rsplit(":", 1)[1]
    url = f"http://alice:pa55w0rdX@127.0.0.1:{port}/w.caffemodel?token=t0k3nSECRET"
    tag = "ddctl/deepdream:test-sec-secret"
    try:
        weights = weights_buildargs("download", url, hashlib.sha1(data).hexdigest())
        summary = build_image(docker_client, tag=tag, weights=weights, labels=TEST_LABEL)
        image = docker_client.images.get(tag)
        source = image.labels["io.ddctl.weights.source"]
        assert source == f"http://***@127.0.0.1:{port}/w.caffemodel?token=***"
        history = json.dumps(image.history()) + json.dumps(image.attrs)
        assert "pa55w0rdX" not in history and "t0k3nSECRET" not in history
        assert summary.weights_sha1 == hashlib.sha1(data).hexdigest()
    finally:
        try:
            docker_client.images.remove(tag, force=True)
        except Exception:
            pass


# -----------------------------------------------------------------------------
# through ddctl: the dream container's lock-down, planted code, kill -9


def ddctl_env(**extra):
    env = dict(os.environ, PYTHONPATH=REPO, DDCTL_LABELS=TEST_LABELS_ENV, **extra)
    env.pop("DDCTL_TRANSFER", None)
    return env


def run_containers(docker_client):
    return docker_client.containers.list(all=True, filters={"label": ["io.ddctl.run", TEST_LABEL_FILTER]})


def big_picture(path, w=640, h=480):
    rng = np.random.RandomState(1)
    Image.fromarray(rng.randint(0, 256, (h, w, 3), dtype=np.uint8)).save(str(path))


@pytest.mark.parametrize("caller", ["this process", "uid 4242"])
def test_a_dream_through_ddctl_ignores_planted_code_and_is_locked_down(
    docker_client, dream_image, tmp_path, caller, monkeypatch
):
    """As root (the engine then runs as uid 1000, files copied out) and as a normal user
    (uid 4242: bind mount, the engine as 4242): the dream works, the planted engine/ and
    numpy.py do not run, and the container's inspect shows the lock-down."""
    from ddctl import containers
    from ddctl.client import make_client, resolve_endpoint
    from ddctl.run import dream as run_dream
    from ddctl.run import transfer
    from ddctl.run.options import DreamOptions

    out = tmp_path / "out"
    out.mkdir()
    plant(out)
    if caller == "uid 4242":
        monkeypatch.setattr(containers, "invoking_user", lambda: (4242, 4242))
        monkeypatch.setattr(transfer, "runs_as_root", lambda: False)
    monkeypatch.setenv("DDCTL_LABELS", TEST_LABELS_ENV)
    seen = {}

    def on_event(ev):
        if ev.kind == "container" and "inspect" not in seen:
            seen["inspect"] = docker_client.api.inspect_container(ev.data["id"])

    ep = resolve_endpoint()
    client = make_client(ep)
    job = run_dream.prepare(
        str(out / "in.png"), str(tmp_path), DreamOptions("inception_3b/output", 1, 1), str(out)
    )
    result = run_dream.dream(client, job, ep, image=dream_image, on_event=on_event)
    assert os.path.isfile(result.path)
    assert not list(out.glob("PWNED*"))
    info = seen["inspect"]
    host, config = info["HostConfig"], info["Config"]
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
    assert host["ReadonlyRootfs"] is True and host["PidsLimit"] > 0 and host["Memory"] > 0
    assert host["NetworkMode"] == "none" and config["OpenStdin"] and config["StdinOnce"]
    uid = config["User"].split(":")[0]
    assert uid not in ("", "0", "root")
    assert uid == ("4242" if caller == "uid 4242" else str(os.getuid() or 1000))
    if os.getuid() == 0 and caller == "this process":
        assert result.transfer == "copy" and os.stat(result.path).st_uid == 0  # the caller's
    if caller == "uid 4242":
        assert result.transfer == "mount" and os.stat(result.path).st_uid == 4242
    assert not run_containers(docker_client)


def test_layers_and_helper_containers_are_locked_down_too(docker_client, dream_image):
    from ddctl import containers

    settings = containers.engine_settings("layers", "x", ["--list-layers"], client=docker_client)
    assert settings["cap_drop"] == ["ALL"] and settings["read_only"] and settings["user"].split(":")[0] != "0"
    code, out, err = containers.run_to_completion(
        docker_client, dream_image, **dict(settings, labels=TEST_LABEL)
    )
    assert code == 0 and '"layers"' in out, err


def test_kill_9_of_ddctl_leaves_no_dream_behind(docker_client, dream_image, tmp_path):
    """kill -9 mid-dream: within 10 s no io.ddctl.run container remains (the watcher removes
    it; the engine also stops when its attached stdin closes), and the next command
    removes the temp folder the killed run left and reports nothing else left."""
    big_picture(tmp_path / "big.png")
    out = tmp_path / "out"
    p = popen(
        ["run", str(tmp_path / "big.png"), "inception_4c/output", "30", "3", "--image", dream_image]
        + ["-o", str(out)],
        ddctl_env(),
    )
    try:
        StderrReader(p).wait_for("step ", timeout=600)  # a real deadline
        assert run_containers(docker_client)
        leftover_tmp = [d for d in os.listdir("/tmp") if d.startswith(f"ddctl-{p.pid}-")]
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        gone_by = time.monotonic() + 10
        while run_containers(docker_client) and time.monotonic() < gone_by:
            time.sleep(0.5)
        assert not run_containers(docker_client), "a dream container outlived ddctl by 10 s"
    finally:
        if p.poll() is None:
            p.kill()
    assert leftover_tmp and os.path.isdir("/tmp/" + leftover_tmp[0])  # kill -9 skipped its cleanup
    r = subprocess.run(
        [sys.executable, "-m", "ddctl", "layers", "--image", dream_image],
        env=ddctl_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert "removed 1 leftover temp folder(s)" in r.stderr and not os.path.exists("/tmp/" + leftover_tmp[0])
    assert "leftover dream container" not in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_do_what_ctrl_c_does(docker_client, dream_image, tmp_path, sig):
    big_picture(tmp_path / "big.png")
    args = ["run", str(tmp_path / "big.png"), "inception_4c/output", "30", "3", "--image", dream_image]
    code, _, err = interrupt_after(
        [*args, "-o", str(tmp_path / "out")], "step ", None, timeout=600, sig=sig, env=ddctl_env()
    )
    assert code == 130 and "interrupted" in err and "Traceback" not in err
    assert not run_containers(docker_client)


def test_an_engine_whose_ddctl_vanished_stops_by_itself(docker_client, dream_image, tmp_path):
    """Even without the watcher: the engine exits when the attached stdin closes."""
    from ddctl import containers

    big_picture(tmp_path / "big.png")
    settings = containers.engine_settings(
        "run",
        "t",
        ["--exit-with-stdin", "--", "big.png", "inception_4c/output", "50", "3"],
        TEST_LABEL,
        client=docker_client,
    )
    os.chmod(str(tmp_path), 0o777)
    c = containers.create(
        docker_client,
        dream_image,
        detach=False,
        stdin_open=True,
        volumes={str(tmp_path): {"bind": "/images", "mode": "rw"}},
        **settings,
    )
    try:
        sock = c.attach_socket(params={"stdin": 1, "stream": 1})
        c.start()
        time.sleep(8)
        c.reload()
        assert c.status == "running"
        raw = getattr(sock, "_sock", sock)  # the SDK hands a SocketIO around the socket
        raw.shutdown(socket.SHUT_RDWR)  # what the kernel does when ddctl is killed
        raw.close()
        c.wait(timeout=30)
        c.reload()
        assert c.status == "exited" and c.attrs["State"]["ExitCode"] == 130
    finally:
        c.remove(force=True, v=True)


def test_a_non_dream_image_is_refused_in_one_sentence(docker_client, base_image, tmp_path):
    Image.new("RGB", (64, 48)).save(str(tmp_path / "x.png"))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "ddctl",
            "run",
            str(tmp_path / "x.png"),
            "--image",
            base_image,
            "-o",
            str(tmp_path),
        ],
        env=ddctl_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        r.returncode == 2 and "is not a ddctl dream image" in r.stderr and "permission denied" not in r.stderr
    )


def test_doctor_reports_and_fixes_a_leftover(docker_client, dream_image, tmp_path):
    """A container whose owner process is gone: the doctor warns, --fix removes it."""
    from ddctl import containers

    dead = subprocess.Popen(["true"])
    dead.wait()
    settings = containers.engine_settings(
        "run", "leftover", ["--list-layers"], TEST_LABEL, client=docker_client
    )
    settings["labels"][containers.OWNER_LABEL] = f"{socket.gethostname()}:{dead.pid}:1"
    c = containers.create(docker_client, dream_image, **settings)
    try:
        r = subprocess.run(
            [sys.executable, "-m", "ddctl", "doctor", "--json"],
            env=ddctl_env(),
            capture_output=True,
            text=True,
        )
        report = json.loads(r.stdout)
        (row,) = [x for x in report["checks"] if x["name"] == "leftovers"]
        assert row["status"] == "warn" and c.name in row["detail"]
        r = subprocess.run(
            [sys.executable, "-m", "ddctl", "doctor", "--fix"],
            env=ddctl_env(),
            capture_output=True,
            text=True,
        )
        assert "removed 1 leftover dream container" in r.stdout + r.stderr
        assert not [x for x in run_containers(docker_client) if x.id == c.id]
    finally:
        try:
            c.remove(force=True, v=True)
        except Exception:
            pass
