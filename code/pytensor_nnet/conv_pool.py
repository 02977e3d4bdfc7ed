"""A convolution and the 2x2 max pooling after it as one pass, and the rewrite that fuses them.

LeNet's layers pool their convolution's output at once, over 2x2 windows,
and the training step reads that output twice more: the pooling's gradient
looks in it for each window's maximum, and writes a gradient of the same
size, which the convolution's gradients read. In the first layer each of
those arrays is 23 MB per minibatch, far larger than a core's cache, so
those passes ran at the speed of memory.

The fused Ops keep each block of output maps in cache instead:

* :class:`Conv2dMaxPool` pools each block of maps as the matrix product
  leaves it, and notes which cells of each window hold its maximum (a
  number per window, see :func:`pytensor_nnet.pool_kernels.max_pool_cells_2x2`);
* :class:`Conv2dGradWeightsMaxPool` and :class:`Conv2dGradInputsMaxPool`
  rebuild the pooling's gradient block by block from those cells and the
  pooled gradient, just before the product that needs it.

They compute exactly what ``pool_2d(conv2d(...), (2, 2), ignore_border=True)``
and its gradients compute, the same bits, ties included (the same
comparisons, the same products). The rewrite :func:`local_conv_max_pool`
puts them in a graph once its gradient is built; like the other rewrites it
is registered by :func:`pytensor_nnet.tune_for_speed`. It leaves a graph as
it is unless the convolution's output is used only by that pooling and its
gradients, and those only by the convolution's gradients.

LeNet's layer then adds a bias per filter and takes the tanh: two more
passes over the pooled maps, the addition on one thread. The second rewrite,
:func:`local_conv_max_pool_tanh`, moves both into :class:`Conv2dMaxPool`
(``tanh_bias``), which does them on each block of pooled maps while it is in
cache: the same additions, the same float32 tanh as
:class:`~pytensor_nnet.Tanh32` (float64: the C library's), so the same bits.
"""
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.graph.basic import Apply
from pytensor.graph.rewriting.basic import in2out, node_rewriter
from pytensor.scalar.basic import Add, Tanh
from pytensor.tensor.elemwise import DimShuffle, Elemwise
from pytensor.tensor.shape import Reshape
from pytensor.tensor.type import TensorType

from . import conv_kernels as kernels
from .conv import (Conv2d, Conv2dGradInputs, Conv2dGradWeights, ConvBase, as_4d, common_dtype,
                   infer_shape_args, static_shape)
from .pool import Pool, PoolGrad
from .shapes import check_bias, check_pooled_grad
from .tanh_op import Tanh32

#: The pooling the fused Ops do.
MAX_POOL_2X2 = Pool((2, 2), ignore_border=True)


def pooled(op, img_shape, filters_shape):
    """The shape of a conv Op's output max-pooled by :data:`MAX_POOL_2X2`
    (ints, symbolic sizes or None)."""
    return MAX_POOL_2X2.output_shape(op.output_shape(img_shape, filters_shape))


class Conv2dMaxPool(ConvBase):
    """``pool_2d(conv2d(img, filters), (2, 2), ignore_border=True)`` in one
    pass; with ``with_cells``, a second output: which cells of each window
    hold its maximum (see :mod:`pytensor_nnet.conv_pool`). With
    ``tanh_bias``, a third input ``bias`` (a vector, one number per filter)
    and ``tanh(pooled + bias)`` as the first output (the cells still those
    of the pooled maxima). The rewrites put it in a graph whose gradient is
    built already: it has no gradient of its own."""

    __props__ = ConvBase.__props__ + ("with_cells", "tanh_bias")
    op_name = kernels.FORWARD

    def __init__(self, border_mode="valid", subsample=(1, 1), filter_flip=True,
                 filter_dilation=(1, 1), num_groups=1, with_cells=False, tanh_bias=False):
        super().__init__(border_mode, subsample, filter_flip, filter_dilation, num_groups)
        self.with_cells = bool(with_cells)
        self.tanh_bias = bool(tanh_bias)

    def make_node(self, img, filters, *bias):
        if len(bias) != self.tanh_bias:
            raise TypeError(f"Conv2dMaxPool takes {2 + self.tanh_bias} inputs with "
                            f"tanh_bias={self.tanh_bias}, got {2 + len(bias)}")
        img, filters = as_4d(img, "input"), as_4d(filters, "filters")
        self.check_shapes(img.type.shape, filters.type.shape)
        bias = [pt.as_tensor_variable(b) for b in bias]
        for b in bias:
            check_bias(self.op_name, filters.type.shape, b.type.shape)
        inputs, dtype = common_dtype(img, filters, *bias)
        shape = static_shape(pooled(self, img.type.shape, filters.type.shape))
        outputs = [TensorType(dtype, shape=shape)() for _ in range(1 + self.with_cells)]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, outputs):
        img, filters, *bias = inputs
        if bias:  # the driver checks the bias's shape
            pooled, cells = kernels.conv_forward_max_pool_tanh(
                img, filters, bias[0], self.filter_flip, *self.kernel_args(), self.with_cells)
        else:
            pooled, cells = kernels.conv_forward_max_pool(
                img, filters, self.filter_flip, *self.kernel_args(), self.with_cells)
        outputs[0][0] = pooled
        if self.with_cells:
            outputs[1][0] = cells

    def infer_shape(self, *args):
        node, (img_shape, filt_shape, *_) = infer_shape_args(args)
        return [pooled(self, img_shape, filt_shape)] * (1 + self.with_cells)


class PooledGradBase(ConvBase):
    """A gradient through :class:`Conv2dMaxPool`: ``(operand, cells, gpooled,
    like)``, the maxima's cells and the pooled output's gradient in place of
    the output's gradient; the output has ``like``'s shape."""

    def make_node(self, operand, cells, gpooled, like):
        operand, cells = as_4d(operand, self.operand_name), as_4d(cells, "cells")
        gpooled = as_4d(gpooled, "pooled output gradient")
        like = as_4d(like, self.like_name)
        self.check_inputs(operand.type.shape, cells.type.shape, gpooled.type.shape,
                          like.type.shape)
        (operand, cells, gpooled), dtype = common_dtype(operand, cells, gpooled)
        out = TensorType(dtype, shape=static_shape(like.type.shape))()
        return Apply(self, [operand, cells, gpooled, like], [out])

    def check_inputs(self, operand, cells, gpooled, like):
        """The shapes fit together (None: unknown); the drivers check them again."""
        img, filters = (like, operand) if self.like_name == "input" else (operand, like)
        self.check_shapes(img, filters)
        check_pooled_grad(self.op_name, self.output_shape(img, filters), cells, gpooled,
                          pooled(self, img, filters))

    def perform(self, node, inputs, outputs):
        operand, cells, gpooled, like = inputs
        self.check_inputs(operand.shape, cells.shape, gpooled.shape, like.shape)
        outputs[0][0] = self.driver(operand, cells, gpooled, *like.shape[2:],
                                    self.filter_flip, *self.kernel_args())

    def infer_shape(self, *args):
        node, shapes = infer_shape_args(args)
        return [shapes[3]]

    def connection_pattern(self, node):
        return [[True], [False], [True], [False]]


class Conv2dGradWeightsMaxPool(PooledGradBase):
    """The filter gradient through :class:`Conv2dMaxPool`: ``(input, cells,
    gpooled, filters_like)``."""

    operand_name, like_name = "input", "filters"
    op_name = kernels.GRAD_WEIGHTS_POOLED
    driver = staticmethod(kernels.conv_grad_weights_max_pool)
    plain = Conv2dGradWeights  # the Op it stands for, on the full-size gradient


class Conv2dGradInputsMaxPool(PooledGradBase):
    """The input gradient through :class:`Conv2dMaxPool`: ``(filters, cells,
    gpooled, input_like)``."""

    operand_name, like_name = "filters", "input"
    op_name = kernels.GRAD_INPUTS_POOLED
    driver = staticmethod(kernels.conv_grad_inputs_max_pool)
    plain = Conv2dGradInputs


# the gradients through a fused pooling, for the conv gradient Ops (``plain``) they stand for
FUSED_GRADS = (Conv2dGradWeightsMaxPool, Conv2dGradInputsMaxPool)


@node_rewriter([Pool])
def local_conv_max_pool(fgraph, node):
    """``Pool(Conv2d(x, w))`` -> :class:`Conv2dMaxPool`, and each conv
    gradient through it -> :class:`Conv2dGradWeightsMaxPool` or
    :class:`Conv2dGradInputsMaxPool` (see the module docstring for when)."""
    conv = node.inputs[0]
    if node.op != MAX_POOL_2X2 or conv.owner is None or not isinstance(conv.owner.op, Conv2d):
        return None
    img, filters = conv.owner.inputs
    pooled_out = node.outputs[0]
    grads = []  # (the pooled output's gradient, a conv gradient it feeds, its fused Op)
    for client, index in fgraph.clients[conv]:
        if client is node:
            continue
        if not (client.op == MAX_POOL_2X2.copy_with(PoolGrad) and index == 0
                and client.inputs[1] is pooled_out):
            return None
        for user, position in fgraph.clients[client.outputs[0]]:
            fused_op = fused_gradient(user, position, conv.owner)
            if fused_op is None:
                return None
            grads.append((client.inputs[2], user, fused_op))
    fused = Conv2dMaxPool(**conv.owner.op._props_dict(), with_cells=bool(grads))(
        img, filters, return_list=True)
    replacements = {pooled_out: fused[0]}
    for gpooled, user, fused_op in grads:
        operand, _, like = user.inputs
        replacements[user.outputs[0]] = fused_op(operand, fused[1], gpooled, like)
    return replacements


def fused_gradient(user, position, conv):
    """The fused Op for a conv gradient ``user`` whose output gradient (its
    input ``position``) comes from pooling ``conv``'s output; None if it has none."""
    if position != 1:
        return None
    img, filters = conv.inputs
    for fused_op in FUSED_GRADS:
        operand = img if fused_op.operand_name == "input" else filters
        if (isinstance(user.op, fused_op.plain) and user.op == conv.op.copy_with(fused_op.plain)
                and user.inputs[0] is operand):
            return conv.op.copy_with(fused_op)
    return None


@node_rewriter([Elemwise])
def local_conv_max_pool_tanh(fgraph, node):
    """``tanh(Conv2dMaxPool(x, w) + bias)`` -> ``Conv2dMaxPool(x, w, bias)``
    with ``tanh_bias``, where ``bias`` has one number per filter (broadcast
    over images, rows and columns), nothing else uses the pooled maps, and
    their sum with the bias goes only to tanh (also through a reshape, which
    PyTensor moves before the tanh that follows it: LeNet's second layer)."""
    if not isinstance(node.op.scalar_op, Add) or len(node.inputs) != 2:
        return None
    total = node.outputs[0]
    uses = [tanh_uses(fgraph, client) for client, _ in fgraph.clients[total]]
    if not uses or None in uses:
        return None
    for pooled_out, bias in (node.inputs, node.inputs[::-1]):
        fused = pooled_out.owner
        if (fused is not None and isinstance(fused.op, Conv2dMaxPool)
                and not fused.op.tanh_bias and pooled_out is fused.outputs[0]
                and len(fgraph.clients[pooled_out]) == 1
                and bias.type.broadcastable == (True, False, True, True)
                and bias.type.dtype == pooled_out.type.dtype == total.type.dtype):
            op = Conv2dMaxPool(**{**fused.op._props_dict(), "tanh_bias": True})
            new = op(*fused.inputs, bias_vector(bias), return_list=True)
            replacements = {}
            for reshape, tanhs in uses:
                out = new[0] if reshape is None else reshape.op(new[0], *reshape.inputs[1:])
                replacements.update((t.outputs[0], out) for t in tanhs)
            if fused.op.with_cells:
                replacements[fused.outputs[1]] = new[1]
            return replacements
    return None


def is_tanh(node):
    return isinstance(node.op, Tanh32) or isinstance(getattr(node.op, "scalar_op", None), Tanh)


def tanh_uses(fgraph, client):
    """``(None, [client])`` if ``client`` is a tanh; ``(client, tanhs)`` if it
    is a reshape whose output only tanhs use; else None."""
    if is_tanh(client):
        return None, [client]
    if isinstance(client.op, Reshape):
        users = [user for user, _ in fgraph.clients[client.outputs[0]]]
        if users and all(is_tanh(user) for user in users):
            return client, users
    return None


def bias_vector(bias):
    """The (1, F, 1, 1) ``bias`` as the vector it was broadcast from."""
    if isinstance(bias.owner and bias.owner.op, DimShuffle) and bias.owner.op.new_order == (
            "x", 0, "x", "x"):
        return bias.owner.inputs[0]
    return bias.dimshuffle(1)


REWRITE_NAME = "pytensor_nnet_conv_max_pool"
TANH_REWRITE_NAME = "pytensor_nnet_conv_max_pool_tanh"


def register_rewrite():
    """Put the rewrites in PyTensor's ``fast_run`` rewrites (once)."""
    if REWRITE_NAME not in optdb:
        # with the other rewrites: the gradient graph is complete
        optdb.register(REWRITE_NAME, in2out(local_conv_max_pool), "fast_run", position=48.5)
    if TANH_REWRITE_NAME not in optdb:
        # after the fused Ops and Tanh32 are in, before elementwise fusion (49)
        optdb.register(TANH_REWRITE_NAME, in2out(local_conv_max_pool_tanh), "fast_run",
                       position=48.6)
