"""Sphinx configuration for the LeNet-on-PyTensor tutorial.

Build the pages and run their examples with::

    python -m sphinx -W -b html doc doc/_build/html
    python -m sphinx -W -b doctest doc doc/_build/doctest

The diagrams under ``images/`` are committed. When one is missing, the build
redraws it with ``make_figures.py`` before reading the pages. The filtered
3wolfmoon figure is made the same way, but only where the (third-party, not
committed) photograph is available; without it the page shows a note instead
of the figure.
"""
import os
import sys

DOC_DIR = os.path.dirname(os.path.abspath(__file__))
CODE_DIR = os.path.join(os.path.dirname(DOC_DIR), "code")
sys.path.insert(0, CODE_DIR)
sys.path.insert(0, DOC_DIR)
sys.path.insert(0, os.path.join(DOC_DIR, "_ext"))

# -- Project information -----------------------------------------------------

project = "LeNet on PyTensor"
author = "The LeNet-on-PyTensor contributors"
copyright = author
release = "0.1.0"
version = release

# -- General configuration ---------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.doctest",
    "sphinx.ext.napoleon",
]

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path = []
numfig = True
nitpicky = False

autodoc_member_order = "bysource"
autodoc_default_options = {"undoc-members": False}
napoleon_numpy_docstring = True
napoleon_google_docstring = True

# Every doctest group starts from the same imports. PyTensor compiles each
# function the first time it runs, so the examples keep their inputs small.
doctest_global_setup = """
import numpy
import pytensor
import pytensor.tensor as pt
"""

# -- HTML output -------------------------------------------------------------

html_theme = "alabaster"
html_title = project
html_static_path = []
html_theme_options = {
    "description": "Convolutional networks on MNIST, the Deep Learning "
    "Tutorials way, with PyTensor",
    "fixed_sidebar": False,
}


# -- Figures -----------------------------------------------------------------


def _make_missing_figures(app):
    """Draw, before any page is read, the figures that are not on disk yet."""
    import make_figures
    from sphinx.util import logging

    logger = logging.getLogger(__name__)
    for name in make_figures.FIGURES:
        try:
            outcome = make_figures.make_figures([name], only_missing=True)[name]
        except Exception as error:  # reported as a build warning, fatal with -W
            logger.warning("make_figures: could not draw images/%s: %s", name, error)
            continue
        if outcome == "written":
            logger.info("make_figures: drew images/%s", name)
        elif outcome != "present":
            # e.g. the 3wolfmoon photograph is not available: the page says so.
            logger.info("make_figures: images/%s not drawn (%s)", name, outcome)


def setup(app):
    from optional_figure import OptionalFigure

    app.add_directive("optional-figure", OptionalFigure)
    app.connect("builder-inited", _make_missing_figures)
    return {"parallel_read_safe": True}
