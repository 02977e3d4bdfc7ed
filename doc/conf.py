"""Sphinx configuration for the LeNet-on-PyTensor tutorial.

Build the pages and run their examples with::

    python -m sphinx -W -b html doc doc/_build/html
    python -m sphinx -W -b doctest doc doc/_build/doctest

The build is nitpicky (every cross-reference must resolve) and needs no
network, neither to build nor to read the pages: MathJax is bundled under
``_static/mathjax`` and no page loads anything from another host.

The diagrams under ``images/`` are committed. When one is missing, the build
redraws it with ``make_figures.py`` before reading the pages. The build
also draws the figure of ``code/filter_demo.py``, which is not committed: it
filters the original tutorial's "3wolfmoon" photograph where that
(third-party) picture is available, and otherwise the photograph of Grace
Hopper that matplotlib ships; the caption says which one the reader sees.
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

# Every reference must resolve (sphinx-build -n is the default here). There
# is no intersphinx (the build is offline), so the types that docstrings
# describe in words, numpydoc style ("4-d tensor", "{'valid', 'full'}",
# "optional"), are not taken for class names.
nitpicky = True
nitpick_ignore_regex = [
    ("py:class", r".*\s.*"),  # words: "4-d tensor", "tensor with ndim >= 2"
    ("py:class", r"\{?'[^']*'\}?"),  # the quoted values of "{'max', 'sum'}"
    ("py:class", r"optional|tensor|array_like|scalar"),
]

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
html_static_path = ["_static"]
html_css_files = ["lenet.css"]
# A wider page than the theme's 940 pixels, whose 600-pixel code blocks made
# most listings scroll sideways. The text column is 900 pixels wide (never
# wider), and with lenet.css a 100-column line fits in a code block: from a
# 1,180-pixel window up beside the sidebar; on narrower windows the theme
# puts the sidebar below the text, and a 100-column line still fits down to
# a window about 980 pixels wide.
html_theme_options = {
    "description": "Convolutional networks on MNIST, the Deep Learning "
    "Tutorials way, with PyTensor",
    "fixed_sidebar": False,
    "page_width": "1180px",
    "body_max_width": "900px",
}

# MathJax 3, bundled (see _static/mathjax/README.txt): the SVG output needs no
# font files and the "full" component no extension loaded on demand, so the
# equations render offline, also on pages opened from disk.
mathjax_path = "mathjax/tex-svg-full.js"


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
            # e.g. no 3wolfmoon photograph here: the page shows the stand-in.
            logger.info("make_figures: images/%s not drawn (%s)", name, outcome)


def setup(app):
    from first_figure import FirstFigure

    app.add_directive("first-figure", FirstFigure)
    app.connect("builder-inited", _make_missing_figures)
    return {"parallel_read_safe": True}
