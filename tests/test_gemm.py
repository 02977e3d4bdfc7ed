"""The kernels' matrix product: NumPy's OpenBLAS through a slot, else Numba's."""
import numba
import numpy as np
import pytest

from pytensor_nnet import blas, gemm


@numba.njit
def product(a, b, out):
    gemm.matmul_into(a, b, out)


@numba.njit
def numba_product(a, b, out):
    np.dot(a, b, out)


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """BLAS on one thread, as the kernels run it (tune_for_speed): a
    multi-threaded OpenBLAS may round a product otherwise, each library in
    its own way."""
    before = blas.blas_threads()
    blas.set_blas_threads(1)
    yield
    if before:
        blas.set_blas_threads(before[0])  # NumPy's and SciPy's: both their default


@pytest.fixture(params=["library", "numba"])
def which(request):
    """Each test twice: through the library slot (where it is filled) and
    through Numba's own ``?gemm``, the slot emptied."""
    saved = {d: gemm.library_gemm(d) for d in ("float32", "float64")}
    if request.param == "library" and not saved["float32"]:
        pytest.skip("no 64-bit-int OpenBLAS loaded (NumPy without its OpenBLAS wheel)")
    if request.param == "numba":
        for dtype in saved:
            gemm.use_library_gemm(dtype, 0)
    yield request.param
    for dtype, address in saved.items():
        gemm.use_library_gemm(dtype, address)


def operands(m, k, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((m, k)).astype(dtype),
            rng.standard_normal((k, n)).astype(dtype))


# the kernels' products: LeNet's layers (filters x patches, its transpose for
# the input gradient, the filter gradient with a transposed operand)
LAYOUTS = [((50, 500, 512), False, False), ((20, 25, 4032), False, False),
           ((500, 50, 512), True, False), ((50, 4096, 500), False, True),
           ((7, 3, 5), True, True)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape, a_transposed, b_transposed", LAYOUTS)
def test_products_equal_numbas_bit_for_bit(which, dtype, shape, a_transposed, b_transposed):
    """The same bits as np.dot in jitted code (Numba's own path, SciPy's
    BLAS), also through NumPy's OpenBLAS: the speed changes, the numbers
    the tutorials print do not."""
    m, k, n = shape
    a, b = operands(m, k, n, dtype)
    if a_transposed:
        a = np.ascontiguousarray(a.T).T
    if b_transposed:
        b = np.ascontiguousarray(b.T).T
    out, expected = np.full((m, n), np.nan, dtype), np.empty((m, n), dtype)
    product(a, b, out)
    numba_product(a, b, expected)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_allclose(out, a.astype(np.float64) @ b.astype(np.float64),
                               rtol=1e-4 if dtype == "float32" else 1e-12, atol=1e-3)


def test_empty_and_zero_inner_dimension(which):
    a, b = operands(4, 0, 3, "float32")
    out = np.full((4, 3), np.nan, np.float32)
    product(a, b, out)
    np.testing.assert_array_equal(out, 0)
    a, b = operands(0, 5, 3, "float32")
    product(a, b, np.empty((0, 3), np.float32))  # nothing to do, and no error


def test_an_operand_blas_cannot_read_is_an_error():
    a, b = operands(6, 8, 4, "float64")
    with pytest.raises(ValueError, match="neither rows nor columns contiguous"):
        product(a[:, ::2], b[::2], np.empty((6, 4)))


def test_numpys_openblas_is_found_where_its_wheel_bundles_it():
    """On Linux, NumPy's wheels bundle a 64-bit-int OpenBLAS
    (``scipy_openblas64_``): the slots then hold its ?gemm."""
    numpys = [lib for lib in blas.loaded_openblas()
              if getattr(lib, "scipy_sgemm_64_", None) is not None]
    if not numpys:
        pytest.skip("NumPy's OpenBLAS with 64-bit ints is not loaded here")
    assert gemm.library_gemm("float32") == blas.ilp64_gemm("s") != 0
    assert gemm.library_gemm("float64") == blas.ilp64_gemm("d") != 0
