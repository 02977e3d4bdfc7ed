"""The C library's float32 ``tanh``, vectorised, for the Numba backend.

PyTensor's Numba backend computes a float32 ``tanh`` by calling the C
library's scalar ``tanhf`` once per element, and a loop around an opaque
call cannot use SIMD (the docs' performance page has the cost). The original Theano called the same ``tanhf``
(glibc's, which up to glibc 2.40 is fdlibm's algorithm), and the tutorial's
float32 printout depends on its exact roundings: a correctly rounded tanh
moved epoch 2's validation error from 6.18 % to 6.19 %.

So this module re-implements fdlibm's ``tanhf`` and the part of its
``expm1f`` that ``tanhf`` uses, in float32 arithmetic, with the same
roundings, but with every branch turned into a select so that LLVM can
vectorise the loop it is inlined into: the same bits for every one of the
2**32 float32 inputs as this machine's glibc ``tanhf`` (checked
exhaustively; the tests check a sample), about ten times faster. The
algorithm and its constants are fdlibm's (Sun Microsystems, 1993, freely
distributable): for |x| >= 1, tanh(x) = 1 - 2 / (expm1(2|x|) + 2); below,
-t / (t + 2) with t = expm1(-2|x|); expm1 reduces its argument by k ln 2 and
uses a degree-5 rational approximation, then puts the k back. ``tanhf`` only
asks ``expm1f`` for arguments in (-2, 0] (k from -3 to 0) or [2, 44) (k from
3 up), so expm1f's other cases are left out, and the ones left share one
formula where that gives the same roundings. The integer work stays in
32-bit lanes (Numba would widen it to 64), through the small LLVM
intrinsics below.
"""
import numpy as np
from llvmlite import ir
from numba import carray, prange, types
from numba.extending import intrinsic, overload

from . import native
from .jit import kernel


@intrinsic
def trunc_float(typingctx, x):
    """A float32 rounded toward zero (C's float-to-int conversion), still a float32."""
    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        trunc = builder.module.declare_intrinsic("llvm.trunc", [f32], ir.FunctionType(f32, [f32]))
        return builder.call(trunc, args)
    return types.float32(types.float32), codegen


@intrinsic
def trunc_int(typingctx, x):
    """A whole-number float32 as an int32."""
    def codegen(context, builder, signature, args):
        return builder.fptosi(args[0], ir.IntType(32))
    return types.int32(types.float32), codegen


@intrinsic
def pow2(typingctx, k):
    """2.0 ** k as a float32, built in the exponent bits (-126 <= k <= 127)."""
    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        biased = builder.add(args[0], ir.Constant(i32, 127))
        return builder.bitcast(builder.shl(biased, ir.Constant(i32, 23)), ir.FloatType())
    return types.float32(types.int32), codegen


@intrinsic
def or_sign(typingctx, z, x):
    """z with the sign bit of x: ``copysign(z, x)`` for z >= +0."""
    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        sign = builder.and_(builder.bitcast(args[1], i32), ir.Constant(i32, -0x80000000))
        return builder.bitcast(builder.or_(builder.bitcast(args[0], i32), sign), ir.FloatType())
    return types.float32(types.float32, types.float32), codegen


_f = np.float32
ZERO, ONE, TWO, THREE, SIX, HALF = _f(0), _f(1), _f(2), _f(3), _f(6), _f(0.5)
LN2_HI, LN2_LO = _f(6.9313812256e-01), _f(9.0580006145e-06)
INV_LN2 = _f(1.4426950216e+00)
Q1, Q2, Q3 = _f(-3.3333335072e-02), _f(1.5873016091e-03), _f(-7.9365076090e-05)
Q4, Q5 = _f(4.0082177293e-06), _f(-2.0109921195e-07)
# tanhf's result is 1.0 from |x| of about 9.01 on (fdlibm's own cut-off is
# 22); clamping |x| there keeps expm1f's k at 47 or below
CLAMP = _f(16)


# Every case is computed and the answer picked by selects: branches would
# stop the vectorisation that is the point. forceinline puts the function
# into the caller's loop; error_model="numpy" drops Python's zero-division
# checks (the divisors here are never zero).
@kernel(error_model="numpy", forceinline=True)
def expm1f(x):
    """fdlibm's expm1f for the arguments tanhf gives it, -2 < x <= 0 or
    2 <= x <= 32. From k = 25 up (x > 16.9), where 2**k - 1 below is
    rounded, the last bit may differ from expm1f's, which tanh's
    1 - 2 / (t + 2), then within a few ulps of 1, does not show (checked
    exhaustively)."""
    # argument reduction: x = k ln2 + r. For these x, this rounding also gives
    # the k = 0 (below 0.5 ln2) and k = -1 (to 1.5 ln2) that fdlibm sets
    t = trunc_float(INV_LN2 * x + or_sign(HALF, x))
    k = trunc_int(t)
    hi = x - t * LN2_HI
    lo = t * LN2_LO
    r = hi - lo
    c = (hi - r) - lo  # 0 when k = 0, as fdlibm's branch for it has
    # rational approximation on the reduced range
    hfx = HALF * r
    hxs = r * hfx
    r1 = ONE + hxs * (Q1 + hxs * (Q2 + hxs * (Q3 + hxs * (Q4 + hxs * Q5))))
    t3 = THREE - r1 * hfx
    e = hxs * ((r1 - t3) / (SIX - r * t3))
    e = (r * (e - c) - c) - hxs  # with c = 0, fdlibm's r * e - hxs for k = 0
    # put the k back. k = -2, -3: fdlibm's (1 - (e - r)) 2**k - 1. Else
    # (r - e) 2**k + (2**k - 1): for k = 0 fdlibm's r - e (x itself for
    # |x| < 2**-25, as its branch for those returns), for k = -1 its
    # (r - e) / 2 - 1/2, for 3 <= k <= 22 its (1 - 2**-k - (e - r)) 2**k
    # (scaling by 2**k commutes with rounding), and the same bits as its
    # other formulas for k = 23 and 24
    scale = pow2(k)
    far = k < -1
    return ((ONE if far else ZERO) + (r - e)) * scale + (-ONE if far else scale - ONE)


@kernel(error_model="numpy", forceinline=True)
def tanh_float32(x):
    """tanh of a float32: the same bits as fdlibm's tanhf."""
    a = abs(x)
    big = a >= ONE
    a = a if a < CLAMP else CLAMP  # and NaN -> CLAMP, replaced below
    y = a + a
    t = expm1f(y if big else -y)
    # 1 - 2 / (t + 2), or 0 - t / (t + 2) = -t / (t + 2): both >= +0, so the
    # sign of x can be or-ed in. Tiny |x| and +-0 come out as x, like
    # tanhf's x * (1 + x); +-inf, clamped, as +-1
    z = (ONE if big else ZERO) - (TWO if big else t) / (t + TWO)
    # NaN stays NaN, quieted, as tanhf's 1 / x + 1 leaves it
    return x + x if x != x else or_sign(z, x)


@intrinsic
def vector_loop_function(typingctx):
    """Called first in a function that is one loop to vectorise: keeps LLVM
    from inlining the function into its callers, where the loop ran several
    times slower (inside a parallel loop, see :func:`tanh_run`, and inside
    the fused convolution's blocks), and lets it use the widest vectors the
    CPU has. On AVX-512 CPUs LLVM otherwise keeps to 256-bit vectors (its
    default tuning for them, against the clock slowdown some older ones
    have); the tanh loops are bound by arithmetic, not memory, and 512-bit
    vectors compute the same bits in fewer instructions (the docs' page on
    the Ops has the times).
    ``prefer-vector-width`` is a string attribute, which llvmlite's
    attribute set does not list, hence ``set.add``."""
    def codegen(context, builder, signature, args):
        builder.function.attributes.add("noinline")
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()
    return types.none(), codegen


@kernel(error_model="numpy")
def tanh_run(src, out):
    """out[i] = tanh(src[i]) over two flat arrays. A function of its own, over
    whole arrays, so that the loop vectorises: inside the parallel loop below,
    or from a start index to a stop, it did not (about half the speed)."""
    vector_loop_function()
    for i in range(src.size):
        out[i] = tanh_float32(src[i])


def tanh_of(x):
    """tanh of a float: :func:`tanh_float32` for a float32, else NumPy's
    (the C library's ``tanh``, as PyTensor's float64 tanh). Compiled code only."""
    raise NotImplementedError("tanh_of runs in compiled code only")


@overload(tanh_of, inline="always")
def _tanh_of(x):
    if x == types.float32:
        return lambda x: tanh_float32(x)
    return lambda x: np.tanh(x)


@kernel(error_model="numpy")
def tanh_plus_run(x, shift):
    """x[i] = tanh(x[i] + shift[i]), in place over two flat arrays: the fused
    convolution's last step (see :mod:`pytensor_nnet.conv_pool`); the sum
    rounded to x's type first, as the graph's addition does."""
    vector_loop_function()
    for i in range(x.size):
        x[i] = tanh_of(x[i] + shift[i])


# elements per parallel chunk: large enough that starting a thread is cheap
# beside it, small enough that LeNet's 1.4 million outputs make 22 chunks
CHUNK = 1 << 16


@kernel(error_model="numpy", parallel=True)
def tanh_chunks(src, out):
    """out = :func:`tanh_float32` of src, two flat arrays, in chunks on
    Numba's threads."""
    n = src.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        start, stop = c * CHUNK, min(n, (c + 1) * CHUNK)
        tanh_run(src[start:stop], out[start:stop])


def tanh_native(src, out, unused2, unused3, params):
    """The native kernel (see :mod:`pytensor_nnet.native`); params: the size."""
    n = params[0]
    tanh_chunks(carray(src, (n,)), carray(out, (n,)))
    return native.OK


TANH = native.NativeKernel("tanh_float32", tanh_native, ("float32",))
tanh_call = TANH.call


@kernel
def tanh_array(x):
    """Elementwise :func:`tanh_float32` of a float32 array (a new array), in
    chunks on Numba's threads."""
    out = np.empty(x.shape, dtype=np.float32)
    native.check(tanh_call(native.contiguous(x), out, None, None, native.int_params((x.size,))))
    return out
