"""Brute-force numpy references for conv2d and pool_2d, written for clarity.

Each output cell is computed straight from its definition with Python loops,
independently of the im2col kernels under test. Only for small arrays.
:func:`lenet_reference` is the tutorial's LeNet in whole-array numpy.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def conv2d_reference(x, w, pad=(0, 0), stride=(1, 1), dilation=(1, 1), flip=True, groups=1):
    """Theano conv2d by definition: explicit ``pad`` per side (rows, cols)."""
    if flip:
        w = w[:, :, ::-1, ::-1]
    n_img, channels, height, width = x.shape
    n_filt, cg, kh, kw = w.shape
    xp = np.zeros((n_img, channels, height + 2 * pad[0], width + 2 * pad[1]), x.dtype)
    xp[:, :, pad[0]:pad[0] + height, pad[1]:pad[1] + width] = x
    dkh, dkw = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    oh = (xp.shape[2] - dkh) // stride[0] + 1
    ow = (xp.shape[3] - dkw) // stride[1] + 1
    og = n_filt // groups
    out = np.zeros((n_img, n_filt, oh, ow), np.float64)
    for n in range(n_img):
        for o in range(n_filt):
            g = o // og
            for i in range(oh):
                for j in range(ow):
                    r0, c0 = i * stride[0], j * stride[1]
                    patch = xp[n, g * cg:(g + 1) * cg,
                               r0:r0 + dkh:dilation[0], c0:c0 + dkw:dilation[1]]
                    out[n, o, i, j] = np.sum(patch * w[o])
    return out.astype(x.dtype)


def padding_for(border_mode, kernel_shape, dilation):
    """Explicit padding for a Theano border_mode."""
    if isinstance(border_mode, tuple):
        return border_mode
    dk = [(k - 1) * d + 1 for k, d in zip(kernel_shape, dilation)]
    return {"valid": (0, 0), "full": (dk[0] - 1, dk[1] - 1), "half": (dk[0] // 2, dk[1] // 2)}[border_mode]


def pool_windows(size, ws, stride, pad, ignore_border, mode):
    """Theano's window list on one axis, in unpadded coordinates, and divisors."""
    v = size + 2 * pad
    if ignore_border:
        n = (v - ws) // stride + 1
    elif stride >= ws:
        n = -(-v // stride)
    else:
        n = max(0, (v - 1 - ws + stride) // stride) + 1
    windows = []
    for k in range(n):
        start, end = k * stride, min(k * stride + ws, v)
        real = (max(start, pad) - pad, min(end, v - pad) - pad)
        count = end - start if mode == "average_inc_pad" else real[1] - real[0]
        windows.append((real, count))
    return windows


def pool_reference(x, ws, stride, pad, ignore_border, mode):
    """pool_2d over the last two axes, one window at a time."""
    rows = pool_windows(x.shape[-2], ws[0], stride[0], pad[0], ignore_border, mode)
    cols = pool_windows(x.shape[-1], ws[1], stride[1], pad[1], ignore_border, mode)
    out = np.zeros(x.shape[:-2] + (len(rows), len(cols)), x.dtype)
    for i, ((r0, r1), rc) in enumerate(rows):
        for j, ((c0, c1), cc) in enumerate(cols):
            window = x[..., r0:r1, c0:c1]
            if mode == "max":
                out[..., i, j] = window.max(axis=(-2, -1))
            elif mode == "sum":
                out[..., i, j] = window.sum(axis=(-2, -1))
            else:
                out[..., i, j] = window.sum(axis=(-2, -1)) / (rc * cc)
    return out


def lenet_reference(arrays, digits):
    """The class probabilities of the saved LeNet, by its definition, in numpy
    (float64, whole arrays at once: conv2d flips its filters, 2x2 max-pooling)."""
    h = digits.reshape(-1, 1, 28, 28).astype(np.float64)
    for k in (0, 1):
        W = arrays[f"layer{k}_W"].astype(np.float64)[:, :, ::-1, ::-1]
        windows = sliding_window_view(h, W.shape[2:], axis=(2, 3))
        conv = np.einsum("ncijab,kcab->nkij", windows, W)
        n, maps, rows, cols = conv.shape
        pooled = conv.reshape(n, maps, rows // 2, 2, cols // 2, 2).max(axis=(3, 5))
        h = np.tanh(pooled + arrays[f"layer{k}_b"][None, :, None, None])
    h = np.tanh(h.reshape(len(h), -1) @ arrays["layer2_W"] + arrays["layer2_b"])
    scores = h @ arrays["layer3_W"] + arrays["layer3_b"]
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
