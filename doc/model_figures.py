"""Draw what a trained LeNet does with the MNIST test digits, into ``doc/images/``.

Usage::

    PYTENSOR_FLAGS=floatX=float32 python doc/model_figures.py MODEL.npz \\
        [--dataset mnist.pkl.gz] [--out doc/images] [--digit 0]

``MODEL.npz`` is a model saved by ``code/convolutional_mlp.py --model``
(the best model of a training run). The network is rebuilt
(:func:`convolutional_mlp.build_layers`), given the saved parameters and run
over the 10,000 test digits, a minibatch at a time; three pictures are
written:

``lenet_feature_maps.png``
    one test digit and the feature maps of both convolution layers for it;
``lenet_errors.png``
    the test digits the model gets wrong (the first 100 when there are
    more), each with its label and the model's answer;
``lenet_confusion.png``
    the confusion matrix: how often each digit is taken for each other.

The test error, the number of digits wrong and the confusion matrix are
also printed, with the test error the training run recorded in the model,
to check one against the other (they are computed by the same arithmetic:
the figures compile with the training run's settings,
:func:`pytensor_nnet.tune_for_speed`). Unlike ``make_figures.py``, nothing
here runs during the Sphinx build: the PNGs are drawn once, from the full
run's model, and committed.
"""
import math
import os
import sys

DOC_DIR = os.path.dirname(os.path.abspath(__file__))
CODE_DIR = os.path.join(os.path.dirname(DOC_DIR), "code")
if CODE_DIR not in sys.path:
    sys.path.insert(0, CODE_DIR)

import command_line  # noqa: E402

PROG = "model_figures.py"

if __name__ == "__main__":
    # before PyTensor reads PYTENSOR_FLAGS (it answers bad ones with a traceback)
    command_line.exit_on_bad_flags(PROG)

import numpy  # noqa: E402
from matplotlib.patches import FancyArrowPatch, Rectangle  # noqa: E402

from atomic_file import atomic_write  # noqa: E402
from checkpoints import check_output_folder  # noqa: E402
from errors import CheckpointError, ConfigError  # noqa: E402
from make_figures import (BLUE, DENSE_FILL, GREY, INK, PIPELINE_DPI,  # noqa: E402
                          PIPELINE_WIDTH, RED, _text_size)
from utils import new_figure  # noqa: E402

#: The PNGs written, in the order they are drawn.
FEATURE_MAPS_PNG = "lenet_feature_maps.png"
ERRORS_PNG = "lenet_errors.png"
CONFUSION_PNG = "lenet_confusion.png"

#: At most this many wrong digits are drawn (the first ones of the test set).
MAX_ERRORS_SHOWN = 100

# Like the pipelines of make_figures.py, the figures are drawn for the whole
# text column: 9 inches wide at 100 pixels per inch in the page, no text
# under 10 points, saved at twice that resolution for high-density screens.
WIDTH = PIPELINE_WIDTH
DPI = PIPELINE_DPI
TITLE_PT, TEXT_PT, SMALL_PT = 13, 11, 10


# ---------------------------------------------------------------------------
# Running the model
# ---------------------------------------------------------------------------

def run_model(model_file, model, test_x, batch_size=500, digit=0):
    """Classify ``test_x`` with the saved LeNet, a minibatch at a time.

    The layers are built for ``batch_size`` images
    (:func:`convolutional_mlp.build_layers`), given the saved parameters
    (:func:`saved_model.set_parameters`) and compiled into one function that
    returns the predicted digits, the class probabilities and the outputs of
    both convolution layers; the last minibatch is padded with blank images,
    whose results are dropped.

    Parameters
    ----------
    model_file : str
        A model saved by ``convolutional_mlp.py`` (for the messages).
    model : tuple
        ``(meta, arrays, nkerns)``, what :func:`convolutional_mlp.read_model`
        read from it.
    test_x : numpy.ndarray
        ``(n, 784)`` images, one flattened 28x28 digit per row.
    batch_size : int
        Images per call of the compiled function.
    digit : int
        The row whose feature maps are kept.

    Returns
    -------
    dict
        ``predicted`` ``(n,)`` ints, ``probabilities`` ``(n, 10)``,
        ``maps0`` ``(nkerns[0], 12, 12)`` and ``maps1`` ``(nkerns[1], 4, 4)``
        (the feature maps of row ``digit``).
    """
    import pytensor
    import pytensor.tensor as pt

    import pytensor_nnet
    from convolutional_mlp import PARAM_NAMES, build_layers
    from saved_model import set_parameters

    _, arrays, nkerns = model
    n = len(test_x)
    batch_size = max(1, min(batch_size, n))
    x = pt.matrix("x")
    layer0, layer1, layer2, layer3 = build_layers(
        numpy.random.RandomState(0), x, batch_size, nkerns)
    params = layer3.params + layer2.params + layer1.params + layer0.params
    set_parameters(model_file, params, PARAM_NAMES, arrays)
    pytensor_nnet.tune_for_speed()  # as the training run's test_model was compiled
    classify = pytensor.function(
        [x], [layer3.y_pred, layer3.p_y_given_x, layer0.output, layer1.output])

    floatx = pytensor.config.floatX
    predicted = numpy.empty(n, dtype=numpy.int64)
    probabilities = numpy.empty((n, layer3.b.get_value().shape[0]))
    for start in range(0, n, batch_size):
        rows = test_x[start:start + batch_size]
        batch = numpy.zeros((batch_size, test_x.shape[1]), dtype=floatx)
        batch[:len(rows)] = rows
        y_pred, p, out0, out1 = classify(batch)
        predicted[start:start + len(rows)] = y_pred[:len(rows)]
        probabilities[start:start + len(rows)] = p[:len(rows)]
        if start <= digit < start + len(rows):
            maps0, maps1 = numpy.array(out0[digit - start]), numpy.array(out1[digit - start])
    return dict(predicted=predicted, probabilities=probabilities, maps0=maps0, maps1=maps1)


def confusion_matrix(labels, predicted, n_classes=10):
    """Counts ``(n_classes, n_classes)``: row = true digit, column = the answer."""
    counts = numpy.zeros((n_classes, n_classes), dtype=numpy.int64)
    numpy.add.at(counts, (numpy.asarray(labels), numpy.asarray(predicted)), 1)
    return counts


def confusion_text(counts):
    """The confusion matrix as aligned text, with a header and row labels."""
    width = max(5, len(str(counts.max())) + 1)
    lines = ["confusion matrix (rows: true digit, columns: the model's answer):",
             "true" + "".join(f"{c:>{width}}" for c in range(len(counts)))]
    for digit, row in enumerate(counts):
        lines.append(f"{digit:>4}" + "".join(f"{c:>{width}}" for c in row))
    return "\n".join(lines)


def report(labels, predicted, meta):
    """The numbers to check against the training log, as printed lines."""
    wrong = int((labels != predicted).sum())
    lines = [f"test error {100.0 * wrong / len(labels):f} % ({wrong} of {len(labels)} test "
             "digits wrong)"]
    recorded = meta.get("training", {}).get("test_error")
    if isinstance(recorded, (int, float)):
        lines.append(f"the training run recorded test error {100.0 * recorded:f} % for this "
                     "model")
    lines.append(confusion_text(confusion_matrix(labels, predicted)))
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------

def arrow():
    """' → ' if the default font has the arrow, else ' -> '."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    try:
        font = FT2Font(font_manager.findfont(font_manager.FontProperties()))
        return " \u2192 " if font.get_char_index(0x2192) else " -> "
    except (OSError, RuntimeError, ValueError):
        return " -> "


def _axes(fig, left, bottom, width, height):
    """Axes placed in inches from the figure's lower left corner, no frame."""
    fig_w, fig_h = fig.get_size_inches()
    ax = fig.add_axes((left / fig_w, bottom / fig_h, width / fig_w, height / fig_h))
    ax.set_axis_off()
    return ax


def _tile(maps, columns, gap):
    """Maps ``(k, h, w)`` in a grid of ``columns``, NaN between them."""
    k, h, w = maps.shape
    rows = math.ceil(k / columns)
    out = numpy.full((rows * (h + gap) - gap, columns * (w + gap) - gap), numpy.nan)
    for index, image in enumerate(maps):
        row, col = divmod(index, columns)
        out[row * (h + gap):row * (h + gap) + h, col * (w + gap):col * (w + gap) + w] = image
    return out


def _grey():
    """Grey scale whose NaN (the gaps of a grid) is the page's white."""
    import matplotlib

    return matplotlib.colormaps["gray"].with_extremes(bad="white")


def _grid_columns(k, aspect):
    """Columns of a grid of ``k`` maps about ``aspect`` times wider than tall."""
    return max(1, min(k, round(math.sqrt(k * aspect))))


def save(fig, path):
    """Write ``fig`` as a PNG atomically, without the matplotlib version in it."""
    return atomic_write(path, lambda stream: fig.savefig(
        stream, format="png", dpi=DPI, metadata={"Software": None}))


def draw_feature_maps(path, image, maps0, maps1, index, label, answer, probability):
    """One digit, the maps of layer0 and of layer1 for it, left to right.

    Parameters
    ----------
    path : str
        The PNG to write.
    image : array_like
        The digit, 28 x 28, values in [0, 1].
    maps0, maps1 : array_like
        ``(k, h, w)`` outputs of the two convolution layers (tanh: [-1, 1]).
    index, label, answer : int
        The digit's row in the test set, its label and the model's answer.
    probability : float
        The probability the model gives its answer.
    """
    image, maps0, maps1 = (numpy.asarray(a, dtype=float) for a in (image, maps0, maps1))
    tiles0 = _tile(maps0, _grid_columns(len(maps0), 1.25), 2)
    tiles1 = _tile(maps1, _grid_columns(len(maps1), 2.0), 1)
    size_in, size0, size1 = 1.8, 2.2, 1.7  # heights of the three panels, inches
    widths = [size_in, size0 * tiles0.shape[1] / tiles0.shape[0],
              size1 * tiles1.shape[1] / tiles1.shape[0]]
    scale = min(1.0, (WIDTH - 0.3 - 2 * 0.55) / sum(widths))  # what is left for the arrows
    widths = [w * scale for w in widths]
    heights = [h * scale for h in (size_in, size0, size1)]
    gap = (WIDTH - 0.3 - sum(widths)) / 2
    caption_h = 2 * _text_size("Ag", TEXT_PT)[1] + 0.15
    title_h = 2 * _text_size("Ag", TITLE_PT)[1] + 0.2
    top_h = max(heights)
    height = 0.1 + caption_h + top_h + title_h
    fig = new_figure(WIDTH, height)
    middle = 0.1 + caption_h + top_h / 2
    captions = [
        f"the input\n{image.shape[0]} x {image.shape[1]} pixels",
        f"layer0: {len(maps0)} maps, {maps0.shape[1]} x {maps0.shape[2]}\n"
        "conv 5x5, max-pool 2x2, tanh",
        f"layer1: {len(maps1)} maps, {maps1.shape[1]} x {maps1.shape[2]}\n"
        f"conv 5x5 over the {len(maps0)}, pool, tanh",
    ]
    panels = [(image, (0.0, 1.0)), (tiles0, (-1.0, 1.0)), (tiles1, (-1.0, 1.0))]
    left, spans = 0.15, []
    for (values, (low, high)), w, h, caption in zip(panels, widths, heights, captions):
        ax = _axes(fig, left, middle - h / 2, w, h)
        ax.imshow(values, cmap=_grey(), vmin=low, vmax=high, interpolation="nearest")
        half = max(_text_size(line, TEXT_PT)[0] for line in caption.splitlines()) / 2
        centre = min(max(left + w / 2, half + 0.05), WIDTH - half - 0.05)  # inside the page
        fig.text(centre / WIDTH, (middle - top_h / 2 - 0.08) / height, caption,
                 ha="center", va="top", fontsize=TEXT_PT, color=INK, linespacing=1.25)
        spans.append((left, left + w))
        left += w + gap
    for (_, end), (start, _) in zip(spans, spans[1:]):
        fig.patches.append(FancyArrowPatch(
            (end + 0.08, middle), (start - 0.08, middle), arrowstyle="-|>", mutation_scale=16,
            color=BLUE, linewidth=1.6, transform=fig.dpi_scale_trans))
    fig.text(0.5, 1 - 0.08 / height,
             f"{'The first test digit' if index == 0 else f'Test digit number {index}'} "
             f"(a {label}) through the trained LeNet: it answers {answer} "
             f"(probability {probability:.3f})\n"
             "each map is one filter's response, filters in order row by row; "
             "black -1, white +1",
             ha="center", va="top", fontsize=TEXT_PT, color=INK, linespacing=1.35)
    return save(fig, path)


def draw_errors(path, images, labels, answers, n_wrong, n_total, columns=10):
    """The wrong digits in a grid, each titled with its label and the answer.

    Parameters
    ----------
    path : str
        The PNG to write.
    images : array_like
        ``(k, 28, 28)`` the digits drawn (at most :data:`MAX_ERRORS_SHOWN`).
    labels, answers : array_like
        Their labels and the model's answers.
    n_wrong, n_total : int
        How many test digits are wrong, of how many (for the title).
    columns : int
        Digits per row.
    """
    images = numpy.asarray(images, dtype=float)
    shown = len(images)
    rows = max(1, math.ceil(shown / columns))
    cell = (WIDTH - 0.2) / columns
    side = 0.62 * cell / 0.88
    label_h = _text_size("Ag", SMALL_PT)[1] + 0.06
    row_h = side + label_h + 0.1
    percent = 100.0 * n_wrong / n_total if n_total else 0.0
    title = f"{n_wrong:,} of {n_total:,} test digits wrong ({percent:.2f} %)"
    subtitle = f"over each digit: its label{arrow().rstrip()} the model's answer"
    if shown < n_wrong:
        subtitle += f"; the first {shown} in the test set"
    title_h = _text_size(title, TITLE_PT, "bold")[1] + _text_size(subtitle, TEXT_PT)[1] + 0.35
    height = title_h + rows * row_h + 0.1
    fig = new_figure(WIDTH, height)
    fig.text(0.5, 1 - 0.1 / height, title, ha="center", va="top", fontsize=TITLE_PT,
             weight="bold", color=INK)
    fig.text(0.5, 1 - (0.18 + _text_size(title, TITLE_PT, "bold")[1]) / height, subtitle,
             ha="center", va="top", fontsize=TEXT_PT, color=INK)
    to = arrow()
    for k, (image, label, answer) in enumerate(zip(images, labels, answers)):
        row, col = divmod(k, columns)
        top = height - title_h - row * row_h
        x = 0.1 + col * cell + (cell - side) / 2
        ax = _axes(fig, x, top - label_h - side, side, side)
        ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        fig.text((0.1 + (col + 0.5) * cell) / WIDTH, (top - 0.02) / height,
                 f"true {int(label)}{to}{int(answer)}", ha="center", va="top",
                 fontsize=SMALL_PT, color=INK)
    if shown == 0:
        fig.text(0.5, (height - title_h - row_h / 2) / height, "none: every digit is right",
                 ha="center", va="center", fontsize=TEXT_PT, color=INK)
    return save(fig, path)


def draw_confusion(path, counts):
    """The confusion matrix: counts in the cells, the right answers on a green
    diagonal, the mistakes in shades of red, and the number wrong per digit.

    Parameters
    ----------
    path : str
        The PNG to write.
    counts : array_like
        ``(10, 10)`` ints, row = true digit, column = the model's answer.
    """
    import matplotlib

    counts = numpy.asarray(counts)
    n = len(counts)
    cell = 0.62
    left, right, bottom = 1.25, 1.35, 0.2
    title_h = 2 * _text_size("Ag", TITLE_PT)[1] + 0.25
    head_h = 2 * _text_size("Ag", TEXT_PT)[1] + 0.2  # "predicted" and the column digits
    width = max(WIDTH * 0.8, left + n * cell + right)
    height = bottom + n * cell + head_h + title_h
    fig = new_figure(width, height)
    ax = _axes(fig, left, bottom, n * cell, n * cell)
    ax.set_xlim(0, n)
    ax.set_ylim(n, 0)
    off = counts.copy()
    numpy.fill_diagonal(off, 0)
    reds = matplotlib.colormaps["Reds"]
    worst = max(1, off.max())
    for true in range(n):
        for answer in range(n):
            value = int(counts[true, answer])
            if true == answer:
                fill, ink, weight = DENSE_FILL, "#1d5e30", "bold"
            elif value:
                shade = 0.25 + 0.6 * value / worst
                fill, ink, weight = reds(shade), "white" if shade > 0.6 else INK, "bold"
            else:
                fill, ink, weight = "white", GREY, "normal"
            ax.add_patch(Rectangle((answer, true), 1, 1, facecolor=fill, edgecolor="#d0d0d0",
                                   linewidth=0.8))
            ax.text(answer + 0.5, true + 0.5, str(value), ha="center", va="center",
                    fontsize=TEXT_PT, color=ink, weight=weight)
    ax.add_patch(Rectangle((0, 0), n, n, facecolor="none", edgecolor=INK, linewidth=1.2))
    for k in range(n):
        ax.text(k + 0.5, -0.12, str(k), ha="center", va="bottom", fontsize=TEXT_PT,
                weight="bold", color=INK)
        ax.text(-0.15, k + 0.5, str(k), ha="right", va="center", fontsize=TEXT_PT,
                weight="bold", color=INK)
        wrong = int(counts[k].sum() - counts[k, k])
        ax.text(n + 0.15, k + 0.5, f"{wrong} of {int(counts[k].sum()):,}", ha="left",
                va="center", fontsize=TEXT_PT, color=RED if wrong else INK)
    ax.text(n / 2, -0.2 - _text_size("0", TEXT_PT)[1] / cell, "the model's answer",
            ha="center", va="bottom", fontsize=TEXT_PT, color=INK)
    ax.text(-0.3 - _text_size("0", TEXT_PT)[0] / cell, n / 2, "true digit", ha="right",
            va="center", rotation=90, fontsize=TEXT_PT, color=INK)
    ax.text(n + 0.15, -0.12, "wrong", ha="left", va="bottom", fontsize=TEXT_PT, color=INK)
    total, right_ = int(counts.sum()), int(numpy.trace(counts))
    fig.text(0.5, 1 - 0.1 / height,
             f"Confusion matrix of the {total:,} test digits\n"
             f"{right_:,} right (green diagonal), {total - right_:,} wrong (red: "
             "how often a digit is taken for another)",
             ha="center", va="top", fontsize=TEXT_PT, color=INK, linespacing=1.35)
    return save(fig, path)


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------

def make_model_figures(model_file, dataset="mnist.pkl.gz", out=None, digit=0,
                       batch_size=500):
    """Run the model on the test digits, draw the three PNGs into ``out`` and
    print the numbers; returns ``{name: path}`` of the PNGs."""
    out = os.path.join(DOC_DIR, "images") if out is None else out
    if not os.path.isfile(model_file):
        raise CheckpointError(
            f"no saved model at {model_file} (train one first: python code/"
            f"convolutional_mlp.py --model {model_file})")
    check_output_folder(out, "the figures")
    # the model first: a wrong file is told before the data is read
    from convolutional_mlp import read_model
    from logistic_sgd import load_data

    model = read_model(model_file)
    test_x, test_y = load_data(dataset, download=False)[2]
    test_x, labels = test_x.get_value(borrow=True), numpy.asarray(test_y.eval())
    if not 0 <= digit < len(labels):
        raise ConfigError(f"--digit {digit}: the test set has {len(labels)} digits")
    run = run_model(model_file, model, test_x, batch_size, digit)
    predicted = run["predicted"]
    print(report(labels, predicted, model[0]))

    images = test_x.reshape(-1, 28, 28)
    written = {}
    answer = int(predicted[digit])
    written[FEATURE_MAPS_PNG] = draw_feature_maps(
        os.path.join(out, FEATURE_MAPS_PNG), images[digit], run["maps0"], run["maps1"], digit,
        int(labels[digit]), answer, float(run["probabilities"][digit, answer]))
    wrong = numpy.flatnonzero(labels != predicted)
    first = wrong[:MAX_ERRORS_SHOWN]
    written[ERRORS_PNG] = draw_errors(
        os.path.join(out, ERRORS_PNG), images[first], labels[first], predicted[first],
        len(wrong), len(labels))
    written[CONFUSION_PNG] = draw_confusion(
        os.path.join(out, CONFUSION_PNG), confusion_matrix(labels, predicted))
    for path in written.values():
        print(f"wrote {path}")
    return written


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = command_line.OneLineErrorParser(
        prog=PROG, description="Draw what a trained LeNet does with the MNIST test digits: "
        "the feature maps of one digit, the digits it gets wrong and the confusion matrix "
        "(three PNGs), and print its test error and confusion matrix.")
    parser.add_argument("model", metavar="MODEL.npz",
                        help="a model saved by code/convolutional_mlp.py --model")
    parser.add_argument("--dataset", default="mnist.pkl.gz",
                        help="the MNIST data (default: mnist.pkl.gz, looked up as the "
                        "scripts do, e.g. in $LENET_DATA_DIR; never downloaded)")
    parser.add_argument("--out", default=os.path.join(DOC_DIR, "images"), metavar="DIR",
                        help="folder for the PNGs (default: doc/images)")
    parser.add_argument("--digit", type=int, default=0, metavar="N",
                        help="the test digit whose feature maps are drawn (default: 0, "
                        "the first)")
    parser.add_argument("--batch-size", type=command_line.positive_int, default=500,
                        help="test digits per call of the compiled function (default: 500)")
    args = parser.parse_args(argv)

    def run():
        make_model_figures(args.model, args.dataset, args.out, args.digit, args.batch_size)

    return command_line.run_main(run, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
