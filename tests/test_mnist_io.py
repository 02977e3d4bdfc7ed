"""Tests for ``mnist_io``: reading, checking, finding and downloading MNIST.

The real ``mnist.pkl.gz`` is looked up where ``load_data`` looks and in
``$LENET_SHARED_DATA`` (see ``conftest.py``); the tests using it are skipped
when it is nowhere.  The real IDX files come from ``$LENET_SHARED_DATA/mnist``
when they are there, else they are written from the real pickle (whose
pixels are the IDX bytes / 256), and must then match the pinned IDX
checksums too.  Each real file is read once per module.  Everything else uses tiny synthetic files
in ``tmp_path``.  Downloads are tested against a real HTTP server on
127.0.0.1 (in a thread); the public sources are switched off, so nothing
leaves the machine.
"""
import codecs
import gzip
import hashlib
import io
import os
import pickle
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import downloads
import mnist_io
from http_server import Cut
from mnist_io import DatasetError, DatasetNotFoundError

from conftest import CODE, REPO, write_pickle

SHARED_IDX = Path(os.environ.get("LENET_SHARED_DATA", REPO.parent / "shared" / "data")) / "mnist"


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def make_splits(sizes=(6, 3, 4), seed=0):
    """Small MNIST-shaped splits: float32 pixels k/256, int64 labels."""
    rng = np.random.default_rng(seed)
    splits = []
    for n in sizes:
        x = rng.integers(0, 256, size=(n, 784)).astype(np.float32) / np.float32(256)
        y = rng.integers(0, 10, size=n).astype(np.int64)
        splits.append((x, y))
    return tuple(splits)


def idx_bytes(array):
    """Encode a uint8 array in IDX format."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    return header + array.tobytes()


def write_idx_dir(directory, n_train_total=7, n_test=3, gz=True, seed=1):
    """Write the four IDX files for a tiny data set; return the raw arrays."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train_total, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train_total),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    gz_flags = gz if isinstance(gz, dict) else {name: gz for name in arrays}
    for name, array in arrays.items():
        blob = idx_bytes(array)
        if gz_flags[name]:
            with gzip.open(directory / (name + ".gz"), "wb") as f:
                f.write(blob)
        else:
            (directory / name).write_bytes(blob)
    return {name: a.astype(np.uint8) for name, a in arrays.items()}


def assert_splits_equal(a, b):
    """Same arrays, same dtypes, bit for bit."""
    assert len(a) == len(b) == 3
    for (xa, ya), (xb, yb) in zip(a, b):
        assert xa.dtype == xb.dtype and ya.dtype == yb.dtype
        assert xa.shape == xb.shape and ya.shape == yb.shape
        assert xa.tobytes() == xb.tobytes()
        assert ya.tobytes() == yb.tobytes()


class Evil:
    """Pickles as a call of ``func(*args)``: what a malicious file does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.fixture
def data_env(tmp_path, monkeypatch):
    """Isolate the lookup: empty data/ and cwd, no $LENET_DATA_DIR."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.setattr(mnist_io, "DEFAULT_DATA_DIR", str(data_dir))
    monkeypatch.delenv(mnist_io.DATA_DIR_ENV, raising=False)
    monkeypatch.chdir(cwd)
    return data_dir


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Keep every test on this machine: no public sources, no mirror, no
    proxy (requests to 127.0.0.1 must not go through one), no retry pause."""
    monkeypatch.setattr(mnist_io, "MNIST_SOURCES", ())
    monkeypatch.delenv(mnist_io.MIRROR_ENV, raising=False)
    for proxy in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(proxy, raising=False)
        monkeypatch.delenv(proxy.upper(), raising=False)
    monkeypatch.setattr(downloads, "RETRY_DELAY", 0.0)


def free_port():
    """A local TCP port nobody listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------
# Real data (read once per module)
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_pickle(mnist_pkl):
    return mnist_io.read_mnist(mnist_pkl)


@pytest.fixture(scope="module")
def real_idx_dir(real_pickle, tmp_path_factory):
    """A folder of the four real IDX files (gzip'ed): the shared copies, or
    written from the real pickle."""
    if all(mnist_io._find_idx_file(str(SHARED_IDX), stem)
           for stems in mnist_io.IDX_FILES.values() for stem in stems):
        return SHARED_IDX
    directory = tmp_path_factory.mktemp("real_idx")
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = real_pickle
    arrays = {
        "train-images-idx3-ubyte": np.concatenate([train_x, valid_x]) * 256,
        "train-labels-idx1-ubyte": np.concatenate([train_y, valid_y]),
        "t10k-images-idx3-ubyte": test_x * 256,
        "t10k-labels-idx1-ubyte": test_y,
    }
    for stem, array in arrays.items():
        if stem.endswith("images-idx3-ubyte"):
            array = array.reshape(-1, 28, 28)
        (directory / (stem + ".gz")).write_bytes(gzip.compress(idx_bytes(array), 1))
    return directory


@pytest.fixture(scope="module")
def real_idx(real_idx_dir):
    return mnist_io.read_mnist(real_idx_dir)


def test_real_idx_files_match_the_pinned_checksums(real_idx_dir):
    for stems in mnist_io.IDX_FILES.values():
        for stem in stems:
            with gzip.open(mnist_io._find_idx_file(str(real_idx_dir), stem)) as stream:
                digest = hashlib.sha256(stream.read()).hexdigest()
            assert digest == mnist_io.MNIST_SHA256[stem], stem


def test_real_pickle_has_tutorial_layout(real_pickle):
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = real_pickle
    assert train_x.shape == (50000, 784)
    assert valid_x.shape == (10000, 784)
    assert test_x.shape == (10000, 784)
    assert [len(y) for y in (train_y, valid_y, test_y)] == [50000, 10000, 10000]
    for x, y in real_pickle:
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.min() == 0.0 and x.max() == np.float32(255 / 256)
        assert set(np.unique(y)) == set(range(10))
    assert train_y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


def test_real_idx_equals_pickle_bit_for_bit(real_pickle, real_idx):
    assert_splits_equal(real_idx, real_pickle)


# ---------------------------------------------------------------------------
# load_data: shared variables, as the original tutorial made them
# ---------------------------------------------------------------------------

def test_load_data_returns_shared_variables(tmp_path, capsys):
    import pytensor
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.tensor.elemwise import Elemwise

    splits = make_splits()
    path = write_pickle(tmp_path / "small.pkl.gz", splits)
    result = mnist_io.load_data(str(path))

    assert capsys.readouterr().out.startswith("... loading data\n")
    assert isinstance(result, list) and len(result) == 3
    floatx = pytensor.config.floatX
    for (shared_x, y), (x_ref, y_ref) in zip(result, splits):
        assert isinstance(shared_x, SharedVariable)
        assert shared_x.dtype == floatx
        np.testing.assert_array_equal(shared_x.get_value(), x_ref.astype(floatx))
        # y is cast(int32) of a floatX shared variable, as in the tutorial.
        assert y.dtype == "int32"
        assert isinstance(y.owner.op, Elemwise)
        (stored_y,) = y.owner.inputs
        assert isinstance(stored_y, SharedVariable) and stored_y.dtype == floatx
        np.testing.assert_array_equal(y.eval(), y_ref)


def test_shared_dataset_borrows_when_no_conversion_is_needed():
    import pytensor

    floatx = pytensor.config.floatX
    x = np.zeros((2, 784), dtype=floatx)
    y = np.zeros(2, dtype=floatx)
    shared_x, _ = mnist_io.shared_dataset((x, y))
    assert np.shares_memory(shared_x.get_value(borrow=True), x)


def test_load_data_accepts_pathlib_and_idx_directory(tmp_path):
    idx_dir = tmp_path / "idx"
    raw = write_idx_dir(idx_dir, n_train_total=mnist_io.N_TRAIN + 2, n_test=2)
    result = mnist_io.load_data(idx_dir)
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = result
    assert train_x.get_value().shape == (mnist_io.N_TRAIN, 784)
    np.testing.assert_array_equal(
        valid_y.eval(), raw["train-labels-idx1-ubyte"][mnist_io.N_TRAIN:]
    )
    np.testing.assert_array_equal(test_y.eval(), raw["t10k-labels-idx1-ubyte"])


# ---------------------------------------------------------------------------
# IDX reading
# ---------------------------------------------------------------------------

def test_idx_split_and_scaling(tmp_path):
    raw = write_idx_dir(tmp_path, n_train_total=7, n_test=3)
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = mnist_io.read_mnist_idx(
        tmp_path, n_train=5
    )
    images = raw["train-images-idx3-ubyte"].reshape(7, 784)
    assert train_x.dtype == np.float32 and train_y.dtype == np.int64
    np.testing.assert_array_equal(train_x, images[:5] / np.float32(256))
    np.testing.assert_array_equal(valid_x, images[5:] / np.float32(256))
    np.testing.assert_array_equal(train_y, raw["train-labels-idx1-ubyte"][:5])
    np.testing.assert_array_equal(valid_y, raw["train-labels-idx1-ubyte"][5:])
    np.testing.assert_array_equal(test_x, raw["t10k-images-idx3-ubyte"].reshape(3, 784) / 256.0)
    np.testing.assert_array_equal(test_y, raw["t10k-labels-idx1-ubyte"])


def test_idx_gzipped_plain_and_mixed_agree(tmp_path):
    write_idx_dir(tmp_path / "gz", gz=True)
    gz = mnist_io.read_mnist_idx(tmp_path / "gz", n_train=5)
    write_idx_dir(tmp_path / "plain", gz=False)
    plain = mnist_io.read_mnist_idx(tmp_path / "plain", n_train=5)
    mixed_flags = {
        "train-images-idx3-ubyte": False,
        "train-labels-idx1-ubyte": True,
        "t10k-images-idx3-ubyte": True,
        "t10k-labels-idx1-ubyte": False,
    }
    write_idx_dir(tmp_path / "mixed", gz=mixed_flags)
    mixed = mnist_io.read_mnist_idx(tmp_path / "mixed", n_train=5)
    assert_splits_equal(gz, plain)
    assert_splits_equal(gz, mixed)


def test_idx_missing_file_is_named(tmp_path):
    write_idx_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetNotFoundError, match="t10k-labels-idx1-ubyte"):
        mnist_io.read_mnist_idx(tmp_path, n_train=5)


def test_idx_missing_directory(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="not found"):
        mnist_io.read_mnist_idx(tmp_path / "nope")


@pytest.mark.parametrize(
    "name, blob, match",
    [
        ("train-images-idx3-ubyte", idx_bytes(np.zeros(7)), "not an IDX file"),
        ("train-images-idx3-ubyte", b"\x00\x00\x08\x03\x00", "too short"),
        ("train-images-idx3-ubyte", idx_bytes(np.zeros((7, 28, 28)))[:-1], "truncated or corrupt"),
        ("train-images-idx3-ubyte", idx_bytes(np.zeros((7, 27, 28))), r"shape \(27, 28\)"),
        ("train-labels-idx1-ubyte", idx_bytes(np.zeros(6)), "7 images but"),
        ("t10k-labels-idx1-ubyte", idx_bytes(np.full(3, 10)), "labels in"),
        ("train-images-idx3-ubyte", b"not an idx file at all, nor gzip", "not an IDX file"),
    ],
    ids=["labels-as-images", "short-header", "truncated", "27x28", "count-mismatch",
         "label-10", "text"],
)
def test_idx_bad_content(tmp_path, name, blob, match):
    write_idx_dir(tmp_path, gz=False)
    (tmp_path / name).write_bytes(blob)
    with pytest.raises(DatasetError, match=match) as info:
        mnist_io.read_mnist_idx(tmp_path, n_train=5)
    assert str(tmp_path) in str(info.value)


def test_idx_corrupt_gzip(tmp_path):
    write_idx_dir(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DatasetError, match="truncated") as info:
        mnist_io.read_mnist_idx(tmp_path, n_train=5)
    assert str(path) in str(info.value)


def test_idx_needs_more_than_n_train_digits(tmp_path):
    write_idx_dir(tmp_path, n_train_total=5)
    with pytest.raises(DatasetError, match="need more than 5"):
        mnist_io.read_mnist_idx(tmp_path, n_train=5)


# ---------------------------------------------------------------------------
# Pickle reading: round trip, numpy spellings, corrupt files
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_pickle_round_trip(tmp_path, protocol):
    splits = make_splits()
    path = write_pickle(tmp_path / "small.pkl.gz", splits, protocol=protocol)
    assert_splits_equal(mnist_io.read_mnist(path), splits)


@pytest.mark.parametrize("core", [b"numpy.core", b"numpy._core"])
def test_pickle_both_numpy_core_spellings_load(tmp_path, core):
    """numpy 1 pickles name numpy.core, numpy 2 pickles numpy._core."""
    splits = make_splits()
    blob = pickle.dumps(splits, protocol=2)
    # Protocol 2 names globals as "module\nname\n" text, so a plain
    # replacement rewrites the module name without breaking the stream.
    blob = blob.replace(b"numpy._core.multiarray\n", core + b".multiarray\n")
    blob = blob.replace(b"numpy.core.multiarray\n", core + b".multiarray\n")
    assert core + b".multiarray\n_reconstruct\n" in blob
    path = tmp_path / "small.pkl.gz"
    path.write_bytes(gzip.compress(blob))
    assert_splits_equal(mnist_io.read_mnist(path), splits)


def test_unpickler_allows_numpy_scalars():
    blob = pickle.dumps([np.float32(1.5), np.int64(3)], protocol=2)
    value = mnist_io._ArrayUnpickler(io.BytesIO(blob), "<mem>").load()
    assert value == [1.5, 3] and isinstance(value[0], np.float32)


def test_lists_are_accepted_and_become_tuples(tmp_path):
    splits = make_splits()
    path = write_pickle(tmp_path / "small.pkl.gz", [list(pair) for pair in splits])
    result = mnist_io.read_mnist(path)
    assert isinstance(result, tuple) and all(isinstance(p, tuple) for p in result)
    assert_splits_equal(result, splits)


def test_corrupt_files_give_clear_errors(tmp_path):
    good = gzip.compress(pickle.dumps(make_splits(), protocol=2))
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF
    cases = {
        "truncated.pkl.gz": (good[: len(good) // 2], "truncated"),
        "not_gzip.pkl.gz": (b"hello, this is plain text\n" * 4, "not a valid gzip"),
        "plain_pickle.pkl.gz": (pickle.dumps(make_splits(), protocol=2), "not a valid gzip"),
        "garbage.pkl.gz": (gzip.compress(b"\x00garbage that is no pickle"),
                           r"does not hold a valid pickle: invalid load key, '\\x00'\."),
        "empty.pkl.gz": (b"", "is empty"),
        "flipped.pkl.gz": (bytes(flipped), "corrupt|gzip|pickle|truncated"),
        "trailing.pkl.gz": (gzip.compress(pickle.dumps(make_splits(), 2) + b"extra"), "after the pickle"),
    }
    for name, (blob, match) in cases.items():
        path = tmp_path / name
        path.write_bytes(blob)
        with pytest.raises(DatasetError, match=match) as info:
            mnist_io.read_mnist(path)
        assert str(path) in str(info.value), name
        assert isinstance(info.value, ValueError)


def test_missing_pickle(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        mnist_io.read_mnist(tmp_path / "absent.pkl.gz")
    assert isinstance(info.value, FileNotFoundError)
    assert "absent.pkl.gz" in str(info.value)


def _bad_structures():
    x, y = make_splits((4,))[0]
    good = make_splits()
    return {
        "two pairs": (good[:2], "expected 3"),
        "dict": ({"train": good[0]}, "expected 3"),
        "triple": ((good[0] + (y,), good[1], good[2]), r"train set: expected an \(x, y\) pair"),
        "x list": (((x.tolist(), y), good[1], good[2]), "expected a numpy array"),
        "x 1-d": (((x.ravel(), y), good[1], good[2]), "shape"),
        "783 columns": (((x[:, :783], y), good[1], good[2]), r"\(4, 783\)"),
        "int pixels": (((np.zeros((4, 784), np.uint8), y), good[1], good[2]), "floating point"),
        "pixel > 1": (((x + 1, y), good[1], good[2]), r"\[0, 1\]"),
        "negative pixel": (((x - 1, y), good[1], good[2]), r"\[0, 1\]"),
        "nan pixel": (((np.full((4, 784), np.nan, np.float32), y), good[1], good[2]), r"\[0, 1\]"),
        "y 2-d": (((x, y[:, None]), good[1], good[2]), "1-d array of labels"),
        "float labels": (((x, y.astype(np.float32)), good[1], good[2]), "integer labels"),
        "label 10": ((good[0], good[1], (x, y * 0 + 10)), "test set y has labels"),
        "negative label": ((good[0], (x, y * 0 - 1), good[2]), "valid set y has labels"),
        "length mismatch": (((x, y[:3]), good[1], good[2]), "4 images but 3 labels"),
    }


@pytest.mark.parametrize("case", sorted(_bad_structures()))
def test_bad_structure_is_one_clear_error(tmp_path, case):
    obj, match = _bad_structures()[case]
    path = write_pickle(tmp_path / "bad.pkl.gz", obj)
    with pytest.raises(DatasetError, match=match) as info:
        mnist_io.read_mnist(path)
    assert str(path) in str(info.value)
    assert "not a valid MNIST dataset" in str(info.value)


def test_empty_split_is_rejected():
    # Checked directly: Python 3 pickles an empty array's b'' with protocol 2
    # as a call of builtins.bytes, which the unpickler (rightly) refuses.
    good = make_splits()
    data = (good[0], (good[1][0][:0], good[1][1][:0]), good[2])
    with pytest.raises(DatasetError, match="my-file is not a valid MNIST dataset: valid set is empty"):
        mnist_io.validate_mnist(data, "my-file")


# ---------------------------------------------------------------------------
# Pickle safety
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize("attack", ["os.system", "builtins.eval", "nested"])
def test_malicious_pickle_is_refused_and_not_run(tmp_path, protocol, attack):
    marker = tmp_path / "pwned"
    if attack == "os.system":
        payload = Evil(os.system, f"touch {marker}")
        refused = os.system.__module__ + ".system"  # posix.system on Linux
    elif attack == "builtins.eval":
        payload = Evil(eval, f"open({str(marker)!r}, 'w').close()")
        refused = "builtins.eval"
    else:
        # Hidden after a perfectly good split, where a naive check of the
        # first few bytes would not see it.
        good = make_splits()
        payload = (good[0], (good[1][0], Evil(eval, f"open({str(marker)!r}, 'w')")), good[2])
        refused = "builtins.eval"
    if protocol < 3 and refused.startswith("builtins."):
        # Python 3 writes builtins under their Python 2 name in old protocols.
        refused = "__builtin__." + refused.split(".", 1)[1]
    path = write_pickle(tmp_path / "evil.pkl.gz", payload, protocol=protocol)
    with pytest.raises(DatasetError) as info:
        mnist_io.read_mnist(path)
    message = str(info.value)
    assert f"refusing to load {refused} from {path}: not an array pickle" in message
    assert not marker.exists()


@pytest.mark.parametrize(
    "module, name",
    [("numpy", "load"), ("numpy.core.multiarray", "array"), ("numpy.testing", "assert_"),
     ("_codecs", "decode"), ("pickle", "loads"), ("subprocess", "Popen")],
)
def test_unpickler_refuses_everything_off_the_list(module, name):
    blob = b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n."
    with pytest.raises(DatasetError, match=f"refusing to load {module}.{name} from <mem>"):
        mnist_io._ArrayUnpickler(io.BytesIO(blob), "<mem>").load()


def test_persistent_ids_are_refused():
    blob = b"\x80\x02X\x03\x00\x00\x00abcQ."  # BINUNICODE 'abc', BINPERSID
    with pytest.raises(DatasetError, match="persistent"):
        mnist_io._ArrayUnpickler(io.BytesIO(blob), "<mem>").load()


# ---------------------------------------------------------------------------
# Pickle safety: what a file claims is capped (issue #16)
# ---------------------------------------------------------------------------

# Reads a data file in a process of its own, its address space capped so
# that a file which got the loader to allocate what it claims ends in a
# MemoryError there (a crash, for the numpy states), never on this machine.
LOAD_IN_A_CAPPED_PROCESS = f"""
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({4 << 30}, {4 << 30}))
sys.path.insert(0, {str(CODE)!r})
import mnist_io
try:
    mnist_io.read_mnist(sys.argv[1])
except mnist_io.DatasetError as exc:
    print(exc)
    sys.exit(1)
"""


def load_refused(path):
    """The one-line error reading ``path`` gives, from a fresh capped process."""
    done = subprocess.run([sys.executable, "-c", LOAD_IN_A_CAPPED_PROCESS, str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr == "", (done.returncode, done.stderr[-2000:])
    return done.stdout.strip()


def opcode_file(tmp_path, opcodes):
    """A gzip'ed file holding the raw pickle ``opcodes``."""
    path = tmp_path / "crafted.pkl.gz"
    path.write_bytes(gzip.compress(opcodes))
    return path


CLAIM = struct.pack("<Q", 4 * 10 ** 18)


@pytest.mark.parametrize("opcodes", [
    b"\x80\x04\x8e" + CLAIM + b"x" * 2000 + b".",  # BINBYTES8
    b"\x80\x04\x8d" + CLAIM + b"x" * 2000 + b".",  # BINUNICODE8
    b"\x80\x05\x96" + CLAIM + b"x" * 2000 + b".",  # BYTEARRAY8
    b"\x80\x04\x95" + CLAIM + b"N.",  # FRAME
], ids=["BINBYTES8", "BINUNICODE8", "BYTEARRAY8", "FRAME"])
def test_a_huge_claim_is_refused_before_any_allocation(tmp_path, opcodes):
    """The issue's 2 KB file claiming 4e18 bytes (and its kin)."""
    path = opcode_file(tmp_path, opcodes)
    assert load_refused(path) == (
        f"refusing to load an item of 4000000000000000000 bytes from {path}: it would take "
        f"the file past {mnist_io._MAX_PICKLE_BYTES} bytes, far more than any MNIST pickle "
        "holds (corrupt or crafted?)")


def test_a_huge_memo_index_allocates_nothing(tmp_path):
    """LONG_BINPUT 2**31 - 1: the C unpickler sized its memo table by it (16 GiB)."""
    path = opcode_file(tmp_path, b"\x80\x02Nr\xff\xff\xff\x7f.")
    assert load_refused(path) == (f"{path} is not a valid MNIST dataset: expected 3 (x, y) "
                                  "pairs (train, valid, test), got a NoneType")


HUGE_CALLS = {
    # a call of the allowed globals, the start of its error
    "reconstruct": (Evil(mnist_io._RECONSTRUCT, np.ndarray, (10 ** 12,), b"b"),
                    "an array of shape (1000000000000,) of 1000000000000 bytes"),
    "ndarray": (Evil(np.ndarray, (10 ** 12,), "b"), "a direct call of numpy.ndarray"),
    "scalar": (Evil(mnist_io._SCALAR, Evil(np.dtype, "V2000000000")),
               "a scalar of |V2000000000 of 2000000000 bytes"),
    # each hex encoding doubles the text
    "encode": (Evil(codecs.encode, "x" * 10, "hex_codec"),
               "a text encoded as 'hex_codec', not latin1"),
}


@pytest.mark.parametrize("case", sorted(HUGE_CALLS))
def test_numpy_is_not_asked_for_more_than_the_budget(tmp_path, case):
    payload, what = HUGE_CALLS[case]
    path = write_pickle(tmp_path / "crafted.pkl.gz", payload)
    message = load_refused(path)
    assert message.startswith(f"refusing to load {what} from {path}: ")


class Reduced:
    """Pickles as ``func(*args)`` then ``__setstate__(state)``."""

    def __init__(self, func, args, state):
        self.reduced = func, args, state

    def __reduce__(self):
        return self.reduced


def array_of(dtype):
    """Pickles as an array of 3 items of ``dtype``, filled from an empty list."""
    return Reduced(mnist_io._RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (3,), dtype, False, []))


# Arrays of Python objects: numpy fills one from a list it does not measure
# first, and crashed (exit -11) on these, whose list is shorter than the shape.
OBJECT_ARRAYS = {
    "object dtype": (array_of(Evil(np.dtype, "O8")), "a dtype of Python objects (object)"),
    "object flags": (
        array_of(Reduced(np.dtype, ("V8", False, True), (3, "|", None, None, None, 8, 1, 63))),
        "a dtype state (3, '|', None, None, None, 8, 1, 63)"),
}


@pytest.mark.parametrize("case", sorted(OBJECT_ARRAYS))
def test_no_array_of_python_objects(tmp_path, case):
    payload, what = OBJECT_ARRAYS[case]
    path = write_pickle(tmp_path / "crafted.pkl.gz", payload)
    assert load_refused(path) == f"refusing to load {what} from {path}: not an array pickle"


def test_a_state_is_only_given_to_arrays_and_dtypes(tmp_path):
    """BUILD on an allowed function (here _codecs.encode, behind its check)
    would set attributes on it."""
    path = opcode_file(tmp_path, b"\x80\x02c_codecs\nencode\nN}q\x00X\x01\x00\x00\x00aK\x01s"
                                 b"\x86b.")
    assert load_refused(path) == (f"refusing to load a state for a method from {path}: "
                                  "not an array pickle")


def test_what_a_pickle_holds_in_all_is_capped(tmp_path, monkeypatch):
    """Many claims, each small, add up: the budget is for the whole file."""
    splits = make_splits()
    path = write_pickle(tmp_path / "small.pkl.gz", splits)
    monkeypatch.setattr(mnist_io, "_MAX_PICKLE_BYTES", 20000)  # < 13 x 784 float32 pixels
    with pytest.raises(DatasetError, match=rf"refusing to load an item of \d+ bytes from "
                                           rf"{path}: it would take the file past 20000 bytes"):
        mnist_io.read_mnist(path)


def test_so_is_the_number_of_opcodes(tmp_path, monkeypatch):
    path = write_pickle(tmp_path / "small.pkl.gz", make_splits())
    monkeypatch.setattr(mnist_io, "_MAX_PICKLE_OPCODES", 20)
    with pytest.raises(DatasetError, match=f"refusing to load {path}: more than 20 opcodes"):
        mnist_io.read_mnist(path)


def test_idx_header_whose_size_overflows_is_refused(tmp_path):
    """2**31 x 2**31 x 4 bytes wrapped to 0 in int64, matching an empty body."""
    write_idx_dir(tmp_path, gz=False)
    header = bytes([0, 0, 8, 3]) + struct.pack(">III", 2 ** 31, 2 ** 31, 4)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(header)
    with pytest.raises(DatasetError, match=r"announces shape \(2147483648, 2147483648, 4\) "
                                           r"\(18446744073709551616 bytes\)"):
        mnist_io.read_mnist_idx(tmp_path, n_train=5)


def test_idx_file_too_large_once_decompressed(tmp_path, monkeypatch):
    write_idx_dir(tmp_path, gz=True)
    monkeypatch.setattr(mnist_io, "_MAX_IDX_BYTES", 1000)  # < 7 x 28 x 28
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with pytest.raises(DatasetError, match=rf"{path} holds more than 1000 bytes "
                                           r"\(decompressed\): too large for an MNIST IDX file"):
        mnist_io.read_mnist_idx(tmp_path, n_train=5)


# ---------------------------------------------------------------------------
# Finding the file
# ---------------------------------------------------------------------------

def test_bare_name_found_in_data_dir(data_env):
    write_pickle(data_env / "mnist.pkl.gz", make_splits(seed=3))
    result = mnist_io.load_data()
    np.testing.assert_array_equal(result[1][1].eval(), make_splits(seed=3)[1][1])


def test_env_dir_is_searched_first(data_env, tmp_path, monkeypatch):
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    write_pickle(env_dir / "mnist.pkl.gz", make_splits(seed=4))
    write_pickle(data_env / "mnist.pkl.gz", make_splits(seed=5))
    write_pickle(Path.cwd() / "mnist.pkl.gz", make_splits(seed=6))
    monkeypatch.setenv("LENET_DATA_DIR", str(env_dir))
    assert mnist_io.find_dataset() == str(env_dir / "mnist.pkl.gz")
    monkeypatch.delenv("LENET_DATA_DIR")
    # Without it, the current directory comes before data/, as in the original.
    assert mnist_io.find_dataset() == os.path.join(os.getcwd(), "mnist.pkl.gz")
    (Path.cwd() / "mnist.pkl.gz").unlink()
    assert mnist_io.find_dataset() == str(data_env / "mnist.pkl.gz")


def test_default_data_dir_is_repo_data():
    assert Path(mnist_io.DEFAULT_DATA_DIR) == REPO / "data"


def test_bare_directory_name_is_looked_up(data_env):
    write_idx_dir(data_env / "mnist", n_train_total=mnist_io.N_TRAIN + 1)
    assert mnist_io.find_dataset("mnist") == str(data_env / "mnist")


def test_other_missing_names_are_not_downloaded(data_env, server, monkeypatch):
    monkeypatch.setattr(mnist_io, "MNIST_SOURCES", (("pickle", server.url("mnist.pkl.gz")),))
    with pytest.raises(DatasetNotFoundError) as info:
        mnist_io.load_data("other.pkl.gz")
    message = str(info.value)
    assert "other.pkl.gz" in message and str(data_env) in message
    with pytest.raises(DatasetNotFoundError, match="sub/mnist.pkl.gz"):
        mnist_io.load_data("sub/mnist.pkl.gz")
    assert server.requests == []


def test_download_can_be_disabled(data_env, server, monkeypatch):
    monkeypatch.setattr(mnist_io, "MNIST_SOURCES", (("pickle", server.url("mnist.pkl.gz")),))
    with pytest.raises(DatasetNotFoundError, match="LENET_DATA_DIR"):
        mnist_io.load_data(download=False)
    assert server.requests == []


def test_not_found_wording_for_library_and_command_line(data_env):
    for dataset in ("sub/mnist.pkl.gz", "other.pkl.gz"):
        with pytest.raises(DatasetNotFoundError) as library:
            mnist_io.find_dataset(dataset)
        cli = library.value.command_line_message()
        assert "pass load_data the path" in str(library.value)
        assert "--dataset" not in str(library.value)
        assert "pass --dataset PATH" in cli
        assert "load_data" not in cli
        for message in (str(library.value), cli):
            assert "LENET_DATA_DIR" in message and "t10k-labels-idx1-ubyte.gz" in message


# ---------------------------------------------------------------------------
# Downloading, from a real HTTP server on 127.0.0.1
# ---------------------------------------------------------------------------

@pytest.fixture
def silent_url():
    """A server that accepts connections and never sends a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.05)
    held, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:  # the accept timeout; keep polling for stop
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{listener.getsockname()[1]}/mnist.pkl.gz",
                          connections=held)
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    listener.close()


def idx_sha256(blob):
    return hashlib.sha256(blob).hexdigest()


@pytest.fixture(scope="module")
def synthetic():
    """A small MNIST: 60 training digits (50 train + 10 valid) and 20 test
    digits, as gzip'ed IDX files and as the matching pickle, with their
    checksums (to pin in place of the real ones)."""
    rng = np.random.default_rng(42)
    raw = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (60, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 60, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 20, dtype=np.uint8),
    }
    idx = {name: idx_bytes(array) for name, array in raw.items()}

    def pixels(name):
        return raw[name].reshape(len(raw[name]), 784).astype(np.float32) / np.float32(256)

    train_x, test_x = pixels("train-images-idx3-ubyte"), pixels("t10k-images-idx3-ubyte")
    train_y = raw["train-labels-idx1-ubyte"].astype(np.int64)
    test_y = raw["t10k-labels-idx1-ubyte"].astype(np.int64)
    splits = ((train_x[:50], train_y[:50]), (train_x[50:], train_y[50:]), (test_x, test_y))
    checksums = {name: idx_sha256(blob) for name, blob in idx.items()}
    checksums["mnist.pkl.gz"] = mnist_io.dataset_sha256(splits)
    return SimpleNamespace(
        splits=splits,
        pickle_gz=gzip.compress(pickle.dumps(splits, protocol=2)),
        idx_gz={name + ".gz": gzip.compress(blob) for name, blob in idx.items()},
        checksums=checksums,
    )


@pytest.fixture
def small(synthetic, data_env, monkeypatch):
    """Downloads expect the synthetic data: its checksums and split."""
    monkeypatch.setattr(mnist_io, "MNIST_SHA256", synthetic.checksums)
    monkeypatch.setattr(mnist_io, "N_TRAIN", 50)
    monkeypatch.setattr(mnist_io, "DOWNLOAD_TIMEOUT", 5.0)
    return synthetic


def use_sources(monkeypatch, *sources):
    monkeypatch.setattr(mnist_io, "MNIST_SOURCES", sources)


def assert_loaded(result, splits):
    """What load_data returned holds ``splits`` (as floatX / int32)."""
    assert len(result) == len(splits) == 3
    for (x, y), (x_ref, y_ref) in zip(result, splits):
        np.testing.assert_array_equal(x.get_value(), x_ref)
        np.testing.assert_array_equal(y.eval(), y_ref)


def test_download_pickle(small, server, data_env, monkeypatch, capsys):
    url = server.serve("pkl/mnist.pkl.gz", small.pickle_gz)
    use_sources(monkeypatch, ("pickle", url))
    result = mnist_io.load_data()
    out = capsys.readouterr().out
    assert out.startswith("... loading data\n")
    assert f"Downloading data from {url}\n" in out
    assert " MB in " in out and "MB/s" in out
    assert "\r" not in out  # not a terminal: no progress redraws
    assert (data_env / "mnist.pkl.gz").read_bytes() == small.pickle_gz
    assert os.listdir(data_env) == ["mnist.pkl.gz"]
    np.testing.assert_array_equal(result[0][1].eval(), small.splits[0][1])
    # Now that it is there, it is read without downloading again.
    mnist_io.load_data()
    assert server.requests == ["/pkl/mnist.pkl.gz"]


def test_download_idx_files_only(small, server, data_env, monkeypatch):
    use_sources(monkeypatch,
                ("pickle", server.url("nothing/mnist.pkl.gz")),
                ("idx", server.serve_idx("idx", small.idx_gz)))
    mnist_io.load_data()
    path = data_env / "mnist.pkl.gz"
    assert os.listdir(data_env) == ["mnist.pkl.gz"]
    # The tutorial's format: a gzip'ed protocol-2 pickle of the same arrays.
    assert gzip.decompress(path.read_bytes())[:2] == b"\x80\x02"
    assert_splits_equal(mnist_io.read_mnist_pickle(path), small.splits)
    assert server.requests[0] == "/nothing/mnist.pkl.gz"
    assert len(server.requests) == 5


def test_recompressed_copy_passes(small, server, data_env, monkeypatch):
    # Another protocol and compression level: other bytes, same content.
    blob = gzip.compress(pickle.dumps(small.splits, protocol=4), compresslevel=1)
    assert blob != small.pickle_gz
    use_sources(monkeypatch, ("pickle", server.serve("mnist.pkl.gz", blob)))
    assert_loaded(mnist_io.load_data(), small.splits)


def _bad_pickles(splits, marker):
    tampered = [list(pair) for pair in splits]
    tampered[2][0] = tampered[2][0].copy()
    tampered[2][0][3, 100] = np.float32(1 / 256) if tampered[2][0][3, 100] == 0 else 0
    valid = gzip.compress(pickle.dumps(splits, protocol=2))
    return {
        "tampered": (gzip.compress(pickle.dumps(tampered, protocol=2)), "checksum mismatch"),
        "html": (b"<html><body>Moved</body></html>\n", "not a valid gzip"),
        "truncated": (valid[:-100], "truncated"),
        "malicious": (gzip.compress(pickle.dumps(Evil(os.system, f"touch {marker}"), 2)),
                      "refusing to load"),
    }


@pytest.mark.parametrize("case", ["tampered", "html", "truncated", "malicious"])
def test_bad_pickle_is_refused_and_next_source_tried(small, server, data_env, tmp_path,
                                                     monkeypatch, capsys, case):
    marker = tmp_path / "pwned"
    blob, reason = _bad_pickles(small.splits, marker)[case]
    bad = server.serve("bad/mnist.pkl.gz", blob)
    # Alone, it is refused and leaves nothing behind.
    use_sources(monkeypatch, ("pickle", bad))
    with pytest.raises(DatasetNotFoundError, match=reason):
        mnist_io.load_data()
    assert os.listdir(data_env) == []
    # With a good source after it, that one is used.
    good = server.serve("good/mnist.pkl.gz", small.pickle_gz)
    use_sources(monkeypatch, ("pickle", bad), ("pickle", good))
    capsys.readouterr()
    assert_loaded(mnist_io.load_data(), small.splits)
    out = capsys.readouterr().out
    assert out.index(f"Downloading data from {bad}") < out.index("failed: ")
    assert out.index("failed: ") < out.index(f"Downloading data from {good}")
    assert os.listdir(data_env) == ["mnist.pkl.gz"]
    assert (data_env / "mnist.pkl.gz").read_bytes() == small.pickle_gz
    assert not marker.exists()
    # Once per run: bad content is not retried.
    assert server.requests.count("/bad/mnist.pkl.gz") == 2


def test_tampered_idx_file_is_refused(small, server, data_env, monkeypatch):
    files = dict(small.idx_gz)
    labels = bytearray(gzip.decompress(files["t10k-labels-idx1-ubyte.gz"]))
    labels[-1] = (labels[-1] + 1) % 10  # still a valid IDX file, another label
    files["t10k-labels-idx1-ubyte.gz"] = gzip.compress(bytes(labels))
    bad = server.serve_idx("bad", files)
    use_sources(monkeypatch, ("idx", bad))
    with pytest.raises(DatasetNotFoundError) as info:
        mnist_io.load_data()
    assert f"{bad}t10k-labels-idx1-ubyte.gz: checksum mismatch" in str(info.value)
    assert os.listdir(data_env) == []
    use_sources(monkeypatch, ("idx", bad), ("idx", server.serve_idx("good", small.idx_gz)))
    assert_loaded(mnist_io.load_data(), small.splits)
    assert os.listdir(data_env) == ["mnist.pkl.gz"]


@pytest.mark.parametrize("status, attempts", [(404, 1), (403, 1), (503, 2)])
def test_http_error_then_next_source(small, server, data_env, monkeypatch, status, attempts):
    bad = server.serve("bad/mnist.pkl.gz", status)
    good = server.serve("good/mnist.pkl.gz", small.pickle_gz)
    use_sources(monkeypatch, ("pickle", bad), ("pickle", good))
    mnist_io.load_data()
    # Only a server error may pass; a missing or forbidden file will not.
    assert server.requests == ["/bad/mnist.pkl.gz"] * attempts + ["/good/mnist.pkl.gz"]
    assert os.listdir(data_env) == ["mnist.pkl.gz"]


def test_cut_off_response_is_retried_once_then_next(small, server, data_env, monkeypatch,
                                                    capsys):
    size = len(small.pickle_gz)
    bad = server.serve("cut/mnist.pkl.gz", Cut(small.pickle_gz[:1000], size))
    good = server.serve("good/mnist.pkl.gz", small.pickle_gz)
    use_sources(monkeypatch, ("pickle", bad), ("pickle", good))
    mnist_io.load_data()
    out = capsys.readouterr().out
    assert f"cut off after 1,000 of {size:,} bytes; trying once more" in out
    assert f"failed: cut off after 1,000 of {size:,} bytes, twice" in out
    assert server.requests == ["/cut/mnist.pkl.gz"] * 2 + ["/good/mnist.pkl.gz"]
    assert os.listdir(data_env) == ["mnist.pkl.gz"]


def test_silent_server_times_out(small, server, silent_url, data_env, monkeypatch, capsys):
    monkeypatch.setattr(mnist_io, "DOWNLOAD_TIMEOUT", 0.5)
    good = server.serve("good/mnist.pkl.gz", small.pickle_gz)
    use_sources(monkeypatch, ("pickle", silent_url.url), ("pickle", good))
    start = time.monotonic()
    assert_loaded(mnist_io.load_data(), small.splits)
    assert time.monotonic() - start < 10
    out = capsys.readouterr().out
    assert "timed out after 0.5 s; trying once more" in out
    assert "failed: timed out after 0.5 s, twice" in out
    assert len(silent_url.connections) == 2
    assert os.listdir(data_env) == ["mnist.pkl.gz"]


def test_every_source_failing_gives_one_message(small, server, silent_url, data_env,
                                                monkeypatch):
    monkeypatch.setattr(mnist_io, "DOWNLOAD_TIMEOUT", 0.5)
    size = len(small.pickle_gz)
    files = dict(small.idx_gz)
    del files["t10k-images-idx3-ubyte.gz"]
    tried = {
        server.url("missing/mnist.pkl.gz"): "HTTP 404",
        f"http://127.0.0.1:{free_port()}/mnist.pkl.gz": "connection refused",
        silent_url.url: "timed out after 0.5 s",
        server.serve("cut/mnist.pkl.gz", Cut(small.pickle_gz[:500], size)):
            f"cut off after 500 of {size:,} bytes",
        server.serve("html/mnist.pkl.gz", b"<html></html>"): "not an MNIST pickle",
        server.serve_idx("idx", files) + "t10k-images-idx3-ubyte.gz": "HTTP 404",
    }
    sources = [("pickle", url) for url in list(tried)[:-1]]
    sources.append(("idx", server.url("idx/")))
    use_sources(monkeypatch, *sources)
    monkeypatch.setenv("LENET_DATA_DIR", str(data_env / "new"))
    with pytest.raises(DatasetNotFoundError) as info:
        mnist_io.load_data()
    messages = {False: str(info.value), True: info.value.command_line_message()}
    assert os.listdir(data_env) == []  # not even the folder it made
    for message in messages.values():
        assert "mnist.pkl.gz is missing and could not be downloaded" in message
        for url, reason in tried.items():
            assert f"{url}: {reason}" in message
        assert "LENET_DATA_DIR" in message and "LENET_MNIST_MIRROR" in message
        assert mnist_io.DEFAULT_DATA_DIR in message
    assert "pass load_data the path" in messages[False]
    assert "--dataset" not in messages[False]
    assert "pass --dataset PATH" in messages[True]
    assert "load_data" not in messages[True]


def test_mirror_is_tried_first(small, server, data_env, monkeypatch):
    server.serve("mirror/mnist.pkl.gz", small.pickle_gz)
    use_sources(monkeypatch, ("pickle", server.serve("public/mnist.pkl.gz", small.pickle_gz)))
    monkeypatch.setenv("LENET_MNIST_MIRROR", server.url("mirror"))  # no trailing /
    mnist_io.load_data()
    assert server.requests == ["/mirror/mnist.pkl.gz"]


def test_mirror_with_idx_files_only(small, server, data_env, monkeypatch):
    monkeypatch.setenv("LENET_MNIST_MIRROR", server.serve_idx("mirror", small.idx_gz))
    use_sources(monkeypatch, ("pickle", server.serve("public/mnist.pkl.gz", small.pickle_gz)))
    assert_loaded(mnist_io.load_data(), small.splits)
    assert server.requests[0] == "/mirror/mnist.pkl.gz"
    assert all(path.startswith("/mirror/") for path in server.requests)


def test_empty_mirror_falls_back_to_public_sources(small, server, data_env, monkeypatch):
    monkeypatch.setenv("LENET_MNIST_MIRROR", server.url("mirror/"))
    use_sources(monkeypatch, ("pickle", server.serve("public/mnist.pkl.gz", small.pickle_gz)))
    mnist_io.load_data()
    assert server.requests == [
        "/mirror/mnist.pkl.gz", "/mirror/train-images-idx3-ubyte.gz", "/public/mnist.pkl.gz",
    ]


def test_mirror_can_be_a_local_folder(small, data_env, tmp_path, monkeypatch):
    folder = tmp_path / "mirror"
    folder.mkdir()
    for name, blob in small.idx_gz.items():
        (folder / name).write_bytes(blob)
    monkeypatch.setenv("LENET_MNIST_MIRROR", str(folder))
    assert_loaded(mnist_io.load_data(), small.splits)


def test_download_goes_to_env_dir(small, server, data_env, tmp_path, monkeypatch):
    use_sources(monkeypatch, ("pickle", server.serve("mnist.pkl.gz", small.pickle_gz)))
    env_dir = tmp_path / "env" / "new"
    monkeypatch.setenv("LENET_DATA_DIR", str(env_dir))
    mnist_io.load_data()
    assert os.listdir(env_dir) == ["mnist.pkl.gz"]
    assert os.listdir(data_env) == []


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_download_progress_on_a_terminal(small, server, tmp_path):
    # Big enough for several reads, so the line is redrawn.
    blob = gzip.compress(np.random.default_rng(0).bytes(1 << 18), compresslevel=0)
    url = server.serve("blob", blob)
    stream = FakeTTY()
    with pytest.raises(DatasetNotFoundError):
        mnist_io.download_mnist(tmp_path / "mnist.pkl.gz", sources=[("pickle", url)],
                                stream=stream)
    text = stream.getvalue()
    assert text.startswith(f"Downloading data from {url}\n\r  ")
    assert text.count("\r") >= 2
    mb = len(blob) / 1e6
    assert f"\r  {mb:.1f} of {mb:.1f} MB (100%), " in text
    assert "MB/s" in text
    # The line ends before the next report.
    assert "MB/s\n  failed: not an MNIST pickle" in text.replace(" \n", "\n")


def test_interrupt_during_download_leaves_nothing(small, server, data_env):
    class InterruptedTTY(FakeTTY):
        def write(self, text):
            if text.startswith("\r"):
                raise KeyboardInterrupt
            return super().write(text)

    url = server.serve("mnist.pkl.gz", small.pickle_gz)
    with pytest.raises(KeyboardInterrupt):
        mnist_io.download_mnist(data_env / "mnist.pkl.gz", sources=[("pickle", url)],
                                stream=InterruptedTTY())
    assert os.listdir(data_env) == []


def test_missing_file_url(small, data_env, tmp_path):
    url = (tmp_path / "nothing.pkl.gz").as_uri()
    with pytest.raises(DatasetNotFoundError, match=f"{url}: .*No such file"):
        mnist_io.download_mnist(data_env / "mnist.pkl.gz", sources=[("pickle", url)],
                                stream=io.StringIO())
    assert os.listdir(data_env) == []


def test_unwritable_download_dir(small, server, data_env, tmp_path, monkeypatch):
    use_sources(monkeypatch, ("pickle", server.serve("mnist.pkl.gz", small.pickle_gz)))
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("LENET_DATA_DIR", str(blocker / "sub"))
    with pytest.raises(DatasetNotFoundError, match="cannot write"):
        mnist_io.load_data()
    assert server.requests == []


# ---------------------------------------------------------------------------
# The pinned checksums, against the real data
# ---------------------------------------------------------------------------

def test_pinned_pickle_checksum_matches_real_pickle(real_pickle):
    assert mnist_io.dataset_sha256(real_pickle) == mnist_io.MNIST_SHA256["mnist.pkl.gz"]


def test_real_idx_files_served_locally_give_the_real_pickle(real_pickle, real_idx_dir, server,
                                                            data_env):
    files = {path.name: path.read_bytes() for path in Path(real_idx_dir).glob("*-ubyte.gz")}
    base = server.serve_idx("mnist", files)
    dest = data_env / "mnist.pkl.gz"
    # the real pinned checksums and split: the module's defaults
    result = mnist_io.download_mnist(dest, sources=[("idx", base)], stream=io.StringIO())
    assert_splits_equal(result, real_pickle)
    # (download_mnist has read the saved file back and compared it)
    assert os.listdir(data_env) == ["mnist.pkl.gz"]
