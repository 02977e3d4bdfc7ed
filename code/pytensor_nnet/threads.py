"""One thread pool for the kernels: Numba's threads over blocks of images.

The conv and pool kernels split a batch into blocks and run the blocks on
Numba's threads; each block calls BLAS for its matrix product. For speed,
BLAS should then run on one thread: two pools that both spin for work
(OpenBLAS's and Numba's) fight over the cores (see the performance page of
the docs). Importing the package changes nothing; :func:`use_one_pool`
(called by :func:`pytensor_nnet.tune_for_speed`) sets the OpenBLAS libraries
loaded in the process (NumPy's and SciPy's, which Numba's ``np.dot`` calls;
see :mod:`pytensor_nnet.blas`) to one thread and leaves the parallelism to
Numba.

Numba's thread count follows its own settings (``NUMBA_NUM_THREADS``, all
cores by default) and :func:`set_num_threads` changes it. The threading
layer is Numba's own choice (OpenMP where Numba has it, see
``NUMBA_THREADING_LAYER``): its calling thread takes a share of the work
itself and its workers wait briefly before they sleep, so a kernel neither
hands its work to another core nor waits for one to wake. Numba's
``workqueue`` layer, which the kernels used to ask for, does both, and a
training step took longer with it on a quiet machine. With another program
busy on a core the OpenMP layer was the slower one (the docs' performance
page has both); ``NUMBA_THREADING_LAYER=workqueue`` chooses the other.
"""
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


def start_workers():
    """Start Numba's workers (Numba's choice of threading layer).

    Called before a kernel is loaded: cached parallel kernels need the
    workers running before they load.
    """
    numba_parallel._launch_threads()


def use_one_pool():
    """Single-threaded BLAS, Numba's workers started (see the module docstring)."""
    start_workers()
    set_blas_threads(1)
