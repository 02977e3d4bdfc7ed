"""A multilayer perceptron on MNIST, trained by minibatch SGD.

The perceptron puts one hidden layer of non-linear units between the input
and the logistic regression of ``logistic_sgd.py``:

.. math::

    f(x) = G(b^{(2)} + W^{(2)} s(b^{(1)} + W^{(1)} x)),

with :math:`s` the hidden activation (``tanh`` here) and :math:`G` the
softmax.  Stacking more hidden layers makes the network deeper; one is
enough to do much better than the linear model on MNIST.  The cost adds L1
and squared-L2 penalties of the weights to the negative log-likelihood.

Run ``python code/mlp.py --help`` for the options.

Reference: C. M. Bishop, *Pattern Recognition and Machine Learning*,
section 5.
"""
import sys
import types

import command_line

if __name__ == "__main__":
    # before PyTensor reads PYTENSOR_FLAGS (it answers bad ones with a traceback)
    command_line.exit_on_bad_flags("mlp.py")

import numpy

import pytensor
import pytensor.tensor as pt

import pytensor_nnet
from checkpoints import check_outputs, config_fingerprint, dataset_name
from early_stopping import report_result, train_early_stopping
from logistic_sgd import LogisticRegression, load_data
from memory_check import check_fits
from minibatches import count_minibatches, keep_data_on_device, minibatch
from progress import ProgressLine
from supervisor import Supervisor
from utils import write_training_plots

__docformat__ = "restructedtext en"

__all__ = ["HiddenLayer", "MLP", "build_model", "main", "test_mlp"]


# start-snippet-1
class HiddenLayer:
    r"""A fully connected layer: ``activation(dot(input, W) + b)``.

    Parameters
    ----------
    rng : numpy.random.RandomState
        Draws the initial weights.
    input : pytensor.tensor.TensorVariable
        Symbolic minibatch of shape ``(n_examples, n_in)``.
    n_in : int
        Size of one input.
    n_out : int
        Number of units.
    W : shared variable, optional
        ``(n_in, n_out)`` weights to use instead of fresh ones.
    b : shared variable, optional
        ``(n_out,)`` biases to use instead of zeros.
    activation : callable or None, optional
        The non-linearity (default ``tanh``); ``None`` leaves the layer
        linear.

    Notes
    -----
    Fresh weights are drawn uniformly from
    :math:`\pm\sqrt{6 / (n_{in} + n_{out})}`, a range suited to ``tanh``
    units [Xavier10]_, and multiplied by 4 for the logistic sigmoid, whose
    slope at 0 is a quarter of tanh's.  Other activations get the tanh
    range.

    .. [Xavier10] X. Glorot and Y. Bengio, "Understanding the difficulty of
       training deep feedforward neural networks", AISTATS 2010.
    """

    def __init__(self, rng, input, n_in, n_out, W=None, b=None, activation=pt.tanh):
        self.input = input
        floatx = pytensor.config.floatX

        if W is None:
            bound = numpy.sqrt(6.0 / (n_in + n_out))
            W_values = numpy.asarray(
                rng.uniform(low=-bound, high=bound, size=(n_in, n_out)), dtype=floatx
            )
            if activation == pt.sigmoid:
                W_values *= 4
            W = pytensor.shared(value=W_values, name="W", borrow=True)

        if b is None:
            b = pytensor.shared(value=numpy.zeros((n_out,), dtype=floatx), name="b", borrow=True)

        self.W = W
        self.b = b

        lin_output = pt.dot(input, self.W) + self.b
        self.output = lin_output if activation is None else activation(lin_output)
        self.params = [self.W, self.b]
# end-snippet-1


# start-snippet-2
class MLP:
    """One tanh hidden layer followed by a logistic regression layer.

    Parameters
    ----------
    rng : numpy.random.RandomState
        Draws the hidden layer's initial weights.
    input : pytensor.tensor.TensorVariable
        Symbolic minibatch, one example per row.
    n_in : int
        Size of one input.
    n_hidden : int
        Number of hidden units.
    n_out : int
        Number of classes.

    Attributes
    ----------
    hiddenLayer : HiddenLayer
    logRegressionLayer : LogisticRegression
    L1 : TensorVariable
        Sum of the absolute values of both weight matrices.
    L2_sqr : TensorVariable
        Sum of the squares of both weight matrices.
    negative_log_likelihood, errors : callable
        Those of the logistic regression layer.
    params : list
        Hidden layer's ``[W, b]`` then the output layer's ``[W, b]``.
    input : TensorVariable
    """

    def __init__(self, rng, input, n_in, n_hidden, n_out):
        self.hiddenLayer = HiddenLayer(
            rng=rng, input=input, n_in=n_in, n_out=n_hidden, activation=pt.tanh
        )

        # The classifier reads the hidden units.
        self.logRegressionLayer = LogisticRegression(
            input=self.hiddenLayer.output, n_in=n_hidden, n_out=n_out
        )

        # Regularisers: the L1 norm and the squared L2 norm of the weights.
        self.L1 = abs(self.hiddenLayer.W).sum() + abs(self.logRegressionLayer.W).sum()
        self.L2_sqr = (self.hiddenLayer.W ** 2).sum() + (self.logRegressionLayer.W ** 2).sum()

        # The likelihood and the error rate are those of the output layer.
        self.negative_log_likelihood = self.logRegressionLayer.negative_log_likelihood
        self.errors = self.logRegressionLayer.errors

        self.params = self.hiddenLayer.params + self.logRegressionLayer.params
        self.input = input
# end-snippet-2


def build_model(datasets, learning_rate=0.01, L1_reg=0.00, L2_reg=0.0001,
                batch_size=20, n_hidden=500, max_batches=None):
    """Build the perceptron and compile its train / validate / test functions.

    Parameters
    ----------
    datasets : list
        The three splits from :func:`load_data`.
    learning_rate, L1_reg, L2_reg, batch_size, n_hidden
        As for :func:`test_mlp`.
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

    # before allocating anything: the weights, their gradients and the best
    # copy, and one minibatch's hidden activations, roughly
    check_fits(4 * (785 * n_hidden + 10 * (n_hidden + 1)) + 3 * batch_size * n_hidden,
               numpy.dtype(pytensor.config.floatX).itemsize, f"n_hidden {n_hidden}")

    rng = numpy.random.RandomState(1234)

    classifier = MLP(rng=rng, input=x, n_in=28 * 28, n_hidden=n_hidden, n_out=10)

    # start-snippet-3
    # The training criterion: negative log-likelihood plus the penalties.
    cost = (
        classifier.negative_log_likelihood(y)
        + L1_reg * classifier.L1
        + L2_reg * classifier.L2_sqr
    )

    gparams = pytensor.grad(cost, classifier.params)

    # One SGD step for each parameter.
    updates = [
        (param, param - learning_rate * gparam)
        for param, gparam in zip(classifier.params, gparams)
    ]

    # Numba's exact float math and glibc's allocator setting (the products
    # are left to BLAS's threads: no conv kernels here)
    pytensor_nnet.tune_for_speed(threads=False, rewrites=False)

    # Each compiled function takes a minibatch number; ``givens`` feeds the
    # graph's x and y with that minibatch of the shared data set.
    test_model = pytensor.function(
        [index],
        classifier.errors(y),
        givens={
            x: minibatch(test_set_x, index, batch_size, n_test_batches),
            y: minibatch(test_set_y, index, batch_size, n_test_batches),
        },
    )
    validate_model = pytensor.function(
        [index],
        classifier.errors(y),
        givens={
            x: minibatch(valid_set_x, index, batch_size, n_valid_batches),
            y: minibatch(valid_set_y, index, batch_size, n_valid_batches),
        },
    )
    # train_model returns the cost and, in the same call, applies the updates
    train_model = pytensor.function(
        [index],
        cost,
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


def test_mlp(
    learning_rate=0.01,
    L1_reg=0.00,
    L2_reg=0.0001,
    n_epochs=1000,
    dataset="mnist.pkl.gz",
    batch_size=20,
    n_hidden=500,
    *,
    checkpoint=None,
    resume=False,
    plots_dir=None,
    max_batches=None,
):
    """Train the multilayer perceptron on MNIST with SGD and early stopping.

    (The name is the original tutorial's; it trains, it does not test.)

    Parameters
    ----------
    learning_rate : float
        SGD step size.
    L1_reg : float
        Weight of the L1 penalty in the cost.
    L2_reg : float
        Weight of the squared-L2 penalty in the cost.
    n_epochs : int
        Maximum number of passes over the training set.
    dataset : str
        The MNIST data (see :func:`mnist_io.load_data`).
    batch_size : int
        Examples per minibatch.
    n_hidden : int
        Hidden units.
    checkpoint, resume, plots_dir, max_batches : keyword-only
        As for :func:`logistic_sgd.sgd_optimization_mnist`.

    Returns
    -------
    early_stopping.TrainingResult
    """
    settings = dict(learning_rate=learning_rate, L1_reg=L1_reg, L2_reg=L2_reg,
                    batch_size=batch_size, n_hidden=n_hidden, dataset=dataset_name(dataset))
    check_outputs(checkpoint, resume, config_fingerprint("mlp", **settings), plots_dir)

    datasets = load_data(dataset)
    model = build_model(datasets, learning_rate, L1_reg, L2_reg, batch_size, n_hidden,
                        max_batches)

    print("... training")
    result = train_early_stopping(
        model.train_model,
        model.validate_model,
        model.test_model,
        model.params,
        model.n_batches,
        n_epochs,
        patience=10000,
        supervisor=Supervisor(
            checkpoint,
            resume,
            fingerprint=config_fingerprint(
                "mlp", model.params, n_batches=model.n_batches, **settings
            ),
            param_names=["hiddenLayer_W", "hiddenLayer_b",
                         "logRegressionLayer_W", "logRegressionLayer_b"],
            progress=ProgressLine.for_terminal(),
        ),
    )

    report_result(result, __file__, one_line=True)
    hidden_weights = (result.best_params or result.params)[0]
    write_training_plots(plots_dir, "mlp", result.history, hidden_weights)
    return result


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = command_line.tutorial_parser(
        "mlp",
        "Train a one-hidden-layer perceptron on MNIST with minibatch SGD and "
        "early stopping (the Deep Learning Tutorials' MLP, on PyTensor).",
        learning_rate=0.01,
        n_epochs=1000,
        batch_size=20,
    )
    parser.add_argument(
        "--L1-reg", type=command_line.finite_float(minimum=0.0), default=0.00,
        help="weight of the L1 norm of the weights in the cost (default: %(default)s)")
    parser.add_argument(
        "--L2-reg", type=command_line.finite_float(minimum=0.0), default=0.0001,
        help="weight of the squared L2 norm of the weights in the cost (default: %(default)s)")
    parser.add_argument(
        "--n-hidden", type=command_line.positive_int, default=500,
        help="number of hidden units (default: %(default)s)")
    args = command_line.parse_tutorial_args(parser, "mlp", argv)

    options = command_line.output_options(args, "mlp")

    def run():
        test_mlp(
            learning_rate=args.learning_rate,
            L1_reg=args.L1_reg,
            L2_reg=args.L2_reg,
            dataset=args.dataset,
            batch_size=args.batch_size,
            n_hidden=args.n_hidden,
            **options,
        )

    return command_line.run_main(run, argv, parser.prog)


if __name__ == "__main__":
    sys.exit(main())
