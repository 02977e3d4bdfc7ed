"""The tutorial pages build with warnings as errors, and their examples run.

``sphinx-build -W -b html`` fails on a broken ``literalinclude`` (a snippet
marker that moved), a bad reference (the build is nitpicky), a missing
figure; ``-b doctest`` runs every example in the pages and compares what it
prints. The built pages must work offline: none loads a script, a style
sheet, a font or an image from another host, and the equations are drawn by
the MathJax copy that ships with the pages.
"""
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "doc"

pytest.importorskip("sphinx")


def _sphinx(builder, out):
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", builder,
         str(DOC), str(out)],
        capture_output=True, text=True, timeout=900,
    )


@pytest.fixture(scope="module")
def html_build(tmp_path_factory):
    """One HTML build for the tests of this module: (result, output folder)."""
    out = tmp_path_factory.mktemp("html")
    return _sphinx("html", out), out


@pytest.mark.parametrize("builder", ["html", "doctest"])
def test_docs_build_without_warnings(builder, request, tmp_path):
    if builder == "html":
        result, _ = request.getfixturevalue("html_build")
    else:
        result = _sphinx(builder, tmp_path / builder)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


# What a browser fetches by itself when it shows a page (a link the reader
# follows, <a href>, is not such a load).
LOADING_ATTRIBUTES = {
    "script": ("src",), "link": ("href",), "img": ("src", "srcset"),
    "iframe": ("src",), "embed": ("src",), "object": ("data",),
    "source": ("src", "srcset"), "audio": ("src",), "video": ("src", "poster"),
    "track": ("src",), "input": ("src",),
}
ANOTHER_HOST = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)  # http://, //cdn
CSS_URL = re.compile(r"""(?:url\(\s*|@import\s+(?!url\())['"]?([^'")\s;]+)""", re.IGNORECASE)


class _Loads(HTMLParser):
    """Collects the URLs a page loads: from tags, and from url() in <style>."""

    def __init__(self):
        super().__init__()
        self.urls, self._in_style = [], False

    def handle_starttag(self, tag, attrs):
        self._in_style = tag == "style"
        for name, value in attrs:
            if value and name in LOADING_ATTRIBUTES.get(tag, ()):
                # srcset: "a.png 1x, b.png 2x"
                parts = value.split(",") if name == "srcset" else [value]
                self.urls += [f"<{tag} {name}> {part.split()[0]}" for part in parts
                              if part.strip()]
            if name == "style" and value:
                self.urls += [f"<{tag} style> {url}" for url in CSS_URL.findall(value)]

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.urls += [f"<style> {url}" for url in CSS_URL.findall(data)]


def _external(urls):
    return [url for url in urls if ANOTHER_HOST.match(url.split("> ", 1)[1])]


def _built_pages(html_build):
    """The pages of the build, which also writes them when it warns (--keep-going)."""
    result, out = html_build
    pages = sorted(out.rglob("*.html"))
    assert len(pages) > 5, result.stdout[-4000:] + result.stderr[-4000:]
    return out, pages


def test_no_page_loads_anything_from_another_host(html_build):
    out, pages = _built_pages(html_build)
    offenders = {}
    for page in pages:
        parser = _Loads()
        parser.feed(page.read_text(encoding="utf-8"))
        if external := _external(parser.urls):
            offenders[str(page.relative_to(out))] = external
    for sheet in sorted(out.rglob("*.css")):
        urls = [f"<css> {url}" for url in CSS_URL.findall(sheet.read_text(encoding="utf-8"))]
        if external := _external(urls):
            offenders[str(sheet.relative_to(out))] = external
    assert not offenders, f"pages that load from another host: {offenders}"


def test_math_is_drawn_by_the_bundled_mathjax(html_build):
    out, _ = _built_pages(html_build)
    page = (out / "lenet.html").read_text(encoding="utf-8")
    assert 'class="math notranslate nohighlight"' in page  # the page has equations
    scripts = re.findall(r'<script[^>]*src="([^"]*mathjax[^"]*)"', page, re.IGNORECASE)
    assert scripts, "no MathJax script on a page with equations"
    for src in scripts:
        assert not ANOTHER_HOST.match(src), src
        assert (out / src.split("?")[0]).is_file(), f"{src} is not in the built pages"


def test_the_host_check_sees_what_it_must():
    """The parser behind the host test flags remote loads, and only those."""
    parser = _Loads()
    parser.feed('<script src="https://cdn.example.org/m.js"></script>'
                '<link rel="stylesheet" href="//fonts.example.org/f.css">'
                '<img src="_images/a.png" srcset="_images/a.png 1x, http://x.org/b.png 2x">'
                '<style>@import url("https://x.org/s.css");</style>'
                '<a href="https://github.com/pymc-devs/pytensor">PyTensor</a>'
                '<script src="_static/mathjax/tex-svg-full.js?v=1"></script>')
    assert _external(parser.urls) == [
        "<script src> https://cdn.example.org/m.js",
        "<link href> //fonts.example.org/f.css",
        "<img srcset> http://x.org/b.png",
        '<style> https://x.org/s.css',
    ]


def _one_line(text):
    return " ".join(text.split())


def test_mlp_page_quotes_its_recorded_run():
    """The MLP page states the numbers of the run logged in doc/results/.

    When the logged run finished, the page quotes its closing lines (best
    validation, iteration, test error, time); while it is still going, the
    page quotes the last validation the log reached.
    """
    log = (DOC / "results" / "mlp_full_run.log").read_text(encoding="utf-8")
    page = _one_line((DOC / "mlp.rst").read_text(encoding="utf-8"))
    lines = [line.strip() for line in log.splitlines()]
    final = [line for line in lines
             if line.startswith(("Optimization complete.", "The code for file mlp.py ran for"))]
    quoted = final or [line for line in lines if line.startswith("epoch ")][-1:]
    assert quoted, "doc/results/mlp_full_run.log has no result to quote"
    for line in quoted:
        assert _one_line(line) in page, f"doc/mlp.rst does not quote the log's line {line!r}"
