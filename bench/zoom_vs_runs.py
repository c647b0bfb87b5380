"""A 20-frame `ddctl zoom` against 20 separate `ddctl run` calls doing the same work.

    python3 bench/zoom_vs_runs.py [--image TAG] [--frames 20] [--size 320x240] [--rounds 1]

Both go through the real CLI and the real daemon, on the same 320x240 picture with the
same dream settings (defaults: inception_4c/output, 10 iterations, 4 octaves). The zoom
loads Caffe and the net once and encodes an MP4 and a GIF at the end; each `ddctl run`
starts a container and loads them again. Whole wall-clock times, alternated (zoom, runs,
zoom, runs, ...); the ratio is runs / zoom. The machine may be shared: compare ratios.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ddctl(*args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("DDCTL_LABELS", "io.ddctl.bench=1")
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "ddctl", *args], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"ddctl {' '.join(args)} failed:\n{r.stderr}")
    return time.monotonic() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image", default="ddctl/deepdream:latest")
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--size", default="320x240")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument(
        "dream", nargs="*", default=[], help="LAYER ITERATIONS OCTAVES for both (default the defaults)"
    )
    a = p.parse_args()
    w, h = (int(x) for x in a.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="ddctl-bench-") as tmp:
        pic = os.path.join(tmp, "pic.png")
        Image.effect_mandelbrot((w, h), (-2, -1.2, 1, 1.2), 60).convert("RGB").save(pic)
        common = [*a.dream, "--seed", "1", "--image", a.image, "--no-build"]
        zooms, runs = [], []
        for r in range(a.rounds):
            out = os.path.join(tmp, f"z{r}")
            zooms.append(ddctl("zoom", pic, *common, "--frames", str(a.frames), "-o", out))
            print(f"round {r + 1}: zoom of {a.frames} frames {zooms[-1]:.1f} s", flush=True)
            out = os.path.join(tmp, f"r{r}")
            runs.append(sum(ddctl("run", pic, *common, "-o", out) for _ in range(a.frames)))
            print(f"round {r + 1}: {a.frames} x ddctl run {runs[-1]:.1f} s", flush=True)
    z, s = min(zooms), min(runs)
    print(f"picture {w}x{h}, {a.frames} frames, settings {' '.join(a.dream) or 'defaults'}, image {a.image}")
    print(f"ddctl zoom (one container, MP4+GIF included): {z:.1f} s  ({z / a.frames:.2f} s a frame)")
    print(f"{a.frames} x ddctl run:                          {s:.1f} s  ({s / a.frames:.2f} s a picture)")
    print(f"ratio: {s / z:.2f}x")


if __name__ == "__main__":
    main()
