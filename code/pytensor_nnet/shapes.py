"""Argument checking and output-shape arithmetic shared by the conv and pool Ops.

Everything here is plain Python on ints, so the same formulas serve graph
construction (static shapes), ``infer_shape`` (symbolic shapes) and the
kernels' own checks.
"""
import numpy as np
import pytensor.tensor as pt


def int_pair(value, name, minimum):
    """Return ``value`` as a tuple of two ints ``>= minimum``.

    A single int ``n`` means ``(n, n)``.
    """
    if isinstance(value, (int,)) and not isinstance(value, bool):
        value = (value, value)
    try:
        pair = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if len(pair) != 2 or any(p != v for p, v in zip(pair, value)):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum} on both axes, got {pair}")
    return pair


def normalize_border_mode(border_mode):
    """Return 'valid', 'full', 'half' or an explicit (pad_rows, pad_cols) pair."""
    if isinstance(border_mode, str):
        if border_mode not in ("valid", "full", "half"):
            raise ValueError(
                "border_mode must be 'valid', 'full', 'half', an int or a pair of "
                f"ints, got {border_mode!r}"
            )
        return border_mode
    return int_pair(border_mode, "border_mode", 0)


def dilated_size(k, dilation):
    """Extent covered by a kernel of size ``k`` with holes of ``dilation - 1``."""
    return (k - 1) * dilation + 1


def conv_padding(border_mode, kernel_size, dilation):
    """Zero padding per axis (rows, cols) that ``border_mode`` asks for."""
    if isinstance(border_mode, tuple):
        return border_mode
    pads = []
    for k, d in zip(kernel_size, dilation):
        dk = dilated_size(k, d)
        pads.append({"valid": 0, "full": dk - 1, "half": dk // 2}[border_mode])
    return tuple(pads)


def conv_output_length(size, kernel, pad, stride, dilation):
    """Theano's conv output length: ``(size + 2*pad - dk) // stride + 1``.

    Works on ints and on symbolic scalars alike; ``None`` (unknown) propagates.
    """
    if size is None or kernel is None:
        return None
    return (size + 2 * pad - dilated_size(kernel, dilation)) // stride + 1


def pool_output_length(size, ws, stride, pad, ignore_border):
    """Theano's pool output length on one axis.

    ``size`` may be an int or a symbolic scalar; ``None`` (unknown) propagates.
    With ``ignore_border=False`` a partial window at the far border still
    produces an output.
    """
    if size is None:
        return None
    symbolic = not isinstance(size, (int, np.integer))
    maximum = pt.maximum if symbolic else max
    v = size + 2 * pad
    if ignore_border:
        return maximum(0, (v - ws) // stride + 1)
    if stride >= ws:
        return (v + stride - 1) // stride
    return maximum(0, (v - 1 - ws + stride) // stride) + 1
