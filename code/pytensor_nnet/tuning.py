"""The speed settings, as one explicit call: :func:`tune_for_speed`.

Importing :mod:`pytensor_nnet` registers its Ops and their backends and
changes nothing else in the process. The tutorials call
:func:`tune_for_speed` before compiling; a user's own program may call it
too. Each setting is global to the process, which is why none is made
without being asked for:

``threads``
    OpenBLAS on one thread, the parallelism left to the kernels' Numba
    threads (:func:`pytensor_nnet.threads.use_one_pool`).
``rewrites``
    In every graph compiled afterwards, float32 ``tanh`` becomes
    :class:`~pytensor_nnet.Tanh32` (the same bits, vectorised) and float32
    matrix products become :class:`~pytensor_nnet.BlockedDot` (on the
    kernel threads), and a convolution max-pooled over 2x2 windows becomes
    :class:`~pytensor_nnet.Conv2dMaxPool` (and its gradients fused ones)
    where nothing else uses its full-size output, taking in the bias and
    tanh that follow it where nothing else uses the pooled maps
    (:mod:`pytensor_nnet.conv_pool`). Exclude them from one function with
    ``mode.excluding(*REWRITES)``.
``exact_math``
    Numba's fastmath off, unless ``PYTENSOR_FLAGS`` names
    ``numba__fastmath``: with it, LLVM may reorder float arithmetic and the
    tutorials no longer print the original's numbers.
``nodes``
    Under Numba (the default mode), graphs compiled afterwards run node by
    node (:mod:`pytensor_nnet.node_linker`): a graph that differs from an
    earlier one by a shape or a constant compiles only its new nodes, not
    the whole graph again. The same numbers either way.
``allocator``
    glibc's malloc keeps the memory a training step frees, instead of
    handing large blocks back to the kernel and faulting them in again at
    the next step (Linux only; the process keeps its peak memory).

The measured effect of each is on the docs' performance page.
"""
import ctypes
import ctypes.util
import os
import sys

from . import conv_pool, dot_op, node_linker, tanh_op, threads

#: The names of the rewrites :func:`tune_for_speed` registers.
REWRITES = (tanh_op.REWRITE_NAME, dot_op.REWRITE_NAME, conv_pool.REWRITE_NAME,
            conv_pool.TANH_REWRITE_NAME)

# glibc's mallopt parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def tune_for_speed(*, threads=True, rewrites=True, exact_math=True, nodes=True,
                   allocator=True):
    """Apply the speed settings (see the module docstring); returns those applied.

    Call it before compiling the functions it should affect. Calling it
    again changes nothing more.

    Returns
    -------
    list of str
        The names of the settings that took effect.
    """
    applied = []
    if threads:
        _use_one_pool()
        applied.append("threads")
    if rewrites:
        tanh_op.register_rewrite()
        dot_op.register_rewrite()
        conv_pool.register_rewrite()
        applied.append("rewrites")
    if exact_math and exact_float_math():
        applied.append("exact_math")
    if nodes and node_linker.use_as_default():
        applied.append("nodes")
    if allocator and keep_freed_memory():
        applied.append("allocator")
    return applied


_use_one_pool = threads.use_one_pool  # the argument named ``threads`` hides the module


def exact_float_math():
    """Compile without Numba's fastmath, unless ``PYTENSOR_FLAGS`` names it."""
    import pytensor

    if "numba__fastmath" in os.environ.get("PYTENSOR_FLAGS", ""):
        return False
    pytensor.config.numba__fastmath = False
    return True


def keep_freed_memory():
    """Let glibc's malloc keep freed memory for the next step; False off glibc."""
    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    # glibc caps the mmap threshold at 32 MiB on 64-bit; larger arrays
    # (the training set) are allocated once anyway
    mmap_ok = mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)
    trim_ok = mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    return bool(mmap_ok and trim_ok)
