"""``optional-figure``: a figure whose image may legitimately be absent.

Some figures are drawn from material the project cannot ship (the 3wolfmoon
photograph). Such a figure takes the usual ``figure`` arguments and options
plus ``:if-missing:``, a line of reST shown in a note when the image file does
not exist. With the image present it is an ordinary figure.
"""
import os

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.parsers.rst.directives.images import Figure


class OptionalFigure(Figure):
    option_spec = dict(Figure.option_spec, **{"if-missing": directives.unchanged_required})

    def run(self):
        env = self.state.document.settings.env
        message = self.options.pop("if-missing", "This figure has not been generated.")
        _, abs_path = env.relfn2path(self.arguments[0], env.docname)
        if os.path.exists(abs_path):
            return super().run()
        # Re-read this page on the next build, so that the figure appears as
        # soon as it has been generated.
        env.note_dependency(abs_path)
        text_nodes, messages = self.state.inline_text(message, self.lineno)
        note = nodes.note("", nodes.paragraph("", "", *text_nodes))
        return [note, *messages]
