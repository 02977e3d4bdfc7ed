"""A trained LeNet in one ``.npz`` file, and classifying pictures with it.

Both LeNet scripts save the parameters of their best model as they train
(:class:`BestModelFile`) and, with ``--predict IMAGE ...``, read it back to
classify pictures of handwritten digits (:func:`load_model`,
:func:`set_parameters`, :func:`report_predictions`; the pictures are
prepared by :mod:`digit_image`).

The file is a ``.npz`` archive (numpy's zip of ``.npy`` files, nothing
pickled) holding one array per parameter (``layer0_W`` ..., ``C1_W`` ...)
and ``meta``, a 0-d string array with a JSON document::

    {"format": 1, "tutorial": "convolutional_mlp", "floatX": "float32",
     "network": {...},     # what rebuilds the network: nkerns, image shape ...
     "training": {...}}    # learning rate, batch size, data set, and the
                           # best validation error, its iteration, test error

Only ``network`` decides whether a file fits; ``training`` is a record.
"""
import importlib.util
import json
import os
import sys

import numpy

from atomic_file import atomic_write
from checkpoints import check_outputs, read_npz
from errors import CheckpointError, CheckpointMismatchError, ConfigError

__all__ = [
    "MODEL_FORMAT",
    "BestModelFile",
    "add_model_options",
    "check_network",
    "check_show_dir",
    "load_model",
    "model_path",
    "report_predictions",
    "save_model",
    "set_parameters",
]

#: Version of the layout written by :func:`save_model`.
MODEL_FORMAT = 1


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------

def save_model(path, tutorial, arrays, network, training=None):
    """Write a trained network atomically (see :func:`atomic_file.atomic_write`).

    Parameters
    ----------
    path : str
        The ``.npz`` file.
    tutorial : str
        The script that trained it (``'convolutional_mlp'``, ``'lenet5'``).
    arrays : dict
        ``{parameter name: numpy.ndarray}``.
    network : dict
        JSON-serialisable settings that rebuild the network.
    training : dict, optional
        JSON-serialisable record of the training (settings and scores).
    """
    arrays = dict(arrays)
    if "meta" in arrays:
        raise ValueError("'meta' is not a parameter name")
    dtypes = sorted({str(value.dtype) for value in arrays.values()})
    meta = {
        "format": MODEL_FORMAT,
        "tutorial": tutorial,
        "floatX": dtypes[0] if len(dtypes) == 1 else dtypes,
        "network": network,
        "training": training or {},
    }
    arrays["meta"] = numpy.array(json.dumps(meta, allow_nan=False))
    atomic_write(path, lambda stream: numpy.savez(stream, **arrays))


def scores(run):
    """The scores of a run's best model, for the ``training`` record.

    ``run`` is an :class:`early_stopping.LoopState` (during training) or an
    :class:`early_stopping.TrainingResult` (at the end): both have
    ``best_validation_loss``, ``best_iter`` and ``test_score``.
    """
    return {
        "best_validation_error": float(run.best_validation_loss),
        "best_iteration": int(run.best_iter) + 1,
        "test_error": float(run.test_score),
    }


class BestModelFile:
    """Keeps the best model of a training run in a file.

    :meth:`on_new_best` is the :class:`supervisor.Supervisor` hook: it
    writes the parameters each time validation finds a new best model, so
    an interrupted run leaves its best model so far. :meth:`finish` writes
    the run's best model once more at the end, from the loop's result: a run
    resumed from a checkpoint (even one resumed after it had finished, or
    told to save elsewhere) thus ends with the file an uninterrupted run
    writes.

    Parameters
    ----------
    path : str or None
        The model file; ``None`` writes nothing.
    tutorial : str
        The script (``'convolutional_mlp'`` ...).
    params : list of shared variables
        The network's parameters, in the loop's order.
    names : list of str
        Their names in the file.
    network : dict
        The settings that rebuild the network (see :func:`save_model`).
    training : dict
        Training settings recorded with it (learning rate, batch size ...).
    """

    def __init__(self, path, tutorial, params, names, network, training):
        self.path = path
        self.tutorial = tutorial
        self.params = params
        self.names = list(names)
        self.network = network
        self.training = training

    def write(self, values, run):
        """Save ``values`` (arrays, in the order of ``params``) with ``run``'s scores."""
        if self.path is None:
            return
        save_model(self.path, self.tutorial, dict(zip(self.names, values)), self.network,
                   dict(self.training, **scores(run)))

    def on_new_best(self, state):
        """The ``on_new_best`` hook: the parameters are the new best model."""
        self.write([p.get_value(borrow=True) for p in self.params], state)

    def finish(self, result):
        """Write the best model of the finished run (``TrainingResult``)."""
        self.write(result.best_params or result.params, result)
        if self.path is not None:
            print(f"the best model is saved in {self.path}; classify pictures with it: "
                  f"python code/{self.tutorial}.py --predict IMAGE ... --model {self.path}",
                  file=sys.stderr)


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------

def _read_meta(path, meta):
    """The JSON document of a model's ``meta`` entry, checked."""
    try:
        meta = json.loads(str(meta[()]))
    except (ValueError, IndexError) as exc:
        raise CheckpointError(f"{path} has an unreadable 'meta' entry ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} has an unreadable 'meta' entry")
    if "state" in meta and "fingerprint" in meta:
        raise CheckpointError(
            f"{path} is a training checkpoint, not a saved model; give the --model file "
            "that training wrote")
    if meta.get("format") != MODEL_FORMAT:
        raise CheckpointError(
            f"{path} has saved-model format {meta.get('format')!r}; this code reads "
            f"format {MODEL_FORMAT}")
    if not isinstance(meta.get("network"), dict):
        raise CheckpointError(f"{path} does not say how to rebuild its network")
    return meta


def load_model(path, tutorial):
    """Read a model written by :func:`save_model` for ``tutorial``.

    The file is read with :func:`checkpoints.read_npz` (never unpickled).

    Parameters
    ----------
    path : str
        The ``.npz`` file.
    tutorial : str
        The script that must have written it.

    Returns
    -------
    tuple
        ``(meta, arrays)``: the JSON document (a dict, with ``network``)
        and ``{name: array}`` for the parameters.

    Raises
    ------
    CheckpointError
        If the file is missing, unreadable, or not a saved model (a
        checkpoint, ``logistic_sgd.py``'s ``best_model.npz`` ...).
    CheckpointMismatchError
        If another script wrote it.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(
            f"no saved model at {path} (train one first: python code/{tutorial}.py, "
            "or give its file with --model)")
    arrays = read_npz(path, "saved model", required=("meta",))
    meta = _read_meta(path, arrays.pop("meta"))
    if meta.get("tutorial") != tutorial:
        raise CheckpointMismatchError(
            f"{path} holds a model of {meta.get('tutorial')}.py, not of {tutorial}.py")
    return meta, arrays


def check_network(path, saved, expected):
    """Raise :class:`CheckpointMismatchError` unless ``saved == expected``.

    Both are ``network`` settings (dicts); the message names the settings
    that differ.
    """
    expected = json.loads(json.dumps(expected))  # tuples become lists, as in the file
    if saved != expected:
        diffs = [
            f"{key} {saved.get(key)!r} (file) vs {expected.get(key)!r} (expected)"
            for key in sorted(set(saved) | set(expected))
            if saved.get(key) != expected.get(key)
        ]
        raise CheckpointMismatchError(
            f"{path} was saved for another network configuration ({'; '.join(diffs)})")


def set_parameters(path, params, names, arrays):
    """Give the network's shared variables the saved values.

    The values are cast to each variable's dtype (a float32 model runs under
    ``floatX=float64`` and the other way round).

    Parameters
    ----------
    path : str
        The model file (for the messages).
    params : list of shared variables
        The rebuilt network's parameters.
    names : list of str
        Their names in the file.
    arrays : dict
        From :func:`load_model`.

    Raises
    ------
    CheckpointMismatchError
        If an array is missing, its shape is not the parameter's, or it is
        not a finite float array.
    """
    missing = [name for name in names if name not in arrays]
    if missing:
        raise CheckpointMismatchError(f"{path} lacks the parameters {', '.join(missing)}")
    values = [arrays[name] for name in names]
    for param, name, value in zip(params, names, values):
        current = param.get_value(borrow=True)
        if value.shape != current.shape:
            raise CheckpointMismatchError(
                f"{path}: {name} is {list(value.shape)}, the network its settings describe "
                f"needs {list(current.shape)}")
        if value.dtype.kind != "f" or not numpy.isfinite(value).all():
            raise CheckpointMismatchError(f"{path}: {name} is not a finite float array")
    for param, value in zip(params, values):
        param.set_value(value.astype(param.get_value(borrow=True).dtype))


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------

def add_model_options(parser, tutorial):
    """Add ``--model``, ``--predict`` and ``--show`` to a script's parser."""
    group = parser.add_argument_group("saved model and predictions")
    group.add_argument(
        "--model", metavar="PATH", default=None,
        help=f"the best model's parameters, an .npz written on each new best and at the "
        f"end (default: {tutorial}_model.npz in the working folder; '' for none; none "
        "with --dry-run unless given); never replaced except by --resume; with "
        "--predict, the model to use (same default)")
    group.add_argument(
        "--predict", nargs="+", metavar="IMAGE", default=None,
        help="do not train: classify these pictures of handwritten digits (any format "
        "Pillow reads; dark on light or light on dark) with the --model file, and print "
        "each one's digit and the ten probabilities")
    group.add_argument(
        "--show", metavar="DIR", default=None,
        help="with --predict: write into DIR, for each picture, a PNG of the prepared "
        "input, the feature maps of both convolution layers and the probabilities")


def model_path(parser, args, tutorial):
    """The model file the command line names: to write or, with ``--predict``,
    to read; ``None`` for none. Usage errors exit through ``parser``."""
    if args.show is not None and args.predict is None:
        parser.error("--show goes with --predict")
    default = os.path.join(os.getcwd(), f"{tutorial}_model.npz")
    if args.predict is not None:
        if args.resume or args.dry_run:
            parser.error("--predict does not train: it takes no --resume or --dry-run")
        return args.model or default
    if args.model is None:
        return None if args.dry_run else default
    return args.model or None


def check_show_dir(show_dir):
    """Before any work: the ``--show`` folder can be written, and matplotlib
    is there to draw (:class:`errors.CheckpointError`, :class:`errors.ConfigError`)."""
    if show_dir is None:
        return
    if importlib.util.find_spec("matplotlib") is None:
        raise ConfigError("--show needs matplotlib (pip install matplotlib)")
    check_outputs(plots_dir=show_dir)


def report_predictions(paths, outputs, show_dir=None, tutorial="", input_range=(0.0, 1.0),
                       map_range=(-1.0, 1.0), map_names=("layer0", "layer1")):
    """Print each picture's predicted digit and probabilities; plot them if asked.

    Parameters
    ----------
    paths : list of str
        The pictures, in the order of the outputs' rows.
    outputs : list of numpy.ndarray
        What the compiled prediction function returned for them: the class
        probabilities ``(n, 10)``, the network's input ``(n, 1, h, w)`` and
        the outputs of the two convolution layers ``(n, maps, h, w)``.
    show_dir : str, optional
        Folder for one PNG per picture (:func:`utils.plot_digit_prediction`).
    tutorial : str
        Suffix of the PNG names (``<picture>_<tutorial>.png``).
    input_range, map_range : tuple of 2 floats
        The values drawn black and white in the input and in the maps.
    map_names : tuple of 2 str
        Titles of the two layers' maps.

    Returns
    -------
    numpy.ndarray
        The predicted digits.
    """
    probabilities, inputs, maps0, maps1 = (numpy.asarray(o) for o in outputs)
    predicted = probabilities.argmax(axis=1)
    written = set()
    for k, path in enumerate(paths):
        digit = int(predicted[k])
        print(f"{path}: predicted digit {digit} (probability {probabilities[k, digit]:.3f})")
        print("    " + "  ".join(f"{c}: {p:.3f}" for c, p in enumerate(probabilities[k])))
        if show_dir:
            from utils import plot_digit_prediction

            os.makedirs(show_dir, exist_ok=True)
            stem = os.path.splitext(os.path.basename(path))[0] or "picture"
            name, n = f"{stem}_{tutorial}.png", 1
            while name in written:  # two pictures of the same name in other folders
                n += 1
                name = f"{stem}_{n}_{tutorial}.png"
            written.add(name)
            plot_digit_prediction(
                os.path.join(show_dir, name), inputs[k, 0],
                [(map_names[0], maps0[k]), (map_names[1], maps1[k])], probabilities[k],
                title=f"{os.path.basename(path)}: predicted digit {digit} "
                      f"(probability {probabilities[k, digit]:.3f})",
                input_range=input_range, map_range=map_range)
    return predicted
