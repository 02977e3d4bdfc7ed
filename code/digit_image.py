"""A picture of a handwritten digit, prepared the way MNIST's digits were.

MNIST's digits were scanned as black-and-white images, scaled to fit a
20x20 box (keeping their aspect ratio; the scaling's anti-aliasing gives
the grey levels) and placed in a 28x28 field so that their centre of mass
(the mean position of the ink, weighted by its darkness) falls on the
field's centre; the ink is light on a dark background. :func:`prepare_digit`
does the same to any picture:

1. grey levels from 0 to 1 (colours weighted as Pillow's ``L`` mode does;
   transparent parts count as white paper);
2. the background is the median of the pixels along the border; when it is
   lighter than the middle of the picture's range (dark ink on paper), the
   picture is inverted, so that ink is light on dark, as in MNIST;
3. the levels are stretched so that the background is 0 and the strongest
   ink 1, and what is below :data:`NOISE_FLOOR` of that is set to 0 (paper
   grain, shadows);
4. specks are dropped: the parts of the ink that are not connected to the
   digit and weigh less than :data:`SPECK_FRACTION` of its largest part;
5. the rest is cropped to its bounding box and scaled so that its longer
   side is 20 pixels, keeping the aspect ratio (area averaging when
   shrinking, bicubic when enlarging);
6. it is placed in a 28x28 field, shifted by whole pixels so that its
   centre of mass is as near as possible to pixel (14, 14) (where the
   centres of mass of MNIST's digits are, to a third of a pixel);
7. the values are rounded to the tutorial data's steps, ``k / 256`` for
   ``k`` = 0 .. 255.

The result is a ``(28, 28)`` float32 array in [0, 1), like one row of the
tutorial's ``mnist.pkl.gz`` reshaped. :func:`read_digit` does all of it for
an image file, and raises :class:`ImageError` with one line for a file that
is missing, unreadable or shows no ink.

Nothing here imports PyTensor.
"""
import os
import warnings

import numpy

from errors import ConfigError

__all__ = [
    "BOX",
    "FIELD",
    "ImageError",
    "NOISE_FLOOR",
    "SPECK_FRACTION",
    "grey_levels",
    "prepare_digit",
    "read_digit",
    "read_digits",
]

#: Side of the square the digit is scaled to fit, as in MNIST.
BOX = 20

#: Side of the field the digit is centred in.
FIELD = 28

#: Ink weaker than this fraction of the strongest ink counts as background.
NOISE_FLOOR = 0.2

#: Disconnected bits of ink lighter than this fraction of the largest part
#: (summed ink) are specks, not part of the digit.
SPECK_FRACTION = 0.1

#: Least difference between background and ink, as a fraction of the grey
#: range, for a picture to show anything.
MIN_CONTRAST = 0.1

#: Larger pictures are first shrunk (area averaging) to this side.
MAX_SIDE = 1024


class ImageError(ConfigError):
    """A picture given to classify is missing, unreadable or blank.

    A :class:`errors.ConfigError` (bad input from the command line), so that
    the scripts print it as one line and exit with status 1.
    """


def grey_levels(image):
    """The grey levels of a Pillow image, as floats from 0 (black) to 1 (white).

    Transparent pixels are composed over white, as on paper; 16- and 32-bit
    images are stretched from their darkest to their lightest value. Images
    with a side over :data:`MAX_SIDE` are shrunk first.

    Parameters
    ----------
    image : PIL.Image.Image

    Returns
    -------
    numpy.ndarray
        2-D float64 array.
    """
    from PIL import Image

    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        values = numpy.asarray(image, dtype=numpy.float64)
        low, high = values.min(), values.max()
        values = (values - low) / (high - low) if high > low else numpy.zeros_like(values)
        image = Image.fromarray(values.astype(numpy.float32))
    else:
        if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
        image = image.convert("L")
    if max(image.size) > MAX_SIDE:
        scale = MAX_SIDE / max(image.size)
        size = tuple(max(1, round(side * scale)) for side in image.size)
        image = image.resize(size, Image.Resampling.BOX)
    values = numpy.asarray(image, dtype=numpy.float64)
    return values if image.mode == "F" else values / 255.0


def _border(values):
    """The pixels of the outer ring of ``values`` (2 % of the side, at least 1)."""
    width = max(1, round(0.02 * min(values.shape)))
    return numpy.concatenate([
        values[:width].ravel(), values[-width:].ravel(),
        values[:, :width].ravel(), values[:, -width:].ravel(),
    ])


def _drop_specks(ink):
    """``ink`` with its disconnected specks set to 0 (see :data:`SPECK_FRACTION`)."""
    from scipy import ndimage

    labels, count = ndimage.label(ink > 0, structure=numpy.ones((3, 3)))
    if count <= 1:
        return ink
    weights = ndimage.sum(ink, labels, index=numpy.arange(1, count + 1))
    keep = numpy.concatenate([[False], weights >= SPECK_FRACTION * weights.max()])
    return numpy.where(keep[labels], ink, 0.0)


def _fit_box(ink):
    """The ink cropped to its bounding box and scaled to fit ``BOX`` x ``BOX``."""
    from PIL import Image

    rows = numpy.flatnonzero(ink.any(axis=1))
    cols = numpy.flatnonzero(ink.any(axis=0))
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    height, width = crop.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))  # Pillow: (w, h)
    if size == (width, height):
        return crop
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BICUBIC
    scaled = Image.fromarray(crop.astype(numpy.float32)).resize(size, resample)
    return numpy.clip(numpy.asarray(scaled, dtype=numpy.float64), 0.0, 1.0)


def _centre(patch):
    """``patch`` in a ``FIELD`` x ``FIELD`` field, its centre of mass at (14, 14)."""
    height, width = patch.shape
    total = patch.sum()
    com_row = (patch.sum(axis=1) * numpy.arange(height)).sum() / total
    com_col = (patch.sum(axis=0) * numpy.arange(width)).sum() / total
    centre = FIELD // 2
    top = min(max(int(numpy.floor(centre - com_row + 0.5)), 0), FIELD - height)
    left = min(max(int(numpy.floor(centre - com_col + 0.5)), 0), FIELD - width)
    field = numpy.zeros((FIELD, FIELD))
    field[top:top + height, left:left + width] = patch
    return field


def prepare_digit(values, name="the picture"):
    """Prepare grey levels as MNIST's digits were (see the module's docstring).

    Parameters
    ----------
    values : array_like
        2-D grey levels from 0 (black) to 1 (white), e.g. from
        :func:`grey_levels`; either polarity.
    name : str, optional
        What the picture is called in error messages.

    Returns
    -------
    numpy.ndarray
        ``(28, 28)`` float32, ink light on a background of 0, values
        ``k / 256``.

    Raises
    ------
    ImageError
        If the picture is blank: (almost) one grey level, no ink.
    """
    values = numpy.asarray(values, dtype=numpy.float64)
    if values.ndim != 2 or values.size == 0:
        raise ImageError(f"{name} is not a 2-D picture (shape {values.shape})")
    background = numpy.median(_border(values))
    if background > (values.min() + values.max()) / 2:
        values, background = 1.0 - values, 1.0 - background
    strongest = values.max()
    if strongest - background < MIN_CONTRAST:
        raise ImageError(f"{name} is blank: no digit found (it is all one grey level)")
    ink = numpy.clip((values - background) / (strongest - background), 0.0, 1.0)
    ink = numpy.clip((ink - NOISE_FLOOR) / (1.0 - NOISE_FLOOR), 0.0, 1.0)
    digit = _centre(_fit_box(_drop_specks(ink)))
    return (numpy.floor(digit * 255.0 + 0.5) / 256.0).astype(numpy.float32)


def read_digit(path):
    """Read a picture file and prepare it with :func:`prepare_digit`.

    Any format Pillow reads (PNG, JPEG, GIF: its first frame ...); a photo's
    EXIF orientation is applied.

    Raises
    ------
    ImageError
        If the file is missing, not a picture, damaged, too large, or blank.
    """
    try:
        from PIL import Image, ImageOps, UnidentifiedImageError
    except ImportError:
        raise ImageError("reading pictures needs Pillow (pip install pillow)") from None

    path = os.fspath(path)
    if not os.path.exists(path):
        raise ImageError(f"no picture at {path}")
    if os.path.isdir(path):
        raise ImageError(f"{path} is a folder, not a picture")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                image = ImageOps.exif_transpose(image)
                values = grey_levels(image)
    except UnidentifiedImageError:
        raise ImageError(f"{path} is not a picture Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{path} is too large to read ({exc})") from None
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or damaged files
        raise ImageError(f"cannot read the picture {path} ({type(exc).__name__}: {exc})") from None
    return prepare_digit(values, name=path)


def read_digits(paths):
    """:func:`read_digit` for each path; returns an ``(n, 784)`` float32 array."""
    return numpy.stack([read_digit(path).ravel() for path in paths])
