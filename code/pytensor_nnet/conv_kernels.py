"""Numba kernels for 2-D convolution on NCHW arrays: im2col + one GEMM per image.

The three Ops (forward, gradient w.r.t. the input, gradient w.r.t. the
filters) all reduce to the same two moves:

* ``im2col`` unrolls every receptive field of one image into a column, so a
  correlation with all filters becomes one matrix product
  ``(filters, K) @ (K, positions)`` that lands directly in NCHW order;
* ``col2im`` is its transpose: it adds columns back onto the image.

The kernels work on the *correlation* form of the filters; flipping for a
true convolution (Theano's ``filter_flip=True``) happens in the wrappers at
the bottom. The same compiled functions back ``Op.perform`` (C/CVM and Python
modes) and the Numba backend, so every mode computes the same numbers.
"""
import numpy as np
from numba import njit

# border modes as small ints, so the kernels can resolve padding from the
# run-time filter size inside nopython code
BORDER_EXPLICIT, BORDER_VALID, BORDER_FULL, BORDER_HALF = 0, 1, 2, 3


@njit(cache=True)
def resolve_pad(border, pad, k, dilation):
    """Padding on one axis for a border code (see ``BORDER_*``)."""
    dk = (k - 1) * dilation + 1
    if border == BORDER_VALID:
        return 0
    if border == BORDER_FULL:
        return dk - 1
    if border == BORDER_HALF:
        return dk // 2
    return pad


@njit(cache=True)
def out_length(size, k, pad, stride, dilation):
    return (size + 2 * pad - ((k - 1) * dilation + 1)) // stride + 1


@njit(cache=True)
def valid_range(offset, stride, size, n_out):
    """Output indices j with 0 <= j*stride + offset < size, as [lo, hi)."""
    lo = max(0, -(offset // stride))
    hi = min(n_out, (size - 1 - offset) // stride + 1)
    return lo, max(lo, hi)


@njit(cache=True)
def im2col(img, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow, col):
    """Fill ``col[(c, a, b), (i, j)] = padded img[c, i*sh + a*dh, j*sw + b*dw]``."""
    channels, height, width = img.shape
    for c in range(channels):
        for a in range(kh):
            for b in range(kw):
                row = col[(c * kh + a) * kw + b]
                col_off = b * dw - pw
                j_lo, j_hi = valid_range(col_off, sw, width, ow)
                for i in range(oh):
                    r = i * sh + a * dh - ph
                    base = i * ow
                    if r < 0 or r >= height:
                        row[base:base + ow] = 0
                        continue
                    src = img[c, r]
                    row[base:base + j_lo] = 0
                    for j in range(j_lo, j_hi):
                        row[base + j] = src[j * sw + col_off]
                    row[base + j_hi:base + ow] = 0


@njit(cache=True)
def col2im(col, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow, img):
    """Add ``col`` back onto ``img``: the transpose of :func:`im2col`."""
    channels, height, width = img.shape
    for c in range(channels):
        for a in range(kh):
            for b in range(kw):
                row = col[(c * kh + a) * kw + b]
                col_off = b * dw - pw
                j_lo, j_hi = valid_range(col_off, sw, width, ow)
                for i in range(oh):
                    r = i * sh + a * dh - ph
                    if r < 0 or r >= height:
                        continue
                    dst = img[c, r]
                    base = i * ow
                    for j in range(j_lo, j_hi):
                        dst[j * sw + col_off] += row[base + j]


@njit(cache=True)
def check_groups(in_channels, filter_channels, n_filters, groups):
    if in_channels != filter_channels * groups:
        raise ValueError(
            "conv2d: the input's channel count must equal the filters' "
            "in-channels (filters.shape[1]) times num_groups"
        )
    if n_filters % groups != 0:
        raise ValueError("conv2d: the number of filters must be divisible by num_groups")


@njit(cache=True)
def check_output(oh, ow):
    if oh <= 0 or ow <= 0:
        raise ValueError(
            "conv2d: the (padded) input is smaller than the (dilated) filter, "
            "the output would be empty"
        )


@njit(cache=True)
def corr_forward(x, w, border, ph, pw, sh, sw, dh, dw, groups):
    """Cross-correlation of ``x`` (N, C, H, W) with ``w`` (O, C/groups, kh, kw)."""
    n_img, channels, height, width = x.shape
    n_filt, cg, kh, kw = w.shape
    check_groups(channels, cg, n_filt, groups)
    ph = resolve_pad(border, ph, kh, dh)
    pw = resolve_pad(border, pw, kw, dw)
    oh = out_length(height, kh, ph, sh, dh)
    ow = out_length(width, kw, pw, sw, dw)
    check_output(oh, ow)
    og = n_filt // groups
    k = cg * kh * kw
    wmat = np.ascontiguousarray(w).reshape((n_filt, k))
    out = np.empty((n_img, n_filt, oh, ow), dtype=x.dtype)
    col = np.empty((k, oh * ow), dtype=x.dtype)
    for n in range(n_img):
        for g in range(groups):
            im2col(x[n, g * cg:(g + 1) * cg], kh, kw, ph, pw, sh, sw, dh, dw, oh, ow, col)
            res = out[n, g * og:(g + 1) * og].reshape((og, oh * ow))
            np.dot(wmat[g * og:(g + 1) * og], col, res)
    return out


@njit(cache=True)
def corr_grad_weights(x, gout, kh, kw, border, ph, pw, sh, sw, dh, dw, groups):
    """d(sum(corr(x, w) * gout)) / dw, for filters of size (kh, kw)."""
    n_img, channels, height, width = x.shape
    n_filt, oh, ow = gout.shape[1], gout.shape[2], gout.shape[3]
    cg = channels // groups
    check_groups(channels, cg, n_filt, groups)
    ph = resolve_pad(border, ph, kh, dh)
    pw = resolve_pad(border, pw, kw, dw)
    if oh != out_length(height, kh, ph, sh, dh) or ow != out_length(width, kw, pw, sw, dw):
        raise ValueError("conv2d gradient: output gradient has the wrong spatial shape")
    og = n_filt // groups
    k = cg * kh * kw
    gw = np.zeros((n_filt, k), dtype=x.dtype)
    col = np.empty((k, oh * ow), dtype=x.dtype)
    gout = np.ascontiguousarray(gout)
    for n in range(n_img):
        for g in range(groups):
            im2col(x[n, g * cg:(g + 1) * cg], kh, kw, ph, pw, sh, sw, dh, dw, oh, ow, col)
            gmat = gout[n, g * og:(g + 1) * og].reshape((og, oh * ow))
            gw[g * og:(g + 1) * og] += np.dot(gmat, col.T)
    return gw.reshape((n_filt, cg, kh, kw))


@njit(cache=True)
def corr_grad_inputs(w, gout, height, width, border, ph, pw, sh, sw, dh, dw, groups):
    """d(sum(corr(x, w) * gout)) / dx, for an input of size (height, width)."""
    n_img, n_filt, oh, ow = gout.shape
    cg, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    channels = cg * groups
    check_groups(channels, cg, n_filt, groups)
    ph = resolve_pad(border, ph, kh, dh)
    pw = resolve_pad(border, pw, kw, dw)
    if oh != out_length(height, kh, ph, sh, dh) or ow != out_length(width, kw, pw, sw, dw):
        raise ValueError("conv2d gradient: output gradient has the wrong spatial shape")
    og = n_filt // groups
    k = cg * kh * kw
    wmat_t = np.ascontiguousarray(w).reshape((n_filt, k)).T
    gout = np.ascontiguousarray(gout)
    gx = np.zeros((n_img, channels, height, width), dtype=gout.dtype)
    col = np.empty((k, oh * ow), dtype=gout.dtype)
    for n in range(n_img):
        for g in range(groups):
            gmat = gout[n, g * og:(g + 1) * og].reshape((og, oh * ow))
            np.dot(wmat_t[:, g * og:(g + 1) * og], gmat, col)
            col2im(col, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow, gx[n, g * cg:(g + 1) * cg])
    return gx


@njit(cache=True)
def flipped(w):
    return np.ascontiguousarray(w[:, :, ::-1, ::-1])


@njit(cache=True)
def conv_forward(x, w, flip, border, ph, pw, sh, sw, dh, dw, groups):
    """Theano ``conv2d``: a true convolution when ``flip``, else correlation."""
    wc = flipped(w) if flip else np.ascontiguousarray(w)
    return corr_forward(np.ascontiguousarray(x), wc, border, ph, pw, sh, sw, dh, dw, groups)


@njit(cache=True)
def conv_grad_weights(x, gout, kh, kw, flip, border, ph, pw, sh, sw, dh, dw, groups):
    gw = corr_grad_weights(np.ascontiguousarray(x), gout, kh, kw, border, ph, pw, sh, sw, dh, dw, groups)
    return flipped(gw) if flip else gw


@njit(cache=True)
def conv_grad_inputs(w, gout, height, width, flip, border, ph, pw, sh, sw, dh, dw, groups):
    wc = flipped(w) if flip else np.ascontiguousarray(w)
    return corr_grad_inputs(wc, gout, height, width, border, ph, pw, sh, sw, dh, dw, groups)
