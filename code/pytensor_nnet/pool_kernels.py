"""Numba kernels for 2-D pooling over the last two axes of an array.

Windows follow Theano exactly: a window is clipped to the image, and every
mode except ``average_inc_pad`` leaves the zero padding out, so a window
averages (or takes the max of) the cells it really holds. The max gradient
goes to every cell equal to its window's maximum, ties included, as Theano's
``MaxPoolGrad`` did.

The kernels run as native kernels (see :mod:`pytensor_nnet.native`),
compiled once per dtype; the drivers :func:`pool_forward` and
:func:`pool_grad` check the shapes, allocate the result and call them, and
back ``Op.perform`` and the Numba backend alike.
"""
import numpy as np
from numba import carray, prange
from numba.extending import register_jitable

from . import native
from .jit import kernel
from .shapes import check_pool_grad

MODES = ("max", "sum", "average_inc_pad", "average_exc_pad")
MAX, SUM, AVERAGE_INC_PAD, AVERAGE_EXC_PAD = range(4)

# the gradient Op's name, as its errors give it
GRAD = "pool_2d gradient (PoolGrad)"


@kernel
def out_length(size, ws, stride, pad, ignore_border):
    """The number of windows on one axis."""
    v = size + 2 * pad
    if ignore_border:
        return max(0, (v - ws) // stride + 1)
    if stride >= ws:
        return (v + stride - 1) // stride
    return max(0, (v - 1 - ws + stride) // stride) + 1


@kernel
def window_ranges(size, ws, stride, pad, ignore_border, inc_pad):
    """Per output index on one axis: [lo, hi) of real cells, and the divisor."""
    v = size + 2 * pad
    n = out_length(size, ws, stride, pad, ignore_border)
    lo = np.empty(n, np.int64)
    hi = np.empty(n, np.int64)
    count = np.empty(n, np.int64)
    for k in range(n):
        start = k * stride
        end = min(start + ws, v)
        real_start, real_end = max(start, pad), min(end, v - pad)
        lo[k], hi[k] = real_start - pad, real_end - pad
        count[k] = end - start if inc_pad else real_end - real_start
    return lo, hi, count


# Images run in parallel on Numba's threads (see pytensor_nnet.threads);
# each writes only its own output, so results do not depend on the threads.

@kernel(parallel=True)
def pool_forward_into(xs, out, ws_h, ws_w, st_h, st_w, pad_h, pad_w, ignore_border, mode):
    """Pool the stack of images ``xs`` (M, H, W) into ``out`` (M, OH, OW)."""
    inc = mode == AVERAGE_INC_PAD
    lo_h, hi_h, cnt_h = window_ranges(xs.shape[1], ws_h, st_h, pad_h, ignore_border, inc)
    lo_w, hi_w, cnt_w = window_ranges(xs.shape[2], ws_w, st_w, pad_w, ignore_border, inc)
    oh, ow = lo_h.size, lo_w.size
    for m in prange(xs.shape[0]):
        img = xs[m]
        for i in range(oh):
            for j in range(ow):
                if mode == MAX:
                    acc = -np.inf
                    for r in range(lo_h[i], hi_h[i]):
                        for c in range(lo_w[j], hi_w[j]):
                            if img[r, c] > acc:
                                acc = img[r, c]
                else:
                    acc = 0.0
                    for r in range(lo_h[i], hi_h[i]):
                        for c in range(lo_w[j], hi_w[j]):
                            acc += img[r, c]
                    if mode != SUM:
                        acc /= cnt_h[i] * cnt_w[j]
                out[m, i, j] = acc


@register_jitable
def is_max_2x2(mode, ws_h, ws_w, st_h, st_w, pad_h, pad_w):
    """Max pooling over 2x2 windows, stride 2, no padding: LeNet's case, which
    has loops, and native kernels, of its own: they vectorise, and a graph
    that pools only this way builds only them, not the general ones.
    (Plain Python too: the Numba dispatch asks it which kernels to build.)"""
    return (mode == MAX and ws_h == 2 and ws_w == 2 and st_h == 2 and st_w == 2
            and pad_h == 0 and pad_w == 0)


@kernel
def is_whole_2x2(mode, ws_h, ws_w, st_h, st_w, pad_h, pad_w, shape, oh, ow):
    """:func:`is_max_2x2`, with every window inside the image."""
    return (is_max_2x2(mode, ws_h, ws_w, st_h, st_w, pad_h, pad_w)
            and 2 * oh <= shape[-2] and 2 * ow <= shape[-1])


@kernel
def windows_overlap(ws_h, ws_w, st_h, st_w):
    """Whether a cell can lie in two windows (then the gradient adds into zeros)."""
    return st_h < ws_h or st_w < ws_w


# The 2x2 loops index with unsigned integers: Numba checks every signed
# index for wraparound (a negative index counts from the end), and with
# those checks these loops did not vectorise (the first layer's gradient
# took 4.5 times as long).

@kernel
def max_pool_grad_2x2(src, top, gtop, dst):
    """The gradient of 2x2 max pooling for one image: each window's
    output gradient to every cell equal to its maximum, zero elsewhere."""
    oh, ow = top.shape
    zero, one = gtop.dtype.type(0), np.uint64(1)
    for i in range(oh):
        t, g = top[i], gtop[i]
        for r in (2 * i, 2 * i + 1):
            s, d = src[r], dst[r]
            for j in range(np.uint64(ow)):
                k = j + j
                tj, gj = t[j], g[j]
                d[k] = gj if s[k] == tj else zero
                d[k + one] = gj if s[k + one] == tj else zero
            d[2 * ow:] = zero
    dst[2 * oh:] = zero


# The cells holding a 2x2 window's maximum, as one number per window: the
# sum of 1 (top left), 2 (top right), 4 (bottom left), 8 (bottom right).
# What a fused convolution and pooling keeps for the gradient instead of
# its whole output (see pytensor_nnet.conv_pool); a number of the data's
# dtype, so that it travels in the kernels' arrays.
TOP_LEFT, TOP_RIGHT, BOTTOM_LEFT, BOTTOM_RIGHT = 1, 2, 4, 8


# The two below work on one map, as flat arrays and offsets: the fused
# kernels call them for every map of a block, and per-map views of the
# arrays (LeNet's second layer has 25,000 maps of 8x8 a step) took longer
# than the pooling itself.

@kernel(forceinline=True)
def max_pool_cells_2x2(src, s0, ow, top, cells, d0, ph, pw, with_cells):
    """Max-pool the map ``src[s0:]`` (rows of ``ow``) over 2x2 windows into
    the ``ph`` x ``pw`` map ``top[d0:]``, with the general loop's
    comparisons in its order; with ``with_cells``, also which cells equal
    each window's maximum (the gradient's test, ties included) into
    ``cells[d0:]``."""
    number = top.dtype.type
    lowest, zero = number(-np.inf), number(0)
    tl, tr = number(TOP_LEFT), number(TOP_RIGHT)
    bl, br = number(BOTTOM_LEFT), number(BOTTOM_RIGHT)
    one, uow, upw = np.uint64(1), np.uint64(ow), np.uint64(pw)
    for i in range(np.uint64(ph)):
        r0 = np.uint64(s0) + (i + i) * uow
        r1, d = r0 + uow, np.uint64(d0) + i * upw
        for j in range(upw):
            k = j + j
            a0, a1, a2, a3 = src[r0 + k], src[r0 + k + one], src[r1 + k], src[r1 + k + one]
            acc = lowest
            for v in (a0, a1, a2, a3):
                acc = v if v > acc else acc
            top[d + j] = acc
            if with_cells:
                cells[d + j] = ((tl if a0 == acc else zero) + (tr if a1 == acc else zero)
                                + (bl if a2 == acc else zero) + (br if a3 == acc else zero))


@kernel(forceinline=True)
def max_unpool_2x2(cells, gtop, s0, ph, pw, dst, d0, oh, ow):
    """What :func:`max_pool_grad_2x2` writes for one map into the ``oh`` x
    ``ow`` map ``dst[d0:]``, from its maxima's cells
    (:func:`max_pool_cells_2x2`) and the pooled map's gradient, both
    ``ph`` x ``pw`` maps from ``s0``."""
    zero, one = gtop.dtype.type(0), np.uint64(1)
    uow, upw = np.uint64(ow), np.uint64(pw)
    for i in range(np.uint64(ph)):
        s = np.uint64(s0) + i * upw
        r0 = np.uint64(d0) + (i + i) * uow
        r1 = r0 + uow
        for j in range(upw):
            k, gj, m = j + j, gtop[s + j], np.int64(cells[s + j])
            dst[r0 + k] = gj if m & TOP_LEFT else zero
            dst[r0 + k + one] = gj if m & TOP_RIGHT else zero
            dst[r1 + k] = gj if m & BOTTOM_LEFT else zero
            dst[r1 + k + one] = gj if m & BOTTOM_RIGHT else zero
        for k in range(upw + upw, uow):  # an odd width's last column
            dst[r0 + k] = zero
            dst[r1 + k] = zero
    # an odd height's last row
    for k in range(np.uint64(d0) + np.uint64(2 * ph) * uow, np.uint64(d0 + oh * ow)):
        dst[k] = zero


@kernel
def owning_window(size, ws, stride, pad, n_out):
    """For non-overlapping windows: the window holding each cell, or -1."""
    owner = np.full(size, -1, np.int64)
    for r in range(size):
        k, offset = divmod(r + pad, stride)
        if offset < ws and k < n_out:
            owner[r] = k
    return owner


@kernel(parallel=True)
def max_pool_2x2_into(xs, out):
    """out[m] = xs[m] max-pooled over 2x2 windows, for each image m (C-contiguous)."""
    n_img, height, width = xs.shape
    oh, ow = out.shape[1], out.shape[2]
    flat_xs, flat_out = xs.reshape(-1), out.reshape(-1)
    for m in prange(n_img):
        max_pool_cells_2x2(flat_xs, m * height * width, width, flat_out, flat_out[:0],
                           m * oh * ow, oh, ow, False)


@kernel(parallel=True)
def max_pool_grad_2x2_into(xs, outs, gouts, gx):
    for m in prange(xs.shape[0]):
        max_pool_grad_2x2(xs[m], outs[m], gouts[m], gx[m])


@kernel(parallel=True)
def pool_grad_into(xs, outs, gouts, gx, ws_h, ws_w, st_h, st_w, pad_h, pad_w, ignore_border,
                   mode):
    """The gradient of :func:`pool_forward_into` into ``gx`` (M, H, W), which
    holds zeros on entry when windows overlap."""
    inc = mode == AVERAGE_INC_PAD
    lo_h, hi_h, cnt_h = window_ranges(xs.shape[1], ws_h, st_h, pad_h, ignore_border, inc)
    lo_w, hi_w, cnt_w = window_ranges(xs.shape[2], ws_w, st_w, pad_w, ignore_border, inc)
    oh, ow = lo_h.size, lo_w.size
    if not windows_overlap(ws_h, ws_w, st_h, st_w):
        disjoint_pool_grad(xs, outs, gouts, lo_h, hi_h, lo_w, hi_w, cnt_h, cnt_w,
                           owning_window(xs.shape[1], ws_h, st_h, pad_h, oh),
                           owning_window(xs.shape[2], ws_w, st_w, pad_w, ow), mode, gx)
        return
    for m in prange(xs.shape[0]):
        img, gimg = xs[m], gx[m]
        for i in range(oh):
            for j in range(ow):
                g = gouts[m, i, j]
                if mode == MAX:
                    top = outs[m, i, j]
                    for r in range(lo_h[i], hi_h[i]):
                        for c in range(lo_w[j], hi_w[j]):
                            if img[r, c] == top:
                                gimg[r, c] += g
                    continue
                if mode != SUM:
                    g = g / (cnt_h[i] * cnt_w[j])
                for r in range(lo_h[i], hi_h[i]):
                    for c in range(lo_w[j], hi_w[j]):
                        gimg[r, c] += g


@kernel(parallel=True)
def disjoint_pool_grad(xs, outs, gouts, lo_h, hi_h, lo_w, hi_w, cnt_h, cnt_w,
                       row_win, col_win, mode, gx):
    """Gradient when windows do not overlap: window by window, each cell written once."""
    n_img, height, width = xs.shape
    oh, ow = gouts.shape[1], gouts.shape[2]
    uncovered_cols = np.nonzero(col_win < 0)[0]
    for m in prange(n_img):
        for r in range(height):
            if row_win[r] < 0:
                gx[m, r, :] = 0
        for i in range(oh):
            top, g = outs[m, i], gouts[m, i]
            for r in range(lo_h[i], hi_h[i]):
                src, dst = xs[m, r], gx[m, r]
                for c in uncovered_cols:
                    dst[c] = 0
                for j in range(ow):
                    if mode == MAX:
                        t, gj = top[j], g[j]
                        for c in range(lo_w[j], hi_w[j]):
                            dst[c] = gj if src[c] == t else 0
                        continue
                    share = g[j] if mode == SUM else g[j] / (cnt_h[i] * cnt_w[j])
                    for c in range(lo_w[j], hi_w[j]):
                        dst[c] = share


# The native kernels (C functions of native.NativeKernel's signature) and
# their drivers, which check what can raise before the native call.
# params: images, rows, cols, output rows, output cols, then the settings.

def pool_forward_native(xs, out, unused2, unused3, params):
    p = carray(params, (13,))
    n_img, oh, ow = p[0], p[3], p[4]
    pool_forward_into(carray(xs, (n_img, p[1], p[2])), carray(out, (n_img, oh, ow)),
                      p[5], p[6], p[7], p[8], p[9], p[10], p[11] != 0, p[12])
    return native.OK


def pool_grad_native(xs, outs, gouts, gx, params):
    p = carray(params, (13,))
    n_img, oh, ow = p[0], p[3], p[4]
    pool_grad_into(carray(xs, (n_img, p[1], p[2])), carray(outs, (n_img, oh, ow)),
                   carray(gouts, (n_img, oh, ow)), carray(gx, (n_img, p[1], p[2])),
                   p[5], p[6], p[7], p[8], p[9], p[10], p[11] != 0, p[12])
    return native.OK


def max_pool_2x2_native(xs, out, unused2, unused3, params):
    p = carray(params, (13,))
    n_img, oh, ow = p[0], p[3], p[4]
    max_pool_2x2_into(carray(xs, (n_img, p[1], p[2])), carray(out, (n_img, oh, ow)))
    return native.OK


def max_pool_grad_2x2_native(xs, outs, gouts, gx, params):
    p = carray(params, (13,))
    n_img, oh, ow = p[0], p[3], p[4]
    max_pool_grad_2x2_into(carray(xs, (n_img, p[1], p[2])), carray(outs, (n_img, oh, ow)),
                           carray(gouts, (n_img, oh, ow)), carray(gx, (n_img, p[1], p[2])))
    return native.OK


DTYPES = ("float32", "float64")
POOL_FORWARD = native.NativeKernel("pool_forward", pool_forward_native, DTYPES)
POOL_GRAD = native.NativeKernel("pool_grad", pool_grad_native, DTYPES)
MAX_POOL_2X2 = native.NativeKernel("max_pool_2x2", max_pool_2x2_native, DTYPES)
MAX_POOL_GRAD_2X2 = native.NativeKernel("max_pool_grad_2x2", max_pool_grad_2x2_native, DTYPES)
pool_forward_call = POOL_FORWARD.call
pool_grad_call = POOL_GRAD.call
max_pool_2x2_call = MAX_POOL_2X2.call
max_pool_grad_2x2_call = MAX_POOL_GRAD_2X2.call


def kernels_for(ws, stride, pad, ignore_border, mode):
    """The native kernels (forward, gradient) pooling with these settings
    may call: the 2x2 ones, the general ones, or both when the shape
    decides (windows cut at the border)."""
    whole_2x2 = [(MAX_POOL_2X2, MAX_POOL_GRAD_2X2)]
    general = [(POOL_FORWARD, POOL_GRAD)]
    if is_max_2x2(mode, *ws, *stride, *pad):
        return whole_2x2 if ignore_border else whole_2x2 + general
    return general


@kernel
def n_images(shape):
    """The number of images in an array of this shape: its leading axes' product."""
    n = 1
    for d in range(len(shape) - 2):
        n *= shape[d]
    return n


@kernel
def native_params(n_img, height, width, oh, ow, ws_h, ws_w, st_h, st_w, pad_h, pad_w,
                  ignore_border, mode):
    return native.int_params((n_img, height, width, oh, ow, ws_h, ws_w, st_h, st_w,
                              pad_h, pad_w, 1 if ignore_border else 0, mode))


@kernel
def pool_forward(x, ws_h, ws_w, st_h, st_w, pad_h, pad_w, ignore_border, mode):
    """Theano's ``pool_2d`` of the last two axes of ``x``."""
    height, width = x.shape[-2], x.shape[-1]
    oh = out_length(height, ws_h, st_h, pad_h, ignore_border)
    ow = out_length(width, ws_w, st_w, pad_w, ignore_border)
    out = np.empty(x.shape[:-2] + (oh, ow), dtype=x.dtype)
    params = native_params(n_images(x.shape), height, width, oh, ow, ws_h, ws_w, st_h, st_w,
                           pad_h, pad_w, ignore_border, mode)
    xs = native.contiguous(x)
    if is_whole_2x2(mode, ws_h, ws_w, st_h, st_w, pad_h, pad_w, x.shape, oh, ow):
        native.check(max_pool_2x2_call(xs, out, None, None, params))
    else:
        native.check(pool_forward_call(xs, out, None, None, params))
    return out


@kernel
def pool_grad(x, out, gout, ws_h, ws_w, st_h, st_w, pad_h, pad_w, ignore_border, mode):
    """The gradient of :func:`pool_forward` w.r.t. ``x``, given its output
    ``out`` (read in max mode only) and the output gradient ``gout``."""
    height, width = x.shape[-2], x.shape[-1]
    n_img = n_images(x.shape)
    oh = out_length(height, ws_h, st_h, pad_h, ignore_border)
    ow = out_length(width, ws_w, st_w, pad_w, ignore_border)
    check_pool_grad(GRAD, x.shape, out.shape, gout.shape, x.shape[:-2] + (oh, ow))
    if windows_overlap(ws_h, ws_w, st_h, st_w):
        gx = np.zeros(x.shape, dtype=gout.dtype)
    else:
        gx = np.empty(x.shape, dtype=gout.dtype)
    params = native_params(n_img, height, width, oh, ow, ws_h, ws_w, st_h, st_w,
                           pad_h, pad_w, ignore_border, mode)
    gouts = native.contiguous(gout)
    # outside max mode the kernel does not read ``out``: gout stands in
    tops = native.contiguous(out) if mode == MAX else gouts
    xs = native.contiguous(x)
    if is_whole_2x2(mode, ws_h, ws_w, st_h, st_w, pad_h, pad_w, x.shape, oh, ow):
        native.check(max_pool_grad_2x2_call(xs, tops, gouts, gx, params))
    else:
        native.check(pool_grad_call(xs, tops, gouts, gx, params))
    return gx
