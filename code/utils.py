"""Image tiling and plotting helpers for the LeNet tutorial scripts.

``tile_raster_images`` lays out many small images (for instance the rows of a
weight matrix, or the filters of a convolutional layer) as one grid image,
the way the Deep Learning Tutorials display learnt weights.

The plotting helpers draw PNG files with matplotlib's Agg renderer through
:class:`matplotlib.figure.Figure` objects: they never touch pyplot's global
state, never open a window and work on machines without a display. Each PNG
is written atomically, so a crash never leaves a half-written picture.

Command line::

    python code/utils.py plot-filters best_model.npz --param layer0_W -o filters.png

plots first-layer filters from a saved model (a ``.npz`` archive of
parameter arrays; it is read with ``allow_pickle=False``).
"""
import argparse
import math
import os
import sys

import numpy

from atomic_file import atomic_write
from command_line import positive_ints

__all__ = [
    "scale_to_unit_interval",
    "tile_raster_images",
    "plot_error_history",
    "plot_filters",
    "filters_to_tiles",
    "load_npz_param",
    "write_training_plots",
    "plot_digit_prediction",
    "new_figure",
    "save_figure",
    "main",
]


# ---------------------------------------------------------------------------
# Tiling
# ---------------------------------------------------------------------------

def scale_to_unit_interval(ndar, eps=1e-8):
    """Shift and scale an array so that its values span [0, 1].

    Parameters
    ----------
    ndar : array_like
        Any numeric array.
    eps : float, optional
        Added to the range before dividing, so a constant array maps to
        zeros instead of dividing by zero.

    Returns
    -------
    numpy.ndarray
        ``(ndar - min) / (max - min + eps)``, a new floating-point array
        (integer input gives float64; float input keeps its precision).
    """
    values = numpy.asarray(ndar)
    if not numpy.issubdtype(values.dtype, numpy.floating):
        values = values.astype(numpy.float64)
    shifted = values - values.min()
    return shifted * (1.0 / (shifted.max() + eps))


def _tile_channel(X, img_shape, tile_shape, tile_spacing, scale_rows, output_pixel_vals):
    """Tile the rows of one 2-D array into a single-channel image."""
    X = numpy.asarray(X)
    img_h, img_w = img_shape
    n_rows, n_cols = tile_shape
    gap_h, gap_w = tile_spacing
    if X.ndim != 2 or X.shape[1] != img_h * img_w:
        raise ValueError(
            f"X must have shape (n_images, {img_h * img_w}) for img_shape "
            f"{tuple(img_shape)}, got {X.shape}"
        )
    out_shape = (n_rows * (img_h + gap_h) - gap_h, n_cols * (img_w + gap_w) - gap_w)
    out_dtype = numpy.uint8 if output_pixel_vals else X.dtype
    out = numpy.zeros(out_shape, dtype=out_dtype)
    # 255 spreads [0, 1] over the full 8-bit range.
    gain = 255 if output_pixel_vals else 1
    for index in range(min(X.shape[0], n_rows * n_cols)):
        row, col = divmod(index, n_cols)
        image = X[index].reshape(img_shape)
        if scale_rows:
            image = scale_to_unit_interval(image)
        image = image * gain
        if output_pixel_vals:
            # Out-of-range values (possible without scaling) would wrap
            # around in the uint8 cast; clip them. Truncation, not rounding,
            # is kept for values in range.
            image = numpy.clip(image, 0, 255)
        top = row * (img_h + gap_h)
        left = col * (img_w + gap_w)
        out[top:top + img_h, left:left + img_w] = image
    return out


def tile_raster_images(X, img_shape, tile_shape, tile_spacing=(0, 0),
                       scale_rows_to_unit_interval=True, output_pixel_vals=True):
    """Arrange flattened images as a grid in one picture.

    Each row of ``X`` is one image of shape ``img_shape``, flattened in C
    order. Images fill the grid row by row, from the top left; tiles beyond
    the number of images stay black, and images beyond the number of tiles
    are ignored. Tiles are separated by ``tile_spacing`` black pixels.

    Parameters
    ----------
    X : numpy.ndarray or tuple of 4
        Either a 2-D array of shape ``(n_images, height * width)``, or a
        tuple ``(R, G, B, A)`` of such arrays (or ``None``) giving the four
        channels of a colour picture. A ``None`` channel is filled with 0,
        except alpha, which is filled with full opacity (255, or 1 when
        ``output_pixel_vals`` is false).
    img_shape : tuple of 2 ints
        ``(height, width)`` of each image.
    tile_shape : tuple of 2 ints
        ``(rows, columns)`` of the grid.
    tile_spacing : tuple of 2 ints, optional
        Vertical and horizontal gaps between tiles, in pixels.
    scale_rows_to_unit_interval : bool, optional
        Rescale each image separately to [0, 1] (with
        :func:`scale_to_unit_interval`) before tiling; otherwise values are
        used as they are.
    output_pixel_vals : bool, optional
        Return ``uint8`` pixel values 0..255 (``value * 255``, truncated,
        and clipped to the range); otherwise return the values in the dtype
        of ``X``.

    Returns
    -------
    numpy.ndarray
        Of shape ``(rows * (height + gap_h) - gap_h,
        columns * (width + gap_w) - gap_w)``, with a trailing axis of 4 for
        tuple input.

    Examples
    --------
    >>> X = numpy.arange(8.0).reshape(2, 4)
    >>> tile_raster_images(X, (2, 2), (1, 2), tile_spacing=(0, 1))
    array([[  0,  84,   0,   0,  84],
           [169, 254,   0, 169, 254]], dtype=uint8)

    (``eps`` in the scaling and truncation make the brightest pixel 254.)
    """
    if len(img_shape) != 2 or len(tile_shape) != 2 or len(tile_spacing) != 2:
        raise ValueError("img_shape, tile_shape and tile_spacing must each have 2 entries")

    if not isinstance(X, tuple):
        return _tile_channel(X, img_shape, tile_shape, tile_spacing,
                             scale_rows_to_unit_interval, output_pixel_vals)

    if len(X) != 4:
        raise ValueError(f"a tuple X must hold 4 channels (R, G, B, A), got {len(X)}")
    channels = [
        None if channel is None else _tile_channel(
            channel, img_shape, tile_shape, tile_spacing,
            scale_rows_to_unit_interval, output_pixel_vals)
        for channel in X
    ]
    present = [channel for channel in channels if channel is not None]
    if output_pixel_vals:
        dtype = numpy.uint8
    elif present:
        dtype = numpy.result_type(*present)
    else:
        dtype = numpy.float64
    img_h, img_w = img_shape
    (n_rows, n_cols), (gap_h, gap_w) = tile_shape, tile_spacing
    out = numpy.zeros((n_rows * (img_h + gap_h) - gap_h,
                       n_cols * (img_w + gap_w) - gap_w, 4), dtype=dtype)
    opaque = 255 if output_pixel_vals else 1
    for index, channel in enumerate(channels):
        if channel is not None:
            out[:, :, index] = channel
        elif index == 3:
            # A missing alpha channel means "fully opaque", not "invisible".
            out[:, :, index] = opaque
    return out


# ---------------------------------------------------------------------------
# Writing figures
# ---------------------------------------------------------------------------

def new_figure(width, height, dpi=100):
    """A matplotlib Figure with an Agg canvas, independent of pyplot.

    Parameters
    ----------
    width, height : float
        Size in inches.
    dpi : int, optional
        Pixels per inch of the saved PNG.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path):
    """Write a figure as PNG, atomically.

    The picture goes to a temporary file in the destination folder, which
    is flushed, fsync'ed and renamed over ``path``; on error the temporary
    file is removed and any existing ``path`` is left untouched.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure (with an Agg canvas, as made by this module).
    path : str or os.PathLike
        The PNG file to write.

    Returns
    -------
    str
        The absolute path written.
    """
    return atomic_write(path, lambda stream: fig.savefig(stream, format="png"))


# ---------------------------------------------------------------------------
# Error history
# ---------------------------------------------------------------------------

def _finite_percent(value):
    """``100 * value`` as a float, or NaN when missing or not finite."""
    if value is None:
        return math.nan
    value = float(value)
    return 100.0 * value if math.isfinite(value) else math.nan


def _epoch_positions(epochs):
    """X positions for history records; several in one epoch are spread out.

    The k-th of m records made during epoch e is placed at
    ``e - 1 + (k + 1) / m``, so a run that validates once per epoch gets
    exactly its epoch numbers.
    """
    counts = {}
    for epoch in epochs:
        counts[epoch] = counts.get(epoch, 0) + 1
    seen = {}
    positions = []
    for epoch in epochs:
        k = seen.get(epoch, 0)
        seen[epoch] = k + 1
        positions.append(epoch - 1 + (k + 1) / counts[epoch])
    return numpy.array(positions, dtype=float)


def plot_error_history(history, path, title="Error rates during training"):
    """Plot validation and test error (in %) against the epoch, as a PNG.

    Parameters
    ----------
    history : list of dict
        One record per validation, in order, each with keys ``'epoch'``
        (int, counted from 1), ``'iteration'`` (int),
        ``'validation_error'`` (float, a fraction) and ``'test_error'``
        (float fraction or ``None``: the test error of the best model so
        far, as recorded by ``early_stopping.py``). Missing or non-finite test
        errors are left out of the test curve.
    path : str or os.PathLike
        The PNG file to write (atomically).
    title : str, optional
        Figure title.

    Returns
    -------
    str
        The absolute path written.

    Raises
    ------
    ValueError
        If ``history`` is empty or a record lacks a required key.
    """
    if not history:
        raise ValueError("the error history is empty: nothing to plot")
    try:
        epochs = [int(record["epoch"]) for record in history]
        valid = numpy.array([_finite_percent(r["validation_error"]) for r in history])
    except KeyError as exc:
        raise ValueError(f"a history record has no {exc.args[0]!r} entry") from None
    test = numpy.array([_finite_percent(r.get("test_error")) for r in history])
    x = _epoch_positions(epochs)

    fig = new_figure(6.4, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(x, valid, marker="o", markersize=3, label="validation error")
    if numpy.isfinite(test).any():
        shown = numpy.isfinite(test)
        # The test error only changes when a new best model is found.
        ax.step(x[shown], test[shown], where="post", marker="s", markersize=3,
                label="test error of the best model")
    if numpy.isfinite(valid).any():
        best = int(numpy.nanargmin(valid))
        ax.plot([x[best]], [valid[best]], linestyle="none", marker="*", markersize=12,
                color="tab:red",
                label=f"best validation: {valid[best]:.2f}% (epoch {epochs[best]})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("error (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    return save_figure(fig, path)


# ---------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------

def _near_square_grid(n):
    """(rows, columns) of the smallest near-square grid holding n tiles."""
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    return rows, cols


def filters_to_tiles(W, img_shape=None, tile_shape=None, tile_spacing=(1, 1)):
    """Tile first-layer weights into a uint8 picture.

    Parameters
    ----------
    W : array_like
        Either convolution filters of shape ``(n_filters, channels, h, w)``
        or a weight matrix of shape ``(n_pixels, n_units)`` whose columns
        are images (logistic regression, MLP hidden layer). Filters with
        3 channels are shown in colour; other channel counts give one
        grey tile per (filter, channel), a row per filter.
    img_shape : tuple of 2 ints, optional
        Image shape for a weight matrix; by default the square root of
        ``n_pixels`` (28 x 28 for MNIST). Ignored for 4-D filters.
    tile_shape : tuple of 2 ints, optional
        Grid ``(rows, columns)``; by default a near-square grid.
    tile_spacing : tuple of 2 ints, optional
        Gap between tiles, in pixels.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array, 2-D (grey) or 3-D with 4 channels (colour).
    """
    W = numpy.asarray(W)
    if W.ndim == 4:
        n, channels, h, w = W.shape
        if channels == 3:
            flat = W.reshape(n, 3, h * w)
            grid = tile_shape or _near_square_grid(n)
            # Scale all three channels of a filter together so colours keep
            # their balance.
            lo = flat.min(axis=(1, 2), keepdims=True)
            hi = flat.max(axis=(1, 2), keepdims=True)
            flat = (flat - lo) / (hi - lo + 1e-8)
            rgb = tuple(flat[:, c, :] for c in range(3))
            return tile_raster_images(rgb + (None,), (h, w), grid, tile_spacing,
                                      scale_rows_to_unit_interval=False)
        grid = tile_shape or ((n, channels) if channels > 1 else _near_square_grid(n))
        return tile_raster_images(W.reshape(n * channels, h * w), (h, w), grid, tile_spacing)
    if W.ndim == 2:
        n_pixels, n_units = W.shape
        if img_shape is None:
            side = math.isqrt(n_pixels)
            if side * side != n_pixels:
                raise ValueError(
                    f"cannot guess the image shape of {n_pixels}-pixel columns: "
                    "pass img_shape")
            img_shape = (side, side)
        grid = tile_shape or _near_square_grid(n_units)
        return tile_raster_images(W.T, tuple(img_shape), grid, tile_spacing)
    raise ValueError(
        "W must be 4-D conv filters (n_filters, channels, h, w) or a 2-D weight "
        f"matrix (n_pixels, n_units), got shape {W.shape}")


def plot_filters(W, path, title=None, img_shape=None, tile_shape=None,
                 tile_spacing=(1, 1), min_pixels=480):
    """Draw first-layer filters as a tiled PNG.

    Parameters
    ----------
    W : array_like
        ``(n_filters, channels, h, w)`` convolution filters or an
        ``(n_pixels, n_units)`` weight matrix; see :func:`filters_to_tiles`.
    path : str or os.PathLike
        The PNG file to write (atomically).
    title : str, optional
        Figure title; by default a description of ``W``'s shape.
    img_shape, tile_shape, tile_spacing
        Passed to :func:`filters_to_tiles`.
    min_pixels : int, optional
        Approximate size of the longer side of the drawn grid, so that tiny
        5x5 filters are enlarged (without smoothing) to a visible size.

    Returns
    -------
    str
        The absolute path written.
    """
    W = numpy.asarray(W)
    tiles = filters_to_tiles(W, img_shape, tile_shape, tile_spacing)
    if title is None:
        kind = "filters" if W.ndim == 4 else "weight columns"
        title = f"{W.shape[0] if W.ndim == 4 else W.shape[1]} {kind} {tuple(W.shape)}"
    height, width = tiles.shape[:2]
    dpi = 100
    zoom = max(1.0, min_pixels / max(height, width))
    title_in = 0.4
    fig = new_figure(width * zoom / dpi + 0.2, height * zoom / dpi + title_in + 0.2, dpi=dpi)
    fig_w, fig_h = fig.get_size_inches()
    ax = fig.add_axes((0.1 / fig_w, 0.1 / fig_h,
                       1 - 0.2 / fig_w, 1 - (title_in + 0.2) / fig_h))
    ax.imshow(tiles, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_axis_off()
    fig.suptitle(title, y=1 - 0.05 / fig_h, va="top", fontsize=10)
    return save_figure(fig, path)


# ---------------------------------------------------------------------------
# What the network sees of one digit
# ---------------------------------------------------------------------------

def _tile_maps(maps, spacing=1):
    """Feature maps ``(k, h, w)`` in a near-square grid, NaN around and between them."""
    maps = numpy.asarray(maps, dtype=float)
    k, h, w = maps.shape
    rows, cols = _near_square_grid(k)
    out = numpy.full((rows * (h + spacing) - spacing, cols * (w + spacing) - spacing), numpy.nan)
    for index in range(k):
        row, col = divmod(index, cols)
        top, left = row * (h + spacing), col * (w + spacing)
        out[top:top + h, left:left + w] = maps[index]
    return out


def plot_digit_prediction(path, image, maps, probabilities, title=None,
                          input_range=(0.0, 1.0), map_range=(-1.0, 1.0)):
    """Draw one picture's way through a LeNet as a PNG.

    From left to right: the input as the network gets it, the feature maps
    of each convolution layer (a grid, in the order of the filters) and the
    ten class probabilities as bars, the predicted digit's in red.

    Parameters
    ----------
    path : str or os.PathLike
        The PNG file to write (atomically).
    image : array_like
        The ``(h, w)`` input.
    maps : list of (str, array_like)
        ``(title, (k, h, w) maps)`` for each layer shown.
    probabilities : array_like
        The 10 class probabilities.
    title : str, optional
        Figure title.
    input_range, map_range : tuple of 2 floats
        The values drawn black and white in the input and in the maps (the
        ``tanh`` maps of the tutorial's LeNet lie in [-1, 1]); the grids'
        gaps are light blue.

    Returns
    -------
    str
        The absolute path written.
    """
    import matplotlib

    image = numpy.asarray(image, dtype=float)
    probabilities = numpy.asarray(probabilities, dtype=float)
    tiles = [(name, numpy.asarray(m).shape, _tile_maps(m)) for name, m in maps]
    widths = [1.0] + [t.shape[1] / t.shape[0] for _, _, t in tiles] + [1.5]
    fig = new_figure(2.3 * sum(widths) + 0.8, 3.3)
    grid = fig.add_gridspec(1, len(widths), width_ratios=widths, wspace=0.3,
                            left=0.02, right=0.98, bottom=0.12, top=0.78)
    gray = matplotlib.colormaps["gray"].with_extremes(bad="#bcd4ec")
    panels = [(f"input {image.shape[0]}x{image.shape[1]}", image, input_range)]
    panels += [(f"{name}: {shape[0]} maps {shape[1]}x{shape[2]}", t, map_range)
               for name, shape, t in tiles]
    for column, (label, values, (low, high)) in enumerate(panels):
        ax = fig.add_subplot(grid[0, column])
        ax.imshow(values, cmap=gray, vmin=low, vmax=high, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.set_axis_off()
    ax = fig.add_subplot(grid[0, len(panels)])
    best = int(numpy.argmax(probabilities))
    colors = ["tab:red" if digit == best else "0.55" for digit in range(len(probabilities))]
    ax.bar(numpy.arange(len(probabilities)), probabilities, color=colors)
    ax.set_xticks(numpy.arange(len(probabilities)))
    ax.set_ylim(0.0, 1.0)
    ax.set_title("probabilities", fontsize=9)
    ax.tick_params(labelsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


# ---------------------------------------------------------------------------
# A training run's plots
# ---------------------------------------------------------------------------

def write_training_plots(plots_dir, tutorial, history, filters):
    """Write a run's error-history and filter PNGs, if possible.

    Plotting is optional decoration: any failure (no matplotlib, a full
    disk ...) is reported on stderr and otherwise ignored, so it can never
    lose a training result.

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
         lambda path: plot_error_history(history, path, title=f"{tutorial}: error rates")),
    ]
    if filters is not None:
        jobs.append(
            ("filters", f"{tutorial}_filters.png", lambda path: plot_filters(filters, path)))
    for what, name, job in jobs:
        path = os.path.join(plots_dir, name)
        try:
            os.makedirs(plots_dir, exist_ok=True)
            job(path)
            written.append(path)
        except Exception as exc:  # plots must never lose a training result
            print(
                f"warning: could not write the {what} plot {path} "
                f"({type(exc).__name__}: {exc})",
                file=sys.stderr,
            )
    return written


# ---------------------------------------------------------------------------
# Saved models
# ---------------------------------------------------------------------------

DEFAULT_PARAMS = ("layer0_W", "W")


def load_npz_param(model_path, param=None):
    """Read one parameter array from a saved model or checkpoint (``.npz``).

    Parameters
    ----------
    model_path : str or os.PathLike
        The ``.npz`` archive (read by :func:`checkpoints.read_npz`: never
        unpickled).
    param : str, optional
        The array to read; by default ``layer0_W`` when present, else ``W``.

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    ValueError
        If the file is missing, not a readable ``.npz`` archive, or lacks
        the array (:class:`errors.CheckpointError` is a ``ValueError``).
    """
    from checkpoints import read_npz

    model_path = os.fspath(model_path)
    arrays = read_npz(model_path, "saved model")
    names = [name for name in arrays if name != "meta"]
    if param is None:
        param = next((name for name in DEFAULT_PARAMS if name in names), None)
        if param is None:
            raise ValueError(
                f"{model_path} has none of {', '.join(DEFAULT_PARAMS)}; choose one "
                f"with --param among: {', '.join(names) or '(no arrays)'}")
    if param not in names:
        raise ValueError(
            f"{model_path} has no array {param!r}; it has: {', '.join(names) or '(none)'}")
    return arrays[param]


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def build_parser():
    """The argparse parser of ``python code/utils.py``."""
    parser = argparse.ArgumentParser(
        prog="utils.py",
        description="Plotting helpers of the LeNet tutorial.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    filters = commands.add_parser(
        "plot-filters",
        help="draw first-layer filters from a saved model (.npz) as a PNG",
        description="Draw first-layer filters from a saved model (.npz of parameter "
                    "arrays, read without pickle) as a tiled PNG.",
    )
    filters.add_argument("model", help="the saved model, a .npz archive")
    filters.add_argument(
        "--param", default=None,
        help="name of the array to draw: (n, channels, h, w) conv filters or an "
             "(n_pixels, n_units) weight matrix (default: layer0_W, else W)")
    filters.add_argument("-o", "--output", default="filters.png",
                         help="PNG file to write (default: filters.png)")
    filters.add_argument("--title", default=None, help="figure title (default: the array's shape)")
    filters.add_argument("--img-shape", type=positive_ints(2, "28,28"), default=None,
                         metavar="H,W",
                         help="image shape of weight-matrix columns (default: square)")
    filters.add_argument("--tile-shape", type=positive_ints(2, "10,10"), default=None,
                         metavar="ROWS,COLS",
                         help="grid of tiles (default: near-square)")
    return parser


def main(argv=None):
    """Run the command line; returns 0 or raises SystemExit with a message."""
    args = build_parser().parse_args(argv)
    if args.command == "plot-filters":
        try:
            W = load_npz_param(args.model, args.param)
            path = plot_filters(W, args.output, title=args.title,
                                img_shape=args.img_shape, tile_shape=args.tile_shape)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"utils.py plot-filters: error: {exc}")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
