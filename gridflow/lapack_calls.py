"""LAPACK's ?potrf and BLAS's ?trsm and ?syrk, called from numba-compiled code, in double
(d) or single (s) precision after the arrays' type.

scipy exports the Fortran routines of the LAPACK and BLAS it links as C function pointers
(`scipy.linalg.cython_lapack`, `scipy.linalg.cython_blas`). Each is registered with LLVM under
a symbol name of its own and declared to numba by that name: a compiled function that held
the address itself (a ctypes function pointer) could not be cached on disk, as the address
changes from process to process. Fortran's convention: every argument by pointer, matrices
column-major; a matrix here is given as a flat array and the index of its first entry. The
arrays of one call are all float64 (the d routines) or all float32 (the s routines).
"""

from __future__ import annotations

import numpy as np
from llvmlite import binding
from numba import njit, types
from numba.core.extending import get_cython_function_address


def _routine(library: str, name: str, arguments: int) -> types.ExternalFunction:
    symbol = f"gridflow_{name}"
    address = get_cython_function_address(f"scipy.linalg.cython_{library}", name)
    binding.add_symbol(symbol, address)
    return types.ExternalFunction(symbol, types.void(*[types.voidptr] * arguments))


_dpotrf = _routine("lapack", "dpotrf", 5)
_dtrsm = _routine("blas", "dtrsm", 11)
_dsyrk = _routine("blas", "dsyrk", 10)
_spotrf = _routine("lapack", "spotrf", 5)
_strsm = _routine("blas", "strsm", 11)
_ssyrk = _routine("blas", "ssyrk", 10)


@njit(cache=True)
def cholesky_lower(a, start, n):
    """A = L Lᵀ in place for the n × n matrix at a[start:] (its lower triangle; the upper one
    is left as it is). Returns LAPACK's info: 0, or the order of the first leading minor
    that is not positive definite."""
    lower = np.array([ord("L")], dtype=np.uint8)
    sizes = np.array([n, n, 0], dtype=np.int32)  # n, lda, info
    if a.itemsize == 4:
        _spotrf(lower.ctypes, sizes.ctypes, a[start:].ctypes, sizes[1:].ctypes, sizes[2:].ctypes)
    else:
        _dpotrf(lower.ctypes, sizes.ctypes, a[start:].ctypes, sizes[1:].ctypes, sizes[2:].ctypes)
    return sizes[2]


@njit(cache=True)
def solve_lower(a, a_start, n, b, b_start, columns):
    """B ← L⁻¹ B in place: L the n × n lower triangle at a[a_start:], B the n × columns
    matrix at b[b_start:]."""
    flags = np.array([ord("L"), ord("L"), ord("N"), ord("N")], dtype=np.uint8)
    sizes = np.array([n, columns, n, n], dtype=np.int32)  # m, n, lda, ldb
    alpha = np.ones(1, dtype=a.dtype)
    arguments = (flags.ctypes, flags[1:].ctypes, flags[2:].ctypes, flags[3:].ctypes,
                 sizes.ctypes, sizes[1:].ctypes, alpha.ctypes, a[a_start:].ctypes,
                 sizes[2:].ctypes, b[b_start:].ctypes, sizes[3:].ctypes)  # fmt: skip
    if a.itemsize == 4:
        _strsm(*arguments)
    else:
        _dtrsm(*arguments)


@njit(cache=True)
def subtract_gram(a, a_start, k, n, c, c_start):
    """C ← C − Aᵀ A in place, the lower triangle only: A the k × n matrix at a[a_start:], C
    the n × n matrix at c[c_start:]."""
    flags = np.array([ord("L"), ord("T")], dtype=np.uint8)
    sizes = np.array([n, k, k, n], dtype=np.int32)  # n, k, lda, ldc
    factors = np.array([-1.0, 1.0], dtype=a.dtype)  # alpha, beta
    arguments = (flags.ctypes, flags[1:].ctypes, sizes.ctypes, sizes[1:].ctypes, factors.ctypes,
                 a[a_start:].ctypes, sizes[2:].ctypes, factors[1:].ctypes, c[c_start:].ctypes,
                 sizes[3:].ctypes)  # fmt: skip
    if a.itemsize == 4:
        _ssyrk(*arguments)
    else:
        _dsyrk(*arguments)
