"""Speed-up of a `ddctl swarm run` batch from 1 to 3 nodes, and its fixed overhead over a
local `ddctl run`, on a real 3-node swarm made on this machine (root; the test harness).

Each node stands for a separate machine by giving each task a CPU limit (--cpus, 0.6 by
default) and at most one task per node at a time: 1 node runs the pictures one after the
other, 3 nodes three at a time. Runs alternate (1 node, 3 nodes, 1 node, ...) so that
the machine's other load falls on both. The first batch (registry start, image push and
pulls) is timed on its own. Prints the figures.

    sudo python3 bench/swarm_speedup.py [--image ddctl/deepdream:test] [--pictures 6] [--rounds 1]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [REPO, os.path.join(REPO, "tests", "integration", "swarm")]

import docker  # noqa: E402
from PIL import Image  # noqa: E402
from swarm_harness import Swarm, available  # noqa: E402

from ddctl.swarm.registry import REGISTRY_IMAGE, ensure_registry_image  # noqa: E402


def pictures(folder, n, size):
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        Image.effect_noise(size, 40 + i).convert("RGB").save(os.path.join(folder, f"b{i:02d}.png"))
    return folder


def timed(cmd, env):
    t = time.monotonic()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return time.monotonic() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", default=os.environ.get("DDCTL_TEST_IMAGE", "ddctl/deepdream:test"))
    ap.add_argument("--pictures", type=int, default=6)
    ap.add_argument("--size", default="240x180")
    ap.add_argument("--cpus", type=float, default=0.6)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--octaves", type=int, default=2)
    a = ap.parse_args()
    why = available()
    if why:
        raise SystemExit(why)
    w, h = (int(x) for x in a.size.split("x"))
    main_client = docker.from_env(timeout=900)
    ensure_registry_image(main_client, print, labels={"io.ddctl.bench": "1"})
    tmp = tempfile.mkdtemp(prefix="ddctl-bench-")
    src = pictures(os.path.join(tmp, "in"), a.pictures, (w, h))
    one = pictures(os.path.join(tmp, "one"), 1, (w, h))
    its, octs = str(a.iterations), str(a.octaves)
    dream = ["--iterations", its, "--octaves", octs, "--max-size", "0", "--image", a.image]
    with Swarm() as s:
        print(f"swarm of 3 up in {s.timings['up']:.1f} s")
        t = time.monotonic()
        s.load_image(main_client, REGISTRY_IMAGE)
        s.load_image(main_client, a.image, [s.manager])
        print(
            f"images loaded (registry image on 3 nodes, dream image on the manager) in {time.monotonic() - t:.0f} s"
        )
        env = dict(os.environ, DOCKER_HOST=s.manager.host, PYTHONPATH=REPO)
        env.pop("DOCKER_CONTEXT", None)
        base = [sys.executable, "-m", "ddctl", "swarm", "run"]
        per = ["--cpus", str(a.cpus), "--per-node", "1"]
        n = 0

        def out():
            nonlocal n
            n += 1
            return ["-o", os.path.join(tmp, f"out{n}")]

        first = timed(base + [one] + out() + dream + ["--cpus", "2"], env)
        print(f"first swarm batch of 1 picture (registry start, push, pulls on demand): {first:.1f} s")
        workers = [n.client.info()["Swarm"]["NodeID"] for n in s.workers]

        def availability(value):
            for nid in workers:
                node = s.manager.client.nodes.get(nid)
                spec = dict(node.attrs["Spec"], Availability=value)
                node.update(spec)

        # Warm the workers (pull) so that the timed runs compare dreaming, not pulling.
        timed(base + [src] + out() + dream + per + ["--concurrency", "3"], env)
        times = {1: [], 3: []}
        for _ in range(a.rounds):
            for nodes in (1, 3):
                availability("drain" if nodes == 1 else "active")
                conc = ["--concurrency", str(nodes)]
                times[nodes].append(timed(base + [src] + out() + dream + per + conc, env))
                print(
                    f"{a.pictures} pictures on {nodes} node(s), {a.cpus} CPU per task: {times[nodes][-1]:.1f} s"
                )
        availability("active")
        best1, best3 = min(times[1]), min(times[3])
        print(
            f"speed-up 1 -> 3 nodes: {best1 / best3:.2f}x (best of {a.rounds}: {best1:.1f} s / {best3:.1f} s)"
        )

        # Fixed overhead: one picture through the swarm (warm) against a local `ddctl run`.
        local_env = dict(os.environ, PYTHONPATH=REPO)
        local, remote = [], []
        for _ in range(max(2, a.rounds)):
            pic = os.path.join(one, "b00.png")
            local.append(
                timed(
                    [sys.executable, "-m", "ddctl", "run", pic, "inception_4c/output", its, octs]
                    + ["-o", os.path.join(tmp, "local"), "--no-build", "--max-size", "0", "--image", a.image],
                    local_env,
                )
            )
            remote.append(timed(base + [one] + out() + dream + ["--cpus", "2"], env))
        lo, re = min(local), min(remote)
        print(
            f"one picture: local `ddctl run` {lo:.1f} s, `ddctl swarm run` {re:.1f} s: "
            f"fixed overhead {re - lo:.1f} s (first batch, with the image push: {first - lo:.1f} s)"
        )
    print(f"teardown {s.timings.get('down', 0):.1f} s; leftovers: {s.leftovers() or 'none'}")


if __name__ == "__main__":
    main()
