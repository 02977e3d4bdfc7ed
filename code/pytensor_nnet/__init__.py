"""Theano's ``conv2d`` and ``pool_2d``, brought back for PyTensor.

``from pytensor_nnet import conv2d, pool_2d`` gives the functions with
Theano's signatures and semantics. They build graph Ops with gradients and
implementations for every PyTensor backend: Python/C (``perform``), Numba
(the default mode) and JAX (``mode='JAX'``, the GPU path; registered when
``jax`` is installed).

The kernels run blocks of images on Numba's threads; importing the package
sets BLAS to one thread so that only one thread pool runs (see
:mod:`pytensor_nnet.threads`, which also sets the number of threads).
"""
import importlib.util

from . import threads

threads.use_one_pool()

from . import numba_dispatch  # noqa: F401  (registers the Numba backend)
from . import dot_op  # noqa: F401  (registers the float32 matrix-product rewrite)
from . import tanh_op  # noqa: F401  (registers the float32 tanh rewrite)
from .conv import Conv2d, Conv2dGradInputs, Conv2dGradWeights, conv2d
from .dot_op import BlockedDot
from .pool import Pool, PoolGrad, max_pool_2d, pool_2d
from .tanh_op import Tanh32
from .threads import get_num_threads, set_num_threads

if importlib.util.find_spec("jax") is not None:
    from . import jax_dispatch  # noqa: F401  (registers the JAX backend)

__all__ = [
    "conv2d",
    "pool_2d",
    "max_pool_2d",
    "Conv2d",
    "Conv2dGradInputs",
    "Conv2dGradWeights",
    "Pool",
    "PoolGrad",
    "Tanh32",
    "BlockedDot",
    "get_num_threads",
    "set_num_threads",
]
