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
import sys
import types

import command_line

if __name__ == "__main__":
    # before PyTensor reads PYTENSOR_FLAGS (it answers bad ones with a traceback)
    command_line.exit_on_bad_flags("convolutional_mlp.py")

import numpy

import pytensor
import pytensor.tensor as pt

import pytensor_nnet
from checkpoints import check_outputs, config_fingerprint, dataset_name
from digit_image import read_digits
from early_stopping import report_result, train_early_stopping
from errors import CheckpointMismatchError, ConfigError
from logistic_sgd import LogisticRegression, load_data
from memory_check import check_fits
from minibatches import count_minibatches, keep_data_on_device, minibatch
from mlp import HiddenLayer
from progress import ProgressLine
from pytensor_nnet import conv2d, pool_2d
from saved_model import (BestModelFile, add_model_options, check_network, check_show_dir,
                         load_model, model_path, report_predictions, set_parameters)
from supervisor import Supervisor
from utils import write_training_plots

__all__ = ["PARAM_NAMES", "LeNetConvPoolLayer", "build_layers", "build_model",
           "evaluate_lenet5", "main", "network_settings", "predict", "read_model"]

#: The names of the parameters, in the order of ``build_model(...).params``
#: (layer3 first), in checkpoints and saved models.
PARAM_NAMES = [f"layer{k}_{p}" for k in (3, 2, 1, 0) for p in ("W", "b")]


# start-snippet-1
class LeNetConvPoolLayer:
    r"""A convolution layer followed by max-pooling, a bias and tanh.

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
    drawn uniformly from :math:`\pm\sqrt{6 / (fan_{in} + fan_{out})}`.
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


def build_layers(rng, x, batch_size, nkerns=(20, 50)):
    """The four layers of LeNet on a minibatch of flattened 28x28 images.

    :func:`build_model` trains them; :func:`predict` builds them again, for
    the pictures it classifies, and gives them the saved parameters.

    Parameters
    ----------
    rng : numpy.random.RandomState
        Draws the initial weights, layer0's filters first.
    x : pytensor.tensor.TensorVariable
        ``(batch_size, 784)`` matrix, one image per row.
    batch_size : int
        Rows of ``x`` (the convolutions are compiled for it).
    nkerns : list of 2 ints
        Filters in the two convolution layers.

    Returns
    -------
    list
        ``[layer0, layer1, layer2, layer3]``: two :class:`LeNetConvPoolLayer`,
        a :class:`mlp.HiddenLayer` and a :class:`logistic_sgd.LogisticRegression`.
    """
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
    # end-snippet-2
    return [layer0, layer1, layer2, layer3]


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
        Use only this many minibatches (see :func:`minibatches.count_minibatches`).
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
        raise ConfigError(f"nkerns must be two positive integers, got {nkerns!r}")
    refuse_what_cannot_fit(nkerns, batch_size)  # before allocating anything
    rng = numpy.random.RandomState(23455) if rng is None else rng
    (train_set_x, train_set_y), (valid_set_x, valid_set_y), (test_set_x, test_set_y) = datasets
    n_batches = count_minibatches(datasets, batch_size, max_batches)
    n_train_batches, n_valid_batches, n_test_batches = n_batches

    index = pt.lscalar()  # index to a [mini]batch
    x = pt.matrix("x")  # the images, one flattened 28x28 image per row
    y = pt.ivector("y")  # the labels, one int per image

    print("... building the model")
    layer0, layer1, layer2, layer3 = build_layers(rng, x, batch_size, nkerns)

    # start-snippet-3
    # The training criterion: the negative log-likelihood of the labels.
    cost = layer3.negative_log_likelihood(y)

    # All the parameters trained by gradient descent, and their gradients.
    params = layer3.params + layer2.params + layer1.params + layer0.params
    grads = pytensor.grad(cost, params)

    # One SGD step for every parameter.
    updates = [
        (param_i, param_i - learning_rate * grad_i)
        for param_i, grad_i in zip(params, grads)
    ]

    # One thread pool, the float32 tanh and product rewrites, Numba's exact
    # float math, graphs run node by node, glibc's allocator setting (see
    # pytensor_nnet.tuning)
    pytensor_nnet.tune_for_speed()

    # Each compiled function takes a minibatch number; ``givens`` feeds the
    # graph's x and y with that minibatch of the shared data set.
    test_model = pytensor.function(
        [index],
        layer3.errors(y),
        givens={
            x: minibatch(test_set_x, index, batch_size, n_test_batches),
            y: minibatch(test_set_y, index, batch_size, n_test_batches),
        },
    )
    validate_model = pytensor.function(
        [index],
        layer3.errors(y),
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
        layers=[layer0, layer1, layer2, layer3],
        params=params,
        train_model=train_model,
        validate_model=validate_model,
        test_model=test_model,
        n_batches=n_batches,
    )


def refuse_what_cannot_fit(nkerns, batch_size):
    """One clear line, not an out-of-memory kill, for a typo like
    ``--nkerns 99999999,50``: the parameters (with their gradients and the
    best copy) and one minibatch's activations, gradients and unrolled
    patches, roughly, against the memory available."""
    n_params = 25 * nkerns[0] + 25 * nkerns[0] * nkerns[1] + 16 * nkerns[1] * 500 + 5010
    n_activations = batch_size * (720 * nkerns[0] + 80 * nkerns[1] + 64 * 25 * nkerns[0])
    check_fits(4 * n_params + 3 * n_activations, numpy.dtype(pytensor.config.floatX).itemsize,
               f"nkerns {nkerns} at batch size {batch_size}")


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
    model_file=None,
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
    model_file : str or None, keyword-only
        Where the best model's parameters are saved (see
        :class:`saved_model.BestModelFile`), for :func:`predict`; an existing
        file is only replaced by a resumed run (``None``: none).

    Returns
    -------
    early_stopping.TrainingResult
    """
    rng = numpy.random.RandomState(23455)
    settings = dict(learning_rate=learning_rate, nkerns=list(nkerns), batch_size=batch_size,
                    dataset=dataset_name(dataset))
    check_outputs(checkpoint, resume, config_fingerprint("convolutional_mlp", **settings),
                  plots_dir, model=model_file)

    datasets = load_data(dataset)
    model = build_model(datasets, learning_rate, nkerns, batch_size, max_batches, rng)
    best_model = BestModelFile(model_file, "convolutional_mlp", model.params, PARAM_NAMES,
                               network_settings(nkerns), settings)

    print("... training")
    result = train_early_stopping(
        model.train_model,
        model.validate_model,
        model.test_model,
        model.params,
        model.n_batches,
        n_epochs,
        patience=10000,
        report_every=100,
        supervisor=Supervisor(
            checkpoint,
            resume,
            fingerprint=config_fingerprint(
                "convolutional_mlp", model.params, n_batches=model.n_batches, **settings
            ),
            param_names=PARAM_NAMES,
            progress=ProgressLine.for_terminal(),
            on_new_best=best_model.on_new_best,
        ),
    )

    report_result(result, __file__)
    best_model.finish(result)
    # layer0's W is the last-but-one parameter (params run layer3 .. layer0).
    first_layer_filters = (result.best_params or result.params)[-2]
    write_training_plots(plots_dir, "convolutional_mlp", result.history, first_layer_filters)
    return result


def network_settings(nkerns):
    """What a saved model records to rebuild the network: the filter counts,
    and the sizes :func:`build_layers` fixes (a model is only used with the
    same)."""
    return {"nkerns": list(nkerns), "image_shape": [28, 28], "filter_shape": [5, 5],
            "poolsize": [2, 2], "n_hidden": 500, "n_out": 10}


def read_model(model_file, nkerns=None):
    """Read a model saved by :func:`evaluate_lenet5` and check that it fits
    the network :func:`build_layers` builds.

    Parameters
    ----------
    model_file : str
        The ``.npz`` file (:func:`saved_model.load_model`).
    nkerns : list of 2 ints, optional
        The filter counts the model must have; by default the model's own.

    Returns
    -------
    tuple
        ``(meta, arrays, nkerns)``: the file's JSON record, ``{name: array}``
        for the parameters (give them to the rebuilt layers with
        :func:`saved_model.set_parameters` and :data:`PARAM_NAMES`) and the
        model's filter counts.

    Raises
    ------
    errors.CheckpointError
        For a missing or unreadable model, or a model of another network.
    """
    meta, arrays = load_model(model_file, "convolutional_mlp")
    saved_nkerns = meta["network"].get("nkerns")
    if not (isinstance(saved_nkerns, list) and len(saved_nkerns) == 2
            and all(type(k) is int and k >= 1 for k in saved_nkerns)):
        raise CheckpointMismatchError(f"{model_file} records no valid nkerns: {saved_nkerns!r}")
    check_network(model_file, meta["network"],
                  network_settings(saved_nkerns if nkerns is None else nkerns))
    return meta, arrays, saved_nkerns


def predict(images, model_file="convolutional_mlp_model.npz", show_dir=None, nkerns=None):
    """Classify pictures of handwritten digits with a saved model.

    Each picture is prepared as MNIST's digits were
    (:func:`digit_image.read_digit`); the layers are built again
    (:func:`build_layers`) for a minibatch of all the pictures and given the
    saved parameters, and one compiled function returns the class
    probabilities and the feature maps of both convolution layers.

    Parameters
    ----------
    images : list of str
        Picture files, in any format Pillow reads.
    model_file : str
        A model saved by :func:`evaluate_lenet5`.
    show_dir : str, optional
        Folder for one PNG per picture: its input, feature maps and
        probabilities (:func:`saved_model.report_predictions`).
    nkerns : list of 2 ints, optional
        The filter counts the model must have (``--nkerns``, when given);
        by default the model's own.

    Returns
    -------
    numpy.ndarray
        The predicted digits, one per picture.

    Raises
    ------
    digit_image.ImageError, errors.CheckpointError
        For a missing, unreadable or blank picture, a missing or unreadable
        model, or a model of another network.
    """
    check_show_dir(show_dir)
    _, arrays, saved_nkerns = read_model(model_file, nkerns)
    # start-snippet-4
    # (n, 784): each picture prepared as MNIST's digits were
    digits = read_digits(images).astype(pytensor.config.floatX)

    # The same layers, for a minibatch of the n pictures; the saved values
    # replace the random initial weights.
    x = pt.matrix("x")
    layer0, layer1, layer2, layer3 = build_layers(
        numpy.random.RandomState(0), x, len(images), saved_nkerns)
    params = layer3.params + layer2.params + layer1.params + layer0.params
    set_parameters(model_file, params, PARAM_NAMES, arrays)

    # No givens and no updates: the function takes the pictures themselves
    # and returns the probabilities and what the layers compute from them.
    predict_model = pytensor.function(
        [x], [layer3.p_y_given_x, layer0.input, layer0.output, layer1.output])
    # end-snippet-4
    return report_predictions(images, predict_model(digits), show_dir, "convolutional_mlp")


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = command_line.tutorial_parser(
        "convolutional_mlp",
        "Train a LeNet convolutional network on MNIST with minibatch SGD and "
        "early stopping (the Deep Learning Tutorials' LeNet, on PyTensor).",
        learning_rate=0.1,
        n_epochs=200,
        batch_size=500,
    )
    parser.add_argument(
        "--nkerns", type=command_line.positive_ints(2, "20,50"), default=None,
        metavar="K0,K1",
        help="filters in the two convolution layers (default: 20,50; with --predict, "
        "the model's)")
    add_model_options(parser, "convolutional_mlp")
    args = command_line.parse_tutorial_args(parser, "convolutional_mlp", argv)
    model_file = model_path(parser, args, "convolutional_mlp")

    if args.predict is not None:
        def run():
            predict(args.predict, model_file, args.show, args.nkerns)
    else:
        options = command_line.output_options(args, "convolutional_mlp")

        def run():
            evaluate_lenet5(
                learning_rate=args.learning_rate,
                dataset=args.dataset,
                nkerns=args.nkerns or [20, 50],
                batch_size=args.batch_size,
                model_file=model_file,
                **options,
            )

    return command_line.run_main(run, argv, parser.prog)


if __name__ == "__main__":
    sys.exit(main())
