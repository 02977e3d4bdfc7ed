"""Numba, one node at a time: a linker that runs a graph's nodes in turn
from Python, each with its own cached code.

PyTensor's Numba linker compiles a whole graph into one Numba function,
which calls one compiled function per node. Numba links the code of every
function it calls into its caller and optimises the lot again, so a graph
costs a compile of all its nodes' code at once, and a graph that differs by
any constant (a batch size in a reshape, a shape hint, a filter count) is a
new graph and costs it again, though every node's own code is in the
on-disk cache. :class:`NumbaNodeLinker` calls the same cached node
functions, the same rewrites having made the same graph, one after
another: a new graph compiles only the nodes never seen before (a node's
code is in the cache under its Op's key, whatever its constants' values),
and no whole-graph function. The results are the same numbers; the price
is a Python call per node (microseconds, against the milliseconds of a
convolution).

Some nodes are not compiled at all but run their Op's own ``perform``
(:func:`runs_its_perform`): PyTensor's Ops that only look at shapes or
move, index and check data, for which NumPy gives the same values in
microseconds while each one's Numba code took seconds to compile on a fresh
install; and this package's Ops, whose ``perform`` calls the same compiled
drivers as their Numba code, which take every setting and shape as
arguments: a new ``conv2d`` or ``pool_2d`` setting compiles nothing.

On a fresh install the kernels those drivers call are built by a helper
process (:mod:`pytensor_nnet.prebuild`). A graph's nodes that need a kernel
still being built then run after the nodes that do not
(:func:`waiting_last`), so that this process compiles those meanwhile
instead of waiting.

:func:`pytensor_nnet.tune_for_speed` makes it the default mode's linker
when the default is Numba; :data:`NUMBA_NODES` is the mode, for
``pytensor.function(..., mode=NUMBA_NODES)``.
"""
import importlib

from pytensor import config
from pytensor.compile.mode import Mode, get_default_mode
from pytensor.graph.basic import Constant
from pytensor.graph.rewriting.db import RewriteDatabaseQuery
from pytensor.link.numba.linker import NumbaLinker

from . import numba_dispatch
from .conv import ShapeHint


def _pytensor_ops(module, *names):
    """The named Op classes of a PyTensor module, those that this version has."""
    module = importlib.import_module(module)
    return tuple(getattr(module, name) for name in names if hasattr(module, name))


#: Ops whose nodes run their own ``perform`` (NumPy) instead of compiled
#: code: they only look at shapes, view, index, copy or compare data, so
#: NumPy gives the same values in microseconds, and compiling each of them
#: with Numba cost seconds on a fresh install.
NUMPY_OPS = (
    _pytensor_ops("pytensor.tensor.shape", "Shape", "Shape_i", "SpecifyShape", "Reshape")
    + _pytensor_ops("pytensor.tensor.elemwise", "DimShuffle")
    + _pytensor_ops("pytensor.tensor.basic", "Alloc", "ScalarFromTensor", "TensorFromScalar",
                    "MakeVector", "Join", "Split")
    + _pytensor_ops("pytensor.tensor.subtensor", "Subtensor", "AdvancedSubtensor",
                    "AdvancedSubtensor1", "AdvancedIncSubtensor", "AdvancedIncSubtensor1")
    + _pytensor_ops("pytensor.tensor.math", "Argmax")
    + _pytensor_ops("pytensor.raise_op", "CheckAndRaise")
)


def runs_its_perform(op):
    """Whether the node linker runs a node of ``op`` through ``op.perform``:
    the Ops above, and this package's Ops, whose ``perform`` calls the same
    compiled drivers as their Numba code (disk-cached, compiled once per
    argument types, so a new setting or shape compiles nothing)."""
    return isinstance(op, NUMPY_OPS) or isinstance(op, ShapeHint) \
        or bool(numba_dispatch.native_kernels(op))


# node functions by cache key and input types: such nodes share one function,
# so that its code is loaded (or compiled) once in a process. The types too:
# PyTensor keys some Ops' code by their props alone although it depends on
# the inputs' types (SpecifyShape checks only the sizes that are not None),
# and tells the versions apart, on disk, by their signatures
_functions = {}


def node_function(node, storage_map):
    """The node's Numba function, callable from Python and cached on disk
    as PyTensor caches its graph functions (not cached when the Op has no
    cache key)."""
    from pytensor.link.numba.dispatch.basic import numba_funcify_ensure_cache, numba_njit

    function, cache_key = numba_funcify_ensure_cache(node.op, node=node,
                                                     storage_map=storage_map)
    if cache_key is None:
        return numba_njit(function.py_func, final_function=True)
    key = (cache_key, config.numba__fastmath, tuple(v.type for v in node.inputs))
    if key not in _functions:
        _functions[key] = numba_njit(function.py_func, final_function=True, cache=True)
    return _functions[key]


def perform_function(node):
    """The node's ``perform``, as a function of its input values."""
    op, n_outputs = node.op, len(node.outputs)

    def perform(*inputs):
        storage = [[None] for _ in range(n_outputs)]
        op.perform(node, list(inputs), storage)
        return storage[0][0] if n_outputs == 1 else tuple(cell[0] for cell in storage)

    return perform


class NumbaNodeLinker(NumbaLinker):
    """PyTensor's Numba linker, with the whole-graph function replaced by a
    loop over the nodes' own functions (see the module docstring). The
    rewrites it asks for are the Numba linker's."""

    #: which nodes run their Op's ``perform`` (a subclass may compile them all)
    runs_its_perform = staticmethod(runs_its_perform)

    def fgraph_convert(self, fgraph, order=None, storage_map=None, **kwargs):
        from pytensor.link.numba.dispatch.basic import numba_typify

        order = fgraph.toposort() if order is None else order
        storage_map = {} if storage_map is None else storage_map
        functions, waiting = {}, set()
        for node in order:
            if self.runs_its_perform(node.op):
                functions[node] = perform_function(node)
                if numba_dispatch.prefetch(node):
                    waiting.add(node)
            else:
                functions[node] = node_function(node, storage_map)
        order = waiting_last(fgraph, order, waiting)
        return run_in_turn(fgraph, [(node, functions[node]) for node in order], numba_typify), None

    def jit_compile(self, fn_and_cache):
        return fn_and_cache[0]  # plain Python, calling the nodes' functions


def waiting_last(fgraph, order, waiting):
    """``order`` (a valid order of ``fgraph``'s nodes) with the nodes that
    depend on a ``waiting`` node moved, in the same order, after the rest.

    On a fresh install a helper process builds the kernels while this one
    compiles the graph's other nodes at their first call; a node whose
    kernel is not built yet would have this process wait there, with nodes
    left to compile that do not need it.
    """
    if not waiting:
        return order
    before = fgraph.orderings()  # node -> nodes it must follow, beyond its inputs
    late = set()
    for node in order:
        needs = [var.owner for var in node.inputs if var.owner is not None]
        if node in waiting or any(n in late for n in needs + list(before.get(node, ()))):
            late.add(node)
    return [n for n in order if n not in late] + [n for n in order if n in late]


def run_in_turn(fgraph, nodes, typify):
    """A Python function of the graph's inputs that calls each node's
    compiled function (``nodes``: pairs of node and function, in order) and returns
    the graph's outputs.

    Values live in a list of slots: the inputs first, then every node's
    outputs; constants are filled in once. A slot is cleared after its last
    use, so that memory is freed as early as in a compiled graph.
    """
    slot = {var: i for i, var in enumerate(fgraph.inputs)}
    constants = {}

    def slot_of(var):
        if var not in slot:
            slot[var] = len(slot)
            if isinstance(var, Constant):
                constants[slot[var]] = typify(var.data, variable=var)
        return slot[var]

    steps = [(function, [slot_of(v) for v in node.inputs], [slot_of(v) for v in node.outputs])
             for node, function in nodes]
    results = [slot_of(v) for v in fgraph.outputs]

    # clear each computed value after the step that uses it last
    keep = set(results) | set(range(len(fgraph.inputs))) | set(constants)
    last_use = {}
    for step, (_, inputs, outputs) in enumerate(steps):
        for i in inputs + outputs:
            last_use[i] = step
    clear = [[] for _ in steps]
    for i, step in last_use.items():
        if i not in keep:
            clear[step].append(i)

    template = [None] * len(slot)
    for i, value in constants.items():
        template[i] = value
    plan = [(function, inputs, outputs[0] if len(outputs) == 1 else outputs, cleared)
            for (function, inputs, outputs), cleared in zip(steps, clear)]
    n_inputs = len(fgraph.inputs)

    def run_nodes(*args):
        values = template.copy()
        values[:n_inputs] = args
        for function, inputs, outputs, cleared in plan:
            result = function(*[values[i] for i in inputs])
            if isinstance(outputs, int):
                values[outputs] = result
            else:
                for i, value in zip(outputs, result):
                    values[i] = value
            for i in cleared:
                values[i] = None
        return tuple(values[i] for i in results) if results else None

    return run_nodes


#: PyTensor's Numba mode (the same rewrites), compiled node by node.
NUMBA_NODES = Mode(NumbaNodeLinker(), RewriteDatabaseQuery(include=["fast_run", "numba"]))


def use_as_default():
    """Make the default mode compile node by node, if it links with
    PyTensor's own Numba linker (not under ``mode=JAX``, ``CVM``, ...); its
    rewrites, with any the flags include or exclude, stay. Returns whether
    it does."""
    default = get_default_mode()
    if isinstance(default.linker, NumbaNodeLinker):
        return True
    if type(default.linker) is not NumbaLinker:
        return False
    config.mode = Mode(NumbaNodeLinker(), default.provided_optimizer)
    return True
