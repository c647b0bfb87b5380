"""Run inside the dream image: engine/dream.py's resize against scipy.ndimage.zoom.

    python3 check_resize.py

In the image the octaves are resized by numba (engine/resize_kernel.py), not by the numpy
code the host's unit tests check against scipy: the same arithmetic must give scipy's
float32 picture bit for bit, for shrinking and enlarging, odd sizes and one-pixel axes.
Prints one JSON object.
"""

import json
import sys

import numpy as np
import scipy.ndimage as nd

from engine import dream

CASES = [(575, 1024, 1 / 1.4), (411, 731, 1.4), (31, 64, 0.5), (7, 8, 2.0), (1, 9, 1.37), (100, 33, 1 / 1.9)]


def main():
    results = []
    for h, w, z in CASES:
        x = (np.random.RandomState(h * w).randn(3, h, w) * 100).astype(np.float32)
        want = nd.zoom(x, (1, z, z), order=1)
        got = dream.zoom(x, z, z)
        results.append(
            {
                "case": [h, w, z],
                "equal": bool(
                    got.shape == want.shape and np.array_equal(got.view(np.uint32), want.view(np.uint32))
                ),
            }
        )
    print(json.dumps({"numba": dream.compiled_resize() is not None, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
