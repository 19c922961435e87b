"""Argument checks shared by both packages: every failure names the argument and the fix.

A wrong kind of object (not a number, not a Generator) is a ``TypeError``, a wrong value
or shape a ``ValueError``; the command lines turn both into one ``error:`` line.
"""

from __future__ import annotations

import numbers
import pathlib
import tempfile

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
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be an array of points of shape (n, {dim}), got {array.shape}"
        )
    if array.shape[1] != dim:
        raise ValueError(
            f"{name} must have {dim} columns (the dimension), got shape {array.shape}; "
            f"pass points of shape (n, {dim})"
        )
    return array


def as_float(value, name: str) -> float:
    """float(value), or a ValueError naming `name` when it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def summable(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The nonnegative `arrays` unchanged, or all divided by their common maximum when one of
    their sums overflows float64 (values near 1e308); ratios of sums are unaffected."""
    with np.errstate(over="ignore"):
        if all(np.isfinite(array.sum()) for array in arrays):
            return arrays
    scale = max(float(array.max()) for array in arrays)
    return tuple(array / scale for array in arrays)


def positive_float(value, name: str, *, allow_inf: bool = False) -> float:
    """A float > 0 (and finite unless `allow_inf`)."""
    number = as_float(value, name)
    if np.isnan(number) or number <= 0 or (np.isinf(number) and not allow_inf):
        bound = "in (0, inf]" if allow_inf else "finite and > 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return number


def open_unit_interval(value, name: str) -> float:
    """A float strictly between 0 and 1."""
    number = as_float(value, name)
    if not 0.0 < number < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
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
    return 0.5 * matrix + 0.5 * matrix.T  # halves first: no overflow near the float range


def writable_folder(value, name: str) -> pathlib.Path:
    """An existing folder in which a file can be created (probed by creating one)."""
    folder = pathlib.Path(value)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{name}: {str(folder)!r} is a file, not a folder")
    if not folder.is_dir():
        raise ValueError(f"{name}: the folder {str(folder)!r} does not exist; create it first")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ValueError(f"{name}: cannot write in the folder {str(folder)!r} ({reason})") from None
    return folder


def output_file(value, name: str, suffix: str) -> pathlib.Path:
    """A path ending in `suffix` whose folder exists and is writable, and that is not a folder."""
    path = pathlib.Path(value)
    if path.name in ("", ".", ".."):
        raise ValueError(f"{name} must be a file name ending in {suffix}, got {str(value)!r}")
    if path.suffix != suffix:
        raise ValueError(
            f"{name} must end in {suffix}, got {str(path)!r}; write e.g. "
            f"{str(path.with_suffix(suffix))!r} (the file is written under exactly that name)"
        )
    if path.is_dir():
        raise ValueError(f"{name}: {str(path)!r} is a folder, give a file name ending in {suffix}")
    writable_folder(path.parent, name)
    return path


def output_folder(value, name: str) -> pathlib.Path:
    """A folder to write into: an existing writable one, or a new one in an existing parent."""
    folder = pathlib.Path(value)
    if folder.exists():
        return writable_folder(folder, name)
    writable_folder(folder.parent, f"{name} (the parent of {str(folder)!r}, which is created)")
    return folder


def readonly_copy(value) -> np.ndarray:
    """A float64 copy of ``value`` that cannot be written to (for frozen dataclasses)."""
    array = np.array(value, dtype=np.float64, copy=True)
    array.setflags(write=False)
    return array


def positive_int(value, name: str) -> int:
    """``value`` as a positive Python int; TypeError for non-integers, ValueError if < 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


def require_generator(rng, name: str = "rng") -> np.random.Generator:
    """``rng`` if it is a numpy Generator, else a TypeError with the fix."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{name} must be a numpy.random.Generator, got {type(rng).__name__}; "
            f"pass e.g. {name}=np.random.default_rng(seed)"
        )
    return rng
