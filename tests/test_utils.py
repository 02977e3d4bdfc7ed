"""Tests for ``utils``: tiling images, plotting to PNG, and the CLI.

Everything runs headless: the module draws on Agg ``Figure`` objects and
never imports pyplot. PNGs are written to ``tmp_path`` and read back with
Pillow.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import utils
from utils import scale_to_unit_interval, tile_raster_images

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------
# scale_to_unit_interval
# ---------------------------------------------------------------------------

def test_scale_to_unit_interval_values():
    out = scale_to_unit_interval(np.array([[-2.0, 0.0], [2.0, 6.0]]))
    np.testing.assert_allclose(out, [[0.0, 0.25], [0.5, 1.0]], atol=1e-8)
    assert out.max() < 1.0  # eps keeps the top just below 1


def test_scale_to_unit_interval_constant_and_int_input():
    np.testing.assert_array_equal(scale_to_unit_interval(np.full((2, 3), 7.0)), 0.0)
    out = scale_to_unit_interval(np.array([0, 5, 10]))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, [0.0, 0.5, 1.0], atol=1e-8)
    assert scale_to_unit_interval(np.ones(3, dtype=np.float32)).dtype == np.float32


def test_scale_does_not_modify_its_input():
    x = np.array([1.0, 2.0, 3.0])
    scale_to_unit_interval(x)
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])


# ---------------------------------------------------------------------------
# tile_raster_images
# ---------------------------------------------------------------------------

def distinct_images(n, shape):
    """n images whose pixels all differ: image k holds 100 * k + 0, 1, 2 ..."""
    size = shape[0] * shape[1]
    return (100.0 * np.arange(n)[:, None] + np.arange(size)[None, :])


def test_tile_layout_and_spacing_raw_values():
    X = distinct_images(5, (2, 3))
    out = tile_raster_images(X, (2, 3), (2, 3), tile_spacing=(1, 2),
                             scale_rows_to_unit_interval=False, output_pixel_vals=False)
    assert out.shape == (2 * 3 - 1, 3 * 5 - 2)  # (rows*(h+gh)-gh, cols*(w+gw)-gw)
    assert out.dtype == X.dtype
    for k in range(6):
        row, col = divmod(k, 3)
        tile = out[row * 3:row * 3 + 2, col * 5:col * 5 + 3]
        expected = X[k].reshape(2, 3) if k < 5 else np.zeros((2, 3))  # 6th tile is empty
        np.testing.assert_array_equal(tile, expected)
    # The gaps are black: row 2, and columns 3-4 and 8-9.
    np.testing.assert_array_equal(out[2, :], 0)
    np.testing.assert_array_equal(out[:, [3, 4, 8, 9]], 0)


def test_tile_scaling_to_pixels():
    X = distinct_images(4, (3, 3))
    X[1] *= -7.0  # every image spans its own range
    out = tile_raster_images(X, (3, 3), (2, 2), tile_spacing=(1, 1))
    assert out.dtype == np.uint8 and out.shape == (7, 7)
    for k in range(4):
        row, col = divmod(k, 2)
        tile = out[row * 4:row * 4 + 3, col * 4:col * 4 + 3].astype(int)
        expected = (scale_to_unit_interval(X[k]) * 255).astype(int).reshape(3, 3)
        np.testing.assert_array_equal(tile, expected)
        # Each tile uses the whole range; truncation after the eps gives 254.
        assert tile.min() == 0 and tile.max() == 254
    assert out[3, :].max() == 0 and out[:, 3].max() == 0


def test_tile_without_scaling_clips_pixels():
    X = np.array([[-0.5, 0.0, 0.5, 2.0]])
    out = tile_raster_images(X, (2, 2), (1, 1), scale_rows_to_unit_interval=False)
    np.testing.assert_array_equal(out, [[0, 0], [127, 255]])


def test_tile_extra_images_are_ignored():
    X = distinct_images(10, (2, 2))
    out = tile_raster_images(X, (2, 2), (1, 3), scale_rows_to_unit_interval=False,
                             output_pixel_vals=False)
    np.testing.assert_array_equal(out[:, 4:6], X[2].reshape(2, 2))
    assert out.shape == (2, 6)


def test_tile_rgba_tuple():
    R = distinct_images(2, (2, 2))
    B = -R
    out = tile_raster_images((R, None, B, None), (2, 2), (1, 2), tile_spacing=(0, 1))
    assert out.shape == (2, 5, 4) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :, 0], tile_raster_images(R, (2, 2), (1, 2), (0, 1)))
    np.testing.assert_array_equal(out[:, :, 2], tile_raster_images(B, (2, 2), (1, 2), (0, 1)))
    np.testing.assert_array_equal(out[:, :, 1], 0)
    np.testing.assert_array_equal(out[:, :, 3], 255)  # missing alpha means opaque

    raw = tile_raster_images((R, None, None, None), (2, 2), (1, 2),
                             output_pixel_vals=False)
    assert raw.dtype == np.float64
    np.testing.assert_array_equal(raw[:, :, 3], 1.0)
    np.testing.assert_allclose(raw[:, :2, 0], [[0.0, 1 / 3], [2 / 3, 1.0]], atol=1e-8)


def test_tile_errors():
    with pytest.raises(ValueError, match="shape"):
        tile_raster_images(np.zeros((3, 5)), (2, 2), (1, 3))
    with pytest.raises(ValueError, match="4 channels"):
        tile_raster_images((np.zeros((1, 4)),) * 3, (2, 2), (1, 1))


# ---------------------------------------------------------------------------
# Filters as tiles
# ---------------------------------------------------------------------------

def test_filters_to_tiles_shapes():
    rng = np.random.default_rng(0)
    conv = rng.normal(size=(20, 1, 5, 5))
    assert utils.filters_to_tiles(conv).shape == (4 * 6 - 1, 5 * 6 - 1)  # 4 x 5 grid
    colour = rng.normal(size=(6, 3, 4, 4))
    assert utils.filters_to_tiles(colour).shape == (2 * 5 - 1, 3 * 5 - 1, 4)
    multi = rng.normal(size=(4, 2, 3, 3))
    assert utils.filters_to_tiles(multi).shape == (4 * 4 - 1, 2 * 4 - 1)  # row per filter
    matrix = rng.normal(size=(784, 10))
    tiles = utils.filters_to_tiles(matrix, tile_spacing=(0, 0))
    assert tiles.shape == (3 * 28, 4 * 28)
    # Column j of the matrix is tile j.
    first = tile_raster_images(matrix.T[:1], (28, 28), (1, 1))
    np.testing.assert_array_equal(tiles[:28, :28], first)
    with pytest.raises(ValueError, match="img_shape"):
        utils.filters_to_tiles(rng.normal(size=(30, 2)))
    assert utils.filters_to_tiles(rng.normal(size=(30, 2)), img_shape=(5, 6)).shape == (5, 13)
    with pytest.raises(ValueError, match="4-D"):
        utils.filters_to_tiles(np.zeros((2, 3, 4)))


# ---------------------------------------------------------------------------
# PNG outputs
# ---------------------------------------------------------------------------

def read_png(path):
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        return picture.size, np.asarray(picture.convert("L"))


def no_leftovers(folder):
    return not [name for name in os.listdir(folder) if name.endswith(".tmp")]


def make_history():
    history = []
    test = None
    for epoch in range(1, 9):
        valid = 0.09 / epoch + 0.01
        if epoch in (1, 2, 4, 7):  # new best models
            test = valid + 0.002
        history.append({"epoch": epoch, "iteration": 100 * epoch,
                        "validation_error": valid, "test_error": test})
    return history


def test_plot_error_history(tmp_path):
    path = tmp_path / "errors.png"
    written = utils.plot_error_history(make_history(), path, title="lenet5: error rates")
    assert written == str(path)
    size, pixels = read_png(path)
    assert size == (640, 400)
    assert pixels.std() > 5 and len(np.unique(pixels)) > 10
    assert no_leftovers(tmp_path)


def test_plot_error_history_tolerates_missing_test_errors(tmp_path):
    history = [dict(r, test_error=None) for r in make_history()]
    history[3]["test_error"] = float("nan")
    utils.plot_error_history(history, tmp_path / "errors.png")
    assert read_png(tmp_path / "errors.png")[0] == (640, 400)


def test_plot_error_history_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        utils.plot_error_history([], tmp_path / "e.png")
    with pytest.raises(ValueError, match="validation_error"):
        utils.plot_error_history([{"epoch": 1, "iteration": 1}], tmp_path / "e.png")
    assert not (tmp_path / "e.png").exists()


def test_epoch_positions_spread_several_records_per_epoch():
    np.testing.assert_allclose(utils._epoch_positions([1, 2, 3]), [1, 2, 3])
    np.testing.assert_allclose(utils._epoch_positions([1, 1, 2, 2, 2]),
                               [0.5, 1.0, 1 + 1 / 3, 1 + 2 / 3, 2.0])


@pytest.mark.parametrize("shape", [(20, 1, 5, 5), (50, 20, 5, 5), (784, 500), (6, 3, 9, 9)])
def test_plot_filters(tmp_path, shape):
    W = np.random.default_rng(3).normal(size=shape)
    path = tmp_path / "filters.png"
    utils.plot_filters(W, path)
    (width, height), pixels = read_png(path)
    assert 400 <= max(width, height) <= 1200 and min(width, height) >= 100
    assert pixels.std() > 10
    assert no_leftovers(tmp_path)


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "filters.png"
    path.write_bytes(b"old")

    def broken_savefig(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("matplotlib.figure.Figure.savefig", broken_savefig)
    with pytest.raises(RuntimeError, match="disk full"):
        utils.plot_filters(np.ones((4, 1, 3, 3)), path)
    assert path.read_bytes() == b"old"
    assert no_leftovers(tmp_path)
    monkeypatch.undo()
    utils.plot_filters(np.arange(36.0).reshape(4, 1, 3, 3), path)
    assert read_png(path)[1].std() > 10


def test_plotting_never_imports_pyplot(tmp_path):
    code = (
        "import sys, numpy, utils\n"
        f"utils.plot_filters(numpy.eye(16).reshape(16, 1, 4, 4), {str(tmp_path / 'f.png')!r})\n"
        "utils.plot_error_history([{'epoch': 1, 'iteration': 5, 'validation_error': 0.1,"
        f" 'test_error': 0.1}}], {str(tmp_path / 'e.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "MPLBACKEND"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "code"), env.get("PYTHONPATH", "")])
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

@pytest.fixture
def model(tmp_path):
    path = tmp_path / "best_model.npz"
    rng = np.random.default_rng(4)
    np.savez(path, layer0_W=rng.normal(size=(20, 1, 5, 5)), layer0_b=np.zeros(20))
    return path


def test_cli_plot_filters(model, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert utils.main(["plot-filters", str(model), "--param", "layer0_W", "-o", str(out)]) == 0
    assert read_png(out)[1].std() > 10
    assert "out.png" in capsys.readouterr().out


def test_cli_default_param_and_logistic_model(tmp_path):
    logistic = tmp_path / "logistic.npz"
    np.savez(logistic, W=np.random.default_rng(5).normal(size=(784, 10)), b=np.zeros(10))
    out = tmp_path / "w.png"
    assert utils.main(["plot-filters", str(logistic), "-o", str(out)]) == 0
    assert read_png(out)[1].std() > 10


def test_cli_errors(model, tmp_path):
    with pytest.raises(SystemExit) as info:
        utils.main(["plot-filters", str(model), "--param", "layer9_W", "-o", str(tmp_path / "x.png")])
    assert "layer0_W" in str(info.value.code) and "layer0_b" in str(info.value.code)
    with pytest.raises(SystemExit) as info:
        utils.main(["plot-filters", str(tmp_path / "missing.npz")])
    assert "no saved model at" in str(info.value.code)

    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, layer0_W=np.array([{"a": 1}], dtype=object))
    with pytest.raises(SystemExit) as info:
        utils.main(["plot-filters", str(pickled), "-o", str(tmp_path / "x.png")])
    assert "not a readable saved model" in str(info.value.code)
    assert "allow_pickle=False" in str(info.value.code)

    not_npz = tmp_path / "model.npz"
    not_npz.write_bytes(b"garbage")
    with pytest.raises(SystemExit) as info:
        utils.main(["plot-filters", str(not_npz)])
    assert "not a readable saved model" in str(info.value.code)
    assert not (tmp_path / "x.png").exists()


def test_cli_help_runs_as_a_script():
    result = subprocess.run([sys.executable, str(REPO / "code" / "utils.py"), "plot-filters", "-h"],
                            capture_output=True, text=True, check=True, timeout=120)
    assert "--param" in result.stdout and "layer0_W" in result.stdout
