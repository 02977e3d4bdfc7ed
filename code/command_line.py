"""The tutorials' command line: shared options, defaults, one-line errors.

Each tutorial script builds its parser with :func:`tutorial_parser`, adds
its own options, parses with :func:`parse_tutorial_args`, turns the common
options into keyword arguments with :func:`output_options`, and runs through
:func:`run_main`, which prints every known failure as one line and returns
the exit status. :func:`exit_on_bad_flags` checks ``PYTENSOR_FLAGS`` before
PyTensor is imported (PyTensor itself answers a bad value with a
traceback).

Nothing here imports PyTensor, so the checks and ``--help`` run before it
loads.
"""
import argparse
import math
import os
import shlex
import sys

import errors
import minibatches

__all__ = [
    "DRY_RUN_BATCHES",
    "EXIT_INTERRUPTED",
    "exit_on_bad_flags",
    "finite_float",
    "output_options",
    "parse_tutorial_args",
    "positive_int",
    "positive_ints",
    "resume_command",
    "run_main",
    "tutorial_parser",
]

#: ``--dry-run`` trains on this many minibatches and validates / tests on
#: this many (one epoch, hence exactly one validation).
DRY_RUN_BATCHES = (3, 2, 2)

#: Exit status after Ctrl-C (the shell's 128 + SIGINT).
EXIT_INTERRUPTED = 130

#: Exit status for bad flags or options.
EXIT_USAGE = 2

#: PYTENSOR_FLAGS values the tutorials run with: the floatX the kernels are
#: compiled for, and the modes whose backends the Ops have (Numba, C, JAX).
SUPPORTED_FLAGS = {
    "floatX": ("float32", "float64"),
    "mode": ("FAST_RUN", "NUMBA", "CVM", "C", "FAST_COMPILE", "JAX", "Mode",
             "DebugMode", "DEBUG_MODE", "NanGuardMode"),
}


def bad_flags(flags=None):
    """The first problem with ``PYTENSOR_FLAGS`` for the tutorials, or None.

    Parameters
    ----------
    flags : str, optional
        The flags (default: the environment's ``PYTENSOR_FLAGS``).
    """
    flags = os.environ.get("PYTENSOR_FLAGS", "") if flags is None else flags
    for item in flags.split(","):
        key, _, value = (part.strip() for part in item.partition("="))
        for name, supported in SUPPORTED_FLAGS.items():
            if key.lower() != name.lower():
                continue
            if key != name:
                return f"PYTENSOR_FLAGS names {key!r}; the flag is spelled {name!r}"
            if value not in supported:
                return (f"PYTENSOR_FLAGS {name}={value} is not supported; use one of "
                        + ", ".join(supported))
    return None


def exit_on_bad_flags(prog):
    """Exit with one line and status 2 if :func:`bad_flags` finds a problem.

    Called by the scripts before they import PyTensor (also for ``--help``).
    """
    problem = bad_flags()
    if problem is not None:
        print(f"{prog}: error: {problem}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


class OneLineErrorParser(argparse.ArgumentParser):
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


def positive_ints(count, example):
    """argparse type factory: ``count`` positive integers written ``A,B``.

    ``example`` (e.g. ``"20,50"``) is shown in the error message.
    """

    def convert(text):
        try:
            values = [int(v) for v in text.replace(" ", ",").split(",") if v]
        except ValueError:
            values = []
        if len(values) != count or min(values) < 1:
            raise argparse.ArgumentTypeError(
                f"expected {count} positive integers such as {example}, got {text!r}"
            )
        return values

    return convert


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
        return minibatches.parse_max_batches(text)
    except errors.ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


EPILOG = """\
PyTensor settings come from the PYTENSOR_FLAGS environment variable, e.g.
PYTENSOR_FLAGS=floatX=float32 (the fast setting the tutorial was written for;
the default is float64). The data set is looked up as described for
mnist_io.load_data (a path, a bare name searched in $LENET_DATA_DIR, the
working folder and data/, or a folder of the four MNIST IDX files).

Checkpoints are .npz files (no pickle) written atomically after every
validation and on Ctrl-C; --resume continues from one and ends with exactly
the parameters and results of an uninterrupted run. A run that is not
resumed refuses to replace an existing checkpoint. Exit status: 0 done,
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
    parser = OneLineErrorParser(
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
    except errors.TrainingInterrupted as exc:
        print(f"interrupted; resume with: {resume_command(argv, exc.checkpoint)}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing was saved", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (
        mnist_io.DatasetError,
        mnist_io.DatasetNotFoundError,
        errors.CheckpointError,
        errors.ConfigError,
        errors.TrainingDiverged,
    ) as exc:
        if isinstance(exc, mnist_io.DatasetNotFoundError):
            exc = exc.command_line_message()  # "--dataset PATH", not "pass load_data ..."
        message = " ".join(str(exc).split())
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 1
    return 0
