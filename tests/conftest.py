"""Shared test setup: where the real MNIST is, and a small synthetic MNIST.

Most tests need no real digits: they train on ``tiny_mnist``, a small
MNIST-shaped data set written by :func:`synthetic_mnist` (ten classes of
blocky patterns, shifted and noisy, so that every tutorial model learns it).
Only the tests that check the original's exact numbers need the real
``mnist.pkl.gz``; they find it where ``mnist_io.load_data`` looks
(``$LENET_DATA_DIR``, the repository's ``data/`` folder, where the README's
main command downloads it) or in ``$LENET_SHARED_DATA`` (default
``<repo>/../shared/data``), and are skipped with one reason line when it is
nowhere.  The folder found is exported as ``$LENET_DATA_DIR`` so that the
scripts, and any subprocess a test starts, load the same file.
"""
import gzip
import os
import pickle
import sys
from pathlib import Path

import numpy
import pytest

REPO = Path(__file__).resolve().parents[1]
CODE = REPO / "code"
if str(CODE) not in sys.path:
    sys.path.insert(0, str(CODE))

#: Rows of each split (train, valid, test) in ``tiny_mnist``.
TINY_ROWS = (1200, 1200, 1200)


def real_mnist_dirs():
    """Folders that may hold the real ``mnist.pkl.gz``, in the order tried."""
    dirs = []
    if os.environ.get("LENET_DATA_DIR"):
        dirs.append(Path(os.environ["LENET_DATA_DIR"]).expanduser())
    dirs.append(REPO / "data")
    dirs.append(Path(os.environ.get("LENET_SHARED_DATA", REPO.parent / "shared" / "data")))
    return dirs


def find_real_mnist():
    """The real ``mnist.pkl.gz``, or None."""
    for directory in real_mnist_dirs():
        if (directory / "mnist.pkl.gz").is_file():
            return (directory / "mnist.pkl.gz").resolve()
    return None


REAL_MNIST = find_real_mnist()


def pytest_configure(config):
    if REAL_MNIST is not None:
        os.environ["LENET_DATA_DIR"] = str(REAL_MNIST.parent)


@pytest.fixture(scope="session")
def mnist_pkl():
    """Path of the real ``mnist.pkl.gz`` (skips when it is nowhere)."""
    if REAL_MNIST is None:
        pytest.skip("real MNIST not found: run `python code/convolutional_mlp.py --dry-run` "
                    "once to download it into data/")
    return str(REAL_MNIST)


def synthetic_mnist(rows=TINY_ROWS, seed=0):
    """A small data set in MNIST's layout that the tutorial models can learn.

    Each class is a fixed blocky 28x28 pattern (a random 7x7 on/off grid
    blown up 4x); each digit is its class's pattern shifted by up to two
    pixels, scaled in brightness and noised, stored as the tutorial stores
    pixels (float32 ``value / 256``) with int64 labels.

    Returns
    -------
    tuple
        ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))``.
    """
    rng = numpy.random.RandomState(seed)
    grids = rng.rand(10, 7, 7) < 0.35
    patterns = numpy.kron(grids, numpy.ones((4, 4))) * 255.0
    splits = []
    for n in rows:
        labels = rng.randint(0, 10, size=n)
        shifts = rng.randint(-2, 3, size=(n, 2))
        brightness = rng.uniform(0.6, 1.0, size=(n, 1, 1))
        images = numpy.stack([numpy.roll(patterns[label], tuple(shift), axis=(0, 1))
                              for label, shift in zip(labels, shifts)])
        images = images * brightness + rng.normal(0.0, 20.0, size=images.shape)
        pixels = numpy.clip(numpy.rint(images), 0, 255).astype(numpy.uint8)
        x = pixels.reshape(n, 784).astype(numpy.float32) / numpy.float32(256)
        splits.append((x, labels.astype(numpy.int64)))
    return tuple(splits)


def write_pickle(path, obj, protocol=2):
    """Write ``obj`` as a gzip'ed pickle, like the tutorial's mnist.pkl.gz."""
    with gzip.open(path, "wb") as stream:
        pickle.dump(obj, stream, protocol=protocol)
    return path


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory):
    """Path of a small synthetic ``mnist.pkl.gz``-format file (see
    :func:`synthetic_mnist`): loads in a fraction of a second, and learns."""
    path = tmp_path_factory.mktemp("data") / "tiny_mnist.pkl.gz"
    return str(write_pickle(path, synthetic_mnist()))


@pytest.fixture
def server():
    """A real HTTP server on 127.0.0.1 (see http_server.LocalServer)."""
    from http_server import LocalServer

    local = LocalServer()
    yield local
    local.close()
