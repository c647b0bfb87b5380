"""engine/dream.py's bilinear resize (scipy.ndimage.zoom, order 1) compiled by numba on
every core, with the same numbers.

numpy's version gathers the four taps of every output pixel into float64 copies of the
picture and combines them one whole-array operation at a time: about 0.3 s of every default
run (the octave pyramid and the detail carried up between octaves). Here each output pixel
does the same float64 arithmetic in the same order, ((v*wy)*wx) for the corners y0x0, y0x1,
y1x0, y1x1 summed left to right, then one rounding to float32; numba compiles it without
fast-math, so nothing is fused or reordered and the result is bitwise numpy's (and scipy's).
"""

import numba
import numpy as np
from numba import prange


@numba.njit(parallel=True, cache=True, nogil=True)
def bilinear(x, out, y0, y1, wy0, wy1, x0, x1, wx0, wx1):  # pragma: no cover
    """out (C,h,w) float32 from x (C,H,W) float32, taps and weights per output row (y*)
    and column (x*) as engine/dream.py's _axis_taps gives them."""
    C, h, w = out.shape
    for t in prange(C * h):
        c = t // h
        r = t - c * h
        a = y0[r]
        b = y1[r]
        by0 = wy0[r]
        by1 = wy1[r]
        for k in range(w):
            acc = np.float64(x[c, a, x0[k]]) * by0 * wx0[k]
            acc += np.float64(x[c, a, x1[k]]) * by0 * wx1[k]
            acc += np.float64(x[c, b, x0[k]]) * by1 * wx0[k]
            acc += np.float64(x[c, b, x1[k]]) * by1 * wx1[k]
            out[c, r, k] = acc
