"""Kernels compiled once, as C functions, and called through named pointers.

Why: PyTensor's Numba backend compiles each graph into one function, and
Numba links the LLVM code of every jitted function a function calls into
the caller, where it is optimised and turned into machine code again. Our
kernels are large (parallel loops around BLAS calls), so each new graph, and
each new ``conv2d`` or ``pool_2d`` setting, compiled them all over again,
although their machine code sat in Numba's disk cache.

So each kernel is compiled once per dtype into a C function
(``numba.cfunc``, disk-cached), and compiled code calls it through a
pointer kept in a named global, its *slot*. A slot's symbol is registered
with LLVM (``llvmlite.binding.add_symbol``) when the kernel is declared, on
import, so it exists before any code that refers to it is compiled or loaded
from a cache; the C function itself is built on the first use of its dtype:
the Ops' Numba dispatch asks for it (:meth:`NativeKernel.ensure`) while a
graph compiles, and a call that finds its slot empty fills it itself. A
caller then holds only a load and a call, and what a new graph compiles is
the small *driver* around each kernel: the checks that raise, the output
shapes, the allocations.

Every kernel has the same C signature::

    int64 kernel(T *a0, T *a1, T *a2, T *a3, int64 *params)

four array data pointers of the kernel's dtype ``T`` (null where unused) and
integers (shapes and settings, as each kernel defines them). An exception
cannot leave a C function, so a driver checks everything that could raise
before the call, and the kernel returns :data:`OK`; Numba prints an
exception raised inside anyway, and the kernel then returns 0, which
:func:`check` turns into an error.

A driver and its kernel agree on the layout of ``params``; Numba's disk
cache checks every function of this package against all of its sources
(see :mod:`pytensor_nnet.jit`), so the two are never cached out of step.
"""
import ctypes
import traceback

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import carray, types
from numba.core import cgutils
from numba.core.caching import FunctionCache
from numba.core.errors import TypingError
from numba.core.registry import cpu_target
from numba.extending import intrinsic, overload

from . import prebuild, threads
from .jit import kernel

#: What a kernel returns when it ran; the call returns UNAVAILABLE when the
#: kernel could not be built, 0 when an exception was raised inside.
OK = 1
UNAVAILABLE = -1

_PREFIX = "pytensor_nnet_native_"
_FILL_SYMBOL = _PREFIX + "fill"
_slots = {}  # slot address -> (kernel, dtype)
kernels = {}  # name -> NativeKernel


class NativeKernel:
    """A kernel body behind one slot per dtype.

    ``body(a0, a1, a2, a3, params)`` is a plain Python function, compiled
    with :func:`numba.cfunc` for each dtype (pointer arguments, see the
    module docstring); it must return :data:`OK`. ``kernel.call(a0, a1, a2,
    a3, params)`` calls it from jitted code: arrays (or ``None``) whose data
    are passed as they are (the driver makes them contiguous, or passes
    strides in ``params``), and a C-contiguous int64 array; it returns the
    kernel's status.
    """

    def __init__(self, name, body, dtypes):
        if name in kernels:
            raise ValueError(f"a native kernel named {name!r} exists already")
        kernels[name] = self
        self.name = name
        self.body = body
        self.module = body.__module__
        self.dtypes = tuple(np.dtype(d).name for d in dtypes)
        self._slots = {}
        self._compiled = {}  # dtype -> the CFunc (keeps its code alive)
        for dtype in self.dtypes:
            slot = ctypes.c_int64(0)
            symbol = f"{_PREFIX}{name}_{dtype}"
            llvm.add_symbol(symbol, ctypes.addressof(slot))
            self._slots[dtype] = (symbol, slot)
            _slots[ctypes.addressof(slot)] = (self, dtype)
        self.call = _caller(self)

    def __repr__(self):
        return f"NativeKernel({self.name!r}, dtypes={self.dtypes})"

    def symbol(self, dtype):
        return self._slots[np.dtype(dtype).name][0]

    def signature(self, dtype):
        pointer = types.CPointer(numba.from_dtype(np.dtype(dtype)))
        return types.int64(pointer, pointer, pointer, pointer, types.CPointer(types.int64))

    def ensure(self, dtype):
        """Build the kernel for ``dtype`` (from the disk cache when it is
        there) unless it is built; returns its address."""
        dtype = np.dtype(dtype).name
        if dtype not in self._slots:
            raise TypeError(f"{self.name}: no kernel for {dtype} (only {self.dtypes})")
        slot = self._slots[dtype][1]
        if not slot.value:
            prebuild.wait(self, dtype)  # it may be writing the disk cache right now
            threads.start_workers()  # cached parallel kernels load only with them running
            compiled = numba.cfunc(self.signature(dtype), cache=True, fastmath=False)(self.body)
            self._compiled[dtype] = compiled
            slot.value = compiled.address
        return slot.value

    def prefetch(self, dtype):
        """Have the kernel for ``dtype`` ready by its first call: load it now
        when the disk cache has it, else have a helper process build it
        meanwhile (see :mod:`pytensor_nnet.prebuild`)."""
        dtype = np.dtype(dtype).name
        slot = self._slots.get(dtype)
        if slot and not slot[1].value and not self.in_disk_cache(dtype) \
                and prebuild.request(self, dtype):
            return
        self.ensure(dtype)  # built already, cached, no helper, or a dtype it lacks

    def in_disk_cache(self, dtype):
        """Whether Numba's disk cache holds this kernel for ``dtype``, for
        the current sources (looked up in the cache's index, not loaded)."""
        try:
            cache = FunctionCache(self.body)
            key = cache._index_key(self.signature(dtype), cpu_target.target_context.codegen())
            return key in cache._cache_file._load_index()
        except Exception:  # Numba's internals moved: say no, and build it
            return False


@ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)
def _fill(slot_address):
    """Called from jitted code that found a slot empty: build its kernel."""
    try:
        kernel, dtype = _slots[slot_address]
        return kernel.ensure(dtype)
    except BaseException:  # nothing may propagate into the caller's C frames
        traceback.print_exc()
        return 0


_fill_slot = ctypes.c_int64(ctypes.cast(_fill, ctypes.c_void_p).value)
llvm.add_symbol(_FILL_SYMBOL, ctypes.addressof(_fill_slot))


def _caller(kernel):
    """The intrinsic ``kernel.call``: load the slot for the arrays' dtype
    (filling it when empty) and call through it."""

    @intrinsic
    def call(typingctx, a0, a1, a2, a3, params):
        arrays = [a for a in (a0, a1, a2, a3) if isinstance(a, types.Array)]
        if any(not isinstance(a, (types.Array, types.NoneType)) for a in (a0, a1, a2, a3)):
            raise TypingError(f"{kernel.name}: the first four arguments are arrays or None")
        dtypes = {str(a.dtype) for a in arrays}
        if len(dtypes) != 1 or next(iter(dtypes)) not in kernel.dtypes:
            raise TypingError(f"{kernel.name}: arrays of one dtype of {kernel.dtypes}, "
                              f"got {dtypes}")
        if not (isinstance(params, types.Array) and params.dtype == types.int64
                and params.ndim == 1 and params.layout == "C"):
            raise TypingError(f"{kernel.name}: params must be a C-contiguous int64 vector")
        dtype = dtypes.pop()
        symbol = kernel.symbol(dtype)
        sig = types.int64(a0, a1, a2, a3, params)

        def codegen(context, builder, signature, args):
            i64 = ir.IntType(64)
            pointer = context.get_data_type(numba.from_dtype(np.dtype(dtype))).as_pointer()
            pointers = []
            for ty, value in zip(signature.args[:4], args[:4]):
                if isinstance(ty, types.Array):
                    data = context.make_array(ty)(context, builder, value).data
                    pointers.append(builder.bitcast(data, pointer))
                else:
                    pointers.append(ir.Constant(pointer, None))
            params_data = context.make_array(signature.args[4])(context, builder, args[4]).data
            pointers.append(builder.bitcast(params_data, i64.as_pointer()))

            slot = context.get_c_value(builder, i64, symbol)
            address = cgutils.alloca_once_value(builder, builder.load(slot))
            with builder.if_then(cgutils.is_null(builder, builder.load(address)), likely=False):
                fill_type = ir.FunctionType(i64, [i64])
                fill_address = builder.load(context.get_c_value(builder, i64, _FILL_SYMBOL))
                fill = builder.inttoptr(fill_address, fill_type.as_pointer())
                builder.store(builder.call(fill, [builder.ptrtoint(slot, i64)]), address)
            status = cgutils.alloca_once_value(builder, i64(UNAVAILABLE))
            with builder.if_then(cgutils.is_not_null(builder, builder.load(address)), likely=True):
                kernel_type = ir.FunctionType(i64, [pointer] * 4 + [i64.as_pointer()])
                function = builder.inttoptr(builder.load(address), kernel_type.as_pointer())
                builder.store(builder.call(function, pointers), status)
            return builder.load(status)

        return sig, codegen

    return call


@kernel
def check(status):
    """Raise unless a kernel call returned :data:`OK`."""
    if status == UNAVAILABLE:
        raise RuntimeError("pytensor_nnet: a kernel could not be built "
                           "(see the error printed above)")
    if status != OK:
        raise RuntimeError("pytensor_nnet: a kernel failed (see the error printed above)")


@kernel
def int_params(values):
    """A tuple of ints as the int64 vector a kernel takes."""
    params = np.empty(len(values), dtype=np.int64)
    for i in range(len(values)):
        params[i] = values[i]
    return params


def copy_body(src, dst, unused2, unused3, params):
    """``dst`` (C order) = the array at ``src``; params: ndim, the shape,
    the strides in elements (any sign)."""
    ndim = params[0]
    p = carray(params, (1 + 2 * ndim,))
    shape, strides = p[1:1 + ndim], p[1 + ndim:]
    size = 1
    for d in range(ndim):
        size *= shape[d]
    if size == 0:
        return OK
    if ndim == 0:
        dst[0] = src[0]
        return OK
    cols, col_stride = shape[ndim - 1], strides[ndim - 1]
    index = np.zeros(ndim, dtype=np.int64)
    offset = 0
    for start in range(0, size, cols):
        for j in range(cols):
            dst[start + j] = src[offset + j * col_stride]
        # the next row: advance the other axes like an odometer
        d = ndim - 2
        while d >= 0:
            index[d] += 1
            offset += strides[d]
            if index[d] < shape[d]:
                break
            offset -= strides[d] * shape[d]
            index[d] = 0
            d -= 1
    return OK


COPY = NativeKernel("copy", copy_body, ("float32", "float64"))
copy_call = COPY.call


def contiguous(x):
    """``x`` when it is C-contiguous, else a C-contiguous copy (in jitted code)."""
    return np.ascontiguousarray(x)


@overload(contiguous, jit_options={"fastmath": False})
def _contiguous(x):
    # Nothing to compile for arrays typed C-contiguous (PyTensor's); others
    # are copied by a native kernel, since the copy loops of
    # np.ascontiguousarray made every driver, and every graph, larger.
    if not isinstance(x, types.Array):
        return None
    if x.layout == "C":
        return lambda x: x

    def copy(x):
        if x.flags.c_contiguous:
            return x
        out = np.empty(x.shape, dtype=x.dtype)
        params = np.empty(1 + 2 * x.ndim, dtype=np.int64)
        params[0] = x.ndim
        for d in range(x.ndim):
            params[1 + d] = x.shape[d]
            params[1 + x.ndim + d] = x.strides[d] // x.itemsize
        check(copy_call(x, out, None, None, params))
        return out

    return copy
