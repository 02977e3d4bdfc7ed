"""Max-pooling a small random tensor, with and without ``ignore_border``.

``max_pool_2d`` pools the two last axes of its input. A 5 x 5 map does not
split evenly into 2 x 2 windows: with ``ignore_border=True`` the incomplete
windows along the bottom and right edges are dropped (2 x 2 result), with
``ignore_border=False`` they are kept and pooled over the cells they cover
(3 x 3 result).

Running the module prints the same text as the original Theano tutorial's
example. That example was a Python 2 script, printed with numpy's old
(1.13) array formatting; :func:`maxpool_demo_text` reproduces both, see
:func:`py2_print_line`.

Usage::

    python code/maxpool_demo.py
"""
import argparse
import functools
import sys

import numpy
import pytensor
import pytensor.tensor as pt

from pytensor_nnet import max_pool_2d

@functools.cache
def pooling_functions():
    """Compile the two pooling functions (once) and draw the input.

    Returns
    -------
    tuple
        ``(pool_dropping_border, pool_keeping_border, invals)``.
    """
    # start-snippet-1
    # A symbolic 4-D tensor of float64: (images, maps, rows, columns).
    input = pt.dtensor4("input")
    maxpool_shape = (2, 2)  # the window must be known when the graph is built

    pool_dropping_border = pytensor.function(
        [input], max_pool_2d(input, maxpool_shape, ignore_border=True))
    pool_keeping_border = pytensor.function(
        [input], max_pool_2d(input, maxpool_shape, ignore_border=False))

    # 3 images of 2 maps of 5 x 5 values in [0, 1).
    invals = numpy.random.RandomState(1).rand(3, 2, 5, 5)
    # end-snippet-1
    return pool_dropping_border, pool_keeping_border, invals


def py2_print_line(*items):
    """The line that Python 2's ``print item1, item2, ...`` would write.

    Python 2's ``print`` statement separates items with a space, except
    that no space is written right after a string ending in a whitespace
    character other than ``' '`` (typically ``'\\n'``): the output is then
    believed to be at the start of a line. A string ending in ``' '``
    still gets the separator. Hence (checked with a Python 2.7
    interpreter)::

        print 'a =\\n', x     ->  'a =\\n' + str(x)
        print 'a =\\n ', x    ->  'a =\\n ' + ' ' + str(x)

    Parameters
    ----------
    *items
        The printed objects, converted with ``str``.

    Returns
    -------
    str
        The text written, without the final newline.
    """
    text = ""
    want_space = False
    for item in items:
        if want_space:
            text += " "
        piece = str(item)
        text += piece
        if isinstance(item, str) and piece and piece[-1].isspace() and piece[-1] != " ":
            want_space = False
        else:
            want_space = True
    return text


def maxpool_demo_text():
    """The printout of the demo, exactly as the Theano tutorial shows it.

    Arrays are formatted the way numpy printed them in 2014 (numpy's
    ``legacy='1.13'`` mode, 8 digits, 75-character lines): the first map
    contains ``1.14374817e-04`` and is therefore written in scientific
    notation; the others in fixed point.

    Returns
    -------
    str
        Eight ``print`` statements' worth of lines, without a trailing
        newline.
    """
    pool_dropping_border, pool_keeping_border, invals = pooling_functions()
    dropped = pool_dropping_border(invals)
    kept = pool_keeping_border(invals)
    # Pin every option that affects the text, whatever the caller's settings.
    with numpy.printoptions(legacy="1.13", precision=8, linewidth=75,
                            suppress=False, threshold=1000, edgeitems=3):
        lines = [
            py2_print_line("With ignore_border set to True:"),
            py2_print_line("invals[0, 0, :, :] =\n", invals[0, 0, :, :]),
            py2_print_line("output[0, 0, :, :] =\n", dropped[0, 0, :, :]),
            py2_print_line("With ignore_border set to False:"),
            # The original strings end in "\n " here (a stray space), which
            # Python 2 follows with its separator space: "  [[".
            py2_print_line("invals[1, 0, :, :] =\n ", invals[1, 0, :, :]),
            py2_print_line("output[1, 0, :, :] =\n ", kept[1, 0, :, :]),
        ]
    return "\n".join(lines)


def main(argv=None):
    """Print the demo's text; returns 0."""
    parser = argparse.ArgumentParser(
        description="Max-pool a random (3, 2, 5, 5) tensor with 2x2 windows, "
                    "with ignore_border True and then False, and print a map "
                    "before and after pooling (the Theano tutorial's example).")
    parser.parse_args(argv)
    print(maxpool_demo_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
