"""``first-figure``: a figure that shows the first of several images on disk.

Some figures are drawn by the build from material that differs from one
machine to the next. The filter demo's figure is one: it is drawn from the
original tutorial's "3wolfmoon" photograph where that (third-party) picture
is available, and from matplotlib's sample photograph everywhere else. The
directive takes the candidate images in order of preference, the usual
``figure`` options, and for the Nth image an ``:about-N:`` line of reST that
ends the caption when that image is the one shown::

    .. first-figure:: images/3wolfmoon_filtered.png images/grace_hopper_filtered.png
       :width: 100%
       :about-1: The photograph is 3wolfmoon.
       :about-2: The photograph is Grace Hopper's.

       Left: the input. Middle and right: the two outputs.

When none of the images exists, the build warns (an error with ``-W``).
"""
import os

from docutils.parsers.rst import directives
from docutils.parsers.rst.directives.images import Figure
from sphinx.util import logging

logger = logging.getLogger(__name__)

MAX_IMAGES = 4


class FirstFigure(Figure):
    required_arguments = 1
    optional_arguments = MAX_IMAGES - 1
    final_argument_whitespace = False
    option_spec = dict(Figure.option_spec,
                       **{f"about-{n}": directives.unchanged
                          for n in range(1, MAX_IMAGES + 1)})

    def run(self):
        env = self.state.document.settings.env
        candidates = list(self.arguments)
        about = [self.options.pop(f"about-{n}", "") for n in range(1, MAX_IMAGES + 1)]
        for index, candidate in enumerate(candidates):
            _, abs_path = env.relfn2path(candidate, env.docname)
            if os.path.exists(abs_path):
                break
            # Read this page again on the next build: once a preferred image
            # appears, it replaces the one shown now.
            env.note_dependency(abs_path)
        else:
            logger.warning("first-figure: none of these images exists: %s",
                           ", ".join(candidates), location=(env.docname, self.lineno))
            return []
        self.arguments = [candidate]
        if about[index]:
            self._end_caption_with(about[index])
        return super().run()

    def _end_caption_with(self, text):
        """Add ``text`` to the caption, the first paragraph of the content."""
        source, line = self.state_machine.get_source_and_line(self.lineno)
        end = next((i for i, row in enumerate(self.content) if not row.strip()),
                   len(self.content))
        self.content.insert(end, text, source, line)
