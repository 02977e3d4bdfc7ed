"""The node-by-node Numba linker: the numbers of PyTensor's Numba linker, and
a graph that differs only by its constants compiles only its new nodes."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import NUMBA

from conftest import CODE
from pytensor_nnet import conv2d, pool_2d
from pytensor_nnet.node_linker import NUMBA_NODES, NumbaNodeLinker, use_as_default


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
    rng = np.random.RandomState(0)
    x = rng.uniform(0, 1, (6, 64))
    y = rng.randint(0, 5, 6).astype("int32")
    runs = {}
    for name, mode in (("graph", NUMBA), ("nodes", NUMBA_NODES)):
        f, params = small_model(mode)
        outs = [[np.asarray(o).copy() for o in f(x, y)] for _ in range(3)]
        runs[name] = outs, [p.get_value() for p in params]
    assert isinstance(small_model(NUMBA_NODES)[0].maker.linker, NumbaNodeLinker)
    (graph_outs, graph_params), (node_outs, node_params) = runs["graph"], runs["nodes"]
    for step_graph, step_nodes in zip(graph_outs, node_outs):
        for a, b in zip(step_graph, step_nodes):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(graph_params, node_params):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(graph_outs[0][0], graph_outs[2][0])  # the updates ran
    np.testing.assert_array_equal(node_outs[0][3], x)
    assert float(node_outs[0][4]) == 7.0


TWO_CHECKS = textwrap.dedent("""
    import numpy as np
    import pytensor, pytensor.tensor as pt
    from pytensor_nnet.node_linker import NUMBA_NODES

    x = pt.matrix("x")
    f = pytensor.function([x], pt.specify_shape(x, (3, None)).sum()
                          + 2 * pt.specify_shape(x, (3, 4)).sum(), mode=NUMBA_NODES)
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
    props alone) that check other sizes each run their own code. In a new
    process with empty caches: a cached version would hide a mix-up."""
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

    rows, maps = int(sys.argv[1]), int(sys.argv[2])
    mode = NUMBA_NODES if sys.argv[3] == "nodes" else NUMBA
    x = pt.matrix("x")
    w = pytensor.shared(np.ones((maps, 1, 3, 3)), name="w")
    out = conv2d(x.reshape((rows, 1, 6, 6)), w, filter_shape=(maps, 1, 3, 3))
    f = pytensor.function([x], pt.tanh(out).sum() * 2.0, mode=mode)
    with event.install_recorder("numba:compile") as recorder:
        f(np.ones((rows, 36)))
    print(json.dumps([getattr(getattr(data.data["dispatcher"], "py_func", None), "__name__", "?")
                      for _, data in recorder.buffer if data.is_start]))
""")


def compiled(cache, rows, maps, linker):
    """The names of the functions Numba compiles for a first call (a new
    process, the cache folder given)."""
    env = dict(os.environ, PYTHONPATH=CODE, NUMBA_CACHE_DIR=str(cache / "numba"),
               PYTENSOR_FLAGS=f"base_compiledir={cache / 'pytensor'}")
    done = subprocess.run([sys.executable, "-c", COMPILES, str(rows), str(maps), linker],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("linker", ["nodes", "graph"])
def test_new_constants_compile_only_new_nodes(tmp_path, linker):
    """Other processes, the same cache: the same graph compiles nothing;
    one with other batch and filter counts (the reshape's constants, the
    shape hint's sizes, the static shapes) compiles only the hint's check
    node by node, and the whole graph again under PyTensor's linker (the
    control: it shows that the recorder sees compiles)."""
    first = compiled(tmp_path, 2, 3, linker)
    again = compiled(tmp_path, 2, 3, linker)
    other = compiled(tmp_path, 5, 4, linker)
    assert first and not again
    if linker == "nodes":
        # the shape hint's new sizes (props of its Op) and the checks it calls
        assert other and set(other) <= {"shape_hint", "breaks_hint", "differ"}
    else:
        assert "numba_funcified_fgraph" in other
