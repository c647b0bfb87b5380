"""glibc 2.31's powf in numba, vectorised, with glibc's own bits (x86_64 FMA build, __powf_fma).

Why: Caffe's LRN computes scale^-beta with powf for every element (9.4 M a step at 1024x576);
numba's `s ** y` calls libm's powf one element at a time, 80% of the engine's LRN forward.
This is the same algorithm on 16 lanes at a time, 2.5-3x faster. The engine's LRN uses it
only for beta = 0.75 (every LRN of the Caffe model zoo), where it was checked against libm
on every positive finite float32 (2^31 - 2^23 inputs, 0 mismatches; bench/powf_exhaustive.py
reruns that check), and elsewhere keeps `**`; tests/integration/in_image/check_lrn.py checks
a sample in every test run.

glibc sysdeps/ieee754/flt-32/e_powf.c (= ARM optimized-routines math/powf.c) with
POWF_LOG2_TABLE_BITS=4, POWF_LOG2_POLY_ORDER=5, POWF_SCALE_BITS=0 (TOINT_INTRINSICS=0),
EXP2F_TABLE_BITS=5, all arithmetic in double, one rounding to float at the end.

The FMA build (GCC -mfma -mavx2, -ffp-contract=fast) fuses every a*b+c of the source;
the fusions were read off the disassembly of __powf_fma in Debian's libm-2.31.so
(vfmadd for z*invc-1, A0*r+A1, A2*r+A3, A4*r+y0, p*r2+q, y*r4+q, C0*r+C1, C2*r+1,
z*r2+y; plain vmulsd for r*r, r2*r2, y*logx, y*s) and are reproduced here with the
llvm.fma.f64 intrinsic (exactly one rounding, vectorises to vfmadd..pd), NOT with
fastmath contraction: this module's functions are compiled without fastmath, so their
instructions carry no fast-math flags and stay exact even when LLVM inlines them into
a caller compiled with fastmath=True / {'contract'}.  Do not call them with
numba's inline='always' (that would re-type them under the caller's flags).
The tables below are the values of libm-2.31.so's .rodata (checked byte for byte).

API (all usable from other @njit kernels, all cache=True-safe):
  powf_glibc(x, y)      float32 scalars -> float32; exact for every input: fast path
                        for x > 0 finite (normal and subnormal) with y finite nonzero
                        and |y*log2 x| < 126, otherwise the libm powf call itself.
  pow_into(src, dst, y) serial, 1-D C-contiguous float32 arrays, dst[i] = powf(src[i], y);
                        main loop in explicit LLVM vector IR (VW=16 lanes, AVX2
                        <4 x double> ops + vfmadd..pd, table loads per lane) + scalar
                        fix-up of the rare elements outside the fast path.  Exact
                        for every input.  dst must not overlap src.
  pow_array(src, dst, y) the same, parallel (prange over 8192-element chunks).

The fast path covers x > 0 finite (normal; subnormal in powf_glibc) with y finite,
nonzero and |y*log2 x| < 126: for y = -0.75 that is every positive finite x.
Everything else (x <= 0, inf, nan, y = 0/inf/nan, overflow/underflow range) calls the
process's libm powf, so results (and errno/flags) are libm's own.
"""

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

# ---------------------------------------------------------------- bit casts / fma
_i32 = ir.IntType(32)
_i64 = ir.IntType(64)
_f32 = ir.FloatType()
_f64 = ir.DoubleType()


@intrinsic
def _f32_bits(typingctx, x):
    """float32 -> its bits, zero-extended to int64 (0 .. 2^32-1)."""
    if x != types.float32:
        return None

    def cg(context, builder, sig, args):
        return builder.zext(builder.bitcast(args[0], _i32), _i64)

    return types.int64(types.float32), cg


@intrinsic
def _bits_f32(typingctx, i):
    """low 32 bits of an int64 -> float32."""
    if i != types.int64:
        return None

    def cg(context, builder, sig, args):
        return builder.bitcast(builder.trunc(args[0], _i32), _f32)

    return types.float32(types.int64), cg


@intrinsic
def _f64_bits(typingctx, x):
    if x != types.float64:
        return None

    def cg(context, builder, sig, args):
        return builder.bitcast(args[0], _i64)

    return types.int64(types.float64), cg


@intrinsic
def _bits_f64(typingctx, i):
    if i != types.int64:
        return None

    def cg(context, builder, sig, args):
        return builder.bitcast(args[0], _f64)

    return types.float64(types.int64), cg


@intrinsic
def _fma(typingctx, a, b, c):
    """fused a*b+c in double (llvm.fma.f64: one rounding, vfmadd on FMA hardware)."""
    if not (a == types.float64 and b == types.float64 and c == types.float64):
        return None

    def cg(context, builder, sig, args):
        fn = builder.module.declare_intrinsic('llvm.fma', [_f64], ir.FunctionType(_f64, [_f64, _f64, _f64]))
        return builder.call(fn, args)

    return types.float64(types.float64, types.float64, types.float64), cg


@intrinsic
def _opaque(typingctx, x):
    """identity on float32 that LLVM cannot see through, so that a compile-time
    constant y never lets LLVM rewrite the libm fallback pow (e.g. into sqrt)."""
    if x != types.float32:
        return None

    def cg(context, builder, sig, args):
        asm = ir.InlineAsm(ir.FunctionType(_f32, [_f32]), "", "=x,0")
        return builder.call(asm, args)

    return types.float32(types.float32), cg


# ---------------------------------------------------------------- glibc data
_h = float.fromhex
_LOG2_TAB = [  # (invc, logc), __powf_log2_data.tab, POWF_SCALE = 1
    ("0x1.661ec79f8f3bep+0", "-0x1.efec65b963019p-2"),
    ("0x1.571ed4aaf883dp+0", "-0x1.b0b6832d4fca4p-2"),
    ("0x1.49539f0f010bp+0", "-0x1.7418b0a1fb77bp-2"),
    ("0x1.3c995b0b80385p+0", "-0x1.39de91a6dcf7bp-2"),
    ("0x1.30d190c8864a5p+0", "-0x1.01d9bf3f2b631p-2"),
    ("0x1.25e227b0b8eap+0", "-0x1.97c1d1b3b7afp-3"),
    ("0x1.1bb4a4a1a343fp+0", "-0x1.2f9e393af3c9fp-3"),
    ("0x1.12358f08ae5bap+0", "-0x1.960cbbf788d5cp-4"),
    ("0x1.0953f419900a7p+0", "-0x1.a6f9db6475fcep-5"),
    ("0x1p+0", "0x0p+0"),
    ("0x1.e608cfd9a47acp-1", "0x1.338ca9f24f53dp-4"),
    ("0x1.ca4b31f026aap-1", "0x1.476a9543891bap-3"),
    ("0x1.b2036576afce6p-1", "0x1.e840b4ac4e4d2p-3"),
    ("0x1.9c2d163a1aa2dp-1", "0x1.40645f0c6651cp-2"),
    ("0x1.886e6037841edp-1", "0x1.88e9c2c1b9ff8p-2"),
    ("0x1.767dcf5534862p-1", "0x1.ce0a44eb17bccp-2"),
]
INVC = np.array([_h(a) for a, _ in _LOG2_TAB], np.float64)
LOGC = np.array([_h(b) for _, b in _LOG2_TAB], np.float64)
A0 = _h("0x1.27616c9496e0bp-2")
A1 = _h("-0x1.71969a075c67ap-2")
A2 = _h("0x1.ec70a6ca7baddp-2")
A3 = _h("-0x1.7154748bef6c8p-1")
A4 = _h("0x1.71547652ab82bp0")
EXP2T = np.array(
    [  # __exp2f_data.tab, N = 32
        0x3FF0000000000000,
        0x3FEFD9B0D3158574,
        0x3FEFB5586CF9890F,
        0x3FEF9301D0125B51,
        0x3FEF72B83C7D517B,
        0x3FEF54873168B9AA,
        0x3FEF387A6E756238,
        0x3FEF1E9DF51FDEE1,
        0x3FEF06FE0A31B715,
        0x3FEEF1A7373AA9CB,
        0x3FEEDEA64C123422,
        0x3FEECE086061892D,
        0x3FEEBFDAD5362A27,
        0x3FEEB42B569D4F82,
        0x3FEEAB07DD485429,
        0x3FEEA47EB03A5585,
        0x3FEEA09E667F3BCD,
        0x3FEE9F75E8EC5F74,
        0x3FEEA11473EB0187,
        0x3FEEA589994CCE13,
        0x3FEEACE5422AA0DB,
        0x3FEEB737B0CDC5E5,
        0x3FEEC49182A3F090,
        0x3FEED503B23E255D,
        0x3FEEE89F995AD3AD,
        0x3FEEFF76F2FB5E47,
        0x3FEF199BDD85529C,
        0x3FEF3720DCEF9069,
        0x3FEF5818DCFBA487,
        0x3FEF7C97337B9B5F,
        0x3FEFA4AFA2A490DA,
        0x3FEFD0765B6E4540,
    ],
    np.int64,
)
SHIFT = _h("0x1.8p+52") / 32  # __exp2f_data.shift_scaled
C0 = _h("0x1.c6af84b912394p-5")
C1 = _h("0x1.ebfce50fac4f3p-3")
C2 = _h("0x1.62e42ff0c52d6p-1")
OFF = 0x3F330000
BIG = 0x80BF  # asuint64(126.0) >> 47


# ---------------------------------------------------------------- explicit SIMD body
# LLVM 9 will not auto-vectorise the table loads on this CPU (no fast gather), so the
# main loop body is written directly as LLVM vector IR: the same operations, in the
# same order, on VW lanes (<VW x double> = VW/4 ymm registers), table loads done lane
# by lane.  Lanes whose x is not positive-normal-finite or whose |y log2 x| >= 126 are
# flagged (return value != 0) and must be redone by the scalar code.
VW = 16  # lanes per step (16 measured a bit faster than 8 or 4)


def _vconst(ty, v):
    return ir.Constant(ir.VectorType(ty, VW), [ir.Constant(ty, v)] * VW)


def _table(module, name, elty, values):
    name = "fastpow_tab_" + name
    if name in module.globals:
        return module.globals[name]
    aty = ir.ArrayType(elty, len(values))
    g = ir.GlobalVariable(module, aty, name)
    g.initializer = ir.Constant(aty, [ir.Constant(elty, v) for v in values])
    g.global_constant = True
    g.linkage = "internal"
    return g


def _lookup(builder, g, idx, elty):
    """vector of g[idx[lane]] (idx: <VW x i64>), one scalar load per lane."""
    res = ir.Constant(ir.VectorType(elty, VW), ir.Undefined)
    zero = ir.Constant(_i64, 0)
    for lane in range(VW):
        ln = ir.Constant(_i32, lane)
        ii = builder.extract_element(idx, ln)
        v = builder.load(builder.gep(g, [zero, ii], inbounds=True))
        res = builder.insert_element(res, v, ln)
    return res


@intrinsic
def _pow_vec(typingctx, src, dst, j, yd):
    """dst[j:j+VW] = powf(src[j:j+VW], y) on the fast path; returns the bad-lane mask."""
    if not (
        isinstance(src, types.Array)
        and isinstance(dst, types.Array)
        and src.dtype == types.float32
        and dst.dtype == types.float32
        and src.ndim == 1
        and dst.ndim == 1
        and src.layout == 'C'
        and dst.layout == 'C'
        and isinstance(j, types.Integer)
        and yd == types.float64
    ):
        return None
    sig = types.int64(src, dst, types.int64, types.float64)

    def cg(context, builder, sig, args):
        mod = builder.module
        sarr = context.make_array(sig.args[0])(context, builder, args[0])
        darr = context.make_array(sig.args[1])(context, builder, args[1])
        jj = args[2]
        vf32 = ir.VectorType(_f32, VW)
        vf64 = ir.VectorType(_f64, VW)
        vi32 = ir.VectorType(_i32, VW)
        vi64 = ir.VectorType(_i64, VW)
        fma = mod.get_or_insert_function(ir.FunctionType(vf64, [vf64] * 3), 'llvm.fma.v%df64' % VW)
        tinvc = _table(mod, "invc", _f64, [float(v) for v in INVC])
        tlogc = _table(mod, "logc", _f64, [float(v) for v in LOGC])
        texp2 = _table(mod, "exp2", _i64, [int(v) for v in EXP2T])

        def D(v):
            return _vconst(_f64, v)

        def I32(v):
            return _vconst(_i32, v)

        def I64(v):
            return _vconst(_i64, v)

        b = builder

        sp = b.bitcast(b.gep(sarr.data, [jj]), vf32.as_pointer())
        dp = b.bitcast(b.gep(darr.data, [jj]), vf32.as_pointer())
        xv = b.load(sp, align=4)
        ix = b.bitcast(xv, vi32)
        # (ix - 0x00800000) >= 0x7f000000 unsigned: x not positive normal finite
        bad = b.icmp_unsigned('>=', b.sub(ix, I32(0x00800000)), I32(0x7F000000))
        # log2_inline (uint32 arithmetic as in C)
        tmp = b.sub(ix, I32(OFF))
        i = b.and_(b.lshr(tmp, I32(19)), I32(15))
        top = b.and_(tmp, I32(0xFF800000 - (1 << 32)))
        iz = b.sub(ix, top)
        k = b.ashr(top, I32(23))
        i64 = b.zext(i, vi64)
        invc = _lookup(b, tinvc, i64, _f64)
        logc = _lookup(b, tlogc, i64, _f64)
        z = b.fpext(b.bitcast(iz, vf32), vf64)
        r = b.call(fma, [z, invc, D(-1.0)])
        y0 = b.fadd(logc, b.sitofp(k, vf64))
        r2 = b.fmul(r, r)
        y = b.call(fma, [D(A0), r, D(A1)])
        p = b.call(fma, [D(A2), r, D(A3)])
        r4 = b.fmul(r2, r2)
        q = b.call(fma, [D(A4), r, y0])
        q = b.call(fma, [p, r2, q])
        logx = b.call(fma, [y, r4, q])
        ydv = b.insert_element(ir.Constant(vf64, ir.Undefined), args[3], ir.Constant(_i32, 0))
        ydv = b.shuffle_vector(
            ydv, ir.Constant(vf64, ir.Undefined), ir.Constant(vi32, [ir.Constant(_i32, 0)] * VW)
        )
        ylogx = b.fmul(ydv, logx)
        yb = b.bitcast(ylogx, vi64)
        big = b.icmp_unsigned('>=', b.and_(b.lshr(yb, I64(47)), I64(0xFFFF)), I64(BIG))
        bad = b.or_(bad, big)
        # exp2_inline, sign_bias = 0
        kd = b.fadd(ylogx, D(SHIFT))
        ki = b.bitcast(kd, vi64)
        kd = b.fsub(kd, D(SHIFT))
        r = b.fsub(ylogx, kd)
        t = b.add(_lookup(b, texp2, b.and_(ki, I64(31)), _i64), b.shl(ki, I64(47)))
        s = b.bitcast(t, vf64)
        z = b.call(fma, [D(C0), r, D(C1)])
        r2 = b.fmul(r, r)
        y = b.call(fma, [D(C2), r, D(1.0)])
        y = b.call(fma, [z, r2, y])
        y = b.fmul(y, s)
        b.store(b.fptrunc(y, vf32), dp, align=4)
        return b.zext(b.bitcast(bad, ir.IntType(VW)), _i64)

    return sig, cg


# ---------------------------------------------------------------- the algorithm
@njit(cache=True)
def _core(ix, yd):
    """powf fast path.  ix: bits of x > 0 as a signed int64 (subnormals already
    normalised to a negative biased exponent, as glibc does), yd = (double) y.
    Returns (float32 result, ylogx); valid when |ylogx| < 126 (see _big)."""
    # log2_inline
    tmp = ix - OFF
    i = (tmp >> 19) & 15
    top = tmp & -8388608  # tmp & 0xff800000, sign-extended
    iz = ix - top
    k = top >> 23  # arithmetic shift
    invc = INVC[i]
    logc = LOGC[i]
    z = np.float64(_bits_f32(iz))
    r = _fma(z, invc, -1.0)
    y0 = logc + np.float64(k)
    r2 = r * r
    y = _fma(A0, r, A1)
    p = _fma(A2, r, A3)
    r4 = r2 * r2
    q = _fma(A4, r, y0)
    q = _fma(p, r2, q)
    logx = _fma(y, r4, q)
    ylogx = yd * logx
    # exp2_inline, sign_bias = 0
    kd = ylogx + SHIFT
    ki = _f64_bits(kd)
    kd = kd - SHIFT
    r = ylogx - kd
    t = EXP2T[ki & 31] + (ki << 47)
    s = _bits_f64(t)
    z = _fma(C0, r, C1)
    r2 = r * r
    y = _fma(C2, r, 1.0)
    y = _fma(z, r2, y)
    y = y * s
    return np.float32(y), ylogx


@njit(cache=True)
def _big(ylogx):
    """glibc's (asuint64(ylogx) >> 47 & 0xffff) >= asuint64(126.0) >> 47."""
    return ((_f64_bits(ylogx) >> 47) & 0xFFFF) >= BIG


@njit(cache=True)
def _zeroinfnan(iu):
    """iu: bits zero-extended; true for +-0, +-inf, nan."""
    return ((2 * iu - 1) & 0xFFFFFFFF) >= 0xFEFFFFFF


@njit(cache=True)
def libm_powf(x, y):
    """the process's libm powf (numba lowers float32 ** float32 to llvm.pow.f32 = powf)."""
    return x ** _opaque(y)


@njit(cache=True)
def powf_glibc(x, y):
    """powf(x, y) for float32 scalars, bitwise equal to glibc 2.31 __powf_fma."""
    ix = _f32_bits(x)
    iy = _f32_bits(y)
    if ix - 0x00800000 >= 0x7F000000 or ix < 0x00800000 or _zeroinfnan(iy):
        if ix != 0 and ix < 0x00800000 and not _zeroinfnan(iy):
            # positive subnormal x: normalise as glibc does
            ix = (_f32_bits(x * np.float32(8388608.0)) & 0x7FFFFFFF) - (23 << 23)
        else:
            return libm_powf(x, y)  # x <= 0, inf, nan; y 0, inf, nan
    res, ylogx = _core(ix, np.float64(y))
    if _big(ylogx):
        return libm_powf(x, y)  # overflow / underflow handling (errno etc.)
    return res


@njit(cache=True)
def pow_into(src, dst, y):
    """dst[i] = powf(src[i], y) for 1-D C-contiguous float32 arrays (no overlap),
    serial.  Main loop: _pow_vec on VW lanes at a time; elements outside the fast
    path (x not positive-normal-finite, |y log2 x| >= 126) are redone by powf_glibc
    / libm powf afterwards."""
    n = src.shape[0]
    if _zeroinfnan(_f32_bits(y)):
        for i in range(n):
            dst[i] = libm_powf(src[i], y)
        return
    yd = np.float64(y)
    bad = 0
    nv = n - n % VW
    for j in range(0, nv, VW):
        bad |= _pow_vec(src, dst, j, yd)
    for i in range(nv, n):
        ix = _f32_bits(src[i])
        res, ylogx = _core(ix, yd)
        dst[i] = res
        bad |= (ix - 0x00800000 >= 0x7F000000) | (ix < 0x00800000) | _big(ylogx)
    if bad:
        for i in range(n):
            ix = _f32_bits(src[i])
            if ix - 0x00800000 >= 0x7F000000 or ix < 0x00800000:
                dst[i] = powf_glibc(src[i], y)
            else:
                res, ylogx = _core(ix, yd)
                if _big(ylogx):
                    dst[i] = libm_powf(src[i], y)


CHUNK = 8192


@njit(parallel=True, cache=True)
def pow_array(src, dst, y):
    """dst[i] = powf(src[i], y), 1-D float32 arrays (no overlap), parallel."""
    n = src.shape[0]
    nchunk = (n + CHUNK - 1) // CHUNK
    for c in prange(nchunk):
        a = c * CHUNK
        b = min(a + CHUNK, n)
        pow_into(src[a:b], dst[a:b], y)
