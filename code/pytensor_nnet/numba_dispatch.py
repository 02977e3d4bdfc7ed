"""Numba backend (PyTensor's default mode) for the conv, pool, tanh and dot Ops
and conv2d's shape hints.

Each dispatch returns a small jitted wrapper around the same driver that
``perform`` calls, with the Op's properties as constants. The drivers take
every setting as an argument and call the kernels compiled once per dtype
(see :mod:`pytensor_nnet.native`): a new graph or a new setting compiles a
wrapper and links the small drivers, never the kernels. The dispatch gets the
kernels for the node's dtype ready: loaded from Numba's disk cache, or, on a
fresh install, built by a helper process while PyTensor compiles the rest of
the graph (see :mod:`pytensor_nnet.prebuild`).

PyTensor caches the compiled graph, drivers included, under a key made of
the Op's properties and the integer returned beside the function: a hash of
the kernel and driver sources (and of the shape checks they compile in), so
that an edited or upgraded kernel is never served from a stale cache (it
was, before this key: a fixed kernel kept running its old code).
"""
import inspect
from hashlib import sha256

from pytensor.link.numba.dispatch import basic as numba_basic
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

from . import (conv_kernels, fast_tanh, gemm, jit, matmul_kernels, native, pool_kernels, prebuild,
               shapes)
from .conv import Conv2d, Conv2dGradInputs, Conv2dGradWeights, ShapeHint
from .conv_pool import Conv2dGradInputsMaxPool, Conv2dGradWeightsMaxPool, Conv2dMaxPool
from .dot_op import BlockedDot
from .pool import Pool, PoolGrad
from .tanh_op import Tanh32


def source_version(*modules):
    """An integer that changes whenever the source of ``modules`` does, or
    of :mod:`pytensor_nnet.shapes`, whose checks the drivers compile in."""
    digest = sha256()
    for module in (*modules, shapes):
        digest.update(inspect.getsource(module).encode())
    return int(digest.hexdigest()[:15], 16)


# jit: the decorator's flags are part of the compiled code too; native: the
# calling convention; the conv kernels pool too, and take the tanh after it
# (pytensor_nnet.conv_pool); gemm: the products they call
CONV_VERSION = source_version(jit, native, conv_kernels, pool_kernels, fast_tanh, gemm)
POOL_VERSION = source_version(jit, native, pool_kernels)
TANH_VERSION = source_version(jit, native, fast_tanh)
DOT_VERSION = source_version(jit, native, matmul_kernels, gemm)


def native_kernels(op):
    """The native kernels a node of ``op`` may call (none for an Op not ours)."""
    if isinstance(op, (Conv2d, Conv2dMaxPool)):
        return (conv_kernels.CORR_FORWARD,)
    if isinstance(op, (Conv2dGradInputs, Conv2dGradInputsMaxPool)):
        return (conv_kernels.CORR_GRAD_INPUTS,)
    if isinstance(op, (Conv2dGradWeights, Conv2dGradWeightsMaxPool)):
        return (conv_kernels.CORR_GRAD_WEIGHTS,)
    if isinstance(op, Pool):
        return tuple(forward for forward, _ in pool_kernel_pairs(op))
    if isinstance(op, PoolGrad):
        return tuple(grad for _, grad in pool_kernel_pairs(op))
    if isinstance(op, Tanh32):
        return (fast_tanh.TANH,)
    if isinstance(op, BlockedDot):
        return (matmul_kernels.BLOCKED_DOT,)
    return ()


def prefetch(node):
    """Get the native kernels of ``node`` ready for its dtype (see the module
    docstring); True when a helper process is building one of them."""
    if node is None:
        return False
    dtype = node.outputs[0].type.dtype
    kernels = native_kernels(node.op)
    for kernel in kernels:
        kernel.prefetch(dtype)
    return any(prebuild.is_pending(kernel, dtype) for kernel in kernels)


@register_funcify_default_op_cache_key(Conv2d)
def numba_funcify_Conv2d(op, node=None, **kwargs):
    prefetch(node)
    flip, args = op.filter_flip, op.kernel_args()
    forward = conv_kernels.conv_forward

    @numba_basic.numba_njit
    def conv2d(img, filters):
        return forward(img, filters, flip, *args)

    return conv2d, CONV_VERSION


@register_funcify_default_op_cache_key(Conv2dGradInputs)
def numba_funcify_Conv2dGradInputs(op, node=None, **kwargs):
    prefetch(node)
    flip, args, name = op.filter_flip, op.kernel_args(), op.op_name
    check, grad_inputs = conv_kernels.check_grad, conv_kernels.conv_grad_inputs

    @numba_basic.numba_njit
    def conv2d_grad_inputs(filters, gout, img_like):
        check(name, img_like.shape, filters.shape, gout.shape, *args)
        return grad_inputs(filters, gout, img_like.shape[2], img_like.shape[3], flip, *args)

    return conv2d_grad_inputs, CONV_VERSION


@register_funcify_default_op_cache_key(Conv2dGradWeights)
def numba_funcify_Conv2dGradWeights(op, node=None, **kwargs):
    prefetch(node)
    flip, args, name = op.filter_flip, op.kernel_args(), op.op_name
    check, grad_weights = conv_kernels.check_grad, conv_kernels.conv_grad_weights

    @numba_basic.numba_njit
    def conv2d_grad_weights(img, gout, filters_like):
        check(name, img.shape, filters_like.shape, gout.shape, *args)
        kh, kw = filters_like.shape[2], filters_like.shape[3]
        return grad_weights(img, gout, kh, kw, flip, *args)

    return conv2d_grad_weights, CONV_VERSION


@register_funcify_default_op_cache_key(Conv2dMaxPool)
def numba_funcify_Conv2dMaxPool(op, node=None, **kwargs):
    prefetch(node)
    flip, args, with_cells = op.filter_flip, op.kernel_args(), op.with_cells
    plain, tanh = conv_kernels.conv_forward_max_pool, conv_kernels.conv_forward_max_pool_tanh
    if op.tanh_bias:
        @numba_basic.numba_njit
        def forward(img, filters, bias):
            return tanh(img, filters, bias, flip, *args, with_cells)
    else:
        @numba_basic.numba_njit
        def forward(img, filters):
            return plain(img, filters, flip, *args, with_cells)
    if with_cells:
        return forward, CONV_VERSION

    @numba_basic.numba_njit
    def conv2d_max_pool(*inputs):
        return forward(*inputs)[0]

    return conv2d_max_pool, CONV_VERSION


@register_funcify_default_op_cache_key(Conv2dGradWeightsMaxPool)
@register_funcify_default_op_cache_key(Conv2dGradInputsMaxPool)
def numba_funcify_pooled_grad(op, node=None, **kwargs):
    prefetch(node)
    flip, args, driver = op.filter_flip, op.kernel_args(), op.driver

    @numba_basic.numba_njit
    def conv2d_max_pool_grad(operand, cells, gpooled, like):
        return driver(operand, cells, gpooled, like.shape[2], like.shape[3], flip, *args)

    return conv2d_max_pool_grad, CONV_VERSION


@register_funcify_default_op_cache_key(ShapeHint)
def numba_funcify_ShapeHint(op, node=None, **kwargs):
    sizes, message = op.sizes, op.message
    breaks_hint, error = shapes.breaks_hint, shapes.ShapeError

    @numba_basic.numba_njit
    def shape_hint(x):
        if breaks_hint(x.shape, sizes):
            raise error(message, x.shape)
        return x

    return shape_hint, CONV_VERSION


def pool_kernel_pairs(op):
    """The native kernels (forward, gradient) a pooling Op may call."""
    return pool_kernels.kernels_for(op.ws, op.stride, op.pad, op.ignore_border,
                                    pool_kernels.MODES.index(op.mode))


@register_funcify_default_op_cache_key(Pool)
def numba_funcify_Pool(op, node=None, **kwargs):
    prefetch(node)
    args = op.kernel_args()
    forward = pool_kernels.pool_forward

    @numba_basic.numba_njit
    def pool(x):
        return forward(x, *args)

    return pool, POOL_VERSION


@register_funcify_default_op_cache_key(PoolGrad)
def numba_funcify_PoolGrad(op, node=None, **kwargs):
    prefetch(node)
    args = op.kernel_args()
    grad = pool_kernels.pool_grad

    @numba_basic.numba_njit
    def pool_grad(x, out, gout):
        return grad(x, out, gout, *args)

    return pool_grad, POOL_VERSION


@register_funcify_default_op_cache_key(Tanh32)
def numba_funcify_Tanh32(op, node=None, **kwargs):
    prefetch(node)
    tanh = fast_tanh.tanh_array

    @numba_basic.numba_njit
    def tanh32(x):
        return tanh(x)

    return tanh32, TANH_VERSION


@register_funcify_default_op_cache_key(BlockedDot)
def numba_funcify_BlockedDot(op, node=None, **kwargs):
    prefetch(node)
    dot = matmul_kernels.blocked_dot

    @numba_basic.numba_njit
    def blocked_dot(a, b):
        return dot(a, b)

    return blocked_dot, DOT_VERSION
