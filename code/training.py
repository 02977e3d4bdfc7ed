"""What the three tutorials share: minibatches, one training loop, checkpoints.

The original tutorials repeated the same early-stopping SGD loop in
``logistic_sgd.py``, ``mlp.py`` and ``convolutional_mlp.py``.  Here it is
written once, in :func:`train_early_stopping`, and each tutorial calls it with
its own compiled functions and settings.  The loop keeps the original's
behaviour exactly (same order of operations, same printed lines, same
``patience`` arithmetic) and adds what long runs need:

* a checkpoint after every validation (and on Ctrl-C), written atomically,
  from which ``resume=True`` continues to exactly the result an uninterrupted
  run would have reached (see :func:`save_checkpoint`);
* a clear error, and an untouched last checkpoint, when the cost stops being
  finite;
* an elapsed-time / ETA line on a terminal.

It also holds the small pieces the three scripts share: picking a minibatch
through ``givens`` (:func:`minibatch`), counting minibatches, compiling the
train / validate / test functions, writing plots, and the command-line
plumbing (:func:`tutorial_parser`, :func:`run_main`).

Nothing here imports PyTensor at module level except through the functions
that build graphs, so ``import training`` stays cheap.
"""
import argparse
import dataclasses
import json
import math
import os
import shlex
import signal
import sys
import threading
import timeit
import zipfile

import numpy

from atomic_file import atomic_write

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "CheckpointMismatchError",
    "ConfigError",
    "LoopState",
    "ProgressLine",
    "TrainingDiverged",
    "TrainingInterrupted",
    "TrainingResult",
    "atomic_write",
    "compile_functions",
    "config_fingerprint",
    "count_minibatches",
    "dataset_name",
    "load_checkpoint",
    "minibatch",
    "minibatch_givens",
    "parse_max_batches",
    "run_main",
    "save_checkpoint",
    "train_early_stopping",
    "parse_tutorial_args",
    "tutorial_parser",
    "write_plots",
]

#: Version of the checkpoint layout written by :func:`save_checkpoint`.
CHECKPOINT_FORMAT = 1

#: ``--dry-run`` trains on this many minibatches and validates / tests on
#: this many (one epoch, hence exactly one validation).
DRY_RUN_BATCHES = (3, 2, 2)

#: Exit status after Ctrl-C (the shell's 128 + SIGINT).
EXIT_INTERRUPTED = 130


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

class ConfigError(ValueError):
    """A setting cannot work (e.g. a batch larger than the data set)."""


class CheckpointError(ValueError):
    """A checkpoint or saved-model file is missing, unreadable or corrupt."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint was written for another model or configuration."""


class TrainingDiverged(FloatingPointError):
    """The training cost (or a parameter) became NaN or infinite."""


class TrainingInterrupted(Exception):
    """Training stopped on Ctrl-C after saving a checkpoint.

    Attributes
    ----------
    checkpoint : str
        Where the checkpoint was written.
    iterations : int
        How many minibatches had been trained when it was written.
    """

    def __init__(self, checkpoint, iterations):
        self.checkpoint = checkpoint
        self.iterations = iterations
        super().__init__(
            f"interrupted after {iterations} minibatches; checkpoint saved to "
            f"{checkpoint}; run again with resume=True to continue"
        )


# ---------------------------------------------------------------------------
# Minibatches
# ---------------------------------------------------------------------------

def minibatch(data, index, batch_size, n_batches):
    """Select minibatch ``index`` of ``data`` symbolically.

    Returns the same rows as the original tutorial's
    ``data[index * batch_size:(index + 1) * batch_size]`` for every valid
    ``index``, but is written as "reshape the first ``n_batches *
    batch_size`` rows into ``(n_batches, batch_size, ...)`` and take row
    ``index``".

    Why: the slice form has bounds that depend on the symbolic ``index``.
    PyTensor's JAX backend traces ``index``, and JAX cannot build a slice
    whose size is only known at run time, so the original graph fails to
    compile there.  Indexing one axis of a fixed-shape array is a
    ``dynamic_slice`` in JAX, while on the C and Numba backends the reshape
    and the indexing are views, so no data is copied.  The constant shape of
    the reshape also gives the minibatch a static length, which JAX needs
    for ``arange(y.shape[0])`` in the negative log-likelihood.  (A
    consequence: ``n_batches`` is a constant of the compiled graph.)

    Parameters
    ----------
    data : pytensor.tensor.TensorVariable
        A shared data set (or an expression of one, such as the int32 cast of
        the labels), with examples along axis 0.
    index : pytensor.tensor.TensorVariable
        Integer scalar, the minibatch number.
    batch_size : int
        Examples per minibatch.
    n_batches : int
        How many whole minibatches of ``data`` are used; rows past
        ``n_batches * batch_size`` are never seen, as in the original.

    Returns
    -------
    pytensor.tensor.TensorVariable
        ``batch_size`` rows of ``data``.
    """
    used = data[: n_batches * batch_size]
    if data.ndim == 1:
        shape = (n_batches, batch_size)
    elif data.ndim == 2:
        shape = (n_batches, batch_size, -1)
    else:
        shape = (n_batches, batch_size) + tuple(data.shape[i] for i in range(1, data.ndim))
    return used.reshape(shape)[index]


def minibatch_givens(x, y, data, index, batch_size, n_batches):
    """The ``givens`` mapping that feeds minibatch ``index`` of ``data``.

    Parameters
    ----------
    x, y : pytensor.tensor.TensorVariable
        The symbolic inputs of the model (images, labels).
    data : tuple
        ``(data_x, data_y)`` as returned by ``load_data`` for one split.
    index, batch_size, n_batches
        As for :func:`minibatch`.

    Returns
    -------
    dict
        ``{x: minibatch of data_x, y: minibatch of data_y}``.
    """
    data_x, data_y = data
    return {
        x: minibatch(data_x, index, batch_size, n_batches),
        y: minibatch(data_y, index, batch_size, n_batches),
    }


def parse_max_batches(value):
    """Normalise a minibatch limit to ``(train, valid, test)``.

    Parameters
    ----------
    value : None, int, str or sequence
        ``None`` (no limit), one int for all three sets, three ints (or
        ``None`` entries), or a string ``"N"`` / ``"N,V,T"``.

    Returns
    -------
    tuple
        Three ints or ``None``.

    Raises
    ------
    ConfigError
        If a limit is not a positive integer.
    """
    if value is None:
        return (None, None, None)
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        try:
            value = [int(p) if p else None for p in parts]
        except ValueError:
            raise ConfigError(
                f"max batches must be N or N,V,T with positive integers, got {value!r}"
            ) from None
    if isinstance(value, (int, numpy.integer)):
        value = [int(value)] * 3
    value = list(value)
    if len(value) == 1:
        value = value * 3
    if len(value) != 3:
        raise ConfigError(f"max batches takes 1 or 3 values, got {len(value)}")
    for v in value:
        if v is not None and (not isinstance(v, (int, numpy.integer)) or v < 1):
            raise ConfigError(f"max batches must be positive integers, got {v!r}")
    return tuple(None if v is None else int(v) for v in value)


def count_minibatches(datasets, batch_size, max_batches=None):
    """Count the whole minibatches in each split, as the original did.

    Parameters
    ----------
    datasets : list
        ``[(train_x, train_y), (valid_x, valid_y), (test_x, test_y)]``.
    batch_size : int
        Examples per minibatch.
    max_batches : None, int or tuple, optional
        Use at most this many minibatches of each split (see
        :func:`parse_max_batches`); a way to run on a subset (tests,
        ``--dry-run``).

    Returns
    -------
    tuple of int
        ``(n_train_batches, n_valid_batches, n_test_batches)``.

    Raises
    ------
    ConfigError
        If ``batch_size`` is not positive or a split has no whole minibatch.
    """
    if not isinstance(batch_size, (int, numpy.integer)) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    counts = []
    for name, (data_x, _), limit in zip(
        ("training", "validation", "test"), datasets, parse_max_batches(max_batches)
    ):
        n_rows = data_x.get_value(borrow=True).shape[0]
        n = n_rows // batch_size
        if n < 1:
            raise ConfigError(
                f"batch_size {batch_size} is larger than the {name} set ({n_rows} examples)"
            )
        counts.append(n if limit is None else min(n, limit))
    return tuple(counts)


def compile_functions(index, x, y, cost, errors, updates, datasets, batch_size, n_batches):
    """Compile the tutorials' ``test_model``, ``validate_model``, ``train_model``.

    Each takes a minibatch number; the data stays in the shared variables and
    the minibatch reaches the graph through ``givens`` (:func:`minibatch`).

    Parameters
    ----------
    index : pytensor.tensor.TensorVariable
        The integer scalar input.
    x, y : pytensor.tensor.TensorVariable
        The model's symbolic images and labels.
    cost : pytensor.tensor.TensorVariable
        What ``train_model`` returns (and minimises through ``updates``).
    errors : pytensor.tensor.TensorVariable
        The zero-one loss that ``validate_model`` and ``test_model`` return.
    updates : list of (shared variable, expression)
        The SGD step.
    datasets : list
        The three splits from ``load_data``.
    batch_size : int
        Examples per minibatch.
    n_batches : tuple of int
        ``(n_train_batches, n_valid_batches, n_test_batches)``.

    Returns
    -------
    tuple
        ``(train_model, validate_model, test_model)``.
    """
    import pytensor

    exact_float_math()
    keep_freed_memory()
    (train, valid, test), (n_train, n_valid, n_test) = datasets, n_batches
    # start-snippet-1
    # Compiled in the original's order: test, validate, train.
    test_model = pytensor.function(
        [index], errors, givens=minibatch_givens(x, y, test, index, batch_size, n_test)
    )
    validate_model = pytensor.function(
        [index], errors, givens=minibatch_givens(x, y, valid, index, batch_size, n_valid)
    )
    train_model = pytensor.function(
        [index],
        cost,
        updates=updates,
        givens=minibatch_givens(x, y, train, index, batch_size, n_train),
    )
    # end-snippet-1
    if uses_jax(train_model):
        keep_data_on_device(datasets)
    return train_model, validate_model, test_model


def exact_float_math():
    """Compile without Numba's fastmath, unless PYTENSOR_FLAGS names it.

    Why: PyTensor's Numba backend lets LLVM reorder float arithmetic by
    default. With it, the default float32 LeNet printed a validation error of
    6.19% after epoch 2 instead of the original Theano's 6.18%; without it the
    first three epochs print Theano's numbers exactly (9.23%, 6.18%, 4.64%),
    and a training step was faster here too (218 ms against 246 ms, 1 thread).
    """
    import pytensor

    if "numba__fastmath" not in os.environ.get("PYTENSOR_FLAGS", ""):
        pytensor.config.numba__fastmath = False


# glibc's mallopt parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory():
    """Let glibc's malloc keep freed memory for the next minibatch.

    Why: a training step allocates and frees the same large arrays every
    call (LeNet's first layer makes several of 23 MB). By default glibc hands
    arrays of a few MB and up back to the kernel when they are freed, and
    the next call page-faults the fresh memory in again: about 1 ms per 2 MB
    here, 23 ms of a 208 ms step (1 thread). Serving every allocation from
    the heap and never trimming it made the step 185 ms; the process keeps
    its peak memory, as a training run does anyway. Does nothing off glibc.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    # glibc caps the mmap threshold at 32 MiB on 64-bit; larger arrays
    # (the training set) are allocated once anyway
    mmap_ok = mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)
    trim_ok = mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    return bool(mmap_ok and trim_ok)


def uses_jax(function):
    """Whether a compiled PyTensor function runs through the JAX backend."""
    from pytensor.link.jax.linker import JAXLinker

    return isinstance(function.maker.linker, JAXLinker)


def keep_data_on_device(datasets):
    """Hold the data sets' shared values as JAX device arrays.

    Why: PyTensor's JAX backend passes each shared variable's stored value to
    the jitted function on every call. A numpy array is copied host-to-device
    every time (the whole training set per minibatch: 157 MB in float32);
    a device array is used in place. Measured on the CPU with the default
    LeNet: 273 ms -> 187 ms per training call. The storage is set directly
    because ``set_value`` would turn the array back into numpy.
    """
    import jax

    for data_x, data_y in datasets:
        # the labels are int32 casts of a floatX shared variable
        for shared in (data_x, data_y.owner.inputs[0] if data_y.owner else data_y):
            storage = shared.container.storage
            storage[0] = jax.device_put(storage[0])


# ---------------------------------------------------------------------------
# Atomic files and checkpoints
# ---------------------------------------------------------------------------

def check_output_path(path, what="checkpoint"):
    """Fail early, before any training, if ``path`` cannot be written.

    Creates the parent folder if needed.

    Raises
    ------
    CheckpointError
        If ``path`` is a folder or its folder cannot be created or written.
    """
    path = os.path.abspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"{what} path {path} is a directory; give a file name")
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot create the folder for the {what} {path}: {exc}") from exc
    if not os.access(directory, os.W_OK):
        raise CheckpointError(f"cannot write the {what} {path}: folder {directory} is not writable")


def dataset_name(dataset):
    """The name a data set is recorded under in a fingerprint (its base name)."""
    return os.path.basename(os.path.normpath(os.fspath(dataset)))


def config_fingerprint(tutorial, params, **settings):
    """Describe a model and its training setup, to tie a checkpoint to it.

    Parameters
    ----------
    tutorial : str
        Which tutorial (``'convolutional_mlp'`` ...).
    params : list of shared variables
        The trained parameters; their shapes are recorded.
    **settings
        Anything else that must match for a resume to be exact (learning
        rate, batch size, dataset name, minibatch counts ...).  Must be
        JSON-serialisable.

    Returns
    -------
    dict
        JSON-normalised (tuples become lists) so it compares equal to the
        copy read back from a checkpoint.
    """
    import pytensor

    fingerprint = {
        "tutorial": tutorial,
        "floatX": pytensor.config.floatX,
        "param_shapes": [list(p.get_value(borrow=True).shape) for p in params],
    }
    fingerprint.update(settings)
    return json.loads(json.dumps(fingerprint))


@dataclasses.dataclass
class LoopState:
    """Everything the early-stopping loop carries from one minibatch to the next.

    Together with the parameter values this is the whole state of a run, so
    a run restored from it continues exactly as if it had never stopped.
    """

    #: The patience in minibatches (grows when validation improves enough).
    patience: int
    #: Epoch (1-based) of the last minibatch trained; 0 before training.
    epoch: int = 0
    #: Minibatches trained so far (the next iteration number).
    next_iter: int = 0
    best_validation_loss: float = math.inf
    #: Iteration (0-based) of the best validation so far.
    best_iter: int = 0
    #: Test error of the best model so far.
    test_score: float = 0.0
    #: True once the patience ran out.
    done_looping: bool = False
    #: Training seconds summed over all sessions of this run.
    elapsed: float = 0.0
    #: One dict per validation: epoch, iteration (1-based), validation_error
    #: and test_error (of the best model so far), as fractions.
    history: list = dataclasses.field(default_factory=list)

    def to_json(self):
        """Return the state as a JSON-safe dict (infinity becomes None)."""
        data = dataclasses.asdict(self)
        if math.isinf(data["best_validation_loss"]):
            data["best_validation_loss"] = None
        return data

    @classmethod
    def from_json(cls, data):
        """Rebuild a state from :meth:`to_json` output, checking the types.

        Raises
        ------
        CheckpointError
            If a field is missing or has the wrong type.
        """
        if not isinstance(data, dict):
            raise CheckpointError("the checkpoint's loop state is not a mapping")
        ints = ("patience", "epoch", "next_iter", "best_iter")
        floats = ("test_score", "elapsed")
        try:
            state = cls(
                patience=data["patience"],
                epoch=data["epoch"],
                next_iter=data["next_iter"],
                best_validation_loss=(
                    math.inf
                    if data["best_validation_loss"] is None
                    else data["best_validation_loss"]
                ),
                best_iter=data["best_iter"],
                test_score=data["test_score"],
                done_looping=data["done_looping"],
                elapsed=data["elapsed"],
                history=data["history"],
            )
        except (KeyError, TypeError) as exc:
            raise CheckpointError(f"the checkpoint's loop state lacks {exc}") from None
        bad = [k for k in ints if type(getattr(state, k)) is not int or getattr(state, k) < 0]
        bad += [
            k
            for k in floats + ("best_validation_loss",)
            if type(getattr(state, k)) not in (int, float)
        ]
        if type(state.done_looping) is not bool:
            bad.append("done_looping")
        if not isinstance(state.history, list) or not all(
            isinstance(h, dict) for h in state.history
        ):
            bad.append("history")
        if bad:
            raise CheckpointError(
                "the checkpoint's loop state has invalid " + ", ".join(bad)
            )
        for k in floats + ("best_validation_loss",):
            setattr(state, k, float(getattr(state, k)))
        return state


def _array_names(params, names):
    """The archive names of ``params``: ``names`` checked, or param_0, param_1 ..."""
    if names is None:
        return [f"param_{i}" for i in range(len(params))]
    names = list(names)
    if (
        len(names) != len(params)
        or len(set(names)) != len(names)
        or any(n == "meta" or n.startswith("best_") for n in names)
    ):
        raise ValueError(
            f"need {len(params)} distinct parameter names, not 'meta' nor 'best_*', got {names}"
        )
    return names


def save_checkpoint(path, params, best_params, state, fingerprint, names=None):
    """Write a checkpoint atomically (see :func:`atomic_write`).

    Format: one ``.npz`` archive (numpy's zip of ``.npy`` files, readable
    with ``numpy.load(path, allow_pickle=False)``; nothing is pickled)
    holding

    * one array per parameter, named by ``names`` (e.g. ``layer0_W``; by
      default ``param_0``, ``param_1`` ...): the current values;
    * ``best_<name>``: the parameters of the best model so far (absent
      before the first validation);
    * ``meta``: a 0-d unicode array holding a JSON document with the format
      version, the configuration ``fingerprint`` and the loop ``state``
      (epoch, iteration, patience, best validation loss and iteration, test
      score, elapsed time, error history).

    Arrays and scalars live in the same file, so they can never disagree.
    Being a plain ``.npz`` of named arrays, a checkpoint can also be read by
    other tools (``python code/utils.py plot-filters CHECKPOINT``).

    Parameters
    ----------
    path : str
        The checkpoint file.
    params : list of shared variables
        Model parameters.
    best_params : list of numpy.ndarray or None
        Copies of the best parameters so far.
    state : LoopState
        The loop state after the last trained minibatch.
    fingerprint : dict
        From :func:`config_fingerprint`.
    names : list of str, optional
        Archive names of the parameters, in the order of ``params``.
    """
    names = _array_names(params, names)
    arrays = {name: p.get_value(borrow=True) for name, p in zip(names, params)}
    if best_params is not None:
        arrays.update({f"best_{name}": value for name, value in zip(names, best_params)})
    meta = {
        "format": CHECKPOINT_FORMAT,
        "fingerprint": fingerprint,
        "state": state.to_json(),
    }
    arrays["meta"] = numpy.array(json.dumps(meta, allow_nan=False))
    atomic_write(path, lambda stream: numpy.savez(stream, **arrays))


def _describe_mismatch(saved, current):
    """Name the settings that differ between two fingerprints."""
    if not isinstance(saved, dict):
        return "its configuration record is unreadable"
    diffs = []
    for key in sorted(set(saved) | set(current)):
        if saved.get(key) != current.get(key):
            diffs.append(f"{key} {saved.get(key)!r} (checkpoint) vs {current.get(key)!r} (now)")
    return "; ".join(diffs)


def load_checkpoint(path, params, fingerprint, names=None):
    """Read a checkpoint written by :func:`save_checkpoint` and check it fits.

    On success the parameter values are set on ``params``; on any error
    nothing is changed.

    Parameters
    ----------
    path : str
        The checkpoint file.
    params : list of shared variables
        The model's parameters, in the order they were saved.
    fingerprint : dict
        The current configuration, from :func:`config_fingerprint`.
    names : list of str, optional
        Archive names of the parameters, as given to :func:`save_checkpoint`.

    Returns
    -------
    tuple
        ``(state, best_params)``: the :class:`LoopState` and the list of
        best-parameter arrays (or ``None``).

    Raises
    ------
    CheckpointError
        If the file is missing, not a checkpoint, truncated or corrupt.
    CheckpointMismatchError
        If it was written for another model shape or configuration.
    """
    if not os.path.exists(path):
        raise CheckpointError(f"no checkpoint to resume from at {path}")
    try:
        archive = numpy.load(path, allow_pickle=False)
        if not isinstance(archive, numpy.lib.npyio.NpzFile):
            raise CheckpointError(f"{path} is a single array, not a checkpoint archive")
        with archive:
            if "meta" not in archive.files:
                raise CheckpointError(
                    f"{path} is not a checkpoint of these tutorials (no 'meta' entry)"
                )
            meta = json.loads(str(archive["meta"][()]))
            arrays = {name: archive[name] for name in archive.files if name != "meta"}
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        # numpy refuses pickled content with ValueError (allow_pickle=False);
        # a truncated or damaged zip gives BadZipFile, OSError or EOFError.
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} has checkpoint format {meta.get('format') if isinstance(meta, dict) else None!r}, "
            f"this code reads format {CHECKPOINT_FORMAT}"
        )
    saved = meta.get("fingerprint")
    if saved != fingerprint:
        raise CheckpointMismatchError(
            f"{path} was written for a different model or configuration "
            f"({_describe_mismatch(saved, fingerprint)}); start afresh without "
            "--resume or give another --checkpoint"
        )
    state = LoopState.from_json(meta.get("state"))

    names = _array_names(params, names)

    def take(prefix):
        values = []
        for name, p in zip(names, params):
            name = prefix + name
            if name not in arrays:
                raise CheckpointError(f"{path} lacks the array {name!r}")
            current = p.get_value(borrow=True)
            value = arrays[name]
            if value.shape != current.shape or value.dtype != current.dtype:
                raise CheckpointMismatchError(
                    f"{path}: array {name!r} is {value.dtype}{list(value.shape)}, the model "
                    f"needs {current.dtype}{list(current.shape)}"
                )
            values.append(value)
        return values

    values = take("")
    best_params = take("best_") if "best_" + names[0] in arrays else None
    for p, value in zip(params, values):
        p.set_value(value)
    return state, best_params


# ---------------------------------------------------------------------------
# Terminal progress
# ---------------------------------------------------------------------------

def _format_seconds(seconds):
    """``3725`` -> ``'1h02m05s'``; short forms below an hour / a minute."""
    seconds = int(round(max(seconds, 0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class ProgressLine:
    """A one-line progress display redrawn with ``'\\r'`` on stderr.

    Use :meth:`for_terminal`, which returns ``None`` unless stdout is a
    terminal, so logs and pipes never see it.

    Parameters
    ----------
    stream : file object
        Where to draw (stderr).
    interval : float
        Minimum seconds between redraws.
    """

    def __init__(self, stream, interval=0.5):
        self.stream = stream
        self.interval = interval
        self._width = 0
        self._last = -math.inf
        self._start = None

    @classmethod
    def for_terminal(cls):
        """A progress line on stderr if stdout is a terminal, else ``None``."""
        try:
            is_tty = sys.stdout.isatty()
        except (AttributeError, ValueError):
            is_tty = False
        return cls(sys.stderr) if is_tty else None

    def start(self, done):
        """Remember the time and the minibatch count the ETA is measured from."""
        self._start = (timeit.default_timer(), done)

    def update(self, epoch, n_epochs, minibatch, n_batches, done, limit, elapsed):
        """Redraw (at most every ``interval`` seconds).

        Parameters
        ----------
        epoch, n_epochs : int
            Current epoch and the maximum.
        minibatch, n_batches : int
            Minibatches done in this epoch, and per epoch.
        done : int
            Minibatches trained in the whole run.
        limit : int
            Where the run ends at the latest with the current patience.
        elapsed : float
            Training seconds so far (all sessions).
        """
        now = timeit.default_timer()
        if now - self._last < self.interval or self._start is None:
            return
        self._last = now
        t0, done0 = self._start
        rate = (now - t0) / max(done - done0, 1)
        text = (
            f"epoch {epoch}/{n_epochs}, minibatch {minibatch}/{n_batches}, "
            f"elapsed {_format_seconds(elapsed)}, epoch ETA "
            f"{_format_seconds((n_batches - minibatch) * rate)}, run ETA "
            f"{_format_seconds(max(limit - done, 0) * rate)} (current patience)"
        )
        self._width = max(self._width, len(text))
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()

    def clear(self):
        """Erase the line (before anything else is printed)."""
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


# ---------------------------------------------------------------------------
# Ctrl-C
# ---------------------------------------------------------------------------

class _InterruptGuard:
    """Turn the first SIGINT into a request to checkpoint and stop.

    The first Ctrl-C only sets :attr:`requested` (the loop saves at the end
    of the current minibatch); it also restores the operating system's
    default action, so a second Ctrl-C ends the process at once.  Only
    active in the main thread and when ``enabled``.
    """

    def __init__(self, enabled, progress):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.progress = progress
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if self.progress is not None:
            self.progress.clear()
        print(
            "\nCtrl-C: saving a checkpoint after this minibatch "
            "(press Ctrl-C again to quit at once without saving)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self):
        if self.enabled:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc_info):
        if self.enabled:
            signal.signal(signal.SIGINT, self._previous)
        return False


# ---------------------------------------------------------------------------
# The training loop
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class TrainingResult:
    """What :func:`train_early_stopping` returns."""

    best_validation_loss: float
    #: 0-based iteration of the best validation (the tutorials print it + 1).
    best_iter: int
    test_score: float
    #: The epoch the loop ended in.
    epoch: int
    #: Minibatches trained in total.
    iterations: int
    #: Training seconds, summed over resumed sessions.
    elapsed: float
    history: list
    #: Final parameter values (copies), in the order of ``params``.
    params: list
    #: Parameters of the best validated model (copies), or None.
    best_params: list


def _all_finite(params):
    return all(numpy.isfinite(p.get_value(borrow=True)).all() for p in params)


def train_early_stopping(
    train_model,
    validate_model,
    test_model,
    params,
    n_train_batches,
    n_valid_batches,
    n_test_batches,
    n_epochs,
    patience=10000,
    patience_increase=2,
    improvement_threshold=0.995,
    report_every=None,
    on_new_best=None,
    on_epoch=None,
    checkpoint=None,
    resume=False,
    fingerprint=None,
    param_names=None,
    progress=None,
):
    """Minibatch SGD with early stopping, as in the original tutorials.

    Each epoch trains on every minibatch in order.  Every
    ``validation_frequency = min(n_train_batches, patience // 2)``
    minibatches the model is validated; a new best validation error is
    followed by a test-set evaluation, and a large enough improvement
    (below ``improvement_threshold`` times the previous best) extends the
    patience to ``iteration * patience_increase``.  Training stops after
    ``n_epochs`` epochs or once the iteration number reaches the patience.
    The printed lines are the original's.

    Checkpoints: when ``checkpoint`` is a path, the full state is written
    there (atomically) after every validation and when Ctrl-C is pressed;
    with ``resume=True`` the run continues from it and ends exactly where an
    uninterrupted run would have (same parameters bit for bit, same printed
    results).  A kill between two validations loses at most the minibatches
    trained since the last one; they are redone identically.

    Parameters
    ----------
    train_model, validate_model, test_model : callable
        Compiled functions of a minibatch number.  ``train_model`` returns
        the cost and updates ``params``; the others return the zero-one loss.
    params : list of shared variables
        The parameters ``train_model`` updates (saved / restored).
    n_train_batches, n_valid_batches, n_test_batches : int
        Minibatches per split.
    n_epochs : int
        Maximum number of epochs.
    patience, patience_increase, improvement_threshold
        Early-stopping settings (the originals: 10000, 2, 0.995; the logistic
        regression tutorial uses ``patience=5000``).
    report_every : int, optional
        Print ``training @ iter = N`` every this many iterations (the LeNet
        tutorial uses 100); ``None`` prints nothing.
    on_new_best : callable, optional
        Called as ``on_new_best(state)`` after each new best model has been
        tested (the logistic tutorial saves its model there).
    on_epoch : callable, optional
        Called as ``on_epoch(epoch)`` (1-based) before the first minibatch
        that an epoch trains, also when a resumed run continues in the middle
        of one; a learning-rate schedule sets its rate there.  What it sets
        must depend on ``epoch`` alone, so that a resumed run is exact.
    checkpoint : str, optional
        Checkpoint file; ``None`` writes none (and leaves Ctrl-C alone).
    resume : bool, optional
        Continue from ``checkpoint`` instead of starting afresh.
    fingerprint : dict, optional
        The configuration (:func:`config_fingerprint`); a checkpoint written
        for another one is refused.
    param_names : list of str, optional
        Names of the parameters' arrays in the checkpoint (``layer0_W`` ...).
    progress : ProgressLine, optional
        Elapsed time / ETA display (see :meth:`ProgressLine.for_terminal`).

    Returns
    -------
    TrainingResult

    Raises
    ------
    TrainingDiverged
        If the cost or a parameter becomes NaN or infinite; the last
        checkpoint (from before the divergence) is left as it was.
    TrainingInterrupted
        After Ctrl-C, once the checkpoint has been saved.
    CheckpointError, CheckpointMismatchError
        If ``resume`` is asked for and the checkpoint is unusable.
    """
    if checkpoint is not None:
        checkpoint = os.path.abspath(checkpoint)
    fingerprint = {} if fingerprint is None else fingerprint

    state = LoopState(patience=patience)
    best_params = None
    if resume:
        if checkpoint is None:
            raise ConfigError("resuming needs a checkpoint path")
        state, best_params = load_checkpoint(checkpoint, params, fingerprint, param_names)
        print(
            f"... resuming from {checkpoint} after {state.next_iter} minibatches "
            f"(epoch {state.epoch})",
            file=sys.stderr,
            flush=True,
        )
    elif checkpoint is not None:
        check_output_path(checkpoint)
        if os.path.exists(checkpoint):
            print(
                f"note: {checkpoint} exists and will be replaced at the first "
                "validation (use --resume to continue it instead)",
                file=sys.stderr,
                flush=True,
            )

    def say(line):
        if progress is not None:
            progress.clear()
        print(line, flush=True)

    def save():
        if not _all_finite(params):
            raise TrainingDiverged(
                f"a parameter became NaN or infinite by iteration {state.next_iter - 1}; "
                f"{_kept(checkpoint)}"
            )
        state.elapsed = elapsed()
        save_checkpoint(checkpoint, params, best_params, state, fingerprint, param_names)

    # go through this many minibatches before checking the network on the
    # validation set (every epoch, for the tutorials' settings)
    validation_frequency = min(n_train_batches, patience // 2)
    if validation_frequency < 1:
        raise ConfigError(f"patience {patience} is too small to ever validate")

    session_start = timeit.default_timer()
    elapsed_before = state.elapsed

    def elapsed():
        return elapsed_before + timeit.default_timer() - session_start

    if progress is not None:
        progress.start(state.next_iter)

    # Where to (re)start: after `epoch` whole epochs, at `first_minibatch`.
    if state.done_looping:
        epoch, first_minibatch = state.epoch, 0
    else:
        epoch, first_minibatch = divmod(state.next_iter, n_train_batches)

    with _InterruptGuard(checkpoint is not None, progress) as interrupt:
        while (epoch < n_epochs) and (not state.done_looping):
            epoch = epoch + 1
            if on_epoch is not None:
                on_epoch(epoch)
            for minibatch_index in range(first_minibatch, n_train_batches):
                # iteration number
                iter = (epoch - 1) * n_train_batches + minibatch_index

                if report_every and iter % report_every == 0:
                    say(f"training @ iter =  {iter}")
                cost_ij = train_model(minibatch_index)
                if not numpy.isfinite(cost_ij):
                    raise TrainingDiverged(
                        f"the training cost is {float(cost_ij)} at iteration {iter} "
                        f"(epoch {epoch}, minibatch {minibatch_index + 1}/{n_train_batches}); "
                        f"stopping. {_kept(checkpoint)}"
                    )
                state.epoch, state.next_iter = epoch, iter + 1

                validated = (iter + 1) % validation_frequency == 0
                if validated:
                    # compute zero-one loss on validation set
                    validation_losses = [validate_model(i) for i in range(n_valid_batches)]
                    this_validation_loss = numpy.mean(validation_losses)
                    say(
                        "epoch %i, minibatch %i/%i, validation error %f %%"
                        % (epoch, minibatch_index + 1, n_train_batches,
                           this_validation_loss * 100.0)
                    )

                    # if we got the best validation score until now
                    if this_validation_loss < state.best_validation_loss:
                        # improve patience if loss improvement is good enough
                        if this_validation_loss < (
                            state.best_validation_loss * improvement_threshold
                        ):
                            state.patience = max(state.patience, iter * patience_increase)

                        # save best validation score and iteration number
                        state.best_validation_loss = float(this_validation_loss)
                        state.best_iter = iter
                        best_params = [p.get_value(borrow=False) for p in params]

                        # test it on the test set
                        test_losses = [test_model(i) for i in range(n_test_batches)]
                        state.test_score = float(numpy.mean(test_losses))
                        say(
                            "     epoch %i, minibatch %i/%i, test error of best model %f %%"
                            % (epoch, minibatch_index + 1, n_train_batches,
                               state.test_score * 100.0)
                        )
                        if on_new_best is not None:
                            on_new_best(state)

                    state.history.append({
                        "epoch": epoch,
                        "iteration": iter + 1,
                        "validation_error": float(this_validation_loss),
                        "test_error": state.test_score,
                    })

                if state.patience <= iter:
                    state.done_looping = True

                if checkpoint is not None and (validated or interrupt.requested):
                    save()
                if interrupt.requested:
                    if progress is not None:
                        progress.clear()
                    raise TrainingInterrupted(checkpoint, state.next_iter)
                if state.done_looping:
                    break
                if progress is not None:
                    progress.update(
                        epoch, n_epochs, minibatch_index + 1, n_train_batches,
                        state.next_iter,
                        min(n_epochs * n_train_batches, state.patience + 1),
                        elapsed(),
                    )
            first_minibatch = 0

        if progress is not None:
            progress.clear()
        # A last checkpoint holds the final state, so resuming a finished run
        # just reports its results (and a longer n_epochs extends it).
        if checkpoint is not None:
            save()
    state.elapsed = elapsed()
    return TrainingResult(
        best_validation_loss=state.best_validation_loss,
        best_iter=state.best_iter,
        test_score=state.test_score,
        epoch=epoch,
        iterations=state.next_iter,
        elapsed=state.elapsed,
        history=state.history,
        params=[p.get_value(borrow=False) for p in params],
        best_params=best_params,
    )


def _kept(checkpoint):
    """The sentence about the last good checkpoint, for divergence errors."""
    if checkpoint is None:
        return "No checkpoint was being written."
    if os.path.exists(checkpoint):
        return f"The last good checkpoint, {checkpoint}, was kept."
    return "No checkpoint had been written yet."


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------

def report_result(result, script, one_line=False):
    """Print the original's closing lines for ``result``.

    "Optimization complete." and the best validation score, its iteration
    and the test score (on one line for the MLP tutorial, on two for LeNet,
    as the originals printed them), then the run time on stderr, named after
    ``script`` (a file path).
    """
    best = (
        "Best validation score of %f %% obtained at iteration %i, "
        "with test performance %f %%"
        % (result.best_validation_loss * 100.0, result.best_iter + 1,
           result.test_score * 100.0)
    )
    print("Optimization complete." + (" " if one_line else "\n") + best)
    print(
        "The code for file " + os.path.basename(script)
        + " ran for %.2fm" % (result.elapsed / 60.0),
        file=sys.stderr,
    )


def write_plots(plots_dir, tutorial, history, filters):
    """Write the error-history and filter PNGs through ``utils``, if possible.

    Plotting is optional decoration: any failure (no matplotlib, no
    ``utils``, a bad backend ...) is reported on stderr and otherwise
    ignored, so it can never lose a training result.

    Parameters
    ----------
    plots_dir : str or None
        Folder for ``<tutorial>_errors.png`` and ``<tutorial>_filters.png``;
        ``None`` or ``''`` writes nothing.
    tutorial : str
        File name prefix.
    history : list of dict
        ``TrainingResult.history``.
    filters : numpy.ndarray or None
        First-layer weights: ``(n, 1, h, w)`` filters or an ``(784, n)``
        matrix.

    Returns
    -------
    list of str
        The files written.
    """
    if not plots_dir:
        return []
    written = []
    jobs = [
        ("error history", f"{tutorial}_errors.png",
         lambda utils, path: utils.plot_error_history(
             history, path, title=f"{tutorial}: error rates")),
    ]
    if filters is not None:
        jobs.append(
            ("filters", f"{tutorial}_filters.png",
             lambda utils, path: utils.plot_filters(filters, path)))
    for what, name, job in jobs:
        path = os.path.join(plots_dir, name)
        try:
            import utils

            os.makedirs(plots_dir, exist_ok=True)
            job(utils, path)
            written.append(path)
        except Exception as exc:  # plots must never lose a training result
            print(
                f"warning: could not write the {what} plot {path} "
                f"({type(exc).__name__}: {exc})",
                file=sys.stderr,
            )
    return written


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

class _OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are a single line on stderr."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def finite_float(minimum=None, strictly_positive=False):
    """argparse type factory: a finite float, optionally bounded below."""

    def convert(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if strictly_positive and value <= 0:
            raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {text!r}")
        return value

    return convert


def _max_batches_type(text):
    try:
        return parse_max_batches(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


EPILOG = """\
PyTensor settings come from the PYTENSOR_FLAGS environment variable, e.g.
PYTENSOR_FLAGS=floatX=float32 (the fast setting the tutorial was written for;
the default is float64). The data set is looked up as described for
mnist_io.load_data (a path, a bare name searched in $LENET_DATA_DIR, the
working folder and data/, or a folder of the four MNIST IDX files).

Checkpoints are .npz files (no pickle) written atomically after every
validation and on Ctrl-C; --resume continues from one and ends with exactly
the parameters and results of an uninterrupted run. Exit status: 0 done,
1 bad input (data, checkpoint, settings) or diverged training, 2 bad flags,
130 interrupted."""


def tutorial_parser(tutorial, description, learning_rate, n_epochs, batch_size):
    """An argument parser for a tutorial script, with the shared options.

    Adds ``--learning-rate``, ``--n-epochs``, ``--dataset`` and
    ``--batch-size`` (defaults as given: the tutorial function's).  The
    caller adds the tutorial's own options, then calls
    :func:`parse_tutorial_args`, which adds the checkpoint / output options
    and parses.

    Parameters
    ----------
    tutorial : str
        Script name without ``.py``.
    description : str
        The ``--help`` description.
    learning_rate, n_epochs, batch_size
        Defaults of the corresponding options.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = _OneLineErrorParser(
        prog=f"{tutorial}.py",
        description=description,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--learning-rate", type=finite_float(strictly_positive=True), default=learning_rate,
        help="SGD step size (default: %(default)s)")
    parser.add_argument(
        "--n-epochs", type=positive_int, default=n_epochs,
        help="maximum number of passes over the training set; early stopping "
        "may end sooner (default: %(default)s)")
    parser.add_argument(
        "--dataset", default="mnist.pkl.gz",
        help="mnist.pkl.gz-style file, bare file name, or folder of MNIST IDX files "
        "(default: %(default)s)")
    parser.add_argument(
        "--batch-size", type=positive_int, default=batch_size,
        help="examples per minibatch (default: %(default)s)")
    return parser


def parse_tutorial_args(parser, tutorial, argv):
    """Add the checkpoint and output options to ``parser``; parse ``argv``.

    The options are ``--checkpoint``, ``--resume``, ``--plots-dir``,
    ``--max-batches`` and ``--dry-run`` (resolved by :func:`output_options`).
    """
    group = parser.add_argument_group("checkpoints, output and quick runs")
    group.add_argument(
        "--checkpoint", metavar="PATH", default=None,
        help=f"checkpoint file written after every validation and on Ctrl-C "
        f"(default: {tutorial}_checkpoint.npz in the working folder; none with --dry-run "
        "unless given)")
    group.add_argument(
        "--resume", action="store_true",
        help="continue the run saved in --checkpoint (same settings required)")
    group.add_argument(
        "--plots-dir", metavar="DIR", default=None,
        help=f"folder for {tutorial}_errors.png and {tutorial}_filters.png, written "
        "at the end (default: the working folder; '' for no plots; none with --dry-run "
        "unless given)")
    group.add_argument(
        "--max-batches", metavar="N[,V,T]", type=_max_batches_type, default=None,
        help="use at most N training minibatches per epoch (and V validation, T test "
        "minibatches; one number limits all three): a quick run on a subset")
    group.add_argument(
        "--dry-run", action="store_true",
        help=f"quick check: one epoch of {DRY_RUN_BATCHES[0]} training minibatches, one "
        f"validation and test on {DRY_RUN_BATCHES[1]} minibatches each, nothing saved "
        "unless asked for")
    return parser.parse_args(argv)


def output_options(args, tutorial):
    """Resolve the common options into keyword arguments for a tutorial.

    Returns
    -------
    dict
        ``n_epochs``, ``checkpoint``, ``resume``, ``plots_dir`` and
        ``max_batches``, with the defaults of the command line (files in the
        working folder) and the limits of ``--dry-run`` applied.
    """
    checkpoint, plots_dir, max_batches = args.checkpoint, args.plots_dir, args.max_batches
    n_epochs = args.n_epochs
    if args.dry_run:
        n_epochs = 1
        if max_batches is None:
            max_batches = DRY_RUN_BATCHES
    else:
        if checkpoint is None:
            checkpoint = os.path.join(os.getcwd(), f"{tutorial}_checkpoint.npz")
        if plots_dir is None:
            plots_dir = os.getcwd()
    return dict(
        n_epochs=n_epochs,
        checkpoint=checkpoint or None,
        resume=args.resume,
        plots_dir=plots_dir or None,
        max_batches=max_batches,
    )


def resume_command(argv, checkpoint, script=None):
    """The shell command that resumes an interrupted run.

    Parameters
    ----------
    argv : list of str
        The script's arguments (without the program name).
    checkpoint : str
        The checkpoint written.
    script : str, optional
        How the script was invoked (default ``sys.argv[0]``).

    Returns
    -------
    str
        E.g. ``python code/convolutional_mlp.py --resume --checkpoint X``,
        with ``PYTENSOR_FLAGS=...`` in front when it is set (floatX must
        match for the resume to be accepted).
    """
    script = sys.argv[0] if script is None else script
    args = [a for a in argv if a != "--resume"]
    if not any(a == "--checkpoint" or a.startswith("--checkpoint=") for a in args):
        args += ["--checkpoint", checkpoint]
    command = shlex.join(["python", script] + args + ["--resume"])
    flags = os.environ.get("PYTENSOR_FLAGS")
    if flags:
        command = f"PYTENSOR_FLAGS={shlex.quote(flags)} {command}"
    return command


def run_main(run, argv, prog):
    """Run a tutorial for its script, turning known failures into one line.

    Parameters
    ----------
    run : callable
        Runs the tutorial (no arguments).
    argv : list of str
        The command-line arguments (for the resume hint).
    prog : str
        Prefix of error lines.

    Returns
    -------
    int
        The exit status: 0, 1 for bad input or divergence, 130 after Ctrl-C.
    """
    import mnist_io

    try:
        run()
    except TrainingInterrupted as exc:
        print(f"interrupted; resume with: {resume_command(argv, exc.checkpoint)}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing was saved", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (
        mnist_io.DatasetError,
        mnist_io.DatasetNotFoundError,
        CheckpointError,
        ConfigError,
        TrainingDiverged,
    ) as exc:
        if isinstance(exc, mnist_io.DatasetNotFoundError):
            exc = exc.command_line_message()  # "--dataset PATH", not "pass load_data ..."
        message = " ".join(str(exc).split())
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 1
    return 0
