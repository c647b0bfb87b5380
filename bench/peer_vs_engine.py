"""The engine against its PyTorch peer and the notebook transcription, whole runs, one run.

    bash bench/peer.sh [IMAGE] [-- --repeat 3 --width 1024 --height 576 --profile ...]

Three whole processes dream the same deterministic picture with the same defaults
(inception_4c/output, 10 iterations, 4 octaves, scale 1.4, step 1.5, jitter 32, seed 0):
  engine    the dream image itself: docker run IMAGE PICTURE --seed 0 (what ddctl runs)
  peer      bench/peer_torch.py in bench/.venv: the same algorithm (engine/dream.py) on
            PyTorch's CPU convolutions, untrained torchvision GoogLeNet up to inception4c,
            a host process (as a user runs it). On a busy machine that favours the peer:
            with cgroup v1 all containers share Docker's one cgroup, which weighs as much as
            one host process. --peer-image IMG runs the peer in a container of IMG instead
            (a root of this host's Debian release, e.g. debootstrap --variant=minbase +
            docker import; the venv's Python is mounted read-only at the same paths)
  notebook  the 2015 notebook transcription (tests/unit/notebook_reference.py) on a
            force_backward caffe.Classifier, in the dream image (bench/in_image.py)
They run in turn, the order rotated every round, --repeat rounds; the best time of each is
kept, so all three see the same machine. Times are whole processes, start-up included
(container start, imports, net load, every step, saving the picture). Prints the ratios,
seconds a step at each octave, useful GFLOP/s and its share of the SGEMM peak measured in
the image, the container's memory peak (cgroup) and the peer's peak RSS; --profile adds
where one engine step's time goes, layer by layer. The machine's load average is printed:
on a shared machine compare the ratios, not the seconds.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
VENV_PYTHON = os.path.join(HERE, ".venv", "bin", "python")
LABEL = "io.ddctl.bench=1"
MEMORY = (
    'm=$(cat /sys/fs/cgroup/memory.peak 2>/dev/null || '
    'cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes 2>/dev/null || echo 0); '
    'echo "{\\"event\\": \\"memory\\", \\"container_peak\\": $m}"'
)


def picture(w, h):
    """A deterministic (H,W,3) uint8 RGB picture with smooth areas, edges and texture."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.RandomState(1)
    img = np.stack(
        [
            128 + 90 * np.sin(xx / 37.0) * np.cos(yy / 23.0),
            128 + 90 * np.cos((xx + yy) / 51.0),
            np.where((xx // 64 + yy // 64) % 2 == 0, 200.0, 60.0),
        ],
        axis=-1,
    )
    img += rng.normal(0, 10, img.shape)
    return np.uint8(np.clip(img, 0, 255))


def docker_sh(image, folder, script, args):
    """argv of a locked-down dream container running `sh -c script args` as this user."""
    return [
        "docker",
        "run",
        "--rm",
        "--network",
        "none",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--label",
        LABEL,
        "-u",
        "%d:%d" % (os.getuid(), os.getgid()),
        "-v",
        "%s:/images" % folder,
        "-v",
        "%s:/src:ro" % REPO,
        "--entrypoint",
        "sh",
        image,
        "-c",
        script,
        "sh",
        *args,
    ]


def run(argv):
    """Run one whole process; -> dict(total, events, peak_rss); raises on failure."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate()
    total = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit("bench: %s failed (exit %d):\n%s" % (argv[0], p.returncode, err[-2000:]))
    events = []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
    return dict(total=total, events=events)


def peer_mounts():
    """-v arguments that make the venv's Python visible at the same paths in a container."""
    home = None
    with open(os.path.join(HERE, ".venv", "pyvenv.cfg")) as f:
        for line in f:
            key, _, value = line.partition("=")
            if key.strip() == "home":
                home = value.strip()
    prefix = os.path.dirname(os.path.realpath(home)) if home else sys.base_prefix
    return ["-v", "%s:%s:ro" % (prefix, prefix), "-v", "%s:%s:ro" % (REPO, REPO)]


def docker_peer(image, folder, args):
    """argv of a locked-down container running the peer, memory peak line at the end."""
    return [
        "docker",
        "run",
        "--rm",
        "--network",
        "none",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--label",
        LABEL,
        *peer_mounts(),
        "-v",
        "%s:%s" % (folder, folder),
        image,
        "sh",
        "-c",
        '"$@" && ' + MEMORY,
        "sh",
        VENV_PYTHON,
        *args,
    ]


def run_peer(argv):
    """run() for a host process, with its peak RSS (wait4's rusage)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    total = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit("bench: the peer failed (exit %d):\n%s" % (p.returncode, err[-2000:]))
    events = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    events.append(dict(event="memory", peak_rss=usage.ru_maxrss * 1024))
    return dict(total=total, events=events)


def summary(res):
    """total, steps (done's elapsed), start-up and per-octave [(w, h, first, rest mean)]."""
    ev = res["events"]
    steps = [e for e in ev if e.get("event") == "step"]
    done = [e for e in ev if e.get("event") == "done"]
    mem = [e for e in ev if e.get("event") == "memory"]
    elapsed = done[-1]["elapsed"] if done else steps[-1]["elapsed"]
    octaves, prev = [], 0.0
    for e in steps:
        size = (e["width"], e["height"])
        if not octaves or octaves[-1][0] != size:
            octaves.append((size, []))
        octaves[-1][1].append(e["elapsed"] - prev)
        prev = e["elapsed"]
    per_octave = [(w, h, d[0], sum(d[1:]) / max(len(d) - 1, 1)) for (w, h), d in octaves]
    return dict(
        total=res["total"],
        steps=elapsed,
        startup=res["total"] - elapsed,
        per_octave=per_octave,
        memory=mem[-1] if mem else {},
        done=done[-1] if done else {},
    )


def mib(n):
    return "%.0f MiB" % (n / 2**20) if n else "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image", default="ddctl/deepdream:latest")
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--height", type=int, default=576)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--octaves", type=int, default=4)
    ap.add_argument("--octave-scale", type=float, default=1.4)
    ap.add_argument("--repeat", type=int, default=3, help="rounds (order rotated); best of each kept")
    ap.add_argument("--only", default="engine,peer,notebook", help="comma list of engine,peer,notebook")
    ap.add_argument("--profile", action="store_true", help="also where an engine step's time goes")
    ap.add_argument(
        "--peer-image",
        default="host",
        help="run the peer in a container of this image instead of on the host (see above)",
    )
    ap.add_argument("--json", action="store_true", help="one JSON object at the end")
    a = ap.parse_args()
    layer, peer_layer = "inception_4c/output", "inception4c"
    who = [w for w in ("engine", "peer", "notebook") if w in a.only.split(",")]
    if "peer" in who and not os.path.exists(VENV_PYTHON):
        raise SystemExit("bench: no %s: run bash bench/peer.sh (it makes the venv)" % VENV_PYTHON)
    shape = ["%d" % a.iterations, "%d" % a.octaves, "%g" % a.octave_scale]
    folder = tempfile.mkdtemp(prefix="ddctl-bench-")
    os.chmod(folder, 0o777)
    load_before = os.getloadavg()
    try:
        pic = os.path.join(folder, "bench.png")
        Image.fromarray(picture(a.width, a.height)).save(pic)
        facts = run(
            docker_sh(
                a.image,
                folder,
                'python3 /src/bench/in_image.py "$@"',
                ["facts", str(a.width), str(a.height), layer, *shape],
            )
        )["events"][0]
        commands = {
            "engine": lambda r: run(
                docker_sh(
                    a.image,
                    folder,
                    'python3 -m engine "$@" && ' + MEMORY,
                    [
                        "bench.png",
                        layer,
                        *shape,
                        "--seed",
                        "0",
                        "--progress",
                        "json",
                        "--name",
                        "engine-%d" % r,
                    ],
                )
            ),
            "notebook": lambda r: run(
                docker_sh(
                    a.image,
                    folder,
                    'python3 /src/bench/in_image.py "$@" && ' + MEMORY,
                    ["notebook", "/images/bench.png", "/images/notebook-%d.png" % r, *shape, "0", layer],
                )
            ),
            "peer": lambda r: (run_peer if a.peer_image == "host" else run)(
                ([VENV_PYTHON] if a.peer_image == "host" else docker_peer(a.peer_image, folder, []))
                + [
                    os.path.join(HERE, "peer_torch.py"),
                    pic,
                    os.path.join(folder, "peer-%d.png" % r),
                    "--layer",
                    peer_layer,
                    "--iterations",
                    str(a.iterations),
                    "--octaves",
                    str(a.octaves),
                    "--octave-scale",
                    str(a.octave_scale),
                ]
            ),
        }
        best = {}
        for r in range(a.repeat):
            order = who[r % len(who) :] + who[: r % len(who)]
            for w in order:
                s = summary(commands[w](r))
                print(
                    "round %d %-8s %7.2f s (steps %.2f s)" % (r + 1, w, s["total"], s["steps"]),
                    file=sys.stderr,
                )
                if w not in best or s["total"] < best[w]["total"]:
                    best[w] = s
        prof = None
        if a.profile:
            prof = run(
                docker_sh(
                    a.image,
                    folder,
                    'python3 /src/bench/in_image.py "$@"',
                    ["profile", str(a.width), str(a.height), layer],
                )
            )["events"][0]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    load_after = os.getloadavg()
    flops = sum(o["flops_per_step"] for o in facts["octaves"]) * a.iterations
    report = dict(
        width=a.width,
        height=a.height,
        layer=layer,
        iterations=a.iterations,
        octaves=a.octaves,
        octave_scale=a.octave_scale,
        repeat=a.repeat,
        image=a.image,
        cores=os.cpu_count(),
        load_before=[round(x, 2) for x in load_before],
        load_after=[round(x, 2) for x in load_after],
        useful_gflop=round(flops / 1e9, 1),
        sgemm_gflops=facts["sgemm_gflops"],
        best=best,
        profile=prof,
    )
    if "engine" in best and "peer" in best:
        report["engine_vs_peer"] = round(best["peer"]["total"] / best["engine"]["total"], 3)
        report["engine_vs_peer_steps"] = round(best["peer"]["steps"] / best["engine"]["steps"], 3)
    if "engine" in best and "notebook" in best:
        report["engine_vs_notebook"] = round(best["notebook"]["total"] / best["engine"]["total"], 3)
    if a.json:
        print(json.dumps(report))
        return 0
    print(
        "picture %dx%d, %s, %d iterations x %d octaves (scale %g), %d cores, best of %d rounds"
        % (a.width, a.height, layer, a.iterations, a.octaves, a.octave_scale, os.cpu_count(), a.repeat)
    )
    print("load average before %s, after %s" % (report["load_before"], report["load_after"]))
    print(
        "useful work %.1f GFLOP a run (Caffe GoogLeNet's convolutions, forward + input backward)"
        % (flops / 1e9)
    )
    print("SGEMM peak in the image (OpenBLAS, 2048^3): %.1f GFLOP/s" % facts["sgemm_gflops"])
    print()
    print(
        "%-9s %8s %8s %8s %10s %7s %16s"
        % ("", "run s", "start s", "steps s", "GFLOP/s", "peak", "memory peak")
    )
    for w in who:
        s = best[w]
        f = s["done"].get("flops") or flops  # the peer counts its own net's convolutions
        gf = f / s["steps"] / 1e9
        m = s["memory"].get("container_peak") or s["memory"].get("peak_rss", 0)
        kind = "container" if s["memory"].get("container_peak") else "RSS"
        print(
            "%-9s %8.2f %8.2f %8.2f %10.1f %6.0f%% %16s"
            % (
                w,
                s["total"],
                s["startup"],
                s["steps"],
                gf,
                100 * gf / facts["sgemm_gflops"],
                "%s %s" % (mib(m), kind),
            )
        )
    print()
    for key, what in (
        ("engine_vs_peer", "engine vs PyTorch peer"),
        ("engine_vs_notebook", "engine vs notebook"),
    ):
        if key in report:
            print("%-26s %5.2fx  (whole runs)" % (what + ":", report[key]))
    if "engine_vs_peer_steps" in report:
        print(
            "%-26s %5.2fx  (steps only, start-up left out)"
            % ("engine vs peer, steps:", report["engine_vs_peer_steps"])
        )
    print()
    print("seconds a step, by octave (first step / mean of the others):")
    for w in who:
        cells = ["%dx%d %.2f/%.2f" % o for o in best[w]["per_octave"]]
        print("  %-9s %s" % (w, "   ".join(cells)))
    if prof:
        print()
        print(
            "engine step at %dx%d: %.3f s (first %.3f s); layers timed alone: %.3f s"
            % (prof["width"], prof["height"], prof["step"], prof["first_step"], prof["sum_of_layers"])
        )
        tot = prof["sum_of_layers"]
        for kind, (f, b) in prof["by_kind"].items():
            print("  %-14s forward %.3f s  backward %.3f s  %4.1f%%" % (kind, f, b, 100 * (f + b) / tot))
        print("  slowest layers:")
        for name, kind, f, b in prof["top_layers"]:
            print("    %-32s %-12s forward %.3f s  backward %.3f s" % (name, kind, f, b))
    return 0


if __name__ == "__main__":
    sys.exit(main())
