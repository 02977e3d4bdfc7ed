"""Apply an untrained convolutional layer to a colour photograph.

The layer has the three colour channels of the picture as input maps and
two output maps, each computed with random 9 x 9 filters, a random bias and
a sigmoid. Even without training, such filters tend to respond to edges.
The script draws the photograph next to the two output maps and writes the
figure as a PNG.

Usage::

    python code/filter_demo.py                       # the 3wolfmoon picture
    python code/filter_demo.py photo.png --output filtered.png

Without an image argument, ``3wolfmoon.jpg`` (the tutorial's picture, not
distributed with this project) is looked for, in order: in ``doc/images/``
of the repository, at the path in the ``LENET_IMAGE`` environment variable,
then downloaded from the original tutorial's repository into
``doc/images/``. Offline, the demo falls back to the photograph of Grace
Hopper that matplotlib ships as sample data, and says so.
"""
import argparse
import functools
import os
import sys
import types

import numpy
import pytensor
import pytensor.tensor as pt

from downloads import DownloadFailed, download
from pytensor_nnet import conv2d

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGES_DIR = os.path.join(REPO_DIR, "doc", "images")
IMAGE_NAME = "3wolfmoon.jpg"
IMAGE_URL = ("https://raw.githubusercontent.com/lisa-lab/DeepLearningTutorials/"
             "master/doc/images/3wolfmoon.jpg")
DEFAULT_OUTPUT = "3wolfmoon_filtered.png"
MAX_IMAGE_BYTES = 1 << 25  # the photograph is 50 kB
SEED = 23455

@functools.cache
def random_layer():
    """Build and compile the untrained layer (once; later calls return it).

    Returns
    -------
    types.SimpleNamespace
        ``input`` (the symbolic minibatch), ``W``, ``b`` (shared variables)
        and ``f``, the compiled function of the input.
    """
    # start-snippet-1
    rng = numpy.random.RandomState(SEED)

    # The input: a minibatch of colour images, (images, 3 channels, rows, columns).
    input = pt.tensor4(name="input", dtype="float64")

    # Two output maps, each looking at the 3 input maps through a 9 x 9 window.
    # Each unit has 3 * 9 * 9 inputs (its fan-in); the weights are drawn
    # uniformly within +-1/sqrt(fan-in).
    w_shp = (2, 3, 9, 9)
    w_bound = numpy.sqrt(3 * 9 * 9)
    W = pytensor.shared(
        numpy.asarray(rng.uniform(low=-1.0 / w_bound, high=1.0 / w_bound, size=w_shp),
                      dtype=input.dtype),
        name="W")

    # One bias per output map. Biases normally start at zero; random ones here
    # stand in for what training would have produced.
    b_shp = (2,)
    b = pytensor.shared(
        numpy.asarray(rng.uniform(low=-0.5, high=0.5, size=b_shp), dtype=input.dtype),
        name="b")

    # Convolve (a true convolution: the filters are flipped), add the bias of
    # each map to all its pixels, and squash with the logistic sigmoid.
    conv_out = conv2d(input, W)
    output = pt.sigmoid(conv_out + b.dimshuffle("x", 0, "x", "x"))

    f = pytensor.function([input], output)
    # end-snippet-1
    return types.SimpleNamespace(input=input, W=W, b=b, f=f)


class ImageError(Exception):
    """The picture cannot be found, fetched or decoded."""


# ---------------------------------------------------------------------------
# Filtering
# ---------------------------------------------------------------------------

def filter_image(img):
    """Run the random convolutional layer on one RGB picture.

    Parameters
    ----------
    img : numpy.ndarray
        ``(height, width, 3)`` array of 8-bit values (``uint8``), as
        returned by :func:`load_image`. Both sides must be at least 9.

    Returns
    -------
    numpy.ndarray
        float64 array of shape ``(1, 2, height - 8, width - 8)``: the two
        output maps of the layer, values in (0, 1).

    Raises
    ------
    ValueError
        If ``img`` does not have that shape.
    """
    img = numpy.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (height, width, 3), got {img.shape}")
    layer = random_layer()
    filter_rows, filter_cols = layer.W.get_value(borrow=True).shape[2:]
    if img.shape[0] < filter_rows or img.shape[1] < filter_cols:
        raise ValueError(
            f"the image ({img.shape[0]} x {img.shape[1]}) is smaller than the "
            f"{filter_rows} x {filter_cols} filters")
    # Pixel values to [0, 1), then channels first with a minibatch axis of 1.
    pixels = numpy.asarray(img, dtype="float64") / 256.0
    batch = pixels.transpose(2, 0, 1)[numpy.newaxis]
    return layer.f(batch)


# ---------------------------------------------------------------------------
# Finding and reading the picture
# ---------------------------------------------------------------------------

def load_image(path):
    """Decode a picture file into an RGB ``uint8`` array.

    Greyscale, palette, RGBA and other modes are converted to RGB
    (transparency is dropped).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    numpy.ndarray
        ``(height, width, 3)`` ``uint8`` array (rows first, as stored).

    Raises
    ------
    ImageError
        If the file is missing or is not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ImageError(f"image file not found: {path}")
    try:
        with Image.open(path) as picture:
            rgb = picture.convert("RGB") if picture.mode != "RGB" else picture
            return numpy.asarray(rgb, dtype=numpy.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageError(f"cannot read {path} as an image ({exc})") from None


def download_image(url=None, folder=None, name=IMAGE_NAME, timeout=60):
    """Download the picture into ``folder`` and return its path.

    The bytes go to a temporary file in ``folder``, are flushed and
    fsync'ed, checked to decode as an image, and only then renamed to
    ``name``: an interrupted download never leaves a truncated picture.

    Parameters
    ----------
    url : str, optional
        Where to fetch the picture; by default ``IMAGE_URL``, the original
        tutorial's copy.
    folder : str, optional
        Destination folder (created if needed); by default ``IMAGES_DIR``,
        the repository's ``doc/images``.
    name : str
        Destination file name.
    timeout : float
        Socket timeout, in seconds.

    Returns
    -------
    str
        The path of the downloaded picture.

    Raises
    ------
    ImageError
        If the download fails or does not give a readable image.
    """
    url = url or IMAGE_URL
    folder = folder or IMAGES_DIR
    target = os.path.join(folder, name)
    try:
        os.makedirs(folder, exist_ok=True)
        # load_image refuses to install an error page or a cut-off file
        download(url, target, check=load_image, max_bytes=MAX_IMAGE_BYTES,
                 what="the photograph", timeout=timeout)
        return target
    except (DownloadFailed, OSError, ImageError) as exc:
        raise ImageError(f"could not download {url} to {target} ({exc})") from None


def find_image(path=None, download=True):
    """Locate the picture to filter.

    Parameters
    ----------
    path : str, optional
        An explicit picture; used as is.
    download : bool, optional
        Whether the last resort, downloading ``3wolfmoon.jpg``, is allowed.

    Returns
    -------
    str
        The path of an existing file: ``path`` if given, else
        ``doc/images/3wolfmoon.jpg`` in the repository if present, else
        ``$LENET_IMAGE`` if set, else a fresh download into ``doc/images``,
        else (no download, or it failed) matplotlib's sample photograph
        :func:`fallback_image`, with a note on stderr saying where
        3wolfmoon.jpg would go.

    Raises
    ------
    ImageError
        If ``path`` or ``$LENET_IMAGE`` names a missing file.
    """
    if path is not None:
        if not os.path.isfile(path):
            raise ImageError(f"image file not found: {path}")
        return path
    in_repo = os.path.join(IMAGES_DIR, IMAGE_NAME)
    if os.path.isfile(in_repo):
        return in_repo
    from_env = os.environ.get("LENET_IMAGE")
    if from_env:
        if not os.path.isfile(from_env):
            raise ImageError(f"LENET_IMAGE names a missing file: {from_env}")
        return from_env
    where = (f"put {IMAGE_NAME} in {IMAGES_DIR}, set LENET_IMAGE to its path, "
             "or give an image path on the command line")
    reason = "downloading is switched off"
    if download:
        try:
            return download_image()
        except ImageError as exc:
            reason = str(exc)
    fallback = fallback_image()
    print(f"filter_demo.py: note: no {IMAGE_NAME} ({reason}); filtering {fallback} "
          f"instead. For the tutorial's picture, {where}.", file=sys.stderr)
    return fallback


def fallback_image():
    """A photograph every installation has: matplotlib's Grace Hopper sample."""
    import matplotlib.cbook

    return str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


# ---------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------

def draw_panels(fig, img, filtered):
    """Draw the picture and the two output maps side by side on ``fig``.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    img : numpy.ndarray
        The ``(height, width, 3)`` picture.
    filtered : numpy.ndarray
        ``(1, 2, h, w)`` output of :func:`filter_image`.
    """
    panels = [img, filtered[0, 0, :, :], filtered[0, 1, :, :]]
    for position, panel in enumerate(panels, start=1):
        ax = fig.add_subplot(1, 3, position)
        ax.axis("off")
        # The colour map only matters for the single-channel maps.
        ax.imshow(panel, cmap="gray")
    fig.tight_layout()


def save_figure(img, filtered, path):
    """Write the three-panel figure to ``path`` as PNG, atomically.

    Uses a pyplot-free Agg figure, so it works without a display.

    Returns
    -------
    str
        The absolute path written.
    """
    import utils

    fig = utils.new_figure(12, 4.6)
    draw_panels(fig, img, filtered)
    return utils.save_figure(fig, path)


def display_available():
    """True when a window can be shown: a display and an interactive backend.

    On Linux and other X11/Wayland systems a display means ``DISPLAY`` or
    ``WAYLAND_DISPLAY`` is set; macOS and Windows always have one. The
    backend is whatever matplotlib would pick (``MPLBACKEND`` included).
    """
    if sys.platform not in ("darwin", "win32") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        import matplotlib
        import matplotlib.pyplot as plt  # resolves the automatic backend choice

        backend = plt.get_backend().lower()
    except Exception:  # no usable GUI toolkit: just don't show
        return False
    try:  # matplotlib >= 3.9
        from matplotlib.backends import BackendFilter, backend_registry

        interactive = backend_registry.list_builtin(BackendFilter.INTERACTIVE)
    except ImportError:
        interactive = matplotlib.rcsetup.interactive_bk
    return backend in {name.lower() for name in interactive}


def show_window(img, filtered):
    """Show the figure in a window and wait until it is closed."""
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(12, 4.6))
    draw_panels(fig, img, filtered)
    plt.show()


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def build_parser():
    """The argparse parser of ``python code/filter_demo.py``."""
    parser = argparse.ArgumentParser(
        description="Filter a colour picture with an untrained convolutional layer "
                    "(two random 9x9 filters over the RGB channels, random biases, "
                    "sigmoid) and draw the picture and both output maps.",
        epilog=f"Without IMAGE, {IMAGE_NAME} is taken from {IMAGES_DIR}, else from "
               f"$LENET_IMAGE, else downloaded from {IMAGE_URL} into {IMAGES_DIR}; "
               "offline, matplotlib's sample photograph of Grace Hopper is used.",
    )
    parser.add_argument("image", nargs="?", default=None,
                        help="picture to filter, any format Pillow reads (default: the "
                             "tutorial's 3wolfmoon.jpg, see below)")
    parser.add_argument("--image", dest="image_option", default=None, metavar="IMAGE",
                        help="the same as the positional IMAGE")
    parser.add_argument("-o", "--output", default=DEFAULT_OUTPUT,
                        help=f"PNG file to write (default: {DEFAULT_OUTPUT} in the "
                             "current folder)")
    parser.add_argument("--no-download", action="store_true",
                        help=f"never download {IMAGE_NAME}; use the sample photograph "
                             "when it is not found")
    parser.add_argument("--no-show", action="store_true",
                        help="do not open a window, even when a display is available")
    return parser


def main(argv=None):
    """Run the demo; returns 0, or raises SystemExit with an error message."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.image and args.image_option and args.image != args.image_option:
        parser.error("give the image either as IMAGE or with --image, not both")
    try:
        path = find_image(args.image or args.image_option, download=not args.no_download)
        img = load_image(path)
        filtered = filter_image(img)
    except (ImageError, ValueError) as exc:
        raise SystemExit(f"filter_demo.py: error: {exc}")
    try:
        written = save_figure(img, filtered, args.output)
    except OSError as exc:
        raise SystemExit(f"filter_demo.py: error: cannot write {args.output} ({exc})")
    print(f"filtered {path} ({img.shape[0]} x {img.shape[1]} pixels) into {written}")
    if not args.no_show and display_available():
        show_window(img, filtered)
    return 0


if __name__ == "__main__":
    sys.exit(main())
