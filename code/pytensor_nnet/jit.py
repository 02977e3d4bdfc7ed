"""``kernel``: the decorator of every Numba kernel in this package.

``numba.njit`` with the on-disk cache and ``fastmath=False`` spelled out.
Spelled out because a kernel that left it unset took the fast-math flags of
PyTensor's graph function calling it (Numba 0.68, PyTensor 3.3.8, where
``numba__fastmath`` is on by default): the float32 tanh lost its exact
``tanhf`` bits, and Numba's disk cache then kept whichever version was
compiled first, for every later caller. Our kernels' results must
not depend on who called them first.

The disk cache: Numba checks a cached function against its own source file
only, so an edit to a function it calls in another module (every driver
calls :mod:`pytensor_nnet.native`) would leave the cached caller running the
old code. Functions of this package are therefore checked against all of its
sources (:class:`PackageLocator`): any edit here recompiles them all.
"""
import hashlib
import os
from functools import partial

from numba import njit
from numba.core.caching import CacheImpl, _CacheLocator

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def package_stamp():
    """A hash of every Python source of this package."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(PACKAGE_DIR)):
        if name.endswith(".py"):
            with open(os.path.join(PACKAGE_DIR, name), "rb") as source:
                digest.update(name.encode() + b"\0" + source.read())
    return digest.hexdigest()


class PackageLocator(_CacheLocator):
    """Numba's own cache locator for a function of this package (the first
    that accepts it), with :func:`package_stamp` as the source stamp."""

    stamp = package_stamp()

    def __init__(self, inner):
        self._inner = inner

    def ensure_cache_path(self):
        self._inner.ensure_cache_path()

    def get_cache_path(self):
        return self._inner.get_cache_path()

    def get_source_stamp(self):
        return self.stamp

    def get_disambiguator(self):
        return self._inner.get_disambiguator()

    @classmethod
    def from_function(cls, py_func, py_file):
        if os.path.dirname(os.path.abspath(py_file)) != PACKAGE_DIR:
            return None
        for locator in CacheImpl._locator_classes:
            if locator is not cls:
                inner = locator.from_function(py_func, py_file)
                if inner is not None:
                    return cls(inner)
        return None


if PackageLocator not in CacheImpl._locator_classes:
    CacheImpl._locator_classes.insert(0, PackageLocator)

kernel = partial(njit, cache=True, fastmath=False)
