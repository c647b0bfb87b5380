"""A batch of N small pictures in one container against N `ddctl run` calls.

    python3 bench/batch_vs_runs.py [IMAGE [N [ROUNDS]]]     (default ddctl/deepdream:latest 10 2)

Both sides dream the same N pictures (320x240, inception_4c/output, 10 iterations,
4 octaves: the defaults) through the real CLI and the real daemon; the rounds alternate
the two so that the machine's other work weighs on both alike. Prints each round's
seconds and the ratio (N runs / batch), and the best-of ratio. Run from the checkout.
"""

import os
import subprocess
import sys
import tempfile
import time

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ddctl(*args):
    env = dict(os.environ, PYTHONPATH=ROOT, DDCTL_LABELS=os.environ.get("DDCTL_LABELS", "io.ddctl.bench=1"))
    r = subprocess.run(
        [sys.executable, "-m", "ddctl", *args], capture_output=True, text=True, env=env, cwd=ROOT
    )
    if r.returncode != 0:
        sys.exit(f"ddctl {' '.join(args)} failed:\n{r.stderr[-2000:]}")


def main(argv):
    image = argv[1] if len(argv) > 1 else "ddctl/deepdream:latest"
    n = int(argv[2]) if len(argv) > 2 else 10
    rounds = int(argv[3]) if len(argv) > 3 else 2
    with tempfile.TemporaryDirectory(prefix="ddctl-bench-") as tmp:
        src = os.path.join(tmp, "in")
        os.mkdir(src)
        for i in range(n):
            img = Image.effect_mandelbrot((320, 240), (-2 + 0.05 * i, -1.2, 1, 1.2), 50).convert("RGB")
            img.save(os.path.join(src, f"p{i:02d}.jpg"))
        pics = sorted(os.path.join(src, f) for f in os.listdir(src))
        best = {"batch": None, "runs": None}
        for r in range(rounds):
            order = ("batch", "runs") if r % 2 == 0 else ("runs", "batch")
            secs = {}
            for side in order:
                out = os.path.join(tmp, f"out-{side}-{r}")
                t0 = time.monotonic()
                if side == "batch":
                    ddctl("run", src, "--image", image, "--no-build", "-o", out)
                else:
                    for p in pics:
                        ddctl("run", p, "--image", image, "--no-build", "-o", out)
                secs[side] = time.monotonic() - t0
                best[side] = min(best[side] or secs[side], secs[side])
            print(
                f"round {r + 1}: {n} x ddctl run {secs['runs']:.1f} s, one batch {secs['batch']:.1f} s, "
                f"ratio {secs['runs'] / secs['batch']:.2f}x",
                flush=True,
            )
        print(
            f"best of {rounds}: {n} runs {best['runs']:.1f} s, batch {best['batch']:.1f} s, ratio {best['runs'] / best['batch']:.2f}x"
        )


if __name__ == "__main__":
    main(sys.argv)
