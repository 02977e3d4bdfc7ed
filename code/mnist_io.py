"""Load MNIST for the LeNet tutorials.

The tutorials read MNIST through :func:`load_data`, which returns the
train / validation / test splits as PyTensor shared variables, the way the
original Theano tutorial's ``logistic_sgd.load_data`` did.  The data can come
from

* the tutorial's own ``mnist.pkl.gz`` (a gzip'ed protocol-2 pickle of
  ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))``), given as a
  path or as a bare file name looked up in ``$LENET_DATA_DIR``, the current
  directory and the project's ``data/`` folder, and downloaded from the
  tutorial's address when the default name is asked for and not found;
* a directory holding the four standard MNIST IDX files
  (``train-images-idx3-ubyte.gz`` ...; gzip'ed or not), split as the pickle is:
  the first 50,000 training digits for training, the rest for validation.

Both give the same arrays, bit for bit: pixels as float32 ``value / 256`` in
``(N, 784)`` rows, labels as int64.

A pickle can run arbitrary code when loaded, so the pickle is read with an
unpickler that only resolves the few numpy names an array pickle needs, and
the result is checked for the expected shape before anyone uses it.

:func:`read_mnist` and friends return plain numpy arrays and do not need
PyTensor; only :func:`load_data` and :func:`shared_dataset` import it.
"""
import codecs
import gzip
import os
import pickle
import sys
import urllib.request
import zlib

import numpy

from atomic_file import atomic_write

__all__ = [
    "DATA_DIR_ENV",
    "DEFAULT_DATA_DIR",
    "DEFAULT_DATASET",
    "DatasetError",
    "DatasetNotFoundError",
    "IDX_FILES",
    "MNIST_URL",
    "N_TRAIN",
    "data_dirs",
    "download_mnist",
    "find_dataset",
    "load_data",
    "read_mnist",
    "read_mnist_idx",
    "read_mnist_pickle",
    "shared_dataset",
    "validate_mnist",
]

#: Where the original tutorial published ``mnist.pkl.gz``.  Looked up at call
#: time, so tests (or a mirror) can replace it.
MNIST_URL = "http://www.iro.umontreal.ca/~lisa/deep/data/mnist/mnist.pkl.gz"

#: The file name the tutorials ask for; only this name is ever downloaded.
DEFAULT_DATASET = "mnist.pkl.gz"

#: Environment variable naming a directory searched before anything else.
DATA_DIR_ENV = "LENET_DATA_DIR"

#: The project's ``data/`` folder (``<repo>/data``, next to ``code/``).
DEFAULT_DATA_DIR = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
)

#: Number of leading training digits kept for training; the rest of the
#: 60,000 training digits form the validation set (as in ``mnist.pkl.gz``).
N_TRAIN = 50000

#: The four IDX files, as (images, labels) for the training and test sets.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

N_PIXELS = 28 * 28
N_CLASSES = 10
SPLIT_NAMES = ("train", "valid", "test")

# How many bytes to read per step while downloading.
_CHUNK = 1 << 16


class DatasetError(ValueError):
    """The data file exists but is unreadable, corrupt or not MNIST."""


class DatasetNotFoundError(FileNotFoundError):
    """The data file is missing and could not be found or downloaded."""


# ---------------------------------------------------------------------------
# Restricted unpickling
# ---------------------------------------------------------------------------

def _allowed_globals():
    """Map the (module, name) pairs an array pickle may name to the objects.

    Returns
    -------
    dict
        ``{(module, name): object}``.  Both the numpy 1 (``numpy.core``) and
        numpy 2 (``numpy._core``) spellings resolve to the running numpy's
        objects, so old pickles load on numpy 2 without importing the
        deprecated ``numpy.core`` and new ones load on numpy 1.
    """
    if int(numpy.__version__.split(".")[0]) >= 2:
        from numpy._core import multiarray, numeric
    else:  # pragma: no cover - numpy 1 only
        from numpy.core import multiarray, numeric
    objects = {
        ("multiarray", "_reconstruct"): multiarray._reconstruct,
        ("multiarray", "scalar"): multiarray.scalar,
        # Protocol-5 array pickles rebuild the array from a buffer with this.
        ("numeric", "_frombuffer"): numeric._frombuffer,
    }
    allowed = {}
    for (submodule, name), obj in objects.items():
        for core in ("numpy.core", "numpy._core"):
            allowed[(core + "." + submodule, name)] = obj
    allowed[("numpy", "ndarray")] = numpy.ndarray
    allowed[("numpy", "dtype")] = numpy.dtype
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(str, 'latin1').
    allowed[("_codecs", "encode")] = codecs.encode
    return allowed


_ALLOWED_GLOBALS = _allowed_globals()


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that can only rebuild numpy arrays, dtypes and scalars.

    Parameters
    ----------
    file : binary file object
        The (decompressed) pickle stream.
    source : str
        The file name, used in error messages.

    Notes
    -----
    Every global a pickle refers to (``GLOBAL``, ``STACK_GLOBAL`` and the
    extension-registry opcodes) goes through :meth:`find_class`, so refusing
    there means a crafted pickle cannot reach ``os.system``, ``eval`` or any
    other callable: nothing outside the allow-list is even imported.
    """

    def __init__(self, file, source):
        # latin1: Python 2 pickles (the original mnist.pkl.gz) store numpy's
        # raw buffers as str; latin1 maps those bytes back one to one.
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module, name):
        """Return the allowed object for ``module.name``, or refuse.

        Raises
        ------
        DatasetError
            If ``module.name`` is not needed to rebuild an array.
        """
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DatasetError(
                f"refusing to load {module}.{name} from {self._source}: "
                "not an array pickle"
            ) from None

    def persistent_load(self, pid):
        """Refuse persistent ids: an array pickle never uses them."""
        raise DatasetError(
            f"refusing to load persistent object {pid!r} from {self._source}: "
            "not an array pickle"
        )


# ---------------------------------------------------------------------------
# Checking the loaded data
# ---------------------------------------------------------------------------

def validate_mnist(data, source="<data>"):
    """Check that ``data`` has the shape of the MNIST splits.

    Parameters
    ----------
    data : object
        What was loaded: expected to be three ``(x, y)`` pairs (train, valid,
        test) where ``x`` is a float ndarray of shape ``(n, 784)`` with values
        in ``[0, 1]`` and ``y`` an integer ndarray of ``n`` labels in 0..9.
    source : str, optional
        The file the data came from, named in error messages.

    Returns
    -------
    tuple
        ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` with
        the arrays unchanged (lists become tuples).

    Raises
    ------
    DatasetError
        On the first violation, naming ``source`` and the problem.
    """
    def fail(problem):
        raise DatasetError(f"{source} is not a valid MNIST dataset: {problem}")

    if not isinstance(data, (tuple, list)) or len(data) != 3:
        fail(f"expected 3 (x, y) pairs (train, valid, test), got {_describe(data)}")
    checked = []
    for split, pair in zip(SPLIT_NAMES, data):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            fail(f"{split} set: expected an (x, y) pair, got {_describe(pair)}")
        x, y = pair
        if not isinstance(x, numpy.ndarray):
            fail(f"{split} set x: expected a numpy array, got {_describe(x)}")
        if not isinstance(y, numpy.ndarray):
            fail(f"{split} set y: expected a numpy array, got {_describe(y)}")
        if x.ndim != 2 or x.shape[1] != N_PIXELS:
            fail(f"{split} set x has shape {x.shape}, expected (n, {N_PIXELS})")
        if x.dtype.kind != "f":
            fail(f"{split} set x has dtype {x.dtype}, expected floating point pixels")
        if y.ndim != 1:
            fail(f"{split} set y has shape {y.shape}, expected a 1-d array of labels")
        if y.dtype.kind not in "iu":
            fail(f"{split} set y has dtype {y.dtype}, expected integer labels")
        if len(x) != len(y):
            fail(f"{split} set has {len(x)} images but {len(y)} labels")
        if len(x) == 0:
            fail(f"{split} set is empty")
        # Written as "not (in range)" so that NaN pixels fail too.
        lo, hi = x.min(), x.max()
        if not (lo >= 0.0 and hi <= 1.0):
            fail(f"{split} set x has values in [{lo}, {hi}], expected pixels in [0, 1]")
        lo, hi = y.min(), y.max()
        if lo < 0 or hi >= N_CLASSES:
            fail(f"{split} set y has labels in [{lo}, {hi}], expected 0..{N_CLASSES - 1}")
        checked.append((x, y))
    return tuple(checked)


def _describe(obj):
    """Say briefly what ``obj`` is, for error messages."""
    if isinstance(obj, (tuple, list)):
        return f"a {type(obj).__name__} of length {len(obj)}"
    if isinstance(obj, numpy.ndarray):
        return f"an array of shape {obj.shape} and dtype {obj.dtype}"
    return f"a {type(obj).__name__}"


# ---------------------------------------------------------------------------
# Reading the files (numpy only)
# ---------------------------------------------------------------------------

def read_mnist(path):
    """Read MNIST from a pickle file or an IDX directory, as numpy arrays.

    Parameters
    ----------
    path : str or os.PathLike
        A ``mnist.pkl.gz``-style file, or a directory holding the four MNIST
        IDX files.  Used as given: no search, no download (see
        :func:`find_dataset` for that).

    Returns
    -------
    tuple
        ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))``:
        float32 ``(n, 784)`` pixel arrays and int64 label arrays for the
        tutorial's data (other float / integer types are kept as stored).

    Raises
    ------
    DatasetNotFoundError
        If ``path`` (or one of the IDX files) does not exist.
    DatasetError
        If the data is unreadable, corrupt, unsafe or not MNIST-shaped.
    """
    path = os.path.expanduser(os.fspath(path))
    if os.path.isdir(path):
        return read_mnist_idx(path)
    return read_mnist_pickle(path)


def read_mnist_pickle(path):
    """Read a gzip'ed MNIST pickle such as the tutorial's ``mnist.pkl.gz``.

    Parameters
    ----------
    path : str or os.PathLike
        The file.  It must be a gzip'ed pickle of three ``(x, y)`` array
        pairs; it is unpickled with an allow-list of numpy names only.

    Returns
    -------
    tuple
        ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))``.

    Raises
    ------
    DatasetNotFoundError
        If ``path`` does not exist.
    DatasetError
        If it is not a gzip file, is truncated or corrupt, names anything
        other than numpy array machinery, or does not hold MNIST-shaped data.
    """
    path = os.fspath(path)
    try:
        raw = open(path, "rb")
    except FileNotFoundError:
        raise DatasetNotFoundError(f"MNIST file not found: {path}") from None
    except OSError as exc:
        raise DatasetError(f"cannot open {path}: {exc.strerror or exc}") from exc
    with raw, gzip.GzipFile(fileobj=raw, mode="rb") as stream:
        # gzip reads an empty file as empty data; name the real problem.
        if os.fstat(raw.fileno()).st_size == 0:
            raise DatasetError(f"{path} is empty (interrupted download or copy?)")
        try:
            data = _ArrayUnpickler(stream, path).load()
            # Reading on to the end makes gzip check the CRC and length
            # trailer, which catches corruption past the pickle's STOP.
            if stream.read(1):
                raise DatasetError(f"{path}: unexpected data after the pickle")
        except DatasetError:
            raise
        except gzip.BadGzipFile as exc:
            raise DatasetError(
                f"{path} is not a valid gzip file ({exc}); expected a gzip'ed "
                "pickle like mnist.pkl.gz"
            ) from exc
        except EOFError as exc:
            raise DatasetError(
                f"{path} is truncated (incomplete download or copy?): {exc}"
            ) from exc
        except zlib.error as exc:
            raise DatasetError(f"{path} is corrupt (bad compressed data): {exc}") from exc
        except pickle.UnpicklingError as exc:
            raise DatasetError(f"{path} does not hold a valid pickle: {exc}") from exc
        except MemoryError:
            raise
        except Exception as exc:
            # Any other failure while decoding untrusted bytes (a numpy
            # constructor rejecting its arguments, an odd opcode ...) means
            # the file is bad; say so instead of leaking a deep traceback.
            raise DatasetError(
                f"{path} could not be read as an MNIST pickle: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    return validate_mnist(data, path)


def _find_idx_file(directory, stem):
    """Return the path of IDX file ``stem`` in ``directory`` (.gz first)."""
    for name in (stem + ".gz", stem):
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def _read_idx(path, expected_ndim):
    """Read one IDX file of unsigned bytes into a uint8 array.

    Parameters
    ----------
    path : str
        The file; gzip'ed if its name ends in ``.gz``.
    expected_ndim : int
        3 for image files, 1 for label files.

    Returns
    -------
    numpy.ndarray
        uint8 array of the shape given in the header.

    Raises
    ------
    DatasetError
        If the file cannot be read or its header or size is wrong.
    """
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as stream:
                blob = stream.read()
        else:
            with open(path, "rb") as stream:
                blob = stream.read()
    except gzip.BadGzipFile as exc:
        raise DatasetError(f"{path} is not a valid gzip file: {exc}") from exc
    except EOFError as exc:
        raise DatasetError(f"{path} is truncated: {exc}") from exc
    except zlib.error as exc:
        raise DatasetError(f"{path} is corrupt (bad compressed data): {exc}") from exc
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    # Header: two zero bytes, a type code (0x08 = unsigned byte), the number
    # of dimensions, then each dimension as a big-endian uint32.
    magic = bytes([0, 0, 0x08, expected_ndim])
    if blob[:4] != magic:
        raise DatasetError(
            f"{path} is not an IDX file of unsigned bytes with {expected_ndim} "
            f"dimension(s): it starts with {blob[:4].hex() or 'nothing'}, "
            f"expected {magic.hex()}"
        )
    header_len = 4 + 4 * expected_ndim
    if len(blob) < header_len:
        raise DatasetError(f"{path} is too short to be an IDX file ({len(blob)} bytes)")
    shape = tuple(int(d) for d in numpy.frombuffer(blob, ">u4", expected_ndim, 4))
    size = int(numpy.prod(shape, dtype=numpy.int64))
    if len(blob) - header_len != size:
        raise DatasetError(
            f"{path} holds {len(blob) - header_len} data bytes but its header "
            f"announces shape {shape} ({size} bytes): truncated or corrupt"
        )
    return numpy.frombuffer(blob, numpy.uint8, size, header_len).reshape(shape)


def _read_idx_pair(directory, images_stem, labels_stem):
    """Read one images / labels IDX pair as (float32 (n, 784), int64 (n,))."""
    paths = [_find_idx_file(directory, stem) for stem in (images_stem, labels_stem)]
    images_path, labels_path = paths
    images = _read_idx(images_path, 3)
    labels = _read_idx(labels_path, 1)
    if images.shape[1:] != (28, 28):
        raise DatasetError(
            f"{images_path} holds images of shape {images.shape[1:]}, expected (28, 28)"
        )
    if len(images) != len(labels):
        raise DatasetError(
            f"{images_path} holds {len(images)} images but {labels_path} "
            f"holds {len(labels)} labels"
        )
    # The tutorial's pickle stores pixel / 256 in float32; dividing by a
    # power of two is exact, so this matches the pickle bit for bit.
    x = images.reshape(len(images), N_PIXELS).astype(numpy.float32) / numpy.float32(256)
    y = labels.astype(numpy.int64)
    return x, y


def read_mnist_idx(directory, n_train=N_TRAIN):
    """Read the four standard MNIST IDX files from a directory.

    Parameters
    ----------
    directory : str or os.PathLike
        Holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each
        either gzip'ed (``.gz``, preferred when both exist) or not.
    n_train : int, optional
        How many leading training digits form the training set; the rest
        are the validation set.  The default 50,000 reproduces the
        tutorial's ``mnist.pkl.gz`` split.

    Returns
    -------
    tuple
        ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))``:
        float32 ``(n, 784)`` arrays of ``pixel / 256`` and int64 labels,
        equal bit for bit to ``mnist.pkl.gz`` for the official files.

    Raises
    ------
    DatasetNotFoundError
        If the directory or any of the four files is missing.
    DatasetError
        If a file is corrupt or not in IDX format, the images and labels
        disagree, or there are not more than ``n_train`` training digits.
    """
    directory = os.path.expanduser(os.fspath(directory))
    if not os.path.isdir(directory):
        raise DatasetNotFoundError(f"MNIST IDX directory not found: {directory}")
    missing = [
        stem + "[.gz]"
        for stems in IDX_FILES.values()
        for stem in stems
        if _find_idx_file(directory, stem) is None
    ]
    if missing:
        raise DatasetNotFoundError(
            f"{directory} lacks the MNIST IDX file(s) {', '.join(missing)}"
        )
    train_x, train_y = _read_idx_pair(directory, *IDX_FILES["train"])
    test = _read_idx_pair(directory, *IDX_FILES["test"])
    if len(train_x) <= n_train:
        raise DatasetError(
            f"{directory}: the training files hold {len(train_x)} digits, "
            f"need more than {n_train} to split off a validation set"
        )
    data = (
        (train_x[:n_train], train_y[:n_train]),
        (train_x[n_train:], train_y[n_train:]),
        test,
    )
    return validate_mnist(data, directory)


# ---------------------------------------------------------------------------
# Finding and downloading
# ---------------------------------------------------------------------------

def data_dirs():
    """Return the directories a bare data file name is looked up in.

    Returns
    -------
    list of str
        ``$LENET_DATA_DIR`` (when set and not empty), the current directory
        (as in the original tutorial) and the project's ``data/`` folder,
        in that order.
    """
    dirs = []
    env_dir = os.environ.get(DATA_DIR_ENV)
    if env_dir:
        dirs.append(os.path.abspath(os.path.expanduser(env_dir)))
    dirs.append(os.getcwd())
    dirs.append(DEFAULT_DATA_DIR)
    return dirs


def _download_dir():
    """Where a downloaded ``mnist.pkl.gz`` goes: $LENET_DATA_DIR, else data/."""
    env_dir = os.environ.get(DATA_DIR_ENV)
    if env_dir:
        return os.path.abspath(os.path.expanduser(env_dir))
    return DEFAULT_DATA_DIR


def _where_to_put_it(name):
    """The advice appended to 'not found' errors."""
    return (
        f"Put {name} in {DEFAULT_DATA_DIR} (or in the directory named by "
        f"${DATA_DIR_ENV}), or pass load_data the path of the file or of a "
        "directory holding the four MNIST IDX files (train-images-idx3-ubyte.gz, "
        "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
        "t10k-labels-idx1-ubyte.gz)."
    )


def find_dataset(dataset=DEFAULT_DATASET):
    """Resolve ``dataset`` to an existing file or IDX directory.

    Parameters
    ----------
    dataset : str or os.PathLike, optional
        A path (anything with a directory part is used as given), or a bare
        name looked up in :func:`data_dirs`.

    Returns
    -------
    str
        The path found.

    Raises
    ------
    DatasetNotFoundError
        If nothing is found.  Nothing is downloaded here.
    """
    dataset = os.path.expanduser(os.fspath(dataset))
    if os.path.dirname(dataset):
        if os.path.exists(dataset):
            return dataset
        raise DatasetNotFoundError(
            f"MNIST data not found: {dataset}. " + _where_to_put_it(DEFAULT_DATASET)
        )
    dirs = data_dirs()
    for directory in dirs:
        candidate = os.path.join(directory, dataset)
        if os.path.exists(candidate):
            return candidate
    raise DatasetNotFoundError(
        f"MNIST data {dataset!r} not found in {', '.join(dirs)}. "
        + _where_to_put_it(dataset)
    )


def _print_progress(stream, done, total):
    """Rewrite the progress line in place (only used on a terminal)."""
    if total:
        line = f"\r  {100 * done // total:3d}% ({done:,} of {total:,} bytes)"
    else:
        line = f"\r  {done:,} bytes"
    stream.write(line)
    stream.flush()


def download_mnist(dest, url=None, urlopen=None, timeout=60.0, stream=None):
    """Download ``mnist.pkl.gz`` to ``dest`` safely and check it.

    The bytes go to a temporary file next to ``dest``, which is flushed to
    disk, checked with :func:`read_mnist_pickle`, and only then renamed onto
    ``dest``; on any failure (including Ctrl-C) the temporary file is
    removed, so ``dest`` is either absent or a complete, valid file.

    Parameters
    ----------
    dest : str or os.PathLike
        Final path of the file.  Its directory is created if needed.
    url : str, optional
        Where to download from; default :data:`MNIST_URL` (read at call time).
    urlopen : callable, optional
        ``urlopen(url, timeout=...)`` returning a response with ``read(n)``,
        ``close()`` and ``headers``; default :func:`urllib.request.urlopen`.
        Lets tests run without the network.
    timeout : float, optional
        Socket timeout in seconds.
    stream : file object, optional
        Where progress is printed; default ``sys.stdout``.  The percent line
        is redrawn with ``'\\r'`` only when it is a terminal.

    Returns
    -------
    tuple
        The data as returned by :func:`read_mnist_pickle`.

    Raises
    ------
    DatasetNotFoundError
        If the download fails (no network, HTTP error, incomplete transfer,
        unwritable directory).
    DatasetError
        If the downloaded file is not a valid MNIST pickle.
    """
    dest = os.path.abspath(os.fspath(dest))
    url = MNIST_URL if url is None else url
    urlopen = urllib.request.urlopen if urlopen is None else urlopen
    stream = sys.stdout if stream is None else stream
    directory, name = os.path.split(dest)
    is_tty = bool(getattr(stream, "isatty", lambda: False)())

    def fail(reason, cause):
        raise DatasetNotFoundError(
            f"MNIST file {name} is missing and downloading it from {url} "
            f"failed: {reason}. " + _where_to_put_it(name)
        ) from cause

    print(f"Downloading data from {url}", file=stream, flush=True)
    done = 0

    def fetch(out):
        nonlocal done
        try:
            response = urlopen(url, timeout=timeout)
        except Exception as exc:  # URLError, HTTPError, timeouts, bad URL
            fail(f"{type(exc).__name__}: {exc}", exc)
        total = None
        try:
            headers = getattr(response, "headers", None)
            length = headers.get("Content-Length") if headers is not None else None
            total = int(length) if length and length.strip().isdigit() else None
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                done += len(chunk)
                if is_tty:
                    _print_progress(stream, done, total)
        except Exception as exc:  # connection reset, IncompleteRead, disk full
            fail(f"transfer interrupted after {done:,} bytes: "
                 f"{type(exc).__name__}: {exc}", exc)
        finally:
            response.close()
            if is_tty:
                stream.write("\n")
        if total is not None and done != total:
            fail(f"incomplete transfer: got {done:,} of {total:,} bytes", None)

    data = []

    def check(tmp):
        # refuse (and delete) anything that is not a valid MNIST pickle
        if not is_tty:
            print(f"  {done:,} bytes downloaded", file=stream, flush=True)
        try:
            data.append(read_mnist_pickle(tmp))
        except (DatasetError, DatasetNotFoundError) as exc:
            raise DatasetError(
                f"the file downloaded from {url} is not a valid MNIST pickle "
                f"and was deleted: {exc}"
            ) from exc

    try:
        os.makedirs(directory, exist_ok=True)
        atomic_write(dest, fetch, check)
    except OSError as exc:
        if isinstance(exc, DatasetNotFoundError):
            raise
        fail(f"cannot write {dest}: {exc}", exc)
    return data[0]


def _read_or_download(dataset, download, url, urlopen):
    """Find and read ``dataset``, downloading the default file if allowed."""
    name = os.fspath(dataset)
    try:
        path = find_dataset(name)
    except DatasetNotFoundError:
        if not (download and name == DEFAULT_DATASET):
            raise
        return download_mnist(os.path.join(_download_dir(), name), url=url, urlopen=urlopen)
    return read_mnist(path)


# ---------------------------------------------------------------------------
# PyTensor shared variables
# ---------------------------------------------------------------------------

def shared_dataset(data_xy, borrow=True):
    """Put one ``(x, y)`` split into PyTensor shared variables.

    Parameters
    ----------
    data_xy : tuple of numpy.ndarray
        Images ``(n, 784)`` and labels ``(n,)``.
    borrow : bool, optional
        Passed to :func:`pytensor.shared`; the default lets PyTensor use the
        converted arrays without another copy.

    Returns
    -------
    shared_x : pytensor.compile.SharedVariable
        The images as ``floatX``.
    y : pytensor.tensor.TensorVariable
        The labels, stored as a ``floatX`` shared variable and cast to int32.
        The float storage is how the original tutorial kept labels on a GPU
        (which only held floats); it is kept so the graphs match.
    """
    import pytensor
    import pytensor.tensor

    data_x, data_y = data_xy
    floatx = pytensor.config.floatX
    shared_x = pytensor.shared(numpy.asarray(data_x, dtype=floatx), borrow=borrow)
    shared_y = pytensor.shared(numpy.asarray(data_y, dtype=floatx), borrow=borrow)
    return shared_x, pytensor.tensor.cast(shared_y, "int32")


def load_data(dataset=DEFAULT_DATASET, download=True, url=None, urlopen=None):
    """Load MNIST as the tutorials expect it.

    Parameters
    ----------
    dataset : str or os.PathLike, optional
        A ``mnist.pkl.gz``-style file, a directory of the four MNIST IDX
        files, or a bare name looked up in ``$LENET_DATA_DIR``, the current
        directory and the project's ``data/`` folder.  Default
        ``'mnist.pkl.gz'``.
    download : bool, optional
        When the bare default name is not found anywhere, download it from
        ``url`` into ``$LENET_DATA_DIR`` (if set) or ``data/``.  Other names
        are never downloaded.
    url : str, optional
        Download address; default :data:`MNIST_URL`.
    urlopen : callable, optional
        Replacement for :func:`urllib.request.urlopen` (see
        :func:`download_mnist`).

    Returns
    -------
    list
        ``[(train_set_x, train_set_y), (valid_set_x, valid_set_y),
        (test_set_x, test_set_y)]``, each ``x`` a ``floatX`` shared variable
        and each ``y`` an int32 cast of a ``floatX`` shared variable.

    Raises
    ------
    DatasetNotFoundError
        If the data is missing and cannot be downloaded.
    DatasetError
        If the data is corrupt, unsafe or not MNIST-shaped.
    """
    print("... loading data")
    data = _read_or_download(dataset, download, url, urlopen)
    return [shared_dataset(split) for split in data]
