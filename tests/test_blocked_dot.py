"""The float32 matrix product in blocks of rows, and the rewrite that uses it."""
import numba
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import get_mode
from pytensor.gradient import verify_grad

from backends import BACKENDS
from pytensor_nnet import BlockedDot, tune_for_speed
from pytensor_nnet.matmul_kernels import BLOCK_ROWS, blocked_dot, row_blocks


@pytest.fixture(autouse=True, scope="module")
def speed_rewrites():
    """The rewrites are registered by the explicit call, not by the import."""
    tune_for_speed(threads=False, exact_math=False, nodes=False, allocator=False)


def matrices(m, k, n, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((m, k)).astype(np.float32),
            rng.standard_normal((k, n)).astype(np.float32))


def exact(a, b):
    return a.astype(np.float64) @ b.astype(np.float64)


def assert_product(a, b):
    out = blocked_dot(a, b)
    assert out.dtype == np.float32 and out.shape == (a.shape[0], b.shape[1])
    assert out.flags.c_contiguous
    # float32 rounding of sums of k terms
    np.testing.assert_allclose(out, exact(a, b), rtol=0, atol=2e-6 * max(1, a.shape[1]) ** 0.5 * 8)


@pytest.mark.parametrize("m", [1, 7, BLOCK_ROWS - 1, 2 * BLOCK_ROWS, 5 * BLOCK_ROWS + 13])
def test_values_for_any_number_of_rows(m):
    assert_product(*matrices(m, 37, 19))


def test_every_operand_layout():
    a, b = matrices(450, 60, 80, seed=1)
    at, bt = np.asfortranarray(a), np.asfortranarray(b)  # BLAS-ready, column-major
    cases = [(a, b), (at, b), (a, bt), (at, bt),
             (a[:, ::2], b[::2]),  # strided: copied first
             (a[::-1], b[:, ::-1]),  # negative strides: copied first
             (a[:, :1], b[:1]), (a[:1], b)]  # one column, one row
    for x, y in cases:
        assert_product(x, y)


def test_empty_and_zero_inner_dimension():
    a, b = matrices(300, 0, 5)
    np.testing.assert_array_equal(blocked_dot(a, b), np.zeros((300, 5), np.float32))
    a, b = matrices(0, 4, 5)
    assert blocked_dot(a, b).shape == (0, 5)


def test_mismatched_inner_dimension_is_an_error():
    a, _ = matrices(10, 4, 5)
    with pytest.raises(ValueError, match="inner dimensions"):
        blocked_dot(a, np.ones((3, 5), np.float32))


def test_blocks_follow_the_shape_only():
    assert row_blocks(100) == (100, 1)
    assert row_blocks(500) == (250, 2)  # LeNet's batch: two even blocks
    assert row_blocks(800) == (200, 4)
    rows, n_blocks = row_blocks(5 * BLOCK_ROWS + 13)
    assert rows >= BLOCK_ROWS and rows * n_blocks >= 5 * BLOCK_ROWS + 13


@numba.njit
def numba_dot(a, b):
    return np.dot(a, b)


def test_one_block_is_numbas_own_product_bit_for_bit():
    """Below 2 * BLOCK_ROWS rows there is one block, one BLAS call: the bits
    of np.dot, whatever the layouts (LeNet-5's minibatch of 50 relies on it)."""
    a, b = matrices(2 * BLOCK_ROWS - 1, 120, 84, seed=7)
    for x, y in [(a, b), (np.asfortranarray(a), b), (a, np.asfortranarray(b)), (a[:50], b)]:
        np.testing.assert_array_equal(blocked_dot(x, y), numba_dot(x, y))


def compile_dense_graph(mode, dtype):
    """A hidden layer's product and both its gradients: the three products
    (x @ W, g @ W.T, x.T @ g) LeNet's dense layer runs."""
    x = pt.matrix("x", dtype=dtype)
    w = pt.matrix("w", dtype=dtype)
    h = pt.tanh(pt.dot(x, w))
    cost = (h ** 2).sum()
    return pytensor.function([x, w], [h, *pytensor.grad(cost, [x, w])], mode=mode)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rewrite_replaces_float32_products(backend):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((500, 80)).astype(np.float32)
    w = (rng.standard_normal((80, 60)) * 0.1).astype(np.float32)
    ours = compile_dense_graph(backend, "float32")
    plain = compile_dense_graph(get_mode(backend).excluding("pytensor_nnet_blocked_dot"), "float32")
    n_blocked = [type(node.op) for node in ours.maker.fgraph.apply_nodes].count(BlockedDot)
    assert BlockedDot not in [type(node.op) for node in plain.maker.fgraph.apply_nodes]
    if backend == "CVM":
        assert n_blocked == 0  # PyTensor's own C BLAS Ops took the products first
    else:
        assert n_blocked == 3
    got = ours(x, w)
    for mine, theirs in zip(got, plain(x, w)):
        # other blocking, other last bits: equal to float32 rounding
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got[0], np.tanh(exact(x, w)), rtol=1e-5, atol=1e-5)


def test_float64_products_are_left_alone():
    fn = compile_dense_graph("NUMBA", "float64")
    assert BlockedDot not in [type(node.op) for node in fn.maker.fgraph.apply_nodes]


def test_gradient_of_the_op():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((6, 4)), rng.standard_normal((4, 3))
    verify_grad(lambda x, y: BlockedDot()(x, y), [a.astype(np.float32), b.astype(np.float32)],
                rng=np.random.default_rng(6), abs_tol=2e-2, rel_tol=2e-2)


def test_shape_inference_and_bad_input():
    a, b = pt.matrix(dtype="float32"), pt.matrix(dtype="float32")
    out = BlockedDot()(a, b)
    fn = pytensor.function([a, b], out.shape)
    np.testing.assert_array_equal(fn(np.ones((5, 3), np.float32), np.ones((3, 2), np.float32)), [5, 2])
    with pytest.raises(TypeError, match="two float32 matrices"):
        BlockedDot()(pt.matrix(dtype="float64"), b)
    with pytest.raises(TypeError, match="two float32 matrices"):
        BlockedDot()(pt.vector(dtype="float32"), b)
