"""The fused convolution + 2x2 max pooling (pytensor_nnet.conv_pool): the
same bits as the two Ops apart, in the kernels and in compiled graphs on
every backend, and the rewrite only where it is safe; the same for the bias
and tanh taken into it."""
import math

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

import pytensor_nnet
from backends import BACKENDS
from pytensor_nnet import (Conv2d, Conv2dGradInputsMaxPool, Conv2dGradWeightsMaxPool,
                           Conv2dMaxPool, Pool, PoolGrad, conv2d, conv_kernels, pool_2d,
                           pool_kernels)
from pytensor_nnet.conv_pool import REWRITE_NAME, TANH_REWRITE_NAME
from pytensor_nnet.fast_tanh import tanh_array
from pytensor_nnet.shapes import ShapeError

# input shape, filter shape, conv2d settings: LeNet's two layers, odd map
# sizes (a row and a column left out of the pooling), padding, strides,
# dilation, groups, and maps of one cell (nothing to pool)
CASES = [
    ((9, 1, 28, 28), (4, 1, 5, 5), {}),
    ((9, 6, 12, 12), (5, 6, 5, 5), {}),
    ((3, 4, 11, 9), (6, 2, 3, 2), dict(border_mode=(1, 2), subsample=(2, 1),
                                       filter_dilation=(1, 2), num_groups=2, filter_flip=False)),
    ((5, 3, 10, 13), (4, 3, 3, 3), dict(border_mode="half")),
    ((2, 2, 4, 5), (3, 2, 2, 2), dict(border_mode="full")),
    ((2, 1, 2, 2), (1, 1, 2, 2), {}),
]


def kernel_args(settings):
    """The conv driver's arguments (flip, border, pads, strides, dilations, groups)."""
    op = Conv2d(**settings)
    return (op.filter_flip, *op.kernel_args())


def case_arrays(x_shape, w_shape, dtype, ties):
    rng = np.random.default_rng(sum(x_shape) + sum(w_shape))
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    if ties:  # small integers and equal weights: many windows hold their maximum twice
        x, w = np.round(2 * x), np.ones_like(w)
    return x, w


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("x_shape,w_shape,settings", CASES)
def test_kernels_equal_the_two_ops_apart(x_shape, w_shape, settings, dtype, ties):
    args = kernel_args(settings)
    x, w = case_arrays(x_shape, w_shape, dtype, ties)
    pool = (2, 2, 2, 2, 0, 0, True, pool_kernels.MAX)
    maps = conv_kernels.conv_forward(x, w, *args)
    pooled = pool_kernels.pool_forward(maps, *pool)
    gpooled = np.random.default_rng(1).standard_normal(pooled.shape).astype(dtype)
    gmaps = pool_kernels.pool_grad(maps, pooled, gpooled, *pool)

    fused, cells = conv_kernels.conv_forward_max_pool(x, w, *args, True)
    alone, no_cells = conv_kernels.conv_forward_max_pool(x, w, *args, False)
    np.testing.assert_array_equal(fused, pooled)
    np.testing.assert_array_equal(alone, pooled)
    assert no_cells.size == 0 and cells.shape == pooled.shape
    if ties and pooled.size:
        assert np.isin(cells, [3, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15]).any()  # ties were there

    np.testing.assert_array_equal(
        conv_kernels.conv_grad_weights_max_pool(x, cells, gpooled, *w_shape[2:], *args),
        conv_kernels.conv_grad_weights(x, gmaps, *w_shape[2:], *args))
    np.testing.assert_array_equal(
        conv_kernels.conv_grad_inputs_max_pool(w, cells, gpooled, *x_shape[2:], *args),
        conv_kernels.conv_grad_inputs(w, gmaps, *x_shape[2:], *args))


@pytest.fixture(scope="module")
def with_rewrites():
    pytensor_nnet.tune_for_speed(threads=False, exact_math=False, nodes=False, allocator=False)


def layer_graph(settings, ws=(2, 2), ignore_border=True, extra_use=False):
    """A conv + pool + tanh layer's cost, and its gradients w.r.t. input and filters."""
    x, w = pt.dtensor4("x"), pt.dtensor4("w")
    maps = conv2d(x, w, **settings)
    pooled = pool_2d(maps, ws, ignore_border=ignore_border)
    cost = pt.tanh(pooled).sum()
    if extra_use:
        cost = cost + maps.mean()
    return [x, w], [cost, *pytensor.grad(cost, [x, w])]


def op_names(f):
    return {type(node.op).__name__ for node in f.maker.fgraph.apply_nodes}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("x_shape,w_shape,settings", CASES[1:4])
def test_compiled_graphs_give_the_same_numbers(with_rewrites, backend, x_shape, w_shape,
                                               settings):
    inputs, outputs = layer_graph(settings)
    mode = pytensor.compile.mode.get_mode(backend)
    fused = pytensor.function(inputs, outputs, mode=mode)
    apart = pytensor.function(inputs, outputs, mode=mode.excluding(REWRITE_NAME))
    assert {"Conv2dMaxPool", "Conv2dGradWeightsMaxPool", "Conv2dGradInputsMaxPool"} \
        <= op_names(fused)
    assert not {"Conv2d", "Pool", "PoolGrad"} & op_names(fused)
    assert {"Conv2d", "Pool", "PoolGrad"} <= op_names(apart)
    x, w = case_arrays(x_shape, w_shape, "float64", ties=False)
    for a, b in zip(fused(x, w), apart(x, w)):
        if backend == "JAX":  # XLA orders its sums as it likes
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        else:
            np.testing.assert_array_equal(a, b)


def test_forward_only_graph_keeps_no_cells(with_rewrites):
    x, w = pt.dtensor4("x"), pt.dtensor4("w")
    f = pytensor.function([x, w], pool_2d(conv2d(x, w), (2, 2), ignore_border=True))
    (node,) = f.maker.fgraph.apply_nodes
    assert isinstance(node.op, Conv2dMaxPool) and not node.op.with_cells
    x_val, w_val = case_arrays((2, 3, 9, 9), (4, 3, 3, 3), "float64", ties=False)
    expected = pool_kernels.pool_forward(conv_kernels.conv_forward(x_val, w_val, True,
                                                                   *Conv2d().kernel_args()),
                                         2, 2, 2, 2, 0, 0, True, pool_kernels.MAX)
    np.testing.assert_array_equal(f(x_val, w_val), expected)


@pytest.mark.parametrize("why,graph", [
    ("the maps are used elsewhere", dict(extra_use=True)),
    ("another window", dict(ws=(3, 3))),
    ("windows cut at the border are kept", dict(ignore_border=False)),
])
def test_the_rewrite_leaves_other_graphs(with_rewrites, why, graph):
    inputs, outputs = layer_graph({}, **graph)
    names = op_names(pytensor.function(inputs, outputs))
    assert {"Conv2d", "Pool", "PoolGrad"} <= names, why
    assert not {"Conv2dMaxPool", "Conv2dGradWeightsMaxPool"} & names, why


def test_gradient_shapes_are_checked():
    x, cells, gpooled = pt.dtensor4("x"), pt.dtensor4("cells"), pt.dtensor4("g")
    w_like = pt.dtensor4("w")
    f = pytensor.function([x, cells, gpooled, w_like],
                          Conv2dGradWeightsMaxPool()(x, cells, gpooled, w_like))
    x_val = np.zeros((2, 1, 9, 9))
    with pytest.raises(ShapeError, match=r"Conv2dGradWeightsMaxPool.*the array of the "
                                         r"maxima's cells \(2, 3, 3, 3\).*pooled shape "
                                         r"\(2, 3, 2, 2\)"):
        f(x_val, np.zeros((2, 3, 3, 3)), np.zeros((2, 3, 2, 2)), np.zeros((3, 1, 5, 5)))
    with pytest.raises(ShapeError, match=r"pooled output gradient \(2, 3, 3, 2\)"):
        Conv2dGradInputsMaxPool()(pt.dtensor4(shape=(3, 1, 5, 5)),
                                  pt.dtensor4(shape=(2, 3, 2, 2)),
                                  pt.dtensor4(shape=(2, 3, 3, 2)),
                                  pt.dtensor4(shape=(2, 1, 9, 9)))


def test_lenet_graph_is_fused_in_both_layers(tiny_mnist):
    """The tutorial's training step: both layers' conv + pool fused, nothing
    of them left apart."""
    import convolutional_mlp
    from logistic_sgd import load_data

    model = convolutional_mlp.build_model(load_data(str(tiny_mnist)), nkerns=(4, 6),
                                          batch_size=100, max_batches=2)
    ops = [node.op for node in model.train_model.maker.fgraph.apply_nodes]
    assert sum(isinstance(op, Conv2dMaxPool) and op.with_cells and op.tanh_bias
               for op in ops) == 2
    assert sum(isinstance(op, Conv2dGradWeightsMaxPool) for op in ops) == 2
    assert sum(isinstance(op, Conv2dGradInputsMaxPool) for op in ops) == 1
    assert not any(isinstance(op, (Conv2d, Pool, PoolGrad)) for op in ops)


def tanh_of_sum(pooled, bias):
    """tanh(pooled + bias per filter) as the graph apart computes it: float32
    through Tanh32's kernel, float64 through the C library's tanh."""
    total = pooled + bias[None, :, None, None]
    if total.dtype == np.float32:
        return tanh_array(total)
    return np.vectorize(math.tanh, otypes=[total.dtype])(total)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("x_shape,w_shape,settings", CASES)
def test_bias_and_tanh_kernel_equals_the_steps_apart(x_shape, w_shape, settings, dtype):
    args = kernel_args(settings)
    x, w = case_arrays(x_shape, w_shape, dtype, ties=False)
    bias = np.random.default_rng(2).standard_normal(w_shape[0]).astype(dtype)
    pooled, cells = conv_kernels.conv_forward_max_pool(x, w, *args, True)
    for with_cells in (True, False):
        out, out_cells = conv_kernels.conv_forward_max_pool_tanh(x, w, bias, *args, with_cells)
        np.testing.assert_array_equal(out, tanh_of_sum(pooled, bias))
        np.testing.assert_array_equal(out_cells, cells if with_cells else cells[:0, :0, :0, :0])


def biased_layer_graph(dtype, extra=None, flatten=False):
    """A LeNet layer: tanh(pool(conv) + bias), its cost and the gradients
    w.r.t. input, filters and bias; ``extra`` adds another use of the pooled
    maps ("pooled") or of their sum with the bias ("sum"); with ``flatten``
    the layer's output is flattened for a next layer, as LeNet's second is."""
    x, w = pt.tensor4("x", dtype=dtype), pt.tensor4("w", dtype=dtype)
    b = pt.vector("b", dtype=dtype)
    pooled = pool_2d(conv2d(x, w), (2, 2), ignore_border=True)
    total = pooled + b.dimshuffle("x", 0, "x", "x")
    out = pt.tanh(total)
    cost = (out.flatten(2) ** 2).sum() if flatten else out.sum()
    if extra:
        cost = cost + {"pooled": pooled, "sum": total}[extra].mean()
    return [x, w, b], [cost, *pytensor.grad(cost, [x, w, b])]


def biased_inputs(dtype):
    x, w = case_arrays((6, 3, 12, 12), (5, 3, 5, 5), dtype, ties=False)
    return x, w * 0.2, np.random.default_rng(3).standard_normal(5).astype(dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_bias_and_tanh_fused_in_compiled_graphs(with_rewrites, backend, dtype):
    inputs, outputs = biased_layer_graph(dtype)
    mode = pytensor.compile.mode.get_mode(backend)
    fused = pytensor.function(inputs, outputs, mode=mode)
    apart = pytensor.function(inputs, outputs, mode=mode.excluding(TANH_REWRITE_NAME))
    nodes = fused.maker.fgraph.apply_nodes
    assert [n.op.tanh_bias for n in nodes if isinstance(n.op, Conv2dMaxPool)] == [True]
    assert "Tanh32" not in op_names(fused)
    assert [n.op.tanh_bias for n in apart.maker.fgraph.apply_nodes
            if isinstance(n.op, Conv2dMaxPool)] == [False]
    values = biased_inputs(dtype)
    for a, b in zip(fused(*values), apart(*values)):
        if backend == "JAX":
            np.testing.assert_allclose(a, b, rtol=1e-5 if dtype == "float32" else 1e-12)
        else:
            np.testing.assert_array_equal(a, b)


def test_bias_and_tanh_fused_through_a_lifted_reshape(with_rewrites):
    """PyTensor moves the flattening reshape in front of the tanh; the fused
    Op serves both the flattened tanh and the one the gradient uses."""
    inputs, outputs = biased_layer_graph("float32", flatten=True)
    fused = pytensor.function(inputs, outputs)
    apart = pytensor.function(inputs, outputs,
                              mode=pytensor.config.mode.excluding(TANH_REWRITE_NAME))
    assert any(getattr(n.op, "tanh_bias", False) for n in fused.maker.fgraph.apply_nodes)
    assert "Tanh32" not in op_names(fused)
    assert "Tanh32" in op_names(apart)
    values = biased_inputs("float32")
    for a, b in zip(fused(*values), apart(*values)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("extra", ["pooled", "sum"])
def test_bias_and_tanh_stay_apart_when_used_elsewhere(with_rewrites, extra):
    inputs, outputs = biased_layer_graph("float64", extra)
    f = pytensor.function(inputs, outputs)
    assert not any(getattr(n.op, "tanh_bias", False) for n in f.maker.fgraph.apply_nodes)
    assert any(isinstance(n.op, Conv2dMaxPool) for n in f.maker.fgraph.apply_nodes)


def test_a_bias_that_is_not_per_filter_stays_apart(with_rewrites):
    x, w, b = pt.dtensor4("x"), pt.dtensor4("w"), pt.dtensor4("b")
    f = pytensor.function([x, w, b], pt.tanh(pool_2d(conv2d(x, w), (2, 2),
                                                     ignore_border=True) + b))
    assert not any(getattr(n.op, "tanh_bias", False) for n in f.maker.fgraph.apply_nodes)


def test_the_bias_shape_is_checked():
    op = Conv2dMaxPool(tanh_bias=True)
    with pytest.raises(ShapeError, match=r"conv2d: the bias \(4,\) is not a vector of one "
                                         r"number per filter \(the filters \(5, 3, 3, 3\)\)"):
        op(pt.dtensor4(), pt.dtensor4(shape=(5, 3, 3, 3)), pt.dvector(shape=(4,)))
    with pytest.raises(TypeError, match="takes 3 inputs with tanh_bias=True, got 2"):
        op(pt.dtensor4(), pt.dtensor4())
    x, w, b = pt.dtensor4("x"), pt.dtensor4("w"), pt.dvector("b")
    x_val, w_val = case_arrays((2, 3, 9, 9), (5, 3, 3, 3), "float64", ties=False)
    for backend in ("NUMBA", "CVM"):
        f = pytensor.function([x, w, b], op(x, w, b), mode=backend)
        with pytest.raises(ShapeError, match=r"the bias \(4,\)"):
            f(x_val, w_val, np.zeros(4))
