"""Numba backend (PyTensor's default mode) for the conv and pool Ops.

Each dispatch returns a small jitted wrapper around the same kernels that
``perform`` uses; the Op's properties are baked in as constants, so the
default cache key from the properties is exact.
"""
from pytensor.link.numba.dispatch import basic as numba_basic
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

from . import conv_kernels, pool_kernels
from .conv import Conv2d, Conv2dGradInputs, Conv2dGradWeights
from .pool import Pool, PoolGrad


@register_funcify_default_op_cache_key(Conv2d)
def numba_funcify_Conv2d(op, node=None, **kwargs):
    flip, args = op.filter_flip, op.kernel_args()
    forward = conv_kernels.conv_forward

    @numba_basic.numba_njit
    def conv2d(img, filters):
        return forward(img, filters, flip, *args)

    return conv2d


@register_funcify_default_op_cache_key(Conv2dGradInputs)
def numba_funcify_Conv2dGradInputs(op, node=None, **kwargs):
    flip, args = op.filter_flip, op.kernel_args()
    grad_inputs = conv_kernels.conv_grad_inputs

    @numba_basic.numba_njit
    def conv2d_grad_inputs(filters, gout, img_like):
        return grad_inputs(filters, gout, img_like.shape[2], img_like.shape[3], flip, *args)

    return conv2d_grad_inputs


@register_funcify_default_op_cache_key(Conv2dGradWeights)
def numba_funcify_Conv2dGradWeights(op, node=None, **kwargs):
    flip, args = op.filter_flip, op.kernel_args()
    grad_weights = conv_kernels.conv_grad_weights

    @numba_basic.numba_njit
    def conv2d_grad_weights(img, gout, filters_like):
        kh, kw = filters_like.shape[2], filters_like.shape[3]
        return grad_weights(img, gout, kh, kw, flip, *args)

    return conv2d_grad_weights


@register_funcify_default_op_cache_key(Pool)
def numba_funcify_Pool(op, node=None, **kwargs):
    args = op.kernel_args()
    forward = pool_kernels.pool_forward

    @numba_basic.numba_njit
    def pool(x):
        return forward(x, *args)

    return pool


@register_funcify_default_op_cache_key(PoolGrad)
def numba_funcify_PoolGrad(op, node=None, **kwargs):
    args = op.kernel_args()
    grad = pool_kernels.pool_grad

    @numba_basic.numba_njit
    def pool_grad(x, out, gout):
        return grad(x, out, gout, *args)

    return pool_grad
