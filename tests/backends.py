"""Modes every Op test runs under, and the Theano 1.0.5 reference files.

NUMBA is PyTensor 3's default mode, CVM the C linker (our Ops run their
``perform`` there), JAX the GPU path (here on the CPU; only when jax is
installed, it is an optional extra).
"""
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE_DIR = Path(
    os.environ.get("LENET_SHARED_REFERENCE", REPO.parent / "shared" / "reference" / "theano")
)

BACKENDS = ["NUMBA", "CVM"]
if importlib.util.find_spec("jax") is not None:
    BACKENDS.append("JAX")

needs_reference = pytest.mark.skipif(
    not REFERENCE_DIR.is_dir(), reason=f"Theano reference outputs not found at {REFERENCE_DIR}"
)


def reference(name):
    """One array produced by the original Theano (see the README beside them)."""
    return np.load(REFERENCE_DIR / f"{name}.npy")
