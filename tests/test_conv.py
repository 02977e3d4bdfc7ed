"""conv2d: values against Theano 1.0.5 and a brute-force reference, gradients,
every backend, and the errors a user meets."""
import json

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad

from nnet_reference import conv2d_reference, padding_for
from pytensor_nnet import Conv2d, conv2d, conv_kernels

from backends import BACKENDS, REFERENCE_DIR, reference


def conv_cases():
    return sorted(json.loads((REFERENCE_DIR / "conv_manifest.json").read_text()).items())


def conv_kwargs(case):
    border = case["border_mode"]
    return dict(
        border_mode=tuple(border) if isinstance(border, list) else border,
        subsample=tuple(case["subsample"]),
        filter_flip=case["filter_flip"],
        filter_dilation=tuple(case["filter_dilation"]),
    )


def forward_and_grads(mode, **kwargs):
    """Compile (x, w, G) -> (conv2d, d sum(out*G)/dx, d sum(out*G)/dw)."""
    x, w, g = pt.dtensor4("x"), pt.dtensor4("w"), pt.dtensor4("g")
    out = conv2d(x, w, **kwargs)
    gx, gw = pytensor.grad((out * g).sum(), [x, w])
    return pytensor.function([x, w, g], [out, gx, gw], mode=mode)


@pytest.mark.parametrize("name,case", conv_cases(), ids=[n for n, _ in conv_cases()])
def test_matches_theano_all_cases(name, case):
    """All 32 Theano cases, through perform (the kernels every mode uses)."""
    x, w = reference("conv_input"), reference("conv_filters")
    fn = forward_and_grads("FAST_COMPILE", **conv_kwargs(case))
    out, gx, gw = fn(x, w, reference(f"{name}_G"))
    assert out.shape == tuple(case["out_shape"])
    np.testing.assert_allclose(out, reference(f"{name}_out"), rtol=0, atol=1e-9)
    np.testing.assert_allclose(gx, reference(f"{name}_gradx"), rtol=0, atol=1e-9)
    np.testing.assert_allclose(gw, reference(f"{name}_gradw"), rtol=0, atol=1e-9)


# A spread of the Theano cases for the compiled backends (Numba compiles take
# seconds each, so not all 32): every border mode, stride, flip and dilation.
BACKEND_CASES = [
    "conv_bmvalid_sub11_flipTrue_dil11",
    "conv_bmfull_sub22_flipFalse_dil11",
    "conv_bmhalf_sub11_flipTrue_dil22",
    "conv_bm1_2_sub22_flipTrue_dil22",
]


@pytest.mark.parametrize("mode", BACKENDS)
@pytest.mark.parametrize("name", BACKEND_CASES)
def test_matches_theano_on_backend(mode, name):
    case = dict(conv_cases())[name]
    fn = forward_and_grads(mode, **conv_kwargs(case))
    out, gx, gw = fn(reference("conv_input"), reference("conv_filters"), reference(f"{name}_G"))
    np.testing.assert_allclose(out, reference(f"{name}_out"), rtol=0, atol=1e-9)
    np.testing.assert_allclose(gx, reference(f"{name}_gradx"), rtol=0, atol=1e-9)
    np.testing.assert_allclose(gw, reference(f"{name}_gradw"), rtol=0, atol=1e-9)


GRID = [
    # border_mode, subsample, dilation, flip, groups
    ("valid", (1, 1), (1, 1), True, 1),
    ("full", (2, 1), (1, 2), False, 1),
    ("half", (1, 2), (2, 1), True, 1),
    ((2, 1), (3, 2), (1, 1), True, 1),
    (1, (1, 1), (1, 1), False, 2),
    ("half", (2, 2), (1, 1), True, 3),
]


@pytest.mark.parametrize("dtype,atol", [("float64", 1e-12), ("float32", 2e-5)])
@pytest.mark.parametrize("border,stride,dilation,flip,groups", GRID)
def test_brute_force_reference(border, stride, dilation, flip, groups, dtype, atol):
    rng = np.random.RandomState(7)
    x = rng.randn(2, 3 * groups, 9, 8).astype(dtype)
    w = rng.randn(2 * groups, 3, 3, 2).astype(dtype)
    out = conv2d(x, w, border_mode=border, subsample=stride, filter_flip=flip,
                 filter_dilation=dilation, num_groups=groups).eval(mode="FAST_COMPILE")
    pad = padding_for(border if not isinstance(border, int) else (border, border), (3, 2), dilation)
    expected = conv2d_reference(x, w, pad, stride, dilation, flip, groups)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, expected, rtol=0, atol=atol)


@pytest.mark.parametrize("border,stride,dilation,flip,groups", GRID)
def test_gradients_finite_differences(border, stride, dilation, flip, groups):
    rng = np.random.RandomState(3)
    x = rng.randn(2, 2 * groups, 7, 6)
    w = rng.randn(2 * groups, 2, 3, 2)

    def f(x, w):
        return conv2d(x, w, border_mode=border, subsample=stride, filter_flip=flip,
                      filter_dilation=dilation, num_groups=groups)

    verify_grad(f, [x, w], rng=rng, mode="FAST_COMPILE")


def test_second_derivative():
    """The gradient Ops have gradients too (they are convolutions again)."""
    rng = np.random.RandomState(5)

    def grad_x_dot_g(x, w):
        out = conv2d(x, w, border_mode="full", subsample=(2, 1))
        gx, gw = pytensor.grad((out ** 2).sum(), [x, w])
        return (gx * x).sum() + (gw * w).sum()

    verify_grad(grad_x_dot_g, [rng.randn(2, 2, 5, 4), rng.randn(3, 2, 2, 2)],
                rng=rng, mode="FAST_COMPILE")


@pytest.mark.parametrize("stride,groups", [((1, 1), 1), ((2, 1), 2)])
def test_a_batch_in_many_blocks_equals_its_images_one_by_one(stride, groups):
    """The kernels cut a batch into blocks of images (one matrix product
    each); the last block is short. Each image alone is one block, so the
    batch must give the same outputs and input gradients, and the sum of
    the images' filter gradients."""
    rng = np.random.RandomState(11)
    x = rng.randn(41, 3 * groups, 30, 30)
    w = rng.randn(4 * groups, 3, 5, 5)
    settings = (conv_kernels.BORDER_VALID, 0, 0, *stride, 1, 1, groups)
    out = conv_kernels.conv_forward(x, w, True, *settings)
    assert conv_kernels.blocking(len(x), out.shape[2] * out.shape[3])[1] > 2
    gout = rng.randn(*out.shape)
    gx = conv_kernels.conv_grad_inputs(w, gout, 30, 30, True, *settings)
    gw = conv_kernels.conv_grad_weights(x, gout, 5, 5, True, *settings)
    gw_sum = np.zeros_like(gw)
    for i in range(len(x)):
        one = slice(i, i + 1)
        np.testing.assert_allclose(out[one], conv_kernels.conv_forward(x[one], w, True, *settings),
                                   rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            gx[one], conv_kernels.conv_grad_inputs(w, gout[one], 30, 30, True, *settings),
            rtol=0, atol=1e-12)
        gw_sum += conv_kernels.conv_grad_weights(x[one], gout[one], 5, 5, True, *settings)
    np.testing.assert_allclose(gw, gw_sum, rtol=1e-12, atol=1e-10)


def test_forward_blocks_keep_their_patches_in_cache():
    """LeNet's second layer (500 images, K = 20*5*5, 8x8 outputs): the
    forward and input-gradient kernels unroll 8 images a block (1 MiB of
    patches, cache-sized), the filter gradient 64 (its sums run along the
    patches, so its blocks fix its last bits)."""
    assert conv_kernels.blocking(500, 64, 500) == (8, 63)
    assert conv_kernels.blocking(500, 64) == (64, 8)
    blk, _ = conv_kernels.blocking(500, 64, 500)
    assert blk * 500 * 64 <= conv_kernels.CACHE_FLOATS < (blk + 1) * 500 * 64
    # one image's patches larger than the cache: still one image a block
    assert conv_kernels.blocking(10, 4096, 500) == (1, 10)


def test_static_output_shape_and_infer_shape():
    x = pt.tensor4("x", shape=(5, 3, 11, 9))
    w = pt.tensor4("w", shape=(4, 3, 3, 4))
    out = conv2d(x, w, border_mode="half", subsample=(2, 2))
    assert out.type.shape == (5, 4, 6, 5)
    symbolic = pt.tensor4("s")
    shape_fn = pytensor.function([symbolic, w], conv2d(symbolic, w, border_mode=(1, 2)).shape)
    assert tuple(shape_fn(np.zeros((2, 3, 7, 7), symbolic.dtype), np.zeros((4, 3, 3, 4), w.dtype))) == (2, 4, 7, 8)


def test_shape_hints_and_image_shape_alias():
    x, w = pt.tensor4("x"), pt.tensor4("w")
    out = conv2d(x, w, image_shape=(2, 3, 8, 8), filter_shape=(4, 3, 3, 3))
    assert out.type.shape == (2, 4, 6, 6)
    fn = pytensor.function([x, w], out, mode="FAST_COMPILE")
    good = np.zeros((2, 3, 8, 8), x.dtype), np.zeros((4, 3, 3, 3), w.dtype)
    assert fn(*good).shape == (2, 4, 6, 6)
    # disagrees with the hint at run time
    with pytest.raises(ValueError, match=r"conv2d: image_shape=\(2, 3, 8, 8\) disagrees with "
                                         r"the input \(2, 3, 9, 8\)"):
        fn(np.zeros((2, 3, 9, 8), x.dtype), good[1])


@pytest.mark.parametrize("call,match", [
    (lambda x4, x3: conv2d(x3, x4), "input must be a 4-d tensor"),
    (lambda x4, x3: conv2d(x4, x3), "filters must be a 4-d tensor"),
    (lambda x4, x3: conv2d(pt.tensor4(shape=(1, 3, 8, 8)), pt.tensor4(shape=(2, 2, 3, 3))),
     r"the input \(1, 3, 8, 8\) has 3 channels but the filters \(2, 2, 3, 3\) expect"),
    (lambda x4, x3: conv2d(pt.tensor4(shape=(1, 4, 8, 8)), pt.tensor4(shape=(3, 2, 3, 3)), num_groups=2),
     "cannot be split"),
    (lambda x4, x3: conv2d(pt.tensor4(shape=(1, 1, 4, 4)), pt.tensor4(shape=(1, 1, 5, 5))),
     "output would be empty"),
    (lambda x4, x3: conv2d(pt.tensor4(shape=(1, 1, 8, 8)), x4, input_shape=(1, 2, 8, 8)),
     "disagrees"),
    (lambda x4, x3: conv2d(x4, x4, filter_shape=(2, -1, 3, 3)),
     "filter_shape must hold sizes >= 0 or None"),
    (lambda x4, x3: conv2d(x4, x4, border_mode="same"), "border_mode must be"),
    (lambda x4, x3: conv2d(x4, x4, subsample=(0, 1)), "subsample must be >= 1"),
    (lambda x4, x3: conv2d(x4, x4, filter_dilation=(1, 2, 3)), "filter_dilation must be"),
    (lambda x4, x3: conv2d(x4, x4, num_groups=0), "num_groups must be"),
])
def test_clear_errors_at_graph_build(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(pt.tensor4("x4"), pt.tensor3("x3"))


@pytest.mark.parametrize("mode", ["FAST_COMPILE"] + BACKENDS)
@pytest.mark.parametrize("x_shape,w_shape,match", [
    ((1, 3, 5, 5), (2, 2, 3, 3),
     r"conv2d: the input \(1, 3, 5, 5\) has 3 channels but the filters \(2, 2, 3, 3\) "
     r"expect 2 x num_groups=1"),
    ((1, 1, 3, 3), (2, 1, 5, 5),
     r"conv2d: the output would be empty \(shape \(1, 2, -1, -1\)\): the \(padded\) input "
     r"\(1, 1, 3, 3\) is smaller than the \(dilated\) filters \(2, 1, 5, 5\)"),
], ids=["channels", "empty"])
def test_clear_errors_at_run_time(mode, x_shape, w_shape, match):
    fn = pytensor.function(*(lambda x, w: ([x, w], conv2d(x, w)))(pt.dtensor4(), pt.dtensor4()),
                           mode=mode)
    with pytest.raises(ValueError, match=match):
        fn(np.zeros(x_shape), np.zeros(w_shape))


def test_props_are_normalised():
    assert Conv2d(border_mode=2, subsample=3) == Conv2d(border_mode=(2, 2), subsample=(3, 3))


@pytest.mark.parametrize("border", ["half", "full", "valid", (1, 2)])
def test_infer_shape_with_unknown_filter_shape(border):
    """infer_shape's symbolic arithmetic agrees with the computed output."""
    x, w = pt.dtensor4("x"), pt.dtensor4("w")
    out = conv2d(x, w, border_mode=border, filter_dilation=(2, 1), subsample=(2, 1))
    shape_fn = pytensor.function([x, w], out.shape)
    # the shape comes from infer_shape: no convolution runs to get it
    assert not any(isinstance(node.op, Conv2d) for node in shape_fn.maker.fgraph.apply_nodes)
    args = np.zeros((2, 3, 11, 9)), np.zeros((4, 3, 3, 4))
    value = pytensor.function([x, w], out, mode="FAST_COMPILE")(*args)
    assert tuple(shape_fn(*args)) == value.shape
