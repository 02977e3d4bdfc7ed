"""Tests of the three tutorial models and of shortened tutorial runs.

* Each class: shapes, initial values and the order of the random draws
  (against hand-drawn ``RandomState`` sequences), the exceptions of
  ``errors()``, the negative log-likelihood against numpy, and the LeNet
  layer against a scipy convolution.
* Shortened runs of the three tutorials (like the original ``code/test.py``,
  on a subset) with assertions on the errors they reach, and ``predict()``.
* Exactness: the first training costs of the default LeNet in float32 equal
  those measured with the original Theano code, and so do the last cost and
  the validation error after one epoch (on the real MNIST, skipped without it).
* The JAX backend runs the tutorials.
"""
import json
import os
import re
import subprocess
import sys

import numpy
import pytest
import scipy.signal

import pytensor
import pytensor.tensor as pt

import logistic_sgd
import mlp
import errors
from logistic_sgd import LogisticRegression
from mlp import MLP, HiddenLayer

CODE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "code")

# The tiny LeNet configuration shared with test_training.py (same compiled graph).
LENET_TINY = dict(nkerns=[2, 3], batch_size=50, max_batches=(3, 2, 2))


def floatx():
    return pytensor.config.floatX


# ---------------------------------------------------------------------------
# LogisticRegression
# ---------------------------------------------------------------------------

def test_logistic_regression_starts_at_zero():
    x = pt.matrix("x")
    model = LogisticRegression(input=x, n_in=6, n_out=4)
    assert model.input is x
    assert model.params == [model.W, model.b]
    assert (model.W.name, model.b.name) == ("W", "b")
    for param, shape in ((model.W, (6, 4)), (model.b, (4,))):
        value = param.get_value()
        assert value.shape == shape and value.dtype == floatx() and not value.any()
    probabilities = model.p_y_given_x.eval({x: numpy.ones((3, 6), dtype=floatx())})
    numpy.testing.assert_allclose(probabilities, 0.25)


def random_model(seed=0, n=5, n_in=6, n_out=4):
    rng = numpy.random.RandomState(seed)
    x = pt.matrix("x")
    model = LogisticRegression(input=x, n_in=n_in, n_out=n_out)
    model.W.set_value(rng.randn(n_in, n_out).astype(floatx()))
    model.b.set_value(rng.randn(n_out).astype(floatx()))
    inputs = rng.randn(n, n_in).astype(floatx())
    labels = rng.randint(0, n_out, n).astype("int32")
    return model, x, inputs, labels


def test_negative_log_likelihood_and_errors_match_numpy():
    model, x, inputs, labels = random_model()
    y = pt.ivector("y")
    f = pytensor.function([x, y], [model.negative_log_likelihood(y), model.errors(y),
                                   model.y_pred, model.p_y_given_x])
    nll, err, pred, prob = f(inputs, labels)

    logits = inputs.astype("float64") @ model.W.get_value() + model.b.get_value()
    logp = logits - logits.max(axis=1, keepdims=True)
    logp -= numpy.log(numpy.exp(logp).sum(axis=1, keepdims=True))
    numpy.testing.assert_allclose(nll, -logp[numpy.arange(len(labels)), labels].mean(),
                                  rtol=1e-10 if floatx() == "float64" else 1e-5)
    numpy.testing.assert_array_equal(pred, logits.argmax(axis=1))
    numpy.testing.assert_allclose(prob.sum(axis=1), 1.0, rtol=1e-6)
    assert err == pytest.approx(numpy.mean(logits.argmax(axis=1) != labels))


def test_errors_rejects_bad_labels():
    model, *_ = random_model()
    with pytest.raises(TypeError, match="same shape as self.y_pred"):
        model.errors(pt.imatrix("y"))
    with pytest.raises(NotImplementedError, match="integer labels"):
        model.errors(pt.dvector("y"))


# ---------------------------------------------------------------------------
# HiddenLayer and MLP
# ---------------------------------------------------------------------------

def test_hidden_layer_draws_uniform_weights():
    x = pt.matrix("x")
    layer = HiddenLayer(numpy.random.RandomState(1234), input=x, n_in=30, n_out=20)
    bound = numpy.sqrt(6.0 / (30 + 20))
    expected = numpy.asarray(
        numpy.random.RandomState(1234).uniform(-bound, bound, (30, 20)), dtype=floatx())
    W = layer.W.get_value()
    assert W.dtype == floatx() and W.tobytes() == expected.tobytes()
    assert abs(W).max() <= bound
    assert not layer.b.get_value().any() and layer.b.get_value().shape == (20,)
    assert layer.params == [layer.W, layer.b] and layer.input is x
    inputs = numpy.random.RandomState(0).randn(4, 30).astype(floatx())
    numpy.testing.assert_allclose(layer.output.eval({x: inputs}), numpy.tanh(inputs @ W),
                                  rtol=1e-5, atol=1e-6)


def test_hidden_layer_sigmoid_weights_are_four_times_larger():
    layer = HiddenLayer(numpy.random.RandomState(5), pt.matrix(), 10, 8, activation=pt.sigmoid)
    tanh_layer = HiddenLayer(numpy.random.RandomState(5), pt.matrix(), 10, 8)
    assert (layer.W.get_value() == 4 * tanh_layer.W.get_value()).all()


def test_hidden_layer_uses_given_parameters_and_no_activation():
    rng = numpy.random.RandomState(7)
    W = pytensor.shared(numpy.eye(3, dtype=floatx()))
    b = pytensor.shared(numpy.arange(3, dtype=floatx()))
    x = pt.matrix("x")
    layer = HiddenLayer(rng, x, 3, 3, W=W, b=b, activation=None)
    assert layer.W is W and layer.b is b
    assert rng.randint(1 << 30) == numpy.random.RandomState(7).randint(1 << 30)  # no draw
    inputs = numpy.ones((2, 3), dtype=floatx())
    numpy.testing.assert_allclose(layer.output.eval({x: inputs}), inputs + [0, 1, 2])


def test_mlp_structure_and_regularisers():
    x = pt.matrix("x")
    model = MLP(numpy.random.RandomState(1234), input=x, n_in=12, n_hidden=5, n_out=3)
    hidden, output = model.hiddenLayer, model.logRegressionLayer
    assert model.params == [hidden.W, hidden.b, output.W, output.b]
    assert model.input is x and output.input is hidden.output
    bound = numpy.sqrt(6.0 / (12 + 5))
    expected = numpy.asarray(
        numpy.random.RandomState(1234).uniform(-bound, bound, (12, 5)), dtype=floatx())
    assert hidden.W.get_value().tobytes() == expected.tobytes()
    output.W.set_value(numpy.full((5, 3), -0.5, dtype=floatx()))
    W1, W2 = hidden.W.get_value(), output.W.get_value()
    numpy.testing.assert_allclose(model.L1.eval(), abs(W1).sum() + abs(W2).sum(), rtol=1e-6)
    numpy.testing.assert_allclose(model.L2_sqr.eval(), (W1 ** 2).sum() + (W2 ** 2).sum(),
                                  rtol=1e-6)
    assert model.negative_log_likelihood == output.negative_log_likelihood
    assert model.errors == output.errors


# ---------------------------------------------------------------------------
# LeNetConvPoolLayer and the LeNet model
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lenet():
    pytest.importorskip("pytensor_nnet")
    import convolutional_mlp

    return convolutional_mlp


def test_lenet_layer_checks_the_number_of_maps(lenet):
    with pytest.raises(ValueError, match=r"3 feature maps .* expect 2"):
        lenet.LeNetConvPoolLayer(numpy.random.RandomState(0), pt.tensor4(), (4, 2, 3, 3),
                                 (5, 3, 8, 8))


def test_lenet_layer_matches_scipy(lenet):
    rng = numpy.random.RandomState(3)
    image_shape, filter_shape = (2, 3, 9, 8), (4, 3, 3, 2)
    x = pt.tensor4("x", dtype=floatx())
    layer = lenet.LeNetConvPoolLayer(numpy.random.RandomState(23455), x, filter_shape,
                                     image_shape, poolsize=(2, 3))
    fan_in, fan_out = 3 * 3 * 2, 4 * 3 * 2 // 6
    bound = numpy.sqrt(6.0 / (fan_in + fan_out))
    expected_W = numpy.asarray(
        numpy.random.RandomState(23455).uniform(-bound, bound, filter_shape), dtype=floatx())
    assert layer.W.get_value().tobytes() == expected_W.tobytes()
    assert layer.params == [layer.W, layer.b] and layer.input is x
    layer.b.set_value(numpy.array([0.1, -0.2, 0.3, 0.0], dtype=floatx()))

    images = rng.randn(*image_shape).astype(floatx())
    got = layer.output.eval({x: images})

    W, b = layer.W.get_value().astype("float64"), layer.b.get_value().astype("float64")
    conv = numpy.zeros((2, 4, 7, 7))
    for n in range(2):
        for k in range(4):
            for c in range(3):  # a true convolution: the filter is flipped
                conv[n, k] += scipy.signal.convolve2d(images[n, c], W[k, c], mode="valid")
    pooled = conv[:, :, :6, :6].reshape(2, 4, 3, 2, 2, 3).max(axis=(3, 5))
    expected = numpy.tanh(pooled + b[None, :, None, None])
    assert got.shape == (2, 4, 3, 2)
    numpy.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_lenet_draws_in_the_original_order(lenet, tiny_mnist, capsys):
    """layer0 W, layer1 W, layer2 W from one RandomState(23455), in that order."""
    datasets = logistic_sgd.load_data(tiny_mnist)
    model = lenet.build_model(datasets, **LENET_TINY)
    k0, k1 = LENET_TINY["nkerns"]
    rng = numpy.random.RandomState(23455)
    expected = []
    for shape, fan_in, fan_out in [((k0, 1, 5, 5), 25, k0 * 25 // 4),
                                   ((k1, k0, 5, 5), k0 * 25, k1 * 25 // 4),
                                   ((k1 * 16, 500), k1 * 16, 500)]:
        bound = numpy.sqrt(6.0 / (fan_in + fan_out))
        expected.append(numpy.asarray(rng.uniform(-bound, bound, shape), dtype=floatx()))
    layer0, layer1, layer2, layer3 = model.layers
    assert model.params == layer3.params + layer2.params + layer1.params + layer0.params
    for layer, W in zip((layer0, layer1, layer2), expected):
        assert layer.W.get_value().tobytes() == W.tobytes()
    assert not any(p.get_value().any() for p in (layer0.b, layer1.b, layer2.b, layer3.W, layer3.b))
    assert model.n_batches == (3, 2, 2)


# ---------------------------------------------------------------------------
# Shortened tutorials (like the original code/test.py, on a subset)
# ---------------------------------------------------------------------------

SCORE = re.compile(r"^epoch (\d+), minibatch (\d+)/(\d+), validation error (\d+\.\d{6}) %$")
TEST_SCORE = re.compile(
    r"^     epoch (\d+), minibatch (\d+)/(\d+), test error of best model (\d+\.\d{6}) %$")


def check_printed(out, result, first_lines):
    lines = out.splitlines()
    assert lines[:len(first_lines)] == first_lines
    scores = [line for line in lines if SCORE.match(line)]
    assert len(scores) == len(result.history) > 0
    assert all(TEST_SCORE.match(line) for line in lines if "test error" in line)
    for line, entry in zip(scores, result.history):
        assert float(SCORE.match(line).group(4)) == pytest.approx(
            entry["validation_error"] * 100, abs=1e-6)
    return lines


def test_logistic_sgd_learns(tiny_mnist, tmp_path, capsys):
    best = str(tmp_path / "best_model.npz")
    result = logistic_sgd.sgd_optimization_mnist(
        n_epochs=5, dataset=tiny_mnist, batch_size=50, max_batches=(20, 10, 10),
        best_model=best)
    out, err = capsys.readouterr()
    lines = check_printed(out, result, ["... loading data", "... building the model",
                                        "... training the model"])
    assert result.epoch == 5 and result.iterations == 100
    assert result.best_validation_loss < 0.2 and result.test_score < 0.2
    assert lines[-2] == (
        "Optimization complete with best validation score of %f %%,with test performance %f %%"
        % (result.best_validation_loss * 100, result.test_score * 100))
    assert re.match(r"^The code run for 5 epochs, with \d+\.\d{6} epochs/sec$", lines[-1])
    assert re.search(r"The code for file logistic_sgd\.py ran for \d+\.\ds", err)

    # predict() reloads the saved best model (a plain .npz) and prints 10 labels
    with numpy.load(best, allow_pickle=False) as saved:
        W, b = saved["W"], saved["b"]
    for value, expected in zip((W, b), result.best_params):
        assert value.tobytes() == expected.tobytes()
    predicted = logistic_sgd.predict(best, tiny_mnist)
    out = capsys.readouterr().out.splitlines()
    assert out[-2] == "Predicted values for the first 10 examples in test set:"
    assert out[-1] == str(predicted)
    test_x = logistic_sgd.load_data(tiny_mnist)[2][0].get_value()[:10]
    numpy.testing.assert_array_equal(predicted, (test_x @ W + b).argmax(axis=1))

    # and from the command line
    assert logistic_sgd.main(["--predict", "--best-model", best, "--dataset", tiny_mnist]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == str(predicted)
    missing = str(tmp_path / "none.npz")
    assert logistic_sgd.main(["--predict", "--best-model", missing, "--dataset", tiny_mnist]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no saved model" in err[0]


def test_predict_refuses_bad_model_files(tiny_mnist, tmp_path, capsys):
    import pickle

    cases = {
        "missing.npz": None,
        "pickle.npz": pickle.dumps({"W": numpy.zeros((784, 10))}),
        "text.npz": b"hello",
    }
    for name, blob in cases.items():
        path = tmp_path / name
        if blob is not None:
            path.write_bytes(blob)
        with pytest.raises(errors.CheckpointError):
            logistic_sgd.predict(str(path), tiny_mnist)
    numpy.savez(tmp_path / "shapes.npz", W=numpy.zeros((784, 10)), b=numpy.zeros(3))
    with pytest.raises(errors.CheckpointError, match="expected a float"):
        logistic_sgd.predict(str(tmp_path / "shapes.npz"), tiny_mnist)
    numpy.savez(tmp_path / "small.npz", W=numpy.zeros((5, 10)), b=numpy.zeros(10))
    with pytest.raises(errors.CheckpointError, match="inputs of 5 values"):
        logistic_sgd.predict(str(tmp_path / "small.npz"), tiny_mnist)


def test_mlp_learns(tiny_mnist, capsys):
    # (a larger step than the default 0.01, to learn from 240 minibatches)
    result = mlp.test_mlp(learning_rate=0.1, n_epochs=4, dataset=tiny_mnist, batch_size=20,
                          n_hidden=30, max_batches=(60, 10, 10))
    out, err = capsys.readouterr()
    lines = check_printed(out, result, ["... loading data", "... building the model",
                                        "... training"])
    assert result.best_validation_loss < 0.3 and result.test_score < 0.3
    assert lines[-1] == (
        "Optimization complete. Best validation score of %f %% obtained at iteration %i, "
        "with test performance %f %%"
        % (result.best_validation_loss * 100, result.best_iter + 1, result.test_score * 100))
    assert re.search(r"The code for file mlp\.py ran for \d+\.\d\dm", err)


def test_lenet_learns(lenet, tiny_mnist, capsys):
    result = lenet.evaluate_lenet5(n_epochs=8, dataset=tiny_mnist, **LENET_TINY)
    out, err = capsys.readouterr()
    lines = check_printed(out, result, ["... loading data", "... building the model",
                                        "... training", "training @ iter =  0"])
    assert "training @ iter =  0" in lines
    assert len(result.history) == 8 and result.iterations == 24
    # 24 minibatches of 50 digits and 2 filters: far from 1%, but learning
    assert result.history[-1]["validation_error"] < result.history[0]["validation_error"]
    assert result.best_validation_loss < 0.75
    assert lines[-2:] == [
        "Optimization complete.",
        "Best validation score of %f %% obtained at iteration %i, with test performance %f %%"
        % (result.best_validation_loss * 100, result.best_iter + 1, result.test_score * 100)]
    assert re.search(r"The code for file convolutional_mlp\.py ran for \d+\.\d\dm", err)


def test_lenet_writes_plots_through_utils(lenet, tiny_mnist, tmp_path, monkeypatch, capsys):
    import utils

    calls = {}
    monkeypatch.setattr(utils, "plot_error_history",
                        lambda history, path, title=None: calls.update(history=history))
    monkeypatch.setattr(utils, "plot_filters", lambda W, path, **kw: calls.update(filters=W.shape))
    result = lenet.evaluate_lenet5(n_epochs=1, dataset=tiny_mnist, plots_dir=str(tmp_path),
                                   **LENET_TINY)
    assert calls == {"history": result.history, "filters": (2, 1, 5, 5)}


# ---------------------------------------------------------------------------
# Exactness against the original Theano, and JAX
# ---------------------------------------------------------------------------

FIRST_STEPS_SCRIPT = """
import json, sys
import numpy
import convolutional_mlp
from mnist_io import load_data
model = convolutional_mlp.build_model(load_data("mnist.pkl.gz"))
steps = int(sys.argv[1])
costs = [float(model.train_model(i)) for i in range(steps)]
validation = float(numpy.mean([model.validate_model(i) for i in range(model.n_batches[1])]))
print(json.dumps({"costs": costs, "validation_error": validation}))
"""


def first_lenet_steps(steps):
    """Train the default LeNet (float32) for ``steps`` minibatches in a subprocess.

    floatX must be set before PyTensor is imported, hence the subprocess.
    Returns the costs and the validation error reached.
    """
    pytest.importorskip("pytensor_nnet")
    env = dict(os.environ, PYTENSOR_FLAGS="floatX=float32")
    env["PYTHONPATH"] = CODE + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", FIRST_STEPS_SCRIPT, str(steps)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_first_lenet_costs_match_theano(mnist_pkl):
    """Default LeNet, float32, RandomState(23455): Theano's first three costs."""
    costs = first_lenet_steps(3)["costs"]
    numpy.testing.assert_allclose(costs, [2.302585, 2.284162, 2.263281], atol=1e-5)


def test_first_lenet_epoch_matches_theano(mnist_pkl):
    """After one epoch (100 minibatches) Theano reached 9.23% validation error."""
    result = first_lenet_steps(100)
    assert result["validation_error"] == pytest.approx(0.0923, abs=1e-9)
    assert result["costs"][-1] == pytest.approx(0.4722, abs=2e-4)


@pytest.mark.filterwarnings("ignore:Skipping Assert:UserWarning")
def test_tutorials_run_under_jax(tiny_mnist, capsys):
    """PYTENSOR mode JAX runs each tutorial and agrees with the default backend."""
    pytest.importorskip("jax")
    runs = [
        (logistic_sgd.sgd_optimization_mnist,
         dict(n_epochs=2, dataset=tiny_mnist, best_model=None, batch_size=50,
              max_batches=(10, 4, 4))),
        (mlp.test_mlp, dict(n_epochs=1, dataset=tiny_mnist, n_hidden=7,
                            max_batches=(3, 2, 2))),
    ]
    try:
        import convolutional_mlp
    except ImportError:
        pass
    else:
        runs.append((convolutional_mlp.evaluate_lenet5,
                     dict(n_epochs=1, dataset=tiny_mnist, **LENET_TINY)))
    for tutorial, kwargs in runs:
        default = tutorial(**kwargs)
        with pytensor.config.change_flags(mode="JAX"):
            jax_run = tutorial(**kwargs)
        capsys.readouterr()
        assert len(jax_run.history) == len(default.history)
        for a, b in zip(jax_run.history, default.history):
            assert a == pytest.approx(b)
        for a, b in zip(jax_run.params, default.params):
            numpy.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
