"""JAX backend (``mode='JAX'``, PyTensor's GPU path) for the conv, pool, tanh and dot Ops
and conv2d's shape hints.

Convolution maps to ``jax.lax.conv_general_dilated`` (cuDNN on a GPU); its
two gradients are the VJPs of that forward, which XLA turns into the usual
transposed convolutions. Pooling is written out over window offsets so that it
keeps Theano's rules (clipped border windows, max gradient to every tied
maximum) exactly; window bounds are static, computed by the same
``window_ranges`` as the Numba kernels.

Shapes are static while JAX traces, so the Ops' shape checks run then, on
the same Python code as at graph build time: no cost per call.
"""
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from pytensor.link.jax.dispatch import jax_funcify

from . import pool_kernels
from .conv import Conv2d, Conv2dGradInputs, Conv2dGradWeights, ShapeHint
from .conv_pool import Conv2dGradInputsMaxPool, Conv2dGradWeightsMaxPool, Conv2dMaxPool
from .dot_op import BlockedDot
from .pool import Pool, PoolGrad
from .shapes import conv_padding
from .tanh_op import Tanh32


def conv_forward_fn(op):
    """A jittable ``f(img, filters)`` computing ``op``'s forward."""
    (sh, sw), (dh, dw) = op.subsample, op.filter_dilation

    def forward(img, filters):
        op.check_shapes(img.shape, filters.shape)
        kh, kw = filters.shape[2:]
        ph, pw = conv_padding(op.border_mode, (kh, kw), op.filter_dilation)
        if op.filter_flip:
            filters = filters[:, :, ::-1, ::-1]
        return lax.conv_general_dilated(
            img, filters,
            window_strides=(sh, sw),
            padding=((ph, ph), (pw, pw)),
            rhs_dilation=(dh, dw),
            dimension_numbers=("NCHW", "OIHW", "NCHW"),
            feature_group_count=op.num_groups,
            precision=lax.Precision.HIGHEST,
        )

    return forward


@jax_funcify.register(Conv2d)
def jax_funcify_Conv2d(op, **kwargs):
    return conv_forward_fn(op)


@jax_funcify.register(Conv2dGradInputs)
def jax_funcify_Conv2dGradInputs(op, **kwargs):
    forward = conv_forward_fn(op)

    def grad_inputs(filters, gout, img_like):
        op.check_inputs(filters.shape, gout.shape, img_like.shape)
        # forward is linear in img: its VJP at any point is the gradient
        zeros = jnp.zeros(img_like.shape, gout.dtype)
        _, vjp = jax.vjp(lambda img: forward(img, filters), zeros)
        return vjp(gout)[0]

    return grad_inputs


@jax_funcify.register(Conv2dGradWeights)
def jax_funcify_Conv2dGradWeights(op, **kwargs):
    forward = conv_forward_fn(op)

    def grad_weights(img, gout, filters_like):
        op.check_inputs(img.shape, gout.shape, filters_like.shape)
        zeros = jnp.zeros(filters_like.shape, gout.dtype)
        _, vjp = jax.vjp(lambda filters: forward(img, filters), zeros)
        return vjp(gout)[0]

    return grad_weights


def windows_2x2(maps):
    """The four cells of each 2x2 window of ``maps`` (N, O, oh, ow), windows
    cut at the far border left out: top left, top right, bottom left, bottom right."""
    rows, cols = maps.shape[2] // 2 * 2, maps.shape[3] // 2 * 2
    return [maps[:, :, a:rows:2, b:cols:2] for a in (0, 1) for b in (0, 1)]


CELL_VALUES = (pool_kernels.TOP_LEFT, pool_kernels.TOP_RIGHT, pool_kernels.BOTTOM_LEFT,
               pool_kernels.BOTTOM_RIGHT)


@jax_funcify.register(Conv2dMaxPool)
def jax_funcify_Conv2dMaxPool(op, **kwargs):
    forward = conv_forward_fn(op)

    def conv2d_max_pool(img, filters, *bias):
        windows = windows_2x2(forward(img, filters))
        pooled = jnp.max(jnp.stack(windows), axis=0)
        out = jnp.tanh(pooled + bias[0][None, :, None, None]) if bias else pooled
        if not op.with_cells:
            return out
        cells = sum(jnp.where(w == pooled, v, 0) for w, v in zip(windows, CELL_VALUES))
        return out, cells.astype(pooled.dtype)

    return conv2d_max_pool


def unpooled(op, cells, gpooled, img_shape, filters_shape):
    """The gradient of the maps :class:`Conv2dMaxPool` pooled, from the
    maxima's cells and the pooled gradient."""
    gout = jnp.zeros(op.output_shape(img_shape, filters_shape), gpooled.dtype)
    marks = cells.astype(jnp.int32)
    rows, cols = gpooled.shape[2] * 2, gpooled.shape[3] * 2
    for (a, b), value in zip(((0, 0), (0, 1), (1, 0), (1, 1)), CELL_VALUES):
        share = jnp.where(marks & value, gpooled, 0).astype(gpooled.dtype)
        gout = gout.at[:, :, a:rows:2, b:cols:2].set(share)
    return gout


@jax_funcify.register(Conv2dGradWeightsMaxPool)
@jax_funcify.register(Conv2dGradInputsMaxPool)
def jax_funcify_pooled_grad(op, **kwargs):
    # the conv gradient Op it stands for, on the gradient rebuilt full-size
    grad = jax_funcify(op.copy_with(op.plain))

    def pooled_grad(operand, cells, gpooled, like):
        op.check_inputs(operand.shape, cells.shape, gpooled.shape, like.shape)
        img, filters = (like, operand) if op.like_name == "input" else (operand, like)
        return grad(operand, unpooled(op, cells, gpooled, img.shape, filters.shape), like)

    return pooled_grad


class PoolLayout:
    """Static geometry of one pooling: an extended canvas holding the padded
    image, large enough for every window, and the window divisors."""

    def __init__(self, op, rows, cols):
        mode = pool_kernels.MODES.index(op.mode)
        inc = mode == pool_kernels.AVERAGE_INC_PAD
        self.op = op
        self.rows, self.cols = rows, cols
        ranges = [
            pool_kernels.window_ranges(size, ws, st, pad, op.ignore_border, inc)
            for size, ws, st, pad in zip((rows, cols), op.ws, op.stride, op.pad)
        ]
        self.out_shape = tuple(r[0].size for r in ranges)
        self.divisor = np.outer(ranges[0][2], ranges[1][2])
        self.canvas = tuple(
            max(size + 2 * pad, (n - 1) * st + ws)
            for size, pad, n, st, ws in zip((rows, cols), op.pad, self.out_shape, op.stride, op.ws)
        )
        self.fill = -np.inf if op.mode == "max" else 0.0

    def image_slice(self):
        (ph, pw) = self.op.pad
        return (Ellipsis, slice(ph, ph + self.rows), slice(pw, pw + self.cols))

    def window_slices(self):
        """For each offset in the window, the slice of the canvas it reads."""
        (oh, ow), (sh, sw) = self.out_shape, self.op.stride
        for a in range(self.op.ws[0]):
            for b in range(self.op.ws[1]):
                yield (Ellipsis, slice(a, a + (oh - 1) * sh + 1, sh), slice(b, b + (ow - 1) * sw + 1, sw))

    def to_canvas(self, x):
        canvas = jnp.full(x.shape[:-2] + self.canvas, self.fill, x.dtype)
        return canvas.at[self.image_slice()].set(x)


def pool_layout(op, x):
    return PoolLayout(op, *x.shape[-2:])


@jax_funcify.register(Pool)
def jax_funcify_Pool(op, **kwargs):
    def pool(x):
        layout = pool_layout(op, x)
        canvas = layout.to_canvas(x)
        windows = [canvas[s] for s in layout.window_slices()]
        if op.mode == "max":
            return jnp.max(jnp.stack(windows), axis=0)
        total = sum(windows[1:], windows[0])
        if op.mode == "sum":
            return total
        return (total / layout.divisor).astype(x.dtype)

    return pool


@jax_funcify.register(PoolGrad)
def jax_funcify_PoolGrad(op, **kwargs):
    def pool_grad(x, out, gout):
        op.check_inputs(x.shape, out.shape, gout.shape)
        layout = pool_layout(op, x)
        canvas = layout.to_canvas(x)
        if op.mode in ("sum", "max"):
            share = gout
        else:
            share = (gout / layout.divisor).astype(gout.dtype)
        grad = jnp.zeros(canvas.shape, gout.dtype)
        for s in layout.window_slices():
            if op.mode == "max":
                grad = grad.at[s].add(jnp.where(canvas[s] == out, gout, 0))
            else:
                grad = grad.at[s].add(share)
        return grad[layout.image_slice()]

    return pool_grad


@jax_funcify.register(ShapeHint)
def jax_funcify_ShapeHint(op, **kwargs):
    def shape_hint(x):
        op.check(x.shape)
        return x

    return shape_hint


@jax_funcify.register(Tanh32)
def jax_funcify_Tanh32(op, **kwargs):
    # XLA's own tanh, as for PyTensor's Elemwise tanh under JAX
    return jnp.tanh


@jax_funcify.register(BlockedDot)
def jax_funcify_BlockedDot(op, **kwargs):
    # XLA's own matrix product, as for PyTensor's Dot under JAX
    return jnp.dot
