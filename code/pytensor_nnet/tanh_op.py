"""``Tanh32``: float32 ``tanh`` as an Op of its own, and the rewrite that uses it.

PyTensor fuses ``tanh`` into its elementwise loops, where each element calls
a scalar function that LLVM does not inline once it is as large as an exact
float32 tanh, so the loop cannot vectorise. An Op of its own runs the
vectorised loop of :mod:`pytensor_nnet.fast_tanh` over the whole array: the
same bits as PyTensor's float32 ``tanh`` (the C library's ``tanhf``), several
times faster (see the docs' performance page).

The rewrite replaces every float32 ``Elemwise{tanh}`` before elementwise
fusion (its gradient has already been built from the original ``tanh`` by
then). Importing the package does not register it:
:func:`pytensor_nnet.tune_for_speed` does, for graphs compiled afterwards.
"""
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import in2out, node_rewriter
from pytensor.scalar.basic import Tanh
from pytensor.tensor.elemwise import Elemwise

from .conv import infer_shape_args
from .fast_tanh import tanh_array


class Tanh32(Op):
    """Elementwise tanh of a float32 tensor, computed as glibc's ``tanhf``."""

    __props__ = ()

    def make_node(self, x):
        x = pt.as_tensor_variable(x)
        if x.type.dtype != "float32":
            raise TypeError(f"Tanh32 takes a float32 tensor, got {x.type.dtype}")
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, outputs):
        outputs[0][0] = tanh_array(inputs[0])

    def infer_shape(self, *args):
        node, (shape,) = infer_shape_args(args)
        return [shape]

    def pullback(self, inputs, outputs, cotangents):
        (y,), (gy,) = outputs, cotangents
        return [gy * (1 - pt.sqr(y))]


@node_rewriter([Elemwise])
def local_tanh32(fgraph, node):
    """float32 ``Elemwise{tanh}`` -> :class:`Tanh32`."""
    if not isinstance(node.op.scalar_op, Tanh):
        return None
    (x,), (out,) = node.inputs, node.outputs
    if x.type.dtype != "float32" or out.type.dtype != "float32":
        return None
    return [Tanh32()(x)]


REWRITE_NAME = "pytensor_nnet_tanh32"


def register_rewrite():
    """Put the rewrite in PyTensor's ``fast_run`` rewrites (once)."""
    if REWRITE_NAME not in optdb:
        # 48.5: after the graph is canonicalised and specialised, before
        # elementwise fusion (49) would hide the tanh inside a Composite.
        optdb.register(REWRITE_NAME, in2out(local_tanh32), "fast_run", position=48.5)
