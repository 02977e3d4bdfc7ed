"""The data as the compiled functions see it: minibatches picked by index.

The data sets live in shared variables (:func:`mnist_io.load_data`); a
compiled function takes a minibatch number and :func:`minibatch` picks the
rows through ``givens``, so no data is copied between Python and the graph.
"""
import numpy

from errors import ConfigError

__all__ = ["count_minibatches", "keep_data_on_device", "minibatch", "parse_max_batches"]


def minibatch(data, index, batch_size, n_batches):
    """Select minibatch ``index`` of ``data`` symbolically.

    Returns the same rows as the original tutorial's
    ``data[index * batch_size:(index + 1) * batch_size]`` for every valid
    ``index``, but is written as "reshape the first ``n_batches *
    batch_size`` rows into ``(n_batches, batch_size, ...)`` and take row
    ``index``".

    Why: the slice form has bounds that depend on the symbolic ``index``.
    PyTensor's JAX backend traces ``index``, and JAX cannot build a slice
    whose size is only known at run time, so the original graph fails to
    compile there.  Indexing one axis of a fixed-shape array is a
    ``dynamic_slice`` in JAX, while on the C and Numba backends the reshape
    and the indexing are views, so no data is copied.  The constant shape of
    the reshape also gives the minibatch a static length, which JAX needs
    for ``arange(y.shape[0])`` in the negative log-likelihood.  (A
    consequence: ``n_batches`` is a constant of the compiled graph.)

    Parameters
    ----------
    data : pytensor.tensor.TensorVariable
        A shared data set (or an expression of one, such as the int32 cast of
        the labels), with examples along axis 0.
    index : pytensor.tensor.TensorVariable
        Integer scalar, the minibatch number.
    batch_size : int
        Examples per minibatch.
    n_batches : int
        How many whole minibatches of ``data`` are used; rows past
        ``n_batches * batch_size`` are never seen, as in the original.

    Returns
    -------
    pytensor.tensor.TensorVariable
        ``batch_size`` rows of ``data``.
    """
    used = data[: n_batches * batch_size]
    if data.ndim == 1:
        shape = (n_batches, batch_size)
    elif data.ndim == 2:
        shape = (n_batches, batch_size, -1)
    else:
        shape = (n_batches, batch_size) + tuple(data.shape[i] for i in range(1, data.ndim))
    return used.reshape(shape)[index]


def parse_max_batches(value):
    """Normalise a minibatch limit to ``(train, valid, test)``.

    Parameters
    ----------
    value : None, int, str or sequence
        ``None`` (no limit), one int for all three sets, three ints (or
        ``None`` entries), or a string ``"N"`` / ``"N,V,T"``.

    Returns
    -------
    tuple
        Three ints or ``None``.

    Raises
    ------
    ConfigError
        If a limit is not a positive integer.
    """
    if value is None:
        return (None, None, None)
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        try:
            value = [int(p) if p else None for p in parts]
        except ValueError:
            raise ConfigError(
                f"max batches must be N or N,V,T with positive integers, got {value!r}"
            ) from None
    if isinstance(value, (int, numpy.integer)):
        value = [int(value)] * 3
    value = list(value)
    if len(value) == 1:
        value = value * 3
    if len(value) != 3:
        raise ConfigError(f"max batches takes 1 or 3 values, got {len(value)}")
    for v in value:
        if v is not None and (not isinstance(v, (int, numpy.integer)) or v < 1):
            raise ConfigError(f"max batches must be positive integers, got {v!r}")
    return tuple(None if v is None else int(v) for v in value)


def count_minibatches(datasets, batch_size, max_batches=None):
    """Count the whole minibatches in each split, as the original did.

    Parameters
    ----------
    datasets : list
        ``[(train_x, train_y), (valid_x, valid_y), (test_x, test_y)]``.
    batch_size : int
        Examples per minibatch.
    max_batches : None, int or tuple, optional
        Use at most this many minibatches of each split (see
        :func:`parse_max_batches`); a way to run on a subset (tests,
        ``--dry-run``).

    Returns
    -------
    tuple of int
        ``(n_train_batches, n_valid_batches, n_test_batches)``.

    Raises
    ------
    ConfigError
        If ``batch_size`` is not positive or a split has no whole minibatch.
    """
    if not isinstance(batch_size, (int, numpy.integer)) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    counts = []
    for name, (data_x, _), limit in zip(
        ("training", "validation", "test"), datasets, parse_max_batches(max_batches)
    ):
        n_rows = data_x.get_value(borrow=True).shape[0]
        n = n_rows // batch_size
        if n < 1:
            raise ConfigError(
                f"batch_size {batch_size} is larger than the {name} set ({n_rows} examples)"
            )
        counts.append(n if limit is None else min(n, limit))
    return tuple(counts)


def uses_jax(function):
    """Whether a compiled PyTensor function runs through the JAX backend."""
    from pytensor.link.jax.linker import JAXLinker

    return isinstance(function.maker.linker, JAXLinker)


def keep_data_on_device(datasets, function):
    """Hold the data sets' shared values as JAX device arrays, if ``function``
    runs through JAX.

    Why: PyTensor's JAX backend passes each shared variable's stored value to
    the jitted function on every call. A numpy array is copied host-to-device
    every time (the whole training set per minibatch: 157 MB in float32);
    a device array is used in place. The storage is set directly because
    ``set_value`` would turn the array back into numpy.
    """
    if not uses_jax(function):
        return
    import jax

    for data_x, data_y in datasets:
        # the labels are int32 casts of a floatX shared variable
        for shared in (data_x, data_y.owner.inputs[0] if data_y.owner else data_y):
            storage = shared.container.storage
            storage[0] = jax.device_put(storage[0])
