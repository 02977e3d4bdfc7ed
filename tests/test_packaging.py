"""What ``pip install .`` installs: the library, not the tutorial scripts.

The wheel is built from a copy of the files ``setup.py`` needs, offline
(``--no-build-isolation``, with the setuptools of the test environment), and
its contents are listed: only ``pytensor_nnet`` and the metadata.
"""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_holds_only_the_library(tmp_path):
    source = tmp_path / "src"
    (source / "code").mkdir(parents=True)
    for name in ("setup.py", "README.rst"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "code" / "pytensor_nnet", source / "code" / "pytensor_nnet",
                    ignore=shutil.ignore_patterns("__pycache__"))
    # a tutorial module beside the package, as in the checkout
    for name in ("utils.py", "early_stopping.py", "mnist_io.py", "convolutional_mlp.py"):
        shutil.copy(REPO / "code" / name, source / "code" / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    top = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    packages = {name for name in top if not name.endswith(".dist-info")}
    assert packages == {"pytensor_nnet"}
    modules = {Path(name).name for name in zipfile.ZipFile(wheel).namelist()}
    assert "conv.py" in modules and "pool.py" in modules
    assert not {"utils.py", "early_stopping.py", "mnist_io.py"} & modules
