"""The float32 tanh Op: the C library's bits, vectorised, swapped in by a rewrite."""
import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from numba import njit
from pytensor.compile.mode import get_mode

from backends import BACKENDS
from conftest import CODE
from pytensor_nnet import Tanh32, tune_for_speed
from pytensor_nnet.fast_tanh import tanh_array


@pytest.fixture(autouse=True, scope="module")
def speed_rewrites():
    """The rewrite and exact float math come from the explicit call, not the import."""
    tune_for_speed(threads=False, nodes=False, allocator=False)

SPECIAL = np.array(
    [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -1e-40, 2.0**-56, 2.0**-30, 0.17, 0.34657, 0.5,
     1.0, -1.0, 1.0397, 9.01, 9.02, 21.99, 22.0, 88.0, -1e30, 3.4e38],
    dtype=np.float32,
)


def sample(n=400_000, seed=0):
    """float32 values over every range the algorithm treats differently."""
    rng = np.random.default_rng(seed)
    scales = rng.choice([1e-8, 1e-3, 0.1, 0.5, 1.0, 3.0, 10.0, 30.0], size=n)
    return np.concatenate([SPECIAL, (rng.standard_normal(n) * scales).astype(np.float32)])


@njit
def libm_tanhf(x):
    # Numba compiles np.tanh of a float32 scalar to the C library's tanhf
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = np.tanh(x[i])
    return out


def glibc_with_fdlibm_tanhf():
    """glibc up to 2.40 computes tanhf with fdlibm's algorithm (2.41 changed it)."""
    name, version = platform.libc_ver()
    if name != "glibc" or not version:
        return False
    return tuple(int(v) for v in version.split(".")[:2]) <= (2, 40)


@pytest.mark.skipif(not glibc_with_fdlibm_tanhf(),
                    reason="the C library's tanhf is not fdlibm's here")
def test_same_bits_as_the_c_library():
    x = sample()
    ours, libm = tanh_array(x), libm_tanhf(x)
    same = (ours.view(np.int32) == libm.view(np.int32)) | (np.isnan(ours) & np.isnan(libm))
    assert same.all(), x[~same][:10]


def test_accurate_and_special_values():
    x = sample(seed=1)
    y = tanh_array(x)
    exact = np.tanh(x.astype(np.float64))
    finite = np.isfinite(x)
    # fdlibm's tanhf is not correctly rounded: up to ~2 float32 ulps off
    # near |x| = 0.23 (so is the C library's); 3 ulps bounds it everywhere
    ulp = np.spacing(np.abs(exact[finite]).astype(np.float32)).astype(np.float64)
    assert np.all(np.abs(y[finite] - exact[finite]) <= 3 * ulp)
    special = tanh_array(SPECIAL)
    assert np.signbit(special[1]) and special[0] == 0.0  # -0 keeps its sign
    assert special[2] == 1.0 and special[3] == -1.0 and np.isnan(special[4])
    assert special[5] == SPECIAL[5] and special[7] == SPECIAL[7]  # tanh(x) = x when tiny


def test_any_shape_and_layout():
    x = sample(840)[:840].reshape(4, 5, 6, 7)
    strided = x[:, ::2, :, ::-1]
    np.testing.assert_array_equal(tanh_array(strided), tanh_array(np.ascontiguousarray(strided)))
    assert tanh_array(strided).shape == strided.shape


def compile_tanh_graph(mode, dtype):
    x = pt.tensor("x", dtype=dtype, shape=(None, None))
    b = pt.vector("b", dtype=dtype)
    y = pt.tanh(x + b)
    cost = (y ** 2).sum()
    return pytensor.function([x, b], [y, pytensor.grad(cost, x)], mode=mode)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rewrite_changes_speed_not_results(backend):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((300, 70)) * 2).astype(np.float32)
    b = rng.standard_normal(70).astype(np.float32)
    with_op = compile_tanh_graph(backend, "float32")
    without = compile_tanh_graph(get_mode(backend).excluding("pytensor_nnet_tanh32"), "float32")
    ops = [type(node.op) for node in with_op.maker.fgraph.apply_nodes]
    assert Tanh32 in ops
    assert Tanh32 not in [type(node.op) for node in without.maker.fgraph.apply_nodes]
    for ours, theirs in zip(with_op(x, b), without(x, b)):
        if backend == "JAX":  # XLA's tanh on both sides; only the graph differs
            np.testing.assert_allclose(ours, theirs, rtol=1e-6)
        else:
            np.testing.assert_array_equal(ours, theirs)


def test_float64_tanh_is_left_alone():
    fn = compile_tanh_graph("NUMBA", "float64")
    assert Tanh32 not in [type(node.op) for node in fn.maker.fgraph.apply_nodes]


def test_gradient_of_the_op():
    x = pt.vector("x", dtype="float32")
    y = Tanh32()(x)
    fn = pytensor.function([x], [y, pytensor.grad(y.sum(), x)])
    values = np.linspace(-3, 3, 11, dtype=np.float32)
    out, grad = fn(values)
    # 1 - y**2 in float32 arithmetic: within float32 rounding of the exact value
    np.testing.assert_allclose(grad, 1 - out.astype(np.float64) ** 2, rtol=1e-6,
                               atol=np.finfo(np.float32).eps)


def test_rejects_other_dtypes():
    with pytest.raises(TypeError, match="float32"):
        Tanh32()(pt.vector(dtype="float64"))


FIRST_COMPILED_IN_A_FASTMATH_GRAPH = textwrap.dedent("""
    import numpy as np, pytensor, pytensor.tensor as pt
    import pytensor_nnet
    from pytensor_nnet.fast_tanh import tanh_array
    from test_fast_tanh import libm_tanhf

    pytensor_nnet.tune_for_speed(threads=False, exact_math=False, nodes=False, allocator=False)

    x = (np.random.default_rng(0).standard_normal(200_000) * 3).astype(np.float32)
    v = pt.vector(dtype="float32")
    with pytensor.config.change_flags(numba__fastmath=True):
        in_graph = pytensor.function([v], pt.tanh(v), mode="NUMBA")(x)
    print(int((in_graph != libm_tanhf(x)).sum()), int((tanh_array(x) != libm_tanhf(x)).sum()))
""")


@pytest.mark.skipif(not glibc_with_fdlibm_tanhf(), reason="this C library's tanhf is not fdlibm's")
def test_exact_even_when_first_compiled_inside_a_fastmath_graph(tmp_path):
    """With empty caches, the kernel is first compiled for PyTensor's graph,
    whose fast-math flags it must not take on (Numba 0.68 gave them to
    kernels that left fastmath unset, and cached that version)."""
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(CODE), str(Path(__file__).parent)]),
           "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
           "PYTENSOR_FLAGS": f"floatX=float32,base_compiledir={tmp_path / 'pytensor'}"}
    done = subprocess.run([sys.executable, "-c", FIRST_COMPILED_IN_A_FASTMATH_GRAPH], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["0", "0"]  # elements unlike tanhf: in the graph, called directly
