"""The C library's float32 ``tanh``, vectorised, for the Numba backend.

PyTensor's Numba backend computes a float32 ``tanh`` by calling the C
library's scalar ``tanhf`` once per element, and a loop around an opaque
call cannot use SIMD (the docs' performance page has the cost). The original Theano called the same ``tanhf``
(glibc's, which up to glibc 2.40 is fdlibm's algorithm), and the tutorial's
float32 printout depends on its exact roundings: a correctly rounded tanh
moved epoch 2's validation error from 6.18 % to 6.19 %.

So this module re-implements fdlibm's ``tanhf`` and the part of its
``expm1f`` that ``tanhf`` uses, in float32 arithmetic, step for step, but
with every branch turned into a select so that LLVM can vectorise the loop
it is inlined into: the same bits for every one of the 2**32 float32 inputs
as this machine's glibc ``tanhf`` (checked exhaustively; the tests check a
sample), about ten times faster. The algorithm and its constants are
fdlibm's (Sun Microsystems, 1993, freely distributable): for |x| >= 1,
tanh(x) = 1 - 2 / (expm1(2|x|) + 2); below, -t / (t + 2) with
t = expm1(-2|x|); expm1 reduces its argument by k ln 2 and uses a degree-5
rational approximation, then puts the k back into the exponent bits.
"""
import numpy as np
from llvmlite import ir
from numba import carray, prange, types
from numba.extending import intrinsic

from . import native
from .jit import kernel


@intrinsic
def float_bits(typingctx, x):
    """The IEEE bits of a float32, as an int32."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.int32(types.float32), codegen


@intrinsic
def bits_float(typingctx, bits):
    """The float32 with these IEEE bits."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


_f = np.float32
ONE, TWO, THREE, SIX, HALF, QUARTER = _f(1), _f(2), _f(3), _f(6), _f(0.5), _f(0.25)
ONE_MINUS_TINY = _f(1) - _f(1e-30)  # rounds to 1.0
LN2_HI, LN2_LO = _f(6.9313812256e-01), _f(9.0580006145e-06)
INV_LN2 = _f(1.4426950216e+00)
Q1, Q2, Q3 = _f(-3.3333335072e-02), _f(1.5873016091e-03), _f(-7.9365076090e-05)
Q4, Q5 = _f(4.0082177293e-06), _f(-2.0109921195e-07)


# Every case is computed and the answer picked by selects: branches would
# stop the vectorisation that is the point. forceinline puts the function
# into the caller's loop; error_model="numpy" drops Python's zero-division
# checks (the divisors here are never zero).
@kernel(error_model="numpy", forceinline=True)
def expm1f(x):
    """fdlibm's expm1f for the arguments tanhf gives it (-2 < x < 44)."""
    hx = float_bits(x) & 0x7FFFFFFF
    # argument reduction: x = k ln2 + r, k = 0 below 0.5 ln2, +-1 up to 1.5 ln2
    k = np.int32(INV_LN2 * x + (-HALF if x < 0 else HALF))
    k = (np.int32(-1) if x < 0 else np.int32(1)) if hx < 0x3F851592 else k
    k = np.int32(0) if hx <= 0x3EB17218 else k
    t = _f(k)
    hi = x - t * LN2_HI
    lo = t * LN2_LO
    r = hi - lo if k != 0 else x
    c = (hi - r) - lo
    # rational approximation on the reduced range
    hfx = HALF * r
    hxs = r * hfx
    r1 = ONE + hxs * (Q1 + hxs * (Q2 + hxs * (Q3 + hxs * (Q4 + hxs * Q5))))
    t3 = THREE - r1 * hfx
    e = hxs * ((r1 - t3) / (SIX - r * t3))
    if_k0 = r - (r * e - hxs)
    e = (r * (e - c) - c) - hxs
    if_km1 = HALF * (r - e) - HALF
    if_k1 = -TWO * (e - (r + HALF)) if r < -QUARTER else ONE + TWO * (r - e)
    # larger |k|: scale by 2**k through the exponent bits
    shift = k << 23
    y_far = ONE - (e - r)
    if_far = bits_float(np.int32(float_bits(y_far) + shift)) - ONE
    y_mid = bits_float(np.int32(0x3F800000 - (0x1000000 >> (k & 31)))) - (e - r)
    if_mid = bits_float(np.int32(float_bits(y_mid) + shift))
    y_top = (r - (e + bits_float(np.int32((0x7F - k) << 23)))) + ONE
    if_top = bits_float(np.int32(float_bits(y_top) + shift))
    result = if_mid if k < 23 else if_top
    result = if_far if (k <= -2) | (k > 56) else result
    result = if_k1 if k == 1 else result
    result = if_km1 if k == -1 else result
    result = if_k0 if k == 0 else result
    return x if hx < 0x33000000 else result


@kernel(error_model="numpy", forceinline=True)
def tanh_float32(x):
    """tanh of a float32: the same bits as fdlibm's tanhf."""
    bits = float_bits(x)
    ix = bits & 0x7FFFFFFF
    big = ix >= 0x3F800000  # |x| >= 1
    t = expm1f(TWO * abs(x) if big else -TWO * abs(x))
    q = (TWO if big else -t) / (t + TWO)
    z = ONE - q if big else q
    z = ONE_MINUS_TINY if ix >= 0x41B00000 else z  # |x| >= 22
    z = z if bits >= 0 else -z
    z = x * (ONE + x) if ix < 0x24000000 else z  # |x| < 2**-55, and +-0
    # +-inf -> +-1, NaN stays NaN
    return ((ONE / x + ONE) if bits >= 0 else (ONE / x - ONE)) if ix >= 0x7F800000 else z


@kernel(error_model="numpy")
def tanh_run(src, out):
    """out[i] = tanh(src[i]) over two flat arrays. A function of its own, over
    whole arrays, so that the loop vectorises: inside the parallel loop below,
    or from a start index to a stop, it did not (about half the speed)."""
    for i in range(src.size):
        out[i] = tanh_float32(src[i])


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
