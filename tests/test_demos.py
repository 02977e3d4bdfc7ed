"""Tests for the two demonstrations of the LeNet page.

``filter_demo``: the random convolutional layer is checked against an
independent computation with ``scipy.signal.convolve2d``, on a small
synthetic picture and on a photograph: the tutorial's 3wolfmoon (looked up
in ``$LENET_SHARED_IMAGES``, by default ``shared/images`` next to the
repository; it is not ours to commit), else matplotlib's sample photo of
Grace Hopper, which every installation has. The command line is run in-process
with the Agg backend and never opens a window or touches the network.

``maxpool_demo``: the printed text is compared with the tutorial's output,
character for character.
"""
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.signal import convolve2d
from scipy.special import expit

import filter_demo
import maxpool_demo
from filter_demo import ImageError

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_IMAGES = Path(os.environ.get("LENET_SHARED_IMAGES", SHARED / "images"))
WOLFMOON = SHARED_IMAGES / "3wolfmoon.jpg"
SEED_TEXT = Path(os.environ.get("LENET_SEED_TEXT", SHARED / "spec" / "lenet-tutorial-seed.txt"))


@pytest.fixture(autouse=True)
def headless(monkeypatch):
    """No test may open a window: no display, non-interactive backend."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


# ---------------------------------------------------------------------------
# filter_demo: numbers
# ---------------------------------------------------------------------------

def reference_layer(img):
    """The demo's layer recomputed with scipy, from fresh RandomState draws."""
    rng = np.random.RandomState(23455)
    bound = 1.0 / np.sqrt(3 * 9 * 9)
    W = rng.uniform(low=-bound, high=bound, size=(2, 3, 9, 9))  # drawn first
    b = rng.uniform(low=-0.5, high=0.5, size=(2,))
    x = img.astype(np.float64) / 256.0
    maps = []
    for k in range(2):
        # convolve2d flips the kernel: a true convolution, like conv2d's default.
        total = sum(convolve2d(x[:, :, c], W[k, c], mode="valid") for c in range(3))
        maps.append(expit(total + b[k]))
    return np.stack(maps)[np.newaxis]


def test_parameters_follow_the_tutorial_draws():
    rng = np.random.RandomState(23455)
    bound = 1.0 / np.sqrt(243)
    W = rng.uniform(-bound, bound, size=(2, 3, 9, 9))
    b = rng.uniform(-0.5, 0.5, size=(2,))
    assert filter_demo.random_layer().W.get_value().dtype == np.float64
    np.testing.assert_array_equal(filter_demo.random_layer().W.get_value(), W)
    np.testing.assert_array_equal(filter_demo.random_layer().b.get_value(), b)
    assert filter_demo.random_layer().input.dtype == "float64"


def test_filter_image_matches_scipy_on_a_small_picture():
    img = np.random.default_rng(0).integers(0, 256, size=(20, 13, 3), dtype=np.uint8)
    out = filter_demo.filter_image(img)
    assert out.shape == (1, 2, 12, 5)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, reference_layer(img), rtol=0, atol=1e-12)


def test_flipped_filter_would_differ():
    # Guards the comparison above: a correlation (unflipped filters) gives
    # clearly different numbers, so the test really checks the flip.
    img = np.random.default_rng(1).integers(0, 256, size=(12, 12, 3), dtype=np.uint8)
    out = filter_demo.filter_image(img)
    W = filter_demo.random_layer().W.get_value()
    b = filter_demo.random_layer().b.get_value()
    x = img / 256.0
    corr = sum(convolve2d(x[:, :, c], W[0, c, ::-1, ::-1], mode="valid") for c in range(3))
    assert np.abs(out[0, 0] - expit(corr + b[0])).max() > 1e-3


@pytest.mark.parametrize("shape", [(8, 20, 3), (20, 8, 3), (10, 10), (10, 10, 4)])
def test_filter_image_rejects_bad_shapes(shape):
    with pytest.raises(ValueError):
        filter_demo.filter_image(np.zeros(shape, dtype=np.uint8))


def grace_hopper_path():
    import matplotlib.cbook

    return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="module")
def photo():
    """(path, rows, columns) of a real photograph: 3wolfmoon when available."""
    if WOLFMOON.is_file():
        # PIL reports size (516, 639) = (width, height); the array is rows
        # first, which is the tutorial's (1, 3, 639, 516) layout.
        return WOLFMOON, 639, 516
    return grace_hopper_path(), 600, 512


def test_photo_is_read_rows_first(photo):
    path, rows, cols = photo
    img = filter_demo.load_image(path)
    assert img.shape == (rows, cols, 3)
    assert img.dtype == np.uint8


def test_filter_image_matches_scipy_on_a_photo(photo):
    path, rows, cols = photo
    img = filter_demo.load_image(path)
    out = filter_demo.filter_image(img)
    assert out.shape == (1, 2, rows - 8, cols - 8)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, reference_layer(img), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------
# filter_demo: reading and finding pictures
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "RGB", "LA", "I;16"])
def test_load_image_converts_to_rgb(tmp_path, mode):
    path = tmp_path / f"picture_{mode.replace(';', '')}.png"
    Image.new(mode, (7, 5)).save(path)
    img = filter_demo.load_image(path)
    assert img.shape == (5, 7, 3)
    assert img.dtype == np.uint8


def test_load_image_errors(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        filter_demo.load_image(tmp_path / "missing.jpg")
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"this is not a picture")
    with pytest.raises(ImageError, match="cannot read"):
        filter_demo.load_image(junk)


def png_bytes(size=(12, 10)):
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 100, 50)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def no_repo_image(tmp_path, monkeypatch):
    """Point the repository's image folder at an empty tmp folder."""
    folder = tmp_path / "doc_images"
    monkeypatch.setattr(filter_demo, "IMAGES_DIR", str(folder))
    monkeypatch.delenv("LENET_IMAGE", raising=False)
    return folder


def test_find_image_order(tmp_path, monkeypatch, no_repo_image):
    explicit = tmp_path / "explicit.png"
    explicit.write_bytes(png_bytes())
    assert filter_demo.find_image(str(explicit)) == str(explicit)
    with pytest.raises(ImageError, match="not found"):
        filter_demo.find_image(str(tmp_path / "nope.png"))

    from_env = tmp_path / "env.png"
    from_env.write_bytes(png_bytes())
    monkeypatch.setenv("LENET_IMAGE", str(from_env))
    assert filter_demo.find_image(download=False) == str(from_env)

    # The repository copy wins over the environment.
    no_repo_image.mkdir()
    in_repo = no_repo_image / "3wolfmoon.jpg"
    in_repo.write_bytes(png_bytes())
    assert filter_demo.find_image(download=False) == str(in_repo)


def test_find_image_without_any_picture_falls_back_to_the_sample_photo(no_repo_image,
                                                                       monkeypatch, capsys):
    path = filter_demo.find_image(download=False)
    assert path == str(grace_hopper_path())
    assert filter_demo.load_image(path).shape == (600, 512, 3)
    note = capsys.readouterr().err
    assert "3wolfmoon.jpg" in note and str(no_repo_image) in note and "LENET_IMAGE" in note
    assert not no_repo_image.exists()
    monkeypatch.setenv("LENET_IMAGE", "/no/such/picture.jpg")
    with pytest.raises(ImageError, match="LENET_IMAGE"):
        filter_demo.find_image(download=False)


def test_the_default_address_is_the_original_tutorials():
    assert filter_demo.IMAGE_URL.startswith(
        "https://raw.githubusercontent.com/lisa-lab/DeepLearningTutorials/")


def test_download_is_atomic_and_checked(no_repo_image, server, monkeypatch, capsys):
    monkeypatch.setattr(filter_demo, "IMAGE_URL", server.serve("3wolfmoon.jpg", png_bytes()))
    path = filter_demo.find_image()
    assert server.requests == ["/3wolfmoon.jpg"]
    assert path == str(no_repo_image / "3wolfmoon.jpg")
    assert filter_demo.load_image(path).shape == (10, 12, 3)
    assert sorted(p.name for p in no_repo_image.iterdir()) == ["3wolfmoon.jpg"]

    # An error page instead of a picture is refused and leaves nothing behind.
    (no_repo_image / "3wolfmoon.jpg").unlink()
    server.serve("3wolfmoon.jpg", b"<html>404</html>")
    with pytest.raises(ImageError, match="could not download"):
        filter_demo.download_image()
    assert list(no_repo_image.iterdir()) == []
    assert filter_demo.find_image() == str(grace_hopper_path())
    assert list(no_repo_image.iterdir()) == []


def test_failed_download_falls_back_and_says_where_to_put_the_picture(no_repo_image, server,
                                                                      monkeypatch, capsys):
    server.close()  # nothing listens there any more: the connection is refused
    monkeypatch.setattr(filter_demo, "IMAGE_URL", server.url("3wolfmoon.jpg"))
    assert filter_demo.find_image() == str(grace_hopper_path())
    note = capsys.readouterr().err.strip().splitlines()[-1]
    assert "connection refused" in note and str(no_repo_image) in note
    assert "LENET_IMAGE" in note
    assert not no_repo_image.exists() or list(no_repo_image.iterdir()) == []


# ---------------------------------------------------------------------------
# filter_demo: command line
# ---------------------------------------------------------------------------

def check_png(path, size):
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        assert picture.size == size
        pixels = np.asarray(picture.convert("L"))
    assert pixels.std() > 10  # a real drawing, not a blank canvas
    assert not [p for p in os.listdir(os.path.dirname(path)) if p.endswith(".tmp")]


def test_cli_writes_the_figure(tmp_path, capsys):
    picture = tmp_path / "small.png"
    Image.fromarray(
        np.random.default_rng(2).integers(0, 256, size=(40, 30, 3), dtype=np.uint8)
    ).save(picture)
    out = tmp_path / "figure.png"
    assert filter_demo.main([str(picture), "--output", str(out), "--no-download"]) == 0
    check_png(out, (1200, 460))
    assert "figure.png" in capsys.readouterr().out


def test_cli_on_a_photo(photo, tmp_path):
    out = tmp_path / "3wolfmoon_filtered.png"
    assert filter_demo.main(["--image", str(photo[0]), "-o", str(out), "--no-show"]) == 0
    check_png(out, (1200, 460))


def test_cli_missing_picture(tmp_path):
    with pytest.raises(SystemExit) as info:
        filter_demo.main([str(tmp_path / "missing.jpg"), "-o", str(tmp_path / "x.png")])
    assert "image file not found" in str(info.value.code)
    assert not (tmp_path / "x.png").exists()


def test_script_exits_with_one_error_line(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "code" / "filter_demo.py"), str(tmp_path / "missing.jpg"),
         "--output", str(tmp_path / "x.png")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("filter_demo.py: error: image file not found")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_no_window_without_display():
    assert filter_demo.display_available() is False


# ---------------------------------------------------------------------------
# maxpool_demo
# ---------------------------------------------------------------------------

# What the tutorial's Python 2 script printed. The seed text lost its line
# breaks and runs of spaces, so they were rebuilt from how the script printed:
#
# * ``print 'invals[0, 0, :, :] =\n', array``: Python 2 writes no separator
#   space after a string ending in "\n", so the array starts its own line.
#   In the ignore_border=False half the strings end in "\n " (a stray
#   space), and a string ending in " " *does* get the separator: those
#   arrays start with two spaces, "  [[". (Checked with a Python 2.7
#   interpreter.)
# * ``str(array)`` as numpy printed it then (numpy's ``legacy='1.13'``):
#   the first map holds 1.14374817e-04, so all its values are written in
#   scientific notation, each row wrapping after four values at 75
#   characters, with numpy's three-space column gaps; the others are fixed
#   point with 8 decimals.
#
# ``test_expected_text_is_the_seed_text`` checks that collapsing the
# whitespace of this constant gives back the seed's passage exactly.
EXPECTED_MAXPOOL_TEXT = """\
With ignore_border set to True:
invals[0, 0, :, :] =
[[  4.17022005e-01   7.20324493e-01   1.14374817e-04   3.02332573e-01
    1.46755891e-01]
 [  9.23385948e-02   1.86260211e-01   3.45560727e-01   3.96767474e-01
    5.38816734e-01]
 [  4.19194514e-01   6.85219500e-01   2.04452250e-01   8.78117436e-01
    2.73875932e-02]
 [  6.70467510e-01   4.17304802e-01   5.58689828e-01   1.40386939e-01
    1.98101489e-01]
 [  8.00744569e-01   9.68261576e-01   3.13424178e-01   6.92322616e-01
    8.76389152e-01]]
output[0, 0, :, :] =
[[ 0.72032449  0.39676747]
 [ 0.6852195   0.87811744]]
With ignore_border set to False:
invals[1, 0, :, :] =
  [[ 0.01936696  0.67883553  0.21162812  0.26554666  0.49157316]
 [ 0.05336255  0.57411761  0.14672857  0.58930554  0.69975836]
 [ 0.10233443  0.41405599  0.69440016  0.41417927  0.04995346]
 [ 0.53589641  0.66379465  0.51488911  0.94459476  0.58655504]
 [ 0.90340192  0.1374747   0.13927635  0.80739129  0.39767684]]
output[1, 0, :, :] =
  [[ 0.67883553  0.58930554  0.69975836]
 [ 0.66379465  0.94459476  0.58655504]
 [ 0.90340192  0.80739129  0.39767684]]"""


def test_maxpool_text_is_the_tutorials():
    assert maxpool_demo.maxpool_demo_text() == EXPECTED_MAXPOOL_TEXT
    # where the original's text is at hand, the expected text is checked against it
    if SEED_TEXT.is_file():
        seed = SEED_TEXT.read_text(encoding="utf-8")
        start = seed.index("With ignore_border set to True: invals")
        end = seed.index("0.39767684]]", seed.index("output[1, 0, :, :] =", start))
        passage = seed[start:end + len("0.39767684]]")]
        assert " ".join(EXPECTED_MAXPOOL_TEXT.split()) == passage


def test_maxpool_text_ignores_the_callers_print_options():
    with np.printoptions(precision=3, linewidth=200, suppress=True):
        assert maxpool_demo.maxpool_demo_text() == EXPECTED_MAXPOOL_TEXT


def test_maxpool_main_prints_the_text(capsys):
    assert maxpool_demo.main([]) == 0
    assert capsys.readouterr().out == EXPECTED_MAXPOOL_TEXT + "\n"


def reference_max_pool(x, ignore_border):
    """2x2 max-pooling of the last two axes with numpy."""
    rows, cols = x.shape[-2:]
    if ignore_border:
        out_r, out_c = rows // 2, cols // 2
    else:
        out_r, out_c = -(-rows // 2), -(-cols // 2)
    out = np.empty(x.shape[:-2] + (out_r, out_c))
    for i in range(out_r):
        for j in range(out_c):
            out[..., i, j] = x[..., 2 * i:2 * i + 2, 2 * j:2 * j + 2].max(axis=(-2, -1))
    return out


def test_maxpool_values():
    pool_dropping_border, pool_keeping_border, x = maxpool_demo.pooling_functions()
    assert x.shape == (3, 2, 5, 5)
    np.testing.assert_array_equal(pool_dropping_border(x), reference_max_pool(x, True))
    np.testing.assert_array_equal(pool_keeping_border(x), reference_max_pool(x, False))


@pytest.mark.parametrize("items, text", [
    (("a =\n", "x"), "a =\nx"),
    (("a =\n ", "x"), "a =\n  x"),
    (("a", 1, "b"), "a 1 b"),
    (("a\t", "b"), "a\tb"),
    (("",), ""),
    (("", "b"), " b"),
])
def test_py2_print_line(items, text):
    assert maxpool_demo.py2_print_line(*items) == text


def test_expected_text_has_no_trailing_spaces():
    assert not re.search(r" +$", EXPECTED_MAXPOOL_TEXT, flags=re.MULTILINE)
