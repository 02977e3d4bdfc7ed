"""Tests for ``mnist_io``: reading, checking, finding and downloading MNIST.

The real data (``mnist.pkl.gz`` and the IDX files) is looked up in
``$LENET_SHARED_DATA``, by default the ``shared/data`` folder next to the
repository; the tests using it are skipped when it is absent.  Each real
file is read once per module.  Everything else uses tiny synthetic files
in ``tmp_path`` and never touches the network.
"""
import gzip
import io
import os
import pickle
import socket
import struct
from pathlib import Path

import numpy as np
import pytest

import mnist_io
from mnist_io import DatasetError, DatasetNotFoundError

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LENET_SHARED_DATA", REPO.parent / "shared" / "data"))
REAL_PICKLE = SHARED_DATA / "mnist.pkl.gz"
REAL_IDX = SHARED_DATA / "mnist"


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


def write_pickle(path, obj, protocol=2):
    """Write ``obj`` as a gzip'ed pickle, like mnist.pkl.gz."""
    with gzip.open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return path


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


def no_network(*args, **kwargs):
    raise AssertionError("the test tried to download")


def free_port():
    """A local TCP port nobody listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------
# Real data (read once per module)
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_pickle():
    if not REAL_PICKLE.is_file():
        pytest.skip(f"real MNIST pickle not found at {REAL_PICKLE} (set LENET_SHARED_DATA)")
    return mnist_io.read_mnist(REAL_PICKLE)


@pytest.fixture(scope="module")
def real_idx():
    if not REAL_IDX.is_dir():
        pytest.skip(f"real MNIST IDX files not found in {REAL_IDX} (set LENET_SHARED_DATA)")
    return mnist_io.read_mnist(REAL_IDX)


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
    result = mnist_io.load_data(str(path), urlopen=no_network)

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
    result = mnist_io.load_data(idx_dir, urlopen=no_network)
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
        "garbage.pkl.gz": (gzip.compress(b"\x00garbage that is no pickle"), "pickle"),
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
# Finding the file
# ---------------------------------------------------------------------------

def test_bare_name_found_in_data_dir(data_env):
    write_pickle(data_env / "mnist.pkl.gz", make_splits(seed=3))
    result = mnist_io.load_data(urlopen=no_network)
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


def test_other_missing_names_are_not_downloaded(data_env):
    with pytest.raises(DatasetNotFoundError) as info:
        mnist_io.load_data("other.pkl.gz", urlopen=no_network)
    message = str(info.value)
    assert "other.pkl.gz" in message and str(data_env) in message
    with pytest.raises(DatasetNotFoundError, match="sub/mnist.pkl.gz"):
        mnist_io.load_data("sub/mnist.pkl.gz", urlopen=no_network)


def test_download_can_be_disabled(data_env):
    with pytest.raises(DatasetNotFoundError, match="LENET_DATA_DIR"):
        mnist_io.load_data(download=False, urlopen=no_network)


# ---------------------------------------------------------------------------
# Downloading (never over the network)
# ---------------------------------------------------------------------------

def test_download_from_file_url(data_env, tmp_path, monkeypatch, capsys):
    source = write_pickle(tmp_path / "source.pkl.gz", make_splits(seed=7))
    monkeypatch.setattr(mnist_io, "MNIST_URL", source.as_uri())
    result = mnist_io.load_data()
    out = capsys.readouterr().out
    assert out.startswith("... loading data\n")
    assert f"Downloading data from {source.as_uri()}" in out
    assert "\r" not in out  # not a terminal: no progress redraws
    assert (data_env / "mnist.pkl.gz").read_bytes() == source.read_bytes()
    assert sorted(os.listdir(data_env)) == ["mnist.pkl.gz"]
    np.testing.assert_array_equal(result[0][1].eval(), make_splits(seed=7)[0][1])
    # Now that it is there, it is read without downloading again.
    mnist_io.load_data(urlopen=no_network)


def test_download_goes_to_env_dir(data_env, tmp_path, monkeypatch):
    source = write_pickle(tmp_path / "source.pkl.gz", make_splits())
    env_dir = tmp_path / "env" / "new"
    monkeypatch.setenv("LENET_DATA_DIR", str(env_dir))
    mnist_io.load_data(url=source.as_uri())
    assert (env_dir / "mnist.pkl.gz").is_file()
    assert os.listdir(data_env) == []


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_download_progress_on_a_terminal(tmp_path):
    source = write_pickle(tmp_path / "source.pkl.gz", make_splits(sizes=(200, 20, 20)))
    stream = FakeTTY()
    dest = tmp_path / "out" / "mnist.pkl.gz"
    mnist_io.download_mnist(dest, url=source.as_uri(), stream=stream)
    text = stream.getvalue()
    size = source.stat().st_size
    assert text.startswith(f"Downloading data from {source.as_uri()}\n")
    assert text.count("\r") >= 2
    assert f"100% ({size:,} of {size:,} bytes)" in text
    assert dest.read_bytes() == source.read_bytes()


def test_unreachable_url_gives_clear_error_and_no_file(data_env, monkeypatch):
    for proxy in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)  # keep the request local
    url = f"http://127.0.0.1:{free_port()}/mnist.pkl.gz"
    monkeypatch.setattr(mnist_io, "MNIST_URL", url)
    with pytest.raises(DatasetNotFoundError) as info:
        mnist_io.load_data()
    message = str(info.value)
    assert "mnist.pkl.gz is missing" in message and url in message
    assert str(data_env) in message and "LENET_DATA_DIR" in message and "IDX" in message
    assert os.listdir(data_env) == []


def test_missing_file_url(data_env, tmp_path):
    with pytest.raises(DatasetNotFoundError, match="failed"):
        mnist_io.load_data(url=(tmp_path / "nothing.pkl.gz").as_uri())
    assert os.listdir(data_env) == []


class FakeResponse:
    """A response that sends ``body`` and then, optionally, breaks."""

    def __init__(self, body, length=None, error=None):
        self._stream = io.BytesIO(body)
        self.headers = {} if length is None else {"Content-Length": str(length)}
        self._error = error
        self.closed = False

    def read(self, n):
        chunk = self._stream.read(min(n, 100))
        if not chunk and self._error is not None:
            raise self._error
        return chunk

    def close(self):
        self.closed = True


def test_short_transfer_leaves_nothing(data_env):
    body = gzip.compress(pickle.dumps(make_splits(), 2))
    responses = []

    def opener(url, timeout):
        responses.append(FakeResponse(body[:500], length=len(body)))
        return responses[-1]

    with pytest.raises(DatasetNotFoundError, match=f"got 500 of {len(body):,} bytes"):
        mnist_io.load_data(urlopen=opener)
    assert os.listdir(data_env) == []
    assert responses[0].closed


def test_connection_dropped_mid_transfer_leaves_nothing(data_env):
    body = gzip.compress(pickle.dumps(make_splits(), 2))

    def opener(url, timeout):
        return FakeResponse(body[:300], error=ConnectionResetError("reset by peer"))

    with pytest.raises(DatasetNotFoundError, match="interrupted after 300 bytes"):
        mnist_io.load_data(urlopen=opener)
    assert os.listdir(data_env) == []


def test_interrupt_during_download_leaves_nothing(data_env):
    def opener(url, timeout):
        return FakeResponse(b"x" * 1000, error=KeyboardInterrupt())

    with pytest.raises(KeyboardInterrupt):
        mnist_io.load_data(urlopen=opener)
    assert os.listdir(data_env) == []


def test_downloaded_garbage_is_deleted(data_env, tmp_path):
    page = tmp_path / "page.html"
    page.write_bytes(b"<html><body>Moved</body></html>\n")
    with pytest.raises(DatasetError, match="not a valid MNIST pickle and was deleted"):
        mnist_io.load_data(url=page.as_uri())
    assert os.listdir(data_env) == []


def test_downloaded_malicious_pickle_is_deleted_and_not_run(data_env, tmp_path):
    marker = tmp_path / "pwned"
    source = write_pickle(tmp_path / "evil.pkl.gz", Evil(os.system, f"touch {marker}"))
    with pytest.raises(DatasetError, match="refusing to load"):
        mnist_io.load_data(url=source.as_uri())
    assert not marker.exists()
    assert os.listdir(data_env) == []


def test_unwritable_download_dir(data_env, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("LENET_DATA_DIR", str(blocker / "sub"))
    with pytest.raises(DatasetNotFoundError, match="cannot write"):
        mnist_io.load_data(urlopen=no_network)
