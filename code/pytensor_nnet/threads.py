"""One thread pool for the kernels: Numba's threads over blocks of images.

The conv and pool kernels split a batch into blocks and run the blocks on
Numba's threads; each block calls BLAS for its matrix product. BLAS must then
run on one thread: two pools that both spin for work (OpenBLAS's and Numba's)
fight over the cores, and on a 2-core machine a training step became 0.5-24 s
instead of 0.2 s (measured). So, on import, :func:`use_one_pool` sets the
OpenBLAS libraries loaded in the process (NumPy's and SciPy's, which Numba's
``np.dot`` calls) to one thread and leaves the parallelism to Numba.

Numba's thread count follows its own settings (``NUMBA_NUM_THREADS``, all
cores by default) and :func:`set_num_threads` changes it. Numba's
``workqueue`` threading layer is chosen unless ``NUMBA_THREADING_LAYER`` says
otherwise: its workers sleep when idle, while the OpenMP layer's spinning
workers made a kernel 5x slower whenever another process used a core
(measured). The workqueue layer does not allow parallel kernels launched from
two Python threads at once; set ``NUMBA_THREADING_LAYER=omp`` if you do that.
"""
import ctypes
import os

import numba
from numba.np.ufunc import parallel as numba_parallel

# setter names in the OpenBLAS builds that NumPy and SciPy wheels bundle,
# and in a plain system OpenBLAS
_BLAS_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)


def _loaded_openblas_paths():
    """Paths of the OpenBLAS shared libraries mapped into this process (Linux)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:  # not Linux: nothing we can find this way
        return []
    return sorted(p for p in paths if p.startswith("/") and ".so" in p)


def set_blas_threads(n):
    """Set every loaded OpenBLAS to ``n`` threads; returns how many were set."""
    import scipy.linalg.cython_blas  # noqa: F401  (loads the BLAS Numba calls)

    count = 0
    for path in _loaded_openblas_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _BLAS_SETTERS:
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(ctypes.c_int(n))
                count += 1
                break
    return count


def set_num_threads(n):
    """Run the kernels on ``n`` threads (at most Numba's ``NUMBA_NUM_THREADS``)."""
    n = int(n)
    if not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(
            f"threads must be 1 to {numba.config.NUMBA_NUM_THREADS} "
            f"(NUMBA_NUM_THREADS), got {n}"
        )
    numba.set_num_threads(n)


def get_num_threads():
    """The number of threads the kernels run on."""
    return numba.get_num_threads()


def use_one_pool():
    """Single-threaded BLAS, Numba's workers started (see the module docstring)."""
    if "NUMBA_THREADING_LAYER" not in os.environ and not numba_parallel._is_initialized:
        numba.config.THREADING_LAYER = "workqueue"
    # Cached parallel kernels need Numba's workers running before they load.
    numba_parallel._launch_threads()
    set_blas_threads(1)
