"""LeNet-5 as published in 1998, on MNIST, trained by minibatch SGD.

``convolutional_mlp.py`` is the Deep Learning Tutorials' simplified LeNet.
This module builds the network that LeCun, Bottou, Bengio and Haffner
described in 1998 instead, layer for layer:

======  ===========================================  ==========  ==========
layer   what it computes                             output      trainable
======  ===========================================  ==========  ==========
input   the 28x28 digit in a 32x32 field             1 @ 32x32   0
C1      5x5 convolution                              6 @ 28x28   156
S2      2x2 sum x coefficient + bias                 6 @ 14x14   12
C3      5x5 convolution through a connection table   16 @ 10x10  1,516
S4      2x2 sum x coefficient + bias                 16 @ 5x5    32
C5      5x5 convolution over the 5x5 maps            120 @ 1x1   48,120
F6      fully connected                              84          10,164
output  softmax (logistic regression)                10          850
======  ===========================================  ==========  ==========

Every layer from C1 to F6 ends with the squashing function
``1.7159 * tanh(2a / 3)``.  The first six layers hold the paper's 60,000
trainable parameters; the output layer adds 850 (see below), 60,850 in all.

Where this model differs from the paper:

- The output is a softmax trained with the negative log-likelihood (the
  tutorial's ``LogisticRegression``, 84 x 10 weights and 10 biases), not
  the paper's ten Euclidean RBF units with fixed +-1 prototypes and its
  criterion that also pushes the wrong classes' penalties up.  The RBF
  centres were not trained, so the paper counts no parameters there.
- Training is plain minibatch SGD, not the paper's stochastic diagonal
  Levenberg-Marquardt (one step size per parameter from a curvature
  estimate).  What is kept is the paper's 20 passes and the shape of its
  decreasing global rate (see :data:`PAPER_SCHEDULE`), applied to the SGD
  step, and the tutorials' early stopping picks the model that is tested.
- The default weight initialisation is the variance-preserving
  ``+-sqrt(3 / fan_in)``; ``init='paper'`` gives the paper's
  ``+-2.4 / fan_in`` (see :func:`weight_bound`).

Run ``python code/lenet5.py --help`` for the options;
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
    command_line.exit_on_bad_flags("lenet5.py")

import numpy

import pytensor
import pytensor.tensor as pt

import pytensor_nnet
from checkpoints import check_outputs, config_fingerprint, dataset_name
from digit_image import read_digits
from early_stopping import report_result, train_early_stopping
from errors import CheckpointMismatchError, ConfigError
from logistic_sgd import LogisticRegression, load_data
from minibatches import count_minibatches, keep_data_on_device, minibatch
from mlp import HiddenLayer
from progress import ProgressLine
from pytensor_nnet import conv2d, pool_2d
from saved_model import (BestModelFile, add_model_options, check_network, check_show_dir,
                         load_model, model_path, report_predictions, set_parameters)
from supervisor import Supervisor
from utils import write_training_plots

__all__ = [
    "PAPER_PARAMETERS",
    "PAPER_SCHEDULE",
    "PAPER_TABLE",
    "SCHEDULES",
    "ConvolutionLayer",
    "LeNet5",
    "SubsamplingLayer",
    "build_model",
    "connection_table",
    "evaluate_lenet5",
    "learning_rate_factor",
    "main",
    "network_settings",
    "parameter_counts",
    "predict",
    "schedule_setter",
    "squash",
    "weight_bound",
]

#: C3 map -> the S2 maps it reads (table I of the paper).  Six maps read
#: three neighbouring S2 maps, six read four neighbours, three read four maps
#: that are not all neighbours, and the last reads all six: 60 connections.
PAPER_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)

#: Trainable parameters per layer as the paper counts them (its output RBF
#: units have fixed centres, so none there): 60,000 in all.
PAPER_PARAMETERS = {"C1": 156, "S2": 12, "C3": 1516, "S4": 32, "C5": 48120, "F6": 10164}

#: Names of the layers, in the order of :attr:`LeNet5.layers`.
LAYER_NAMES = ("C1", "S2", "C3", "S4", "C5", "F6", "output")

#: Default seed of the random connection table (independent of the weights').
TABLE_SEED = 1998

#: The paper's decreasing global learning rate, as ``(first pass, factor)``
#: pairs relative to the first rate: it used 0.0005 for passes 1-2, 0.0002
#: for 3-5, 0.0001 for 6-8, 0.00005 for 9-12 and 0.00001 from pass 13 on.
#: Here the factors multiply the SGD step (``--learning-rate``).
PAPER_SCHEDULE = ((1, 1.0), (3, 0.4), (6, 0.2), (9, 0.1), (13, 0.02))

#: The learning-rate schedules by name (``--lr-schedule``).
SCHEDULES = {"paper": PAPER_SCHEDULE, "constant": ((1, 1.0),)}

#: Passes over the training set, as in the paper.
N_EPOCHS = 20

#: SGD step of the first passes.  Measured over 20 passes with the paper
#: schedule: 0.2 beats 0.1, and 0.4 stalls at chance level in the first pass.
LEARNING_RATE = 0.2

#: Early-stopping patience, in epochs' worth of minibatches: the tutorials'
#: 10,000 minibatches at this script's default of 1,000 minibatches an epoch.
PATIENCE_EPOCHS = 10


# start-snippet-1
def squash(a):
    """The paper's squashing function, ``1.7159 * tanh(2a / 3)``.

    Its constants make ``squash(1) = 1`` and ``squash(-1) = -1`` (to four
    digits), so targets of +-1 sit where the curve bends most, and its
    slope at 0 is about 1.14.
    """
    return 1.7159 * pt.tanh(a * (2.0 / 3.0))


def connection_table(kind="paper", inputs_per_map=4, seed=TABLE_SEED, n_inputs=6,
                     n_outputs=16):
    """Which input maps each output map of C3 reads, as a 0/1 matrix.

    Parameters
    ----------
    kind : {'paper', 'random'}
        ``'paper'``: the paper's table I (:data:`PAPER_TABLE`, 16 x 6).
        ``'random'``: every output map reads ``inputs_per_map`` distinct
        input maps chosen at random, another way to break the symmetry
        between the maps.
    inputs_per_map : int
        Input maps per output map of the random table (1 to ``n_inputs``).
    seed : int
        Seed of the ``RandomState`` that draws the random table; it is not
        the one that draws the weights, so the table never shifts them.
    n_inputs, n_outputs : int
        Size of the random table (the paper table is 16 x 6).

    Returns
    -------
    numpy.ndarray
        ``(n_outputs, n_inputs)`` int8 array; ``table[j, i] = 1`` when output
        map ``j`` reads input map ``i``.
    """
    if kind == "paper":
        table = numpy.zeros((len(PAPER_TABLE), 6), dtype="int8")
        for j, inputs in enumerate(PAPER_TABLE):
            table[j, list(inputs)] = 1
        return table
    if kind != "random":
        raise ConfigError(f"the table is 'paper' or 'random', got {kind!r}")
    if not isinstance(inputs_per_map, (int, numpy.integer)) or not (
        1 <= inputs_per_map <= n_inputs
    ):
        raise ConfigError(
            f"inputs_per_map must be an integer from 1 to {n_inputs}, got {inputs_per_map!r}"
        )
    if not isinstance(seed, (int, numpy.integer)) or not 0 <= seed < 2**32:
        raise ConfigError(f"the table seed must be an integer from 0 to 2**32 - 1, "
                                   f"got {seed!r}")
    rng = numpy.random.RandomState(seed)
    table = numpy.zeros((n_outputs, n_inputs), dtype="int8")
    for j in range(n_outputs):
        table[j, rng.permutation(n_inputs)[:inputs_per_map]] = 1
    return table


def weight_bound(fan_in, init="lecun"):
    """Half-width of the uniform distribution the weights are drawn from.

    ``'lecun'`` (default): ``sqrt(3 / fan_in)``, a variance of
    ``1 / fan_in``, which keeps a unit's weighted sum at about the spread of
    its inputs (LeCun et al., "Efficient BackProp", 1998, the companion
    advice for this squashing function).  ``'paper'``: ``2.4 / fan_in``,
    the rule of the LeNet-5 paper; it starts the upper layers with very small
    sums, which its curvature-scaled steps made up for, but which slows down
    plain SGD.

    ``fan_in`` is the number of inputs of the unit the weight belongs to
    (for an S unit, the 4 values it adds).
    """
    fan_in = numpy.asarray(fan_in, dtype="float64")
    if init == "lecun":
        return numpy.sqrt(3.0 / fan_in)
    if init == "paper":
        return 2.4 / fan_in
    raise ConfigError(f"init is 'lecun' or 'paper', got {init!r}")
# end-snippet-1


# start-snippet-2
class ConvolutionLayer:
    """A C layer: ``squash(conv2d(input, W * table) + b)``.

    Parameters
    ----------
    rng : numpy.random.RandomState
        Draws the initial filters.
    input : pytensor.tensor.TensorVariable
        Symbolic 4-d minibatch of shape ``image_shape``.
    filter_shape : tuple of 4 ints
        ``(output maps, input maps, filter height, filter width)``.
    image_shape : tuple of 4 ints
        ``(batch size, input maps, image height, image width)``.
    table : array_like or None, optional
        ``(output maps, input maps)`` 0/1 connection table (see
        :func:`connection_table`); ``None`` connects every pair.
    init : {'lecun', 'paper'}
        Initialisation rule (:func:`weight_bound`).

    Attributes
    ----------
    W : shared variable
        The filters, shape ``filter_shape``; the filters of missing
        connections are zero and stay zero (see Notes).
    b : shared variable
        One bias per output map; starts at zero.
    mask : numpy.ndarray
        The table as a ``(output maps, input maps, 1, 1)`` floatX array.
    output : TensorVariable
        Shape ``(batch, output maps, h - fh + 1, w - fw + 1)``.
    params : list
        ``[W, b]``.
    n_params : int
        Trainable parameters: 25 per connection (for 5x5 filters) plus the
        biases; the zeros of missing connections are not counted.

    Notes
    -----
    The layer convolves with ``W * mask``. The mask is a constant, so the
    gradient of the cost with respect to a masked entry of ``W`` is exactly
    zero and SGD never moves it: a missing connection stays missing. A
    grouped convolution cannot express the paper's table (its groups
    overlap), and for C3 the mask costs one multiplication of 2,400 numbers
    per step.

    The filters are drawn as one ``uniform(-1, 1, filter_shape)`` array,
    then each output map's filters are scaled by ``weight_bound`` of that
    map's fan-in (connected input maps x filter area) and masked.
    """

    def __init__(self, rng, input, filter_shape, image_shape, table=None, init="lecun"):
        filter_shape, image_shape = tuple(filter_shape), tuple(image_shape)
        if len(filter_shape) != 4 or len(image_shape) != 4:
            raise ValueError(f"filter_shape and image_shape need 4 entries, got "
                             f"{filter_shape} and {image_shape}")
        if image_shape[1] != filter_shape[1]:
            raise ValueError(
                f"the input has {image_shape[1]} feature maps (image_shape[1]) but the "
                f"filters expect {filter_shape[1]} (filter_shape[1])"
            )
        n_out, n_in, fh, fw = filter_shape
        table = numpy.ones((n_out, n_in), dtype="int8") if table is None else numpy.asarray(table)
        if table.shape != (n_out, n_in) or not numpy.isin(table, (0, 1)).all():
            raise ValueError(f"the table must be a {(n_out, n_in)} array of 0 and 1")
        if not table.any(axis=1).all():
            raise ValueError("every output map needs at least one input map in the table")
        floatx = pytensor.config.floatX
        self.input = input
        self.table = table.astype("int8")
        self.mask = self.table.reshape(n_out, n_in, 1, 1).astype(floatx)

        fan_in = self.table.sum(axis=1) * fh * fw  # per output map
        bound = weight_bound(fan_in, init).reshape(n_out, 1, 1, 1)
        W_values = rng.uniform(-1.0, 1.0, size=filter_shape) * bound * self.mask
        self.W = pytensor.shared(numpy.asarray(W_values, dtype=floatx), borrow=True)
        self.b = pytensor.shared(numpy.zeros((n_out,), dtype=floatx), borrow=True)

        conv_out = conv2d(
            input=input,
            filters=self.W * pt.constant(self.mask),
            input_shape=image_shape,
            filter_shape=filter_shape,
        )
        self.output = squash(conv_out + self.b.dimshuffle("x", 0, "x", "x"))
        self.params = [self.W, self.b]
        self.n_params = int(self.table.sum()) * fh * fw + n_out


class SubsamplingLayer:
    """An S layer: ``squash(coef * sum_pool(input) + b)``, one coef per map.

    Each unit adds a ``poolsize`` block of one input map (blocks do not
    overlap), multiplies the sum by its map's trainable coefficient and adds
    its map's trainable bias: 2 parameters per map.

    Parameters
    ----------
    rng : numpy.random.RandomState
        Draws the initial coefficients.
    input : pytensor.tensor.TensorVariable
        Symbolic 4-d minibatch ``(batch, maps, height, width)``.
    n_maps : int
        Number of maps (as many in as out).
    poolsize : tuple of 2 ints, optional
        Block size; default ``(2, 2)``.
    init : {'lecun', 'paper'}
        Initialisation rule; the coefficients are drawn with fan-in
        ``poolsize[0] * poolsize[1]`` (:func:`weight_bound`).

    Attributes
    ----------
    coef, b : shared variables
        ``(n_maps,)`` coefficients and biases (the biases start at zero).
    output : TensorVariable
        Shape ``(batch, n_maps, height // ph, width // pw)``.
    params : list
        ``[coef, b]``.
    n_params : int
        ``2 * n_maps``.
    """

    def __init__(self, rng, input, n_maps, poolsize=(2, 2), init="lecun"):
        floatx = pytensor.config.floatX
        self.input = input
        bound = weight_bound(poolsize[0] * poolsize[1], init)
        self.coef = pytensor.shared(
            numpy.asarray(rng.uniform(-bound, bound, size=(n_maps,)), dtype=floatx),
            borrow=True,
        )
        self.b = pytensor.shared(numpy.zeros((n_maps,), dtype=floatx), borrow=True)
        summed = pool_2d(input, ws=tuple(poolsize), ignore_border=True, mode="sum")
        self.output = squash(
            summed * self.coef.dimshuffle("x", 0, "x", "x")
            + self.b.dimshuffle("x", 0, "x", "x")
        )
        self.params = [self.coef, self.b]
        self.n_params = 2 * n_maps
# end-snippet-2


class LeNet5:
    """The whole network, from a minibatch of flattened 28x28 digits.

    Parameters
    ----------
    rng : numpy.random.RandomState
        Draws every initial weight, in this order: C1 filters, S2
        coefficients, C3 filters, S4 coefficients, C5 filters, F6 weights.
        Biases and the output layer start at zero.
    input : pytensor.tensor.TensorVariable
        ``(batch_size, 784)`` matrix of pixel values in [0, 1], background 0.
    batch_size : int
        Rows of ``input`` (the convolutions are compiled for it).
    table : array_like, optional
        The 16 x 6 S2-to-C3 table; default the paper's.
    init : {'lecun', 'paper'}
        Initialisation rule (:func:`weight_bound`).

    Attributes
    ----------
    field : TensorVariable
        The ``(batch_size, 1, 32, 32)`` input of C1.
    C1, S2, C3, S4, C5, F6, output : layers
        ``F6`` is a :class:`mlp.HiddenLayer`, ``output`` a
        :class:`logistic_sgd.LogisticRegression`.
    layers : list
        The seven layers in order.
    params : list
        Their parameters, C1 first.
    param_names : list of str
        ``C1_W``, ``C1_b``, ``S2_coef`` ... (names in checkpoints).
    """

    def __init__(self, rng, input, batch_size, table=None, init="lecun"):
        table = connection_table("paper") if table is None else numpy.asarray(table)
        floatx = pytensor.config.floatX
        # start-snippet-3
        # The 28x28 digit is set in the middle of a 32x32 field of
        # background, then rescaled as in the paper: background -0.1, full
        # ink 1.175 (on MNIST's training set: mean 0.03, deviation 0.35).
        digits = input.reshape((batch_size, 1, 28, 28))
        blank = pt.zeros((batch_size, 1, 32, 32), dtype=floatx)
        field = pt.set_subtensor(blank[:, :, 2:30, 2:30], digits)
        self.field = field * 1.275 - 0.1

        # C1: 6 maps, 32 - 5 + 1 = 28: (batch, 6, 28, 28).
        self.C1 = ConvolutionLayer(rng, self.field, (6, 1, 5, 5), (batch_size, 1, 32, 32),
                                   init=init)
        # S2: (batch, 6, 14, 14).
        self.S2 = SubsamplingLayer(rng, self.C1.output, 6, init=init)
        # C3: 16 maps through the table, 14 - 5 + 1 = 10: (batch, 16, 10, 10).
        self.C3 = ConvolutionLayer(rng, self.S2.output, (16, 6, 5, 5),
                                   (batch_size, 6, 14, 14), table=table, init=init)
        # S4: (batch, 16, 5, 5).
        self.S4 = SubsamplingLayer(rng, self.C3.output, 16, init=init)
        # C5: a 5x5 convolution of 5x5 maps, one position: (batch, 120, 1, 1).
        self.C5 = ConvolutionLayer(rng, self.S4.output, (120, 16, 5, 5),
                                   (batch_size, 16, 5, 5), init=init)
        # F6: 84 squashing units on the 120 values of C5.
        bound = weight_bound(120, init)
        F6_W = pytensor.shared(
            numpy.asarray(rng.uniform(-bound, bound, (120, 84)), dtype=floatx), borrow=True)
        self.F6 = HiddenLayer(rng, self.C5.output.flatten(2), 120, 84, W=F6_W,
                              activation=squash)
        # Output: a softmax over the 10 classes (the paper: 10 RBF units).
        self.output = LogisticRegression(self.F6.output, n_in=84, n_out=10)
        # end-snippet-3

        self.layers = [self.C1, self.S2, self.C3, self.S4, self.C5, self.F6, self.output]
        self.params = [p for layer in self.layers for p in layer.params]
        self.param_names = [
            f"{name}_{kind}"
            for name, layer in zip(LAYER_NAMES, self.layers)
            for kind in (("coef", "b") if isinstance(layer, SubsamplingLayer) else ("W", "b"))
        ]
        self.negative_log_likelihood = self.output.negative_log_likelihood
        self.errors = self.output.errors


def parameter_counts(model):
    """Trainable parameters of each layer of a :class:`LeNet5`.

    Returns
    -------
    dict
        ``{'C1': 156, ..., 'output': 850}`` (insertion order: the layers').
        The zero filters of the C3 table's missing connections are not
        counted.
    """
    counts = {}
    for name, layer in zip(LAYER_NAMES, model.layers):
        counts[name] = getattr(layer, "n_params", None) or sum(
            int(p.get_value(borrow=True).size) for p in layer.params)
    return counts


def describe_parameters(model):
    """The lines printed before training: parameters per layer and in total."""
    counts = parameter_counts(model)
    lines = ["trainable parameters (the paper's in brackets):"]
    for name, count in counts.items():
        paper = PAPER_PARAMETERS.get(name)
        note = f"({paper:,})" if paper is not None else "(fixed RBF centres: 0)"
        lines.append(f"  {name:<7}{count:>8,}  {note}")
    paper_part = sum(counts[name] for name in PAPER_PARAMETERS)
    lines.append(
        f"  total  {sum(counts.values()):>8,}  ({sum(PAPER_PARAMETERS.values()):,}); "
        f"C1-F6 {paper_part:,} + softmax output {counts['output']:,}"
    )
    return lines


# start-snippet-5
def learning_rate_factor(epoch, schedule="paper"):
    """The factor of the first learning rate used in pass ``epoch`` (1-based).

    Parameters
    ----------
    epoch : int
        The pass over the training set, from 1.
    schedule : str
        A key of :data:`SCHEDULES`.

    Returns
    -------
    float
        The factor of the last ``(first pass, factor)`` step of the schedule
        that has begun by ``epoch``; the last one lasts for ever.
    """
    if schedule not in SCHEDULES:
        raise ConfigError(
            f"the learning-rate schedule is one of {sorted(SCHEDULES)}, got {schedule!r}")
    return [factor for first, factor in SCHEDULES[schedule] if first <= epoch][-1]


def schedule_setter(learning_rate, schedule, shared_rate, progress=None):
    """The ``on_epoch`` hook that sets the step of each pass.

    The rate is computed from the epoch number alone (never carried from
    pass to pass), so a run resumed from a checkpoint trains with exactly the
    rates of an uninterrupted one.  A line is printed when the rate changes.
    """
    dtype = shared_rate.get_value(borrow=True).dtype
    last = [None]

    def set_rate(epoch):
        rate = numpy.asarray(learning_rate * learning_rate_factor(epoch, schedule), dtype=dtype)
        shared_rate.set_value(rate)
        if rate != last[0]:
            if progress is not None:
                progress.clear()
            print(f"... learning rate {float(rate):g} from epoch {epoch}", flush=True)
            last[0] = rate

    return set_rate
# end-snippet-5


def build_model(datasets, learning_rate=LEARNING_RATE, batch_size=50, table="paper",
                inputs_per_map=4, table_seed=TABLE_SEED, init="lecun", max_batches=None,
                rng=None):
    """Build LeNet-5 and compile its train / validate / test functions.

    Parameters
    ----------
    datasets : list
        The three splits from :func:`load_data`.
    learning_rate : float
        The initial value of the step, a shared variable (``learning_rate``
        in the result) that a schedule changes between passes.
    batch_size, table, inputs_per_map, table_seed, init
        As for :func:`evaluate_lenet5`.
    max_batches : None, int or tuple, optional
        Use only this many minibatches (see :func:`minibatches.count_minibatches`).
    rng : numpy.random.RandomState, optional
        Draws the initial weights; default ``RandomState(23455)``.

    Returns
    -------
    types.SimpleNamespace
        ``network`` (the :class:`LeNet5`), ``layers``, ``params``,
        ``param_names``, ``table``, ``learning_rate`` (the shared step),
        ``train_model``, ``validate_model``, ``test_model`` and
        ``n_batches`` (train, valid, test).
    """
    rng = numpy.random.RandomState(23455) if rng is None else rng
    weight_bound(1, init)  # reject a bad init name before any work
    table = connection_table(table, inputs_per_map, table_seed)
    (train_set_x, train_set_y), (valid_set_x, valid_set_y), (test_set_x, test_set_y) = datasets
    n_batches = count_minibatches(datasets, batch_size, max_batches)
    n_train_batches, n_valid_batches, n_test_batches = n_batches

    index = pt.lscalar()  # index to a [mini]batch
    x = pt.matrix("x")  # the images, one flattened 28x28 image per row
    y = pt.ivector("y")  # the labels, one int per image

    print("... building the model")
    network = LeNet5(rng, x, batch_size, table=table, init=init)
    for line in describe_parameters(network):
        print(line)

    # start-snippet-4
    cost = network.negative_log_likelihood(y)
    params = network.params
    grads = pytensor.grad(cost, params)
    # Plain SGD; the masked C3 filters have zero gradients, so they stay zero.
    # The step is a shared variable so that a schedule can change it between
    # passes without recompiling.
    rate = pytensor.shared(numpy.asarray(learning_rate, dtype=pytensor.config.floatX),
                           name="learning_rate")
    updates = [(p, p - rate * g) for p, g in zip(params, grads)]

    # One thread pool, the float32 tanh and product rewrites, Numba's exact
    # float math, graphs run node by node, glibc's allocator setting (see
    # pytensor_nnet.tuning)
    pytensor_nnet.tune_for_speed()

    # Each compiled function takes a minibatch number; ``givens`` feeds the
    # graph's x and y with that minibatch of the shared data set.
    test_model = pytensor.function(
        [index],
        network.errors(y),
        givens={
            x: minibatch(test_set_x, index, batch_size, n_test_batches),
            y: minibatch(test_set_y, index, batch_size, n_test_batches),
        },
    )
    validate_model = pytensor.function(
        [index],
        network.errors(y),
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
    # end-snippet-4
    keep_data_on_device(datasets, train_model)  # under JAX only
    return types.SimpleNamespace(
        network=network,
        layers=network.layers,
        params=params,
        param_names=network.param_names,
        table=table,
        learning_rate=rate,
        train_model=train_model,
        validate_model=validate_model,
        test_model=test_model,
        n_batches=n_batches,
    )


def evaluate_lenet5(
    learning_rate=LEARNING_RATE,
    n_epochs=N_EPOCHS,
    dataset="mnist.pkl.gz",
    batch_size=50,
    table="paper",
    inputs_per_map=4,
    table_seed=TABLE_SEED,
    init="lecun",
    lr_schedule="paper",
    *,
    patience=None,
    checkpoint=None,
    resume=False,
    plots_dir=None,
    max_batches=None,
    model_file=None,
):
    """Train LeNet-5 on MNIST with SGD, a decreasing step and early stopping.

    Parameters
    ----------
    learning_rate : float
        SGD step size of the first pass.
    n_epochs : int
        Maximum number of passes over the training set (the paper's 20).
    dataset : str
        The MNIST data (see :func:`mnist_io.load_data`).
    batch_size : int
        Examples per minibatch.
    table : {'paper', 'random'}
        The S2-to-C3 connection table (:func:`connection_table`).
    inputs_per_map : int
        S2 maps per C3 map of the random table.
    table_seed : int
        Seed of the random table.
    init : {'lecun', 'paper'}
        Weight initialisation (:func:`weight_bound`).
    lr_schedule : {'paper', 'constant'}
        ``'paper'``: the step of pass ``e`` is ``learning_rate`` times
        :func:`learning_rate_factor` (the paper's ratios, down to 1/50 from
        pass 13 on); ``'constant'``: always ``learning_rate``.
    patience : int, optional, keyword-only
        Early-stopping patience in minibatches; default
        :data:`PATIENCE_EPOCHS` epochs' worth (10,000 at batch 50).
    checkpoint, resume, plots_dir, max_batches, model_file : keyword-only
        As for :func:`convolutional_mlp.evaluate_lenet5`; :func:`predict`
        reads the ``model_file``.

    Returns
    -------
    early_stopping.TrainingResult
    """
    rng = numpy.random.RandomState(23455)
    learning_rate_factor(1, lr_schedule)  # reject a bad schedule name before any work

    settings = dict(learning_rate=learning_rate,
                    lr_schedule=[lr_schedule, SCHEDULES[lr_schedule]],
                    batch_size=batch_size, init=init, dataset=dataset_name(dataset))
    check_outputs(checkpoint, resume, config_fingerprint("lenet5", **settings), plots_dir,
                  model=model_file)

    datasets = load_data(dataset)
    model = build_model(datasets, learning_rate, batch_size, table, inputs_per_map,
                        table_seed, init, max_batches, rng)
    n_train_batches = model.n_batches[0]
    if patience is None:
        # in epochs, so that the batch size does not change how long it waits
        patience = PATIENCE_EPOCHS * n_train_batches
    progress = ProgressLine.for_terminal()
    best_model = BestModelFile(model_file, "lenet5", model.params, model.param_names,
                               network_settings(model.table), settings)

    print("... training")
    result = train_early_stopping(
        model.train_model,
        model.validate_model,
        model.test_model,
        model.params,
        model.n_batches,
        n_epochs,
        patience=patience,
        report_every=100,
        supervisor=Supervisor(
            checkpoint,
            resume,
            fingerprint=config_fingerprint(
                "lenet5",
                model.params,
                patience=patience,
                table=model.table.tolist(),
                n_batches=model.n_batches,
                **settings,
            ),
            param_names=model.param_names,
            progress=progress,
            on_epoch=schedule_setter(learning_rate, lr_schedule, model.learning_rate,
                                     progress),
            on_new_best=best_model.on_new_best,
        ),
    )

    report_result(result, __file__)
    best_model.finish(result)
    # C1's filters are the first parameter.
    first_layer_filters = (result.best_params or result.params)[0]
    write_training_plots(plots_dir, "lenet5", result.history, first_layer_filters)
    return result


def network_settings(table):
    """What a saved model records to rebuild the network: the input and
    field sizes :class:`LeNet5` fixes, and the S2-to-C3 connection table."""
    return {"image_shape": [28, 28], "field": [32, 32],
            "table": numpy.asarray(table).tolist()}


def predict(images, model_file="lenet5_model.npz", show_dir=None):
    """Classify pictures of handwritten digits with a saved LeNet-5.

    As :func:`convolutional_mlp.predict`: each picture is prepared as
    MNIST's digits were (28x28; :class:`LeNet5` sets it in its 32x32 field
    and rescales it, as in training), the network is built again with the
    model's connection table for a minibatch of all the pictures, and one
    compiled function returns the probabilities, the field and the maps of
    C1 and C3.

    Returns
    -------
    numpy.ndarray
        The predicted digits, one per picture.
    """
    check_show_dir(show_dir)
    meta, arrays = load_model(model_file, "lenet5")
    table = numpy.asarray(meta["network"].get("table"))
    if table.shape != (16, 6) or not numpy.isin(table, (0, 1)).all() or not table.any(1).all():
        raise CheckpointMismatchError(
            f"{model_file} records no valid 16 x 6 connection table for C3")
    check_network(model_file, meta["network"], network_settings(table))
    digits = read_digits(images).astype(pytensor.config.floatX)

    x = pt.matrix("x")
    network = LeNet5(numpy.random.RandomState(0), x, len(images), table=table)
    set_parameters(model_file, network.params, network.param_names, arrays)
    predict_model = pytensor.function(
        [x], [network.output.p_y_given_x, network.field, network.C1.output, network.C3.output])
    return report_predictions(images, predict_model(digits), show_dir, "lenet5",
                              input_range=(-0.1, 1.175), map_range=(-1.7159, 1.7159),
                              map_names=("C1", "C3"))


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = command_line.tutorial_parser(
        "lenet5",
        "Train LeCun et al.'s 1998 LeNet-5 (C1-S2-C3-S4-C5-F6, the S2-to-C3 "
        "connection table, trainable subsampling) on MNIST with minibatch SGD for "
        "the paper's 20 passes, with its decreasing learning rate and the tutorials' "
        "early stopping.",
        learning_rate=LEARNING_RATE,
        n_epochs=N_EPOCHS,
        batch_size=50,
    )
    ratios = ", ".join(
        f"{factor:g} from pass {first}" for first, factor in PAPER_SCHEDULE)
    parser.add_argument(
        "--lr-schedule", choices=sorted(SCHEDULES), default="paper",
        help="how the SGD step changes from pass to pass: 'paper' multiplies "
        f"--learning-rate by the ratios of the paper's global rates ({ratios}); "
        "'constant' keeps --learning-rate throughout (default: %(default)s)")
    parser.add_argument(
        "--table", choices=("paper", "random"), default="paper",
        help="S2-to-C3 connections: the paper's table I (60 connections) or a random "
        "table with --inputs-per-map S2 maps per C3 map (default: %(default)s)")
    parser.add_argument(
        "--inputs-per-map", type=command_line.positive_int, default=None, metavar="K",
        help="S2 maps read by each C3 map of the random table, 1 to 6 (default: 4)")
    parser.add_argument(
        "--table-seed", type=int, default=None, metavar="SEED",
        help=f"seed of the random table (default: {TABLE_SEED})")
    parser.add_argument(
        "--init", choices=("lecun", "paper"), default="lecun",
        help="weights uniform in +-sqrt(3/fan_in) ('lecun') or the paper's +-2.4/fan_in "
        "(default: %(default)s)")
    add_model_options(parser, "lenet5")
    args = command_line.parse_tutorial_args(parser, "lenet5", argv)
    model_file = model_path(parser, args, "lenet5")
    if args.table == "paper" and (args.inputs_per_map is not None
                                  or args.table_seed is not None):
        parser.error("--inputs-per-map and --table-seed go with --table random")
    inputs_per_map = 4 if args.inputs_per_map is None else args.inputs_per_map
    if inputs_per_map > 6:
        parser.error(f"--inputs-per-map must be 1 to 6 (S2 has 6 maps), got {inputs_per_map}")

    if args.predict is not None:
        def run():
            predict(args.predict, model_file, args.show)
    else:
        options = command_line.output_options(args, "lenet5")

        def run():
            evaluate_lenet5(
                learning_rate=args.learning_rate,
                dataset=args.dataset,
                batch_size=args.batch_size,
                table=args.table,
                inputs_per_map=inputs_per_map,
                table_seed=TABLE_SEED if args.table_seed is None else args.table_seed,
                init=args.init,
                lr_schedule=args.lr_schedule,
                model_file=model_file,
                **options,
            )

    return command_line.run_main(run, argv, parser.prog)


if __name__ == "__main__":
    sys.exit(main())
