"""Theano's ``conv2d`` as PyTensor Ops: forward, and its two gradients.

``conv2d`` keeps Theano's public signature and semantics (NCHW input, filters
``(out_channels, in_channels / num_groups, rows, cols)``, a true convolution
unless ``filter_flip=False``). Each Op computes with the Numba kernels in
:mod:`pytensor_nnet.conv_kernels` (``perform`` and the Numba backend) or with
``jax.lax`` (JAX backend, see :mod:`pytensor_nnet.jax_dispatch`).

The gradient Ops take a third "shape carrier" input (the forward's input or
filters): with strides the size they must produce cannot be recovered from the
output gradient alone, and under JAX a static shape is needed anyway.

Every Op checks that its inputs' shapes fit together, with the checks of
:mod:`pytensor_nnet.shapes`: in ``make_node`` on the static shapes, and when
it runs, in every backend. A gradient computed from shapes that do not fit
would come out wrong, silently (it did, before these checks).
"""
import pytensor.tensor as pt
from pytensor import config
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.scalar.basic import upcast
from pytensor.tensor.type import TensorType

from . import conv_kernels as kernels
from .shapes import (
    ShapeError,
    breaks_hint,
    check_conv,
    check_conv_gout,
    check_conv_output,
    conv_output_length,
    conv_padding,
    int_pair,
    normalize_border_mode,
)

_BORDER_CODES = {
    "valid": kernels.BORDER_VALID,
    "full": kernels.BORDER_FULL,
    "half": kernels.BORDER_HALF,
}


def infer_shape_args(args):
    """(node, input_shapes) from ``infer_shape``'s arguments.

    PyTensor 3.0 calls ``infer_shape(fgraph, node, shapes)``; 3.1.1 dropped
    ``fgraph``. Taking the last two keeps one Op working on both.
    """
    return args[-2], args[-1]


class ConvBase(Op):
    """Properties and helpers common to the forward and gradient Ops."""

    __props__ = ("border_mode", "subsample", "filter_flip", "filter_dilation", "num_groups")

    def __init__(self, border_mode="valid", subsample=(1, 1), filter_flip=True,
                 filter_dilation=(1, 1), num_groups=1):
        self.border_mode = normalize_border_mode(border_mode)
        self.subsample = int_pair(subsample, "subsample", 1)
        self.filter_flip = bool(filter_flip)
        self.filter_dilation = int_pair(filter_dilation, "filter_dilation", 1)
        if int(num_groups) != num_groups or num_groups < 1:
            raise ValueError(f"num_groups must be a positive int, got {num_groups!r}")
        self.num_groups = int(num_groups)

    def kernel_args(self):
        """Border code, explicit pads, strides, dilations, groups for the kernels."""
        if isinstance(self.border_mode, tuple):
            border, (ph, pw) = kernels.BORDER_EXPLICIT, self.border_mode
        else:
            border, ph, pw = _BORDER_CODES[self.border_mode], 0, 0
        return (border, ph, pw, *self.subsample, *self.filter_dilation, self.num_groups)

    def output_length(self, size, k, axis):
        """Output length on one axis (ints or symbolic); None if unknown."""
        if size is None or k is None:
            return None
        # plain arithmetic: works on ints and on symbolic shapes alike
        pad = conv_padding(self.border_mode, (k, k), self.filter_dilation)[axis]
        return conv_output_length(size, k, pad, self.subsample[axis], self.filter_dilation[axis])

    def output_shape(self, img_shape, filt_shape):
        """(N, O, OH, OW) from input and filter shapes (None where unknown)."""
        return (
            img_shape[0],
            filt_shape[0],
            self.output_length(img_shape[2], filt_shape[2], 0),
            self.output_length(img_shape[3], filt_shape[3], 1),
        )

    def check_shapes(self, img, filters, gout=None):
        """Raise :class:`ShapeError` unless the input, filter and (for a
        gradient) output gradient shapes fit together; None: unknown."""
        check_conv(self.op_name, img, filters, self.num_groups)
        out = self.output_shape(img, filters)
        if gout is None:
            check_conv_output(self.op_name, img, filters, out)
        else:
            check_conv_gout(self.op_name, img, filters, gout, out)

    def copy_with(self, cls):
        return cls(**self._props_dict())


def as_4d(var, name):
    var = pt.as_tensor_variable(var)
    if var.ndim != 4:
        raise ValueError(f"conv2d: {name} must be a 4-d tensor, got {var.ndim} dimensions")
    return var


def common_dtype(*variables):
    """Upcast the inputs to one float dtype, as the kernels need."""
    dtype = upcast(*[v.dtype for v in variables])
    if not dtype.startswith("float"):
        dtype = config.floatX
    return [pt.cast(v, dtype) if v.dtype != dtype else v for v in variables], dtype


def static_shape(shape):
    return tuple(int(s) if s is not None else None for s in shape)


class Conv2d(ConvBase):
    """``out = conv2d(input, filters)`` (see :func:`pytensor_nnet.conv2d`)."""

    op_name = kernels.FORWARD

    def make_node(self, img, filters):
        img, filters = as_4d(img, "input"), as_4d(filters, "filters")
        self.check_shapes(img.type.shape, filters.type.shape)
        (img, filters), dtype = common_dtype(img, filters)
        out_shape = self.output_shape(img.type.shape, filters.type.shape)
        out = TensorType(dtype, shape=static_shape(out_shape))()
        return Apply(self, [img, filters], [out])

    def perform(self, node, inputs, outputs):
        img, filters = inputs
        outputs[0][0] = kernels.conv_forward(img, filters, self.filter_flip, *self.kernel_args())

    def infer_shape(self, *args):
        node, (img_shape, filt_shape) = infer_shape_args(args)
        return [self.output_shape(img_shape, filt_shape)]

    def pullback(self, inputs, outputs, cotangents):
        img, filters = inputs
        (gout,) = cotangents
        grad_img = self.copy_with(Conv2dGradInputs)(filters, gout, img)
        grad_filters = self.copy_with(Conv2dGradWeights)(img, gout, filters)
        return [grad_img, grad_filters]


class ConvGradBase(ConvBase):
    """A gradient Op ``(operand, gout, like)``: its output has ``like``'s shape.

    ``like`` (the forward's input, or its filters) only carries the shape.
    """

    def make_node(self, operand, gout, like):
        operand = as_4d(operand, self.operand_name)
        gout, like = as_4d(gout, "output gradient"), as_4d(like, self.like_name)
        self.check_inputs(operand.type.shape, gout.type.shape, like.type.shape)
        (operand, gout), dtype = common_dtype(operand, gout)
        out = TensorType(dtype, shape=static_shape(like.type.shape))()
        return Apply(self, [operand, gout, like], [out])

    def check_inputs(self, operand, gout, like):
        """:meth:`check_shapes` on the shapes of the Op's three inputs (the
        input is ``like`` or ``operand``, as ``like_name`` says)."""
        img, filters = (like, operand) if self.like_name == "input" else (operand, like)
        self.check_shapes(img, filters, gout)

    def infer_shape(self, *args):
        node, shapes = infer_shape_args(args)
        return [shapes[2]]

    def connection_pattern(self, node):
        return [[True], [True], [False]]


class Conv2dGradInputs(ConvGradBase):
    """Gradient of ``conv2d`` w.r.t. its input: ``(filters, gout, input_like)``."""

    operand_name, like_name = "filters", "input"
    op_name = kernels.GRAD_INPUTS

    def perform(self, node, inputs, outputs):
        filters, gout, img_like = inputs
        self.check_inputs(filters.shape, gout.shape, img_like.shape)
        height, width = img_like.shape[2:]
        outputs[0][0] = kernels.conv_grad_inputs(
            filters, gout, height, width, self.filter_flip, *self.kernel_args()
        )

    def pullback(self, inputs, outputs, cotangents):
        # <GI(w, g), h> = <conv(h, w), g>: both partials are conv Ops again.
        filters, gout, img_like = inputs
        (h,) = cotangents
        return [
            self.copy_with(Conv2dGradWeights)(h, gout, filters),
            self.copy_with(Conv2d)(h, filters),
            disconnected_type(),
        ]


class Conv2dGradWeights(ConvGradBase):
    """Gradient of ``conv2d`` w.r.t. its filters: ``(input, gout, filters_like)``."""

    operand_name, like_name = "input", "filters"
    op_name = kernels.GRAD_WEIGHTS

    def perform(self, node, inputs, outputs):
        img, gout, filters_like = inputs
        self.check_inputs(img.shape, gout.shape, filters_like.shape)
        kh, kw = filters_like.shape[2:]
        outputs[0][0] = kernels.conv_grad_weights(
            img, gout, kh, kw, self.filter_flip, *self.kernel_args()
        )

    def pullback(self, inputs, outputs, cotangents):
        # <GW(x, g), k> = <conv(x, k), g>
        img, gout, filters_like = inputs
        (k,) = cotangents
        return [
            self.copy_with(Conv2dGradInputs)(k, gout, img),
            self.copy_with(Conv2d)(img, k),
            disconnected_type(),
        ]


class ShapeHint(Op):
    """``x`` itself, checked against a user's shape hint (``-1``: any size)
    and with the hint's static shape.

    ``pt.specify_shape`` did this with a generic AssertionError that named
    neither ``conv2d`` nor the hint; this Op raises :class:`ShapeError` with
    ``message``, a template for the shape found.
    """

    __props__ = ("sizes", "message")
    view_map = {0: [0]}

    def __init__(self, sizes, message):
        self.sizes, self.message = tuple(sizes), message

    def check(self, shape):
        if breaks_hint(shape, self.sizes):
            raise ShapeError(self.message, shape)

    def hinted(self, shape):
        """``shape`` with the hint's sizes where it gives them."""
        return tuple(k if s < 0 else s for k, s in zip(shape, self.sizes))

    def make_node(self, x):
        self.check(x.type.shape)
        return Apply(self, [x], [TensorType(x.dtype, shape=self.hinted(x.type.shape))()])

    def perform(self, node, inputs, outputs):
        self.check(inputs[0].shape)
        outputs[0][0] = inputs[0]

    def infer_shape(self, *args):
        node, (shape,) = infer_shape_args(args)
        return [self.hinted(shape)]

    def pullback(self, inputs, outputs, cotangents):
        return list(cotangents)


def _checked_shape(var, shape, what, arg_name):
    """Apply a user's shape hint: check it now, and at run time where the
    static shape does not already hold it."""
    if shape is None:
        return var
    shape = tuple(shape)
    if len(shape) != 4:
        raise ValueError(f"conv2d: {arg_name} must have 4 entries, got {shape!r}")
    hint = tuple(None if s is None else int(s) for s in shape)
    if any(s is not None and s < 0 for s in hint):
        raise ValueError(f"conv2d: {arg_name} must hold sizes >= 0 or None, got {shape!r}")
    sizes = tuple(-1 if s is None else s for s in hint)
    message = f"conv2d: {arg_name}={hint} disagrees with the {what} {{}}"
    checked = ShapeHint(sizes, message)(var)  # checks the static shape
    # and again at run time, unless the static shape holds every size hinted
    at_run_time = any(s >= 0 and k is None for k, s in zip(var.type.shape, sizes))
    return checked if at_run_time else var


def conv2d(input, filters, input_shape=None, filter_shape=None, border_mode="valid",
           subsample=(1, 1), filter_flip=True, filter_dilation=(1, 1), num_groups=1,
           image_shape=None):
    """Convolve a batch of multi-channel images with a bank of filters.

    Parameters
    ----------
    input : 4-d tensor
        Images, shape ``(batch, channels, rows, cols)``.
    filters : 4-d tensor
        Filters, shape ``(n_filters, channels / num_groups, rows, cols)``.
    input_shape, filter_shape : tuple of 4 ints or None, optional
        Known shapes (``None`` entries allowed). They are checked against the
        tensors now and again when the function runs, and they give the
        output a static shape. ``image_shape`` is the old name of
        ``input_shape``.
    border_mode : {'valid', 'full', 'half'}, int or (int, int)
        Zero padding: none, ``dk - 1`` or ``dk // 2`` per side, where
        ``dk = (k - 1) * dilation + 1`` is the dilated filter size, or the
        given number of rows and columns.
    subsample : (int, int)
        Stride between output positions.
    filter_flip : bool
        ``True`` (default) flips the filters: a true convolution, as Theano.
        ``False`` computes a cross-correlation.
    filter_dilation : (int, int)
        Spacing between filter taps (atrous convolution).
    num_groups : int
        Split channels and filters into this many independent groups.

    Returns
    -------
    4-d tensor
        Shape ``(batch, n_filters, out_rows, out_cols)`` with
        ``out = (size + 2 * pad - dk) // stride + 1`` on each axis.
    """
    input_hint = "input_shape"
    if image_shape is not None:
        if input_shape is not None:
            raise TypeError("conv2d: give input_shape or its old name image_shape, not both")
        input_shape, input_hint = image_shape, "image_shape"
    op = Conv2d(border_mode, subsample, filter_flip, filter_dilation, num_groups)
    input = _checked_shape(as_4d(input, "input"), input_shape, "input", input_hint)
    filters = _checked_shape(as_4d(filters, "filters"), filter_shape, "filters", "filter_shape")
    return op(input, filters)
