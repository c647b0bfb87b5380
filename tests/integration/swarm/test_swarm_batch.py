"""`ddctl swarm run` on a real 3-node swarm (tests/integration/swarm/swarm_harness.py).

Tiny pictures, 1 iteration, 1 octave, untrained weights: the point is the distribution.
The test that stops a worker's dockerd runs last (the node stays down).
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

from image_fixtures import IMAGE_TAG
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
FAST = ["--iterations", "1", "--octaves", "1", "--max-size", "96", "--cpus", "1", "--memory", "1g"]


def pictures(folder, n, size=(80, 60)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", size, ((i * 20) % 256, 100, 200 - i)).save(folder / f"pic{i:02d}.png")
    return folder


def ddctl(swarm, *args, **popen):
    env = dict(os.environ, DOCKER_HOST=swarm.manager.host, PYTHONPATH=REPO)
    env.pop("DOCKER_CONTEXT", None)
    cmd = [sys.executable, "-m", "ddctl", "swarm", "run", *args]
    if popen:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


def manifest(out):
    with open(out / "manifest.jsonl") as f:
        return [json.loads(line) for line in f]


def batch_things(swarm, settle=20):
    """Names of what batches left on the manager (polled a little: removal is asynchronous)."""
    c = swarm.manager.client
    f = {"label": "io.ddctl.swarm.batch"}
    end = time.monotonic() + settle
    while True:
        left = [s["Spec"]["Name"] for s in c.api.services(filters=f)]
        left += [n["Name"] for n in c.api.networks(filters=f)]
        left += [v["Name"] for v in c.api.volumes(filters=f)["Volumes"] or []]
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.5)


def first_dream_task(swarm, found, stop):
    """Poll every node for a running dream task's container; keep its inspect and its networks'."""
    while not stop.is_set() and not found:
        for node in swarm.nodes:
            try:
                running = node.client.api.containers(filters={"label": "io.ddctl.swarm.batch"})
                for c in running:
                    if c["Labels"].get("com.docker.swarm.service.name", "").startswith("ddctl-dream-"):
                        info = node.client.api.inspect_container(c["Id"])
                        nets = {
                            n: node.client.api.inspect_network(n) for n in info["NetworkSettings"]["Networks"]
                        }
                        found.append((info, nets))
                        return
            except Exception:  # the container ended between the listing and the inspect
                pass
        time.sleep(0.1)


def test_twelve_pictures_come_back_whole_from_several_nodes(swarm_with_images, tmp_path):
    src = pictures(tmp_path / "in", 12)
    out = tmp_path / "out"
    found: list = []
    stop = threading.Event()
    watcher = threading.Thread(target=first_dream_task, args=(swarm_with_images, found, stop), daemon=True)
    watcher.start()
    try:
        r = ddctl(swarm_with_images, str(src), "-o", str(out), "--image", IMAGE_TAG, *FAST)
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert r.returncode == 0, r.stderr
    # a dream task is locked down like a local dream, its one network the batch's internal one
    assert found, "no dream task was seen running on any node"
    info, nets = found[0]
    host, config = info["HostConfig"], info["Config"]
    assert host["CapDrop"] == ["ALL"] and host["ReadonlyRootfs"] is True
    # --cpus 1: swarm writes a CPU limit as a CFS quota over its period (or NanoCpus)
    cpus = host["NanoCpus"] / 1e9 or (host["CpuQuota"] / host["CpuPeriod"] if host["CpuPeriod"] else 0)
    assert host["PidsLimit"] > 0 and host["Memory"] == 1024**3 and cpus == 1, host
    assert config["User"].split(":")[0] not in ("", "0", "root")
    ((name, network),) = nets.items()  # one network, seen from the node that ran the task
    assert name.startswith("ddctl-net-") and network["Internal"] is True and network["Driver"] == "overlay"
    rows = manifest(out)
    assert len(rows) == 12
    assert sorted(os.path.basename(x["source"]) for x in rows) == [f"pic{i:02d}.png" for i in range(12)]
    assert {x["status"] for x in rows} == {"done"}
    for x in rows:
        with Image.open(out / x["output"]) as im:
            im.load()
            assert im.size == (80, 60)
        assert isinstance(x["seed"], int)
    assert len({x["node"] for x in rows}) >= 2, rows
    assert len(r.stdout.split()) == 12
    assert batch_things(swarm_with_images) == []


def test_a_broken_picture_is_reported_and_the_rest_complete(swarm_with_images, tmp_path):
    src = pictures(tmp_path / "in", 3)
    (src / "broken.png").write_bytes((src / "pic00.png").read_bytes()[:40])
    out = tmp_path / "out"
    r = ddctl(swarm_with_images, str(src), "-o", str(out), "--image", IMAGE_TAG, *FAST)
    assert r.returncode == 1
    rows = {os.path.basename(x["source"]): x for x in manifest(out)}
    assert rows["broken.png"]["status"] == "failed" and rows["broken.png"]["error"]
    assert "broken.png" in r.stderr
    assert [rows[f"pic{i:02d}.png"]["status"] for i in range(3)] == ["done"] * 3
    assert "Traceback" not in r.stderr
    assert batch_things(swarm_with_images) == []


def start_and_wait_for_tasks(swarm, tmp_path, n=4):
    """A batch running in a subprocess, once its dream service exists."""
    src = pictures(tmp_path / "in", n)
    proc = ddctl(
        swarm,
        str(src),
        "-o",
        str(tmp_path / "out"),
        "--image",
        IMAGE_TAG,
        *FAST,
        popen=True,
    )
    end = time.monotonic() + 300
    while time.monotonic() < end and proc.poll() is None:
        if swarm.manager.client.api.services(filters={"name": "ddctl-dream"}):
            return proc
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the batch never started its dream service: " + proc.communicate()[1])


def doctor(swarm, *args, node=None):
    env = dict(os.environ, DOCKER_HOST=(node or swarm.manager).host, PYTHONPATH=REPO)
    env.pop("DOCKER_CONTEXT", None)
    r = subprocess.run(
        [sys.executable, "-m", "ddctl", "doctor", "--json", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    doc = json.loads(r.stdout)
    return {c["name"]: c for c in doc["checks"]}, doc


def test_ctrl_c_removes_the_services_and_networks_it_made(swarm_with_images, tmp_path):
    proc = start_and_wait_for_tasks(swarm_with_images, tmp_path)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert batch_things(swarm_with_images) == []


def test_doctor_knows_the_swarm_and_fixes_what_a_killed_batch_left(swarm_with_images, tmp_path):
    s = swarm_with_images
    worker, _ = doctor(s, node=s.nodes[1])
    assert worker["swarm"]["status"] == "warn"
    assert "worker" in worker["swarm"]["detail"] and "10.77.0.1" in worker["swarm"]["hint"]

    proc = start_and_wait_for_tasks(s, tmp_path)
    proc.kill()  # SIGKILL: no clean-up
    proc.communicate()
    assert batch_things(s, settle=0) != []
    checks, _ = doctor(s)
    assert checks["swarm"]["status"] == "ok"
    assert "manager of 3 nodes (3 ready)" in checks["swarm"]["detail"]
    assert "registry service present" in checks["swarm"]["detail"]
    assert checks["swarm-leftovers"]["status"] == "warn"
    assert "ddctl-dream-" in checks["swarm-leftovers"]["detail"]
    # A worker pulling the image when the batch was killed stops its task only once the pull
    # ends, and the network stays in use until then: the fix says so; run again, it finishes.
    end = time.monotonic() + 400
    while True:
        _, fixed = doctor(s, "--fix")
        fix = [f for f in fixed["fixes"] if f["check"] == "swarm-leftovers"]
        assert fix, fixed["fixes"]
        if fix[0]["ok"] or time.monotonic() > end:
            break
        assert "again in a minute" in fix[0]["message"]
    assert fix[0]["ok"], fix
    assert batch_things(s) == []
    checks, _ = doctor(s)
    assert checks["swarm-leftovers"]["status"] == "ok"


def test_a_worker_stopped_mid_batch_and_every_picture_once(swarm_with_images, tmp_path):
    s = swarm_with_images
    src = pictures(tmp_path / "in", 6)
    out = tmp_path / "out"
    proc = ddctl(s, str(src), "-o", str(out), "--image", IMAGE_TAG, *FAST, popen=True)
    victim = s.nodes[2]
    victim_id = victim.client.info()["Swarm"]["NodeID"]
    stopped = threading.Event()
    # Stop node3's dockerd as soon as it runs a task of the batch.
    end = time.monotonic() + 600
    while time.monotonic() < end and proc.poll() is None:
        tasks = s.manager.client.api.tasks(filters={"node": victim_id})  # a job's tasks desire "complete"
        if any(t["Status"]["State"] == "running" and "DDCTL_ROUND" in str(t) for t in tasks):  # a dream task
            victim.stop()
            stopped.set()
            break
        time.sleep(0.2)
    stdout, stderr = proc.communicate(timeout=900)
    assert stopped.is_set(), "node3 never ran a task: " + stderr
    assert proc.returncode == 0, stderr
    rows = manifest(out)
    assert sorted(os.path.basename(x["source"]) for x in rows) == [f"pic{i:02d}.png" for i in range(6)]
    assert {x["status"] for x in rows} == {"done"}
    pngs = [p for p in os.listdir(out) if p.endswith(".png")]
    assert len(pngs) == 6, pngs
    assert batch_things(s) == []
