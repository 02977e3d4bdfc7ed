"""Modes every Op test runs under, and the Theano 1.0.5 reference files.

NUMBA is PyTensor 3's default mode, CVM the C linker (our Ops run their
``perform`` there), JAX the GPU path (here on the CPU; only when jax is
installed, it is an optional extra).
"""
import importlib.util
from pathlib import Path

import numpy as np

#: The original Theano's outputs, committed beside the tests (see its README).
REFERENCE_DIR = Path(__file__).resolve().parent / "reference" / "theano"

BACKENDS = ["NUMBA", "CVM"]
if importlib.util.find_spec("jax") is not None:
    BACKENDS.append("JAX")


def reference(name):
    """One array produced by the original Theano (see the README beside them)."""
    return np.load(REFERENCE_DIR / f"{name}.npy")
