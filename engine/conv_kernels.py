"""Caffe's convolution on the CPU, made to use every core, with Caffe's own numbers.

Caffe's ConvolutionLayer (base_conv_layer.cpp, im2col.cpp) does, per picture:
  forward   col = im2col(x)                      (skipped for 1x1/stride 1/pad 0: col = x)
            y = W @ col                          cblas_sgemm(RowMajor, N, N, Cout, OH*OW, K)
            y += bias                            cblas_sgemm(..., Cout, OH*OW, 1, bias, ones, beta 1)
  backward  col = W^T @ dy                       cblas_sgemm(RowMajor, T, N, K, OH*OW, Cout)
            dx = col2im(col)                     (1x1: the GEMM writes dx itself)
im2col and col2im are single-threaded scalar loops (a third of a step at 1024x576). Here they
are the same copies and the same sums, each input pixel's col2im sum in Caffe's order
(kernel row, then kernel column), compiled by numba over every core; the GEMMs are the same
cblas_sgemm calls with the same arguments into the same OpenBLAS; the bias is added once per
element as the K=1 GEMM does (a*1 is exact, one rounding). So every number is bitwise
Caffe's. The ReLU that Caffe runs in place after each convolution is fused in (its forward
max(x,0)+0*min(x,0) and its backward dy*((x>0)+0*(x<=0)), written the same way).

Nothing here imports caffe; numba is required (engine/caffe_net.py falls back to Caffe's
own layers without it).
"""

import ctypes
import ctypes.util

import numba
import numpy as np
from numba import prange

# -----------------------------------------------------------------------------
# the BLAS Caffe itself calls (Debian's libblas.so.3 alternative: OpenBLAS)

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_blas = None


def _cblas():
    global _blas
    if _blas is None:
        lib = ctypes.CDLL(ctypes.util.find_library("blas") or "libblas.so.3")
        f = lib.cblas_sgemm
        f.restype = None
        i, p, s = ctypes.c_int, ctypes.c_void_p, ctypes.c_float
        f.argtypes = [i, i, i, i, i, i, s, p, i, p, i, s, p, i]
        _blas = f
    return _blas


def sgemm(trans_a, m, n, k, a, b, c):
    """Caffe's caffe_cpu_gemm<float>(trans_a, NoTrans, m, n, k, 1, a, b, 0, c): c (m,n) =
    op(a) @ b, op(a) = a (m,k) or a.T for a (k,m); b (k,n); all C-contiguous float32."""
    lda = m if trans_a else k
    _cblas()(
        _ROW_MAJOR,
        _TRANS if trans_a else _NO_TRANS,
        _NO_TRANS,
        m,
        n,
        k,
        1.0,
        a.ctypes.data,
        lda,
        b.ctypes.data,
        n,
        0.0,
        c.ctypes.data,
        n,
    )


# -----------------------------------------------------------------------------
# numba kernels (x: (C,H,W) one picture; col: (C*kh*kw, OH*OW))


@numba.njit(parallel=True, cache=True, nogil=True)
def im2col(x, col, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):  # pragma: no cover
    """col[(c*kh+i)*kw+j, oy*ow+ox] = x[c, oy*sh-ph+i*dh, ox*sw-pw+j*dw], 0 outside."""
    C, H, W = x.shape
    rows = C * kh * kw
    for t in prange(rows * oh):
        r = t // oh
        oy = t - r * oh
        c = r // (kh * kw)
        k = r - c * (kh * kw)
        i = k // kw
        j = k - i * kw
        iy = oy * sh - ph + i * dh
        base = oy * ow
        if iy < 0 or iy >= H:
            for ox in range(ow):
                col[r, base + ox] = 0.0
            continue
        off = j * dw - pw
        for ox in range(ow):
            ix = ox * sw + off
            if ix >= 0 and ix < W:
                col[r, base + ox] = x[c, iy, ix]
            else:
                col[r, base + ox] = 0.0


@numba.njit(parallel=True, cache=True, nogil=True)
def col2im(col, dx, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):  # pragma: no cover
    """dx[c,y,x] = sum over (i, j) in Caffe's order (i, then j) of the col entries that
    im2col took from (c,y,x); 0 where none. Parallel over rows of dx, each pixel's sum
    sequential: the same float additions in the same order as Caffe's col2im_cpu."""
    C, H, W = dx.shape
    for t in prange(C * H):
        c = t // H
        y = t - c * H
        for xx in range(W):
            dx[c, y, xx] = 0.0
        for i in range(kh):
            ny = y + ph - i * dh
            if ny < 0 or ny % sh != 0:
                continue
            oy = ny // sh
            if oy >= oh:
                continue
            base = oy * ow
            for j in range(kw):
                r = (c * kh + i) * kw + j
                off = pw - j * dw  # nx = xx + off, ox = nx / sw
                if sw == 1:
                    lo = max(0, -off)
                    hi = min(W, ow - off)
                    for xx in range(lo, hi):
                        dx[c, y, xx] += col[r, base + xx + off]
                else:
                    lo = -off
                    if lo < 0:
                        lo = 0
                    while (lo + off) % sw != 0:
                        lo += 1
                    for xx in range(lo, W, sw):
                        ox = (xx + off) // sw
                        if ox >= ow:
                            break
                        dx[c, y, xx] += col[r, base + ox]


@numba.njit(parallel=True, cache=True, nogil=True)
def bias_relu(y, bias, use_bias, relu):  # pragma: no cover
    """y (Cout, N) += bias[:, None] (use_bias), then (relu) Caffe's in-place ReLU forward with slope 0:
    max(v, 0) + 0 * min(v, 0), std::max/std::min's comparisons kept."""
    M, N = y.shape
    zero = np.float32(0.0)
    for t in prange(M * 8):  # 8 chunks a row: enough pieces for every core
        m = t // 8
        part = t - m * 8
        lo = part * N // 8
        hi = (part + 1) * N // 8
        b = bias[m]
        for n in range(lo, hi):
            v = y[m, n]
            if use_bias:
                v = v + b
            if relu:
                a = zero if v < zero else v  # std::max(v, 0)
                s = zero if zero < v else v  # std::min(v, 0)
                v = a + zero * s
            y[m, n] = v


@numba.njit(parallel=True, cache=True, nogil=True)
def relu_backward(y, dy):  # pragma: no cover
    """Caffe's ReLU backward, in place (y is the ReLU's output, dy its diff, both (M,N)):
    dy = dy * ((y > 0) + 0 * (y <= 0))."""
    M, N = y.shape
    one, zero = np.float32(1.0), np.float32(0.0)
    for t in prange(M * 8):
        m = t // 8
        part = t - m * 8
        lo = part * N // 8
        hi = (part + 1) * N // 8
        for n in range(lo, hi):
            v = y[m, n]
            f = (one if v > zero else zero) + zero * (one if v <= zero else zero)
            dy[m, n] = dy[m, n] * f


def warm_up():
    """Compile (and cache) the kernels on a tiny picture."""
    x = np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6)
    for s, p in ((1, 1), (2, 3)):
        oh, ow = (5 + 2 * p - 3) // s + 1, (6 + 2 * p - 3) // s + 1
        col = np.empty((2 * 9, oh * ow), np.float32)
        im2col(x, col, 3, 3, s, s, p, p, 1, 1, oh, ow)
        col2im(col, np.empty_like(x), 3, 3, s, s, p, p, 1, 1, oh, ow)
    y = np.ones((2, 30), np.float32)
    bias_relu(y, np.ones(2, np.float32), True, True)
    bias_relu(y, np.ones(2, np.float32), False, False)
    relu_backward(y, y.copy())
