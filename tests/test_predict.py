"""Classifying your own digit: preparing pictures, saving and using a trained LeNet.

The preparation (``code/digit_image.py``) is checked against MNIST's own
digits rendered to PNG at other sizes and polarities (the real test digits
when ``mnist.pkl.gz`` is found, see ``conftest.py``; otherwise digits drawn
by :func:`draw_digit` and prepared once, which stand in as MNIST-like
references). The round trip trains the tiny LeNet of ``test_training.py``,
saves it and classifies pictures in a real subprocess, and checks the printed
probabilities against a numpy forward pass of the saved parameters.

:func:`draw_digit` also drew the hand-written digits of the documentation's
"Try it on your own handwriting" (``doc/lenet.rst``).
"""
import json
import math
import os
import re
import subprocess
import sys

import numpy
import pytest

from conftest import CODE, REAL_MNIST, synthetic_mnist
from nnet_reference import lenet_reference

Image = pytest.importorskip("PIL.Image")
ImageDraw = pytest.importorskip("PIL.ImageDraw")

import convolutional_mlp  # noqa: E402
import digit_image  # noqa: E402
import errors  # noqa: E402
import lenet5  # noqa: E402

#: The tiny LeNet of test_training.py, on the command line.
TINY_ARGS = ["--nkerns", "2,3", "--batch-size", "50", "--max-batches", "3,2,2"]
TINY = dict(nkerns=[2, 3], batch_size=50, max_batches=(3, 2, 2))

PREDICTION = re.compile(r"^(.+): predicted digit (\d) \(probability (\d\.\d{3})\)$")


# ---------------------------------------------------------------------------
# Digits drawn by hand, with Pillow
# ---------------------------------------------------------------------------

def _arc(cx, cy, rx, ry, start, end, n=24):
    """Points of an elliptic arc (degrees; 0 is right, 90 down: y grows downwards)."""
    angles = numpy.radians(numpy.linspace(start, end, n))
    return list(zip(cx + rx * numpy.cos(angles), cy + ry * numpy.sin(angles)))


#: Each digit as pen strokes in a unit square, roughly as one writes them.
STROKES = {
    0: [_arc(0.5, 0.5, 0.21, 0.34, -100, 268, 40)],
    1: [[(0.38, 0.3), (0.56, 0.15), (0.55, 0.86)]],
    2: [_arc(0.5, 0.34, 0.2, 0.19, 195, 385) + [(0.29, 0.85), (0.74, 0.83)]],
    3: [_arc(0.49, 0.32, 0.18, 0.16, 200, 450) + _arc(0.5, 0.66, 0.21, 0.19, 270, 515)],
    4: [[(0.6, 0.15), (0.26, 0.62), (0.8, 0.6)], [(0.63, 0.33), (0.61, 0.87)]],
    5: [[(0.72, 0.16), (0.38, 0.16), (0.33, 0.46)] + _arc(0.5, 0.64, 0.21, 0.2, 228, 505)],
    6: [_arc(0.75, 0.6, 0.42, 0.46, 238, 180) + _arc(0.52, 0.66, 0.19, 0.19, 180, 535)],
    7: [[(0.26, 0.18), (0.74, 0.16), (0.46, 0.86)], [(0.4, 0.5), (0.66, 0.5)]],
    8: [_arc(0.5, 0.32, 0.16, 0.16, 90, 450), _arc(0.5, 0.66, 0.2, 0.19, -90, 270)],
    9: [_arc(0.5, 0.34, 0.18, 0.18, 0, 360), [(0.68, 0.34), (0.66, 0.6), (0.6, 0.86)]],
}


def draw_digit(digit, size=(140, 140), pen=0.075, slant=0.15, jitter=0.01, seed=0,
               dark_on_light=True, box=(0.08, 0.08, 0.92, 0.92)):
    """A picture of ``digit`` drawn as by hand: thick strokes, slanted, a little shaky.

    Parameters
    ----------
    digit : int
    size : tuple of 2 ints
        ``(width, height)`` of the picture.
    pen : float
        Pen width, as a fraction of the box's height.
    slant : float
        Rightward lean of the strokes (a shear, per unit of height).
    jitter : float
        Standard deviation of the random wobble of each point, in box units.
    seed : int
        For the wobble.
    dark_on_light : bool
        Grey ink on white paper (else white on black, as MNIST).
    box : tuple of 4 floats
        Where the digit goes: left, top, right, bottom, as fractions of the
        picture.

    Returns
    -------
    PIL.Image.Image
        Mode ``L``.
    """
    rng = numpy.random.RandomState(seed)
    width, height = size
    left, top, right, bottom = (box[0] * width, box[1] * height, box[2] * width,
                                box[3] * height)
    paper, ink = (246, 40) if dark_on_light else (0, 255)
    image = Image.new("L", size, paper)
    draw = ImageDraw.Draw(image)
    pen_px = max(1, round(pen * (bottom - top)))
    for stroke in STROKES[digit]:
        points = numpy.asarray(stroke) + rng.normal(0.0, jitter, (len(stroke), 2))
        points[:, 0] += slant * (0.5 - points[:, 1])
        xy = [(left + x * (right - left), top + y * (bottom - top)) for x, y in points]
        draw.line(xy, fill=ink, width=pen_px, joint="curve")
        r = pen_px / 2
        for x, y in (xy[0], xy[-1]):  # round pen ends
            draw.ellipse((x - r, y - r, x + r, y + r), fill=ink)
    return image


def render(digit28, size, dark_on_light, resample="BICUBIC"):
    """An MNIST digit (28x28 in [0, 1)) as an 8-bit picture of another size."""
    pixels = numpy.clip(numpy.rint(numpy.asarray(digit28) * 256), 0, 255).astype(numpy.uint8)
    if dark_on_light:
        pixels = 255 - pixels
    return Image.fromarray(pixels).resize(size, getattr(Image.Resampling, resample))


# ---------------------------------------------------------------------------
# Preparing pictures
# ---------------------------------------------------------------------------

ROWS = numpy.arange(28)


def centre_of_mass(digit):
    """(row, column) of the ink's centre of mass: 14 to half a pixel (one more
    hundredth for the rounding of the grey levels after the shift)."""
    total = digit.sum()
    return (digit.sum(axis=1) @ ROWS) / total, (digit.sum(axis=0) @ ROWS) / total


def ink_box(digit, level=0.0):
    rows = numpy.flatnonzero((digit > level).any(axis=1))
    cols = numpy.flatnonzero((digit > level).any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def best_shifted_correlation(a, b):
    """The correlation of ``a`` with ``b`` shifted by at most one pixel each way
    (MNIST's centring and ours may round a centre of mass near x.5 apart)."""
    return max(
        numpy.corrcoef(numpy.roll(a, (dy, dx), axis=(0, 1)).ravel(), b.ravel())[0, 1]
        for dy in (-1, 0, 1) for dx in (-1, 0, 1))


@pytest.fixture(scope="module")
def reference_digits():
    """(digits, labels, source): 28x28 MNIST test digits, or stand-ins."""
    if REAL_MNIST is not None:
        from mnist_io import read_mnist

        _, _, (x, y) = read_mnist(str(REAL_MNIST))
        return x[:40].reshape(-1, 28, 28), y[:40], "MNIST"
    digits = [digit_image.prepare_digit(numpy.asarray(draw_digit(d % 10, seed=d)) / 255.0)
              for d in range(20)]
    return numpy.array(digits), numpy.arange(20) % 10, "drawn"


def test_prepare_inverts_crops_scales_and_centres():
    """An L-shaped stroke, 30 wide and 60 high, dark on light, off-centre on a
    wide page, becomes a 10x20 light-on-dark L centred by its mass."""
    page = numpy.full((120, 200), 0.9)
    page[20:80, 130:136] = 0.1  # the upright
    page[74:80, 130:160] = 0.1  # the foot
    digit = digit_image.prepare_digit(page)
    assert digit.shape == (28, 28) and digit.dtype == numpy.float32
    assert digit.min() == 0.0 and 0.99 <= digit.max() < 1.0
    assert numpy.all(numpy.rint(digit * 256) == digit * 256)  # the data's k / 256 steps
    assert ink_box(digit) == (20, 10)  # the aspect ratio kept
    assert all(abs(c - 14) <= 0.51 for c in centre_of_mass(digit))
    # shrunk 3 times, the upright is 2 pixels wide on the left, the foot 2 high
    # at the bottom: not mirrored, not blurred (area averaging)
    rows, cols = numpy.nonzero(digit)
    expected = numpy.zeros((20, 10), bool)
    expected[:, :2] = expected[18:, :] = True
    assert numpy.array_equal(digit[rows.min():rows.max() + 1, cols.min():cols.max() + 1] > 0,
                             expected)
    assert numpy.all(digit[digit > 0] == numpy.float32(255 / 256))
    # the other polarity gives the same digit
    assert numpy.array_equal(digit_image.prepare_digit(1.0 - page), digit)


def test_specks_and_faint_background_are_dropped():
    page = numpy.full((100, 100), 0.8)
    page[30:70, 45:52] = 0.05        # a "1"
    page[2:4, 2:4] = 0.3             # a speck of dust, far away
    page[:, 80:] = 0.72              # a faint shadow
    digit = digit_image.prepare_digit(page)
    assert ink_box(digit)[0] == 20    # the speck did not stretch the box
    assert ink_box(digit)[1] <= 5


@pytest.mark.parametrize("size,dark_on_light,resample", [
    ((28, 28), False, "NEAREST"),      # MNIST itself
    ((140, 140), True, "BICUBIC"),     # the check: 140x140, dark on light
    ((140, 140), False, "NEAREST"),
    ((57, 57), True, "BILINEAR"),
    ((300, 300), False, "BICUBIC"),
    ((210, 140), True, "BICUBIC"),     # stretched: the digit's aspect ratio changes
])
def test_mnist_digits_rendered_at_other_sizes_come_back(reference_digits, size,
                                                          dark_on_light, resample):
    digits, _, source = reference_digits
    correlations = []
    for digit in digits:
        picture = numpy.asarray(render(digit, size, dark_on_light, resample)) / 255.0
        prepared = digit_image.prepare_digit(picture)
        com = centre_of_mass(prepared)
        assert all(abs(c - 14) <= 0.51 for c in com), (source, com)
        assert max(ink_box(prepared)) == 20
        if size[0] == size[1]:
            correlations.append(best_shifted_correlation(prepared, digit))
    if correlations:
        assert min(correlations) > 0.85, (source, min(correlations))
        assert numpy.median(correlations) > 0.95, (source, numpy.median(correlations))


def test_read_digit_files_of_any_format(tmp_path, reference_digits):
    digit = reference_digits[0][0]
    picture = render(digit, (140, 140), True)
    expected = digit_image.prepare_digit(numpy.asarray(picture) / 255.0)
    rgb = picture.convert("RGB")
    paths = {"png": picture, "jpg": rgb, "bmp": rgb, "gif": picture, "tif": picture}
    for ext, image in paths.items():
        image.save(tmp_path / f"d.{ext}")
        got = digit_image.read_digit(tmp_path / f"d.{ext}")
        assert got.shape == (28, 28)
        tolerance = 0.15 if ext == "jpg" else 1e-6  # JPEG is lossy
        assert numpy.abs(got - expected).max() <= tolerance, ext
    # a drawing on a transparent background counts as on white paper
    rgba = Image.new("RGBA", (140, 140), (0, 0, 0, 0))
    rgba.paste(Image.new("RGBA", (140, 140), (30, 30, 30, 255)),
               mask=Image.fromarray(255 - numpy.asarray(picture)))
    rgba.save(tmp_path / "transparent.png")
    assert best_shifted_correlation(digit_image.read_digit(tmp_path / "transparent.png"),
                                    expected) > 0.95
    # a 16-bit scan
    Image.fromarray((numpy.asarray(picture).astype(numpy.uint16) * 257)).save(
        tmp_path / "d16.png")
    assert numpy.abs(digit_image.read_digit(tmp_path / "d16.png") - expected).max() < 0.02


def test_drawn_digits_look_like_mnist():
    """The digits the documentation shows: 20 pixels high, centred, whatever the
    canvas, its size and polarity."""
    for digit in range(10):
        for size, dark, box in [((140, 140), True, (0.08, 0.08, 0.92, 0.92)),
                                ((200, 120), True, (0.55, 0.1, 0.9, 0.95)),
                                ((64, 64), False, (0.1, 0.1, 0.9, 0.9))]:
            picture = draw_digit(digit, size, dark_on_light=dark, box=box, seed=digit)
            prepared = digit_image.prepare_digit(numpy.asarray(picture) / 255.0)
            assert ink_box(prepared)[0] == 20, digit  # all these digits are taller than wide
            assert all(abs(c - 14) <= 0.51 for c in centre_of_mass(prepared))


# ---------------------------------------------------------------------------
# Train, save, predict
# ---------------------------------------------------------------------------

def script(name, args, cwd, env=None):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, os.path.join(CODE, name + ".py")] + list(args),
                          cwd=cwd, env=full_env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_mnist):
    """The tiny LeNet trained for 2 epochs by the script (float32), with its
    saved model, and pictures of digits to classify."""
    work = tmp_path_factory.mktemp("trained")
    done = script("convolutional_mlp", TINY_ARGS + [
        "--dataset", tiny_mnist, "--n-epochs", "2", "--checkpoint", "ckpt.npz",
        "--plots-dir", ""], work, env={"PYTENSOR_FLAGS": "floatX=float32"})
    assert done.returncode == 0, done.stderr
    pictures = []
    test_x = synthetic_mnist()[2][0]
    for k in range(2):
        path = work / f"tiny{k}.png"
        render(test_x[k].reshape(28, 28), (84, 84), dark_on_light=True).save(path)
        pictures.append(str(path))
    path = work / "seven.png"
    draw_digit(7).save(path)
    pictures.append(str(path))
    return work, done, pictures


def parse_predictions(out):
    """[(picture, digit, probability, [10 probabilities])] from --predict's output."""
    lines = out.strip().splitlines()
    assert len(lines) % 2 == 0, out
    results = []
    for first, second in zip(lines[::2], lines[1::2]):
        match = PREDICTION.match(first)
        assert match, first
        numbers = re.findall(r"(\d): (\d\.\d{3})", second)
        assert [int(c) for c, _ in numbers] == list(range(10)), second
        results.append((match.group(1), int(match.group(2)), float(match.group(3)),
                        [float(p) for _, p in numbers]))
    return results


def test_training_saves_the_best_model(trained):
    work, done, _ = trained
    model = work / "convolutional_mlp_model.npz"  # the default, in the working folder
    assert model.is_file()
    assert "the best model is saved in" in done.stderr
    with numpy.load(model, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    meta = json.loads(str(arrays.pop("meta")[()]))
    assert sorted(arrays) == sorted(convolutional_mlp.PARAM_NAMES)
    assert meta["tutorial"] == "convolutional_mlp" and meta["floatX"] == "float32"
    assert meta["network"] == convolutional_mlp.network_settings([2, 3])
    assert arrays["layer0_W"].shape == (2, 1, 5, 5)
    # the best model's scores, as printed
    best = re.search(r"Best validation score of ([\d.]+) % obtained at iteration (\d+), "
                     r"with test performance ([\d.]+) %", done.stdout)
    training = meta["training"]
    assert training["best_iteration"] == int(best.group(2))
    assert math.isclose(100 * training["best_validation_error"], float(best.group(1)),
                        abs_tol=1e-6)
    assert math.isclose(100 * training["test_error"], float(best.group(3)), abs_tol=1e-6)
    assert training["nkerns"] == [2, 3] and training["batch_size"] == 50
    # they are the checkpoint's best parameters
    with numpy.load(work / "ckpt.npz", allow_pickle=False) as ckpt:
        for name, value in arrays.items():
            assert numpy.array_equal(value, ckpt["best_" + name]), name


def test_predict_in_a_subprocess(trained):
    work, _, pictures = trained
    done = script("convolutional_mlp", ["--predict"] + pictures + ["--show", "shown"], work)
    assert done.returncode == 0, done.stderr
    results = parse_predictions(done.stdout)
    assert [r[0] for r in results] == pictures
    with numpy.load(work / "convolutional_mlp_model.npz", allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    expected = lenet_reference(arrays, digit_image.read_digits(pictures))
    for (_, digit, probability, probabilities), want in zip(results, expected):
        assert numpy.allclose(probabilities, want, atol=0.0006)
        assert digit == int(numpy.argmax(probabilities))
        assert probability == max(probabilities)
        assert abs(sum(probabilities) - 1) < 0.006
    shown = sorted(os.listdir(work / "shown"))
    assert shown == ["seven_convolutional_mlp.png", "tiny0_convolutional_mlp.png",
                     "tiny1_convolutional_mlp.png"]
    with Image.open(work / "shown" / shown[0]) as png:
        assert png.format == "PNG" and png.size[0] > 2 * png.size[1]


def test_a_resumed_run_ends_with_the_same_model(tiny_mnist, tmp_path):
    """Stopped after an epoch and resumed for more, a run writes the model file
    an uninterrupted one writes."""
    whole = tmp_path / "whole.npz"
    convolutional_mlp.evaluate_lenet5(n_epochs=3, dataset=tiny_mnist, model_file=str(whole),
                                      **TINY)
    part, ckpt = tmp_path / "part.npz", str(tmp_path / "ckpt.npz")
    convolutional_mlp.evaluate_lenet5(n_epochs=1, dataset=tiny_mnist, model_file=str(part),
                                      checkpoint=ckpt, **TINY)
    first = dict(numpy.load(part, allow_pickle=False))
    # a run that does not resume never replaces a model file
    with pytest.raises(errors.CheckpointError) as info:
        convolutional_mlp.evaluate_lenet5(n_epochs=3, dataset=tiny_mnist, model_file=str(part),
                                          **TINY)
    assert "exists" in str(info.value)
    convolutional_mlp.evaluate_lenet5(n_epochs=3, dataset=tiny_mnist, model_file=str(part),
                                      checkpoint=ckpt, resume=True, **TINY)
    with numpy.load(whole, allow_pickle=False) as a, numpy.load(part, allow_pickle=False) as b:
        assert sorted(a.files) == sorted(b.files)
        for name in a.files:
            assert numpy.array_equal(a[name], b[name]), name
        assert json.loads(str(a["meta"][()]))["training"]["best_iteration"] > 3
    assert not all(numpy.array_equal(first[n], dict(numpy.load(whole))[n]) for n in first)


def test_an_existing_model_is_never_replaced(tiny_mnist, tmp_path, monkeypatch, capsys):
    model = tmp_path / "convolutional_mlp_model.npz"  # the default
    model.write_bytes(b"weeks of training")
    monkeypatch.chdir(tmp_path)
    status = convolutional_mlp.main(["--dataset", tiny_mnist, "--checkpoint", ""] + TINY_ARGS)
    captured = capsys.readouterr()
    assert status == 1 and "... loading data" not in captured.out
    (line,) = captured.err.strip().splitlines()
    assert str(model) in line and "exists" in line
    assert model.read_bytes() == b"weeks of training"


# ---------------------------------------------------------------------------
# Bad input: one line each
# ---------------------------------------------------------------------------

def one_line_error(capsys, main, args, status=1):
    try:
        got = main(args)
    except SystemExit as exc:  # argparse
        got = exc.code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert got == status and len(lines) == 1, (got, captured.err)
    assert "Traceback" not in captured.err
    return lines[0]


def test_bad_pictures_are_one_line_each(trained, tmp_path, capsys):
    work, _, pictures = trained
    model = str(work / "convolutional_mlp_model.npz")
    text = tmp_path / "notes.png"
    text.write_text("not a picture\n")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(open(pictures[0], "rb").read()[:200])
    blank = tmp_path / "blank.png"
    Image.new("L", (140, 140), 250).save(blank)
    transparent = tmp_path / "transparent.png"
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(transparent)
    for path, fragment in [
        (tmp_path / "missing.png", "no picture at"),
        (tmp_path, "is a folder"),
        (text, "not a picture Pillow can read"),
        (truncated, "cannot read the picture"),
        (blank, "blank"),
        (transparent, "blank"),
    ]:
        line = one_line_error(capsys, convolutional_mlp.main,
                              ["--predict", pictures[0], str(path), "--model", model])
        assert line.startswith("convolutional_mlp.py: error: ") and fragment in line, line
        assert str(path) in line


def test_bad_models_are_one_line_each(trained, tmp_path, capsys):
    work, _, pictures = trained
    model = work / "convolutional_mlp_model.npz"
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 garbage")
    logistic = tmp_path / "best_model.npz"
    numpy.savez(logistic, W=numpy.zeros((784, 10)), b=numpy.zeros(10))
    arrays = dict(numpy.load(model, allow_pickle=False))
    meta = json.loads(str(arrays["meta"][()]))

    def variant(name, **changes):
        path = tmp_path / name
        numpy.savez(path, **dict(arrays, meta=numpy.array(json.dumps(dict(meta, **changes)))))
        return path

    other_nkerns = variant("other_nkerns.npz",
                           network=convolutional_mlp.network_settings([4, 3]))
    other_image = variant("other_image.npz", network=dict(meta["network"], image_shape=[32, 32]))
    lenet5_model = variant("lenet5_model.npz", tutorial="lenet5")
    newer = variant("newer.npz", format=2)
    for args, fragment in [
        (["--model", str(tmp_path / "none.npz")], "no saved model at"),
        (["--model", str(garbage)], "not a readable saved model"),
        (["--model", str(work / "ckpt.npz")], "is a training checkpoint, not a saved model"),
        (["--model", str(logistic)], "no 'meta' entry"),
        (["--model", str(other_nkerns)], "layer1_W is [3, 2, 5, 5], the network its settings"),
        (["--model", str(other_image)], "image_shape [32, 32] (file) vs [28, 28]"),
        (["--model", str(lenet5_model)], "a model of lenet5.py, not of convolutional_mlp.py"),
        (["--model", str(newer)], "format 2"),
        (["--model", str(model), "--nkerns", "20,50"],
         "another network configuration (nkerns [2, 3] (file) vs [20, 50] (expected))"),
    ]:
        line = one_line_error(capsys, convolutional_mlp.main, ["--predict", pictures[0]] + args)
        assert line.startswith("convolutional_mlp.py: error: ") and fragment in line, line
    # a convolutional_mlp model is not a LeNet-5
    line = one_line_error(capsys, lenet5.main, ["--predict", pictures[0], "--model", str(model)])
    assert "a model of convolutional_mlp.py, not of lenet5.py" in line


def test_prediction_options_are_checked(capsys):
    for args, fragment in [(["--show", "dir"], "--show goes with --predict"),
                           (["--predict", "a.png", "--resume"], "takes no --resume"),
                           (["--predict"], "expected at least one argument")]:
        line = one_line_error(capsys, convolutional_mlp.main, args, status=2)
        assert fragment in line


def test_bad_input_in_a_subprocess_is_one_line(trained):
    """No traceback at the real command line either (missing picture, blank one)."""
    work, _, _ = trained
    Image.new("L", (100, 100), 0).save(work / "black.png")
    for picture, message in [
        ("nowhere.png", "no picture at nowhere.png"),
        ("black.png", "black.png is blank: no digit found (it is all one grey level)"),
    ]:
        done = script("convolutional_mlp", ["--predict", picture], work)
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr.strip() == f"convolutional_mlp.py: error: {message}"


# ---------------------------------------------------------------------------
# LeNet-5
# ---------------------------------------------------------------------------

def test_lenet5_saves_and_predicts(tiny_mnist, tmp_path, capsys):
    model = str(tmp_path / "lenet5_model.npz")
    lenet5.evaluate_lenet5(n_epochs=1, dataset=tiny_mnist, max_batches=(3, 2, 2),
                           model_file=model)
    capsys.readouterr()
    meta = json.loads(str(numpy.load(model, allow_pickle=False)["meta"][()]))
    assert meta["tutorial"] == "lenet5"
    assert meta["network"]["table"] == lenet5.connection_table("paper").tolist()
    picture = tmp_path / "three.png"
    draw_digit(3, size=(90, 150)).save(picture)
    assert lenet5.main(["--predict", str(picture), "--model", model, "--show",
                        str(tmp_path / "shown")]) == 0
    ((name, digit, probability, probabilities),) = parse_predictions(capsys.readouterr().out)
    assert name == str(picture) and probabilities[digit] == probability
    assert os.listdir(tmp_path / "shown") == ["three_lenet5.png"]
    # a LeNet-5 model is not the tutorial's LeNet
    line = one_line_error(capsys, convolutional_mlp.main,
                          ["--predict", str(picture), "--model", model])
    assert "a model of lenet5.py, not of convolutional_mlp.py" in line
