#!/usr/bin/env bash
# The GPU check, as ONE command on the device machine (see
# benchmarks/prepare_gpu_bundle.sh for the .gpu/ folder it needs):
#   bash benchmarks/gpu_check.sh [full]
# 1. installs pytensor beside the image's CUDA jax, 2. checks that the ops
# run on the GPU and agree with the CPU kernels, 3. times the LeNet training
# and validation epochs in JAX mode (benchmarks/bench_lenet.py), 4. with
# "full", runs the default 200-epoch LeNet in JAX mode. Output goes to
# $OUT (or ./gpu_out) as logs.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_out}"; mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD/code" LENET_DATA_DIR="$PWD/.gpu/data" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$out/gpu.txt"
python3 - <<'PY' 2>&1 | tee "$out/ops_check.txt"
import jax, numpy as np, pytensor, pytensor.tensor as pt
from pytensor_nnet import conv2d, pool_2d
print("pytensor", pytensor.__version__, "jax", jax.__version__, jax.devices())
# static shapes: JAX traces shape arithmetic, so jit needs them known
x, w = pt.tensor4("x", shape=(8, 3, 17, 15)), pt.tensor4("w", shape=(4, 3, 3, 5))
cost = pool_2d(conv2d(x, w, border_mode="half", subsample=(2, 1)), (2, 2), ignore_border=True).sum()
outs = [cost] + pytensor.grad(cost, [x, w])
rng = np.random.RandomState(0)
args = rng.randn(8, 3, 17, 15).astype(pytensor.config.floatX), rng.randn(4, 3, 3, 5).astype(pytensor.config.floatX)
gpu = pytensor.function([x, w], outs, mode="JAX")(*args)
cpu = pytensor.function([x, w], outs, mode="NUMBA")(*args)
print("max |JAX(GPU) - Numba(CPU)|:", max(float(np.abs(np.asarray(a) - b).max()) for a, b in zip(gpu, cpu)))
PY
PYTENSOR_FLAGS=floatX=float32 python3 benchmarks/bench_lenet.py --mode JAX --epochs 5 --peers none 2>&1 | tee "$out/bench_jax.txt"
if [ "${1:-}" = full ]; then
  PYTENSOR_FLAGS=floatX=float32,mode=JAX python3 code/convolutional_mlp.py \
    --checkpoint /tmp/lenet_gpu.npz --plots-dir "$out" 2>&1 | tee "$out/lenet_full_jax.txt"
fi
