"""Numba, one node at a time: a linker that compiles each node of a graph on
its own and runs them in turn from Python.

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

:func:`pytensor_nnet.tune_for_speed` makes it the default mode's linker
when the default is Numba; :data:`NUMBA_NODES` is the mode, for
``pytensor.function(..., mode=NUMBA_NODES)``.
"""
from pytensor import config
from pytensor.compile.mode import Mode, get_default_mode
from pytensor.graph.basic import Constant
from pytensor.graph.rewriting.db import RewriteDatabaseQuery
from pytensor.link.numba.linker import NumbaLinker


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


class NumbaNodeLinker(NumbaLinker):
    """PyTensor's Numba linker, with the whole-graph function replaced by a
    loop over the nodes' own compiled functions (see the module docstring).
    The rewrites it asks for are the Numba linker's."""

    def fgraph_convert(self, fgraph, order=None, storage_map=None, **kwargs):
        from pytensor.link.numba.dispatch.basic import numba_typify

        order = fgraph.toposort() if order is None else order
        storage_map = {} if storage_map is None else storage_map
        nodes = [(node, node_function(node, storage_map)) for node in order]
        return run_in_turn(fgraph, nodes, numba_typify), None

    def jit_compile(self, fn_and_cache):
        return fn_and_cache[0]  # plain Python: the nodes are compiled


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
