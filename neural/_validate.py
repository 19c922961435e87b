"""Input checks shared by the neural modules.

Each check raises a ``TypeError`` (wrong kind of object) or ``ValueError`` (wrong
shape or value) whose message names the argument and says how to fix it, and
otherwise returns the input as a C-contiguous float64 array (a copy only when
needed).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from numba import njit

from gridflow.checks import positive_int, require_generator  # noqa: F401 (shared checks)
from neural._kernels import JIT

_FLOAT64 = np.dtype(np.float64)


def as_float_array(value, name: str) -> np.ndarray:
    """``value`` as a C-contiguous float64 array; TypeError if not real numbers."""
    if type(value) is np.ndarray and value.dtype is _FLOAT64 and value.flags.c_contiguous:
        return value  # the common case, checked first: these checks run in inner loops
    array = np.asarray(value)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.floating)
        or np.issubdtype(array.dtype, np.integer)
        or array.dtype == np.bool_
    ):
        raise TypeError(
            f"{name} must be an array of real numbers, got dtype {array.dtype}; "
            f"pass a float64 numpy array"
        )
    return np.ascontiguousarray(array, dtype=np.float64)


@njit(**JIT)
def _all_finite(array):
    """Whether every entry is finite; one compiled pass (np.isfinite(a).all() allocates a
    temporary and costs microseconds on the small arrays of the schemes' inner loops)."""
    for value in array.flat:
        if not math.isfinite(value):
            return False
    return True


def require_finite(array: np.ndarray, name: str) -> None:
    """ValueError naming ``name`` if ``array`` holds NaN or infinite entries."""
    if not _all_finite(array):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        hint = " (e.g. x = x[np.isfinite(x).all(axis=1)])" if np.ndim(array) == 2 else ""
        raise ValueError(
            f"{name} contains {bad} NaN or infinite entries; remove or replace them "
            f"before calling{hint}"
        )


def as_points(value, name: str, dim: int | None = None, min_points: int = 1) -> np.ndarray:
    """A finite (n, d) float64 array of points with n >= min_points (and d == dim if given)."""
    points = as_float_array(value, name)
    shape = points.shape
    if len(shape) != 2:
        hint = " (a single point must be passed as shape (1, d))" if len(shape) == 1 else ""
        raise ValueError(
            f"{name} must be a 2-D array of points with shape (n, d), got shape {shape}{hint}"
        )
    if dim is not None and shape[1] != dim:
        raise ValueError(
            f"{name} must have {dim} columns (the dimension), got shape {shape}; "
            f"pass points of shape (n, {dim})"
        )
    if shape[1] < 1:
        raise ValueError(f"{name} must have at least one column, got shape {shape}")
    if shape[0] < min_points:
        raise ValueError(f"{name} must hold at least {min_points} point(s), got shape {shape}")
    require_finite(points, name)
    return points


def positive_float(value, name: str, allow_zero: bool = False, hint: str = "") -> float:
    """``value`` as a finite float > 0 (or >= 0 with allow_zero); ``hint`` ends the message."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}{hint}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond the float range
        number = math.inf
    if not math.isfinite(number) or number < 0.0 or (number == 0.0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}{hint}")
    return number


def flag(value, name: str) -> bool:
    """``value`` as a bool if it is True or False (numpy's too), else TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)
