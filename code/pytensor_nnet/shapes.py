"""Argument checking and output-shape arithmetic shared by the conv and pool Ops.

Everything here is plain Python on ints, so the same formulas serve graph
construction (static shapes), ``infer_shape`` (symbolic shapes) and the
kernels' own checks.

The shape checks are also compiled into the Numba drivers
(``register_jitable``), so that every backend refuses the same shapes with
the same message: at graph build time on static shapes (``None`` where
unknown), in ``perform`` and under JAX on the arrays' shapes, and in the
Numba drivers.
"""
import numpy as np
import pytensor.tensor as pt
from numba.extending import register_jitable


def int_pair(value, name, minimum):
    """Return ``value`` as a tuple of two ints ``>= minimum``.

    A single int ``n`` means ``(n, n)``.
    """
    if isinstance(value, (int,)) and not isinstance(value, bool):
        value = (value, value)
    try:
        pair = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if len(pair) != 2 or any(p != v for p, v in zip(pair, value)):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum} on both axes, got {pair}")
    return pair


def normalize_border_mode(border_mode):
    """Return 'valid', 'full', 'half' or an explicit (pad_rows, pad_cols) pair."""
    if isinstance(border_mode, str):
        if border_mode not in ("valid", "full", "half"):
            raise ValueError(
                "border_mode must be 'valid', 'full', 'half', an int or a pair of "
                f"ints, got {border_mode!r}"
            )
        return border_mode
    return int_pair(border_mode, "border_mode", 0)


def dilated_size(k, dilation):
    """Extent covered by a kernel of size ``k`` with holes of ``dilation - 1``."""
    return (k - 1) * dilation + 1


def conv_padding(border_mode, kernel_size, dilation):
    """Zero padding per axis (rows, cols) that ``border_mode`` asks for."""
    if isinstance(border_mode, tuple):
        return border_mode
    pads = []
    for k, d in zip(kernel_size, dilation):
        dk = dilated_size(k, d)
        pads.append({"valid": 0, "full": dk - 1, "half": dk // 2}[border_mode])
    return tuple(pads)


def conv_output_length(size, kernel, pad, stride, dilation):
    """Theano's conv output length: ``(size + 2*pad - dk) // stride + 1``.

    Works on ints and on symbolic scalars alike; ``None`` (unknown) propagates.
    """
    if size is None or kernel is None:
        return None
    return (size + 2 * pad - dilated_size(kernel, dilation)) // stride + 1


def pool_output_length(size, ws, stride, pad, ignore_border):
    """Theano's pool output length on one axis.

    ``size`` may be an int or a symbolic scalar; ``None`` (unknown) propagates.
    With ``ignore_border=False`` a partial window at the far border still
    produces an output.
    """
    if size is None:
        return None
    symbolic = not isinstance(size, (int, np.integer))
    maximum = pt.maximum if symbolic else max
    v = size + 2 * pad
    if ignore_border:
        return maximum(0, (v - ws) // stride + 1)
    if stride >= ws:
        return (v + stride - 1) // stride
    return maximum(0, (v - 1 - ws + stride) // stride) + 1


class ShapeError(ValueError):
    """Shapes an Op was given do not fit together.

    ``args``: a message template and the values it formats (the op's name,
    shapes). Numba can raise an exception only with values, so the text is
    made here, when it is read.
    """

    def __str__(self):
        if len(self.args) < 2:
            # a plain message (PyTensor rebuilds a raised error from its text)
            return super().__str__()
        template, *values = self.args
        return template.format(*values)


@register_jitable
def differ(a, b):
    """Whether sizes ``a`` and ``b`` are both known (not None) and differ."""
    return a is not None and b is not None and a != b


@register_jitable
def disagree(shape, expected):
    """Whether ``shape`` differs from ``expected`` where both are known."""
    if len(shape) != len(expected):
        return True
    for axis in range(len(shape)):
        if differ(shape[axis], expected[axis]):
            return True
    return False


@register_jitable
def breaks_hint(shape, sizes):
    """Whether ``shape`` differs from a hint's ``sizes`` (-1: any size, as
    compiled code has no None) where both are known."""
    for axis in range(len(shape)):
        if sizes[axis] >= 0 and differ(shape[axis], sizes[axis]):
            return True
    return False


@register_jitable
def check_conv(op, img, filters, groups):
    """The input has the channels the filters expect, and the filters split
    into ``groups``."""
    if filters[1] is not None and differ(img[1], filters[1] * groups):
        raise ShapeError("{}: the input {} has {} channels but the filters {} expect "
                         "{} x num_groups={}", op, img, img[1], filters, filters[1], groups)
    if filters[0] is not None and filters[0] % groups != 0:
        raise ShapeError("{}: the {} filters {} cannot be split into num_groups={}",
                         op, filters[0], filters, groups)


@register_jitable
def check_conv_output(op, img, filters, out):
    """The forward's output ``out`` (computed from the shapes) is not empty."""
    for axis in (2, 3):
        if out[axis] is not None and out[axis] <= 0:
            raise ShapeError("{}: the output would be empty (shape {}): the (padded) input {} "
                             "is smaller than the (dilated) filters {}", op, out, img, filters)


@register_jitable
def check_conv_gout(op, img, filters, gout, out):
    """A gradient's output gradient has the forward's output shape ``out``."""
    if disagree(gout, out):
        raise ShapeError("{}: the output gradient {} does not have the output's shape {} "
                         "(from the input {} and the filters {})", op, gout, out, img, filters)


@register_jitable
def check_pooled(op, what, shape, pooled, source, source_shape):
    """The shape of ``what`` is ``pooled``, the pooled shape of ``source``."""
    if disagree(shape, pooled):
        raise ShapeError("{}: the {} {} does not have the pooled shape {} of the {} {}",
                         op, what, shape, pooled, source, source_shape)


@register_jitable
def check_pool_grad(op, x, out, gout, pooled):
    """The pooled output and its gradient have the shape ``pooled`` of ``x`` pooled."""
    check_pooled(op, "output gradient", gout, pooled, "input", x)
    check_pooled(op, "pooled output", out, pooled, "input", x)


@register_jitable
def check_pooled_grad(op, maps, cells, gpooled, pooled):
    """A gradient through a fused convolution and pooling (see
    :mod:`pytensor_nnet.conv_pool`): the maxima's cells and the pooled
    output's gradient have the pooled shape ``pooled`` of the ``maps``."""
    check_pooled(op, "pooled output gradient", gpooled, pooled, "convolution's output", maps)
    check_pooled(op, "array of the maxima's cells", cells, pooled, "convolution's output", maps)


@register_jitable
def check_bias(op, filters, bias):
    """A bias vector has one number per filter."""
    if len(bias) != 1 or differ(bias[0], filters[0]):
        raise ShapeError("{}: the bias {} is not a vector of one number per filter "
                         "(the filters {})", op, bias, filters)
