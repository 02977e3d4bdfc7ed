"""The node-by-node Numba linker: the numbers of PyTensor's Numba linker; a
graph that differs only by its constants, or by a conv2d setting, compiles
nothing new; nodes that wait for a kernel run last."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import NUMBA, Mode

from conftest import CODE
from pytensor_nnet import conv2d, pool_2d
from pytensor_nnet.node_linker import (NUMBA_NODES, NumbaNodeLinker, runs_its_perform,
                                       use_as_default, waiting_last)


class CompiledNodeLinker(NumbaNodeLinker):
    """Every node compiled, none run by its ``perform``."""
    runs_its_perform = staticmethod(lambda op: False)


COMPILED_NODES = Mode(CompiledNodeLinker(), NUMBA.provided_optimizer)


def small_model(mode):
    """A conv net's SGD step with the shapes the linker must handle: a
    reshape by constants, updates of shared variables, an Op with two
    outputs, an output that is an input and one that is a constant."""
    rng = np.random.RandomState(3)
    w = pytensor.shared(rng.uniform(-0.3, 0.3, (4, 1, 3, 3)), name="w")
    v = pytensor.shared(rng.uniform(-0.3, 0.3, (4 * 3 * 3, 5)), name="v")
    x, y = pt.matrix("x"), pt.ivector("y")
    h = pt.tanh(pool_2d(conv2d(x.reshape((6, 1, 8, 8)), w, filter_shape=(4, 1, 3, 3)),
                        ws=(2, 2), ignore_border=True))
    p = pt.special.softmax(pt.dot(h.flatten(2), v), axis=1)
    cost = -pt.mean(pt.log(p)[pt.arange(y.shape[0]), y])
    first, rest = pt.split(p, [2, 3], n_splits=2, axis=1)
    updates = [(s, s - 0.5 * g) for s, g in zip((w, v), pytensor.grad(cost, [w, v]))]
    f = pytensor.function([x, y], [cost, first, rest, x, pt.constant(7.0)],
                          updates=updates, mode=mode)
    return f, (w, v)


def test_same_numbers_as_the_numba_linker():
    """Three SGD steps: the same bits from PyTensor's whole-graph function,
    from the nodes run in turn, and from every node compiled."""
    rng = np.random.RandomState(0)
    x = rng.uniform(0, 1, (6, 64))
    y = rng.randint(0, 5, 6).astype("int32")
    runs = {}
    for name, mode in (("graph", NUMBA), ("nodes", NUMBA_NODES), ("compiled", COMPILED_NODES)):
        f, params = small_model(mode)
        outs = [[np.asarray(o).copy() for o in f(x, y)] for _ in range(3)]
        runs[name] = outs, [p.get_value() for p in params]
    f = small_model(NUMBA_NODES)[0]
    assert isinstance(f.maker.linker, NumbaNodeLinker)
    ops = [node.op for node in f.maker.fgraph.apply_nodes]
    assert any(map(runs_its_perform, ops)) and not all(map(runs_its_perform, ops))
    graph_outs, graph_params = runs["graph"]
    for name in ("nodes", "compiled"):
        node_outs, node_params = runs[name]
        for step_graph, step_nodes in zip(graph_outs, node_outs):
            for a, b in zip(step_graph, step_nodes):
                np.testing.assert_array_equal(a, b)
        for a, b in zip(graph_params, node_params):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(node_outs[0][3], x)
        assert float(node_outs[0][4]) == 7.0
    assert not np.array_equal(graph_outs[0][0], graph_outs[2][0])  # the updates ran


def test_perform_runs_the_data_moves_and_our_ops():
    """In a LeNet-like training graph: the conv, pool, tanh and dot nodes and
    the reshapes, transposes, indexing run their ``perform``; arithmetic
    (PyTensor's elementwise Ops and sums) is compiled."""
    f = small_model(NUMBA_NODES)[0]
    by_perform = {type(node.op).__name__: runs_its_perform(node.op)
                  for node in f.maker.fgraph.apply_nodes}
    for name in ("Reshape", "DimShuffle", "AdvancedIncSubtensor"):
        assert by_perform.get(name) is True, (name, by_perform)
    # the conv and pool Ops, or their fused forms once tune_for_speed's rewrites are registered
    ours = [name for name in by_perform if name.startswith(("Conv2d", "Pool"))]
    assert any(name.startswith("Conv2dGradWeights") for name in ours), by_perform
    assert all(by_perform[name] for name in ours), by_perform
    for name in ("Elemwise", "Sum"):
        assert by_perform.get(name) is False, (name, by_perform)


TWO_CHECKS = textwrap.dedent("""
    import numpy as np
    import pytensor, pytensor.tensor as pt
    from pytensor.compile.mode import NUMBA, Mode
    from pytensor_nnet.node_linker import NumbaNodeLinker

    class CompiledNodeLinker(NumbaNodeLinker):
        runs_its_perform = staticmethod(lambda op: False)

    x = pt.matrix("x")
    f = pytensor.function([x], pt.specify_shape(x, (3, None)).sum()
                          + 2 * pt.specify_shape(x, (3, 4)).sum(),
                          mode=Mode(CompiledNodeLinker(), NUMBA.provided_optimizer))
    checks = [n for n in f.maker.fgraph.apply_nodes if type(n.op).__name__ == "SpecifyShape"]
    assert len(checks) == 2
    assert f(np.ones((3, 4))) == 36
    try:
        f(np.ones((3, 5)))
    except AssertionError:
        print("refused")
""")


def test_nodes_of_one_key_with_other_input_types(tmp_path):
    """Two SpecifyShape nodes (one cache key: PyTensor keys its code by its
    props alone) that check other sizes each run their own code, when
    compiled. In a new process with empty caches: a cached version would
    hide a mix-up."""
    env = dict(os.environ, PYTHONPATH=CODE, NUMBA_CACHE_DIR=str(tmp_path / "numba"),
               PYTENSOR_FLAGS=f"base_compiledir={tmp_path / 'pytensor'}")
    done = subprocess.run([sys.executable, "-c", TWO_CHECKS], env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["refused"]


def test_a_node_error_reaches_the_caller_as_under_the_numba_linker():
    """A conv2d shape error raised inside a node: the same exception and
    message as from PyTensor's whole-graph function."""
    x = pt.tensor4("x")
    w = pytensor.shared(np.ones((2, 3, 3, 3)), name="w")
    messages = []
    for mode in (NUMBA, NUMBA_NODES):
        f = pytensor.function([x], conv2d(x, w), mode=mode)
        with pytest.raises(ValueError) as raised:
            f(np.ones((1, 2, 5, 5)))
        messages.append(str(raised.value).splitlines()[0])
    assert messages[0] == messages[1]
    assert "channels" in messages[1]


def test_made_the_default_under_numba_only():
    """``tune_for_speed`` (through ``use_as_default``) switches the Numba
    default, with the same rewrites, and leaves other modes as they are."""
    for flags in ({"mode": "CVM"}, {"mode": "JAX"}, {"mode": "FAST_COMPILE"}):
        with pytensor.config.change_flags(**flags):
            assert not use_as_default()
            assert pytensor.config.mode == flags["mode"]
    with pytensor.config.change_flags(mode="NUMBA"):
        assert use_as_default() and use_as_default()  # the second call changes nothing
        mode = pytensor.compile.mode.get_default_mode()
        assert isinstance(mode.linker, NumbaNodeLinker)
        assert mode.provided_optimizer == NUMBA.provided_optimizer
    assert pytensor.config.mode != mode


COMPILES = textwrap.dedent("""
    import json, sys
    import numpy as np
    from numba.core import event
    import pytensor, pytensor.tensor as pt
    from pytensor.compile.mode import NUMBA
    from pytensor_nnet import conv2d
    from pytensor_nnet.node_linker import NUMBA_NODES

    rows, maps, border, step = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    mode = NUMBA_NODES if sys.argv[5] == "nodes" else NUMBA
    x = pt.matrix("x")
    w = pytensor.shared(np.ones((maps, 1, 3, 3)), name="w")
    out = conv2d(x.reshape((rows, 1, 6, 6)), w, filter_shape=(maps, 1, 3, 3),
                 border_mode=border, subsample=(step, step))
    f = pytensor.function([x], pt.tanh(out).sum() * 2.0, mode=mode)
    with event.install_recorder("numba:compile") as recorder:
        f(np.ones((rows, 36)))
    print(json.dumps([getattr(getattr(data.data["dispatcher"], "py_func", None), "__name__", "?")
                      for _, data in recorder.buffer if data.is_start]))
""")


def compiled(cache, linker, rows, maps, border="valid", step=1):
    """The names of the functions Numba compiles for a first call (a new
    process, the cache folder given)."""
    env = dict(os.environ, PYTHONPATH=CODE, NUMBA_CACHE_DIR=str(cache / "numba"),
               PYTENSOR_FLAGS=f"base_compiledir={cache / 'pytensor'}")
    args = [str(rows), str(maps), border, str(step), linker]
    done = subprocess.run([sys.executable, "-c", COMPILES, *args],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("linker", ["nodes", "graph"])
def test_new_constants_and_settings_compile_nothing(tmp_path, linker):
    """Other processes, the same cache: the same graph compiles nothing; nor
    does, node by node, one with other batch and filter counts (the
    reshape's constants, the shape hint's sizes, the static shapes) or
    another border mode and stride. PyTensor's linker compiles the whole
    graph again (the control: it shows that the recorder sees compiles)."""
    first = compiled(tmp_path, linker, 2, 3)
    again = compiled(tmp_path, linker, 2, 3)
    other = compiled(tmp_path, linker, 5, 4)
    assert first and not again
    if linker == "nodes":
        assert other == []
        assert compiled(tmp_path, linker, 5, 4, "full", 2) == []
    else:
        assert "numba_funcified_fgraph" in other


def test_nodes_that_wait_for_a_kernel_run_last():
    """What depends on a waiting node runs after the rest, each part in its
    first order; nothing moves when nothing waits."""
    a, b = pt.matrix("a"), pt.matrix("b")
    slow = pt.exp(a)  # stands for a node whose kernel is being built
    after = slow + 1
    after_sum = after.sum()
    free = pt.log(b) * 2
    free_sum = free.sum()
    both = after_sum + free_sum
    fgraph = pytensor.graph.fg.FunctionGraph([a, b], [both, free], clone=False)
    order = fgraph.toposort()
    assert waiting_last(fgraph, order, set()) == order
    moved = waiting_last(fgraph, order, {slow.owner})
    late = [v.owner for v in (slow, after, after_sum, both)]
    assert moved[-4:] == [n for n in order if n in late]
    assert moved[:-4] == [n for n in order if n not in late]
    assert [n for n in order if n not in late]  # something did move ahead
    position = {node: i for i, node in enumerate(moved)}
    for node in moved:  # still a valid order
        for var in node.inputs:
            if var.owner is not None:
                assert position[var.owner] < position[node]
