"""Run inside the dream image: time per pixel and peak memory from 1 MP to 24 MP.

    python3 bench/big_in_image.py [ITERATIONS OCTAVES [TILE [MP ...]]]
        (default 1 1 768  1 3 6 12 24)

For each size, a 3:2 picture is made, and `python3 -m engine` dreams it in a process of its
own (--max-size none, --tile TILE, inception_4c/output); prints one line per size: the
dream's seconds (the engine's `done` elapsed: octaves, steps and saving), seconds per
megapixel-step (pixels summed over the octaves' steps) and the process's peak memory, and
an estimate of that picture's time with the defaults (10 iterations, 4 octaves, scale 1.4):
the measured seconds per megapixel-step times the defaults' megapixel-steps (the time per
pixel is flat, so this holds; a 24 MP dream at the defaults takes too long to run each time).
bench/big.sh runs it in the image.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image


def make(path, mp):
    w = int(round((mp * 1e6 * 1.5) ** 0.5))
    h = int(round(w / 1.5))
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx // 7) % 256, (yy // 5) % 256, ((xx + yy) // 11) % 256], -1).astype(np.uint8)
    Image.fromarray(img).save(path, "JPEG", quality=90)
    return w, h


def default_mp_steps(w, h, iterations=10, octaves=4, scale=1.4):
    """Megapixel-steps of the defaults on a w x h picture: each octave's pixels, per step."""
    return iterations * sum(round(w / scale**k) * round(h / scale**k) for k in range(octaves)) / 1e6


def main(argv):
    iters = argv[1] if len(argv) > 1 else "1"
    octaves = argv[2] if len(argv) > 2 else "1"
    tile = argv[3] if len(argv) > 3 else "768"
    sizes = [float(x) for x in argv[4:]] or [1, 3, 6, 12, 24]
    tmp = tempfile.mkdtemp(prefix="big-", dir="/tmp")
    for mp in sizes:
        src = os.path.join(tmp, "p%g.jpg" % mp)
        w, h = make(src, mp)
        r = subprocess.run(
            [sys.executable, "-m", "engine", "--progress", "json", "--output-dir", tmp, "--tile", tile, "--",
             src, "inception_4c/output", iters, octaves],
            capture_output=True, text=True,
        )  # fmt: skip
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        events = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
        done = [e for e in events if e["event"] == "done"]
        if r.returncode or not done:
            print(json.dumps(dict(mp=mp, error=(r.stdout + r.stderr)[-500:])), flush=True)
            continue
        work = sum(e["width"] * e["height"] for e in events if e["event"] == "step") / 1e6
        secs = done[0]["elapsed"]
        print(
            json.dumps(
                dict(
                    mp=round(w * h / 1e6, 2),
                    size="%dx%d" % (w, h),
                    tile=tile,
                    iterations=int(iters),
                    octaves=int(octaves),
                    seconds=secs,
                    s_per_mp_step=round(secs / work, 3),
                    peak_gb=round(peak / 2**20, 2),  # the largest child so far: sizes go up
                    default_estimate_min=round(secs / work * default_mp_steps(w, h) / 60, 1),
                )
            ),
            flush=True,
        )
        os.remove(done[0]["path"])
        os.remove(src)


if __name__ == "__main__":
    main(sys.argv)
