"""Tests of what the tutorials share and of the scripts' command line.

The modules under test: minibatches.py, early_stopping.py, supervisor.py,
checkpoints.py, progress.py, command_line.py and utils.write_training_plots.

Covers the minibatch helper, the early-stopping loop (against a literal
re-statement of the original tutorial loop), checkpoints (format, atomic
writes, refusal of bad or foreign files), exact resume after a checkpoint,
SIGKILL and SIGINT, NaN detection, the progress line, plots and the
command-line error paths.

Compiled configurations are kept few and tiny (see ``LOGISTIC`` and
``LENET``) so numba compiles each once; runs use ``tiny_mnist`` (see
conftest.py).
"""
import hashlib
import io
import json
import math
import os
import pickle
import re
import signal
import subprocess
import sys

import numpy
import pytest

import pytensor
import pytensor.tensor as pt

import checkpoints
import command_line
import early_stopping
import errors
import minibatches
import progress
import supervisor
import utils
from atomic_file import atomic_write

CODE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "code")

# The tiny logistic-regression configuration used by in-process runs.
LOGISTIC = dict(batch_size=50, max_batches=(10, 4, 4))
# Its command-line form.
LOGISTIC_ARGS = ["--batch-size", "50", "--max-batches", "10,4,4", "--plots-dir", ""]
# The tiny LeNet configuration (also used in test_tutorials.py).
# (--max-batches 3,2,2 is what --dry-run uses: one compiled graph serves both.)
LENET_ARGS = ["--nkerns", "2,3", "--batch-size", "50", "--max-batches", "3,2,2",
              "--plots-dir", "", "--model", ""]


def sha256(path):
    with open(path, "rb") as stream:
        return hashlib.sha256(stream.read()).hexdigest()


def read_checkpoint(path):
    """Arrays and meta of a checkpoint, read without pickle."""
    with numpy.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files if k != "meta"}
        meta = json.loads(str(archive["meta"][()]))
    return arrays, meta


def assert_same_checkpoint(path_a, path_b):
    """Bit-identical arrays and identical loop state (except timing)."""
    arrays_a, meta_a = read_checkpoint(path_a)
    arrays_b, meta_b = read_checkpoint(path_b)
    assert sorted(arrays_a) == sorted(arrays_b)
    for name in arrays_a:
        assert arrays_a[name].dtype == arrays_b[name].dtype, name
        assert arrays_a[name].tobytes() == arrays_b[name].tobytes(), name
    for meta in (meta_a, meta_b):
        meta["state"].pop("elapsed")
    assert meta_a == meta_b


def result_lines(text):
    """Printed lines that must agree between runs (no timings, no banners)."""
    return [
        line for line in text.splitlines()
        if line.startswith(("epoch ", "     epoch ", "training @", "Optimization", "Best "))
    ]


def script(name, args, cwd, env=None, **kwargs):
    """Run ``code/<name>.py`` in a subprocess and return the CompletedProcess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, os.path.join(CODE, name + ".py")] + list(args),
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=600, **kwargs,
    )


def loop(train_model, validate_model, test_model, params, n_train_batches, n_valid_batches,
         n_test_batches, n_epochs, checkpoint=None, resume=False, on_epoch=None, **settings):
    """The loop with a Supervisor (checkpoint, resume, hooks), as the tutorials run it."""
    return early_stopping.train_early_stopping(
        train_model, validate_model, test_model, params,
        (n_train_batches, n_valid_batches, n_test_batches), n_epochs,
        supervisor=supervisor.Supervisor(checkpoint, resume, on_epoch=on_epoch), **settings)


# ---------------------------------------------------------------------------
# Minibatches
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_minibatch_equals_the_original_slice(dtype):
    rng = numpy.random.RandomState(0)
    data_x = pytensor.shared(rng.rand(23, 7).astype(dtype))
    data_y = pt.cast(pytensor.shared(rng.randint(0, 10, 23).astype(dtype)), "int32")
    index = pt.lscalar()
    batch_size, n_batches = 5, 4  # 3 rows past n_batches * batch_size unused
    ours = pytensor.function(
        [index],
        [minibatches.minibatch(data_x, index, batch_size, n_batches),
         minibatches.minibatch(data_y, index, batch_size, n_batches)],
    )
    original = pytensor.function(
        [index],
        [data_x[index * batch_size:(index + 1) * batch_size],
         data_y[index * batch_size:(index + 1) * batch_size]],
    )
    for i in range(n_batches):
        for a, b in zip(ours(i), original(i)):
            assert a.dtype == b.dtype
            assert a.tobytes() == b.tobytes()


def test_minibatch_compiles_under_jax():
    pytest.importorskip("jax")
    rng = numpy.random.RandomState(1)
    values = rng.rand(12, 3)
    data_x = pytensor.shared(values)
    labels = pt.cast(pytensor.shared(numpy.arange(12.0)), "int32")
    index = pt.lscalar()
    batch_y = minibatches.minibatch(labels, index, 4, 3)
    # JAX needs a static length for arange(y.shape[0]), as in the NLL
    assert batch_y.type.shape == (4,)
    f = pytensor.function(
        [index],
        [minibatches.minibatch(data_x, index, 4, 3), pt.arange(batch_y.shape[0]) + batch_y],
        mode="JAX",
    )
    for i in range(3):
        x, y = f(i)
        numpy.testing.assert_array_equal(numpy.asarray(x), values[4 * i:4 * i + 4])
        numpy.testing.assert_array_equal(numpy.asarray(y), numpy.arange(4) + numpy.arange(4 * i, 4 * i + 4))


def test_jax_functions_keep_the_data_on_the_device():
    """Under JAX the data sets live as device arrays (no copy per call), and
    the compiled functions give the same numbers as the default backend."""
    jax = pytest.importorskip("jax")
    rng = numpy.random.RandomState(2)

    def make_data():
        return [(pytensor.shared(rng.rand(8, 3)), pt.cast(pytensor.shared(numpy.arange(8.0) % 2), "int32"))
                for _ in range(3)]

    def compile_with(datasets, mode):
        index, x, y = pt.lscalar(), pt.matrix("x", dtype="float64"), pt.ivector("y")
        w = pytensor.shared(numpy.ones(3))
        cost = ((x @ w) * y).sum()
        functions = []
        with pytensor.config.change_flags(mode=mode):
            for data_x, data_y in datasets:
                givens = {x: minibatches.minibatch(data_x, index, 4, 2),
                          y: minibatches.minibatch(data_y, index, 4, 2)}
                functions.append(pytensor.function([index], cost, updates=[(w, w - 0.1)],
                                                   givens=givens))
        minibatches.keep_data_on_device(datasets, functions[0])
        return functions

    data = make_data()
    copies = [(pytensor.shared(x.get_value()), pt.cast(pytensor.shared(y.owner.inputs[0].get_value()), "int32"))
              for x, y in data]
    on_jax = compile_with(data, "JAX")
    on_numba = compile_with(copies, "NUMBA")
    for x, y in data:
        assert isinstance(x.container.storage[0], jax.Array)
        assert isinstance(y.owner.inputs[0].container.storage[0], jax.Array)
    for x, y in copies:
        assert isinstance(x.container.storage[0], numpy.ndarray)
    for f_jax, f_numba in zip(on_jax, on_numba):
        for i in range(2):
            numpy.testing.assert_allclose(float(f_jax(i)), float(f_numba(i)), rtol=1e-12)


def test_parse_max_batches():
    assert minibatches.parse_max_batches(None) == (None, None, None)
    assert minibatches.parse_max_batches(3) == (3, 3, 3)
    assert minibatches.parse_max_batches("4,2,1") == (4, 2, 1)
    assert minibatches.parse_max_batches("5") == (5, 5, 5)
    assert minibatches.parse_max_batches((2, None, 1)) == (2, None, 1)
    for bad in ("0", "a", "1,2", (1, -1, 1), "1,2,3,4"):
        with pytest.raises(errors.ConfigError):
            minibatches.parse_max_batches(bad)


def test_count_minibatches():
    def split(n):
        return (pytensor.shared(numpy.zeros((n, 2))), None)

    datasets = [split(100), split(30), split(45)]
    assert minibatches.count_minibatches(datasets, 20) == (5, 1, 2)
    assert minibatches.count_minibatches(datasets, 10, (3, None, 100)) == (3, 3, 4)
    with pytest.raises(errors.ConfigError, match="larger than the validation set"):
        minibatches.count_minibatches(datasets, 31)
    with pytest.raises(errors.ConfigError):
        minibatches.count_minibatches(datasets, 0)


# ---------------------------------------------------------------------------
# The loop, on a scripted model (no compilation)
# ---------------------------------------------------------------------------

class ScriptedModel:
    """A stand-in for the compiled functions, driven by one shared vector.

    ``train_model(i)`` changes the parameters deterministically; the
    validation error is a fixed function of the parameters.  Because the
    functions depend only on the parameters (never on hidden Python state),
    a resumed run must reproduce an uninterrupted one exactly.
    """

    def __init__(self, validation_curve, interrupt_at=None):
        self.p = pytensor.shared(numpy.zeros(3), name="p")
        self.params = [self.p]
        self.curve = validation_curve
        self.interrupt_at = interrupt_at
        self.calls = 0

    def train_model(self, index):
        value = self.p.get_value()
        self.p.set_value(value + numpy.array([1.0, 0.5 * index, value[0] * 1e-3]))
        self.calls += 1
        if self.interrupt_at is not None and self.calls == self.interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)
        return numpy.float64(1.0 / (1.0 + value[0]))

    def validate_model(self, index):
        return numpy.float64(self.curve(self.p.get_value()[0]) + 0.0001 * index)

    def test_model(self, index):
        return numpy.float64(self.curve(self.p.get_value()[0]) / 2)


def original_loop(model, n_train_batches, n_valid_batches, n_test_batches, n_epochs,
                  patience, patience_increase=2, improvement_threshold=0.995):
    """The tutorials' early-stopping loop, restated literally as the oracle."""
    lines = []
    validation_frequency = min(n_train_batches, patience // 2)
    best_validation_loss = numpy.inf
    best_iter = 0
    test_score = 0.0
    epoch = 0
    done_looping = False
    while (epoch < n_epochs) and (not done_looping):
        epoch = epoch + 1
        for minibatch_index in range(n_train_batches):
            iter = (epoch - 1) * n_train_batches + minibatch_index
            model.train_model(minibatch_index)
            if (iter + 1) % validation_frequency == 0:
                loss = numpy.mean([model.validate_model(i) for i in range(n_valid_batches)])
                lines.append("epoch %i, minibatch %i/%i, validation error %f %%"
                             % (epoch, minibatch_index + 1, n_train_batches, loss * 100.0))
                if loss < best_validation_loss:
                    if loss < best_validation_loss * improvement_threshold:
                        patience = max(patience, iter * patience_increase)
                    best_validation_loss = loss
                    best_iter = iter
                    test_score = numpy.mean([model.test_model(i) for i in range(n_test_batches)])
                    lines.append("     epoch %i, minibatch %i/%i, test error of best model %f %%"
                                 % (epoch, minibatch_index + 1, n_train_batches, test_score * 100.0))
            if patience <= iter:
                done_looping = True
                break
    return lines, (best_validation_loss, best_iter, test_score, epoch)


CURVES = {
    # keeps improving a lot: patience keeps growing, n_epochs ends the run
    "improving": lambda t: 1.0 / (1.0 + 0.1 * t),
    # improves, then plateaus: patience runs out mid-epoch
    "plateau": lambda t: max(0.5, 1.0 - 0.05 * t),
    # improves by less than the threshold: best moves, patience does not
    "tiny steps": lambda t: 0.5 - 1e-5 * t,
}


@pytest.mark.parametrize("curve", sorted(CURVES))
@pytest.mark.parametrize("n_train,patience", [(7, 20), (5, 6), (4, 100)])
def test_loop_matches_the_original(curve, n_train, patience, capsys):
    expected, summary = original_loop(ScriptedModel(CURVES[curve]), n_train, 3, 2, 9, patience)
    model = ScriptedModel(CURVES[curve])
    result = early_stopping.train_early_stopping(
        model.train_model, model.validate_model, model.test_model, model.params,
        (n_train, 3, 2), 9, patience=patience)
    printed = capsys.readouterr().out.splitlines()
    assert printed == expected
    assert (result.best_validation_loss, result.best_iter, result.test_score,
            result.epoch) == summary
    assert len(result.history) == sum(line.startswith("epoch") for line in expected)


def test_loop_prints_training_iter_lines(capsys):
    model = ScriptedModel(CURVES["improving"])
    loop(model.train_model, model.validate_model, model.test_model,
                                  model.params, 7, 1, 1, 2, report_every=5)
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith("training")] == [
        "training @ iter =  0", "training @ iter =  5", "training @ iter =  10"]



@pytest.fixture
def python_sigint_handler():
    """Python's own Ctrl-C handler during the test, whatever the runner
    inherited: a job started in the background (as CI may be) begins with
    SIGINT ignored, and the guard must restore what it found."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)

@pytest.mark.parametrize("stop_after", [3, 7, 10, 14, 25])
def test_resume_from_any_minibatch_is_exact(tmp_path, stop_after, capsys, python_sigint_handler):
    """Ctrl-C (in-process SIGINT) at any minibatch, then resume: same end state."""
    settings = dict(n_train_batches=7, n_valid_batches=2, n_test_batches=2, n_epochs=4,
                    patience=20)
    reference = ScriptedModel(CURVES["plateau"])
    expected = loop(
        reference.train_model, reference.validate_model, reference.test_model,
        reference.params, checkpoint=str(tmp_path / "ref.npz"), **settings)
    expected_out = capsys.readouterr().out

    ckpt = str(tmp_path / "ckpt.npz")
    first = ScriptedModel(CURVES["plateau"], interrupt_at=stop_after)
    with pytest.raises(errors.TrainingInterrupted) as info:
        loop(first.train_model, first.validate_model,
                                      first.test_model, first.params, checkpoint=ckpt,
                                      **settings)
    assert info.value.iterations == stop_after
    assert "Ctrl-C again" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    second = ScriptedModel(CURVES["plateau"])
    result = loop(second.train_model, second.validate_model,
                                           second.test_model, second.params,
                                           checkpoint=ckpt, resume=True, **settings)
    resumed_out = capsys.readouterr().out
    assert second.calls == expected.iterations - stop_after
    assert result.params[0].tobytes() == expected.params[0].tobytes()
    assert result.best_params[0].tobytes() == expected.best_params[0].tobytes()
    assert (result.best_validation_loss, result.best_iter, result.test_score, result.epoch,
            result.history) == (expected.best_validation_loss, expected.best_iter,
                                expected.test_score, expected.epoch, expected.history)
    assert expected_out.endswith(resumed_out)
    assert_same_checkpoint(ckpt, str(tmp_path / "ref.npz"))


@pytest.mark.parametrize("stop_after", [7, 10])
def test_on_epoch_hook_sees_every_epoch_also_after_resume(tmp_path, stop_after,
                                                           python_sigint_handler):
    """The hook runs before each epoch's first minibatch; a run resumed in the
    middle of epoch 2 (7 of 5 + 5) or at its end (10) calls it for the epoch
    it continues, so a schedule can set that epoch's rate again."""
    settings = dict(n_train_batches=5, n_valid_batches=1, n_test_batches=1, n_epochs=4,
                    patience=1000)
    calls = []

    def on_epoch(epoch):
        calls.append((epoch, model.calls))

    model = ScriptedModel(CURVES["improving"])
    loop(model.train_model, model.validate_model, model.test_model,
                                  model.params, on_epoch=on_epoch, **settings)
    assert calls == [(1, 0), (2, 5), (3, 10), (4, 15)]

    ckpt = str(tmp_path / "ckpt.npz")
    calls.clear()
    model = ScriptedModel(CURVES["improving"], interrupt_at=stop_after)
    with pytest.raises(errors.TrainingInterrupted):
        loop(model.train_model, model.validate_model,
                                      model.test_model, model.params, on_epoch=on_epoch,
                                      checkpoint=ckpt, **settings)
    first = calls[:]
    calls.clear()
    model = ScriptedModel(CURVES["improving"])
    loop(model.train_model, model.validate_model, model.test_model,
                                  model.params, on_epoch=on_epoch, checkpoint=ckpt,
                                  resume=True, **settings)
    if stop_after == 7:
        assert first == [(1, 0), (2, 5)]
        assert calls == [(2, 0), (3, 3), (4, 8)]
    else:
        assert first == [(1, 0), (2, 5)]
        assert calls == [(3, 0), (4, 5)]


def test_interrupt_guard_second_ctrl_c_is_immediate(python_sigint_handler):
    guard = supervisor.InterruptGuard(True, None)
    with guard:
        assert signal.getsignal(signal.SIGINT) == guard._handle
        guard._handle(signal.SIGINT, None)
        assert guard.requested
        # the next Ctrl-C gets the system's default action: immediate exit
        assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_diverging_cost_stops_and_keeps_the_checkpoint(tmp_path, capsys):
    ckpt = str(tmp_path / "ckpt.npz")
    model = ScriptedModel(CURVES["improving"])
    costs = iter([1.0, 0.5, 0.25, float("nan")])

    def train_model(index):
        model.train_model(index)
        return numpy.float64(next(costs))

    with pytest.raises(errors.TrainingDiverged, match=r"nan at iteration 3 .*kept"):
        loop(train_model, model.validate_model, model.test_model,
                                      model.params, 2, 1, 1, 5, checkpoint=ckpt)
    arrays, meta = read_checkpoint(ckpt)
    assert meta["state"]["next_iter"] == 2  # the checkpoint of the last validation
    assert numpy.isfinite(arrays["param_0"]).all()


def test_nan_parameters_are_never_checkpointed(tmp_path, capsys):
    ckpt = str(tmp_path / "ckpt.npz")
    model = ScriptedModel(CURVES["improving"])

    def train_model(index):
        cost = model.train_model(index)
        if model.calls == 3:
            model.p.set_value(numpy.array([numpy.inf, 0.0, 0.0]))
        return cost

    with pytest.raises(errors.TrainingDiverged, match="by iteration 3"):
        loop(train_model, model.validate_model, model.test_model,
                                      model.params, 2, 1, 1, 5, checkpoint=ckpt)
    arrays, meta = read_checkpoint(ckpt)
    assert meta["state"]["next_iter"] == 2
    assert numpy.isfinite(arrays["param_0"]).all()


# ---------------------------------------------------------------------------
# Checkpoint files
# ---------------------------------------------------------------------------

def make_state():
    state = early_stopping.LoopState(patience=10, epoch=2, next_iter=13, best_validation_loss=0.25,
                               best_iter=11, test_score=0.125, elapsed=3.5)
    state.history.append({"epoch": 2, "iteration": 12, "validation_error": 0.25,
                          "test_error": 0.125})
    return state


def make_params(dtype="float64"):
    return [pytensor.shared(numpy.arange(6, dtype=dtype).reshape(2, 3)),
            pytensor.shared(numpy.ones(3, dtype=dtype))]


def test_checkpoint_round_trip_without_pickle(tmp_path):
    path = str(tmp_path / "c.npz")
    params = make_params()
    best = [p.get_value() * 2 for p in params]
    fingerprint = checkpoints.config_fingerprint("t", params, learning_rate=0.1, n=(1, 2))
    checkpoints.save_checkpoint(path, params, best, make_state(), fingerprint, names=["W", "b"])

    arrays, meta = read_checkpoint(path)  # allow_pickle=False
    assert sorted(arrays) == ["W", "b", "best_W", "best_b"]
    assert meta["format"] == checkpoints.CHECKPOINT_FORMAT
    assert meta["fingerprint"]["floatX"] == pytensor.config.floatX
    assert meta["fingerprint"]["param_shapes"] == [[2, 3], [3]]
    assert set(meta["state"]) >= {"epoch", "next_iter", "patience", "best_validation_loss",
                                  "best_iter", "test_score", "history", "elapsed"}

    fresh = [pytensor.shared(numpy.zeros_like(p.get_value())) for p in params]
    with pytest.raises(errors.CheckpointError, match="lacks the array 'param_0'"):
        checkpoints.load_checkpoint(path, fresh, fingerprint)  # other names
    state, best_params = checkpoints.load_checkpoint(path, fresh, fingerprint, names=["W", "b"])
    assert state == make_state()
    for a, b in zip(fresh, params):
        assert a.get_value().tobytes() == b.get_value().tobytes()
    for a, b in zip(best_params, best):
        assert a.tobytes() == b.tobytes()


def test_checkpoint_names_must_be_distinct(tmp_path):
    params = make_params()
    for names in (["W"], ["W", "W"], ["meta", "b"], ["best_W", "b"]):
        with pytest.raises(ValueError, match="distinct parameter names"):
            checkpoints.save_checkpoint(str(tmp_path / "c.npz"), params, None,
                                     make_state(), {}, names=names)
    assert not os.listdir(tmp_path)


def test_checkpoint_before_any_validation_has_infinite_best(tmp_path):
    path = str(tmp_path / "c.npz")
    params = make_params()
    fingerprint = checkpoints.config_fingerprint("t", params)
    checkpoints.save_checkpoint(path, params, None, early_stopping.LoopState(patience=5), fingerprint)
    state, best = checkpoints.load_checkpoint(path, params, fingerprint)
    assert state.best_validation_loss == math.inf and best is None


def test_atomic_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "f.npz"
    path.write_bytes(b"old")

    def failing_write(stream):
        stream.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(str(path), failing_write)
    assert path.read_bytes() == b"old"

    def no_replace(src, dst):
        raise OSError("crash before rename")

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(OSError, match="crash before rename"):
        atomic_write(str(path), lambda stream: stream.write(b"new"))
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.npz"]  # no temporary file left behind


def bad_checkpoints(tmp_path, params, fingerprint):
    """(name, path, expected message) for files load_checkpoint must refuse."""
    good = str(tmp_path / "good.npz")
    checkpoints.save_checkpoint(good, params, None, make_state(), fingerprint)
    blob = open(good, "rb").read()
    cases = []

    def add(name, data, match):
        path = tmp_path / name
        path.write_bytes(data)
        cases.append((name, str(path), match))

    add("garbage.npz", b"this is not a checkpoint", "not a readable checkpoint")
    add("truncated.npz", blob[: len(blob) // 2], "not a readable checkpoint")
    add("pickle.npz", pickle.dumps({"W": 1}), "not a readable checkpoint")
    stream = io.BytesIO()
    numpy.savez(stream, param_0=numpy.zeros(3))
    add("no_meta.npz", stream.getvalue(), "no 'meta' entry")
    stream = io.BytesIO()
    numpy.save(stream, numpy.zeros(3))
    add("single.npy", stream.getvalue(), "single array")

    def with_meta(name, meta, match, **arrays):
        stream = io.BytesIO()
        numpy.savez(stream, meta=numpy.array(json.dumps(meta)), **arrays)
        add(name, stream.getvalue(), match)

    state = make_state().to_json()
    values = {f"param_{i}": p.get_value() for i, p in enumerate(params)}
    with_meta("format.npz", {"format": 99, "fingerprint": fingerprint, "state": state},
              "format 99", **values)
    other = dict(fingerprint, learning_rate=0.5)
    with_meta("other_config.npz", {"format": 1, "fingerprint": other, "state": state},
              r"different model or configuration \(learning_rate 0\.5 \(checkpoint\) vs 0\.1",
              **values)
    with_meta("bad_state.npz", {"format": 1, "fingerprint": fingerprint,
                                "state": dict(state, next_iter="x")},
              "invalid next_iter", **values)
    with_meta("no_state.npz", {"format": 1, "fingerprint": fingerprint, "state": {}},
              "lacks", **values)
    with_meta("missing_array.npz", {"format": 1, "fingerprint": fingerprint, "state": state},
              "lacks the array 'param_1'", param_0=values["param_0"])
    with_meta("wrong_shape.npz", {"format": 1, "fingerprint": fingerprint, "state": state},
              "needs float64", param_0=numpy.zeros(5), param_1=values["param_1"])
    cases.append(("missing.npz", str(tmp_path / "missing.npz"), "no checkpoint to resume"))
    return cases


def test_bad_checkpoints_are_refused_and_change_nothing(tmp_path):
    params = make_params()
    fingerprint = checkpoints.config_fingerprint("t", params, learning_rate=0.1)
    before = [p.get_value().copy() for p in params]
    for name, path, match in bad_checkpoints(tmp_path, params, fingerprint):
        digest = sha256(path) if os.path.exists(path) else None
        with pytest.raises(errors.CheckpointError, match=match):
            checkpoints.load_checkpoint(path, params, fingerprint)
        for p, value in zip(params, before):
            assert p.get_value().tobytes() == value.tobytes(), name
        if digest:
            assert sha256(path) == digest, name


# ---------------------------------------------------------------------------
# Progress line and plots
# ---------------------------------------------------------------------------

def test_progress_line_draws_and_clears():
    stream = io.StringIO()
    line = progress.ProgressLine(stream, interval=0)
    line.start(0)
    line.update(2, 10, 5, 100, 105, 1000, 75.0)
    text = stream.getvalue()
    assert text.startswith("\r") and "epoch 2/10" in text and "minibatch 5/100" in text
    assert "elapsed 1m15s" in text and "ETA" in text
    line.clear()
    assert stream.getvalue().endswith("\r")
    assert progress._format_seconds(3725) == "1h02m05s"


def test_no_progress_line_without_a_terminal():
    # pytest captures stdout, so it is not a terminal here
    assert progress.ProgressLine.for_terminal() is None


def test_write_plots_calls_utils_and_survives_failures(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(utils, "plot_error_history", lambda history, path, title=None: (
        calls.append(("history", path, title)), open(path, "wb").close()))
    monkeypatch.setattr(utils, "plot_filters", lambda W, path, **kw: (
        calls.append(("filters", path, W.shape)), open(path, "wb").close()))
    history = [{"epoch": 1, "iteration": 3, "validation_error": 0.5, "test_error": 0.4}]
    written = utils.write_training_plots(str(tmp_path / "plots"), "mlp", history,
                                         numpy.zeros((784, 4)))
    assert [os.path.basename(p) for p in written] == ["mlp_errors.png", "mlp_filters.png"]
    assert calls[1][2] == (784, 4)
    assert utils.write_training_plots(None, "mlp", history, None) == []

    def broken(*args, **kwargs):
        raise RuntimeError("no display")

    monkeypatch.setattr(utils, "plot_error_history", broken)
    assert utils.write_training_plots(str(tmp_path), "mlp", history, None) == []
    assert "could not write the error history plot" in capsys.readouterr().err


def test_write_plots_with_the_real_utils(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    history = [{"epoch": e, "iteration": 10 * e, "validation_error": 0.5 / e,
                "test_error": 0.6 / e} for e in (1, 2, 3)]
    filters = numpy.random.RandomState(0).randn(4, 1, 5, 5)
    written = utils.write_training_plots(str(tmp_path), "convolutional_mlp", history, filters)
    assert capsys.readouterr().err == ""
    assert len(written) == 2
    for path in written:
        with open(path, "rb") as stream:
            assert stream.read(8) == b"\x89PNG\r\n\x1a\n"


def test_resume_command(monkeypatch):
    monkeypatch.setenv("PYTENSOR_FLAGS", "floatX=float32")
    command = command_line.resume_command(["--nkerns", "2,3", "--resume"], "/c k.npz",
                                      script="code/convolutional_mlp.py")
    assert command == ("PYTENSOR_FLAGS=floatX=float32 python code/convolutional_mlp.py "
                       "--nkerns 2,3 --checkpoint '/c k.npz' --resume")
    monkeypatch.delenv("PYTENSOR_FLAGS")
    assert command_line.resume_command(["--checkpoint", "x"], "/abs/x", script="s.py") == (
        "python s.py --checkpoint x --resume")


# ---------------------------------------------------------------------------
# Real tutorials: resume, NaN, command-line errors
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("floatx", ["float64", "float32"])
def test_logistic_resume_is_bit_exact(tiny_mnist, tmp_path, floatx, capsys):
    import logistic_sgd

    def run(n_epochs, ckpt, resume=False):
        result = logistic_sgd.sgd_optimization_mnist(
            n_epochs=n_epochs, dataset=tiny_mnist, best_model=None, checkpoint=ckpt,
            resume=resume, **LOGISTIC)
        return result, capsys.readouterr().out

    with pytensor.config.change_flags(floatX=floatx):
        full, full_out = run(4, str(tmp_path / "full.npz"))
        run(2, str(tmp_path / "part.npz"))
        resumed, resumed_out = run(4, str(tmp_path / "part.npz"), resume=True)
    assert full.params[0].dtype == floatx
    for a, b in zip(full.params + full.best_params, resumed.params + resumed.best_params):
        assert a.tobytes() == b.tobytes()
    assert resumed.history == full.history
    assert result_lines(full_out)[-len(result_lines(resumed_out)):] == result_lines(resumed_out)
    assert resumed_out.splitlines()[-2] == full_out.splitlines()[-2]  # final score line
    assert_same_checkpoint(str(tmp_path / "full.npz"), str(tmp_path / "part.npz"))


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_logistic_nan_names_the_iteration_and_keeps_the_checkpoint(tiny_mnist, tmp_path,
                                                                   capsys):
    import logistic_sgd

    ckpt = str(tmp_path / "ckpt.npz")
    with pytest.raises(errors.TrainingDiverged) as info:
        logistic_sgd.sgd_optimization_mnist(
            learning_rate=1e307, n_epochs=10, dataset=tiny_mnist, batch_size=50,
            max_batches=(1, 1, 1), best_model=None, checkpoint=ckpt)
    assert "at iteration 1 " in str(info.value) and ckpt in str(info.value)
    arrays, meta = read_checkpoint(ckpt)
    assert meta["state"]["next_iter"] == 1
    assert all(numpy.isfinite(a).all() for a in arrays.values())


def main_of(name):
    return __import__(name).main


def run_main(capsys, name, args):
    """Call a script's main() in-process; return (status, stdout, stderr)."""
    try:
        status = main_of(name)(args)
    except SystemExit as exc:  # argparse
        status = exc.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(status, err, expected_status, *fragments):
    assert status == expected_status
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("name", ["logistic_sgd", "mlp", "convolutional_mlp"])
@pytest.mark.parametrize("args,fragment", [
    (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "many"], "--batch-size"),
    (["--learning-rate", "nan"], "--learning-rate"),
    (["--n-epochs", "-1"], "--n-epochs"),
    (["--max-batches", "0"], "--max-batches"),
    (["--no-such-flag"], "unrecognized arguments"),
])
def test_bad_flag_values(capsys, name, args, fragment):
    status, out, err = run_main(capsys, name, args)
    assert_one_line_error(status, err, 2, fragment)


def test_bad_nkerns(capsys):
    for value in ("5", "2,x", "0,3", "1,2,3"):
        status, out, err = run_main(capsys, "convolutional_mlp", ["--nkerns", value])
        assert_one_line_error(status, err, 2, "--nkerns")


def test_help_mentions_float32_and_every_option(capsys):
    status, out, err = run_main(capsys, "convolutional_mlp", ["--help"])
    assert status == 0
    for option in ("--learning-rate", "--n-epochs", "--dataset", "--nkerns", "--batch-size",
                   "--checkpoint", "--resume", "--plots-dir", "--dry-run", "--max-batches",
                   "PYTENSOR_FLAGS=floatX=float32"):
        assert option in out


@pytest.fixture()
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def crafted_pickle(path, marker):
    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    import gzip
    with gzip.open(path, "wb") as stream:
        pickle.dump(Exploit(), stream, protocol=2)


def test_bad_datasets_end_in_one_line(in_tmp, tiny_mnist, capsys):
    truncated = in_tmp / "truncated.pkl.gz"
    truncated.write_bytes(open(tiny_mnist, "rb").read()[:5000])
    not_gzip = in_tmp / "notes.txt"
    not_gzip.write_text("hello\n")
    crafted = in_tmp / "crafted.pkl.gz"
    marker = in_tmp / "pwned"
    crafted_pickle(crafted, marker)
    ckpt = in_tmp / "new.npz"
    for dataset, fragment in [
        (str(in_tmp / "nope" / "mnist.pkl.gz"), "not found"),
        (str(truncated), "truncated"),
        (str(not_gzip), "gzip"),
        (str(crafted), "refusing"),
    ]:
        for name in ("logistic_sgd", "mlp", "convolutional_mlp"):
            status, out, err = run_main(capsys, name, ["--dataset", dataset, "--checkpoint",
                                                       str(ckpt)])
            assert_one_line_error(status, err, 1, fragment)
    assert not marker.exists()
    assert sorted(os.listdir(in_tmp)) == sorted(["truncated.pkl.gz", "notes.txt",
                                                 "crafted.pkl.gz"])


@pytest.mark.parametrize("name,extra", [
    ("logistic_sgd", []), ("mlp", ["--n-hidden", "7"]),
    ("convolutional_mlp", ["--nkerns", "2,3", "--batch-size", "50"])])
def test_an_existing_checkpoint_is_never_replaced(in_tmp, tiny_mnist, capsys, name, extra):
    """A run that was not asked to resume refuses, before loading anything,
    to start over an earlier run's checkpoint (or saved model)."""
    ckpt = in_tmp / f"{name}_checkpoint.npz"  # the default path
    ckpt.write_bytes(b"hours of training")
    status, out, err = run_main(capsys, name, ["--dataset", tiny_mnist] + extra)
    assert_one_line_error(status, err, 1, str(ckpt), "exists", "--resume")
    assert "... loading data" not in out
    assert ckpt.read_bytes() == b"hours of training"
    if name == "logistic_sgd":
        ckpt.unlink()
        best = in_tmp / "best_model.npz"
        best.write_bytes(b"the best model")
        status, out, err = run_main(capsys, name, ["--dataset", tiny_mnist] + extra)
        assert_one_line_error(status, err, 1, str(best), "exists")
        assert best.read_bytes() == b"the best model"
    assert sorted(os.listdir(in_tmp)) == sorted(
        [ckpt.name] if name != "logistic_sgd" else ["best_model.npz"])


def test_unwritable_outputs_are_found_before_the_data_is_loaded(in_tmp, tiny_mnist, capsys):
    if os.geteuid() == 0:
        locked = in_tmp / "file"  # root writes anywhere: a file where a folder must be
        locked.write_text("")
        plots, checkpoint = str(locked / "plots"), str(locked / "sub" / "c.npz")
    else:
        locked = in_tmp / "locked"
        locked.mkdir(mode=0o500)
        plots, checkpoint = str(locked / "plots"), str(locked / "c.npz")
    for args, fragment in [(["--plots-dir", plots], "plots"),
                           (["--checkpoint", checkpoint], "checkpoint")]:
        status, out, err = run_main(capsys, "mlp", ["--dataset", tiny_mnist, "--n-hidden", "7"]
                                    + args)
        assert_one_line_error(status, err, 1, fragment)
        assert "... loading data" not in out


def test_bad_checkpoints_end_in_one_line(in_tmp, tiny_mnist, capsys):
    args = ["--dataset", tiny_mnist, "--n-epochs", "1"] + LOGISTIC_ARGS
    ckpt = str(in_tmp / "ckpt.npz")
    status, out, err = run_main(capsys, "logistic_sgd", args + ["--checkpoint", ckpt])
    assert status == 0 and os.path.exists(ckpt)
    digest = sha256(ckpt)

    # another configuration, another model shape, another tutorial
    for name, extra, fragment in [
        ("logistic_sgd", ["--learning-rate", "0.5"], "learning_rate 0.13 (checkpoint) vs 0.5"),
        ("logistic_sgd", ["--batch-size", "20"], "batch_size"),
        ("mlp", [], "tutorial 'logistic_sgd' (checkpoint) vs 'mlp'"),
    ]:
        base = args if name == "logistic_sgd" else ["--dataset", tiny_mnist, "--n-hidden", "7",
                                                    "--batch-size", "50", "--max-batches",
                                                    "10,4,4", "--plots-dir", ""]
        status, out, err = run_main(capsys, name, base + extra + ["--checkpoint", ckpt,
                                                                   "--resume"])
        assert_one_line_error(status, err, 1, "different model or configuration", fragment)
        assert sha256(ckpt) == digest

    # not a checkpoint at all, or none there
    garbage = in_tmp / "garbage.npz"
    garbage.write_bytes(b"\x93NUMPY garbage")
    for path, fragment in [(str(garbage), "not a readable checkpoint"),
                           (str(in_tmp / "none.npz"), "no checkpoint to resume")]:
        status, out, err = run_main(capsys, "logistic_sgd",
                                    args + ["--checkpoint", path, "--resume"])
        assert_one_line_error(status, err, 1, fragment)
    assert garbage.read_bytes() == b"\x93NUMPY garbage"

    # a folder where the checkpoint should go
    status, out, err = run_main(capsys, "logistic_sgd", args + ["--checkpoint", str(in_tmp)])
    assert_one_line_error(status, err, 1, "is a directory")


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_nan_on_the_command_line(in_tmp, tiny_mnist, capsys):
    ckpt = str(in_tmp / "ckpt.npz")
    status, out, err = run_main(capsys, "logistic_sgd", [
        "--dataset", tiny_mnist, "--learning-rate", "1e307", "--batch-size", "50",
        "--max-batches", "1", "--n-epochs", "10", "--checkpoint", ckpt, "--plots-dir", ""])
    assert_one_line_error(status, err, 1, "at iteration 1 ", "last good checkpoint")
    assert read_checkpoint(ckpt)[1]["state"]["next_iter"] == 1


def test_dry_runs_write_nothing(in_tmp, tiny_mnist, capsys):
    for name, extra in [("logistic_sgd", []), ("mlp", ["--n-hidden", "7"]),
                        ("convolutional_mlp", ["--nkerns", "2,3", "--batch-size", "50"])]:
        status, out, err = run_main(capsys, name, ["--dry-run", "--dataset", tiny_mnist] + extra)
        assert status == 0, err
        lines = out.splitlines()
        validations = [line for line in lines if "validation error" in line]
        assert len(validations) == 1 and validations[0].startswith("epoch 1, minibatch ")
        assert "\r" not in err
    assert os.listdir(in_tmp) == []


# ---------------------------------------------------------------------------
# Subprocesses: SIGKILL and SIGINT
# ---------------------------------------------------------------------------

def wait_for_line(proc, prefix, seen):
    for line in proc.stdout:
        seen.append(line)
        if line.startswith(prefix):
            return True
    return False


def test_sigkill_then_resume_matches_an_uninterrupted_run(tiny_mnist, tmp_path):
    """LeNet (tiny, float32): kill -9 mid-run, resume, compare bit for bit."""
    pytest.importorskip("pytensor_nnet")
    env = {"PYTENSOR_FLAGS": "floatX=float32"}
    args = LENET_ARGS + ["--dataset", tiny_mnist, "--n-epochs", "60"]
    reference = str(tmp_path / "reference.npz")
    done = script("convolutional_mlp", args + ["--checkpoint", reference], tmp_path, env)
    assert done.returncode == 0, done.stderr

    ckpt = str(tmp_path / "killed.npz")
    full_env = dict(os.environ, **env)
    proc = subprocess.Popen(
        [sys.executable, os.path.join(CODE, "convolutional_mlp.py")] + args
        + ["--checkpoint", ckpt], cwd=tmp_path, env=full_env, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, bufsize=1)
    seen = []
    try:
        assert wait_for_line(proc, "epoch 3, minibatch", seen), "".join(seen)
        assert os.path.exists(ckpt)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.stdout.close()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert read_checkpoint(ckpt)[1]["state"]["next_iter"] < 60 * 3

    resumed = script("convolutional_mlp", args + ["--checkpoint", ckpt, "--resume"],
                     tmp_path, env)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr
    assert_same_checkpoint(reference, ckpt)
    # the arrays carry the layers' names, e.g. for `utils.py plot-filters`
    assert {"layer0_W", "layer3_b", "best_layer0_W"} <= set(read_checkpoint(ckpt)[0])
    expected = result_lines(done.stdout)
    got = result_lines(resumed.stdout)
    assert got[-2:] == expected[-2:]  # 'Optimization complete.' and the score line
    assert expected[-len(got):] == got


def test_sigint_saves_and_prints_how_to_resume(tiny_mnist, tmp_path):
    args = LOGISTIC_ARGS + ["--dataset", tiny_mnist, "--n-epochs", "300"]
    reference = str(tmp_path / "reference.npz")
    done = script("logistic_sgd", args + ["--checkpoint", reference, "--best-model",
                                          str(tmp_path / "ref_best.npz")], tmp_path)
    assert done.returncode == 0, done.stderr

    ckpt = str(tmp_path / "ckpt.npz")
    best = str(tmp_path / "best.npz")
    run_args = args + ["--checkpoint", ckpt, "--best-model", best]
    proc = subprocess.Popen(
        [sys.executable, os.path.join(CODE, "logistic_sgd.py")] + run_args, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    seen = []
    try:
        assert wait_for_line(proc, "epoch 2, minibatch", seen), "".join(seen)
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == command_line.EXIT_INTERRUPTED, err
    last = err.strip().splitlines()[-1]
    assert re.match(r"interrupted; resume with: (PYTENSOR_FLAGS=\S+ )?python \S*logistic_sgd\.py ",
                    last), last
    assert last.endswith("--resume") and ckpt in last and "logistic_sgd.py" in last
    assert "Optimization complete" not in out
    assert read_checkpoint(ckpt)[1]["state"]["next_iter"] < 300 * 10

    resumed = script("logistic_sgd", run_args + ["--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_checkpoint(reference, ckpt)
    ref_best = numpy.load(str(tmp_path / "ref_best.npz"), allow_pickle=False)
    our_best = numpy.load(best, allow_pickle=False)
    for name in ("W", "b"):
        assert our_best[name].tobytes() == ref_best[name].tobytes()
    assert result_lines(resumed.stdout)[-1] == result_lines(done.stdout)[-1]


REUSE_SCRIPT = """
import sys, numpy
from pytensor_nnet.tuning import keep_freed_memory
if sys.argv[2] == "keep":
    assert keep_freed_memory()
first = numpy.empty(6_000_000, numpy.float32)
address = first.ctypes.data
del first
print(numpy.empty(5_000_000, numpy.float32).ctypes.data == address)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_reuses_freed_blocks():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    code_dir = CODE

    def reused(setting):
        out = subprocess.run([sys.executable, "-c", REUSE_SCRIPT, code_dir, setting],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip() == "True"

    # by default glibc unmaps a freed 24 MB array, and the next large array
    # is fresh memory to fault in page by page; kept, the block is reused
    assert not reused("default")
    assert reused("keep")


@pytest.mark.parametrize("flags,fragment", [
    ("floatX=float16", "floatX=float16 is not supported; use one of float32, float64"),
    ("floatX=float33", "floatX=float33 is not supported"),
    ("mode=NOPE", "mode=NOPE is not supported; use one of FAST_RUN, NUMBA"),
    ("mode=PYTORCH", "mode=PYTORCH is not supported"),
    ("floatx=float32", "names 'floatx'; the flag is spelled 'floatX'"),
])
@pytest.mark.parametrize("name", ["logistic_sgd", "convolutional_mlp", "lenet5"])
def test_bad_pytensor_flags_are_one_line_before_anything(tmp_path, flags, fragment, name):
    for args in (["--help"], ["--dry-run"]):
        done = script(name, args, tmp_path, env={"PYTENSOR_FLAGS": flags})
        assert done.returncode == 2, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith(f"{name}.py: error: PYTENSOR_FLAGS ") and fragment in line
        assert done.stdout == ""
    assert os.listdir(tmp_path) == []
