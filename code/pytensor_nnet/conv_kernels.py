"""Numba kernels for 2-D convolution on NCHW arrays: unrolled patches + one GEMM per block.

The three Ops (forward, gradient w.r.t. the input, gradient w.r.t. the
filters) all reduce to moves of patches around one matrix product:

* ``im2col`` unrolls every receptive field of an image into a column, so a
  correlation with all filters becomes one matrix product
  ``(filters, K) @ (K, positions)``; a block of images is unrolled side by
  side so that the product is large enough for BLAS to run near its peak.
  Its copies run along output rows, as long as the image is wide (24
  numbers for LeNet's first layer), and the forward product needs no
  transposed operand;
* ``col2im`` is its transpose: it adds the columns back onto the images
  (the gradient w.r.t. the input).

The kernels work on the *correlation* form of the filters and write into
arrays they are given; the native kernels built from them (compiled once per
dtype, see :mod:`pytensor_nnet.native`) flip the filters for a true
convolution (Theano's ``filter_flip=True``). The drivers at the bottom
(``conv_forward``, ``conv_grad_inputs``, ``conv_grad_weights``) check the
shapes, allocate the result and call the native kernels. The drivers back
``Op.perform`` (C/CVM and Python modes) and the Numba backend alike, so every
mode computes the same numbers.
"""
import numpy as np
from numba import carray, prange

from . import native
from .fast_tanh import tanh_plus_run
from .gemm import matmul_into
from .jit import kernel
from .pool_kernels import max_pool_cells_2x2, max_unpool_2x2
from .shapes import (check_bias, check_conv, check_conv_gout, check_conv_output,
                     check_pooled_grad)

# the ops' names, as their errors give them
FORWARD = "conv2d"
GRAD_INPUTS = "conv2d gradient w.r.t. the input (Conv2dGradInputs)"
GRAD_WEIGHTS = "conv2d gradient w.r.t. the filters (Conv2dGradWeights)"
GRAD_WEIGHTS_POOLED = ("conv2d + pool_2d gradient w.r.t. the filters "
                       "(Conv2dGradWeightsMaxPool)")
GRAD_INPUTS_POOLED = "conv2d + pool_2d gradient w.r.t. the input (Conv2dGradInputsMaxPool)"

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


# Indices into arrays are unsigned where an offset's sign is not known to
# the compiler: Numba checks every signed index for wraparound (a negative
# index counts from the end), and a loop with those checks does not
# vectorise (an unrolled first layer took 3 times as long).

# Runs are copied eight numbers at a time, all eight loaded before any is
# stored: LLVM then makes each eight one vector load and store. A plain loop
# vectorises only runs of 32 and more (LeNet's second layer copies runs of
# 8), and element by element it cannot reorder the loads and stores of
# arrays that might overlap (im2col took 1.25 times as long).

# unsigned offsets 0..8 (an unsigned plus a signed int is a float in Numba)
U0, U1, U2, U3, U4, U5, U6, U7, U8 = (np.uint64(k) for k in range(9))


@kernel(forceinline=True)
def copy_run(dst, d0, src, s0, n):
    """dst[d0:d0+n] = src[s0:s0+n]"""
    d, s, n = np.uint64(d0), np.uint64(s0), np.uint64(n)
    j = U0
    while j + U8 <= n:
        a, b = s + j, d + j
        v0, v1, v2, v3 = src[a], src[a + U1], src[a + U2], src[a + U3]
        v4, v5, v6, v7 = src[a + U4], src[a + U5], src[a + U6], src[a + U7]
        dst[b], dst[b + U1], dst[b + U2], dst[b + U3] = v0, v1, v2, v3
        dst[b + U4], dst[b + U5], dst[b + U6], dst[b + U7] = v4, v5, v6, v7
        j += U8
    while j < n:
        dst[d + j] = src[s + j]
        j += U1


@kernel(forceinline=True)
def add_run(dst, d0, src, s0, n):
    """dst[d0:d0+n] += src[s0:s0+n], element by element: the next filter
    offset adds to the same cells shifted by one, and wide loads of numbers
    just stored stall the loop (eight at a time took twice as long)."""
    d, s = np.uint64(d0), np.uint64(s0)
    for j in range(np.uint64(n)):
        dst[d + j] += src[s + j]


@kernel
def rows_inside(oh, sh, offset, height):
    """The output rows i, lo <= i < hi, whose input row i*sh + offset lies in the image."""
    lo, hi = 0, oh
    while lo < oh and lo * sh + offset < 0:
        lo += 1
    while hi > lo and (hi - 1) * sh + offset >= height:
        hi -= 1
    return lo, hi


@kernel(forceinline=True)
def flat_index(shape, n, c, r, col):
    """The position of element [n, c, r, col] in a C-contiguous array of ``shape``, flattened."""
    return ((n * shape[1] + c) * shape[2] + r) * shape[3] + col


@kernel
def im2col(x, n0, nb, c0, cg, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow, cols):
    """Unroll the receptive fields of images n0 .. n0+nb-1, channels c0 ..
    c0+cg-1, into columns, the images side by side:
    ``cols[(c, a, b), n*oh*ow + i*ow + j] = padded x[n0 + n, c0 + c, i*sh + a*dh, j*sw + b*dw]``.
    Row by row of ``cols``, each written from start to end (written image by
    image, a block took twice as long). ``x`` C-contiguous.
    """
    height, width = x.shape[2], x.shape[3]
    positions = oh * ow
    flat = x.reshape(-1)  # offsets into it, not a view per row: cheaper than a run of 8
    for c in range(cg):
        for a in range(kh):
            row0 = a * dh - ph  # the input row of output row 0
            lo, hi = rows_inside(oh, sh, row0, height)
            for b in range(kw):
                dst = cols[(c * kh + a) * kw + b]
                col0 = b * dw - pw
                # most taps read runs wholly inside the image: copy them unchecked
                if sw == 1 and col0 >= 0 and col0 + ow <= width:
                    for n in range(nb):
                        d0 = n * positions
                        for j in range(lo * ow):  # rows above and below the image
                            dst[d0 + j] = 0
                        for j in range(hi * ow, positions):
                            dst[d0 + j] = 0
                        s0 = flat_index(x.shape, n0 + n, c0 + c, lo * sh + row0, col0)
                        for i in range(lo, hi):
                            copy_run(dst, d0 + i * ow, flat, s0, ow)
                            s0 += sh * width
                    continue
                inside = col0 >= 0 and col0 + (ow - 1) * sw < width
                for n in range(nb):
                    channel = x[n0 + n, c0 + c]
                    for i in range(oh):
                        r = i * sh + row0
                        d0 = n * positions + i * ow
                        if r < 0 or r >= height:
                            for j in range(ow):
                                dst[d0 + j] = 0
                            continue
                        src = channel[r]
                        if inside:
                            for j in range(ow):
                                dst[d0 + j] = src[col0 + j * sw]
                        else:
                            for j in range(ow):
                                cc = col0 + j * sw
                                dst[d0 + j] = src[cc] if 0 <= cc < width else 0


@kernel
def col2im(cols, gx, n0, nb, c0, cg, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow):
    """Add the columns back onto images n0 .. n0+nb-1, channels c0 ..
    c0+cg-1 of ``gx`` (C-contiguous): the transpose of :func:`im2col`. The
    filter offsets run backwards, so that each cell adds its terms in the
    order of the output positions they come from."""
    height, width = gx.shape[2], gx.shape[3]
    positions = oh * ow
    flat = gx.reshape(-1)
    for c in range(cg):
        for a in range(kh - 1, -1, -1):
            row0 = a * dh - ph
            lo, hi = rows_inside(oh, sh, row0, height)
            for b in range(kw - 1, -1, -1):
                src = cols[(c * kh + a) * kw + b]
                col0 = b * dw - pw
                if sw == 1 and col0 >= 0 and col0 + ow <= width:
                    for n in range(nb):
                        d0 = flat_index(gx.shape, n0 + n, c0 + c, lo * sh + row0, col0)
                        for i in range(lo, hi):
                            add_run(flat, d0, src, n * positions + i * ow, ow)
                            d0 += sh * width
                    continue
                for n in range(nb):
                    channel = gx[n0 + n, c0 + c]
                    for i in range(lo, hi):
                        s0 = n * positions + i * ow
                        dst = channel[i * sh + row0]
                        for j in range(ow):
                            cc = col0 + j * sw
                            if 0 <= cc < width:
                                dst[cc] += src[s0 + j]


@kernel
def geometry(img, filters, border, ph, pw, sh, sw, dh, dw):
    """Padding and output size (ph, pw, oh, ow) for these input and filter shapes."""
    kh, kw = filters[2], filters[3]
    ph, pw = resolve_pad(border, ph, kh, dh), resolve_pad(border, pw, kw, dw)
    return ph, pw, out_length(img[2], kh, ph, sh, dh), out_length(img[3], kw, pw, sw, dw)


@kernel
def check_grad(op, img, filters, gout, border, ph, pw, sh, sw, dh, dw, groups):
    """Check the shapes a gradient works with (see :mod:`pytensor_nnet.shapes`);
    return their :func:`geometry`."""
    check_conv(op, img, filters, groups)
    ph, pw, oh, ow = geometry(img, filters, border, ph, pw, sh, sw, dh, dw)
    check_conv_gout(op, img, filters, gout, (img[0], filters[0], oh, ow))
    return ph, pw, oh, ow


@kernel
def pooled_shape(shape):
    """The shape of (N, O, oh, ow) maps max-pooled over 2x2 windows (ignore_border)."""
    return (shape[0], shape[1], shape[2] // 2, shape[3] // 2)


@kernel
def check_grad_pooled(op, img, filters, cells, gpool, border, ph, pw, sh, sw, dh, dw, groups):
    """:func:`check_grad` for a gradient through the fused pooling, given the
    maxima's ``cells`` and the pooled maps' gradient ``gpool`` shapes."""
    check_conv(op, img, filters, groups)
    ph, pw, oh, ow = geometry(img, filters, border, ph, pw, sh, sw, dh, dw)
    maps = (img[0], filters[0], oh, ow)
    check_pooled_grad(op, maps, cells, gpool, pooled_shape(maps))
    return ph, pw, oh, ow


# Images per GEMM: enough rows that BLAS runs near its peak, few enough that
# a batch splits into several blocks for the threads to share. The blocking
# also fixes the last bits of the results (BLAS rounds differently for other
# matrix shapes, and the filter gradient adds block by block): 2048 rows ran
# as fast but made the 200-epoch LeNet run drift from epoch 7 on, so 4096
# stays. It caps every kernel's blocks; the forward and input-gradient
# kernels cap theirs by CACHE_FLOATS too.
GEMM_ROWS = 4096

# Unrolled patches per block, at most (K x columns numbers), in the forward
# and input-gradient kernels: they then stay in the core's cache between
# im2col and the product (or the product and col2im).
# Those products sum along K only, so smaller blocks change no bits where
# BLAS computes each column alike whatever the block width (OpenBLAS's
# AVX-512 kernels; its AVX2 kernels round some columns differently). The
# filter gradient sums along the patches and keeps GEMM_ROWS.
CACHE_FLOATS = 1 << 18  # 1 MiB of float32


@kernel
def blocking(n_img, positions, k=0):
    """(images per block, number of blocks) for a batch of ``n_img``; with
    ``k``, the blocks' patches also fit in :data:`CACHE_FLOATS`."""
    per_image = max(1, positions)
    blk = min(n_img, GEMM_ROWS // per_image)
    if k > 0:
        blk = min(blk, CACHE_FLOATS // (k * per_image))
    blk = max(1, blk)
    return blk, (n_img + blk - 1) // blk


# One thread pool, not two: the blocks of images run in parallel on Numba's
# threads and each calls BLAS, which must then be single-threaded (see
# pytensor_nnet.threads). Two pools spinning against each other on a 2-core
# machine made a training step 30x slower (measured).
# Every block writes its own images (or its own partial filter gradient,
# summed in block order afterwards), so the result does not depend on the
# number of threads.

@kernel
def clear_block(gx, n0, nb, c0, cg):
    """gx[n0:n0+nb, c0:c0+cg] = 0"""
    for b in range(nb):
        gx[n0 + b, c0:c0 + cg] = 0


@kernel
def scatter_block(res, out, n0, nb, f0, og, positions):
    """out[n0 + b, f0 + f, p] = res[f, b*P + p]: the GEMM result back to NCHW."""
    # element loops, not slice assignment: Numba's array-to-slice copy brings
    # its error formatting along, which made every kernel slower to compile
    for b in range(nb):
        dst = out[n0 + b, f0:f0 + og].reshape((og, positions))
        for f in range(og):
            src = res[f, b * positions:(b + 1) * positions]
            row = dst[f]
            for p in range(positions):
                row[p] = src[p]


# The fused convolution and 2x2 max pooling (pytensor_nnet.conv_pool): the
# forward pools each block of output maps while it is in cache, and the
# gradients rebuild their blocks of the pooling's gradient from the
# maxima's cells. The full-size maps never reach memory: apart, LeNet's first
# layer wrote two 23 MB arrays of them per training step and read them three
# times.
NO_POOL, MAX_POOL_2X2, MAX_POOL_2X2_CELLS = 0, 1, 2


@kernel
def pool_block(res, pooled, cells, spread, n0, nb, f0, og, oh, ow, pool):
    """pooled[n0 + b, f0 + f] = res[f, b*P:(b+1)*P] (an oh x ow map) max-pooled
    over 2x2 windows, and the maxima's cells when ``pool`` asks for them; with
    a bias (``spread``: each filter's bias repeated over its pooled map; else
    empty), each image's pooled maps become tanh(pooled + bias), after the
    cells are found on the pooled maxima."""
    positions = oh * ow
    n_filt, ph, pw = pooled.shape[1], pooled.shape[2], pooled.shape[3]
    flat_res, flat_pooled, flat_cells = res.reshape(-1), pooled.reshape(-1), cells.reshape(-1)
    for f in range(og):
        for b in range(nb):
            max_pool_cells_2x2(flat_res, (f * nb + b) * positions, ow, flat_pooled, flat_cells,
                               ((n0 + b) * n_filt + f0 + f) * ph * pw, ph, pw,
                               pool == MAX_POOL_2X2_CELLS)
    if spread.size:
        # all of an image's maps in one loop: one map alone (16 numbers in
        # LeNet's second layer) is too short to vectorise well
        for b in range(nb):
            tanh_plus_run(pooled[n0 + b, f0:f0 + og].reshape(-1), spread)


@kernel
def spread_bias(bias, maps, size):
    """``bias[f]`` repeated ``size`` times for f in ``maps`` (a range), one
    after the other: :func:`pool_block`'s ``spread`` (empty without a bias)."""
    if bias.size == 0:
        return bias
    spread = np.empty(len(maps) * size, dtype=bias.dtype)
    for i, f in enumerate(maps):
        for j in range(size):
            spread[i * size + j] = bias[f]
    return spread


@kernel
def gather_unpooled(gpool, cells, n0, nb, f0, og, oh, ow, gblk):
    """Like :func:`gather_gout`, for the gradient of the pooled maps: each
    map's gradient rebuilt from the pooled gradient and the maxima's cells."""
    positions = oh * ow
    n_filt, ph, pw = gpool.shape[1], gpool.shape[2], gpool.shape[3]
    flat_gpool, flat_cells, flat_gblk = gpool.reshape(-1), cells.reshape(-1), gblk.reshape(-1)
    for f in range(og):
        for b in range(nb):
            max_unpool_2x2(flat_cells, flat_gpool, ((n0 + b) * n_filt + f0 + f) * ph * pw, ph,
                           pw, flat_gblk, (f * nb + b) * positions, oh, ow)


@kernel
def gather_block(gout, cells, n0, nb, f0, og, oh, ow, pool, gblk):
    """A gradient kernel's block of output-map gradients: :func:`gather_gout`,
    or with ``pool`` :func:`gather_unpooled`."""
    if pool == NO_POOL:
        gather_gout(gout, n0, nb, f0, og, oh * ow, gblk)
    else:
        gather_unpooled(gout, cells, n0, nb, f0, og, oh, ow, gblk)


@kernel
def gather_gout(gout, n0, nb, f0, og, positions, gblk):
    """gblk[f, b*P + p] = gout[n0 + b, f0 + f, p]: a block of output maps side by side."""
    for b in range(nb):
        src = gout[n0 + b, f0:f0 + og].reshape((og, positions))
        for f in range(og):
            row, dst = src[f], gblk[f, b * positions:(b + 1) * positions]
            for p in range(positions):
                dst[p] = row[p]


@kernel(parallel=True)
def corr_forward(x, w, bias, out, cells, ph, pw, sh, sw, dh, dw, groups, oh, ow, pool):
    """``out`` = cross-correlation of ``x`` (N, C, H, W) with ``w`` (O, C/groups,
    kh, kw), an (N, O, oh, ow) map per image; or, with ``pool``, those maps
    max-pooled, and with a ``bias`` (else empty) passed through tanh (see
    :func:`pool_block`). All C-contiguous; padding resolved, shapes checked
    (see :func:`conv_forward`)."""
    n_img = x.shape[0]
    n_filt, cg, kh, kw = w.shape
    og, k, positions = n_filt // groups, cg * kh * kw, oh * ow
    wmat = w.reshape((n_filt, k))
    blk, n_blocks = blocking(n_img, positions, k)
    for g in range(groups):
        wg = np.ascontiguousarray(wmat[g * og:(g + 1) * og])
        spread = spread_bias(bias, range(g * og, (g + 1) * og), out.shape[2] * out.shape[3])
        for t in prange(n_blocks):
            n0 = t * blk
            nb = min(blk, n_img - n0)
            cols = np.empty((k, nb * positions), dtype=x.dtype)
            res = np.empty((og, nb * positions), dtype=x.dtype)
            im2col(x, n0, nb, g * cg, cg, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow, cols)
            matmul_into(wg, cols, res)
            if pool == NO_POOL:
                scatter_block(res, out, n0, nb, g * og, og, positions)
            else:
                pool_block(res, out, cells, spread, n0, nb, g * og, og, oh, ow, pool)


@kernel(parallel=True)
def corr_grad_weights(x, gout, gw, cells, oh, ow, ph, pw, sh, sw, dh, dw, groups, pool):
    """``gw`` (O, C/groups, kh, kw), zeros on entry, += d(sum(corr(x, w) *
    gout)) / dw, the maps (oh x ow) of the correlation; with ``pool``,
    ``gout`` is the gradient of those maps max-pooled, with the maxima's
    ``cells`` (see :func:`pool_block`). All C-contiguous, shapes checked."""
    n_img, channels = x.shape[0], x.shape[1]
    n_filt = gout.shape[1]
    cg = channels // groups
    kh, kw = gw.shape[2], gw.shape[3]
    og, k, positions = n_filt // groups, cg * kh * kw, oh * ow
    gwmat = gw.reshape((n_filt, k))
    blk, n_blocks = blocking(n_img, positions)
    partial = np.empty((n_blocks, og, k), dtype=x.dtype)
    for g in range(groups):
        for t in prange(n_blocks):
            n0 = t * blk
            nb = min(blk, n_img - n0)
            cols = np.empty((k, nb * positions), dtype=x.dtype)
            gblk = np.empty((og, nb * positions), dtype=x.dtype)
            im2col(x, n0, nb, g * cg, cg, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow, cols)
            gather_block(gout, cells, n0, nb, g * og, og, oh, ow, pool, gblk)
            # SciPy's BLAS (np.dot), not NumPy's (see pytensor_nnet.gemm): it
            # ran this product, of a few filters by many patches, faster on
            # OpenBLAS's AVX-512 kernels (NumPy's on its AVX2 ones); its
            # transpose, faster in NumPy's, rounds otherwise on AVX2
            np.dot(gblk, cols.T, partial[t])
        add_in_block_order(gwmat[g * og:(g + 1) * og], partial)


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
def corr_grad_inputs(wmat, gout, gx, cells, kh, kw, oh, ow, ph, pw, sh, sw, dh, dw, groups,
                     pool):
    """``gx`` = d(sum(corr(x, w) * gout)) / dx, with the filters as the
    C-contiguous matrix ``wmat`` (O, C/groups * kh * kw), the maps (oh x ow)
    of the correlation; with ``pool``, ``gout`` and ``cells`` as in
    :func:`corr_grad_weights`. Shapes checked."""
    n_img, n_filt = gout.shape[0], gout.shape[1]
    channels = gx.shape[1]
    cg = channels // groups
    og, k, positions = n_filt // groups, cg * kh * kw, oh * ow
    blk, n_blocks = blocking(n_img, positions, k)
    for g in range(groups):
        wg = np.ascontiguousarray(wmat[g * og:(g + 1) * og])
        for t in prange(n_blocks):
            n0 = t * blk
            nb = min(blk, n_img - n0)
            # each block clears its own images: in parallel, not as one
            # serial np.zeros before the loop
            clear_block(gx, n0, nb, g * cg, cg)
            cols = np.empty((k, nb * positions), dtype=gout.dtype)
            gblk = np.empty((og, nb * positions), dtype=gout.dtype)
            gather_block(gout, cells, n0, nb, g * og, og, oh, ow, pool, gblk)
            matmul_into(wg.T, gblk, cols)
            col2im(cols, gx, n0, nb, g * cg, cg, kh, kw, ph, pw, sh, sw, dh, dw, oh, ow)


@kernel
def flipped(w):
    """The filters flipped on both spatial axes, C-contiguous."""
    return np.ascontiguousarray(w[:, :, ::-1, ::-1])


# The native kernels: C functions of native.NativeKernel's signature, all
# arrays C-contiguous. params: the sizes of the input, the filters and the
# output, the settings (padding resolved), whether to flip the filters, the
# pooling (NO_POOL, MAX_POOL_2X2 or MAX_POOL_2X2_CELLS), and for the forward
# kernel whether the filters' array holds a bias after them (the pooled maps
# then pass through tanh, see pool_block):
PARAMS = ("n_img", "channels", "height", "width", "n_filt", "cg", "kh", "kw", "oh", "ow",
          "ph", "pw", "sh", "sw", "dh", "dw", "groups", "flip", "pool", "tanh_bias")


@kernel
def unpack(params):
    """The arrays' shapes and the settings from a kernel's params."""
    p = carray(params, (len(PARAMS),))
    return ((p[0], p[1], p[2], p[3]), (p[4], p[5], p[6], p[7]), (p[0], p[4], p[8], p[9]),
            (p[10], p[11], p[12], p[13], p[14], p[15], p[16]), p[17] != 0, p[18])


@kernel
def output_arrays(out, cells, out_shape, pool):
    """The output (and the maxima's cells) a kernel writes or reads, as arrays:
    the maps, or with ``pool`` the pooled maps (cells empty without them)."""
    if pool == NO_POOL:
        return carray(out, out_shape), carray(cells, (0, 0, 0, 0))
    shape = pooled_shape(out_shape)
    cells_shape = shape if pool == MAX_POOL_2X2_CELLS else (0, 0, 0, 0)
    return carray(out, shape), carray(cells, cells_shape)


def corr_forward_native(x, w, out, cells, params):
    x_shape, w_shape, out_shape, settings, flip, pool = unpack(params)
    size = w_shape[0] * w_shape[1] * w_shape[2] * w_shape[3]
    tanh_bias = carray(params, (len(PARAMS),))[-1] != 0
    packed = carray(w, (size + (w_shape[0] if tanh_bias else 0),))
    w = packed[:size].reshape(w_shape)
    ph, pw, sh, sw, dh, dw, groups = settings
    out, cells = output_arrays(out, cells, out_shape, pool)
    corr_forward(carray(x, x_shape), flipped(w) if flip else w, packed[size:], out, cells,
                 ph, pw, sh, sw, dh, dw, groups, out_shape[2], out_shape[3], pool)
    return native.OK


@kernel
def unflip(src, dst):
    """dst = src flipped on both spatial axes (an element loop: see scatter_block)."""
    n_filt, cg, kh, kw = src.shape
    for o in range(n_filt):
        for c in range(cg):
            for a in range(kh):
                for b in range(kw):
                    dst[o, c, a, b] = src[o, c, kh - 1 - a, kw - 1 - b]


def corr_grad_weights_native(x, gout, gw, cells, params):
    """``gw``: zeros on entry."""
    x_shape, w_shape, out_shape, settings, flip, pool = unpack(params)
    gw = carray(gw, w_shape)
    ph, pw, sh, sw, dh, dw, groups = settings
    result = np.zeros(w_shape, dtype=gw.dtype) if flip else gw
    gout, cells = output_arrays(gout, cells, out_shape, pool)
    corr_grad_weights(carray(x, x_shape), gout, result, cells, out_shape[2], out_shape[3],
                      ph, pw, sh, sw, dh, dw, groups, pool)
    if flip:
        unflip(result, gw)
    return native.OK


def corr_grad_inputs_native(w, gout, gx, cells, params):
    x_shape, w_shape, out_shape, settings, flip, pool = unpack(params)
    w = carray(w, w_shape)
    wc = flipped(w) if flip else w
    n_filt, cg, kh, kw = w_shape
    ph, pw, sh, sw, dh, dw, groups = settings
    gout, cells = output_arrays(gout, cells, out_shape, pool)
    corr_grad_inputs(wc.reshape((n_filt, cg * kh * kw)), gout, carray(gx, x_shape), cells,
                     kh, kw, out_shape[2], out_shape[3], ph, pw, sh, sw, dh, dw, groups, pool)
    return native.OK


CORR_FORWARD = native.NativeKernel("corr_forward", corr_forward_native, ("float32", "float64"))
CORR_GRAD_WEIGHTS = native.NativeKernel("corr_grad_weights", corr_grad_weights_native,
                                        ("float32", "float64"))
CORR_GRAD_INPUTS = native.NativeKernel("corr_grad_inputs", corr_grad_inputs_native,
                                       ("float32", "float64"))
corr_forward_call = CORR_FORWARD.call
corr_grad_weights_call = CORR_GRAD_WEIGHTS.call
corr_grad_inputs_call = CORR_GRAD_INPUTS.call


# The drivers: everything that can raise happens here, before the native
# call (an exception cannot leave a C function). They are compiled into
# every graph that uses the Ops, so they stay small. A gradient driver
# checks the shapes it derives (the size it is given, the rest from its
# arrays), which keeps the kernels in bounds; the gradient Ops check the
# shape their third input carries before calling it (check_grad).

@kernel
def kernel_params(img, filters, oh, ow, ph, pw, sh, sw, dh, dw, groups, flip, pool,
                  tanh_bias=False):
    """A kernel's params (see :data:`PARAMS`) for these shapes and settings."""
    return native.int_params((img[0], img[1], img[2], img[3], filters[0], filters[1],
                              filters[2], filters[3], oh, ow, ph, pw, sh, sw, dh, dw, groups,
                              1 if flip else 0, pool, 1 if tanh_bias else 0))


@kernel
def forward_geometry(img, filters, border, ph, pw, sh, sw, dh, dw, groups):
    """Check the forward's shapes; return their :func:`geometry`."""
    check_conv(FORWARD, img, filters, groups)
    ph, pw, oh, ow = geometry(img, filters, border, ph, pw, sh, sw, dh, dw)
    check_conv_output(FORWARD, img, filters, (img[0], filters[0], oh, ow))
    return ph, pw, oh, ow


@kernel
def conv_forward(x, w, flip, border, ph, pw, sh, sw, dh, dw, groups):
    """Theano ``conv2d``: a true convolution when ``flip``, else correlation."""
    ph, pw, oh, ow = forward_geometry(x.shape, w.shape, border, ph, pw, sh, sw, dh, dw, groups)
    out = np.empty((x.shape[0], w.shape[0], oh, ow), dtype=x.dtype)
    params = kernel_params(x.shape, w.shape, oh, ow, ph, pw, sh, sw, dh, dw, groups, flip,
                           NO_POOL)
    native.check(corr_forward_call(native.contiguous(x), native.contiguous(w), out, None,
                                   params))
    return out


@kernel
def conv_forward_max_pool(x, w, flip, border, ph, pw, sh, sw, dh, dw, groups, with_cells):
    """:func:`conv_forward` max-pooled over 2x2 windows (``ignore_border``),
    in one pass; and with ``with_cells`` the maxima's cells (see
    :func:`pool_block`), else an empty array."""
    return pooled_forward(x, w.shape, native.contiguous(w), False, flip, border, ph, pw, sh,
                          sw, dh, dw, groups, with_cells)


@kernel
def conv_forward_max_pool_tanh(x, w, bias, flip, border, ph, pw, sh, sw, dh, dw, groups,
                               with_cells):
    """``tanh(pooled + bias)`` for :func:`conv_forward_max_pool`'s pooled maps,
    ``bias`` a vector of one number per filter, in the same pass; and the
    maxima's cells as that function gives them."""
    check_bias(FORWARD, w.shape, bias.shape)
    # the kernel takes the bias after the filters, in one array (see PARAMS)
    packed = np.empty(w.size + bias.size, dtype=x.dtype)
    flat = native.contiguous(w).reshape(-1)
    for i in range(w.size):
        packed[i] = flat[i]
    for i in range(bias.size):
        packed[w.size + i] = bias[i]
    return pooled_forward(x, w.shape, packed, True, flip, border, ph, pw, sh, sw, dh, dw,
                          groups, with_cells)


@kernel
def pooled_forward(x, w_shape, w_data, tanh_bias, flip, border, ph, pw, sh, sw, dh, dw,
                   groups, with_cells):
    """The two drivers above: ``w_data`` the filters of shape ``w_shape``
    (followed by the bias with ``tanh_bias``), C-contiguous."""
    ph, pw, oh, ow = forward_geometry(x.shape, w_shape, border, ph, pw, sh, sw, dh, dw, groups)
    shape = pooled_shape((x.shape[0], w_shape[0], oh, ow))
    pooled = np.empty(shape, dtype=x.dtype)
    cells = np.empty(shape if with_cells else (0, 0, 0, 0), dtype=x.dtype)
    pool = MAX_POOL_2X2_CELLS if with_cells else MAX_POOL_2X2
    params = kernel_params(x.shape, w_shape, oh, ow, ph, pw, sh, sw, dh, dw, groups, flip,
                           pool, tanh_bias)
    native.check(corr_forward_call(native.contiguous(x), w_data, pooled, cells, params))
    return pooled, cells


@kernel
def conv_grad_weights(x, gout, kh, kw, flip, border, ph, pw, sh, sw, dh, dw, groups):
    """Gradient of :func:`conv_forward` w.r.t. filters of size (kh, kw)."""
    filters = (gout.shape[1], x.shape[1] // groups, kh, kw)
    ph, pw, oh, ow = check_grad(GRAD_WEIGHTS, x.shape, filters, gout.shape,
                                border, ph, pw, sh, sw, dh, dw, groups)
    gw = np.zeros(filters, dtype=x.dtype)
    params = kernel_params(x.shape, filters, oh, ow, ph, pw, sh, sw, dh, dw, groups, flip,
                           NO_POOL)
    native.check(corr_grad_weights_call(native.contiguous(x), native.contiguous(gout), gw,
                                        None, params))
    return gw


@kernel
def conv_grad_weights_max_pool(x, cells, gpool, kh, kw, flip, border, ph, pw, sh, sw, dh, dw,
                               groups):
    """Gradient w.r.t. filters of size (kh, kw) of :func:`conv_forward_max_pool`,
    from its maxima's ``cells`` and the pooled maps' gradient ``gpool``."""
    filters = (gpool.shape[1], x.shape[1] // groups, kh, kw)
    ph, pw, oh, ow = check_grad_pooled(GRAD_WEIGHTS_POOLED, x.shape, filters, cells.shape,
                                       gpool.shape, border, ph, pw, sh, sw, dh, dw, groups)
    gw = np.zeros(filters, dtype=x.dtype)
    params = kernel_params(x.shape, filters, oh, ow, ph, pw, sh, sw, dh, dw, groups, flip,
                           MAX_POOL_2X2_CELLS)
    native.check(corr_grad_weights_call(native.contiguous(x), native.contiguous(gpool), gw,
                                        native.contiguous(cells), params))
    return gw


@kernel
def conv_grad_inputs_max_pool(w, cells, gpool, height, width, flip, border, ph, pw, sh, sw, dh,
                              dw, groups):
    """Gradient w.r.t. an input of size (height, width) of
    :func:`conv_forward_max_pool`, from its maxima's ``cells`` and the pooled
    maps' gradient ``gpool``."""
    img = (gpool.shape[0], w.shape[1] * groups, height, width)
    ph, pw, oh, ow = check_grad_pooled(GRAD_INPUTS_POOLED, img, w.shape, cells.shape,
                                       gpool.shape, border, ph, pw, sh, sw, dh, dw, groups)
    gx = np.empty(img, dtype=gpool.dtype)
    params = kernel_params(img, w.shape, oh, ow, ph, pw, sh, sw, dh, dw, groups, flip,
                           MAX_POOL_2X2_CELLS)
    native.check(corr_grad_inputs_call(native.contiguous(w), native.contiguous(gpool), gx,
                                       native.contiguous(cells), params))
    return gx


@kernel
def conv_grad_inputs(w, gout, height, width, flip, border, ph, pw, sh, sw, dh, dw, groups):
    """Gradient of :func:`conv_forward` w.r.t. an input of size (height, width)."""
    img = (gout.shape[0], w.shape[1] * groups, height, width)
    ph, pw, oh, ow = check_grad(GRAD_INPUTS, img, w.shape, gout.shape,
                                border, ph, pw, sh, sw, dh, dw, groups)
    gx = np.empty(img, dtype=gout.dtype)
    params = kernel_params(img, w.shape, oh, ow, ph, pw, sh, sw, dh, dw, groups, flip, NO_POOL)
    native.check(corr_grad_inputs_call(native.contiguous(w), native.contiguous(gout), gx,
                                       None, params))
    return gx
