"""``kernel``: the decorator of every Numba kernel in this package.

``numba.njit`` with the on-disk cache and ``fastmath=False`` spelled out.
Spelled out because a kernel that left it unset took the fast-math flags of
PyTensor's graph function calling it (Numba 0.68, PyTensor 3.3.8, where
``numba__fastmath`` is on by default): the float32 tanh lost its exact
``tanhf`` bits, and Numba's disk cache then kept whichever version was
compiled first, for every later caller (measured). Our kernels' results must
not depend on who called them first.
"""
from functools import partial

from numba import njit

kernel = partial(njit, cache=True, fastmath=False)
