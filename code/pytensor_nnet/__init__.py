"""Theano's ``conv2d`` and ``pool_2d``, brought back for PyTensor.

``from pytensor_nnet import conv2d, pool_2d`` gives the functions with
Theano's signatures and semantics. They build graph Ops with gradients and
implementations for every PyTensor backend: Python/C (``perform``), Numba
(the default mode) and JAX (``mode='JAX'``, the GPU path; registered when
``jax`` is installed).
"""
import importlib.util

from . import numba_dispatch  # noqa: F401  (registers the Numba backend)
from .conv import Conv2d, Conv2dGradInputs, Conv2dGradWeights, conv2d
from .pool import Pool, PoolGrad, max_pool_2d, pool_2d

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
]
