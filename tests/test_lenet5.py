"""Tests of code/lenet5.py, the 1998 LeNet-5.

* The S2-to-C3 table: the paper's counts (60 connections, 1,516 C3
  parameters) and the random table's.
* The shape of every layer's output, and the trainable parameters per layer
  and in total (the paper's 60,000 plus the softmax's 850).
* The table as a mask: the gradient of a missing connection is exactly zero
  and SGD leaves its filter at exactly zero.
* The learning-rate schedule: the paper's ratios by pass, the step as a
  shared variable, and the rate each epoch trains with.
* A short training run on a subset: the cost goes down, a checkpoint is
  written, and a resumed run ends exactly where an uninterrupted one does,
  also across a change of the scheduled rate.
* The command line: --dry-run, the table and schedule options.

The runs share one configuration (``TINY``: batch 50, 3 / 2 / 2 minibatches,
the paper table, the ``--dry-run`` limits), so they compile one graph.
"""
import json
import re

import numpy
import pytest

import pytensor
import pytensor.tensor as pt

import command_line
import errors

pytest.importorskip("pytensor_nnet")
import lenet5  # noqa: E402

#: The configuration of every training run here (batch 50 is the default).
TINY = dict(batch_size=50, max_batches=command_line.DRY_RUN_BATCHES)

#: Graphs that are only evaluated once, on a few images: skip the rewrites
#: and the Numba compilation.
QUICK = pytensor.compile.mode.Mode(linker="py", optimizer="fast_compile")


def floatx():
    return pytensor.config.floatX


# ---------------------------------------------------------------------------
# The connection table
# ---------------------------------------------------------------------------

def test_paper_table_has_the_papers_counts():
    table = lenet5.connection_table("paper")
    assert table.shape == (16, 6)
    assert int(table.sum()) == 60
    assert table.sum(axis=1).tolist() == [3] * 6 + [4] * 9 + [6]
    # C3 maps 0-11 read contiguous S2 maps (counted in a circle), 12-14 do not
    for j in range(12):
        start = lenet5.PAPER_TABLE[j][0]
        width = len(lenet5.PAPER_TABLE[j])
        assert [i for i in range(6) if table[j, i]] == sorted(
            (start + k) % 6 for k in range(width))
    assert [tuple(numpy.flatnonzero(row)) for row in table[12:15]] == [
        (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5)]
    # every S2 map feeds 10 C3 maps
    assert table.sum(axis=0).tolist() == [10] * 6
    layer = lenet5.ConvolutionLayer(numpy.random.RandomState(0), pt.tensor4(),
                                    (16, 6, 5, 5), (2, 6, 14, 14), table=table)
    assert layer.n_params == 60 * 25 + 16 == 1516


@pytest.mark.parametrize("k", range(1, 7))
def test_random_table_has_k_inputs_per_map(k):
    table = lenet5.connection_table("random", inputs_per_map=k, seed=5)
    assert table.shape == (16, 6) and set(numpy.unique(table)) <= {0, 1}
    assert table.sum(axis=1).tolist() == [k] * 16
    assert (table == lenet5.connection_table("random", k, seed=5)).all()  # reproducible
    layer = lenet5.ConvolutionLayer(numpy.random.RandomState(0), pt.tensor4(),
                                    (16, 6, 5, 5), (2, 6, 14, 14), table=table)
    assert layer.n_params == 16 * k * 25 + 16
    W = layer.W.get_value()
    assert (W[table == 0] == 0).all() and (W[table == 1] != 0).all()


def test_random_table_depends_on_its_seed_only():
    a = lenet5.connection_table("random", 3, seed=1)
    assert not (a == lenet5.connection_table("random", 3, seed=2)).all()
    assert (lenet5.connection_table("random", 3)
            == lenet5.connection_table("random", 3, seed=lenet5.TABLE_SEED)).all()
    # the table does not shift the weights' draws: C3's filters (where both
    # tables connect and give the map the same fan-in) and every later layer's
    # weights are those of the paper-table network
    paper = lenet5.connection_table("paper")
    nets = [lenet5.LeNet5(numpy.random.RandomState(23455), pt.matrix(), 2, table=t)
            for t in (paper, a)]
    both = (paper == 1) & (a == 1) & (paper.sum(axis=1) == 3)[:, None]
    assert both.sum() >= 6
    assert (nets[0].C3.W.get_value()[both] == nets[1].C3.W.get_value()[both]).all()
    for name in ("S4", "C5"):
        first, second = (getattr(n, name).params[0].get_value() for n in nets)
        assert first.tobytes() == second.tobytes()
    assert nets[0].F6.W.get_value().tobytes() == nets[1].F6.W.get_value().tobytes()


@pytest.mark.parametrize("kind, k, seed", [("random", 0, 1), ("random", 7, 1),
                                           ("random", 2.5, 1), ("sparse", 4, 1),
                                           ("random", 4, -1), ("random", 4, 2**32)])
def test_bad_tables_are_refused(kind, k, seed):
    with pytest.raises(errors.ConfigError):
        lenet5.connection_table(kind, k, seed)


def test_layers_refuse_bad_tables():
    rng = numpy.random.RandomState(0)
    empty_row = lenet5.connection_table("paper").copy()
    empty_row[3] = 0
    for table, match in [(numpy.ones((16, 5)), "16, 6"), (empty_row, "at least one"),
                         (numpy.full((16, 6), 2), "0 and 1")]:
        with pytest.raises(ValueError, match=match):
            lenet5.ConvolutionLayer(rng, pt.tensor4(), (16, 6, 5, 5), (2, 6, 14, 14),
                                    table=table)


# ---------------------------------------------------------------------------
# Shapes, parameters, initialisation
# ---------------------------------------------------------------------------

PAPER_COUNTS = {"C1": 156, "S2": 12, "C3": 1516, "S4": 32, "C5": 48120, "F6": 10164,
                "output": 850}


@pytest.fixture(scope="module")
def small_net():
    """LeNet-5 on a symbolic batch of 3 digits, with its layer outputs computed."""
    x = pt.matrix("x")
    net = lenet5.LeNet5(numpy.random.RandomState(23455), x, 3)
    images = numpy.random.RandomState(1).uniform(0, 1, (3, 784)).astype(floatx())
    outputs = [net.field] + [layer.output for layer in net.layers[:-1]]
    outputs.append(net.output.p_y_given_x)
    values = pytensor.function([x], outputs, mode=QUICK)(images)
    return net, x, images, values


def test_every_layer_has_the_papers_shape(small_net):
    net, x, images, values = small_net
    shapes = [v.shape for v in values]
    assert shapes == [(3, 1, 32, 32), (3, 6, 28, 28), (3, 6, 14, 14), (3, 16, 10, 10),
                      (3, 16, 5, 5), (3, 120, 1, 1), (3, 84), (3, 10)]
    assert all(v.dtype == floatx() for v in values)
    field = values[0]
    # the digit sits in the middle of the 32x32 field, rescaled to [-0.1, 1.175]
    numpy.testing.assert_allclose(field[:, 0, 2:30, 2:30],
                                  images.reshape(3, 28, 28) * 1.275 - 0.1, rtol=1e-6)
    border = numpy.ones((32, 32), bool)
    border[2:30, 2:30] = False
    numpy.testing.assert_allclose(field[:, 0][:, border], -0.1, rtol=1e-6)
    # squashed layers stay within +-1.7159; the output is a distribution
    assert all(abs(v).max() <= 1.7159 for v in values[1:7])
    numpy.testing.assert_allclose(values[-1].sum(axis=1), 1.0, rtol=1e-6)


def test_subsampling_is_a_scaled_sum(small_net):
    net, x, images, values = small_net
    c1, s2 = values[1], values[2]
    coef, b = net.S2.coef.get_value(), net.S2.b.get_value()
    sums = c1.reshape(3, 6, 14, 2, 14, 2).sum(axis=(3, 5))
    expected = 1.7159 * numpy.tanh(2.0 / 3.0 * (sums * coef[:, None, None] + b[:, None, None]))
    numpy.testing.assert_allclose(s2, expected, rtol=1e-5, atol=1e-6)


def test_parameter_counts_match_the_paper(small_net):
    net = small_net[0]
    counts = lenet5.parameter_counts(net)
    assert counts == PAPER_COUNTS
    assert sum(counts.values()) == 60850
    assert sum(counts[k] for k in lenet5.PAPER_PARAMETERS) == 60000
    assert {k: v for k, v in counts.items() if k != "output"} == lenet5.PAPER_PARAMETERS
    # every array is counted, except the 36 masked filters of C3
    stored = sum(p.get_value().size for p in net.params)
    assert stored - sum(counts.values()) == (96 - 60) * 25
    assert net.param_names == ["C1_W", "C1_b", "S2_coef", "S2_b", "C3_W", "C3_b",
                               "S4_coef", "S4_b", "C5_W", "C5_b", "F6_W", "F6_b",
                               "output_W", "output_b"]
    lines = lenet5.describe_parameters(net)
    assert lines[-1].split()[:2] == ["total", "60,850"] and "60,000" in lines[-1]
    assert any(line.split()[:3] == ["C3", "1,516", "(1,516)"] for line in lines)


def test_random_table_changes_only_c3():
    table = lenet5.connection_table("random", 5)
    net = lenet5.LeNet5(numpy.random.RandomState(23455), pt.matrix(), 2, table=table)
    assert lenet5.parameter_counts(net) == dict(PAPER_COUNTS, C3=16 * 5 * 25 + 16)


@pytest.mark.parametrize("init", ["lecun", "paper"])
def test_weights_are_drawn_in_the_documented_order(init):
    net = lenet5.LeNet5(numpy.random.RandomState(23455), pt.matrix(), 2, init=init)
    rng = numpy.random.RandomState(23455)
    mask = lenet5.connection_table("paper").reshape(16, 6, 1, 1)

    def bound(fan_in):
        return numpy.sqrt(3.0 / fan_in) if init == "lecun" else 2.4 / fan_in

    expected = [
        rng.uniform(-1, 1, (6, 1, 5, 5)) * bound(25),
        rng.uniform(-bound(4), bound(4), 6),
        rng.uniform(-1, 1, (16, 6, 5, 5)) * bound(mask.sum(axis=1, keepdims=True) * 25) * mask,
        rng.uniform(-bound(4), bound(4), 16),
        rng.uniform(-1, 1, (120, 16, 5, 5)) * bound(400),
        rng.uniform(-bound(120), bound(120), (120, 84)),
    ]
    drawn = [net.C1.W, net.S2.coef, net.C3.W, net.S4.coef, net.C5.W, net.F6.W]
    for param, values in zip(drawn, expected):
        assert param.get_value().tobytes() == numpy.asarray(values, floatx()).tobytes()
    for param in (net.C1.b, net.S2.b, net.C3.b, net.S4.b, net.C5.b, net.F6.b,
                  net.output.W, net.output.b):
        assert not param.get_value().any()


def test_unknown_init_is_refused():
    with pytest.raises(errors.ConfigError, match="init"):
        lenet5.weight_bound(25, "glorot")


# ---------------------------------------------------------------------------
# The mask keeps missing connections at zero
# ---------------------------------------------------------------------------

def test_missing_connections_have_zero_gradient(small_net):
    net, x, images, _ = small_net
    y = pt.ivector("y")
    # The output layer starts at zero, which stops every gradient below it:
    # give it random weights. And give the filters of missing connections
    # non-zero values: they still get no gradient.
    W, out_W = net.C3.W.get_value(), net.output.W.get_value()
    net.C3.W.set_value(W + (1 - net.C3.mask) * 0.5)
    net.output.W.set_value(numpy.random.RandomState(2).randn(84, 10).astype(floatx()))
    try:
        grad = pytensor.grad(net.negative_log_likelihood(y), net.C3.W)
        g = pytensor.function([x, y], grad, mode=QUICK)(images, numpy.array([1, 7, 3], "int32"))
    finally:
        net.C3.W.set_value(W)
        net.output.W.set_value(out_W)
    table = lenet5.connection_table("paper")
    assert (g[table == 0] == 0).all()
    assert (g[table == 1] != 0).mean() > 0.99


def test_sgd_leaves_missing_connections_at_zero(tiny_mnist, capsys):
    """Also: training on a subset lowers the cost."""
    datasets = lenet5.load_data(tiny_mnist)
    model = lenet5.build_model(datasets, **TINY)
    out = capsys.readouterr().out
    assert "  total    60,850  (60,000)" in out
    C3_W = model.network.C3.W
    before = C3_W.get_value()
    table = lenet5.connection_table("paper")
    costs = [float(model.train_model(i)) for _ in range(4) for i in range(3)]
    after = C3_W.get_value()
    assert (after[table == 0] == 0).all() and (before[table == 0] == 0).all()
    assert (after[table == 1] != before[table == 1]).mean() > 0.99
    assert numpy.mean(costs[-3:]) < numpy.mean(costs[:3]) - 0.1
    assert all(numpy.isfinite(costs))


# ---------------------------------------------------------------------------
# The learning-rate schedule
# ---------------------------------------------------------------------------

def test_paper_schedule_has_the_papers_ratios():
    # the paper's global rates for passes 1 to 20
    paper_rates = [5e-4] * 2 + [2e-4] * 3 + [1e-4] * 3 + [5e-5] * 4 + [1e-5] * 8
    factors = [lenet5.learning_rate_factor(e) for e in range(1, 21)]
    numpy.testing.assert_allclose(factors, numpy.array(paper_rates) / 5e-4, rtol=1e-12)
    assert lenet5.learning_rate_factor(200) == 0.02  # the last rate lasts
    assert {lenet5.learning_rate_factor(e, "constant") for e in range(1, 30)} == {1.0}
    with pytest.raises(errors.ConfigError, match="schedule"):
        lenet5.learning_rate_factor(1, "cosine")


def test_schedule_setter_sets_the_rate_from_the_epoch_alone(capsys):
    rate = pytensor.shared(numpy.asarray(0.0, dtype=floatx()))
    set_rate = lenet5.schedule_setter(0.5, "paper", rate)
    seen = []
    for epoch in (1, 2, 3, 9, 4, 13):  # in any order, as a resume would
        set_rate(epoch)
        seen.append(float(rate.get_value()))
    expected = [0.5, 0.5, 0.2, 0.05, 0.2, 0.01]
    numpy.testing.assert_allclose(seen, expected, rtol=1e-6)
    assert rate.get_value().dtype == floatx()
    # a line when the rate changes, none when it stays
    assert capsys.readouterr().out.splitlines() == [
        "... learning rate 0.5 from epoch 1", "... learning rate 0.2 from epoch 3",
        "... learning rate 0.05 from epoch 9", "... learning rate 0.2 from epoch 4",
        "... learning rate 0.01 from epoch 13"]


def test_the_step_is_the_shared_learning_rate(tiny_mnist):
    datasets = lenet5.load_data(tiny_mnist)
    model = lenet5.build_model(datasets, learning_rate=0.25, **TINY)
    assert float(model.learning_rate.get_value()) == 0.25
    model.learning_rate.set_value(numpy.asarray(0.0, dtype=floatx()))
    before = [p.get_value() for p in model.params]
    model.train_model(0)
    assert all((p.get_value() == b).all() for p, b in zip(model.params, before))
    model.learning_rate.set_value(numpy.asarray(0.1, dtype=floatx()))
    model.train_model(0)
    # (the first step only moves the output layer, whose zero weights stop
    # the gradients of the layers below)
    assert not (model.network.output.W.get_value() == before[-2]).all()


# ---------------------------------------------------------------------------
# Training runs, checkpoints and resume
# ---------------------------------------------------------------------------

def test_training_checkpoints_and_resumes_exactly(tiny_mnist, tmp_path, capsys):
    """Three epochs with the paper schedule: the rate drops to 0.4 x 0.2 for
    epoch 3, so the resumed run (1 epoch, then 2 more) has to set it again."""
    full_ckpt, part_ckpt = str(tmp_path / "full.npz"), str(tmp_path / "part.npz")
    full = lenet5.evaluate_lenet5(n_epochs=3, dataset=tiny_mnist, checkpoint=full_ckpt,
                                  plots_dir=str(tmp_path / "plots"), **TINY)
    out, err = capsys.readouterr()
    assert len(full.history) == 3 and full.iterations == 9
    assert full.history[-1]["validation_error"] < full.history[0]["validation_error"]
    lines = out.splitlines()
    assert lines[:3] == ["... loading data", "... building the model",
                         "trainable parameters (the paper's in brackets):"]
    assert [line for line in lines if "learning rate" in line] == [
        "... learning rate 0.2 from epoch 1", "... learning rate 0.08 from epoch 3"]
    assert lines[-1] == (
        "Best validation score of %f %% obtained at iteration %i, with test performance %f %%"
        % (full.best_validation_loss * 100, full.best_iter + 1, full.test_score * 100))
    assert re.search(r"The code for file lenet5\.py ran for \d+\.\d\dm", err)

    # the checkpoint: named arrays, the table's zeros, the run's state
    with numpy.load(full_ckpt, allow_pickle=False) as saved:
        C3_W = saved["C3_W"]
        assert saved["C1_W"].shape == (6, 1, 5, 5) and saved["S2_coef"].shape == (6,)
        fingerprint = json.loads(str(saved["meta"][()]))["fingerprint"]
    # the schedule and the patience (10 epochs of 3 minibatches) are recorded
    assert fingerprint["lr_schedule"] == ["paper", [[1, 1.0], [3, 0.4], [6, 0.2],
                                                    [9, 0.1], [13, 0.02]]]
    assert fingerprint["patience"] == 30
    assert (C3_W[lenet5.connection_table("paper") == 0] == 0).all()
    assert (tmp_path / "plots" / "lenet5_errors.png").is_file()
    assert (tmp_path / "plots" / "lenet5_filters.png").is_file()

    # 1 epoch, then resumed to 3: the same end as the uninterrupted run
    first = lenet5.evaluate_lenet5(n_epochs=1, dataset=tiny_mnist, checkpoint=part_ckpt, **TINY)
    assert first.iterations == 3
    resumed = lenet5.evaluate_lenet5(n_epochs=3, dataset=tiny_mnist, checkpoint=part_ckpt,
                                     resume=True, **TINY)
    err = capsys.readouterr().err
    assert "resuming from" in err and "after 3 minibatches" in err
    assert resumed.history == full.history and resumed.iterations == 9
    for a, b in zip(resumed.params + resumed.best_params, full.params + full.best_params):
        assert a.tobytes() == b.tobytes()

    # the schedule matters: a constant rate ends elsewhere
    constant = lenet5.evaluate_lenet5(n_epochs=3, dataset=tiny_mnist, lr_schedule="constant",
                                      **TINY)
    assert constant.history[:2] == full.history[:2]
    assert constant.params[0].tobytes() != full.params[0].tobytes()

    # a checkpoint of another configuration is refused
    with pytest.raises(errors.CheckpointMismatchError, match="learning_rate"):
        lenet5.evaluate_lenet5(learning_rate=0.05, n_epochs=3, dataset=tiny_mnist,
                               checkpoint=part_ckpt, resume=True, **TINY)
    with pytest.raises(errors.CheckpointMismatchError, match="lr_schedule"):
        lenet5.evaluate_lenet5(n_epochs=3, dataset=tiny_mnist, lr_schedule="constant",
                               checkpoint=part_ckpt, resume=True, **TINY)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def test_dry_run(tiny_mnist, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert lenet5.main(["--dry-run", "--dataset", tiny_mnist]) == 0
    out = capsys.readouterr().out
    assert "  C3        1,516  (1,516)" in out
    assert "epoch 1, minibatch 3/3, validation error" in out
    assert "Optimization complete." in out
    assert list(tmp_path.iterdir()) == []  # nothing saved with --dry-run


def test_command_line_options(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(lenet5, "evaluate_lenet5", lambda **kw: calls.append(kw))
    assert lenet5.main(["--dry-run", "--table", "random", "--inputs-per-map", "3",
                        "--table-seed", "7", "--init", "paper", "--learning-rate", "0.2",
                        "--batch-size", "20", "--lr-schedule", "constant"]) == 0
    (kw,) = calls
    assert (kw["table"], kw["inputs_per_map"], kw["table_seed"], kw["init"],
            kw["lr_schedule"]) == ("random", 3, 7, "paper", "constant")
    assert (kw["learning_rate"], kw["batch_size"], kw["n_epochs"]) == (0.2, 20, 1)
    assert kw["checkpoint"] is None and kw["max_batches"] == command_line.DRY_RUN_BATCHES

    assert lenet5.main(["--dry-run"]) == 0
    assert (calls[-1]["table"], calls[-1]["learning_rate"], calls[-1]["batch_size"],
            calls[-1]["init"], calls[-1]["lr_schedule"]) == ("paper", 0.2, 50, "lecun", "paper")
    # without --dry-run: the paper's 20 passes
    assert lenet5.main(["--checkpoint", "", "--plots-dir", ""]) == 0
    assert calls[-1]["n_epochs"] == 20 and calls[-1]["checkpoint"] is None
    capsys.readouterr()

    for bad in (["--inputs-per-map", "3"], ["--table-seed", "1"],
                ["--table", "random", "--inputs-per-map", "7"], ["--table", "sparse"],
                ["--lr-schedule", "cosine"]):
        with pytest.raises(SystemExit) as stop:
            lenet5.main(bad)
        assert stop.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("lenet5.py: error:")


def test_bad_table_seed_is_a_one_line_error(tiny_mnist, capsys):
    argv = ["--dry-run", "--dataset", tiny_mnist, "--table", "random", "--table-seed", "-1"]
    assert lenet5.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["lenet5.py: error: the table seed must be an integer from 0 to "
                   "2**32 - 1, got -1"]
