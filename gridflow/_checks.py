"""Argument validation shared by the package: every failure names the argument and the fix."""

from __future__ import annotations

import numpy as np


def as_finite_array(value, name: str, *, ndim: int | None = None) -> np.ndarray:
    """`value` as a float64 array, refusing NaN/inf and (optionally) the wrong number of axes."""
    array = np.asarray(value, dtype=np.float64)
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} axes, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def as_points(value, name: str, dim: int) -> np.ndarray:
    """An (n, dim) float64 array of points; a 1D array is accepted when dim == 1."""
    array = as_finite_array(value, name)
    if dim == 1 and array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] != dim:
        raise ValueError(
            f"{name} must be an array of points of shape (n, {dim}), got {array.shape}"
        )
    return array


def positive_float(value, name: str, *, allow_inf: bool = False) -> float:
    """A float > 0 (and finite unless `allow_inf`)."""
    number = float(value)
    if np.isnan(number) or number <= 0 or (np.isinf(number) and not allow_inf):
        bound = "in (0, inf]" if allow_inf else "finite and > 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return number


def symmetric_positive_definite(value, name: str, dim: int | None = None) -> np.ndarray:
    """A symmetric positive definite (d, d) matrix, checked by a Cholesky factorization."""
    matrix = as_finite_array(value, name)
    if matrix.ndim == 0:
        matrix = matrix.reshape(1, 1)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {matrix.shape}")
    if dim is not None and matrix.shape[0] != dim:
        raise ValueError(f"{name} must be ({dim}, {dim}), got {matrix.shape}")
    if not np.allclose(matrix, matrix.T, rtol=1e-12, atol=1e-14 * np.abs(matrix).max()):
        raise ValueError(f"{name} must be symmetric")
    try:
        np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        raise ValueError(f"{name} must be positive definite (Cholesky failed)") from None
    return 0.5 * (matrix + matrix.T)
