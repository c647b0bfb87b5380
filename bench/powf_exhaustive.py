"""engine/powf.py against libm's powf on every positive finite float32, for beta 0.75.

    docker run --rm -v "$PWD:/src:ro" --entrypoint python3 IMAGE /src/bench/powf_exhaustive.py

(about 40 s on 2 cores: 2,139,095,039 inputs, 0 mismatches on 2026-12-02). The engine's
LRN uses engine/powf.py only for the exponent checked here, -0.75; the tests check a sample
of 18.8 M inputs in every run (tests/integration/in_image/check_lrn.py). Prints one JSON
line: inputs checked, mismatches.
"""

import json
import time

import numpy as np

from engine import powf

CHUNK = 1 << 24


def main():
    y = np.float32(-0.75)
    t0 = time.perf_counter()
    checked = mismatches = 0
    got = np.empty(CHUNK, np.float32)
    for start in range(1, 0x7F800000, CHUNK):  # 0x00000001 (least subnormal) .. 0x7f7fffff (FLT_MAX)
        x = np.arange(start, min(start + CHUNK, 0x7F800000), dtype=np.uint32).view(np.float32)
        out = got[: x.size]
        powf.pow_array(x, out, y)
        mismatches += int(np.count_nonzero(out.view(np.uint32) != np.power(x, y).view(np.uint32)))
        checked += x.size
    print(
        json.dumps(
            {
                "exponent": -0.75,
                "checked": checked,
                "mismatches": mismatches,
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
    )
    return 1 if mismatches else 0


if __name__ == "__main__":
    raise SystemExit(main())
