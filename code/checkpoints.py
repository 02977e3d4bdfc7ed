"""Checkpoint files: the whole state of a run in one ``.npz``, nothing pickled.

:func:`save_checkpoint` writes the parameters, the best parameters so far
and the loop's state (as JSON) atomically; :func:`load_checkpoint` reads
them back only if they fit the model and configuration at hand
(:func:`config_fingerprint`). :func:`read_npz` is the project's one reader
of ``.npz`` files (checkpoints and saved models): it never unpickles, and
every problem becomes one :class:`errors.CheckpointError` line.
"""
import json
import os
import zipfile

import numpy

from atomic_file import atomic_write
from early_stopping import LoopState
from errors import CheckpointError, CheckpointMismatchError

__all__ = [
    "CHECKPOINT_FORMAT",
    "check_output_path",
    "check_outputs",
    "config_fingerprint",
    "dataset_name",
    "load_checkpoint",
    "read_npz",
    "refuse_to_replace",
    "save_checkpoint",
]

#: Version of the checkpoint layout written by :func:`save_checkpoint`.
CHECKPOINT_FORMAT = 1


def read_npz(path, what, required=()):
    """Read every array of a ``.npz`` archive, without unpickling anything.

    Parameters
    ----------
    path : str or os.PathLike
        The archive.
    what : str
        What the file should be, for the messages ("checkpoint", "saved
        model" ...).
    required : sequence of str
        Arrays it must hold.

    Returns
    -------
    dict
        ``{name: numpy.ndarray}``.

    Raises
    ------
    CheckpointError
        If the file is missing, not a ``.npz`` archive, truncated, holds
        pickled objects, or lacks a required array.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"no {what} at {path}")
    try:
        archive = numpy.load(path, allow_pickle=False)
        if not isinstance(archive, numpy.lib.npyio.NpzFile):
            raise CheckpointError(f"{path} is a single array, not a {what} (.npz archive)")
        with archive:
            missing = [name for name in required if name not in archive.files]
            if missing:
                raise CheckpointError(
                    f"{path} is not a {what} of these tutorials (no "
                    + ", ".join(repr(m) for m in missing) + " entry)"
                )
            return {name: archive[name] for name in archive.files}
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        # numpy refuses pickled content with ValueError (allow_pickle=False);
        # a truncated or damaged zip gives BadZipFile, OSError or EOFError.
        raise CheckpointError(
            f"{path} is not a readable {what} ({type(exc).__name__}: {exc})"
        ) from exc


def refuse_to_replace(path, advice):
    """Raise :class:`CheckpointError` if ``path`` exists: a run must not
    replace a file it was not asked to replace (a checkpoint holds hours of
    training). ``advice`` says what to do instead."""
    if os.path.exists(path):
        raise CheckpointError(
            f"{os.path.abspath(path)} exists, from an earlier run, and would be "
            f"replaced; {advice}"
        )


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
    check_output_folder(os.path.dirname(path), f"the {what} {path}")


def check_output_folder(folder, what):
    """Create ``folder`` if needed; raise :class:`CheckpointError` naming
    ``what`` goes there unless it can be written."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot create the folder {folder} for {what}: {exc}") from None
    if not os.access(folder, os.W_OK):
        raise CheckpointError(f"cannot write {what}: the folder {folder} is not writable")


def dataset_name(dataset):
    """The name a data set is recorded under in a fingerprint (its base name)."""
    return os.path.basename(os.path.normpath(os.fspath(dataset)))


def config_fingerprint(tutorial, params=None, **settings):
    """Describe a model and its training setup, to tie a checkpoint to it.

    Parameters
    ----------
    tutorial : str
        Which tutorial (``'convolutional_mlp'`` ...).
    params : list of shared variables, optional
        The trained parameters; their shapes are recorded. Without them the
        fingerprint holds the settings only (see :func:`check_outputs`).
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

    fingerprint = {"tutorial": tutorial, "floatX": pytensor.config.floatX}
    if params is not None:
        fingerprint["param_shapes"] = [list(p.get_value(borrow=True).shape) for p in params]
    fingerprint.update(settings)
    return json.loads(json.dumps(fingerprint))


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
    state : early_stopping.LoopState
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


def _read_meta(path, meta):
    try:
        meta = json.loads(str(meta[()]))
    except (ValueError, IndexError) as exc:
        raise CheckpointError(f"{path} has an unreadable 'meta' entry ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} has checkpoint format "
            f"{meta.get('format') if isinstance(meta, dict) else None!r}, "
            f"this code reads format {CHECKPOINT_FORMAT}"
        )
    return meta


def _check_fingerprint(path, saved, fingerprint, keys=None):
    """Raise :class:`CheckpointMismatchError` unless ``saved`` equals
    ``fingerprint`` (on ``keys`` only, when given)."""
    if keys is not None and isinstance(saved, dict):
        saved = {key: saved.get(key) for key in keys}
        fingerprint = {key: fingerprint.get(key) for key in keys}
    if saved != fingerprint:
        raise CheckpointMismatchError(
            f"{path} was written for a different model or configuration "
            f"({_describe_mismatch(saved, fingerprint)}); start afresh without "
            "--resume or give another --checkpoint"
        )


def check_outputs(checkpoint=None, resume=False, settings=None, plots_dir=None,
                  model=None):
    """Fail before the data is loaded if an output cannot be written, would
    replace an earlier run's file, or a resume cannot work.

    Parameters
    ----------
    checkpoint : str, optional
        The checkpoint file: without ``resume`` it must be writable and must
        not exist; with ``resume`` it must exist and have been written for
        the same ``settings``.
    resume : bool
        Whether the run continues ``checkpoint``.
    settings : dict, optional
        :func:`config_fingerprint` without the parameters: the settings known
        before the model is built.
    plots_dir : str, optional
        A folder that must be creatable and writable.
    model : str, optional
        A saved-model file the run writes: writable, and (without
        ``resume``) not there yet.

    Raises
    ------
    CheckpointError, CheckpointMismatchError
    """
    if checkpoint is not None:
        if not resume:
            check_output_path(checkpoint)
            refuse_to_replace(checkpoint, "continue that run with --resume, or start afresh "
                                          "after moving it away or with another --checkpoint")
        elif not os.path.exists(checkpoint):
            raise CheckpointError(f"no checkpoint to resume from at {checkpoint}")
        elif settings is not None:
            arrays = read_npz(checkpoint, "checkpoint", required=("meta",))
            saved = _read_meta(checkpoint, arrays["meta"]).get("fingerprint")
            _check_fingerprint(checkpoint, saved, settings, keys=sorted(settings))
    if model is not None:
        check_output_path(model, "saved model")
        if not resume:
            refuse_to_replace(model, "move it away or save this run's model under another "
                                     "name")
    if plots_dir is not None:
        check_output_folder(plots_dir, "the plots")


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
        ``(state, best_params)``: the :class:`early_stopping.LoopState` and
        the list of best-parameter arrays (or ``None``).

    Raises
    ------
    CheckpointError
        If the file is missing, not a checkpoint, truncated or corrupt.
    CheckpointMismatchError
        If it was written for another model shape or configuration.
    """
    if not os.path.exists(path):
        raise CheckpointError(f"no checkpoint to resume from at {path}")
    arrays = read_npz(path, "checkpoint", required=("meta",))
    meta = _read_meta(path, arrays.pop("meta"))
    _check_fingerprint(path, meta.get("fingerprint"), fingerprint)
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
