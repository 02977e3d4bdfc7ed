"""Importing the library or a script changes nothing in the process;
``tune_for_speed`` is the one explicit call that does."""
import json
import os
import subprocess
import sys
import textwrap

from conftest import CODE

PROBE = textwrap.dedent("""
    import importlib.util, json, os, sys
    import numpy, scipy.linalg.cython_blas  # the OpenBLAS libraries, loaded
    spec = importlib.util.spec_from_file_location(
        "blas_probe", os.path.join(sys.argv[1], "pytensor_nnet", "blas.py"))
    blas = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(blas)
    import numba
    from numba.np.ufunc import parallel
    import pytensor, pytensor.tensor as pt
    from pytensor.compile import optdb

    def state():
        x, w = pt.matrix("x", dtype="float32"), pt.matrix("w", dtype="float32")
        f = pytensor.function([x, w], pt.tanh(pt.dot(x, w)))
        return {
            "blas_threads": blas.blas_threads(),
            "ops": sorted({type(node.op).__name__ for node in f.maker.fgraph.apply_nodes}),
            "rewrites": [name for name in ("pytensor_nnet_tanh32", "pytensor_nnet_blocked_dot")
                         if name in optdb],
            "fastmath": pytensor.config.numba__fastmath,
            "linker": type(pytensor.compile.mode.get_default_mode().linker).__name__,
        }

    before = state()
    import pytensor_nnet
    after_import = state()
    layer_started = parallel._is_initialized
    pytensor_nnet.tune_for_speed()
    print(json.dumps([before, after_import, layer_started, state()]))
""")


def test_import_changes_nothing_and_tune_for_speed_is_explicit():
    env = dict(os.environ, OPENBLAS_NUM_THREADS="2", PYTHONPATH=CODE)
    env.pop("PYTENSOR_FLAGS", None)
    done = subprocess.run([sys.executable, "-c", PROBE, CODE], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    before, after_import, workers_started, tuned = json.loads(done.stdout.splitlines()[-1])
    assert before["blas_threads"] and set(before["blas_threads"]) == {2}
    assert after_import == before  # same threads, same graph, no rewrites, same flags
    assert not workers_started  # Numba's threads are not started by the import
    assert set(tuned["blas_threads"]) == {1}
    assert tuned["rewrites"] == ["pytensor_nnet_tanh32", "pytensor_nnet_blocked_dot"]
    assert {"Tanh32", "BlockedDot"} <= set(tuned["ops"])
    assert tuned["fastmath"] is False
    assert before["linker"] == "NumbaLinker" and tuned["linker"] == "NumbaNodeLinker"


DEMO_PROBE = textwrap.dedent("""
    import sys
    import pytensor

    def refuse(*args, **kwargs):
        raise AssertionError("compiled at import")

    pytensor.function = refuse
    import convolutional_mlp, filter_demo, lenet5, logistic_sgd, maxpool_demo, mlp, utils
    print("imported")
""")


def test_importing_the_scripts_compiles_nothing():
    env = dict(os.environ, PYTHONPATH=CODE)
    done = subprocess.run([sys.executable, "-c", DEMO_PROBE], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "imported"
