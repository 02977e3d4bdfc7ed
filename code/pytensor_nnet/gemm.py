"""The matrix product the kernels call: ``?gemm`` of NumPy's OpenBLAS where
the process has it, else Numba's own (SciPy's BLAS, as ``np.dot`` in jitted
code).

Why not ``np.dot``: Numba's ``np.dot`` calls the BLAS that SciPy bundles, and
NumPy's wheel bundles a newer OpenBLAS, which ran most of LeNet's products
faster with the same bits (the docs' performance page has the
measurements). Its ``?gemm`` takes 64-bit integers, which Numba's wrapper
does not, so the kernels call it through a *slot*, a named global holding
its address, as they call each other (see :mod:`pytensor_nnet.native`):
compiled code stays cacheable, and where no such library is loaded (the
slot holds 0) the call goes to Numba's wrapper instead.
"""
import ctypes

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload
from numba.np.linalg import _BLAS, ensure_blas

from . import blas
from .jit import kernel

_SLOTS = {}  # dtype name -> (symbol, slot)
for _kind, _dtype in (("s", "float32"), ("d", "float64")):
    _slot = ctypes.c_int64(blas.ilp64_gemm(_kind))
    _SLOTS[_dtype] = (f"pytensor_nnet_gemm_{_kind}gemm64", _slot)
    llvm.add_symbol(_SLOTS[_dtype][0], ctypes.addressof(_slot))


def library_gemm(dtype):
    """The address the kernels call for ``dtype``'s products (0: Numba's ``?gemm``)."""
    return _SLOTS[np.dtype(dtype).name][1].value


def use_library_gemm(dtype, address):
    """Point the kernels' ``dtype`` products at another 64-bit-int Fortran
    ``?gemm`` (0: Numba's); returns the previous address. For tests."""
    slot = _SLOTS[np.dtype(dtype).name][1]
    previous, slot.value = slot.value, address
    return previous


@intrinsic
def _library_gemm(typingctx, op_a, op_b, m, n, k, a, lda, b, ldb, c, ldc):
    """Column-major ``c = op_a(a) @ op_b(b)`` through the slot of the arrays'
    dtype; returns 1, or 0 (doing nothing) when the slot is empty."""
    arrays = (a, b, c)
    if not all(isinstance(x, types.Array) for x in arrays) \
            or len({x.dtype for x in arrays}) != 1 or str(a.dtype) not in _SLOTS:
        raise TypingError("gemm: three arrays of float32 or float64")
    symbol = _SLOTS[str(a.dtype)][0]
    sig = types.int64(op_a, op_b, m, n, k, a, lda, b, ldb, c, ldc)

    def codegen(context, builder, signature, args):
        i8, i64 = ir.IntType(8), ir.IntType(64)
        number = context.get_data_type(signature.args[5].dtype)
        address = builder.load(context.get_c_value(builder, i64, symbol))
        called = cgutils.alloca_once_value(builder, i64(0))
        with builder.if_then(cgutils.is_not_null(builder, address), likely=True):
            # Fortran passes everything by reference
            def integer(i, width=i64):
                value = context.cast(builder, args[i], signature.args[i], types.int64)
                return cgutils.alloca_once_value(builder, builder.trunc(value, width)
                                                 if width is i8 else value)

            def data(i):
                array = context.make_array(signature.args[i])(context, builder, args[i])
                return builder.bitcast(array.data, number.as_pointer())

            one = cgutils.alloca_once_value(builder, ir.Constant(number, 1.0))
            zero = cgutils.alloca_once_value(builder, ir.Constant(number, 0.0))
            arguments = [integer(0, i8), integer(1, i8), integer(2), integer(3), integer(4),
                         one, data(5), integer(6), data(7), integer(8), zero, data(9),
                         integer(10)]
            fn_type = ir.FunctionType(ir.VoidType(), [x.type for x in arguments])
            builder.call(builder.inttoptr(address, fn_type.as_pointer()), arguments)
            builder.store(i64(1), called)
        return builder.load(called)

    return sig, codegen


def _numba_gemm(op_a, op_b, m, n, k, a, lda, b, ldb, c, ldc):
    """Numba's own ?gemm (SciPy's BLAS); returns its status (0: done)."""
    raise NotImplementedError("jitted code only")


@overload(_numba_gemm, jit_options={"fastmath": False})
def _numba_gemm_impl(op_a, op_b, m, n, k, a, lda, b, ldb, c, ldc):
    ensure_blas()
    xxgemm = _BLAS().numba_xxgemm(a.dtype)
    kind = ord("s") if a.dtype == types.float32 else ord("d")

    def impl(op_a, op_b, m, n, k, a, lda, b, ldb, c, ldc):
        one, zero = np.ones(1, dtype=a.dtype), np.zeros(1, dtype=a.dtype)
        return xxgemm(kind, op_a, op_b, m, n, k, one.ctypes, a.ctypes, lda, b.ctypes, ldb,
                      zero.ctypes, c.ctypes, ldc)

    return impl


@kernel
def gemm(op_a, op_b, m, n, k, a, lda, b, ldb, c, ldc):
    """Fortran ``?gemm`` with alpha 1 and beta 0: column-major ``c`` (m x n,
    leading dimension ``ldc``) = op_a(a) @ op_b(b), ``op`` ``ord('N')`` or
    ``ord('T')``; the arrays' data are the matrices' first elements. Returns
    0 when done (BLAS's status otherwise)."""
    if _library_gemm(op_a, op_b, m, n, k, a, lda, b, ldb, c, ldc):
        return 0
    return _numba_gemm(op_a, op_b, m, n, k, a, lda, b, ldb, c, ldc)


@kernel
def as_blas_operand(x):
    """How column-major BLAS sees row-major ``x``: (op, leading dimension),
    with op 'N' when x's rows are contiguous (BLAS then sees x transposed,
    which is what the row-major product needs) and 'T' when its columns are;
    op 0 when neither (BLAS cannot read it as it is)."""
    rows, cols = x.shape
    s0, s1 = x.strides[0] // x.itemsize, x.strides[1] // x.itemsize
    if (s1 == 1 or cols == 1) and s0 >= max(1, cols):
        return ord("N"), max(1, s0)
    if (s0 == 1 or rows == 1) and s1 >= max(1, rows):
        return ord("T"), max(1, s1)
    return 0, 0


@kernel
def matmul_into(a, b, out):
    """``out = a @ b``, like ``np.dot(a, b, out)``: ``out`` C-contiguous, ``a``
    and ``b`` with their rows or their columns contiguous (a transposed view
    is read as it is). Shapes checked by the caller."""
    m, k = a.shape
    n = b.shape[1]
    if m == 0 or n == 0:
        return
    if k == 0:
        out[:] = 0
        return
    op_a, lda = as_blas_operand(a)
    op_b, ldb = as_blas_operand(b)
    if op_a == 0 or op_b == 0:
        raise ValueError("matmul_into: an operand with neither rows nor columns contiguous")
    # column-major: out.T = b.T @ a.T
    if gemm(op_b, op_a, n, m, k, b, ldb, a, lda, out, n) != 0:
        raise RuntimeError("BLAS ?gemm failed")
