"""Draw the figures of the LeNet tutorial pages into ``doc/images/``.

Usage::

    python doc/make_figures.py                 # draw the figures that are missing
    python doc/make_figures.py --force         # redraw all of them
    python doc/make_figures.py lenet_pipeline.png

The diagrams are plain matplotlib drawings and their PNGs are committed. The
Sphinx build (``conf.py``) calls :func:`make_figures` with
``only_missing=True``, so a fresh checkout builds without running anything.

``3wolfmoon_filtered.png`` is different: it shows a photograph that is not
part of the project, filtered by ``code/filter_demo.py``. It is drawn only
when ``3wolfmoon.jpg`` can be found: as ``doc/images/3wolfmoon.jpg``, at the
path in ``$LENET_IMAGE``, or in the folder ``$LENET_SHARED_IMAGES`` (default:
``<repository>/../shared/images``). Nothing is downloaded here (``python
code/filter_demo.py`` can fetch the picture). Neither the photograph nor the
filtered figure is committed.
"""
import argparse
import os
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Circle, FancyArrowPatch, Rectangle  # noqa: E402

DOC_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(DOC_DIR)
IMAGES_DIR = os.path.join(DOC_DIR, "images")
WOLFMOON_JPG = "3wolfmoon.jpg"

# One palette for every diagram.
INK = "#222222"
GREY = "#b8b8b8"
LIGHT = "#eeeeee"
BLUE = "#3b6fb6"
ORANGE = "#e08a1e"
GREEN = "#3a9a5b"
RED = "#c8453b"
PURPLE = "#7a4fa3"
MAP_FILL = "#dce6f2"
POOL_FILL = "#f6e3c6"
DENSE_FILL = "#dff0e3"


def _new_figure(xlim, ylim, width):
    """A blank figure ``width`` inches wide whose data units are square."""
    height = width * (ylim[1] - ylim[0]) / (xlim[1] - xlim[0])
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    return fig, ax


def _save(fig, path):
    # No "Software" entry: the committed PNGs then do not change with the
    # matplotlib version that happened to redraw them.
    fig.savefig(path, dpi=100, metadata={"Software": None})


def _unit(ax, x, y, color, edge=INK, r=0.22, z=3):
    ax.add_patch(Circle((x, y), r, facecolor=color, edgecolor=edge,
                                           linewidth=1.2, zorder=z))


def _line(ax, p, q, color=GREY, width=1.2, z=1):
    ax.plot([p[0], q[0]], [p[1], q[1]], color=color, linewidth=width, zorder=z,
            solid_capstyle="round")


# -- sparse connectivity -------------------------------------------------------


def draw_sparse_connectivity(path):
    """Three layers, each unit wired to 3 neighbours below; one receptive field lit."""
    fig, ax = _new_figure((-2.5, 9.9), (-1.1, 4.1), 7.8)
    layers = {0: range(0, 7), 1: range(1, 6), 2: range(2, 5)}
    heights = {0: 0.0, 1: 1.8, 2: 3.6}
    names = {0: "layer m-1\n(input retina)", 1: "layer m", 2: "layer m+1"}
    focus = 3  # the unit of layer m+1 whose field is highlighted
    lit = {2: {focus}, 1: {focus - 1, focus, focus + 1}, 0: set(range(focus - 2, focus + 3))}
    for level in (1, 2):
        for x in layers[level]:
            for dx in (-1, 0, 1):
                hot = x in lit[level] and (x + dx) in lit[level - 1]
                _line(ax, (x, heights[level]), (x + dx, heights[level - 1]),
                      color=ORANGE if hot else GREY, width=2.2 if hot else 1.0, z=2 if hot else 1)
    for level, xs in layers.items():
        for x in xs:
            _unit(ax, x, heights[level], ORANGE if x in lit[level] else "white")
        ax.text(-2.4, heights[level], names[level], ha="left", va="center", fontsize=10,
                color=INK)
    ax.annotate("", xy=(focus - 2 - 0.3, -0.55), xytext=(focus + 2 + 0.3, -0.55),
                arrowprops=dict(arrowstyle="<->", color=ORANGE, linewidth=1.4))
    ax.text(focus, -0.75, "receptive field of the top unit: 5 inputs", ha="center",
            va="top", fontsize=9, color=ORANGE)
    ax.text(7.4, 2.7, "each unit sees\n3 neighbours\nin the layer below", ha="left",
            va="center", fontsize=9, color=INK)
    _save(fig, path)


# -- shared weights ------------------------------------------------------------


def draw_shared_weights(path):
    """One feature map: three hidden units reuse the same three weights."""
    fig, ax = _new_figure((-2.2, 7.6), (-0.9, 2.9), 7.4)
    colors = (RED, GREEN, BLUE)
    for x in range(1, 4):
        for k, dx in enumerate((-1, 0, 1)):
            _line(ax, (x, 2.0), (x + dx, 0.0), color=colors[k], width=2.4, z=2)
    for x in range(0, 5):
        _unit(ax, x, 0.0, "white")
    for x in range(1, 4):
        _unit(ax, x, 2.0, MAP_FILL)
    ax.text(-2.1, 0.0, "layer m-1", ha="left", va="center", fontsize=10)
    ax.text(-2.1, 2.0, "layer m\n(one feature map)", ha="left", va="center", fontsize=10)
    legend_x = 5.3
    for k, (name, color) in enumerate(zip((r"$w_1$", r"$w_2$", r"$w_3$"), colors)):
        y = 2.2 - 0.55 * k
        _line(ax, (legend_x, y), (legend_x + 0.6, y), color=color, width=2.4)
        ax.text(legend_x + 0.75, y, name, ha="left", va="center", fontsize=10)
    ax.text(legend_x, 0.35, "same colour =\nsame parameter", ha="left", va="center",
            fontsize=9)
    ax.text(2.0, -0.65,
            r"$\partial C / \partial w_1$ = sum of the gradients on the three red edges",
            ha="center", va="center", fontsize=9, color=RED)
    _save(fig, path)


# -- a convolutional layer (notation) -----------------------------------------


def _stack(ax, x, y, size, count, dx, dy, fill, edge=INK, labels=None, lw=1.0):
    """Draw ``count`` square maps, back to front; return the lower-left corners."""
    corners = []
    for i in reversed(range(count)):
        cx, cy = x + i * dx, y + i * dy
        ax.add_patch(Rectangle((cx, cy), size, size, facecolor=fill, edgecolor=edge,
                               linewidth=lw, zorder=2 + (count - i)))
        corners.append((cx, cy))
        if labels:
            ax.text(cx + size + 0.08, cy + size - 0.1, labels[i], fontsize=8, ha="left",
                    va="top", zorder=10)
    return list(reversed(corners))


def draw_conv_layer(path):
    """Layer m-1 with 4 maps feeding the 2 maps of layer m through W^0 and W^1."""
    fig, ax = _new_figure((-1.2, 10.6), (-0.9, 8.1), 7.4)
    side, gap, win = 1.5, 0.5, 0.5
    windows = []
    for i in range(4):
        y = 7.2 - (i + 1) * side - i * gap
        ax.add_patch(Rectangle((0.4, y), side, side, facecolor=MAP_FILL, edgecolor=INK))
        ax.text(0.25, y + side / 2, f"map {i}", ha="right", va="center", fontsize=9)
        wx, wy = 0.4 + 0.6, y + 0.5
        ax.add_patch(Rectangle((wx, wy), win, win, facecolor="none", edgecolor=INK,
                               linewidth=1.6, zorder=4))
        windows.append((wx + win, wy + win / 2))
    ax.text(1.15, 7.5, "layer m-1\n4 feature maps", ha="center", va="bottom", fontsize=10)
    out_side = 2.4
    targets = []
    for k, (y, color, name) in enumerate(((4.3, RED, "$h^0$"), (0.5, BLUE, "$h^1$"))):
        ax.add_patch(Rectangle((7.4, y), out_side, out_side, facecolor=POOL_FILL,
                               edgecolor=INK))
        ax.text(7.4 + out_side + 0.15, y + out_side / 2, name, ha="left", va="center",
                fontsize=11)
        px, py = 7.4 + 0.9, y + 1.2
        ax.add_patch(Rectangle((px, py), 0.2, 0.2, facecolor=color, edgecolor=INK, zorder=6))
        targets.append(((px, py + 0.1), color))
    ax.text(8.6, 7.5, "layer m\n2 feature maps", ha="center", va="bottom", fontsize=10)
    for (tx, ty), color in targets:
        for wx, wy in windows:
            _line(ax, (wx, wy), (tx, ty), color=color, width=1.0, z=3)
    ax.text(4.6, 6.35, "$W^0$: one 3x3 kernel per input map,\nshape 4 x 3 x 3",
            ha="center", va="center", fontsize=9, color=RED)
    ax.text(4.6, 0.25, "$W^1$: four other 3x3 kernels", ha="center", va="center",
            fontsize=9, color=BLUE)
    ax.text(4.6, -0.6, "together W has shape 2 x 4 x 3 x 3 (out maps, in maps, rows, cols)",
            ha="center", va="center", fontsize=9)
    _save(fig, path)


# -- the tutorial's LeNet --------------------------------------------------------


def _maps_block(ax, x, y_mid, side, depth_count, label_top, label_bottom, fill):
    """A stack of maps drawn in perspective; returns its right edge."""
    shown = min(depth_count, 6)
    step = 0.12
    y = y_mid - side / 2
    _stack(ax, x, y, side, shown, step, step, fill, lw=0.8)
    right = x + side + (shown - 1) * step
    center = x + (side + (shown - 1) * step) / 2
    top = y + side + (shown - 1) * step
    ax.text(center, top + 0.12, label_top, ha="center", va="bottom", fontsize=8.5)
    ax.text(center, y - 0.15, label_bottom, ha="center", va="top", fontsize=8)
    return right


def _vector_block(ax, x, y_mid, height, label_top, label_bottom, fill):
    ax.add_patch(Rectangle((x, y_mid - height / 2), 0.22, height, facecolor=fill,
                           edgecolor=INK, linewidth=0.8, zorder=3))
    ax.text(x + 0.11, y_mid + height / 2 + 0.12, label_top, ha="center", va="bottom",
            fontsize=8.5)
    ax.text(x + 0.11, y_mid - height / 2 - 0.15, label_bottom, ha="center", va="top",
            fontsize=8)
    return x + 0.22


def _arrow(ax, x0, x1, y, text=None, color=INK):
    ax.add_patch(FancyArrowPatch((x0 + 0.08, y), (x1 - 0.08, y), arrowstyle="-|>",
                                 mutation_scale=10, color=color, linewidth=1.1, zorder=5))
    if text:
        ax.text((x0 + x1) / 2, y + 0.12, text, ha="center", va="bottom", fontsize=7.5,
                color=color)


def _pipeline(ax, y, stages, gap=1.15):
    """Draw ``stages`` left to right; return the x where each one starts and ends.

    A stage is ``(kind, size, depth, top, bottom, fill, arrow_text, arrow_color)``
    where kind is "maps" (a stack of ``depth`` squares of side ``size``) or
    "vector" (a bar ``size`` high); the arrow leads into the stage.
    """
    x, spans = 0.3, []
    for i, (kind, size, depth, top, bottom, fill, arrow, color) in enumerate(stages):
        if i:
            _arrow(ax, x, x + gap, y, arrow, color=color)
            x += gap
        if kind == "maps":
            right = _maps_block(ax, x, y, size, depth, top, bottom, fill)
        else:
            right = _vector_block(ax, x, y, size, top, bottom, fill)
        spans.append((x, right))
        x = right
    return spans


def _fit_width(fig, ax, xmax):
    """Crop the drawing at ``xmax``, keeping data units square."""
    x0, _ = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    ax.set_xlim(x0, xmax)
    fig.set_size_inches(fig.get_figheight() * (xmax - x0) / (y1 - y0), fig.get_figheight())


def _bracket(ax, x0, x1, y, text, color):
    ax.plot([x0, x0, x1, x1], [y - 0.12, y, y, y - 0.12], color=color, linewidth=1.6)
    ax.text((x0 + x1) / 2, y + 0.1, text, ha="center", va="bottom", fontsize=9, color=color)


def draw_lenet_pipeline(path):
    """The tutorial's model with the tensor shapes it really computes."""
    fig, ax = _new_figure((0, 20.0), (-0.9, 4.9), 13.0)
    y, px = 2.0, 0.075  # centre line; drawing units per pixel
    spans = _pipeline(ax, y, [
        ("maps", 28 * px, 1, "input", "batch x 1\nx 28 x 28", LIGHT, None, INK),
        ("maps", 24 * px, 20, "conv", "batch x 20\nx 24 x 24", MAP_FILL,
         "conv 5x5\n20 filters", INK),
        ("maps", 12 * px, 20, "layer0", "batch x 20\nx 12 x 12", POOL_FILL,
         "max-pool 2x2\n+b, tanh", INK),
        ("maps", 8 * px, 50, "conv", "batch x 50\nx 8 x 8", MAP_FILL,
         "conv 5x5\n50 filters", INK),
        ("maps", 4 * px, 50, "layer1", "batch x 50\nx 4 x 4", POOL_FILL,
         "max-pool 2x2\n+b, tanh", INK),
        ("vector", 3.0, 1, "", "batch\nx 800", LIGHT, "flatten(2)", INK),
        ("vector", 2.0, 1, "layer2", "batch\nx 500", DENSE_FILL, "dense\ntanh", INK),
        ("vector", 0.8, 1, "layer3", "batch\nx 10", DENSE_FILL, "dense\nsoftmax", INK),
    ])
    # Each class spans the arrows and tensors it computes.
    for first, last, extra, text, color in (
            (1, 2, 0.0, "LeNetConvPoolLayer (layer0)", BLUE),
            (3, 4, 0.0, "LeNetConvPoolLayer (layer1)", BLUE),
            (6, 6, 0.0, "HiddenLayer", GREEN),
            (7, 7, 1.2, "LogisticRegression", GREEN)):
        _bracket(ax, spans[first - 1][1] + 0.1, spans[last][1] + extra, 4.2, text, color)
    ax.text(spans[7][1] + 0.2, y, "P(y | x)", ha="left", va="center", fontsize=9)
    _fit_width(fig, ax, spans[7][1] + 1.5)
    _save(fig, path)


# -- LeNet-5 (1998) ------------------------------------------------------------


def draw_lenet5_1998(path):
    """LeCun et al.'s LeNet-5: C1, S2, C3, S4, C5, F6 and the RBF output."""
    fig, ax = _new_figure((0, 20.0), (-1.2, 4.9), 13.0)
    y, px = 2.0, 0.075
    spans = _pipeline(ax, y, [
        ("maps", 32 * px, 1, "INPUT", "32 x 32", LIGHT, None, INK),
        ("maps", 28 * px, 6, "C1", "6 @ 28 x 28", MAP_FILL, "5x5\nconv", INK),
        ("maps", 14 * px, 6, "S2", "6 @ 14 x 14", POOL_FILL, "2x2 avg\ncoef, bias", INK),
        ("maps", 10 * px, 16, "C3", "16 @ 10 x 10", MAP_FILL, "5x5 conv\nby table", RED),
        ("maps", 5 * px, 16, "S4", "16 @ 5 x 5", POOL_FILL, "2x2 avg\ncoef, bias", INK),
        ("vector", 3.0, 1, "C5", "120", MAP_FILL, "5x5 conv\nall maps", INK),
        ("vector", 2.2, 1, "F6", "84", DENSE_FILL, "full", INK),
        ("vector", 0.8, 1, "OUTPUT", "10", DENSE_FILL, "RBF", INK),
    ])
    right = spans[-1][1] + 0.6
    ax.text(right / 2, -1.0, "every unit squashes its input with f(a) = 1.7159 tanh(2a/3); "
            "red: the S2-to-C3 connection table", ha="center", va="bottom", fontsize=8.5)
    _fit_width(fig, ax, right)
    _save(fig, path)


# -- the S2 -> C3 connection table ---------------------------------------------

# C3 map -> the S2 maps it reads (LeCun et al. 1998, table I).
C3_INPUTS = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


def draw_c3_table(path):
    """The 6 x 16 table of which S2 maps each C3 map combines."""
    fig, ax = _new_figure((-1.6, 16.4), (-1.9, 7.4), 7.6)
    ax.invert_yaxis()
    groups = [(0, 6, "3 contiguous\nS2 maps", BLUE), (6, 12, "4 contiguous", GREEN),
              (12, 15, "4, not\ncontiguous", ORANGE), (15, 16, "all 6", RED)]
    for start, stop, text, color in groups:
        for col in range(start, stop):
            for row in range(6):
                on = row in C3_INPUTS[col]
                ax.add_patch(Rectangle((col, row), 1, 1, facecolor=color if on else "white",
                                       edgecolor=GREY, linewidth=0.8, alpha=0.85 if on else 1))
        ax.text((start + stop) / 2, 6.25, text, ha="center", va="top", fontsize=8,
                color=color)
    for col in range(16):
        ax.text(col + 0.5, -0.2, str(col), ha="center", va="bottom", fontsize=8)
    for row in range(6):
        ax.text(-0.2, row + 0.5, str(row), ha="right", va="center", fontsize=8)
    ax.text(8.0, -1.1, "C3 feature map", ha="center", va="bottom", fontsize=9)
    ax.text(-1.5, 3.0, "S2\nmap", ha="left", va="center", fontsize=9)
    _save(fig, path)


# -- the filtered 3wolfmoon photograph -------------------------------------------


def find_wolfmoon_image():
    """Path of ``3wolfmoon.jpg``, or None when it is nowhere to be found.

    Looked for in ``doc/images``, then at ``$LENET_IMAGE`` (the variable
    ``code/filter_demo.py`` reads), then in ``$LENET_SHARED_IMAGES``.
    """
    shared = os.environ.get("LENET_SHARED_IMAGES",
                            os.path.join(os.path.dirname(REPO_DIR), "shared", "images"))
    candidates = [os.path.join(IMAGES_DIR, WOLFMOON_JPG),
                  os.environ.get("LENET_IMAGE", ""),
                  os.path.join(shared, WOLFMOON_JPG)]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


class FigureUnavailable(Exception):
    """The figure cannot be drawn here, for a reason that is not a bug."""


def draw_wolfmoon_filtered(path):
    """Run ``code/filter_demo.py`` on the photograph, if there is one."""
    image = find_wolfmoon_image()
    if image is None:
        raise FigureUnavailable(
            f"no {WOLFMOON_JPG} in doc/images, $LENET_IMAGE or $LENET_SHARED_IMAGES")
    script = os.path.join(REPO_DIR, "code", "filter_demo.py")
    # A separate process keeps PyTensor's compilation out of the Sphinx run;
    # never download anything or open a window from a build.
    command = [sys.executable, script, image, "--output", path, "--no-download", "--no-show"]
    done = subprocess.run(command, cwd=REPO_DIR, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed (exit status {done.returncode}):\n"
                           f"{done.stdout}{done.stderr}".rstrip())


FIGURES = {
    "sparse_connectivity.png": draw_sparse_connectivity,
    "shared_weights.png": draw_shared_weights,
    "conv_layer.png": draw_conv_layer,
    "lenet_pipeline.png": draw_lenet_pipeline,
    "lenet5_1998.png": draw_lenet5_1998,
    "c3_table.png": draw_c3_table,
    "3wolfmoon_filtered.png": draw_wolfmoon_filtered,
}


def make_figures(names=None, only_missing=False):
    """Draw the named figures (all by default) into ``doc/images``.

    Returns ``{name: outcome}`` where outcome is ``"written"``, ``"present"``
    (skipped because ``only_missing`` and the file exists) or the reason a
    figure could not be drawn here.
    """
    os.makedirs(IMAGES_DIR, exist_ok=True)
    outcomes = {}
    for name in names or FIGURES:
        if name not in FIGURES:
            raise KeyError(f"unknown figure {name!r}; known: {', '.join(FIGURES)}")
        path = os.path.join(IMAGES_DIR, name)
        if only_missing and os.path.exists(path):
            outcomes[name] = "present"
            continue
        try:
            FIGURES[name](path)
        except FigureUnavailable as why:
            outcomes[name] = str(why)
        else:
            outcomes[name] = "written"
    return outcomes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"figures to draw (default: all): "
                        f"{', '.join(FIGURES)}")
    parser.add_argument("--force", action="store_true",
                        help="redraw figures that already exist")
    args = parser.parse_args(argv)
    outcomes = make_figures(args.names or None, only_missing=not args.force)
    for name, outcome in outcomes.items():
        print(f"{name}: {outcome}")


if __name__ == "__main__":
    main()
