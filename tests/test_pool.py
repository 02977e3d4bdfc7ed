"""pool_2d: values against Theano 1.0.5 and a brute-force reference, gradients,
every backend, Theano's argument rules and errors."""
import json
import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import NullTypeGradError, verify_grad

from backends import BACKENDS, REFERENCE_DIR, reference
from nnet_reference import pool_reference
from pytensor_nnet import max_pool_2d, pool_2d

MODES = ["max", "sum", "average_inc_pad", "average_exc_pad"]


def pool_cases():
    return sorted(json.loads((REFERENCE_DIR / "pool_manifest.json").read_text()).items())


def pool_kwargs(case):
    return dict(ws=tuple(case["ws"]), ignore_border=case["ignore_border"],
                stride=None if case["stride"] is None else tuple(case["stride"]),
                pad=tuple(case["pad"]), mode=case["mode"])


def forward_and_grad(backend, **kwargs):
    x, g = pt.dtensor4("x"), pt.dtensor4("g")
    out = pool_2d(x, **kwargs)
    return pytensor.function([x, g], [out, pytensor.grad((out * g).sum(), x)], mode=backend)


@pytest.mark.parametrize("backend", ["FAST_COMPILE"] + BACKENDS)
def test_matches_theano_all_cases(backend):
    """All 12 Theano cases on every backend (pooling graphs compile quickly)."""
    x = reference("pool_input")
    for name, case in pool_cases():
        out, gx = forward_and_grad(backend, **pool_kwargs(case))(x, reference(f"{name}_G"))
        assert out.shape == tuple(case["out_shape"]), name
        np.testing.assert_allclose(out, reference(f"{name}_out"), rtol=0, atol=1e-9, err_msg=name)
        if (REFERENCE_DIR / f"{name}_gradx.npy").exists():
            np.testing.assert_allclose(gx, reference(f"{name}_gradx"), rtol=0, atol=1e-9, err_msg=name)
        else:
            # Theano had no gradient for average_exc_pad with padding: check ours
            # against finite differences instead.
            assert case["mode"] == "average_exc_pad" and case["pad"] != [0, 0]
            verify_grad(lambda v: pool_2d(v, **pool_kwargs(case)), [x], mode="FAST_COMPILE",
                        rng=np.random.RandomState(0))


GRID = [
    # ws, stride, pad, ignore_border
    ((2, 2), None, (0, 0), True),
    ((2, 2), None, (0, 0), False),
    ((3, 2), (1, 2), (0, 0), False),
    ((3, 3), (2, 2), (1, 1), True),
    ((2, 3), (3, 1), (1, 2), True),
    ((3, 2), (2, 3), (0, 0), False),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ws,stride,pad,ignore_border", GRID)
def test_brute_force_reference(ws, stride, pad, ignore_border, mode, dtype):
    x = np.random.RandomState(1).randn(2, 3, 7, 8).astype(dtype)
    out = pool_2d(x, ws, ignore_border=ignore_border, stride=stride, pad=pad,
                  mode=mode).eval(mode="FAST_COMPILE")
    expected = pool_reference(x, ws, stride or ws, pad, ignore_border, mode)
    assert out.dtype == dtype
    tol = 1e-6 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ws,stride,pad,ignore_border", GRID)
def test_gradients_finite_differences(ws, stride, pad, ignore_border, mode):
    rng = np.random.RandomState(2)
    # distinct values so that no window has a tied maximum (a kink)
    x = rng.permutation(2 * 2 * 7 * 8).reshape(2, 2, 7, 8) / 10.0
    verify_grad(lambda v: pool_2d(v, ws, ignore_border=ignore_border, stride=stride,
                                  pad=pad, mode=mode), [x], rng=rng, mode="FAST_COMPILE")


def test_max_gradient_goes_to_every_tied_maximum():
    """As Theano's MaxPoolGrad: each cell equal to its window's max gets gout."""
    x = pt.tensor("x", dtype="float64", shape=(2, 4))  # static: JAX needs it for the ones
    gx = pytensor.grad(pool_2d(x, (2, 2), ignore_border=True).sum(), x)
    for mode in ["FAST_COMPILE"] + BACKENDS:
        got = pytensor.function([x], gx, mode=mode)(np.ones((2, 4)))
        np.testing.assert_array_equal(got, np.ones((2, 4)), err_msg=str(mode))


@pytest.mark.parametrize("mode", ["sum", "average_inc_pad", "average_exc_pad"])
def test_second_derivative_of_linear_modes(mode):
    rng = np.random.RandomState(4)

    def grad_dot(v):
        gx = pytensor.grad((pool_2d(v, (3, 3), ignore_border=True, stride=(2, 2), pad=(1, 1),
                                    mode=mode) ** 2).sum(), v)
        return (gx * v).sum()

    verify_grad(grad_dot, [rng.randn(1, 2, 6, 5)], rng=rng, mode="FAST_COMPILE")


def test_second_derivative_of_max_is_a_clear_error():
    x = pt.dtensor4("x")
    gx = pytensor.grad(pool_2d(x, (2, 2), ignore_border=True).sum(), x)
    with pytest.raises(NullTypeGradError, match="second derivative of mode='max'"):
        pytensor.grad((gx ** 2).sum(), x)


def test_any_number_of_leading_axes():
    x = np.random.RandomState(0).randn(2, 3, 2, 5, 6)
    out = pool_2d(x, (2, 3), ignore_border=False).eval(mode="FAST_COMPILE")
    assert out.shape == (2, 3, 2, 3, 2)
    np.testing.assert_allclose(out, pool_reference(x, (2, 3), (2, 3), (0, 0), False, "max"))
    assert pool_2d(pt.matrix(shape=(5, 6)), (2, 2), ignore_border=True).type.shape == (2, 3)


def test_old_keyword_names_and_max_pool_2d():
    x = pt.tensor4("x", shape=(1, 1, 7, 7))
    assert pool_2d(x, ds=(2, 2), st=(1, 1), ignore_border=True).type.shape == (1, 1, 6, 6)
    assert pool_2d(x, (3, 3), ignore_border=True, padding=(1, 1)).type.shape == (1, 1, 3, 3)
    assert max_pool_2d(x, (2, 2), ignore_border=False).type.shape == (1, 1, 4, 4)


def test_ignore_border_none_warns_and_means_false():
    x = pt.tensor4("x", shape=(1, 1, 5, 5))
    with pytest.warns(UserWarning, match="ignore_border"):
        out = pool_2d(x, (2, 2))
    assert out.type.shape == (1, 1, 3, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pool_2d(x, (2, 2), ignore_border=True)


@pytest.mark.parametrize("kwargs,match", [
    (dict(ws=(0, 2)), "ws must be >= 1"),
    (dict(ws=(2, 2), stride=(2, -1)), "stride must be >= 1"),
    (dict(ws=(2, 2), pad=(2, 0), ignore_border=True), "must be smaller than the window"),
    (dict(ws=(2, 2), pad=(1, 1), ignore_border=False), "padding needs ignore_border=True"),
    (dict(ws=(2, 2), mode="median"), "mode must be one of"),
    (dict(ws=(2, 2, 2)), "ws must be an int or a pair"),
    (dict(), "window size ws is required"),
    (dict(ws=(2, 2), ds=(2, 2)), "not both"),
])
def test_clear_errors(kwargs, match):
    kwargs.setdefault("ignore_border", True)
    with pytest.raises((ValueError, TypeError), match=match):
        pool_2d(pt.tensor4("x"), **kwargs)


def test_input_checks():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        pool_2d(pt.vector("v"), (2, 2), ignore_border=True)
    with pytest.raises(TypeError, match="float tensor"):
        pool_2d(pt.imatrix("i"), (2, 2), ignore_border=True)


@pytest.mark.parametrize("shape", [(3, 8, 6), (2, 7, 9)])
def test_2x2_fast_path_with_ties_and_infinities(shape):
    """LeNet's case (whole 2x2 windows, stride 2) has loops of its own."""
    from pytensor_nnet import pool_kernels

    rng = np.random.default_rng(5)
    x = rng.integers(-2, 3, size=shape).astype(np.float32)  # many ties
    x[0, 0, :2] = -np.inf
    x[1, 1, 1] = np.inf
    oh, ow = shape[1] // 2, shape[2] // 2
    args = (2, 2, 2, 2, 0, 0, True, pool_kernels.MAX)
    out = pool_kernels.pool_forward(x, *args)
    windows = x[:, :2 * oh, :2 * ow].reshape(shape[0], oh, 2, ow, 2)
    np.testing.assert_array_equal(out, windows.max(axis=(2, 4)))
    gout = rng.standard_normal(out.shape).astype(np.float32)
    grad = pool_kernels.pool_grad(x, out, gout, *args)
    at_max = windows == out[:, :, None, :, None]
    expected = np.zeros_like(x)
    expected[:, :2 * oh, :2 * ow] = (at_max * gout[:, :, None, :, None]).reshape(
        shape[0], 2 * oh, 2 * ow)
    np.testing.assert_array_equal(grad, expected)
