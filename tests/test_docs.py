"""The tutorial pages build with warnings as errors, and their examples run.

``sphinx-build -W -b html`` fails on a broken ``literalinclude`` (a snippet
marker that moved), a bad reference or a missing figure; ``-b doctest`` runs
every example in the pages and compares what it prints.
"""
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "doc"

pytest.importorskip("sphinx")


@pytest.mark.parametrize("builder", ["html", "doctest"])
def test_docs_build_without_warnings(builder, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", builder,
         str(DOC), str(tmp_path / builder)],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
