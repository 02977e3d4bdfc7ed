r"""Multi-class logistic regression on MNIST, trained by minibatch SGD.

The model maps an input vector :math:`x` to class probabilities with one
affine map followed by a softmax,

.. math::

    P(Y = i \mid x, W, b) = \mathrm{softmax}_i(x W + b)
                           = \frac{e^{x W_i + b_i}}{\sum_j e^{x W_j + b_j}},

and predicts the most probable class, :math:`y_{pred} = \arg\max_i
P(Y = i \mid x, W, b)`.  Training minimises the mean negative
log-likelihood of the correct labels over each minibatch, with early stopping
on a validation set (see :func:`early_stopping.train_early_stopping`).

This is the first model of the Deep Learning Tutorials; the multilayer
perceptron (``mlp.py``) and LeNet (``convolutional_mlp.py``) put this class
on top of their own layers.

Run ``python code/logistic_sgd.py --help`` for the options.

Reference: C. M. Bishop, *Pattern Recognition and Machine Learning*,
section 4.3.2.
"""
import os
import sys
import types

import command_line

if __name__ == "__main__":
    # before PyTensor reads PYTENSOR_FLAGS (it answers bad ones with a traceback)
    command_line.exit_on_bad_flags("logistic_sgd.py")

import numpy

import pytensor
import pytensor.tensor as pt

import pytensor_nnet
from atomic_file import atomic_write
from checkpoints import check_outputs, config_fingerprint, dataset_name, read_npz
from early_stopping import train_early_stopping
from errors import CheckpointError
from minibatches import count_minibatches, keep_data_on_device, minibatch
from mnist_io import load_data
from progress import ProgressLine
from supervisor import Supervisor
from utils import write_training_plots

__docformat__ = "restructedtext en"

__all__ = [
    "LogisticRegression",
    "build_model",
    "load_data",
    "load_model",
    "main",
    "predict",
    "save_model",
    "sgd_optimization_mnist",
]


# start-snippet-1
class LogisticRegression:
    """Multi-class logistic regression: a softmax over one affine map.

    Parameters
    ----------
    input : pytensor.tensor.TensorVariable
        Symbolic minibatch, one example per row, shape ``(n, n_in)``.
    n_in : int
        Size of one input vector (784 for MNIST images).
    n_out : int
        Number of classes.

    Attributes
    ----------
    W : shared variable
        ``(n_in, n_out)`` weights, column ``k`` scoring class ``k``;
        starts at zero.
    b : shared variable
        ``(n_out,)`` biases; start at zero.
    p_y_given_x : TensorVariable
        ``(n, n_out)`` class probabilities, one row per example.
    y_pred : TensorVariable
        ``(n,)`` most probable class of each example.
    params : list
        ``[W, b]``.
    input : TensorVariable
        The ``input`` given.
    """

    def __init__(self, input, n_in, n_out):
        floatx = pytensor.config.floatX
        self.W = pytensor.shared(
            value=numpy.zeros((n_in, n_out), dtype=floatx), name="W", borrow=True
        )
        self.b = pytensor.shared(
            value=numpy.zeros((n_out,), dtype=floatx), name="b", borrow=True
        )

        # One row of probabilities per example (softmax along the classes).
        self.p_y_given_x = pt.special.softmax(pt.dot(input, self.W) + self.b, axis=-1)

        # The prediction is the class with the largest probability.
        self.y_pred = pt.argmax(self.p_y_given_x, axis=1)

        self.params = [self.W, self.b]
        self.input = input
# end-snippet-1

    # start-snippet-2
    def negative_log_likelihood(self, y):
        r"""Mean negative log-probability of the correct labels.

        .. math::

            \ell(\theta = \{W, b\}, \mathcal{D}) = -\frac{1}{|\mathcal{D}|}
            \sum_{i=0}^{|\mathcal{D}| - 1} \log P(Y = y^{(i)} \mid x^{(i)}, W, b)

        The mean (not the sum) keeps the step size of SGD roughly
        independent of the minibatch size.

        Parameters
        ----------
        y : pytensor.tensor.TensorVariable
            Integer vector with the correct label of each example.

        Returns
        -------
        TensorVariable
            A scalar.
        """
        # Row r of log(p_y_given_x) holds the log-probabilities of example r;
        # pairing the row numbers 0..n-1 with the labels picks, from each
        # row, the entry of its correct class.
        return -pt.mean(pt.log(self.p_y_given_x)[pt.arange(y.shape[0]), y])
    # end-snippet-2

    def errors(self, y):
        """Fraction of examples in the minibatch whose prediction is wrong.

        Parameters
        ----------
        y : pytensor.tensor.TensorVariable
            Integer vector of correct labels, as for
            :meth:`negative_log_likelihood`.

        Returns
        -------
        TensorVariable
            The zero-one loss averaged over the minibatch (a float scalar).

        Raises
        ------
        TypeError
            If ``y`` does not have the dimensions of ``y_pred`` (a vector).
        NotImplementedError
            If ``y`` is not of an integer type.
        """
        if y.ndim != self.y_pred.ndim:
            raise TypeError(
                "y should have the same shape as self.y_pred",
                ("y", y.type, "y_pred", self.y_pred.type),
            )
        if not y.dtype.startswith("int"):
            raise NotImplementedError(
                f"errors() needs integer labels, got y of dtype {y.dtype}"
            )
        # neq is 1 where the prediction misses the label
        return pt.mean(pt.neq(self.y_pred, y))


# ---------------------------------------------------------------------------
# Saving the best model (a .npz of the parameter values, never a pickle)
# ---------------------------------------------------------------------------

def save_model(path, classifier):
    """Save a :class:`LogisticRegression`'s ``W`` and ``b`` atomically to ``path``.

    The file is a ``.npz`` archive with arrays ``W`` and ``b``; a crash
    during the write leaves the previous file intact.
    """
    values = {"W": classifier.W.get_value(borrow=True), "b": classifier.b.get_value(borrow=True)}
    atomic_write(path, lambda stream: numpy.savez(stream, **values))


def load_model(path):
    """Read the ``W`` and ``b`` saved by :func:`save_model`.

    The file is opened with ``allow_pickle=False``, so it cannot run code.

    Returns
    -------
    tuple of numpy.ndarray
        ``(W, b)`` cast to ``floatX``.

    Raises
    ------
    errors.CheckpointError
        If the file is missing, unreadable, or does not hold a matching
        ``(n_in, n_out)`` matrix ``W`` and ``(n_out,)`` vector ``b``.
    """
    if not os.path.isfile(path):
        raise CheckpointError(
            f"no saved model at {path} (train one first: python code/logistic_sgd.py)"
        )
    arrays = read_npz(path, "saved logistic regression model", required=("W", "b"))
    W, b = arrays["W"], arrays["b"]
    if (
        W.ndim != 2
        or b.shape != (W.shape[1],)
        or W.dtype.kind != "f"
        or b.dtype.kind != "f"
    ):
        raise CheckpointError(
            f"{path} holds W {W.dtype}{list(W.shape)} and b {b.dtype}{list(b.shape)}; "
            "expected a float (n_in, n_out) matrix and an (n_out,) vector"
        )
    floatx = pytensor.config.floatX
    return W.astype(floatx, copy=False), b.astype(floatx, copy=False)


# ---------------------------------------------------------------------------
# The tutorial
# ---------------------------------------------------------------------------

def build_model(datasets, learning_rate=0.13, batch_size=600, max_batches=None):
    """Build the model and compile its train / validate / test functions.

    Parameters
    ----------
    datasets : list
        The three splits from :func:`load_data`.
    learning_rate, batch_size
        As for :func:`sgd_optimization_mnist`.
    max_batches : None, int or tuple, optional
        Use only this many minibatches (see :func:`minibatches.count_minibatches`).

    Returns
    -------
    types.SimpleNamespace
        ``classifier``, ``params``, ``train_model``, ``validate_model``,
        ``test_model`` and ``n_batches`` (train, valid, test).
    """
    (train_set_x, train_set_y), (valid_set_x, valid_set_y), (test_set_x, test_set_y) = datasets
    n_batches = count_minibatches(datasets, batch_size, max_batches)
    n_train_batches, n_valid_batches, n_test_batches = n_batches

    print("... building the model")

    index = pt.lscalar()  # index to a [mini]batch
    x = pt.matrix("x")  # the images, one flattened 28x28 image per row
    y = pt.ivector("y")  # the labels, one int per image

    # Each MNIST image has 28 * 28 pixels.
    classifier = LogisticRegression(input=x, n_in=28 * 28, n_out=10)

    # start-snippet-3
    # The training criterion: the negative log-likelihood of the labels.
    cost = classifier.negative_log_likelihood(y)

    g_W = pytensor.grad(cost=cost, wrt=classifier.W)
    g_b = pytensor.grad(cost=cost, wrt=classifier.b)

    # One SGD step for each parameter.
    updates = [
        (classifier.W, classifier.W - learning_rate * g_W),
        (classifier.b, classifier.b - learning_rate * g_b),
    ]

    # Numba's exact float math and glibc's allocator setting (the products
    # are left to BLAS's threads: no conv kernels here)
    pytensor_nnet.tune_for_speed(threads=False, rewrites=False)

    # Each compiled function takes a minibatch number; ``givens`` feeds the
    # graph's x and y with that minibatch of the shared data set.
    test_model = pytensor.function(
        inputs=[index],
        outputs=classifier.errors(y),
        givens={
            x: minibatch(test_set_x, index, batch_size, n_test_batches),
            y: minibatch(test_set_y, index, batch_size, n_test_batches),
        },
    )
    validate_model = pytensor.function(
        inputs=[index],
        outputs=classifier.errors(y),
        givens={
            x: minibatch(valid_set_x, index, batch_size, n_valid_batches),
            y: minibatch(valid_set_y, index, batch_size, n_valid_batches),
        },
    )
    # train_model returns the cost and, in the same call, applies the updates
    train_model = pytensor.function(
        inputs=[index],
        outputs=cost,
        updates=updates,
        givens={
            x: minibatch(train_set_x, index, batch_size, n_train_batches),
            y: minibatch(train_set_y, index, batch_size, n_train_batches),
        },
    )
    # end-snippet-3
    keep_data_on_device(datasets, train_model)  # under JAX only
    return types.SimpleNamespace(
        classifier=classifier,
        params=classifier.params,
        train_model=train_model,
        validate_model=validate_model,
        test_model=test_model,
        n_batches=n_batches,
    )


def sgd_optimization_mnist(
    learning_rate=0.13,
    n_epochs=1000,
    dataset="mnist.pkl.gz",
    batch_size=600,
    *,
    best_model="best_model.npz",
    checkpoint=None,
    resume=False,
    plots_dir=None,
    max_batches=None,
):
    """Train the logistic regression on MNIST with SGD and early stopping.

    Parameters
    ----------
    learning_rate : float
        SGD step size.
    n_epochs : int
        Maximum number of passes over the training set.
    dataset : str
        The MNIST data (see :func:`mnist_io.load_data`).
    batch_size : int
        Examples per minibatch.
    best_model : str or None, keyword-only
        Where the parameters of each new best model are saved (``.npz``);
        ``None`` saves nothing.  :func:`predict` reads it.
    checkpoint : str or None, keyword-only
        Checkpoint file written after every validation (``None``: none).
    resume : bool, keyword-only
        Continue from ``checkpoint``.
    plots_dir : str or None, keyword-only
        Folder for the error-history and weight plots (``None``: none).
    max_batches : None, int or tuple, keyword-only
        Train / validate / test on at most this many minibatches (a subset,
        for quick runs and tests).

    Returns
    -------
    early_stopping.TrainingResult
    """
    settings = dict(learning_rate=learning_rate, batch_size=batch_size,
                    dataset=dataset_name(dataset))
    check_outputs(checkpoint, resume, config_fingerprint("logistic_sgd", **settings),
                  plots_dir, model=best_model)

    datasets = load_data(dataset)
    model = build_model(datasets, learning_rate, batch_size, max_batches)

    def save_best_model(state):
        if best_model:
            save_model(best_model, model.classifier)

    print("... training the model")
    result = train_early_stopping(
        model.train_model,
        model.validate_model,
        model.test_model,
        model.params,
        model.n_batches,
        n_epochs,
        patience=5000,
        supervisor=Supervisor(
            checkpoint,
            resume,
            fingerprint=config_fingerprint(
                "logistic_sgd", model.params, n_batches=model.n_batches, **settings
            ),
            param_names=["W", "b"],
            progress=ProgressLine.for_terminal(),
            on_new_best=save_best_model,
        ),
    )

    print(
        "Optimization complete with best validation score of %f %%,"
        "with test performance %f %%"
        % (result.best_validation_loss * 100.0, result.test_score * 100.0)
    )
    print(
        "The code run for %d epochs, with %f epochs/sec"
        % (result.epoch, 1.0 * result.epoch / max(result.elapsed, 1e-9))
    )
    print(
        "The code for file " + os.path.split(__file__)[1] + " ran for %.1fs" % result.elapsed,
        file=sys.stderr,
    )
    weights = (result.best_params or result.params)[0]
    write_training_plots(plots_dir, "logistic_sgd", result.history, weights)
    return result


def predict(best_model="best_model.npz", dataset="mnist.pkl.gz"):
    """Load the saved best model and print its predictions for 10 test digits.

    Parameters
    ----------
    best_model : str
        The ``.npz`` written by :func:`sgd_optimization_mnist`.
    dataset : str
        The MNIST data (see :func:`mnist_io.load_data`).

    Returns
    -------
    numpy.ndarray
        The predicted labels of the first 10 test images.
    """
    W, b = load_model(best_model)
    classifier = LogisticRegression(input=pt.matrix("x"), n_in=W.shape[0], n_out=W.shape[1])
    classifier.W.set_value(W)
    classifier.b.set_value(b)

    datasets = load_data(dataset)
    test_set_x = datasets[2][0].get_value()
    if test_set_x.shape[1] != W.shape[0]:
        raise CheckpointError(
            f"{best_model} expects inputs of {W.shape[0]} values, the data has {test_set_x.shape[1]}"
        )

    predict_model = pytensor.function(inputs=[classifier.input], outputs=classifier.y_pred)
    predicted_values = predict_model(test_set_x[:10])
    print("Predicted values for the first 10 examples in test set:")
    print(predicted_values)
    return predicted_values


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = command_line.tutorial_parser(
        "logistic_sgd",
        "Train a logistic regression classifier on MNIST with minibatch SGD and "
        "early stopping (the first Deep Learning Tutorial, on PyTensor).",
        learning_rate=0.13,
        n_epochs=1000,
        batch_size=600,
    )
    parser.add_argument(
        "--best-model", metavar="PATH", default=None,
        help="where each new best model is saved as .npz (default: best_model.npz "
        "in the working folder; '' for none; not written by --dry-run unless given)")
    parser.add_argument(
        "--predict", action="store_true",
        help="do not train: load --best-model and print its predictions for the "
        "first 10 test digits")
    args = command_line.parse_tutorial_args(parser, "logistic_sgd", argv)

    if args.predict:
        def run():
            predict(args.best_model or "best_model.npz", args.dataset)
    else:
        options = command_line.output_options(args, "logistic_sgd")
        best_model = args.best_model
        if best_model is None:  # --dry-run saves no model unless told where
            best_model = None if args.dry_run else "best_model.npz"

        def run():
            sgd_optimization_mnist(
                learning_rate=args.learning_rate,
                dataset=args.dataset,
                batch_size=args.batch_size,
                best_model=best_model or None,
                **options,
            )

    return command_line.run_main(run, argv, parser.prog)


if __name__ == "__main__":
    sys.exit(main())
