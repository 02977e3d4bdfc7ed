"""``BlockedDot``: float32 matrix product on the kernel threads, and the
rewrite that uses it.

BLAS runs on one thread beside our threaded kernels (see
:mod:`pytensor_nnet.threads`), which left PyTensor's matrix products, LeNet's
hidden layer and its gradients, on one core. :class:`BlockedDot` computes
the product in blocks of rows on Numba's threads
(:func:`pytensor_nnet.matmul_kernels.blocked_dot`).

The rewrite replaces every product of two float32 matrices (PyTensor's
``Dot``) late, once the gradient graph is built; like the tanh rewrite it is
registered by :func:`pytensor_nnet.tune_for_speed`, not by the import. Under the C linker PyTensor has turned them into its
own BLAS Ops by then and they stay as they are; under JAX the Op is
``jnp.dot``.
"""
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import in2out, node_rewriter
from pytensor.tensor.math import Dot

from .conv import infer_shape_args
from .matmul_kernels import blocked_dot


class BlockedDot(Op):
    """``a @ b`` for two float32 matrices, in blocks of rows on Numba's threads."""

    __props__ = ()

    def make_node(self, a, b):
        a, b = pt.as_tensor_variable(a), pt.as_tensor_variable(b)
        for name, x in (("a", a), ("b", b)):
            if x.type.dtype != "float32" or x.type.ndim != 2:
                raise TypeError(f"BlockedDot takes two float32 matrices, {name} is {x.type}")
        out = pt.tensor(dtype="float32", shape=(a.type.shape[0], b.type.shape[1]))
        return Apply(self, [a, b], [out])

    def perform(self, node, inputs, outputs):
        outputs[0][0] = blocked_dot(*inputs)

    def infer_shape(self, *args):
        node, (a_shape, b_shape) = infer_shape_args(args)
        return [(a_shape[0], b_shape[1])]

    def pullback(self, inputs, outputs, cotangents):
        (a, b), (g,) = inputs, cotangents
        return [pt.dot(g, b.T), pt.dot(a.T, g)]


@node_rewriter([Dot])
def local_blocked_dot(fgraph, node):
    """float32 matrix ``Dot`` -> :class:`BlockedDot`."""
    (a, b), (out,) = node.inputs, node.outputs
    if out.type.dtype != "float32" or a.type.ndim != 2 or b.type.ndim != 2:
        return None
    if a.type.dtype != "float32" or b.type.dtype != "float32":
        return None
    return [BlockedDot()(a, b)]


REWRITE_NAME = "pytensor_nnet_blocked_dot"


def register_rewrite():
    """Put the rewrite in PyTensor's ``fast_run`` rewrites (once)."""
    if REWRITE_NAME not in optdb:
        # with the tanh rewrite, after canonicalisation and specialisation
        # (the gradient graph is complete), before elementwise fusion (49)
        optdb.register(REWRITE_NAME, in2out(local_blocked_dot), "fast_run", position=48.5)
