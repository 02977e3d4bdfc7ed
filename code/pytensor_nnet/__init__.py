"""Theano's ``conv2d`` and ``pool_2d``, brought back for PyTensor.

``from pytensor_nnet import conv2d, pool_2d`` gives the functions with
Theano's signatures and semantics. They build graph Ops with gradients and
implementations for every PyTensor backend: Python/C (``perform``), Numba
(the default mode) and JAX (``mode='JAX'``, the GPU path; registered when
``jax`` is installed).

Importing the package registers the Ops and their backends and changes
nothing else. :func:`tune_for_speed` is the explicit call for the speed
settings the tutorials use (one thread pool, the float32 tanh, matrix
product and convolution-pooling rewrites, exact float math, the allocator
setting); see
:mod:`pytensor_nnet.tuning`.
"""
import importlib.util

from . import numba_dispatch  # noqa: F401  (registers the Numba backend)
from .conv import Conv2d, Conv2dGradInputs, Conv2dGradWeights, conv2d
from .conv_pool import Conv2dGradInputsMaxPool, Conv2dGradWeightsMaxPool, Conv2dMaxPool
from .dot_op import BlockedDot
from .pool import Pool, PoolGrad, max_pool_2d, pool_2d
from .tanh_op import Tanh32
from .threads import get_num_threads, set_num_threads
from .tuning import REWRITES, tune_for_speed

if importlib.util.find_spec("jax") is not None:
    from . import jax_dispatch  # noqa: F401  (registers the JAX backend)

__all__ = [
    "conv2d",
    "pool_2d",
    "max_pool_2d",
    "Conv2d",
    "Conv2dGradInputs",
    "Conv2dGradWeights",
    "Conv2dMaxPool",
    "Conv2dGradWeightsMaxPool",
    "Conv2dGradInputsMaxPool",
    "Pool",
    "PoolGrad",
    "Tanh32",
    "BlockedDot",
    "get_num_threads",
    "set_num_threads",
    "tune_for_speed",
    "REWRITES",
]
