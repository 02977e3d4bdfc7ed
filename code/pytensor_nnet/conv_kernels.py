"""Numba kernels for 2-D convolution on NCHW arrays: im2row + one GEMM per block.

The three Ops (forward, gradient w.r.t. the input, gradient w.r.t. the
filters) all reduce to the same two moves:

* ``im2row`` unrolls every receptive field of an image into a row, so a
  correlation with all filters becomes one matrix product
  ``(filters, K) @ (K, positions)``; a block of images is unrolled side by
  side so that the product is large enough for BLAS to run near its peak;
* ``row2im`` is its transpose: it adds rows back onto the image.

The kernels work on the *correlation* form of the filters; flipping for a
true convolution (Theano's ``filter_flip=True``) happens in the wrappers at
the bottom. The same compiled functions back ``Op.perform`` (C/CVM and Python
modes) and the Numba backend, so every mode computes the same numbers.
"""
import numpy as np
from numba import prange

from .jit import kernel

# border modes as small ints, so the kernels can resolve padding from the
# run-time filter size inside nopython code
BORDER_EXPLICIT, BORDER_VALID, BORDER_FULL, BORDER_HALF = 0, 1, 2, 3


@kernel
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


@kernel
def out_length(size, k, pad, stride, dilation):
    return (size + 2 * pad - ((k - 1) * dilation + 1)) // stride + 1


@kernel
def im2row(img, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow, rows, r0):
    """Unroll receptive fields into rows:
    ``rows[r0 + i*ow + j, (c, a, b)] = padded img[c, i*sh + a*dh, j*sw + b*dw]``.
    """
    channels, height, width = img.shape
    for i in range(oh):
        for j in range(ow):
            row = rows[r0 + i * ow + j]
            c0 = j * sw - pw
            # most patches lie wholly inside the image: copy them unchecked
            inside = c0 >= 0 and c0 + (kw - 1) * dw < width
            for c in range(channels):
                for a in range(kh):
                    r = i * sh + a * dh - ph
                    base = (c * kh + a) * kw
                    if r < 0 or r >= height:
                        row[base:base + kw] = 0
                        continue
                    src = img[c, r]
                    if inside and dw == 1:
                        # unit dilation: a contiguous run, which LLVM vectorises
                        for b in range(kw):
                            row[base + b] = src[c0 + b]
                    elif inside:
                        for b in range(kw):
                            row[base + b] = src[c0 + b * dw]
                    else:
                        for b in range(kw):
                            cc = c0 + b * dw
                            row[base + b] = src[cc] if 0 <= cc < width else 0


@kernel
def row2im(rows, r0, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow, img):
    """Add rows ``r0 + (i, j)`` back onto ``img``: the transpose of :func:`im2row`."""
    channels, height, width = img.shape
    for i in range(oh):
        for j in range(ow):
            row = rows[r0 + i * ow + j]
            c0 = j * sw - pw
            inside = c0 >= 0 and c0 + (kw - 1) * dw < width
            for c in range(channels):
                for a in range(kh):
                    r = i * sh + a * dh - ph
                    if r < 0 or r >= height:
                        continue
                    dst = img[c, r]
                    base = (c * kh + a) * kw
                    if inside and dw == 1:
                        for b in range(kw):
                            dst[c0 + b] += row[base + b]
                        continue
                    for b in range(kw):
                        cc = c0 + b * dw
                        if 0 <= cc < width:
                            dst[cc] += row[base + b]


@kernel
def check_groups(in_channels, filter_channels, n_filters, groups):
    if in_channels != filter_channels * groups:
        raise ValueError(
            "conv2d: the input's channel count must equal the filters' "
            "in-channels (filters.shape[1]) times num_groups"
        )
    if n_filters % groups != 0:
        raise ValueError("conv2d: the number of filters must be divisible by num_groups")


@kernel
def check_output(oh, ow):
    if oh <= 0 or ow <= 0:
        raise ValueError(
            "conv2d: the (padded) input is smaller than the (dilated) filter, "
            "the output would be empty"
        )


@kernel
def check_gout(oh, ow, height, width, kh, kw, ph, pw, sh, sw, dh, dw):
    if oh != out_length(height, kh, ph, sh, dh) or ow != out_length(width, kw, pw, sw, dw):
        raise ValueError("conv2d gradient: output gradient has the wrong spatial shape")


# Images per GEMM: enough rows that BLAS runs near its peak, few enough that
# a batch splits into several blocks for the threads to share. The blocking
# also fixes the last bits of the results (BLAS rounds differently for other
# matrix shapes, and the filter gradient adds block by block): 2048 rows ran
# as fast but made the 200-epoch LeNet run drift from epoch 7 on, so 4096
# stays, with which runs repeat the recorded full run exactly.
GEMM_ROWS = 4096


@kernel
def blocking(n_img, positions):
    """(images per block, number of blocks) for a batch of ``n_img``."""
    blk = max(1, min(n_img, GEMM_ROWS // max(1, positions)))
    return blk, (n_img + blk - 1) // blk


# One thread pool, not two: the blocks of images run in parallel on Numba's
# threads and each calls BLAS, which must then be single-threaded (see
# pytensor_nnet.threads). Two pools spinning against each other on a 2-core
# machine made a training step 30x slower (measured).
# Every block writes its own images (or its own partial filter gradient,
# summed in block order afterwards), so the result does not depend on the
# number of threads.

@kernel
def unroll_block(x, n0, nb, c0, cg, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow, rows):
    """im2row for images n0 .. n0+nb-1, channels c0 .. c0+cg-1, side by side."""
    for b in range(nb):
        im2row(x[n0 + b, c0:c0 + cg], kh, kw, ph, pw, sh, sw, dh, dw, oh, ow, rows, b * oh * ow)


@kernel
def fold_block(rows, gx, n0, nb, c0, cg, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow):
    """row2im of a block back onto images n0 .. n0+nb-1."""
    for b in range(nb):
        row2im(rows, b * oh * ow, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow, gx[n0 + b, c0:c0 + cg])


@kernel
def clear_block(gx, n0, nb, c0, cg):
    """gx[n0:n0+nb, c0:c0+cg] = 0"""
    for b in range(nb):
        gx[n0 + b, c0:c0 + cg] = 0


@kernel
def scatter_block(res, out, n0, nb, f0, og, positions):
    """out[n0 + b, f0 + f, p] = res[f, b*P + p]: the GEMM result back to NCHW."""
    for b in range(nb):
        out[n0 + b, f0:f0 + og].reshape((og, positions))[:, :] = res[:, b * positions:(b + 1) * positions]


@kernel
def gather_gout(gout, n0, nb, f0, og, positions, gblk):
    """gblk[f, b*P + p] = gout[n0 + b, f0 + f, p]: a block of output maps side by side."""
    for b in range(nb):
        gblk[:, b * positions:(b + 1) * positions] = gout[n0 + b, f0:f0 + og].reshape((og, positions))


@kernel(parallel=True)
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
    og, k, positions = n_filt // groups, cg * kh * kw, oh * ow
    wmat = np.ascontiguousarray(w).reshape((n_filt, k))
    out = np.empty((n_img, n_filt, oh, ow), dtype=x.dtype)
    blk, n_blocks = blocking(n_img, positions)
    for g in range(groups):
        wg = np.ascontiguousarray(wmat[g * og:(g + 1) * og])
        for t in prange(n_blocks):
            n0 = t * blk
            nb = min(blk, n_img - n0)
            rows = np.empty((nb * positions, k), dtype=x.dtype)
            res = np.empty((og, nb * positions), dtype=x.dtype)
            unroll_block(x, n0, nb, g * cg, cg, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow, rows)
            np.dot(wg, rows.T, res)
            scatter_block(res, out, n0, nb, g * og, og, positions)
    return out


@kernel(parallel=True)
def corr_grad_weights(x, gout, kh, kw, border, ph, pw, sh, sw, dh, dw, groups):
    """d(sum(corr(x, w) * gout)) / dw, for filters of size (kh, kw)."""
    n_img, channels, height, width = x.shape
    n_filt, oh, ow = gout.shape[1], gout.shape[2], gout.shape[3]
    cg = channels // groups
    check_groups(channels, cg, n_filt, groups)
    ph = resolve_pad(border, ph, kh, dh)
    pw = resolve_pad(border, pw, kw, dw)
    check_gout(oh, ow, height, width, kh, kw, ph, pw, sh, sw, dh, dw)
    og, k, positions = n_filt // groups, cg * kh * kw, oh * ow
    gout = np.ascontiguousarray(gout)
    gw = np.zeros((n_filt, k), dtype=x.dtype)
    blk, n_blocks = blocking(n_img, positions)
    partial = np.empty((n_blocks, og, k), dtype=x.dtype)
    for g in range(groups):
        for t in prange(n_blocks):
            n0 = t * blk
            nb = min(blk, n_img - n0)
            rows = np.empty((nb * positions, k), dtype=x.dtype)
            gblk = np.empty((og, nb * positions), dtype=x.dtype)
            unroll_block(x, n0, nb, g * cg, cg, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow, rows)
            gather_gout(gout, n0, nb, g * og, og, positions, gblk)
            np.dot(gblk, rows, partial[t])
        add_in_block_order(gw[g * og:(g + 1) * og], partial)
    return gw.reshape((n_filt, cg, kh, kw))


@kernel
def add_in_block_order(total, partial):
    """total += partial[0] + partial[1] + ..., in that order (the same
    numbers whatever the thread count). A function of its own: written in a
    parallel=True function, Numba would launch each ``+=`` on the threads,
    about 0.1 ms a launch (measured: the first layer's filter gradient took
    27 ms instead of 13)."""
    for t in range(partial.shape[0]):
        total += partial[t]


@kernel(parallel=True)
def corr_grad_inputs(w, gout, height, width, border, ph, pw, sh, sw, dh, dw, groups):
    """d(sum(corr(x, w) * gout)) / dx, for an input of size (height, width)."""
    n_img, n_filt, oh, ow = gout.shape
    cg, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    channels = cg * groups
    check_groups(channels, cg, n_filt, groups)
    ph = resolve_pad(border, ph, kh, dh)
    pw = resolve_pad(border, pw, kw, dw)
    check_gout(oh, ow, height, width, kh, kw, ph, pw, sh, sw, dh, dw)
    og, k, positions = n_filt // groups, cg * kh * kw, oh * ow
    wmat = np.ascontiguousarray(w).reshape((n_filt, k))
    gout = np.ascontiguousarray(gout)
    gx = np.empty((n_img, channels, height, width), dtype=gout.dtype)
    blk, n_blocks = blocking(n_img, positions)
    for g in range(groups):
        wg = np.ascontiguousarray(wmat[g * og:(g + 1) * og])
        for t in prange(n_blocks):
            n0 = t * blk
            nb = min(blk, n_img - n0)
            # each block clears its own images: in parallel, not as one
            # serial np.zeros before the loop
            clear_block(gx, n0, nb, g * cg, cg)
            rows = np.empty((nb * positions, k), dtype=gout.dtype)
            gblk = np.empty((og, nb * positions), dtype=gout.dtype)
            gather_gout(gout, n0, nb, g * og, og, positions, gblk)
            np.dot(gblk.T, wg, rows)
            fold_block(rows, gx, n0, nb, g * cg, cg, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow)
    return gx


@kernel
def flipped(w):
    return np.ascontiguousarray(w[:, :, ::-1, ::-1])


@kernel
def conv_forward(x, w, flip, border, ph, pw, sh, sw, dh, dw, groups):
    """Theano ``conv2d``: a true convolution when ``flip``, else correlation."""
    wc = flipped(w) if flip else np.ascontiguousarray(w)
    return corr_forward(np.ascontiguousarray(x), wc, border, ph, pw, sh, sw, dh, dw, groups)


@kernel
def conv_grad_weights(x, gout, kh, kw, flip, border, ph, pw, sh, sw, dh, dw, groups):
    gw = corr_grad_weights(np.ascontiguousarray(x), gout, kh, kw, border, ph, pw, sh, sw, dh, dw, groups)
    return flipped(gw) if flip else gw


@kernel
def conv_grad_inputs(w, gout, height, width, flip, border, ph, pw, sh, sw, dh, dw, groups):
    wc = flipped(w) if flip else np.ascontiguousarray(w)
    return corr_grad_inputs(wc, gout, height, width, border, ph, pw, sh, sw, dh, dw, groups)
