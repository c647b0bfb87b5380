"""Caffe's MAX pooling on every core, vectorised, with Caffe's own numbers (the engine's
MaxPoolLayer in engine/caffe_net.py runs these; nothing here imports caffe).

Caffe's PoolingLayer (MAX) scans each window in row-major order from best = -FLT_MAX with a
strict `>`: top is the window's maximum, mask the flat index (y*W+x in the channel) of the
first element equal to it; backward zeroes dx and adds each top diff at its mask, outputs in
raster order. Caffe's loop is single-threaded and scalar (28% of a step at 1024x576); a
scalar loop compiled by numba over the cores still spent about 0.2 s a step in mispredicted
branches.

Forward, for kernel width 3 and stride width 1 or 2 (every max pool of GoogLeNet), per
(channel, output row), two vectorised passes (LLVM emits AVX2 ymm code for each helper):
  1. column pass over the window's (clipped) rows: per input column, the first maximum
     (strict >, from -FLT_MAX) and its flat index y*W+x (INT32_MAX if none);
  2. row pass: per output, the best of its 3 columns, "best" = larger value, equal values
     (including -0.0 == 0.0) -> smaller flat index.
Why this is Caffe's answer: Caffe's strict-> scan from -FLT_MAX in row-major order picks the
FIRST element that compares == to the window's final maximum M (an earlier one would have
been taken first), i.e. the element with the largest value and, among equal values, the
smallest flat index (row-major order IS flat-index order within a channel). That is the
maximum of a total order, so it can be taken in any grouping: first per column (pass 1 is
Caffe's own scan restricted to the column), then over the columns. NaN is never > (nor ==)
anything, so it is skipped as in Caffe; a window with nothing > -FLT_MAX keeps
(-FLT_MAX, INT32_MAX) and gives Caffe's top -FLT_MAX, mask -1. The value kept with the
index is that element's own float, so top's bits (e.g. -0.0) are Caffe's.
Outputs whose window is clipped by the picture's left/right border are done by a scalar
loop over the same column data; other kernel widths/strides run Caffe's scalar loop.
Backward: as the scalar kernel (flat indices; the += order per channel is Caffe's).
"""

import numba
import numpy as np
from numba import prange

_FLT_MAX = np.float32(3.4028234663852886e38)
_BIG = np.int32(2147483647)


# Column maxima live in one float32 array SV and one int32 array SI of 2*_CAP entries:
# column t at [t], and again at [_CAP - 1 + t] (so the stride-2 row pass can read columns
# 2o+1, 2o+2 as a full stride-2 pair). One array per kind with constant offsets keeps LLVM's
# runtime alias checks few enough for it to vectorise every loop (measured with inspect_asm).
_CAP = 4096
_HALF = _CAP // 2


# Helpers: each is compiled (and its loop vectorised by LLVM) on its own; indices are loop
# counters from 0 so addresses are affine (no negative-index wraparound).
@numba.njit(cache=True, nogil=True)
def _col3(r0, r1, r2, b0, W, SV, SI, n):  # pragma: no cover
    """Columns t < n := first maximum (strict >, from -FLT_MAX) of 3 rows (of length W)
    and its flat index, b0 being the flat index of r0[0]."""
    b1 = b0 + W
    b2 = b1 + W
    for col in range(n):
        m = -_FLT_MAX
        i = _BIG
        v = r0[col]
        u = v > m
        m = v if u else m
        i = np.int32(b0 + col) if u else i
        v = r1[col]
        u = v > m
        m = v if u else m
        i = np.int32(b1 + col) if u else i
        v = r2[col]
        u = v > m
        m = v if u else m
        i = np.int32(b2 + col) if u else i
        SV[col] = m
        SI[col] = i
        SV[_CAP - 1 + col] = m
        SI[_CAP - 1 + col] = i


@numba.njit(cache=True, nogil=True)
def _col_init(SV, SI, W):  # pragma: no cover
    for col in range(W):
        SV[col] = -_FLT_MAX
        SI[col] = _BIG


@numba.njit(cache=True, nogil=True)
def _col_add(row, b, SV, SI, W):  # pragma: no cover
    """Fold one more (later) row into the column maxima."""
    for col in range(W):
        v = row[col]
        m = SV[col]
        i = SI[col]
        u = v > m
        SV[col] = v if u else m
        SI[col] = np.int32(b + col) if u else i


@numba.njit(cache=True, nogil=True)
def _row3s1(SV, SI, tr, mr, n):  # pragma: no cover
    """Stride 1: out[o] := best of columns o, o+1, o+2 (larger value; equal values: the
    smaller flat index); no candidate -> mask -1 (top is then -FLT_MAX)."""
    for o in range(n):
        bv = SV[o]
        bi = SI[o]
        v = SV[o + 1]
        i = SI[o + 1]
        u = (v > bv) | ((v == bv) & (i < bi))
        bv = v if u else bv
        bi = i if u else bi
        v = SV[o + 2]
        i = SI[o + 2]
        u = (v > bv) | ((v == bv) & (i < bi))
        bv = v if u else bv
        bi = i if u else bi
        tr[o] = bv
        mr[o] = bi if bi != _BIG else np.int32(-1)


@numba.njit(cache=True, nogil=True)
def _col3s2(r0, r1, r2, b0, W, SV, SI, nk):  # pragma: no cover
    """As _col3 for the columns 2k (to [_CAP + k]) and 2k+1 (to [_CAP + _HALF + k]),
    k < nk: the stride-2 row pass then reads only unit-stride data."""
    b1 = b0 + W
    b2 = b1 + W
    for k in range(nk):
        e = 2 * k
        m = -_FLT_MAX
        i = _BIG
        v = r0[e]
        u = v > m
        m = v if u else m
        i = np.int32(b0 + e) if u else i
        v = r1[e]
        u = v > m
        m = v if u else m
        i = np.int32(b1 + e) if u else i
        v = r2[e]
        u = v > m
        m = v if u else m
        i = np.int32(b2 + e) if u else i
        SV[_CAP + k] = m
        SI[_CAP + k] = i
        m = -_FLT_MAX
        i = _BIG
        v = r0[e + 1]
        u = v > m
        m = v if u else m
        i = np.int32(b0 + e + 1) if u else i
        v = r1[e + 1]
        u = v > m
        m = v if u else m
        i = np.int32(b1 + e + 1) if u else i
        v = r2[e + 1]
        u = v > m
        m = v if u else m
        i = np.int32(b2 + e + 1) if u else i
        SV[_CAP + _HALF + k] = m
        SI[_CAP + _HALF + k] = i


@numba.njit(cache=True, nogil=True)
def _col_split(SV, SI, W):  # pragma: no cover
    """Copy columns [0, W) to the even/odd layout of _col3s2 (clipped rows only)."""
    for t in range(W):
        k = t >> 1
        if t & 1:
            SV[_CAP + _HALF + k] = SV[t]
            SI[_CAP + _HALF + k] = SI[t]
        else:
            SV[_CAP + k] = SV[t]
            SI[_CAP + k] = SI[t]


@numba.njit(cache=True, nogil=True)
def _row3s2e(SV, SI, tr, mr, n):  # pragma: no cover
    """Stride 2, even first column: columns 2k, 2k+1, 2k+2 = E[k], O[k], E[k+1]."""
    for o in range(n):
        bv = SV[o]
        bi = SI[o]
        v = SV[_HALF + o]
        i = SI[_HALF + o]
        u = (v > bv) | ((v == bv) & (i < bi))
        bv = v if u else bv
        bi = i if u else bi
        v = SV[o + 1]
        i = SI[o + 1]
        u = (v > bv) | ((v == bv) & (i < bi))
        bv = v if u else bv
        bi = i if u else bi
        tr[o] = bv
        mr[o] = bi if bi != _BIG else np.int32(-1)


@numba.njit(cache=True, nogil=True)
def _row3s2o(SV, SI, tr, mr, n):  # pragma: no cover
    """Stride 2, odd first column 2k+1: columns 2k+1, 2k+2, 2k+3 = O[k], E[k+1], O[k+1],
    SV starting at E[k+1]."""
    for o in range(n):
        bv = SV[_HALF - 1 + o]
        bi = SI[_HALF - 1 + o]
        v = SV[o]
        i = SI[o]
        u = (v > bv) | ((v == bv) & (i < bi))
        bv = v if u else bv
        bi = i if u else bi
        v = SV[_HALF + o]
        i = SI[_HALF + o]
        u = (v > bv) | ((v == bv) & (i < bi))
        bv = v if u else bv
        bi = i if u else bi
        tr[o] = bv
        mr[o] = bi if bi != _BIG else np.int32(-1)


@numba.njit(parallel=True, cache=True, nogil=True)
def maxpool_forward(x, top, mask, kh, kw, sh, sw, ph, pw):  # pragma: no cover
    """x (C,H,W) -> top (C,OH,OW), mask (C,OH,OW) flat index of the maximum in x[c]."""
    C, H, W = x.shape
    OH, OW = top.shape[1], top.shape[2]
    fast = kw == 3 and (sw == 1 or sw == 2) and W + 2 < _CAP
    lo = 0
    hi = 0
    if fast:
        lo = (pw + sw - 1) // sw  # first ox whose window starts inside the picture
        hi = min((W - 3 + pw) // sw + 1, OW)  # end of the ox whose window ends inside
        hi = max(hi, lo)
    n = hi - lo
    s0 = lo * sw - pw  # first column of output lo
    n8 = n - n % 8
    t8 = max(n - 8, 0)  # start of the last (overlapping) block of 8 outputs
    W8 = W - W % 8
    K = W // 2  # (even, odd) column pairs
    K8 = K - K % 8
    for c in prange(C):
        if not fast:  # the scalar loop, as Caffe
            for oy in range(OH):
                hs = oy * sh - ph
                he = min(hs + kh, H)
                hs = max(hs, 0)
                for ox in range(OW):
                    ws = ox * sw - pw
                    we = min(ws + kw, W)
                    ws = max(ws, 0)
                    best = -_FLT_MAX
                    at = -1
                    for y in range(hs, he):
                        for xx in range(ws, we):
                            v = x[c, y, xx]
                            if v > best:
                                best = v
                                at = y * W + xx
                    top[c, oy, ox] = best
                    mask[c, oy, ox] = at
            continue
        SV = np.empty(2 * _CAP, np.float32)
        SI: np.ndarray = np.empty(2 * _CAP, np.int32)
        for oy in range(OH):
            hs = oy * sh - ph
            he = min(hs + kh, H)
            hs = max(hs, 0)
            # 1. column pass: first maximum of each column over the window's rows
            if he - hs == 3 and sw == 1:
                # LLVM's vector loop steps by 8 and its scalar remainder is slow: run
                # multiples of 8, then the last 8 columns again (same values rewritten)
                r0, r1, r2 = x[c, hs], x[c, hs + 1], x[c, hs + 2]
                _col3(r0, r1, r2, hs * W, W, SV, SI, W8)
                if W8 < W:
                    t = W - 8 if W >= 8 else 0
                    _col3(r0[t:], r1[t:], r2[t:], hs * W + t, W, SV[t:], SI[t:], W - t)
            elif he - hs == 3:  # stride 2: even/odd column layout
                r0, r1, r2 = x[c, hs], x[c, hs + 1], x[c, hs + 2]
                _col3s2(r0, r1, r2, hs * W, W, SV, SI, K8)
                if K8 < K:
                    t = K - 8 if K >= 8 else 0
                    _col3s2(r0[2 * t :], r1[2 * t :], r2[2 * t :], hs * W + 2 * t, W, SV[t:], SI[t:], K - t)
                if W & 1:  # the last column is even and has no odd partner
                    _col_init(SV[W - 1 :], SI[W - 1 :], 1)
                    for y in range(hs, he):
                        _col_add(x[c, y, W - 1 :], y * W + W - 1, SV[W - 1 :], SI[W - 1 :], 1)
                    SV[_CAP + K] = SV[W - 1]
                    SI[_CAP + K] = SI[W - 1]
            else:
                _col_init(SV, SI, W)
                for y in range(hs, he):
                    _col_add(x[c, y], y * W, SV, SI, W)
                if sw == 2:
                    _col_split(SV, SI, W)
            # 2. row pass: the best column of each window
            tr = top[c, oy]
            mr = mask[c, oy]
            if n > 0:  # multiples of 8, then the last 8 again (see above)
                if sw == 1:
                    _row3s1(SV[s0:], SI[s0:], tr[lo:], mr[lo:], n8)
                    if n8 < n:
                        _row3s1(SV[s0 + t8 :], SI[s0 + t8 :], tr[lo + t8 :], mr[lo + t8 :], n - t8)
                elif s0 % 2 == 0:
                    e0 = _CAP + s0 // 2
                    _row3s2e(SV[e0:], SI[e0:], tr[lo:], mr[lo:], n8)
                    if n8 < n:
                        _row3s2e(SV[e0 + t8 :], SI[e0 + t8 :], tr[lo + t8 :], mr[lo + t8 :], n - t8)
                else:
                    e0 = _CAP + (s0 + 1) // 2
                    _row3s2o(SV[e0:], SI[e0:], tr[lo:], mr[lo:], n8)
                    if n8 < n:
                        _row3s2o(SV[e0 + t8 :], SI[e0 + t8 :], tr[lo + t8 :], mr[lo + t8 :], n - t8)
            # the outputs whose window is clipped by the picture's border: scalar
            for ox in range(OW):
                if ox >= lo and ox < hi:
                    continue
                ws = ox * sw - pw
                we = min(ws + 3, W)
                ws = max(ws, 0)
                bv = -_FLT_MAX
                bi = _BIG
                for t in range(ws, we):
                    q = t
                    if sw == 2:
                        q = _CAP + (t >> 1) + (t & 1) * _HALF
                    v = SV[q]
                    i = SI[q]
                    u = (v > bv) | ((v == bv) & (i < bi))
                    bv = v if u else bv
                    bi = i if u else bi  # type: ignore[assignment]  # (numpy scalars)
                tr[ox] = bv
                mr[ox] = bi if bi != _BIG else np.int32(-1)


@numba.njit(parallel=True, cache=True, nogil=True)
def maxpool_backward(dtop, mask, dx):  # pragma: no cover
    """dx (C,H,W) := 0, then dx[c].flat[mask] += dtop, in Caffe's order."""
    C, H, W = dx.shape
    OH, OW = dtop.shape[1], dtop.shape[2]
    n = H * W
    no = OH * OW
    for c in prange(C):
        d = dx[c].reshape(n)
        g = dtop[c].reshape(no)
        m = mask[c].reshape(no)
        for i in range(n):
            d[i] = 0
        for i in range(no):
            d[m[i]] += g[i]
