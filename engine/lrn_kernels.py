"""Caffe's cross-channel LRN (CrossChannelForward/Backward_cpu) on every core, vectorised,
with Caffe's numbers (the engine's LRNLayer in engine/caffe_net.py runs these).

Caffe runs, per pixel, a running sum over channels of alpha/size * x^2 (head added, tail
subtracted), scale = k + that, top = scale^-beta * x; backward the matching running sum of
dtop*top/scale. Its loops are single-threaded; `contract` lets LLVM fuse s + a*v into one
FMA exactly where Caffe's OpenBLAS saxpy does (measured: bitwise equal with it, not
without). scale^-beta is kept from forward for backward (Caffe recomputes the same powf of
the same numbers); for beta 0.75 it comes from engine/powf.py (glibc's powf on 16 lanes).
Against the row-by-row compiled loops this replaced: forward 1.4x, backward 1.1x (it moves
little more than the bytes it must: measured against a plain copy of the same arrays).

Same arithmetic per element, same order, same fusions; what changed:
  * every element's recurrence over channels is independent, so the flat H*W plane is
    cut into blocks (_block: 2048..8192 elements, count a multiple of 4) and prange runs
    over blocks instead of rows: long contiguous runs, few calls, no per-row allocation;
  * forward: squares recomputed from x (v*v, then s + a*sq one FMA as before; a pad
    channel reads a zero row: 0*0 = +0, the old zero pad); the running sum lives in the
    scale rows themselves (two FMAs per step, head then tail, as Caffe); power (powf.pow_into
    on each block row, elementwise) and top = power*x per channel while the row is hot,
    so x is read from memory once;
  * backward: channels in groups of _G: pass 1 writes dx = dtop*power (helper without
    fast-math flags, own store, never contracted into the later add, as Caffe) and the
    ratios (dtop*top)/scale of the group's head channels into a small buffer (pads +0),
    pass 2 the same u / t / dx / acc update; the last size-1 ratio rows carry over.
    The ratio helper uses error_model="numpy": IEEE division (vectorises) instead of
    numba's ZeroDivisionError test; scale >= k > 0 for every real LRN so results are equal
    (only scale == 0 differs: old raised, new gives Caffe's inf/nan);
  * 1-D views into small njit helpers with uint64 loop indices (no wraparound code;
    loops vectorise to ymm / vfmadd..ps).
"""

import numba
import numpy as np
from numba import prange

from engine import powf

_CF = {"contract"}
_LMAX = 8192  # longest block of the flat plane
_LMIN = 2048


@numba.njit(cache=True, nogil=True, fastmath=_CF)
def _f_fill(s, k):  # pragma: no cover
    for i in range(np.uint64(s.shape[0])):
        s[i] = k


@numba.njit(cache=True, nogil=True, fastmath=_CF)
def _f_add(s, xr, a):  # pragma: no cover
    """s = s + a * (x*x)   (one FMA, as s[xx] + a * ps[c, xx])"""
    for i in range(np.uint64(s.shape[0])):
        v = xr[i]
        sq = v * v
        s[i] = s[i] + a * sq


@numba.njit(cache=True, nogil=True, fastmath=_CF)
def _f_step(prev, cur, hr, tr, a, na):  # pragma: no cover
    """cur = (prev + a*head^2) + (-a)*tail^2, two FMAs in that order."""
    for i in range(np.uint64(cur.shape[0])):
        h = hr[i]
        q = tr[i]
        hs = h * h
        qs = q * q
        t = prev[i] + a * hs
        t = t + na * qs
        cur[i] = t


@numba.njit(cache=True, nogil=True, fastmath=_CF)
def _f_pow(sc, pw, nbeta):  # pragma: no cover
    for i in range(np.uint64(sc.shape[0])):
        pw[i] = sc[i] ** nbeta


@numba.njit(cache=True, nogil=True)
def _mul(p, q, out):  # pragma: no cover
    """out = p*q (no fast-math flags: never contracted into a later add)."""
    for i in range(np.uint64(out.shape[0])):
        out[i] = p[i] * q[i]


@numba.njit(cache=True, nogil=True)
def _block(P):  # pragma: no cover
    """Length of the blocks the flat (H*W) plane is cut into: at most 16 blocks of at
    least _LMIN (more when blocks would exceed _LMAX), their count a multiple of 4 (load
    balance on 2-4 cores), a multiple of 16 elements."""
    nb = max((P + _LMAX - 1) // _LMAX, min(16, (P + _LMIN - 1) // _LMIN))
    nb = (nb + 3) // 4 * 4
    L = (P + nb - 1) // nb
    return max(16, (L + 15) // 16 * 16)


@numba.njit(parallel=True, cache=True, nogil=True, fastmath=_CF)
def lrn_forward(x, top, scale, power, size, a, k, nbeta, glibc_pow):  # pragma: no cover
    """x (C,H,W) C-contiguous (as are top, scale, power). Every element's channel
    recurrence is independent, so the plane is cut into blocks of L flat elements."""
    C, H, W = x.shape
    P = H * W
    xf = x.reshape(C, P)
    tf = top.reshape(C, P)
    sf = scale.reshape(C, P)
    pf = power.reshape(C, P)
    pre = (size - 1) // 2
    post = size - 1 - pre
    na = -a
    L = _block(P)
    nb = (P + L - 1) // L
    for b in prange(nb):
        b0 = b * L
        b1 = min(P, b0 + L)
        zr = np.zeros(b1 - b0, np.float32)
        s0 = sf[0, b0:b1]
        _f_fill(s0, k)
        for c in range(size):
            cc = c - pre
            if cc >= 0 and cc < C:
                _f_add(s0, xf[cc, b0:b1], a)
            else:
                _f_add(s0, zr, a)
        for c in range(C):
            sc = sf[c, b0:b1]
            if c > 0:
                hc = c + post
                tc = c - 1 - pre
                hr = xf[hc, b0:b1] if hc < C else zr
                tr = xf[tc, b0:b1] if tc >= 0 else zr
                _f_step(sf[c - 1, b0:b1], sc, hr, tr, a, na)
            pw = pf[c, b0:b1]
            if glibc_pow:
                powf.pow_into(sc, pw, nbeta)
            else:
                _f_pow(sc, pw, nbeta)
            _mul(pw, xf[c, b0:b1], tf[c, b0:b1])


@numba.njit(cache=True, nogil=True, fastmath=_CF)
def _b_zero(out):  # pragma: no cover
    for i in range(np.uint64(out.shape[0])):
        out[i] = np.float32(0.0)


@numba.njit(cache=True, nogil=True, fastmath=_CF)
def _b_add(acc, r):  # pragma: no cover
    for i in range(np.uint64(acc.shape[0])):
        acc[i] = acc[i] + r[i]


@numba.njit(cache=True, nogil=True, fastmath=_CF)
def _b_step(acc, rh, rt, xr, dx, ncrv):  # pragma: no cover
    for i in range(np.uint64(acc.shape[0])):
        u = acc[i] + rh[i]
        t = xr[i] * u
        dx[i] = dx[i] + ncrv * t
        acc[i] = u + np.float32(-1.0) * rt[i]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _b_pass1(d, p, t, s, o, r):  # pragma: no cover
    """o = dtop * power, r = (dtop * top) / scale.  No fast-math flags (the product
    is never contracted later); error_model numpy: IEEE division (vdivps), no Python
    ZeroDivisionError test (scale >= k > 0 for any real LRN)."""
    for i in range(np.uint64(o.shape[0])):
        dv = d[i]
        o[i] = dv * p[i]
        r[i] = (dv * t[i]) / s[i]


@numba.njit(cache=True, nogil=True)
def _copy(src, dst):  # pragma: no cover
    for i in range(np.uint64(dst.shape[0])):
        dst[i] = src[i]


_G = 8  # channels per group in lrn_backward


@numba.njit(parallel=True, cache=True, nogil=True, fastmath=_CF)
def lrn_backward(x, top, dtop, scale, power, dx, size, crv):  # pragma: no cover
    """Blocks of the flat plane; channels in groups of _G: pass 1 (dx = dtop*power and
    the ratios of the group's head channels) then the running sum over the group, the
    ratios of the last size-1 padded channels carried to the next group."""
    C, H, W = x.shape
    P = H * W
    xf = x.reshape(C, P)
    tf = top.reshape(C, P)
    df = dtop.reshape(C, P)
    sf = scale.reshape(C, P)
    pf = power.reshape(C, P)
    of = dx.reshape(C, P)
    ipp = size - (size + 1) // 2
    ncrv = -crv
    L = _block(P)
    nb = (P + L - 1) // L
    for b in prange(nb):
        b0 = b * L
        b1 = min(P, b0 + L)
        n = b1 - b0
        pb = np.empty((_G + size - 1, n), np.float32)
        acc = np.zeros(n, np.float32)
        for j in range(size - 1):
            cc = j - ipp
            if cc >= 0 and cc < C:
                _b_pass1(df[cc, b0:b1], pf[cc, b0:b1], tf[cc, b0:b1], sf[cc, b0:b1], of[cc, b0:b1], pb[j])
            else:
                _b_zero(pb[j])
            _b_add(acc, pb[j])
        for gi in range((C + _G - 1) // _G):
            c0 = gi * _G
            g = min(_G, C - c0)
            for i in range(g):
                cc = c0 + size - 1 + i - ipp
                if cc < C:
                    _b_pass1(
                        df[cc, b0:b1],
                        pf[cc, b0:b1],
                        tf[cc, b0:b1],
                        sf[cc, b0:b1],
                        of[cc, b0:b1],
                        pb[size - 1 + i],
                    )
                else:
                    _b_zero(pb[size - 1 + i])
            for i in range(g):
                c = c0 + i
                _b_step(acc, pb[i + size - 1], pb[i], xf[c, b0:b1], of[c, b0:b1], ncrv)
            for r in range(size - 1):
                _copy(pb[g + r], pb[r])
