"""One thread pool for the kernels: Numba's threads over blocks of images.

The conv and pool kernels split a batch into blocks and run the blocks on
Numba's threads; each block calls BLAS for its matrix product. BLAS must then
run on one thread: two pools that both spin for work (OpenBLAS's and Numba's)
fight over the cores, and on a 2-core machine a training step became 0.5-24 s
instead of 0.2 s (measured). So, on import, :func:`use_one_pool` sets the
OpenBLAS libraries loaded in the process (NumPy's and SciPy's, which Numba's
``np.dot`` calls; see :mod:`pytensor_nnet.blas`) to one thread and leaves
the parallelism to Numba.

Numba's thread count follows its own settings (``NUMBA_NUM_THREADS``, all
cores by default) and :func:`set_num_threads` changes it. Numba's
``workqueue`` threading layer is chosen unless ``NUMBA_THREADING_LAYER`` says
otherwise: its workers sleep when idle, while the OpenMP layer's spinning
workers made a kernel 5x slower whenever another process used a core
(measured). The workqueue layer does not allow parallel kernels launched from
two Python threads at once; set ``NUMBA_THREADING_LAYER=omp`` if you do that.
"""
import os

import numba
from numba.np.ufunc import parallel as numba_parallel

from .blas import set_blas_threads


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
