"""LeNet-5 style convolutional network on MNIST, trained by minibatch SGD.

Two convolution + max-pooling layers extract local features from the
28x28 digit images; a fully connected tanh layer and a logistic regression
classify them.  The hyper-parameters are those of the Deep Learning
Tutorials' LeNet, which reaches just under 1% test error on MNIST.

Compared with LeCun et al.'s LeNet-5, the model is simplified:

- pooling has no trainable coefficient per map (LeNet-5 multiplied each
  subsampled map by one before adding the map's bias);
- pooling takes the maximum, not the average;
- the last layer is a logistic regression, not an RBF network;
- the second convolution layer connects every input map to every output
  map (LeNet-5 used a sparse table).

Run ``python code/convolutional_mlp.py --help`` for the options;
``PYTENSOR_FLAGS=floatX=float32`` is the fast setting.

Reference: Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, "Gradient-Based
Learning Applied to Document Recognition", Proceedings of the IEEE,
86(11):2278-2324, November 1998.
"""
import argparse
import sys
import types

import numpy

import pytensor
import pytensor.tensor as pt

import training
from logistic_sgd import LogisticRegression, load_data
from mlp import HiddenLayer
from pytensor_nnet import conv2d, pool_2d

__all__ = ["LeNetConvPoolLayer", "build_model", "evaluate_lenet5", "main"]


# start-snippet-1
class LeNetConvPoolLayer:
    """A convolution layer followed by max-pooling, a bias and tanh.

    Parameters
    ----------
    rng : numpy.random.RandomState
        Draws the initial filters.
    input : pytensor.tensor.TensorVariable
        Symbolic 4-d minibatch of shape ``image_shape``.
    filter_shape : tuple of 4 ints
        ``(number of filters, input feature maps, filter height, filter width)``.
    image_shape : tuple of 4 ints
        ``(batch size, input feature maps, image height, image width)``.
    poolsize : tuple of 2 ints, optional
        Pooling window (rows, columns); default ``(2, 2)``.

    Attributes
    ----------
    W : shared variable
        The filters, shape ``filter_shape``.
    b : shared variable
        One bias per output feature map; starts at zero.
    output : TensorVariable
        ``tanh(max_pool(conv2d(input, W)) + b)``, of shape
        ``(batch, filters, (h - fh + 1) // ph, (w - fw + 1) // pw)``.
    params : list
        ``[W, b]``.
    input : TensorVariable

    Raises
    ------
    ValueError
        If ``image_shape[1]`` (input maps) differs from ``filter_shape[1]``.

    Notes
    -----
    Each unit sees ``fan_in = maps * filter height * filter width`` inputs
    and, through the pooling, sends gradients to ``fan_out = filters *
    filter height * filter width / pool area`` units below; the filters are
    drawn uniformly from :math:`\\pm\\sqrt{6 / (fan_{in} + fan_{out})}`.
    """

    def __init__(self, rng, input, filter_shape, image_shape, poolsize=(2, 2)):
        filter_shape = tuple(filter_shape)
        image_shape = tuple(image_shape)
        poolsize = tuple(poolsize)
        if len(filter_shape) != 4 or len(image_shape) != 4 or len(poolsize) != 2:
            raise ValueError(
                f"filter_shape and image_shape need 4 entries and poolsize 2, got "
                f"{filter_shape}, {image_shape} and {poolsize}"
            )
        if image_shape[1] != filter_shape[1]:
            raise ValueError(
                f"the input has {image_shape[1]} feature maps (image_shape[1]) but the "
                f"filters expect {filter_shape[1]} (filter_shape[1])"
            )
        self.input = input
        floatx = pytensor.config.floatX

        fan_in = numpy.prod(filter_shape[1:])
        # Integer division, as in the tutorial (whose Python 2 ``/`` on ints
        # floored): the bound, hence every drawn weight, depends on it.
        fan_out = filter_shape[0] * numpy.prod(filter_shape[2:]) // numpy.prod(poolsize)
        W_bound = numpy.sqrt(6.0 / (fan_in + fan_out))
        self.W = pytensor.shared(
            numpy.asarray(
                rng.uniform(low=-W_bound, high=W_bound, size=filter_shape), dtype=floatx
            ),
            borrow=True,
        )
        self.b = pytensor.shared(numpy.zeros((filter_shape[0],), dtype=floatx), borrow=True)

        conv_out = conv2d(
            input=input, filters=self.W, filter_shape=filter_shape, input_shape=image_shape
        )

        # Each feature map is pooled on its own.
        pooled_out = pool_2d(input=conv_out, ws=poolsize, ignore_border=True)

        # The bias vector is laid out as (1, n_filters, 1, 1), so each filter's
        # bias is broadcast over the minibatch and the map's rows and columns.
        self.output = pt.tanh(pooled_out + self.b.dimshuffle("x", 0, "x", "x"))

        self.params = [self.W, self.b]
# end-snippet-1


def build_model(datasets, learning_rate=0.1, nkerns=(20, 50), batch_size=500,
                max_batches=None, rng=None):
    """Build LeNet and compile its train / validate / test functions.

    Parameters
    ----------
    datasets : list
        The three splits from :func:`load_data`.
    learning_rate, nkerns, batch_size
        As for :func:`evaluate_lenet5`.
    max_batches : None, int or tuple, optional
        Use only this many minibatches (see :func:`training.count_minibatches`).
    rng : numpy.random.RandomState, optional
        Draws the initial weights; default ``RandomState(23455)``.

    Returns
    -------
    types.SimpleNamespace
        ``layers`` (layer0 .. layer3), ``params``, ``train_model``,
        ``validate_model``, ``test_model`` and ``n_batches`` (train, valid,
        test).
    """
    nkerns = list(nkerns)
    if len(nkerns) != 2 or not all(
        isinstance(k, (int, numpy.integer)) and k >= 1 for k in nkerns
    ):
        raise training.ConfigError(f"nkerns must be two positive integers, got {nkerns!r}")
    rng = numpy.random.RandomState(23455) if rng is None else rng
    n_batches = training.count_minibatches(datasets, batch_size, max_batches)

    index = pt.lscalar()  # index to a [mini]batch
    x = pt.matrix("x")  # the images, one flattened 28x28 image per row
    y = pt.ivector("y")  # the labels, one int per image

    print("... building the model")

    # start-snippet-2
    # The rows of x become (batch_size, 1, 28, 28): one input map per image.
    layer0_input = x.reshape((batch_size, 1, 28, 28))

    # First convolution + pooling: 28x28 -> (28-5+1)=24x24 -> pooled 12x12,
    # giving (batch_size, nkerns[0], 12, 12).
    layer0 = LeNetConvPoolLayer(
        rng,
        input=layer0_input,
        image_shape=(batch_size, 1, 28, 28),
        filter_shape=(nkerns[0], 1, 5, 5),
        poolsize=(2, 2),
    )

    # Second convolution + pooling: 12x12 -> 8x8 -> pooled 4x4,
    # giving (batch_size, nkerns[1], 4, 4).
    layer1 = LeNetConvPoolLayer(
        rng,
        input=layer0.output,
        image_shape=(batch_size, nkerns[0], 12, 12),
        filter_shape=(nkerns[1], nkerns[0], 5, 5),
        poolsize=(2, 2),
    )

    # The fully connected layer needs one row per image:
    # (batch_size, nkerns[1] * 4 * 4), i.e. (500, 800) by default.
    layer2_input = layer1.output.flatten(2)

    layer2 = HiddenLayer(
        rng, input=layer2_input, n_in=nkerns[1] * 4 * 4, n_out=500, activation=pt.tanh
    )

    # The classifier on top of the fully connected layer.
    layer3 = LogisticRegression(input=layer2.output, n_in=500, n_out=10)

    # The training criterion: the negative log-likelihood of the labels.
    cost = layer3.negative_log_likelihood(y)
    # end-snippet-2

    # start-snippet-3
    # All the parameters trained by gradient descent, and their gradients.
    params = layer3.params + layer2.params + layer1.params + layer0.params
    grads = pytensor.grad(cost, params)

    # One SGD step for every parameter.
    updates = [
        (param_i, param_i - learning_rate * grad_i)
        for param_i, grad_i in zip(params, grads)
    ]

    train_model, validate_model, test_model = training.compile_functions(
        index, x, y, cost, layer3.errors(y), updates, datasets, batch_size, n_batches
    )
    # end-snippet-3
    return types.SimpleNamespace(
        layers=[layer0, layer1, layer2, layer3],
        params=params,
        train_model=train_model,
        validate_model=validate_model,
        test_model=test_model,
        n_batches=n_batches,
    )


def evaluate_lenet5(
    learning_rate=0.1,
    n_epochs=200,
    dataset="mnist.pkl.gz",
    nkerns=[20, 50],
    batch_size=500,
    *,
    checkpoint=None,
    resume=False,
    plots_dir=None,
    max_batches=None,
):
    """Train LeNet on MNIST with SGD and early stopping.

    Parameters
    ----------
    learning_rate : float
        SGD step size.
    n_epochs : int
        Maximum number of passes over the training set.
    dataset : str
        The MNIST data (see :func:`mnist_io.load_data`).
    nkerns : list of 2 ints
        Filters in the first and second convolution layers.
    batch_size : int
        Examples per minibatch.
    checkpoint : str or None, keyword-only
        Checkpoint file written after every validation and on Ctrl-C
        (``None``: none).
    resume : bool, keyword-only
        Continue from ``checkpoint``; the run then ends with the same
        parameters and results as one that was never interrupted.
    plots_dir : str or None, keyword-only
        Folder for the error-history and first-layer filter plots
        (``None``: none).
    max_batches : None, int or tuple, keyword-only
        Train / validate / test on at most this many minibatches (a subset,
        for quick runs and tests).

    Returns
    -------
    training.TrainingResult
    """
    rng = numpy.random.RandomState(23455)

    datasets = load_data(dataset)
    model = build_model(datasets, learning_rate, nkerns, batch_size, max_batches, rng)
    n_train_batches, n_valid_batches, n_test_batches = model.n_batches

    print("... training")
    result = training.train_early_stopping(
        model.train_model,
        model.validate_model,
        model.test_model,
        model.params,
        n_train_batches,
        n_valid_batches,
        n_test_batches,
        n_epochs,
        patience=10000,
        report_every=100,
        param_names=[f"layer{k}_{p}" for k in (3, 2, 1, 0) for p in ("W", "b")],
        checkpoint=checkpoint,
        resume=resume,
        fingerprint=training.config_fingerprint(
            "convolutional_mlp",
            model.params,
            learning_rate=learning_rate,
            nkerns=list(nkerns),
            batch_size=batch_size,
            dataset=training.dataset_name(dataset),
            n_batches=model.n_batches,
        ),
        progress=training.ProgressLine.for_terminal(),
    )

    training.report_result(result, __file__)
    # layer0's W is the last-but-one parameter (params run layer3 .. layer0).
    first_layer_filters = (result.best_params or result.params)[-2]
    training.write_plots(plots_dir, "convolutional_mlp", result.history, first_layer_filters)
    return result


def _nkerns_type(text):
    """argparse type for --nkerns: two positive integers, 'A,B'."""
    try:
        values = [int(v) for v in text.replace(" ", ",").split(",") if v]
    except ValueError:
        values = []
    if len(values) != 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"expected two positive integers such as 20,50, got {text!r}"
        )
    return values


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = training.tutorial_parser(
        "convolutional_mlp",
        "Train a LeNet convolutional network on MNIST with minibatch SGD and "
        "early stopping (the Deep Learning Tutorials' LeNet, on PyTensor).",
        learning_rate=0.1,
        n_epochs=200,
        batch_size=500,
    )
    parser.add_argument(
        "--nkerns", type=_nkerns_type, default=[20, 50], metavar="K0,K1",
        help="filters in the two convolution layers (default: 20,50)")
    args = training.parse_tutorial_args(parser, "convolutional_mlp", argv)

    options = training.output_options(args, "convolutional_mlp")

    def run():
        evaluate_lenet5(
            learning_rate=args.learning_rate,
            dataset=args.dataset,
            nkerns=args.nkerns,
            batch_size=args.batch_size,
            **options,
        )

    return training.run_main(run, argv, parser.prog)


if __name__ == "__main__":
    sys.exit(main())
