"""A float32 matrix product split into blocks of rows, on Numba's threads.

BLAS runs on one thread here (see :mod:`pytensor_nnet.threads`), so a plain
``np.dot`` uses one core. :func:`blocked_dot` cuts the rows of the result
into blocks of at least :data:`BLOCK_ROWS` rows and calls ``sgemm`` (see
:mod:`pytensor_nnet.gemm`) once per block, the blocks running on Numba's
threads, so LeNet's hidden-layer products (500x800 by 800x500 and its two
gradients) use every core.

``sgemm`` is called directly, with each operand's own leading dimension, so
that a block of a transposed operand (``x.T[r0:r1]``) needs no copy. The
blocking depends only on the shapes, never on the thread count: the results
are the same for any number of threads (the last bits differ from one
``np.dot`` of the whole, as they do between any two matrix shapes in
BLAS).

The blocks run in a native kernel (see :mod:`pytensor_nnet.native`), given
each operand's memory and BLAS layout; the driver :func:`blocked_dot` checks
the shapes, works out the layouts (copying an operand BLAS cannot read) and
allocates the result.
"""
import numpy as np
from numba import carray, prange

from . import native
from .gemm import as_blas_operand, gemm
from .jit import kernel

# Rows per block, at least: blocks this tall keep BLAS near its one-core
# speed, and LeNet's 500 and 800 rows split into 2 and 4 even blocks.
BLOCK_ROWS = 200


@kernel
def gemm_rows(a, a_row, op_a, lda, b, op_b, ldb, out, k, r0, r1):
    """``out[r0:r1] = a[r0:r1] @ b``, one ``sgemm`` call; returns its status.
    ``a`` and ``b``: the operands' memory, flat; ``a_row``: elements from one
    row of ``a`` to the next; ``(op, ld)`` from :func:`as_blas_operand`;
    ``out`` C-contiguous."""
    n = out.shape[1]
    # column-major: out.T[:, r0:r1] = b.T @ a[r0:r1].T
    return gemm(op_b, op_a, n, r1 - r0, k, b, ldb, a[r0 * a_row:], lda, out[r0:r1], n)


@kernel
def row_blocks(m):
    """(rows per block, number of blocks) for a result of ``m`` rows."""
    n_blocks = max(1, m // BLOCK_ROWS)
    rows = (m + n_blocks - 1) // n_blocks
    return rows, (m + rows - 1) // rows


@kernel
def blas_operand(x):
    """``x`` or, when BLAS cannot read it as it is, a C-contiguous copy; with
    its ``(op, leading dimension)``."""
    op, ld = as_blas_operand(x)
    if op == 0:
        x = native.contiguous(x)
        op, ld = as_blas_operand(x)
    return x, op, ld


@kernel
def span(rows, cols, op, ld):
    """Elements from the first to the last of an operand in BLAS layout (op, ld)."""
    if op == ord("N"):
        return (rows - 1) * ld + cols
    return (cols - 1) * ld + rows


@kernel(parallel=True)
def blocked_rows(a, op_a, lda, b, op_b, ldb, out, k):
    """``out = a @ b`` by blocks of rows (see :func:`gemm_rows`); True when
    every ``sgemm`` call succeeded."""
    m = out.shape[0]
    a_row = lda if op_a == ord("N") else 1
    rows, n_blocks = row_blocks(m)
    status = np.empty(n_blocks, dtype=np.int64)
    for t in prange(n_blocks):
        r0 = t * rows
        status[t] = gemm_rows(a, a_row, op_a, lda, b, op_b, ldb, out, k, r0, min(m, r0 + rows))
    return not status.any()


# params: m, k, n, op_a, lda, op_b, ldb
BLAS_FAILED = 2


def blocked_dot_native(a, b, out, unused, params):
    p = carray(params, (7,))
    m, k, n, op_a, lda, op_b, ldb = p[0], p[1], p[2], p[3], p[4], p[5], p[6]
    done = blocked_rows(carray(a, (span(m, k, op_a, lda),)), op_a, lda,
                        carray(b, (span(k, n, op_b, ldb),)), op_b, ldb, carray(out, (m, n)), k)
    return native.OK if done else BLAS_FAILED


BLOCKED_DOT = native.NativeKernel("blocked_dot", blocked_dot_native, ("float32",))
blocked_dot_call = BLOCKED_DOT.call


@kernel
def blocked_dot(a, b):
    """``a @ b`` for float32 matrices, in blocks of rows on Numba's threads."""
    m, k = a.shape
    if b.shape[0] != k:
        raise ValueError("blocked_dot: the inner dimensions of the two matrices differ")
    n = b.shape[1]
    out = np.empty((m, n), dtype=np.float32)
    if m == 0 or n == 0:
        return out
    if k == 0:
        out[:] = 0
        return out
    a, op_a, lda = blas_operand(a)
    b, op_b, ldb = blas_operand(b)
    params = native.int_params((m, k, n, op_a, lda, op_b, ldb))
    status = blocked_dot_call(a, b, out, None, params)
    if status == BLAS_FAILED:
        raise RuntimeError("blocked_dot: BLAS sgemm failed")
    native.check(status)
    return out
