"""Draw the figures of the LeNet tutorial pages into ``doc/images/``.

Usage::

    python doc/make_figures.py                 # draw the figures that are missing
    python doc/make_figures.py --force         # redraw all of them
    python doc/make_figures.py lenet_pipeline.png

The diagrams are plain matplotlib drawings and their PNGs are committed. The
Sphinx build (``conf.py``) calls :func:`make_figures` with
``only_missing=True``, so a fresh checkout builds them without running
anything.

The filter demo's figure is different: ``code/filter_demo.py`` filters a
photograph, and the figure is drawn, not committed. The original tutorial's
picture, ``3wolfmoon.jpg``, is not part of the project; where it can be
found (as ``doc/images/3wolfmoon.jpg``, at the path in ``$LENET_IMAGE``, or
in the folder ``$LENET_SHARED_IMAGES``, by default
``<repository>/../shared/images``) the demo draws
``3wolfmoon_filtered.png``. Everywhere else it draws
``grace_hopper_filtered.png`` from the photograph of Grace Hopper that
matplotlib ships as sample data, so every build has the figure; the page
shows the first of the two that exists and names its photograph. Nothing is
downloaded here (``python code/filter_demo.py`` can fetch 3wolfmoon).
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


# -- the two networks, drawn as pipelines ----------------------------------------
#
# These figures are shown across the whole text column (900 pixels wide at
# most, less in a narrower window), so they are drawn 9 inches wide at 100
# pixels per inch, in two rows, with no text under 11 points: shown 900
# pixels wide, that is a 15-pixel font whose capitals and digits are 11
# pixels tall (the old one-row drawings, 13 inches wide in 7.5 to 8.5 points,
# came out at 5 to 6 pixels). They are saved at twice that resolution, to
# stay sharp on high-density screens.

PIPELINE_WIDTH = 9.0  # inches; an inch is 100 pixels in the page
PIPELINE_MARGIN = 0.12
PIPELINE_DPI = 200
NAME_PT, SHAPE_PT, OP_PT, BRACKET_PT = 12, 11, 11, 11
CONTINUED = "#8a8a8a"


def _text_size(text, size, weight="normal"):
    """Width and height, in inches, of ``text`` set in the default font."""
    fig = Figure(dpi=100)
    renderer = FigureCanvasAgg(fig).get_renderer()
    box = fig.text(0, 0, text, fontsize=size, weight=weight,
                   linespacing=1.15).get_window_extent(renderer)
    return box.width / 100, box.height / 100


class Stage:
    """One tensor of a pipeline and the arrow that leads into it.

    ``kind`` is "maps" (a stack of ``depth`` square maps of side ``size``, at
    most 6 drawn), "vector" (a bar ``size`` high) or "text" (``label`` only,
    on the centre line). ``name`` goes above the drawing, ``label`` (one or
    two lines) below it; ``op`` labels the arrow into the stage, drawn in
    ``color``.
    """

    STEP = 0.06  # offset between the maps of a stack, in inches
    BAR = 0.2  # width of a vector bar, in inches
    GAP = 0.07  # between a drawing and its labels

    def __init__(self, kind, size, name, label, fill="white", op=None, color=INK, depth=1):
        self.kind, self.size, self.depth = kind, size, depth
        self.name, self.label, self.fill, self.op, self.color = name, label, fill, op, color

    @property
    def shown(self):
        return min(self.depth, 6) if self.kind == "maps" else 1

    @property
    def width(self):
        if self.kind == "maps":
            return self.size + (self.shown - 1) * self.STEP
        return self.BAR if self.kind == "vector" else _text_size(self.label, SHAPE_PT)[0]

    @property
    def height(self):
        if self.kind == "maps":
            return self.size + (self.shown - 1) * self.STEP
        return self.size if self.kind == "vector" else 0.0

    @property
    def column(self):
        """Room the stage takes across: its drawing or its widest label."""
        widths = [self.width, _text_size(self.name, NAME_PT, "bold")[0] if self.name else 0]
        if self.kind != "text":
            widths.append(_text_size(self.label, SHAPE_PT)[0])
        return max(widths) + 0.08

    @property
    def arrow(self):
        """Length of the arrow into the stage: its label and a little air."""
        return max(0.5, _text_size(self.op, OP_PT)[0] + 0.12) if self.op else 0.45

    @property
    def above(self):
        """How far the stage and the label of its arrow reach above the centre line."""
        name = self.GAP + _text_size(self.name, NAME_PT, "bold")[1] if self.name else 0.0
        op = 0.09 + _text_size(self.op, OP_PT)[1] if self.op else 0.0
        return max(self.height / 2 + name, op)

    @property
    def below(self):
        """How far the stage and its label reach below the centre line."""
        if self.kind == "text":
            return _text_size(self.label, SHAPE_PT)[1] / 2
        return self.height / 2 + self.GAP + _text_size(self.label, SHAPE_PT)[1]


def _row_positions(stages, brackets, width=None, arrow_extra=None):
    """x of each stage's column, and the arrows' extra length.

    Without ``arrow_extra``, the arrows share what ``width`` leaves over. A
    bracket over a single stage gets room for its text.
    """
    if arrow_extra is None:
        natural = sum(s.column + (s.arrow if i else 0) for i, s in enumerate(stages))
        arrow_extra = max(0.0, width - natural) / max(1, len(stages) - 1)
    arrows = [s.arrow + arrow_extra if i else 0.0 for i, s in enumerate(stages)]
    for first, last, text, _ in brackets:
        if first == last:
            need = _text_size(text, BRACKET_PT)[0] + 0.25 - stages[first].column
            arrows[first] = max(arrows[first], need)
    xs, x = [], PIPELINE_MARGIN
    for stage, arrow in zip(stages, arrows):
        x += arrow
        xs.append(x)
        x += stage.column
    return xs, arrow_extra


def _draw_row(ax, stages, xs, y):
    """Draw one row on the centre line ``y``; return each drawing's (left, right)."""
    spans = []
    for i, (stage, x) in enumerate(zip(stages, xs)):
        left = x + (stage.column - stage.width) / 2
        bottom = y - stage.height / 2
        center, top = left + stage.width / 2, bottom + stage.height
        if stage.kind == "vector":
            ax.add_patch(Rectangle((left, bottom), stage.BAR, stage.size, facecolor=stage.fill,
                                   edgecolor=INK, linewidth=1.0, zorder=3))
        elif stage.kind == "maps":
            for k in reversed(range(stage.shown)):
                ax.add_patch(Rectangle((left + k * stage.STEP, bottom + k * stage.STEP),
                                       stage.size, stage.size, facecolor=stage.fill,
                                       edgecolor=INK, linewidth=0.9, zorder=3 + stage.shown - k))
        if stage.name:
            ax.text(center, top + stage.GAP, stage.name, ha="center", va="bottom",
                    fontsize=NAME_PT, weight="bold", color=INK)
        if stage.kind == "text":
            ax.text(center, y, stage.label, ha="center", va="center", fontsize=SHAPE_PT,
                    color=INK)
        else:
            ax.text(center, bottom - stage.GAP, stage.label, ha="center", va="top",
                    fontsize=SHAPE_PT, color=INK, linespacing=1.15)
        if i:
            prev = spans[-1][1]
            ax.add_patch(FancyArrowPatch((prev + 0.06, y), (left - 0.06, y), arrowstyle="-|>",
                                         mutation_scale=14, color=stage.color, linewidth=1.4,
                                         zorder=5))
            if stage.op:
                ax.text((prev + left) / 2, y + 0.09, stage.op, ha="center", va="bottom",
                        fontsize=OP_PT, color=stage.color, linespacing=1.15)
        spans.append((left, left + stage.width))
    return spans


def _bracket(ax, x0, x1, y, text, color):
    ax.plot([x0, x0, x1, x1], [y - 0.1, y, y, y - 0.1], color=color, linewidth=1.8,
            solid_capstyle="butt")
    ax.text((x0 + x1) / 2, y + 0.06, text, ha="center", va="bottom", fontsize=BRACKET_PT,
            color=color)


def _two_row_pipeline(rows, brackets=((), ()), note=None):
    """A 9-inch figure of two rows of stages, the second continuing the first.

    ``brackets[r]`` lists ``(first, last, text, color)``: a bracket above row
    ``r`` over the arrow into stage ``first`` and the stages up to ``last``.
    The second row starts with the last tensor of the first drawn again, and
    a dashed line leads from one copy to the other.
    """
    bracket_h = 0.2 + _text_size("Ag", BRACKET_PT)[1]
    xs0, extra = _row_positions(rows[0], brackets[0], PIPELINE_WIDTH - 2 * PIPELINE_MARGIN)
    xs1, _ = _row_positions(rows[1], brackets[1], arrow_extra=extra)
    above = [max(s.above for s in row) + (bracket_h if b else 0.0)
             for row, b in zip(rows, brackets)]
    below = [max(s.below for s in row) for row in rows]
    gap = 0.45  # between the rows, where the dashed line runs
    note_h = _text_size(note, OP_PT)[1] + 0.2 if note else 0.0
    height = 0.12 + above[0] + below[0] + gap + above[1] + below[1] + 0.12 + note_h
    fig = Figure(figsize=(PIPELINE_WIDTH, height), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.set_xlim(0, PIPELINE_WIDTH)
    ax.set_ylim(0, height)
    y0 = height - 0.12 - above[0]
    y1 = y0 - below[0] - gap - above[1]
    spans = []
    for row, xs, y, marks in zip(rows, (xs0, xs1), (y0, y1), brackets):
        spans.append(_draw_row(ax, row, xs, y))
        top = y + max(s.above for s in row) + 0.1
        for first, last, text, color in marks:
            _bracket(ax, spans[-1][first - 1][1] + 0.08, spans[-1][last][1] + 0.04, top,
                     text, color)
    # The dashed line: down from the last tensor of row 1, across, and down
    # into its copy at the start of row 2.
    x_from, x_to = sum(spans[0][-1]) / 2, sum(spans[1][0]) / 2
    y_mid = y0 - below[0] - gap / 2
    start = y0 - rows[0][-1].below - 0.05
    end = y1 + rows[1][0].above + 0.04
    ax.plot([x_from, x_from, x_to], [start, y_mid, y_mid], color=CONTINUED, linewidth=1.2,
            linestyle=(0, (4, 3)), zorder=1)
    ax.add_patch(FancyArrowPatch((x_to, y_mid), (x_to, end), arrowstyle="-|>",
                                 mutation_scale=12, color=CONTINUED, linewidth=1.2,
                                 linestyle=(0, (4, 3)), zorder=1))
    if note:
        ax.text(PIPELINE_WIDTH / 2, 0.1, note, ha="center", va="bottom", fontsize=OP_PT,
                color=INK, linespacing=1.3)
    return fig


def _save_pipeline(fig, path):
    fig.savefig(path, dpi=PIPELINE_DPI, metadata={"Software": None})


def draw_lenet_pipeline(path):
    """The tutorial's model with the tensor shapes it really computes."""
    px = 0.03  # inches per pixel of a feature map
    rows = [[
        Stage("maps", 28 * px, "input", "batch x 1\nx 28 x 28", LIGHT),
        Stage("maps", 24 * px, "conv", "batch x 20\nx 24 x 24", MAP_FILL,
              "conv 5x5\n20 filters", depth=20),
        Stage("maps", 12 * px, "layer0", "batch x 20\nx 12 x 12", POOL_FILL,
              "max-pool 2x2\n+b, tanh", depth=20),
        Stage("maps", 8 * px, "conv", "batch x 50\nx 8 x 8", MAP_FILL,
              "conv 5x5\n50 filters", depth=50),
        Stage("maps", 4 * px, "layer1", "batch x 50\nx 4 x 4", POOL_FILL,
              "max-pool 2x2\n+b, tanh", depth=50),
    ], [
        Stage("maps", 4 * px, "layer1", "batch x 50\nx 4 x 4", POOL_FILL, depth=50),
        Stage("vector", 1.5, "", "batch\nx 800", LIGHT, "flatten(2)"),
        Stage("vector", 1.0, "layer2", "batch\nx 500", DENSE_FILL, "dense\ntanh"),
        Stage("vector", 0.3, "layer3", "batch\nx 10", DENSE_FILL, "dense\nsoftmax"),
        Stage("text", 0, "", "P(y | x)"),
    ]]
    brackets = (
        [(1, 2, "LeNetConvPoolLayer (layer0)", BLUE),
         (3, 4, "LeNetConvPoolLayer (layer1)", BLUE)],
        [(2, 2, "HiddenLayer (layer2)", GREEN),
         (3, 3, "LogisticRegression (layer3)", GREEN)],
    )
    _save_pipeline(_two_row_pipeline(rows, brackets), path)


# -- LeNet-5 (1998) ------------------------------------------------------------


def draw_lenet5_1998(path):
    """LeCun et al.'s LeNet-5: C1, S2, C3, S4, C5, F6 and the RBF output."""
    px = 0.03
    rows = [[
        Stage("maps", 32 * px, "INPUT", "32 x 32", LIGHT),
        Stage("maps", 28 * px, "C1", "6 maps\n28 x 28", MAP_FILL, "5x5\nconv", depth=6),
        Stage("maps", 14 * px, "S2", "6 maps\n14 x 14", POOL_FILL, "2x2 average\ncoef, bias",
              depth=6),
        Stage("maps", 10 * px, "C3", "16 maps\n10 x 10", MAP_FILL, "5x5 conv\nby table", RED,
              depth=16),
        Stage("maps", 5 * px, "S4", "16 maps\n5 x 5", POOL_FILL, "2x2 average\ncoef, bias",
              depth=16),
    ], [
        Stage("maps", 5 * px, "S4", "16 maps\n5 x 5", POOL_FILL, depth=16),
        Stage("vector", 1.5, "C5", "120", MAP_FILL, "5x5 conv\nall maps"),
        Stage("vector", 1.05, "F6", "84", DENSE_FILL, "full"),
        Stage("vector", 0.3, "OUTPUT", "10", DENSE_FILL, "RBF"),
    ]]
    note = ("every unit squashes its input with f(a) = 1.7159 tanh(2a/3)\n"
            "red: C3 reads the S2 maps through the connection table")
    _save_pipeline(_two_row_pipeline(rows, note=note), path)


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


# -- the multilayer perceptron -------------------------------------------------


def draw_mlp(path):
    """The tutorial's perceptron: 784 inputs, 500 tanh units, 10 softmax outputs.

    Drawn, like the pipelines, 9 inches wide for the whole text column, with
    no text under 11 points, and saved at twice the page's resolution.
    """
    fig, ax = _new_figure((0.0, PIPELINE_WIDTH), (0.15, 4.75), PIPELINE_WIDTH)
    step, r = 0.5, 0.17
    # (x of the column, labels of the units drawn, None where the dots go)
    columns = [
        (1.6, ["$x_{1}$", "$x_{2}$", "$x_{3}$", None, "$x_{783}$", "$x_{784}$"]),
        (4.65, ["", "", "", None, ""]),
        (7.45, ["P(Y=0 | x)", "P(Y=1 | x)", "P(Y=2 | x)", None, "P(Y=9 | x)"]),
    ]
    centre = 2.35
    units = []  # per column: [(x, y)] of the circles drawn
    for x, labels in columns:
        top = centre + step * (len(labels) - 1) / 2
        drawn = []
        for k, label in enumerate(labels):
            y = top - k * step
            if label is None:
                for dy in (-0.12, 0.0, 0.12):
                    ax.add_patch(Circle((x, y + dy), 0.03, color=INK, zorder=3))
                continue
            drawn.append((x, y, label))
        units.append(drawn)
    fills = (LIGHT, DENSE_FILL, DENSE_FILL)
    # every unit of a layer is wired to every unit of the next
    lit = units[1][0]  # the hidden unit whose inputs are highlighted
    for lower, upper in ((units[0], units[1]), (units[1], units[2])):
        for (x0, y0, _) in lower:
            for (x1, y1, _) in upper:
                hot = (x1, y1) == lit[:2]
                _line(ax, (x0 + r, y0), (x1 - r, y1), color=BLUE if hot else GREY,
                      width=1.8 if hot else 0.8, z=2 if hot else 1)
    for column, fill in zip(units, fills):
        for x, y, label in column:
            _unit(ax, x, y, BLUE if (x, y) == lit[:2] else fill, r=r)
    for x, y, label in units[0]:
        ax.text(x - r - 0.12, y, label, ha="right", va="center", fontsize=SHAPE_PT)
    for x, y, label in units[2]:
        ax.text(x + r + 0.12, y, label, ha="left", va="center", fontsize=SHAPE_PT)
    heads = (("input x", "784 pixels of a digit"), ("hidden layer h", "500 units, tanh"),
             ("output", "10 units, softmax"))
    for (x, _), (name, what) in zip(columns, heads):
        ax.text(x, 4.68, name, ha="center", va="top", fontsize=NAME_PT, weight="bold")
        ax.text(x, 4.33, what, ha="center", va="top", fontsize=SHAPE_PT)
    weights = (
        ("$W^{(1)}$: 784 x 500, $b^{(1)}$: 500\na HiddenLayer", GREEN),
        ("$W^{(2)}$: 500 x 10, $b^{(2)}$: 10\na LogisticRegression", GREEN),
    )
    for (x0, _), (x1, _), (text, color) in zip(columns, columns[1:], weights):
        ax.text((x0 + x1) / 2, 0.22, text, ha="center", va="bottom", fontsize=SHAPE_PT,
                color=color, linespacing=1.3)
    ax.text(3.1, 3.95, "blue: one hidden unit reads all 784 pixels", ha="center",
            va="center", fontsize=SHAPE_PT, color=BLUE)
    _save_pipeline(fig, path)


# -- the filter demo: a photograph through two random filters ------------------


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


def sample_photograph():
    """matplotlib's sample photograph of Grace Hopper (600 rows of 512 pixels).

    The same picture ``code/filter_demo.py`` falls back to; every
    installation of matplotlib has it.
    """
    import matplotlib.cbook

    return str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


class FigureUnavailable(Exception):
    """The figure cannot be drawn here, for a reason that is not a bug."""


def _filter_demo(image, path):
    """Run ``code/filter_demo.py`` on ``image``, writing its figure to ``path``."""
    script = os.path.join(REPO_DIR, "code", "filter_demo.py")
    # A separate process keeps PyTensor's compilation out of the Sphinx run;
    # never download anything or open a window from a build.
    command = [sys.executable, script, image, "--output", path, "--no-download", "--no-show"]
    done = subprocess.run(command, cwd=REPO_DIR, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed (exit status {done.returncode}):\n"
                           f"{done.stdout}{done.stderr}".rstrip())


def draw_wolfmoon_filtered(path):
    """The demo on the original tutorial's photograph, if it is here."""
    image = find_wolfmoon_image()
    if image is None:
        raise FigureUnavailable(
            f"no {WOLFMOON_JPG} in doc/images, $LENET_IMAGE or $LENET_SHARED_IMAGES")
    _filter_demo(image, path)


def draw_grace_hopper_filtered(path):
    """The demo on matplotlib's photograph: the figure where 3wolfmoon is not."""
    _filter_demo(sample_photograph(), path)


FIGURES = {
    "sparse_connectivity.png": draw_sparse_connectivity,
    "shared_weights.png": draw_shared_weights,
    "conv_layer.png": draw_conv_layer,
    "lenet_pipeline.png": draw_lenet_pipeline,
    "lenet5_1998.png": draw_lenet5_1998,
    "c3_table.png": draw_c3_table,
    "mlp.png": draw_mlp,
    "3wolfmoon_filtered.png": draw_wolfmoon_filtered,
    "grace_hopper_filtered.png": draw_grace_hopper_filtered,
}

# A stand-in is drawn only where the figure it stands in for is not on disk
# (after the attempt to draw that one: FIGURES lists it first), unless it is
# redrawn on purpose (only_missing=False).
STAND_INS = {"grace_hopper_filtered.png": "3wolfmoon_filtered.png"}


def make_figures(names=None, only_missing=False):
    """Draw the named figures (all by default) into ``doc/images``.

    Returns ``{name: outcome}`` where outcome is ``"written"``, ``"present"``
    (skipped because ``only_missing`` and the file exists) or the reason a
    figure was not drawn here.
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
        original = STAND_INS.get(name)
        if only_missing and original and os.path.exists(os.path.join(IMAGES_DIR, original)):
            outcomes[name] = f"not needed: {original} is there"
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
