"""No waiting after a change: the kernels are compiled once per dtype, as
native functions (``pytensor_nnet.native``), and a new conv2d or pool_2d
setting, or a new graph, compiles only small drivers around them.

The timing tests run in subprocesses with caches of their own: one process
builds the kernels, a second compiles a setting it has never seen. The
others check the mechanism: any order of first calls (Numba graphs,
``perform``, cached callers of the drivers, either dtype) finds its kernel,
and a kernel's failure becomes an exception.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import llvmlite.binding as llvm
import numpy as np
import pytest
from numba import njit

from conftest import CODE
from pytensor_nnet import conv_kernels, fast_tanh, matmul_kernels, native, pool_kernels

TESTS = Path(__file__).resolve().parent

#: Seconds a new setting may take to compile and run once when the kernels
#: are cached: generous (20-35 s before the kernels were native, 2-5 s after,
#: on a shared 2-core machine).
NEW_SETTING_SECONDS = 8


def run(script, caches, timeout=900):
    """Run ``script`` in a fresh Python with its own Numba and PyTensor caches."""
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(CODE), str(TESTS)]),
           "NUMBA_CACHE_DIR": str(caches / "numba"),
           "PYTENSOR_FLAGS": f"base_compiledir={caches / 'pytensor'}"}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=caches)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


POOL = """
    import time
    import numpy as np, pytensor, pytensor.tensor as pt
    from pytensor_nnet import pool_2d
    from nnet_reference import pool_reference

    ws, stride, pad, mode, dtype = {ws}, {stride}, {pad}, {mode!r}, {dtype!r}
    x = pt.tensor4("x", dtype=dtype)
    out = pool_2d(x, ws, ignore_border=True, stride=stride, pad=pad, mode=mode)
    gx = pytensor.grad((out ** 2).sum(), x)
    value = np.random.default_rng(0).standard_normal((2, 3, 9, 10)).astype(dtype)
    start = time.perf_counter()
    got, grad = pytensor.function([x], [out, gx], mode="NUMBA")(value)
    seconds = time.perf_counter() - start
    expected = pool_reference(value, ws, stride, pad, True, mode)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(grad, pytensor.function([x], gx, mode="FAST_COMPILE")(value))
    print(seconds)
"""

# LeNet's 2x2 max pooling, and a general setting: both kinds of kernels
WARM_POOL = (POOL.format(ws=(2, 2), stride=(2, 2), pad=(0, 0), mode="max", dtype="float64")
             + POOL.format(ws=(2, 3), stride=(1, 2), pad=(0, 0), mode="sum", dtype="float64"))

# A jitted function of the user's that calls a driver, cached on disk.
USER_MODULE = """
    import numpy as np
    from numba import njit
    from pytensor_nnet import pool_kernels

    @njit(cache=True)
    def user_pool(x):
        return pool_kernels.pool_forward(x, 2, 2, 2, 2, 0, 0, True, pool_kernels.MAX)
"""


@pytest.fixture(scope="module")
def pool_caches(tmp_path_factory):
    """Caches holding the float64 pool kernels, the drivers, one graph and
    the user's function."""
    caches = tmp_path_factory.mktemp("pool_caches")
    (caches / "user_module.py").write_text(textwrap.dedent(USER_MODULE))
    run(WARM_POOL + "\n    import user_module; user_module.user_pool(value[0])\n", caches)
    return caches


def test_a_new_pool_setting_compiles_in_seconds(pool_caches):
    script = POOL.format(ws=(3, 2), stride=(2, 1), pad=(1, 1), mode="average_exc_pad",
                         dtype="float64")
    seconds = float(run(script, pool_caches).split()[-1])
    assert seconds < NEW_SETTING_SECONDS


CONV = """
    import time
    import numpy as np, pytensor, pytensor.tensor as pt
    from pytensor_nnet import conv2d, pool_2d
    from nnet_reference import conv2d_reference, padding_for

    border, stride, dilation, flip = {border!r}, {stride}, {dilation}, {flip}
    x, w = pt.tensor4("x", dtype="float32"), pt.tensor4("w", dtype="float32")
    out = conv2d(x, w, border_mode=border, subsample=stride, filter_dilation=dilation,
                 filter_flip=flip)
    pooled = pool_2d(out, (2, 2), ignore_border=True)
    grads = pytensor.grad((pooled ** 2).sum(), [x, w])
    rng = np.random.default_rng(1)
    xv = rng.standard_normal((4, 3, 16, 15)).astype("float32")
    wv = rng.standard_normal((5, 3, 3, 4)).astype("float32")
    start = time.perf_counter()
    got = pytensor.function([x, w], [out] + grads, mode="NUMBA")(xv, wv)
    seconds = time.perf_counter() - start
    pad = padding_for(border, (3, 4), dilation)
    expected = conv2d_reference(xv, wv, pad, stride, dilation, flip)
    np.testing.assert_allclose(got[0], expected, rtol=1e-5, atol=1e-5)
    perform = pytensor.function([x, w], [out] + grads, mode="FAST_COMPILE")(xv, wv)
    for numba_value, perform_value in zip(got, perform):
        np.testing.assert_array_equal(numba_value, perform_value)
    print(seconds)
"""


def test_a_new_conv_setting_compiles_in_seconds(tmp_path):
    """The issue's case: conv2d, pooling and both gradients, float32."""
    run(CONV.format(border="valid", stride=(1, 1), dilation=(1, 1), flip=True), tmp_path)
    script = CONV.format(border="half", stride=(2, 1), dilation=(1, 2), flip=False)
    seconds = float(run(script, tmp_path).split()[-1])
    assert seconds < NEW_SETTING_SECONDS


# Fresh processes on the warmed caches, each starting differently: perform
# (its driver loaded from Numba's cache before any kernel is built), the
# user's cached function, a cached Numba graph; then the other dtype, whose
# kernels are not built yet, another way.
ORDERS = {
    "perform first": """
        import numpy as np, pytensor, pytensor.tensor as pt
        from pytensor_nnet import pool_2d
        for mode, dtype in [("FAST_COMPILE", "float64"), ("NUMBA", "float32")]:
            x = pt.tensor4(dtype=dtype)
            out = pool_2d(x, (2, 2), ignore_border=True)
            fn = pytensor.function([x], [out, pytensor.grad(out.sum(), x)], mode=mode)
            value = np.arange(2 * 3 * 4 * 4, dtype=dtype).reshape(2, 3, 4, 4)
            np.testing.assert_array_equal(fn(value)[0], value[:, :, 1::2, 1::2])
    """,
    "cached user function first": """
        import numpy as np
        from user_module import user_pool
        from pytensor_nnet import pool_kernels
        value = np.arange(2 * 4 * 4, dtype="float64").reshape(2, 4, 4)
        np.testing.assert_array_equal(user_pool(value), value[:, 1::2, 1::2])
        value = value.astype("float32")[None]
        got = pool_kernels.pool_grad(value, value[:, :, 1::2, 1::2], value[:, :, ::2, ::2],
                                     2, 2, 2, 2, 0, 0, True, pool_kernels.MAX)
        assert got.shape == value.shape and got.dtype == value.dtype
    """,
    "numba graph first": """
        import numpy as np, pytensor, pytensor.tensor as pt
        from pytensor_nnet import pool_2d, pool_kernels
        x = pt.tensor4(dtype="float64")
        out = pool_2d(x, (2, 2), ignore_border=True)
        value = np.arange(2 * 3 * 4 * 4, dtype="float64").reshape(2, 3, 4, 4)
        fn = pytensor.function([x], [out, pytensor.grad((out ** 2).sum(), x)], mode="NUMBA")
        np.testing.assert_array_equal(fn(value)[0], value[:, :, 1::2, 1::2])
        small = value.astype("float32")[0, :, ::-1]  # strided: copied by a native kernel
        got = pool_kernels.pool_forward(small, 2, 2, 2, 2, 0, 0, True, pool_kernels.MAX)
        np.testing.assert_array_equal(got, small.reshape(3, 2, 2, 2, 2).max(axis=(2, 4)))
    """,
}


def test_any_order_of_first_calls_finds_its_kernels(pool_caches):
    for name, script in ORDERS.items():
        run(script, pool_caches)


def test_every_kernel_has_its_symbol_on_import():
    kernels = [conv_kernels.CORR_FORWARD, conv_kernels.CORR_GRAD_WEIGHTS,
               conv_kernels.CORR_GRAD_INPUTS, pool_kernels.POOL_FORWARD, pool_kernels.POOL_GRAD,
               pool_kernels.MAX_POOL_2X2, pool_kernels.MAX_POOL_GRAD_2X2,
               matmul_kernels.BLOCKED_DOT, fast_tanh.TANH, native.COPY]
    assert set(kernels) <= set(native.kernels.values())
    for kernel in native.kernels.values():
        for dtype in kernel.dtypes:
            assert llvm.address_of_symbol(kernel.symbol(dtype)), (kernel, dtype)


@njit
def as_contiguous(x):
    return native.contiguous(x)


def test_contiguous_copies_any_layout():
    base = np.random.default_rng(2).standard_normal((3, 4, 5, 6))
    for dtype in ["float64", "float32"]:
        x = base.astype(dtype)
        views = [x[:, ::2], x[::-1, :, ::-2], np.asfortranarray(x), x.transpose(2, 0, 3, 1),
                 x[:, :, :0], x[1:2, 3:4, :, 2:3], x[0, 0, 0, ::3]]
        for view in views:
            got = as_contiguous(view)
            assert got.flags.c_contiguous and got.shape == view.shape
            np.testing.assert_array_equal(got, view)
        assert np.shares_memory(as_contiguous(x), x)  # C-contiguous already: no copy


def failing_body(a0, a1, a2, a3, params):
    if params[0]:
        raise ValueError("this kernel fails")
    return native.OK


FAILING = native.NativeKernel("test_compile_time_failing", failing_body, ("float64",))
failing_call = FAILING.call


@njit
def call_failing(x, fail):
    return failing_call(x, None, None, None, native.int_params((fail,)))


@njit
def call_failing_checked(x, fail):
    native.check(call_failing(x, fail))


def test_an_exception_inside_a_kernel_becomes_an_error(monkeypatch):
    printed = []
    monkeypatch.setattr(sys, "unraisablehook", printed.append)
    x = np.zeros(3)
    assert call_failing(x, 0) == native.OK  # built on this first call, through its slot
    assert not printed
    assert call_failing(x, 1) == 0
    assert "this kernel fails" in str(printed[0].exc_value)
    with pytest.raises(RuntimeError, match="a kernel failed"):
        call_failing_checked(x, 1)


# A kernel missing from the disk cache is built by a helper process while
# the graph compiles (pytensor_nnet.prebuild); its first call loads it from
# the cache. The copy kernel stands in for the large ones: it builds fastest.
PREBUILD = """
    import json, os, shutil, sys
    import numpy as np
    from numba import njit
    from pytensor_nnet import native, prebuild

    {setup}
    cached_before = native.COPY.in_disk_cache("float64")
    native.COPY.prefetch("float64")
    asked = ("copy", "float64") in prebuild._pending
    helper = prebuild._helper

    @njit
    def as_contiguous(x):
        return native.contiguous(x)

    x = np.arange(12.0).reshape(3, 4).T
    np.testing.assert_array_equal(as_contiguous(x), x)
    # every request answered: the helper was told to end, and did
    helper_exit = None if helper is None else helper.poll()
    assert prebuild._helper is None
    print(json.dumps({{"cached_before": cached_before, "asked": asked,
                      "from_cache": native.COPY._compiled["float64"].cache_hits,
                      "helper_exit": helper_exit, "left": sorted(prebuild._pending),
                      "cached_after": native.COPY.in_disk_cache("float64")}}))
"""


def prebuild_run(caches, setup=""):
    return json.loads(run(PREBUILD.format(setup=setup), caches).splitlines()[-1])


def test_a_kernel_missing_from_the_disk_cache_is_built_by_a_helper(tmp_path):
    first = prebuild_run(tmp_path)
    assert first == {"cached_before": False, "asked": True, "from_cache": 1,
                     "helper_exit": 0, "left": [], "cached_after": True}
    again = prebuild_run(tmp_path)  # in the cache now: loaded, no helper asked
    assert again == {"cached_before": True, "asked": False, "from_cache": 1,
                     "helper_exit": None, "left": [], "cached_after": True}


NO_HELPER = {
    "cannot start": 'sys.executable = "/nonexistent/python"',
    "dies at once": 'sys.executable = shutil.which("false") or "/nonexistent/false"',
    "one cpu": "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})",
}


@pytest.mark.parametrize("case", NO_HELPER)
def test_without_a_helper_the_kernel_is_built_here(tmp_path, case):
    if case == "one cpu" and not hasattr(os, "sched_setaffinity"):
        pytest.skip("os.sched_setaffinity is Linux's")
    got = prebuild_run(tmp_path, NO_HELPER[case])
    assert got["cached_before"] is False and got["from_cache"] == 0
    assert got["left"] == [] and got["cached_after"] is True
    if case == "one cpu":
        assert got["asked"] is False
