"""One thread pool: BLAS on one thread, the kernels on Numba's; stale caches."""
import os
import subprocess
import sys

import numba
import numpy as np
import pytest
from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key

import pytensor_nnet
from pytensor_nnet import (blas, conv_kernels, fast_tanh, gemm, jit, matmul_kernels, native,
                           numba_dispatch, pool_kernels)
from pytensor_nnet.conv import Conv2d

two_threads = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                                 reason="Numba has one thread here")


def test_blas_runs_on_one_thread_after_tune_for_speed():
    pytensor_nnet.tune_for_speed(rewrites=False, exact_math=False, nodes=False, allocator=False)
    counts = blas.blas_threads()
    if not counts:
        pytest.skip("no OpenBLAS found in this process")
    assert counts == [1] * len(counts)


def test_set_num_threads_checks_its_argument():
    before = pytensor_nnet.get_num_threads()
    with pytest.raises(ValueError, match="threads must be 1 to"):
        pytensor_nnet.set_num_threads(0)
    with pytest.raises(ValueError, match="NUMBA_NUM_THREADS"):
        pytensor_nnet.set_num_threads(numba.config.NUMBA_NUM_THREADS + 1)
    assert pytensor_nnet.get_num_threads() == before


def with_threads(n, fn, *args):
    before = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        return fn(*args)
    finally:
        numba.set_num_threads(before)


@two_threads
def test_results_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((37, 6, 13, 11)).astype(np.float32)
    gout = rng.standard_normal((37, 4, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 6, 5, 3)).astype(np.float32)
    a = rng.standard_normal((900, 300)).astype(np.float32)  # 4 blocks of rows
    b = rng.standard_normal((300, 200)).astype(np.float32)
    args = (conv_kernels.BORDER_VALID, 0, 0, 1, 1, 1, 1, 1)
    pool_args = (2, 2, 2, 2, 0, 0, True, pool_kernels.MAX)
    jobs = [
        (conv_kernels.conv_forward, x, w, True, *args),
        (conv_kernels.conv_grad_weights, x, gout, 5, 3, True, *args),
        (conv_kernels.conv_grad_inputs, w, gout, 13, 11, True, *args),
        (conv_kernels.conv_forward_max_pool_tanh, x, w, w[:, 0, 0, 0], True, *args, True),
        (pool_kernels.pool_forward, x, *pool_args),
        (matmul_kernels.blocked_dot, np.asfortranarray(a), b),
    ]
    for fn, *fn_args in jobs:
        one, two = with_threads(1, fn, *fn_args), with_threads(2, fn, *fn_args)
        np.testing.assert_array_equal(one, two, err_msg=fn.__name__)


def test_numba_cache_key_follows_the_kernel_source(monkeypatch):
    import pytensor.tensor as pt

    op = Conv2d()
    node = op.make_node(pt.tensor4(dtype="float32"), pt.tensor4(dtype="float32"))
    _, key = numba_funcify_and_cache_key(op, node=node)
    monkeypatch.setattr(numba_dispatch, "CONV_VERSION", numba_dispatch.CONV_VERSION + 1)
    _, edited = numba_funcify_and_cache_key(op, node=node)
    assert key != edited


def test_source_version_changes_with_the_source():
    kernels = (jit, native, conv_kernels, pool_kernels, fast_tanh)
    assert numba_dispatch.source_version(*kernels, gemm) == numba_dispatch.CONV_VERSION
    # the products the kernels call are part of it
    assert numba_dispatch.source_version(*kernels) != numba_dispatch.CONV_VERSION
    assert numba_dispatch.CONV_VERSION != numba_dispatch.POOL_VERSION


def test_numba_disk_cache_follows_every_source_of_the_package(tmp_path, monkeypatch):
    """A driver calls code from native.py: its cached machine code must go
    stale when native.py changes, not only when its own file does."""
    locator = jit.PackageLocator.from_function(conv_kernels.conv_forward.py_func,
                                               conv_kernels.__file__)
    assert locator.get_source_stamp() == jit.package_stamp()
    assert jit.PackageLocator.from_function(with_threads, __file__) is None
    monkeypatch.setattr(jit, "PACKAGE_DIR", str(tmp_path))
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 1\n")
    before = jit.package_stamp()
    (tmp_path / "b.py").write_text("y = 2\n")
    assert jit.package_stamp() != before


def test_kernels_leave_the_threading_layer_to_numba():
    """tune_for_speed starts Numba's threads with the layer Numba itself
    picks (OpenMP where it has it), and NUMBA_THREADING_LAYER still rules."""
    def layer(code, **env):
        env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"} | env
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, check=True).stdout.split()[-1]

    numba_default = layer("import numba; numba.get_num_threads(); "
                          "print(numba.threading_layer())")
    tuned = ("import numba, pytensor_nnet; pytensor_nnet.tune_for_speed(); "
             "print(numba.threading_layer())")
    assert layer(tuned) == numba_default
    assert layer(tuned, NUMBA_THREADING_LAYER="workqueue") == "workqueue"
