"""benchmarks/bench_lenet.py runs, in real subprocesses: the project alone
on the small synthetic data (PyTorch is not a test dependency), and its
``--avx2`` limits reaching OpenBLAS in the child that measures the GEMM
floor."""
import json
import os
import platform
import subprocess
import sys

import pytest

from conftest import REPO

BENCH = REPO / "benchmarks" / "bench_lenet.py"
sys.path.insert(0, str(BENCH.parent))
import bench_lenet  # noqa: E402  (its module level imports no numpy, torch or pytensor)


def run_bench(*args, timeout=600):
    """The benchmark in a child, free of any instruction-set limit this
    process's environment holds (only ``--avx2`` may set them)."""
    env = dict(os.environ, PYTENSOR_FLAGS="floatX=float32")
    for name in bench_lenet.AVX2_ONLY:
        env.pop(name, None)
    return subprocess.run([sys.executable, str(BENCH), *args], env=env, text=True,
                          capture_output=True, timeout=timeout)


def test_times_the_project_alone_and_writes_its_report(tiny_mnist, tmp_path):
    report = tmp_path / "run.json"
    done = run_bench("--peers", "none", "--epochs", "2", "--partial", "2", "--warmup", "0",
                     "--no-floor", "--threads", "1", "--dataset", tiny_mnist,
                     "--json", str(report))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(report.read_text())
    epochs = result["results"]["pytensor (NUMBA)"]["epochs_s"]
    assert len(epochs) == 2 and all(s > 0 for s in epochs)
    assert result["machine"]["cpu_model"] and result["machine"]["isa_limits"] == {}
    assert result["project"]["kernel_threads"] == 1
    assert "epoch seconds (2 rounds" in done.stdout


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                    reason="OpenBLAS's Haswell kernels exist on x86-64 only")
def test_avx2_limits_reach_openblas_in_the_children():
    spec = json.dumps({"gemms": [dict(name="small", m=8, k=8, n=8, train=1, valid=1)],
                       "peak_size": 64, "reps": 1})
    done = run_bench("--avx2", "--threads", "1", "--gemm-worker", spec, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["openblas_kernels"] and set(result["openblas_kernels"]) == {"Haswell"}
    assert result["shapes"][0]["seconds"] > 0


def test_ratios_round_by_round_pair_each_round():
    results = {"project": {"epochs_s": [10.0, 8.0, 12.0]},
               "eager": {"epochs_s": [12.5, 9.0, 20.0]},
               "compile": {"epochs_s": [11.0, 10.0, 12.5]}}
    ratios = bench_lenet.ratios_by_round(results, "project", ["eager", "compile"])
    assert ratios == pytest.approx([10 / 11, 8 / 9, 12 / 12.5])
