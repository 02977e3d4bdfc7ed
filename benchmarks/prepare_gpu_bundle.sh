#!/usr/bin/env bash
# Run HERE (a machine with the network and ../shared) before a GPU check:
# fills .gpu/ (ignored by git, carried to the GPU machine) with what that
# machine lacks: the pytensor wheel for its Python 3.12, and MNIST.
#   bash benchmarks/prepare_gpu_bundle.sh [PYTENSOR_VERSION]
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-3.3.8}"
mkdir -p .gpu/whl .gpu/data
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .gpu/whl "pytensor==$version"
cp ../shared/data/mnist.pkl.gz .gpu/data/
du -sh .gpu
