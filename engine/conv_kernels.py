"""Caffe's convolution on the CPU, made to use every core, with Caffe's own numbers.

Caffe's ConvolutionLayer (base_conv_layer.cpp, im2col.cpp) does, per picture:
  forward   col = im2col(x)                      (skipped for 1x1/stride 1/pad 0: col = x)
            y = W @ col                          cblas_sgemm(RowMajor, N, N, Cout, OH*OW, K)
            y += bias                            cblas_sgemm(..., Cout, OH*OW, 1, bias, ones, beta 1)
  backward  col = W^T @ dy                       cblas_sgemm(RowMajor, T, N, K, OH*OW, Cout)
            dx = col2im(col)                     (1x1: the GEMM writes dx itself)
Caffe's im2col and col2im are single-threaded scalar loops (a third of a step at 1024x576).
Here they are the same copies and the same sums, each input pixel's col2im sum in Caffe's
order (kernel row, then kernel column, from 0.0), compiled by numba over every core; the
GEMMs are the same cblas_sgemm calls with the same arguments into the same OpenBLAS (a GEMM
split into pieces, or run on another number of threads, gives other bits: measured); the
bias is added once per element as the K=1 GEMM does (a*1 is exact, one rounding). So every
number is bitwise Caffe's (tests/integration/in_image/check_convolution.py). The ReLU that
Caffe runs in place after each convolution is fused in (its forward max(x,0)+0*min(x,0) and
its backward dy*((x>0)+0*(x<=0)), written the same way).

How the loops are written so that LLVM vectorises them (2.2x im2col, 3.8x col2im, 2-2.7x
the ReLU parts against the plain loops, measured alternated on GoogLeNet's shapes): indices
in the hot loops are uint64 counting from 0 (numba then adds no negative-index wraparound,
which made the addresses non-affine) and no array slice is taken inside them; each im2col
row is a zero edge, a plain copy and a zero edge (for stride s, the input row is first split
into its s phases, so conv1's copies are contiguous too); col2im sums a block of about
128 KB of dx rows at a time (it stays in L2 while col streams past), for stride s in s phase
rows interleaved at the end.

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


_BLOCK_BYTES = 131072  # col2im: bytes of dx (phase) rows summed per task


@numba.njit(parallel=True, cache=True, nogil=True)
def im2col(x, col, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):  # pragma: no cover
    """col[(c*kh+i)*kw+j, oy*ow+ox] = x[c, oy*sh-ph+i*dh, ox*sw-pw+j*dw], 0 outside."""
    C, H, W = x.shape
    zero = np.float32(0.0)
    nq = (W + sw - 1) // sw  # longest phase of an input row (x = sw*k + q)
    ntask = C * kh * oh  # one task: input channel c, kernel row i, output row oy
    nch = 64
    if nch > ntask:
        nch = ntask
    uow = np.uint64(ow)
    for ch in prange(nch):
        buf = np.empty(sw * nq, np.float32)
        for t in range(ch * ntask // nch, (ch + 1) * ntask // nch):
            ci = t // oh
            oy = t - ci * oh
            c = ci // kh
            i = ci - c * kh
            iy = oy * sh - ph + i * dh
            base = np.uint64(oy * ow)
            if iy < 0 or iy >= H:
                for j in range(kw):
                    crow = col[ci * kw + j]
                    for k in range(uow):
                        crow[base + k] = zero
                continue
            xrow = x[c, iy]
            if sw == 1:
                src = xrow
            else:  # split the row into its sw phases: buf[q*nq + k] = x[c, iy, sw*k + q]
                src = buf
                if sw == 2:
                    h = W // 2
                    unq = np.uint64(nq)
                    for k in range(np.uint64(h)):
                        buf[k] = xrow[k + k]
                        buf[unq + k] = xrow[k + k + np.uint64(1)]
                    if W - 2 * h:
                        buf[h] = xrow[W - 1]
                else:
                    for q in range(sw):
                        nqq = (W - q + sw - 1) // sw
                        for k in range(nqq):
                            buf[q * nq + k] = xrow[k * sw + q]
            for j in range(kw):
                crow = col[ci * kw + j]
                a = j * dw - pw  # ix = sw*ox + a = sw*(ox + e) + q
                q = a % sw
                e = (a - q) // sw
                nqq = (W - q + sw - 1) // sw
                lo = 0
                if e < 0:
                    lo = -e
                if lo > ow:
                    lo = ow
                hi = nqq - e
                if hi > ow:
                    hi = ow
                if hi < lo:
                    hi = lo
                ulo = np.uint64(lo)
                uhi = np.uint64(hi)
                for k in range(ulo):
                    crow[base + k] = zero
                d0 = base + ulo
                s0 = np.uint64(q * nq + lo + e)
                for k in range(uhi - ulo):
                    crow[d0 + k] = src[s0 + k]
                for k in range(uhi, uow):
                    crow[base + k] = zero


@numba.njit(parallel=True, cache=True, nogil=True)
def col2im(col, dx, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):  # pragma: no cover
    """dx[c,y,x] = sum over (i, j) in Caffe's order (i, then j) of the col entries that
    im2col took from (c,y,x); 0 where none. Parallel over blocks of rows of dx (about
    128 KB each, so a block stays in L2 while col is streamed once), each pixel's sum
    sequential: the same float additions in the same order as Caffe's col2im_cpu."""
    C, H, W = dx.shape
    zero = np.float32(0.0)
    nq = (W + sw - 1) // sw  # longest phase of a dx row (x = sw*k + q)
    L = sw * nq
    unq = np.uint64(nq)
    nb = (H * L * 4 + _BLOCK_BYTES - 1) // _BLOCK_BYTES  # row blocks per channel
    if nb > H:
        nb = H
    if nb < 1:
        nb = 1
    for task in prange(C * nb):
        c = task // nb
        b = task - c * nb
        y0 = b * H // nb
        y1 = (b + 1) * H // nb
        # stride 1: sum straight into dx; stride > 1: into phase rows buf[(y-y0)*L + q*nq + k]
        buf = np.empty((y1 - y0) * L if sw > 1 else 0, np.float32)
        if sw == 1:
            for y in range(y0, y1):
                drow = dx[c, y]
                for k in range(np.uint64(W)):
                    drow[k] = zero
        else:
            for k in range(np.uint64((y1 - y0) * L)):
                buf[k] = zero
        for i in range(kh):
            for j in range(kw):
                crow = col[(c * kh + i) * kw + j]
                a = j * dw - pw  # x = sw*ox + a = sw*k + q  ->  ox = k + e
                q = a % sw
                e = (q - a) // sw
                nqq = (W - q + sw - 1) // sw
                lo = 0
                if e < 0:
                    lo = -e
                hi = ow - e
                if hi > nqq:
                    hi = nqq
                if hi <= lo:
                    continue
                n = np.uint64(hi - lo)
                for y in range(y0, y1):
                    ny = y + ph - i * dh
                    if ny < 0 or ny % sh != 0:
                        continue
                    oy = ny // sh
                    if oy >= oh:
                        continue
                    s0 = np.uint64(oy * ow + lo + e)
                    if sw == 1:
                        drow = dx[c, y]
                        d0 = np.uint64(lo)
                        for k in range(n):
                            drow[d0 + k] += crow[s0 + k]
                    else:
                        d0 = np.uint64((y - y0) * L + q * nq + lo)
                        for k in range(n):
                            buf[d0 + k] += crow[s0 + k]
        if sw > 1:  # interleave the phases back into dx
            for y in range(y0, y1):
                drow = dx[c, y]
                rb = np.uint64((y - y0) * L)
                if sw == 2:
                    h = W // 2
                    for k in range(np.uint64(h)):
                        drow[k + k] = buf[rb + k]
                        drow[k + k + np.uint64(1)] = buf[rb + unq + k]
                    if W - 2 * h:
                        drow[W - 1] = buf[rb + np.uint64(h)]
                else:
                    for q in range(sw):
                        nqq = (W - q + sw - 1) // sw
                        for k in range(nqq):
                            drow[k * sw + q] = buf[rb + np.uint64(q * nq + k)]


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
        row = y[m, lo:hi]
        n = hi - lo
        b = bias[m]
        if use_bias and relu:
            for k in range(n):
                v = row[k] + b
                a = zero if v < zero else v  # std::max(v, 0)
                s = zero if zero < v else v  # std::min(v, 0)
                row[k] = a + zero * s
        elif use_bias:
            for k in range(n):
                row[k] = row[k] + b
        elif relu:
            for k in range(n):
                v = row[k]
                a = zero if v < zero else v
                s = zero if zero < v else v
                row[k] = a + zero * s


@numba.njit(parallel=True, cache=True, nogil=True)
def relu_backward(y, dy):  # pragma: no cover
    """Caffe's ReLU backward, in place (y is the ReLU's output, dy its diff, both (M,N)):
    dy = dy * ((y > 0) + 0 * (y <= 0)).  The factor is exactly 1.0 or 0.0 (0*1 and 0*0 are
    +0.0, and 1+0, 0+0 are exact), so it is computed as (y > 0) ? 1 : 0; the multiply is
    kept (dy * 0 gives -0.0 for negative dy and NaN for inf/NaN, as in Caffe)."""
    M, N = y.shape
    one, zero = np.float32(1.0), np.float32(0.0)
    for t in prange(M * 8):
        m = t // 8
        part = t - m * 8
        lo = part * N // 8
        hi = (part + 1) * N // 8
        yr = y[m, lo:hi]
        dr = dy[m, lo:hi]
        for k in range(hi - lo):
            f = one if yr[k] > zero else zero
            dr[k] = dr[k] * f


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
