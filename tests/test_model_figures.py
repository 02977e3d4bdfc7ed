"""The pictures of a trained LeNet (``doc/model_figures.py``) and the numbers it prints.

A tiny LeNet is trained on the synthetic ``tiny_mnist`` (see ``conftest.py``)
with its whole test split as the test set, and the script is run on its
saved model in a real subprocess. What it prints is checked against what the
training run recorded in the model and against a numpy forward pass of the
saved parameters; the three PNGs must be real pictures of the page's size.
"""
import json
import math
import os
import re
import subprocess
import sys

import numpy
import pytest

from conftest import REPO, TINY_ROWS, synthetic_mnist
from nnet_reference import lenet_reference

Image = pytest.importorskip("PIL.Image")
pytest.importorskip("matplotlib")

import convolutional_mlp  # noqa: E402
import pytensor  # noqa: E402

sys.path.append(str(REPO / "doc"))
import model_figures  # noqa: E402

SCRIPT = REPO / "doc" / "model_figures.py"
PNGS = ("lenet_feature_maps.png", "lenet_errors.png", "lenet_confusion.png")
N_TEST = TINY_ROWS[2]
BATCH = 50  # divides N_TEST: the training run tests on every test digit

ERROR_LINE = re.compile(r"^test error (\d+\.\d+) % \((\d+) of (\d+) test digits wrong\)$",
                        re.MULTILINE)
RECORDED_LINE = re.compile(r"^the training run recorded test error (\d+\.\d+) % ",
                           re.MULTILINE)


def run_script(args, cwd):
    """``doc/model_figures.py`` in a subprocess, under this process's floatX (so that
    it computes as the in-process training did)."""
    env = dict(os.environ, PYTENSOR_FLAGS=f"floatX={pytensor.config.floatX}")
    return subprocess.run([sys.executable, str(SCRIPT)] + list(args), cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def drawn(tmp_path_factory, tiny_mnist):
    """A tiny LeNet trained for one epoch (its test score is measured on all
    the test digits), and the script's run on it: (model, output folder, result)."""
    work = tmp_path_factory.mktemp("model_figures")
    model = work / "tiny_model.npz"
    convolutional_mlp.evaluate_lenet5(
        n_epochs=1, dataset=tiny_mnist, nkerns=[2, 3], batch_size=BATCH,
        max_batches=(3, 2, None), model_file=str(model))
    out = work / "images"
    done = run_script([str(model), "--dataset", tiny_mnist, "--out", str(out),
                       "--digit", "3", "--batch-size", str(BATCH)], work)
    assert done.returncode == 0, done.stderr
    return model, out, done


def printed_confusion(stdout):
    """The confusion matrix the script printed, as a (10, 10) array."""
    lines = stdout.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("confusion matrix"))
    assert lines[start + 1].split() == ["true"] + [str(d) for d in range(10)]
    rows = [[int(v) for v in line.split()] for line in lines[start + 2:start + 12]]
    assert [row[0] for row in rows] == list(range(10))
    return numpy.array([row[1:] for row in rows])


def test_three_pictures_of_the_page_size(drawn):
    _, out, done = drawn
    assert sorted(os.listdir(out)) == sorted(PNGS)
    for name in PNGS:
        assert f"wrote {out / name}" in done.stdout
        with Image.open(out / name) as png:
            png.verify()
        with Image.open(out / name) as png:
            # 9 inches at 200 pixels per inch, as the pipelines of make_figures.py
            assert png.format == "PNG" and png.size[0] >= 1500, (name, png.size)
            assert 300 <= png.size[1] <= 2600, (name, png.size)
            assert "Software" not in png.info  # no matplotlib version in the file
            pixels = numpy.asarray(png.convert("L"))
            assert pixels.min() < 60 and pixels.max() > 200, name  # not blank
    with Image.open(out / "lenet_feature_maps.png") as png:
        assert png.size[0] > 2 * png.size[1]  # digit, maps, maps: one wide row


def test_the_numbers_agree_with_the_model_and_the_data(drawn, tiny_mnist):
    model, _, done = drawn
    error = ERROR_LINE.search(done.stdout)
    assert error, done.stdout
    percent, wrong, total = float(error.group(1)), int(error.group(2)), int(error.group(3))
    assert total == N_TEST and math.isclose(percent, 100 * wrong / N_TEST, abs_tol=1e-6)

    counts = printed_confusion(done.stdout)
    labels = synthetic_mnist()[2][1]  # what tiny_mnist holds
    assert counts.sum() == N_TEST
    assert numpy.array_equal(counts.sum(axis=1), numpy.bincount(labels, minlength=10))
    assert numpy.trace(counts) == N_TEST - wrong

    # the training run measured the same model on the same digits, with the
    # same compiled arithmetic: the same mistakes
    with numpy.load(model, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    recorded = json.loads(str(arrays.pop("meta")[()]))["training"]["test_error"]
    assert wrong == round(recorded * N_TEST)
    assert math.isclose(float(RECORDED_LINE.search(done.stdout).group(1)), 100 * recorded,
                        abs_tol=1e-6)

    # and a numpy forward pass finds them too (up to digits whose two best
    # classes are too close to tell apart in float32)
    probabilities = lenet_reference(arrays, synthetic_mnist()[2][0])
    expected = numpy.zeros((10, 10), dtype=int)
    numpy.add.at(expected, (labels, probabilities.argmax(axis=1)), 1)
    top2 = numpy.sort(probabilities, axis=1)[:, -2:]
    near_ties = int((top2[:, 1] - top2[:, 0] < 1e-5).sum())
    assert numpy.abs(counts - expected).sum() <= 2 * near_ties, (counts, expected)


def test_a_missing_model_is_one_line(tmp_path, tiny_mnist):
    model = tmp_path / "none.npz"
    done = run_script([str(model), "--dataset", tiny_mnist, "--out", str(tmp_path / "out")],
                      tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == (
        f"model_figures.py: error: no saved model at {model} (train one first: "
        f"python code/convolutional_mlp.py --model {model})")
    assert not (tmp_path / "out").exists()


def test_bad_models_and_digits_are_one_line(drawn, tmp_path, tiny_mnist, capsys):
    """In this process (PyTensor is imported already): each problem is one line
    and exit status 1, and no picture is written."""
    model, _, _ = drawn
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 not a zip")
    arrays = dict(numpy.load(model, allow_pickle=False))
    meta = json.loads(str(arrays["meta"][()]))
    lenet5_model = tmp_path / "lenet5_model.npz"
    numpy.savez(lenet5_model, **dict(arrays, meta=numpy.array(json.dumps(
        dict(meta, tutorial="lenet5")))))
    out = tmp_path / "out"
    for args, fragment in [
        ([str(garbage)], f"{garbage} is not a readable saved model"),
        ([str(lenet5_model)], "a model of lenet5.py, not of convolutional_mlp.py"),
        ([str(model), "--digit", str(N_TEST)], f"--digit {N_TEST}: the test set has {N_TEST}"),
    ]:
        status = model_figures.main(args + ["--dataset", tiny_mnist, "--out", str(out)])
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert status == 1 and len(lines) == 1, captured.err
        assert lines[0].startswith("model_figures.py: error: ") and fragment in lines[0], lines
    assert os.listdir(out) == []
