"""Theano's ``pool_2d`` (and the tutorial's ``max_pool_2d``) as PyTensor Ops.

Pooling works over the last two axes of any tensor with at least two. The
forward Op computes with :mod:`pytensor_nnet.pool_kernels` (``perform`` and
the Numba backend) or ``jax`` (see :mod:`pytensor_nnet.jax_dispatch`); its
gradient is the ``PoolGrad`` Op, whose own gradient is a pool again for the
linear (sum and average) modes. ``PoolGrad`` checks that its inputs' shapes
fit together (:func:`pytensor_nnet.shapes.check_pool_grad`), when the graph
is built and when it runs.
"""
import warnings

import pytensor.tensor as pt
from pytensor.gradient import disconnected_type, grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.tensor.type import TensorType

from . import pool_kernels as kernels
from .conv import infer_shape_args, static_shape
from .shapes import check_pool_grad, int_pair, pool_output_length


class PoolBase(Op):
    """Window size, stride, padding, border rule and mode, checked once."""

    __props__ = ("ws", "ignore_border", "stride", "pad", "mode")

    def __init__(self, ws, ignore_border=False, stride=None, pad=(0, 0), mode="max"):
        self.ws = int_pair(ws, "ws", 1)
        self.stride = self.ws if stride is None else int_pair(stride, "stride", 1)
        self.pad = int_pair(pad, "pad", 0)
        self.ignore_border = bool(ignore_border)
        if mode not in kernels.MODES:
            raise ValueError(f"pool_2d: mode must be one of {kernels.MODES}, got {mode!r}")
        self.mode = mode
        if self.pad != (0, 0):
            if not self.ignore_border:
                raise ValueError("pool_2d: padding needs ignore_border=True")
            if self.pad[0] >= self.ws[0] or self.pad[1] >= self.ws[1]:
                raise ValueError(
                    f"pool_2d: pad {self.pad} must be smaller than the window ws {self.ws}"
                )

    def kernel_args(self):
        return (*self.ws, *self.stride, *self.pad, self.ignore_border,
                kernels.MODES.index(self.mode))

    def output_shape(self, shape):
        rows, cols = shape[-2:]
        return (*shape[:-2],
                pool_output_length(rows, self.ws[0], self.stride[0], self.pad[0], self.ignore_border),
                pool_output_length(cols, self.ws[1], self.stride[1], self.pad[1], self.ignore_border))

    def copy_with(self, cls):
        return cls(**self._props_dict())


def as_pool_input(x):
    x = pt.as_tensor_variable(x)
    if x.ndim < 2:
        raise ValueError(f"pool_2d: input must have at least 2 dimensions, got {x.ndim}")
    if not x.dtype.startswith("float"):
        raise TypeError(f"pool_2d: input must be a float tensor, got {x.dtype}")
    return x


class Pool(PoolBase):
    """Pool the last two axes (see :func:`pytensor_nnet.pool_2d`)."""

    def make_node(self, x):
        x = as_pool_input(x)
        out = TensorType(x.dtype, shape=static_shape(self.output_shape(x.type.shape)))()
        return Apply(self, [x], [out])

    def perform(self, node, inputs, outputs):
        outputs[0][0] = kernels.pool_forward(inputs[0], *self.kernel_args())

    def infer_shape(self, *args):
        node, (shape,) = infer_shape_args(args)
        return [self.output_shape(shape)]

    def pullback(self, inputs, outputs, cotangents):
        (x,), (out,), (gout,) = inputs, outputs, cotangents
        return [self.copy_with(PoolGrad)(x, out, gout)]


class PoolGrad(PoolBase):
    """Gradient of :class:`Pool` w.r.t. its input: ``(x, out, gout)``.

    ``out`` is only read in max mode (to find the maxima); the average modes
    need ``x`` for its shape alone.
    """

    def make_node(self, x, out, gout):
        x = as_pool_input(x)
        out, gout = pt.as_tensor_variable(out), pt.as_tensor_variable(gout)
        if gout.ndim != x.ndim or out.ndim != x.ndim:
            raise ValueError("pool_2d gradient: x, out and gout must have the same ndim")
        self.check_inputs(x.type.shape, out.type.shape, gout.type.shape)
        gout = pt.cast(gout, x.dtype) if gout.dtype != x.dtype else gout
        return Apply(self, [x, out, gout], [x.type()])

    def check_inputs(self, x, out, gout):
        """Raise ShapeError unless ``out`` and ``gout`` have ``x``'s pooled
        shape (None: unknown). The kernels' driver runs the same check."""
        check_pool_grad(kernels.GRAD, x, out, gout, self.output_shape(x))

    def perform(self, node, inputs, outputs):
        x, out, gout = inputs
        outputs[0][0] = kernels.pool_grad(x, out, gout, *self.kernel_args())

    def infer_shape(self, *args):
        node, shapes = infer_shape_args(args)
        return [shapes[0]]

    def connection_pattern(self, node):
        if self.mode == "max":
            return [[True], [True], [True]]
        return [[False], [False], [True]]

    def pullback(self, inputs, outputs, cotangents):
        x, out, gout = inputs
        (h,) = cotangents
        if self.mode == "max":
            # the second derivative of max pooling is not implemented
            message = "pool_2d: second derivative of mode='max' is not implemented"
            return [grad_not_implemented(self, i, v, message) for i, v in enumerate(inputs)]
        # sum/average pooling is linear: <PoolGrad(g), h> = <g, Pool(h)>
        return [disconnected_type(), disconnected_type(), self.copy_with(Pool)(h)]


def pool_2d(input, ws=None, ignore_border=None, stride=None, pad=(0, 0), mode="max",
            ds=None, st=None, padding=None):
    """Pool each ``ws`` window of the last two axes of ``input``.

    Parameters
    ----------
    input : tensor with ndim >= 2
        Pooling applies to the two trailing axes; leading axes are batch axes.
    ws : (int, int)
        Window size (rows, cols). ``ds`` is its old name.
    ignore_border : bool
        ``True`` drops a partial window at the far border; ``False`` keeps it,
        clipped to the image. ``None`` warns and means ``False``, as Theano.
    stride : (int, int) or None
        Step between windows; ``None`` means ``ws`` (non-overlapping). ``st``
        is its old name.
    pad : (int, int)
        Zero padding on each side; needs ``ignore_border=True`` and
        ``pad < ws``. ``padding`` is its old name.
    mode : {'max', 'sum', 'average_inc_pad', 'average_exc_pad'}
        Reduction over a window. ``average_inc_pad`` counts padding cells in
        the divisor, ``average_exc_pad`` does not.

    Returns
    -------
    tensor
        The input's leading axes, then per pooled axis ``(v - ws) // st + 1``
        with ``ignore_border=True`` (``v = size + 2 * pad``); with ``False``,
        ``ceil(v / st)`` when ``st >= ws``, else
        ``max(0, (v - 1 - ws + st) // st) + 1``.
    """
    ws = _renamed(ws, ds, "ws", "ds")
    stride = _renamed(stride, st, "stride", "st")
    if padding is not None:
        if tuple(pad) != (0, 0):
            raise TypeError("pool_2d: give pad or its old name padding, not both")
        pad = padding
    if ws is None:
        raise TypeError("pool_2d: the window size ws is required")
    if ignore_border is None:
        warnings.warn(
            "pool_2d: ignore_border was not given; it defaults to False as in "
            "Theano. Pass ignore_border=True or False to silence this warning.",
            UserWarning,
            stacklevel=2,
        )
        ignore_border = False
    return Pool(ws, ignore_border, stride, pad, mode)(as_pool_input(input))


def _renamed(new_value, old_value, new_name, old_name):
    if old_value is None:
        return new_value
    if new_value is not None:
        raise TypeError(f"pool_2d: give {new_name} or its old name {old_name}, not both")
    return old_value


def max_pool_2d(input, ds, ignore_border=None, st=None, padding=(0, 0), mode="max"):
    """The tutorial's ``downsample.max_pool_2d``: :func:`pool_2d` with old names."""
    return pool_2d(input, ws=ds, ignore_border=ignore_border, stride=st, pad=padding, mode=mode)
