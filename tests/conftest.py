"""Shared test setup: where MNIST is, a small MNIST file, the slow marker.

MNIST is not part of the repository.  The tests look for it in the folder
named by ``$LENET_SHARED_DATA`` (default: ``<repo>/../shared/data``, which
holds ``mnist.pkl.gz``) and export that folder as ``$LENET_DATA_DIR``, where
``mnist_io.load_data`` looks up bare file names, so the tutorials (and any
subprocess a test starts) find ``mnist.pkl.gz``.  Tests that need the data
are skipped when it is absent.

Tests marked ``slow`` run only with ``--runslow`` or ``LENET_RUN_SLOW=1``.
"""
import gzip
import os
import pickle
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CODE = REPO / "code"
if str(CODE) not in sys.path:
    sys.path.insert(0, str(CODE))

SHARED_DATA = Path(
    os.environ.get("LENET_SHARED_DATA", REPO.parent / "shared" / "data")
).resolve()
MNIST_PKL = SHARED_DATA / "mnist.pkl.gz"

#: Rows of each split in the small data set written by ``tiny_mnist``.
TINY_ROWS = (1200, 1200, 1200)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked slow")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: takes minutes; run with --runslow or LENET_RUN_SLOW=1")
    if MNIST_PKL.is_file() and not os.environ.get("LENET_DATA_DIR"):
        os.environ["LENET_DATA_DIR"] = str(SHARED_DATA)


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow") or os.environ.get("LENET_RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow; run with --runslow or LENET_RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data():
    """The folder holding the shared MNIST files (skips if absent)."""
    if not MNIST_PKL.is_file():
        pytest.skip(f"MNIST not found at {MNIST_PKL} (set LENET_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mnist_pkl(shared_data):
    """Path of the full ``mnist.pkl.gz``."""
    return str(shared_data / "mnist.pkl.gz")


@pytest.fixture(scope="session")
def tiny_mnist(shared_data, tmp_path_factory):
    """A small ``mnist.pkl.gz``-format file: the first rows of each split.

    ``TINY_ROWS`` training, validation and test digits of the real data,
    so runs on it load in a fraction of a second and still learn.
    """
    from mnist_io import read_mnist

    splits = read_mnist(str(shared_data / "mnist.pkl.gz"))
    small = tuple((x[:n].copy(), y[:n].copy()) for (x, y), n in zip(splits, TINY_ROWS))
    path = tmp_path_factory.mktemp("data") / "tiny_mnist.pkl.gz"
    with gzip.open(path, "wb") as stream:
        pickle.dump(small, stream, protocol=2)
    return str(path)
