"""The OpenBLAS libraries in this process: find them, set their threads,
name their kernels.

NumPy and SciPy wheels each bundle an OpenBLAS; Numba's ``np.dot``, and so
PyTensor's Numba backend and our kernels, call SciPy's.
:func:`pytensor_nnet.tune_for_speed` sets both to one thread (see
:mod:`pytensor_nnet.threads`).

OpenBLAS picks its matrix-product kernels by CPU model when it loads, or as
``OPENBLAS_CORETYPE`` says. :func:`kernel_names` tells which it picked: the
benchmark prints it, because it sets the speed of every product (the docs'
performance page compares kernel sets).
"""
import ctypes


def _names(function):
    """A function's names in the OpenBLAS builds that NumPy and SciPy wheels
    bundle (prefixed, and suffixed for 64-bit ints), and in a plain OpenBLAS."""
    return (f"scipy_openblas_{function}64_", f"scipy_openblas_{function}",
            f"openblas_{function}64_", f"openblas_{function}")


def _find(lib, function):
    for name in _names(function):
        found = getattr(lib, name, None)
        if found is not None:
            return found
    return None


def loaded_openblas():
    """The OpenBLAS shared libraries mapped into this process (Linux), loaded
    first: SciPy's is the one Numba's ``np.dot`` calls."""
    import scipy.linalg.cython_blas  # noqa: F401

    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:  # not Linux: nothing we can find this way
        return []
    libs = []
    for path in sorted(p for p in paths if p.startswith("/") and ".so" in p):
        try:
            libs.append(ctypes.CDLL(path))
        except OSError:
            continue
    return libs


def set_blas_threads(n):
    """Set every loaded OpenBLAS to ``n`` threads; returns how many were set."""
    count = 0
    for lib in loaded_openblas():
        setter = _find(lib, "set_num_threads")
        if setter is not None:
            setter(ctypes.c_int(n))
            count += 1
    return count


def blas_threads():
    """The thread count of each loaded OpenBLAS."""
    getters = [_find(lib, "get_num_threads") for lib in loaded_openblas()]
    return [getter() for getter in getters if getter is not None]


def kernel_names():
    """OpenBLAS's name for the kernels each loaded library runs, e.g. 'Haswell'."""
    names = []
    for lib in loaded_openblas():
        corename = _find(lib, "get_corename")
        if corename is not None:
            corename.restype = ctypes.c_char_p
            names.append(corename().decode())
    return names


def ilp64_gemm(kind):
    """The address of a Fortran ``?gemm`` with 64-bit integers (``kind`` 's'
    or 'd') in a loaded OpenBLAS, NumPy's in its wheels; 0 when none is found."""
    for lib in loaded_openblas():
        for name in (f"scipy_{kind}gemm_64_", f"{kind}gemm_64_"):
            function = getattr(lib, name, None)
            if function is not None:
                return ctypes.cast(function, ctypes.c_void_p).value
    return 0
