"""Load MNIST for the LeNet tutorials.

The tutorials read MNIST through :func:`load_data`, which returns the
train / validation / test splits as PyTensor shared variables, the way the
original Theano tutorial's ``logistic_sgd.load_data`` did.  The data can come
from

* the tutorial's own ``mnist.pkl.gz`` (a gzip'ed protocol-2 pickle of
  ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))``), given as a
  path or as a bare file name looked up in ``$LENET_DATA_DIR``, the current
  directory and the project's ``data/`` folder, and downloaded when the
  default name is asked for and not found (see :func:`download_mnist`: a
  mirror named by ``$LENET_MNIST_MIRROR``, then the tutorial's address, then
  other public copies of the pickle or of the IDX files, each download
  checked against pinned SHA-256 checksums of its content);
* a directory holding the four standard MNIST IDX files
  (``train-images-idx3-ubyte.gz`` ...; gzip'ed or not), split as the pickle is:
  the first 50,000 training digits for training, the rest for validation.

Both give the same arrays, bit for bit: pixels as float32 ``value / 256`` in
``(N, 784)`` rows, labels as int64.

A pickle can run arbitrary code when loaded, so the pickle is read with an
unpickler that only resolves the few numpy names an array pickle needs, and
the result is checked for the expected shape before anyone uses it.  What a
file claims (sizes, shapes, how many objects) is capped before anything is
allocated, so a small crafted file cannot exhaust memory or crash numpy.

:func:`read_mnist` and friends return plain numpy arrays and do not need
PyTensor; only :func:`load_data` and :func:`shared_dataset` import it.
"""
import codecs
import gzip
import hashlib
import io
import math
import os
import pathlib
import pickle
import struct
import sys
import zlib

import numpy

from atomic_file import atomic_write
from downloads import DOWNLOAD_TIMEOUT, DownloadFailed, fetch, with_retry

__all__ = [
    "DATA_DIR_ENV",
    "DEFAULT_DATA_DIR",
    "DEFAULT_DATASET",
    "DatasetError",
    "DatasetNotFoundError",
    "DOWNLOAD_TIMEOUT",
    "IDX_FILES",
    "MIRROR_ENV",
    "MNIST_SHA256",
    "MNIST_SOURCES",
    "MNIST_URL",
    "N_TRAIN",
    "data_dirs",
    "dataset_sha256",
    "download_mnist",
    "download_sources",
    "find_dataset",
    "load_data",
    "read_mnist",
    "read_mnist_idx",
    "read_mnist_pickle",
    "shared_dataset",
    "validate_mnist",
]

#: Where the original tutorial published ``mnist.pkl.gz``.
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

#: Environment variable naming a mirror, tried before any public address: a
#: base URL (or a local folder) under which ``mnist.pkl.gz`` or the four
#: gzip'ed IDX files can be fetched.
MIRROR_ENV = "LENET_MNIST_MIRROR"

#: Where a missing ``mnist.pkl.gz`` is downloaded from, in order, after the
#: mirror.  Each source is ``(kind, url)``: ``"pickle"`` with the URL of a copy
#: of ``mnist.pkl.gz``, or ``"idx"`` with a base URL holding the four gzip'ed
#: IDX files.  Read at call time, so it can be replaced.
MNIST_SOURCES = (
    ("pickle", MNIST_URL),
    ("pickle", "https://github.com/mnielsen/neural-networks-and-deep-learning/"
               "raw/master/data/mnist.pkl.gz"),
    ("pickle", "http://deeplearning.net/data/mnist/mnist.pkl.gz"),
    ("idx", "https://ossci-datasets.s3.amazonaws.com/mnist/"),
    ("idx", "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    ("idx", "http://yann.lecun.com/exdb/mnist/"),
)

#: Pinned SHA-256 checksums of MNIST's *content*, which every download must
#: match.  ``"mnist.pkl.gz"``: :func:`dataset_sha256` of the pickle's six
#: arrays; each IDX name: the decompressed IDX file.  Hashing the content, not
#: the compressed bytes, lets a recompressed copy pass while a corrupted or
#: altered one fails.  Read at call time, so it can be replaced.
MNIST_SHA256 = {
    DEFAULT_DATASET: "c75bbd4576920968966193e0d1f6040666b1443b7650f1d8fe8ef8592386b17c",
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# Far above any MNIST file (the pickle is 17 MB, the training images 47 MB
# decompressed): anything bigger is refused before it fills disk or memory.
_MAX_DOWNLOAD_BYTES = 1 << 27
_MAX_IDX_BYTES = 1 << 26

# What a pickle may make the loader hold: its decompressed bytes, and what
# it asks numpy to allocate. mnist.pkl.gz is 222 MB decompressed (its largest
# item 158 MB); float64 pixels, written by Python 3 at protocol 2, the
# largest form, come under 900 MB.
_MAX_PICKLE_BYTES = 1 << 30
# mnist.pkl.gz has about 230 opcodes; each pickled object costs memory.
_MAX_PICKLE_OPCODES = 100_000


class DatasetError(ValueError):
    """The data file exists but is unreadable, corrupt or not MNIST."""


class DatasetNotFoundError(FileNotFoundError):
    """The data file is missing and could not be found or downloaded.

    Parameters
    ----------
    problem : str
        What is missing or what failed.
    name : str, optional
        The file asked for; when given, the message goes on with the ways
        to provide it, worded for a caller of :func:`load_data` (``str``)
        or for a script's command line (:meth:`command_line_message`).
    mirror : bool, optional
        Also name ``$LENET_MNIST_MIRROR`` among the ways (a download was
        tried).
    """

    def __init__(self, problem, name=None, mirror=False):
        self.problem, self.name, self.mirror = problem, name, mirror
        super().__init__(self._message(cli=False))

    def _message(self, cli):
        if self.name is None:
            return self.problem
        # a problem of several lines (the sources tried) gets the advice on a line of its own
        sep = "\n" if "\n" in self.problem else " "
        return self.problem + sep + _where_to_put_it(self.name, cli, self.mirror)

    def command_line_message(self):
        """The message with ``--dataset PATH`` as the first way out."""
        return self._message(cli=True)


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
_RECONSTRUCT = _ALLOWED_GLOBALS[("numpy._core.multiarray", "_reconstruct")]
_SCALAR = _ALLOWED_GLOBALS[("numpy._core.multiarray", "scalar")]


class _Budget:
    """How many more bytes and opcodes a pickle may cost (see _ArrayUnpickler).

    Reads the pickle stream for the unpickler, charging every read before it
    is made.
    """

    def __init__(self, stream, source):
        self._stream, self._source = stream, source
        self._bytes, self._opcodes = _MAX_PICKLE_BYTES, _MAX_PICKLE_OPCODES

    def take(self, size, what):
        """Charge ``size`` bytes for ``what``, or refuse if fewer are left."""
        if not 0 <= size <= self._bytes:
            raise DatasetError(
                f"refusing to load {what} of {size} bytes from {self._source}: it would take "
                f"the file past {_MAX_PICKLE_BYTES} bytes, far more than any MNIST pickle "
                "holds (corrupt or crafted?)"
            )
        self._bytes -= size

    def opcode(self):
        self._opcodes -= 1
        if self._opcodes < 0:
            raise DatasetError(
                f"refusing to load {self._source}: more than {_MAX_PICKLE_OPCODES} opcodes, "
                "where an MNIST pickle has a few hundred (corrupt or crafted?)"
            )

    def read(self, size):
        self.take(size, "an item")
        return self._stream.read(size)

    def readline(self):
        line = self._stream.readline(self._bytes + 1)
        self.take(len(line), "a line")
        return line


class _Dispatch(dict):
    """The unpickler's opcode table, charging each opcode looked up."""

    def __init__(self, table, budget):
        super().__init__(table)
        self._budget = budget

    def __getitem__(self, opcode):
        self._budget.opcode()
        return super().__getitem__(opcode)

    def __missing__(self, opcode):
        # the C unpickler's words (the Python one lets a KeyError out)
        raise pickle.UnpicklingError(f"invalid load key, {chr(opcode)!r}.")


def _plain_number_state(state):
    """Whether a dtype ``state`` is a plain number type's: a byte order and
    sizes, no subarray, names or fields, no flags (which can declare Python
    objects)."""
    return (isinstance(state, tuple) and len(state) >= 5
            and all(item is None for item in state[2:5])
            and (len(state) < 8 or state[7] == 0))


class _ArrayUnpickler(pickle._Unpickler):
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

    Nothing a file claims is allocated unchecked either. This is Python's
    own unpickler (``pickle._Unpickler``), not the C one, which allocates
    what an opcode claims before reading it (BINBYTES8: 4e18 bytes, from a
    2 KB file) and sizes its memo table by the largest index a pickle names
    (LONG_BINPUT 2**31: 16 GiB, zero-filled). Here every byte read, every
    opcode, and every array, scalar or string numpy is asked to make comes
    out of a :class:`_Budget`, charged before the allocation. And no dtype
    may hold Python objects: numpy fills an array of them from a list
    without checking its length first (a crafted state crashed the process).
    """

    def __init__(self, file, source):
        self._budget = _Budget(file, source)
        # latin1: Python 2 pickles (the original mnist.pkl.gz) store numpy's
        # raw buffers as str; latin1 maps those bytes back one to one.
        super().__init__(self._budget, encoding="latin1")
        self._source = source
        self.dispatch = _Dispatch(self.dispatch, self._budget)
        # numpy's callables that allocate or make dtypes, behind checks
        self._checked = {
            numpy.ndarray: self._ndarray,
            numpy.dtype: self._dtype,
            _RECONSTRUCT: self._reconstruct,
            _SCALAR: self._scalar,
            codecs.encode: self._encode,
        }

    def _refuse(self, what):
        raise DatasetError(f"refusing to load {what} from {self._source}: not an array pickle")

    def find_class(self, module, name):
        """Return the allowed object for ``module.name``, or refuse.

        Raises
        ------
        DatasetError
            If ``module.name`` is not needed to rebuild an array.
        """
        obj = _ALLOWED_GLOBALS.get((module, name))
        if obj is None:
            self._refuse(f"{module}.{name}")
        return self._checked.get(obj, obj)

    def persistent_load(self, pid):
        """Refuse persistent ids: an array pickle never uses them."""
        self._refuse(f"persistent object {pid!r}")

    def _ndarray(self, *args):
        """What a pickle's ``numpy.ndarray`` stands for: the class that
        :meth:`_reconstruct` builds. Called, it would allocate any shape."""
        self._refuse("a direct call of numpy.ndarray")

    def _dtype(self, *args):
        dtype = numpy.dtype(*args)
        if dtype.hasobject:
            self._refuse(f"a dtype of Python objects ({dtype})")
        return dtype

    def _reconstruct(self, cls, shape, dtype):
        if cls is not self._checked[numpy.ndarray]:
            self._refuse(f"an array of class {cls!r}")
        dtype = self._dtype(dtype)
        self._budget.take(math.prod(shape) * dtype.itemsize, f"an array of shape {shape}")
        return _RECONSTRUCT(numpy.ndarray, shape, dtype)

    def _scalar(self, dtype, *data):
        self._budget.take(dtype.itemsize, f"a scalar of {dtype}")
        return _SCALAR(dtype, *data)

    def _encode(self, text, encoding):
        if encoding != "latin1":
            self._refuse(f"a text encoded as {encoding!r}, not latin1")
        self._budget.take(len(text), "an encoded text")
        return codecs.encode(text, encoding)

    # The base class's opcode table, but for two opcodes it handles
    # unchecked (the table holds functions: ``dispatch[opcode](self)``).
    dispatch = dict(pickle._Unpickler.dispatch)

    def load_bytearray8(self):
        # the base class allocates the size claimed before reading it
        (size,) = struct.unpack("<Q", self.read(8))
        self.append(bytearray(self.read(size)))

    def load_build(self):
        inst, state = self.stack[-2], self.stack[-1]
        if isinstance(inst, numpy.dtype):
            if not _plain_number_state(state):
                self._refuse(f"a dtype state {state!r}")
        elif not isinstance(inst, numpy.ndarray):
            self._refuse(f"a state for a {type(inst).__name__}")
        super().load_build()

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8
    dispatch[pickle.BUILD[0]] = load_build


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
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as stream:
            # bounded, so a small "gzip bomb" cannot exhaust memory
            blob = stream.read(_MAX_IDX_BYTES + 1)
    except gzip.BadGzipFile as exc:
        raise DatasetError(f"{path} is not a valid gzip file: {exc}") from exc
    except EOFError as exc:
        raise DatasetError(f"{path} is truncated: {exc}") from exc
    except zlib.error as exc:
        raise DatasetError(f"{path} is corrupt (bad compressed data): {exc}") from exc
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    if len(blob) > _MAX_IDX_BYTES:
        raise DatasetError(f"{path} holds more than {_MAX_IDX_BYTES} bytes (decompressed): "
                           "too large for an MNIST IDX file")
    return _parse_idx(blob, expected_ndim, path)


def _parse_idx(blob, expected_ndim, source):
    """Decode the (decompressed) bytes of an IDX file of unsigned bytes.

    Parameters
    ----------
    blob : bytes
        The whole file.
    expected_ndim : int
        3 for image files, 1 for label files.
    source : str
        Where the bytes came from, named in error messages.

    Returns
    -------
    numpy.ndarray
        uint8 array (a read-only view of ``blob``) of the header's shape.

    Raises
    ------
    DatasetError
        If the header or size is wrong.
    """
    # Header: two zero bytes, a type code (0x08 = unsigned byte), the number
    # of dimensions, then each dimension as a big-endian uint32.
    magic = bytes([0, 0, 0x08, expected_ndim])
    if blob[:4] != magic:
        raise DatasetError(
            f"{source} is not an IDX file of unsigned bytes with {expected_ndim} "
            f"dimension(s): it starts with {blob[:4].hex() or 'nothing'}, "
            f"expected {magic.hex()}"
        )
    header_len = 4 + 4 * expected_ndim
    if len(blob) < header_len:
        raise DatasetError(f"{source} is too short to be an IDX file ({len(blob)} bytes)")
    shape = tuple(int(d) for d in numpy.frombuffer(blob, ">u4", expected_ndim, 4))
    size = math.prod(shape)  # Python ints: numpy's int64 product wrapped round
    if len(blob) - header_len != size:
        raise DatasetError(
            f"{source} holds {len(blob) - header_len} data bytes but its header "
            f"announces shape {shape} ({size} bytes): truncated or corrupt"
        )
    return numpy.frombuffer(blob, numpy.uint8, size, header_len).reshape(shape)


def _idx_pair(images, labels, images_source, labels_source):
    """Turn IDX images / labels into (float32 (n, 784) pixel / 256, int64 (n,))."""
    if images.shape[1:] != (28, 28):
        raise DatasetError(
            f"{images_source} holds images of shape {images.shape[1:]}, expected (28, 28)"
        )
    if len(images) != len(labels):
        raise DatasetError(
            f"{images_source} holds {len(images)} images but {labels_source} "
            f"holds {len(labels)} labels"
        )
    # The tutorial's pickle stores pixel / 256 in float32; dividing by a
    # power of two is exact, so this matches the pickle bit for bit.
    x = images.reshape(len(images), N_PIXELS).astype(numpy.float32) / numpy.float32(256)
    y = labels.astype(numpy.int64)
    return x, y


def _read_idx_pair(directory, images_stem, labels_stem):
    """Read one images / labels IDX pair as (float32 (n, 784), int64 (n,))."""
    images_path, labels_path = (
        _find_idx_file(directory, stem) for stem in (images_stem, labels_stem)
    )
    return _idx_pair(_read_idx(images_path, 3), _read_idx(labels_path, 1),
                     images_path, labels_path)


def _split_idx(train, test, n_train, source):
    """Split the 60,000 training digits as the tutorial's pickle does.

    Parameters
    ----------
    train, test : tuple
        ``(x, y)`` of the IDX training and test sets.
    n_train : int
        How many leading training digits form the training set; the rest
        are the validation set.
    source : str
        Named in error messages.

    Returns
    -------
    tuple
        The three checked ``(x, y)`` splits (see :func:`validate_mnist`).
    """
    train_x, train_y = train
    if len(train_x) <= n_train:
        raise DatasetError(
            f"{source}: the training files hold {len(train_x)} digits, "
            f"need more than {n_train} to split off a validation set"
        )
    data = (
        (train_x[:n_train], train_y[:n_train]),
        (train_x[n_train:], train_y[n_train:]),
        test,
    )
    return validate_mnist(data, source)


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
    train = _read_idx_pair(directory, *IDX_FILES["train"])
    test = _read_idx_pair(directory, *IDX_FILES["test"])
    return _split_idx(train, test, n_train, directory)


def dataset_sha256(data):
    """SHA-256 of the content of MNIST splits, as pinned in :data:`MNIST_SHA256`.

    Parameters
    ----------
    data : tuple
        ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))``.

    Returns
    -------
    str
        The hex digest of, for each of the six arrays in order, the ASCII
        line ``'<dtype.str> <d0>,<d1>...\\n'`` (little-endian dtype, e.g.
        ``'<f4 50000,784\\n'``) followed by the array's bytes in C order.  It
        depends only on the arrays, not on how the file was pickled or
        compressed; the IDX files give the same value as ``mnist.pkl.gz``.
    """
    digest = hashlib.sha256()
    for pair in data:
        for array in pair:
            array = numpy.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
            shape = ",".join(str(d) for d in array.shape)
            digest.update(f"{array.dtype.str} {shape}\n".encode("ascii"))
            digest.update(array)
    return digest.hexdigest()


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


_IDX_NAMES = ", ".join(stem + ".gz" for stems in IDX_FILES.values() for stem in stems)


def _where_to_put_it(name, cli=False, mirror=False):
    """The advice appended to 'not found' errors.

    Parameters
    ----------
    name : str
        The file asked for.
    cli : bool, optional
        Word it for a script's command line (``--dataset PATH``) rather
        than for a caller of :func:`load_data`.
    mirror : bool, optional
        Also name ``$LENET_MNIST_MIRROR`` (when a download was tried).
    """
    if cli:
        explicit = (
            "pass --dataset PATH, with PATH the tutorial's mnist.pkl.gz or a "
            "folder holding the four MNIST IDX files"
        )
    else:
        explicit = (
            "pass load_data the path of the file or of a folder holding the "
            "four MNIST IDX files"
        )
    ways = [
        f"{explicit} ({_IDX_NAMES})",
        f"put {name} in {DEFAULT_DATA_DIR} or in the folder named by "
        f"${DATA_DIR_ENV}",
    ]
    if mirror:
        ways.append(
            f"set ${MIRROR_ENV} to a base URL (or folder) under which "
            f"{DEFAULT_DATASET} or the four IDX files can be fetched"
        )
    return "To go on: " + "; or ".join(ways) + "."


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
        raise DatasetNotFoundError(f"MNIST data not found: {dataset}.", DEFAULT_DATASET)
    dirs = data_dirs()
    for directory in dirs:
        candidate = os.path.join(directory, dataset)
        if os.path.exists(candidate):
            return candidate
    raise DatasetNotFoundError(
        f"MNIST data {dataset!r} not found in {', '.join(dirs)}.", dataset
    )


def download_sources():
    """The sources :func:`download_mnist` tries by default, in order.

    Returns
    -------
    tuple
        ``(kind, url)`` pairs: when ``$LENET_MNIST_MIRROR`` is set,
        ``("pickle", MIRROR/mnist.pkl.gz)`` and ``("idx", MIRROR/)`` (a value
        without ``://`` is a local folder), then :data:`MNIST_SOURCES`.
    """
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        return tuple(MNIST_SOURCES)
    if "://" not in mirror:
        mirror = pathlib.Path(os.path.expanduser(mirror)).resolve().as_uri()
    base = mirror.rstrip("/") + "/"
    return (("pickle", base + DEFAULT_DATASET), ("idx", base)) + tuple(MNIST_SOURCES)


def _check_sha256(url, got, expected):
    """Refuse content whose checksum is not the pinned one."""
    if got != expected:
        raise DownloadFailed(
            url, f"checksum mismatch (content SHA-256 {got[:16]}..., "
                 f"expected {expected[:16]}...)"
        )


def _download_pickle(url, dest, expected, timeout, stream):
    """Fetch a copy of ``mnist.pkl.gz`` into ``dest`` if its content checks."""
    data = []

    def check(tmp):
        try:
            loaded = read_mnist_pickle(tmp)
        except (DatasetError, DatasetNotFoundError) as exc:
            raise DownloadFailed(
                url, "not an MNIST pickle: " + str(exc).replace(tmp, "the download")
            ) from exc
        _check_sha256(url, dataset_sha256(loaded), expected)
        data.append(loaded)

    atomic_write(dest, lambda out: fetch(url, out, timeout, stream, _MAX_DOWNLOAD_BYTES,
                                         "MNIST"), check)
    return data[0]


def _fetch_idx(url, ndim, expected, timeout, stream):
    """Fetch one gzip'ed IDX file into memory and check its content."""
    def attempt():
        buffer = io.BytesIO()
        fetch(url, buffer, timeout, stream, _MAX_DOWNLOAD_BYTES, "MNIST")
        return buffer.getvalue()

    compressed = with_retry(attempt, stream)
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(compressed), mode="rb") as unzipped:
            # bounded, so a small "gzip bomb" cannot exhaust memory
            blob = unzipped.read(_MAX_IDX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DownloadFailed(url, f"not a valid gzip file ({exc})") from exc
    if len(blob) > _MAX_IDX_BYTES:
        raise DownloadFailed(url, "too large for MNIST once decompressed")
    _check_sha256(url, hashlib.sha256(blob).hexdigest(), expected)
    try:
        return _parse_idx(blob, ndim, url)
    except DatasetError as exc:
        raise DownloadFailed(url, str(exc)) from exc


def _save_pickle(dest, data):
    """Write ``data`` to ``dest`` as a gzip'ed protocol-2 pickle, like the
    tutorial's ``mnist.pkl.gz``, and check that it reads back equal."""
    expected = dataset_sha256(data)

    def write(out):
        # level 6: a quarter of level 9's time for a 5 % larger file
        with gzip.GzipFile(filename=os.path.basename(dest), mode="wb",
                           fileobj=out, compresslevel=6, mtime=0) as zipped:
            pickle.dump(tuple(tuple(pair) for pair in data), zipped, protocol=2)

    def check(tmp):
        if dataset_sha256(read_mnist_pickle(tmp)) != expected:
            raise DatasetError(f"{dest}: the file written does not read back equal")

    atomic_write(dest, write, check)


def _download_idx(base, dest, checksums, n_train, timeout, stream):
    """Fetch the four IDX files under ``base``, convert them to the
    tutorial's split and save that as a pickle at ``dest``."""
    base = base.rstrip("/") + "/"
    pairs = {}
    for part, stems in IDX_FILES.items():
        arrays, urls = [], []
        for stem, ndim in zip(stems, (3, 1)):
            url = base + stem + ".gz"
            arrays.append(_fetch_idx(url, ndim, checksums[stem], timeout, stream))
            urls.append(url)
        try:
            pairs[part] = _idx_pair(*arrays, *urls)
        except DatasetError as exc:
            raise DownloadFailed(urls[0], str(exc)) from exc
    try:
        data = _split_idx(pairs["train"], pairs["test"], n_train, base)
    except DatasetError as exc:
        raise DownloadFailed(base, str(exc)) from exc
    _save_pickle(dest, data)
    return data


def download_mnist(dest, sources=None, checksums=None, timeout=None, stream=None,
                   n_train=None):
    """Download MNIST to ``dest`` as ``mnist.pkl.gz``, from the first source
    that delivers it intact.

    Each source is tried in turn: a copy of the pickle, or the four gzip'ed
    IDX files (converted to the tutorial's split and saved as the same kind
    of pickle).  What arrives is checked against ``checksums`` (the content,
    so a recompressed copy passes) before it is kept.  A source that fails
    (HTTP error, timeout, cut-off transfer, bad checksum, not MNIST) is
    reported and the next one tried; a transfer that broke on the way
    (timeout, dropped connection, server error) is retried once.  Files are
    written through a temporary file and renamed into place only once
    checked, so ``dest`` is either absent or complete and valid, and nothing
    else is left behind, even on Ctrl-C.

    Parameters
    ----------
    dest : str or os.PathLike
        Final path of the file.  Its directory is created if needed.
    sources : sequence of (str, str), optional
        ``(kind, url)`` pairs, ``kind`` ``"pickle"`` or ``"idx"`` (see
        :data:`MNIST_SOURCES`); default :func:`download_sources`, which puts
        ``$LENET_MNIST_MIRROR`` first.
    checksums : dict, optional
        Expected SHA-256 of the content, keyed like :data:`MNIST_SHA256`
        (the default, read at call time).
    timeout : float, optional
        Socket timeout in seconds; default :data:`DOWNLOAD_TIMEOUT`.
    stream : file object, optional
        Where progress is printed; default ``sys.stdout``.  The progress
        line (size in MB, speed in MB/s) is redrawn with ``'\\r'`` only when
        it is a terminal.
    n_train : int, optional
        Training digits kept for training when converting IDX files;
        default :data:`N_TRAIN`.

    Returns
    -------
    tuple
        The data as returned by :func:`read_mnist_pickle`.

    Raises
    ------
    DatasetNotFoundError
        If every source fails (the message lists each URL tried with the
        reason and the ways to go on without a download), or ``dest``
        cannot be written.
    """
    dest = os.path.abspath(os.fspath(dest))
    sources = download_sources() if sources is None else tuple(sources)
    checksums = MNIST_SHA256 if checksums is None else checksums
    timeout = DOWNLOAD_TIMEOUT if timeout is None else timeout
    n_train = N_TRAIN if n_train is None else n_train
    stream = sys.stdout if stream is None else stream
    directory, name = os.path.split(dest)

    def cannot_write(exc):
        return DatasetNotFoundError(f"cannot write {dest}: {exc}.", name, mirror=True)

    created = not os.path.isdir(directory)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise cannot_write(exc) from exc
    failures = []
    for kind, url in sources:
        try:
            if kind == "pickle":
                return with_retry(
                    lambda: _download_pickle(url, dest, checksums[DEFAULT_DATASET],
                                             timeout, stream),
                    stream,
                )
            if kind == "idx":
                return _download_idx(url, dest, checksums, n_train, timeout, stream)
            raise ValueError(f"unknown kind of download source {kind!r} for {url}")
        except DownloadFailed as exc:
            print(f"  failed: {exc.reason}", file=stream, flush=True)
            failures.append(exc)
        except OSError as exc:
            # Network errors are DownloadFailed by now: this is the local disk,
            # which no other source can fix.
            raise cannot_write(exc) from exc
    if created:  # leave no trace of a failed download
        try:
            os.rmdir(directory)
        except OSError:
            pass
    # One line per source; read as well when a script joins the lines.
    tried = ";".join(f"\n  {failure.url}: {failure.reason}" for failure in failures)
    raise DatasetNotFoundError(
        f"MNIST file {name} is missing and could not be downloaded. Tried:"
        f"{tried or ' no source (none configured)'}.",
        name,
        mirror=True,
    )


def _read_or_download(dataset, download):
    """Find and read ``dataset``, downloading the default file if allowed."""
    name = os.fspath(dataset)
    try:
        path = find_dataset(name)
    except DatasetNotFoundError:
        if not (download and name == DEFAULT_DATASET):
            raise
        return download_mnist(os.path.join(_download_dir(), name))
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


def load_data(dataset=DEFAULT_DATASET, download=True):
    """Load MNIST as the tutorials expect it.

    Parameters
    ----------
    dataset : str or os.PathLike, optional
        A ``mnist.pkl.gz``-style file, a directory of the four MNIST IDX
        files, or a bare name looked up in ``$LENET_DATA_DIR``, the current
        directory and the project's ``data/`` folder.  Default
        ``'mnist.pkl.gz'``.
    download : bool, optional
        When the bare default name is not found anywhere, download it (see
        :func:`download_mnist`) into ``$LENET_DATA_DIR`` (if set) or
        ``data/``.  Other names are never downloaded.

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
    data = _read_or_download(dataset, download)
    return [shared_dataset(split) for split in data]
