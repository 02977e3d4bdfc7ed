"""Shapes that do not fit are refused, never computed with (issue #16).

Each gradient Op checks its inputs' shapes against each other: when the
graph is built where the static shapes say enough, else when it runs, in
every backend. A shape hint given to ``conv2d`` is checked the same way.
Every error is a ValueError naming the op and both shapes.
"""
import re

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from backends import BACKENDS
from pytensor_nnet import Conv2dGradInputs, Conv2dGradWeights, PoolGrad, conv2d, pool_2d


def run(mode, build, *values):
    """Compile ``build`` on symbolic inputs shaped like ``values`` (no static
    shapes) in ``mode`` and call it on them."""
    inputs = [pt.tensor(dtype="float64", shape=(None,) * v.ndim) for v in values]
    return pytensor.function(inputs, build(*inputs), mode=mode)(*values)


def refused(*parts):
    """A pytest.raises for a ValueError whose message holds every part, in order."""
    return pytest.raises(ValueError, match=".*".join(re.escape(str(p)) for p in parts))


def zeros(*shape):
    return np.zeros(shape)


# The case: the forward conv is optimised away, only the gradient runs.

@pytest.mark.parametrize("mode", ["NUMBA", "CVM"])
def test_filter_gradient_with_too_many_input_channels(mode):
    with refused("conv2d gradient", "(2, 3, 5, 5)", "(4, 2, 3, 3)"):
        run(mode, lambda x, w: pytensor.grad(conv2d(x, w).sum(), w),
            zeros(2, 3, 5, 5), zeros(4, 2, 3, 3))


@pytest.mark.parametrize("mode", ["NUMBA", "CVM"])
def test_input_gradient_with_too_many_input_channels(mode):
    with refused("conv2d gradient", "(2, 3, 5, 5)", "(4, 2, 3, 3)"):
        run(mode, lambda x, w: pytensor.grad(conv2d(x, w).sum(), x),
            zeros(2, 3, 5, 5), zeros(4, 2, 3, 3))


# Each gradient Op on its own, given shapes that disagree: at run time in
# every backend (JAX checks when it traces), and at graph build time when
# the shapes are static.

CONV_GRAD_CASES = {
    # op, (operand, gout, like) shapes, parts of the message
    "weights: input channels": (
        Conv2dGradWeights, ((2, 3, 5, 5), (2, 4, 3, 3), (4, 2, 3, 3)),
        ("Conv2dGradWeights", "input (2, 3, 5, 5) has 3 channels", "filters (4, 2, 3, 3)")),
    "weights: number of filters": (
        Conv2dGradWeights, ((2, 2, 5, 5), (2, 4, 3, 3), (5, 2, 3, 3)),
        ("Conv2dGradWeights", "output gradient (2, 4, 3, 3)", "(2, 5, 3, 3)",
         "input (2, 2, 5, 5)", "filters (5, 2, 3, 3)")),
    "weights: images": (
        Conv2dGradWeights, ((2, 2, 5, 5), (3, 4, 3, 3), (4, 2, 3, 3)),
        ("Conv2dGradWeights", "output gradient (3, 4, 3, 3)", "(2, 4, 3, 3)")),
    "inputs: input channels": (
        Conv2dGradInputs, ((4, 2, 3, 3), (2, 4, 3, 3), (2, 3, 5, 5)),
        ("Conv2dGradInputs", "input (2, 3, 5, 5) has 3 channels", "filters (4, 2, 3, 3)")),
    "inputs: images": (
        Conv2dGradInputs, ((4, 2, 3, 3), (2, 4, 3, 3), (3, 2, 5, 5)),
        ("Conv2dGradInputs", "output gradient (2, 4, 3, 3)", "(3, 4, 3, 3)",
         "input (3, 2, 5, 5)")),
    "inputs: output size": (
        Conv2dGradInputs, ((4, 2, 3, 3), (2, 4, 4, 3), (2, 2, 5, 5)),
        ("Conv2dGradInputs", "output gradient (2, 4, 4, 3)", "(2, 4, 3, 3)")),
    # no output at all: an empty output gradient does not fit either
    "inputs: smaller than the filters": (
        Conv2dGradInputs, ((4, 2, 3, 3), (2, 4, 0, 0), (2, 2, 1, 1)),
        ("Conv2dGradInputs", "output gradient (2, 4, 0, 0)", "(2, 4, -1, -1)")),
}

POOL_GRAD_CASES = {
    # x, out, gout shapes, parts of the message
    "output gradient": (
        ((2, 3, 4, 4), (2, 3, 2, 2), (2, 3, 2, 3)),
        ("PoolGrad", "output gradient (2, 3, 2, 3)", "(2, 3, 2, 2)", "input (2, 3, 4, 4)")),
    # the same number of images, on other axes: was accepted, read wrongly
    "leading axes": (
        ((2, 3, 4, 4), (2, 3, 2, 2), (3, 2, 2, 2)),
        ("PoolGrad", "output gradient (3, 2, 2, 2)", "(2, 3, 2, 2)")),
    "pooled output": (
        ((2, 3, 4, 4), (2, 3, 1, 2), (2, 3, 2, 2)),
        ("PoolGrad", "pooled output (2, 3, 1, 2)", "(2, 3, 2, 2)", "input (2, 3, 4, 4)")),
}


def pool_grad_op():
    return PoolGrad((2, 2), ignore_border=True)


@pytest.mark.parametrize("mode", BACKENDS)
@pytest.mark.parametrize("case", sorted(CONV_GRAD_CASES))
def test_conv_gradient_ops_check_at_run_time(mode, case):
    op, shapes, parts = CONV_GRAD_CASES[case]
    with refused("conv2d gradient", *parts):
        run(mode, op(), *(zeros(*s) for s in shapes))


@pytest.mark.parametrize("case", sorted(CONV_GRAD_CASES))
def test_conv_gradient_ops_check_static_shapes(case):
    op, shapes, parts = CONV_GRAD_CASES[case]
    with refused("conv2d gradient", *parts):
        op()(*(pt.tensor4(shape=s) for s in shapes))


@pytest.mark.parametrize("mode", BACKENDS)
@pytest.mark.parametrize("case", sorted(POOL_GRAD_CASES))
def test_pool_gradient_checks_at_run_time(mode, case):
    shapes, parts = POOL_GRAD_CASES[case]
    with refused("pool_2d gradient", *parts):
        run(mode, pool_grad_op(), *(zeros(*s) for s in shapes))


@pytest.mark.parametrize("case", sorted(POOL_GRAD_CASES))
def test_pool_gradient_checks_static_shapes(case):
    shapes, parts = POOL_GRAD_CASES[case]
    with refused("pool_2d gradient", *parts):
        pool_grad_op()(*(pt.tensor4(shape=s) for s in shapes))


def test_fitting_shapes_still_pass_every_check():
    """Static and run-time checks accept what the forward Ops produce."""
    x, w = pt.tensor4(shape=(2, 3, 7, 6)), pt.tensor4(shape=(4, 3, 3, 2))
    out = conv2d(x, w, border_mode="half", subsample=(2, 1))
    pooled = pool_2d(out, (2, 2), ignore_border=False, mode="max")
    grads = pytensor.grad((pooled ** 2).sum(), [x, w])
    for mode in BACKENDS:
        gx, gw = pytensor.function([x, w], grads, mode=mode)(zeros(2, 3, 7, 6) + 1,
                                                              zeros(4, 3, 3, 2) + 1)
        assert gx.shape == (2, 3, 7, 6) and gw.shape == (4, 3, 3, 2)


# Shape hints: the hint's name and both shapes, a ValueError, always.

HINTS = {
    # conv2d keyword, hint, input and filter shapes, the shape hinted
    "filter_shape": ((4, 1, 5, 5), (2, 1, 8, 8), (4, 1, 3, 3), "filters (4, 1, 3, 3)"),
    "input_shape": ((2, 1, 9, 9), (2, 1, 8, 8), (4, 1, 3, 3), "input (2, 1, 8, 8)"),
    "image_shape": ((3, None, 8, 8), (2, 1, 8, 8), (4, 1, 3, 3), "input (2, 1, 8, 8)"),
}


@pytest.mark.parametrize("mode", BACKENDS)
@pytest.mark.parametrize("name", sorted(HINTS))
def test_shape_hint_that_disagrees_at_run_time(mode, name):
    hint, x_shape, w_shape, actual = HINTS[name]
    with refused("conv2d", f"{name}={hint}", actual):
        run(mode, lambda x, w: conv2d(x, w, **{name: hint}), zeros(*x_shape), zeros(*w_shape))


@pytest.mark.parametrize("name", sorted(HINTS))
def test_shape_hint_that_disagrees_with_static_shapes(name):
    hint, x_shape, w_shape, actual = HINTS[name]
    x, w = pt.tensor4(shape=x_shape), pt.tensor4(shape=w_shape)
    with refused("conv2d", f"{name}={hint}", actual):
        conv2d(x, w, **{name: hint})


@pytest.mark.parametrize("mode", BACKENDS)
def test_shape_hint_reaches_the_gradient(mode):
    """The filter gradient of a graph with a wrong hint is refused too."""
    with refused("conv2d", "filter_shape=(4, 1, 5, 5)", "filters (4, 1, 3, 3)"):
        # with both hints the output's shape is static, as JAX needs for the ones
        run(mode, lambda x, w: pytensor.grad(conv2d(x, w, input_shape=(2, 1, 8, 8),
                                                    filter_shape=(4, 1, 5, 5)).sum(), w),
            zeros(2, 1, 8, 8), zeros(4, 1, 3, 3))
