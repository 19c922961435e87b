"""Argument checks shared by both packages: every failure names the argument and the fix.

A wrong kind of object (not a number, not a Generator) is a ``TypeError``, a wrong value
or shape a ``ValueError``; the command lines turn both into one ``error:`` line.
"""

from __future__ import annotations

import math
import numbers
import os
import pathlib
import stat
import tempfile

import numpy as np
from numba import njit

from gridflow.memory import check_memory

_FLOAT64 = np.dtype(np.float64)


def as_float_array(value, name: str) -> np.ndarray:
    """``value`` as a C-contiguous float64 array; TypeError if it is not real numbers.

    Booleans are not numbers here (True would be taken for 1.0), and a masked array is
    refused: converting it drops the mask, and the masked entries would count.
    """
    if type(value) is np.ndarray and value.dtype is _FLOAT64 and value.flags.c_contiguous:
        return value  # the common case, checked first: these checks run in inner loops
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a masked array, whose masked entries would count; pass "
            f"{name}.compressed() or {name}.filled(value) (or select the rows to keep)"
        )
    try:
        array = np.asarray(value)
    except ValueError as error:  # numpy's "inhomogeneous shape" for nested lists
        if "inhomogeneous" not in str(error):
            raise
        raise ValueError(
            f"{name} is a ragged list (rows of different lengths); give every row the "
            f"same number of entries"
        ) from None
    if array.dtype == np.bool_:
        raise TypeError(f"{name} must be numbers, got booleans")
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise TypeError(
            f"{name} must be an array of real numbers, got {_kind(value, array)}; "
            f"pass a float64 numpy array"
        )
    return np.asarray(array, dtype=np.float64, order="C")  # keeps 0-d (ascontiguousarray: 1-d)


def _kind(value, array: np.ndarray) -> str:
    """What a value that is not real numbers is, for a message: its type (str, None), or
    for an array its dtype and for a list the type of its first entry."""
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"dtype {value.dtype}"
    if array.ndim == 0:
        return type(value).__name__
    entry = array.flat[0] if array.size else None
    entry = entry.item() if isinstance(entry, np.generic) else entry
    entry_kind = "None" if entry is None else type(entry).__name__
    return f"a {type(value).__name__} of {entry_kind}"


@njit(cache=True, nogil=True)
def _all_finite(array):
    """Whether every entry is finite; one compiled pass (np.isfinite(a).all() allocates a
    temporary and costs microseconds on the small arrays of the training loops)."""
    for value in array.flat:
        if not math.isfinite(value):
            return False
    return True


def require_finite(array: np.ndarray, name: str) -> None:
    """ValueError naming ``name`` if the float64 ``array`` holds NaN or infinite entries."""
    if not _all_finite(array):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        hint = " (e.g. x = x[np.isfinite(x).all(axis=1)])" if np.ndim(array) == 2 else ""
        raise ValueError(
            f"{name} contains {bad} NaN or infinite entries; remove or replace them "
            f"before calling{hint}"
        )


def as_finite_array(value, name: str, *, ndim: int | None = None) -> np.ndarray:
    """``value`` as a finite float64 array (and with ``ndim`` axes, if given)."""
    array = as_float_array(value, name)
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} axes, got shape {array.shape}")
    require_finite(array, name)
    return array


def as_points(value, name: str, dim: int | None = None, min_points: int = 1) -> np.ndarray:
    """A finite (n, d) float64 array of points with n >= min_points (and d == dim if given).

    Points are always two-dimensional arrays, in d = 1 too: a vector (n,) is refused (a
    map would return (n, 1), and T(x) - x would broadcast to (n, n) silently). Booleans are
    no coordinates (True would be taken for 1.0).
    """
    points = as_float_array(value, name)
    shape = points.shape
    if len(shape) != 2:
        hint = (
            f" (a single point must be passed as shape (1, d); in d = 1 pass {name}[:, None])"
            if len(shape) == 1
            else ""
        )
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


def as_shaped_array(value, shape: tuple[int, ...], name: str, meaning: str = "") -> np.ndarray:
    """``value`` as a float64 array of exactly ``shape``: never broadcast nor reshaped.

    A vector (n,) is not taken for a column (n, 1), nor the (n, n) array that subtracting
    one from the other gives for a field (n, 1); ``meaning`` (e.g. " = problem.points.shape")
    follows the expected shape in the ValueError, which names ``name``.
    """
    array = as_float_array(value, name)
    shape = tuple(int(size) for size in shape)
    if array.shape == shape:
        return array
    hint = ""
    if len(shape) >= 2 and shape[-1] == 1 and array.shape == shape[:-1]:
        hint = f"; pass a column of shape {shape} (e.g. {name}[..., None]), not a vector"
    elif len(shape) == 2 and shape[1] == 1 and array.shape == (shape[0], shape[0]):
        hint = (
            f" (the result of subtracting a vector {shape[:1]} from a column {shape}: "
            f"keep both of shape {shape})"
        )
    elif array.shape == shape[::-1]:
        hint = " (transposed?)"
    raise ValueError(f"{name} must have shape {shape}{meaning}, got {array.shape}{hint}")


def as_node_values(value, grid_shape: tuple[int, ...], name: str) -> np.ndarray:
    """Values at the nodes of a grid, given flattened (N,) or as ``grid_shape``, as (N,).

    Any other shape is refused, even of size N: a (N, 1) column broadcasts later, and a
    transposed grid would reorder the nodes silently.
    """
    array = as_float_array(value, name)
    shape = tuple(int(size) for size in grid_shape)
    size = int(np.prod(shape))
    if array.shape not in ((size,), shape):
        raise ValueError(
            f"{name} must hold one value per grid node, with shape ({size},) or the grid's "
            f"shape {shape}, got {array.shape}"
        )
    return array.reshape(size)


def check_map_on_points(
    points, weights, values, owner: str, shape: tuple[int, int] | None = None
) -> tuple[int, int]:
    """(n, d) for points (n, d) of an object ``owner`` (exactly ``shape`` if given: the cell
    centers of its grid), with weights (n,) and, unless None, the values (n, d) of a map at
    them, all finite; ValueError naming the field otherwise."""
    if shape is not None:
        points = as_shaped_array(points, shape, f"{owner}.points", " (the grid's cell centers)")
    points = as_float_array(points, f"{owner}.points")
    if points.ndim != 2 or points.shape[1] < 1:
        raise ValueError(f"{owner}.points must have shape (n, d), got {points.shape}")
    weights = as_shaped_array(
        weights, points.shape[:1], f"{owner}.weights", " = (n,) for points (n, d)"
    )
    require_finite(points, f"{owner}.points")
    require_finite(weights, f"{owner}.weights")
    if values is not None:
        require_finite(
            as_shaped_array(values, points.shape, f"{owner}.map", " = points.shape"),
            f"{owner}.map",
        )
    return points.shape


def _scalar(value):
    """A 0-d numpy array as the Python number it holds (np.array(0.5) is a real number as
    np.float64(0.5) is); any other value unchanged."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype != object:
        return value.item()
    return value


def as_float(value, name: str) -> float:
    """``value`` as a float; TypeError if it is not a real number (text is parsed by the
    command lines, ``gridflow.cli.number``, not here). A 0-d numpy array counts as the
    number it holds."""
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        return float(value)
    except OverflowError:  # an integer beyond the float range
        return math.inf


def summable(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The nonnegative `arrays` unchanged, or all divided by their common maximum when one of
    their sums overflows float64 (values near 1e308); ratios of sums are unaffected."""
    with np.errstate(over="ignore"):
        if all(np.isfinite(array.sum()) for array in arrays):
            return arrays
    scale = max(float(array.max()) for array in arrays)
    return tuple(array / scale for array in arrays)


def recorded_number(record: dict, key: str, owner: str, need: str, positive: bool = False):
    """``record[key]`` (a file's metadata) as a finite float >= 0 (> 0 if ``positive``);
    else a ValueError saying that ``owner`` records none or a wrong one, and ``need``."""
    value = record.get(key)
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value < 0
        or (positive and value == 0)
    ):
        recorded = f"records no {key}" if value is None else f"records {key} {value!r}"
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{owner} {recorded}: {need}, a finite number {bound}")
    return float(value)


def positive_float(value, name: str, allow_zero: bool = False, hint: str = "") -> float:
    """``value`` as a finite float > 0 (or >= 0 with allow_zero); ``hint`` ends the message."""
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}{hint}")
    number = as_float(value, name)
    if not math.isfinite(number) or number < 0.0 or (number == 0.0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}{hint}")
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


def as_path(value, name: str) -> pathlib.Path:
    """``value`` as a pathlib.Path if it is a file name (a str or a path object), else a
    TypeError naming ``name``."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(
            f"{name} must be a file name (a str or pathlib.Path), got "
            f"{'None' if value is None else type(value).__name__}"
        )
    return pathlib.Path(value)


def unreadable(path: pathlib.Path) -> str | None:
    """Why ``path`` is no file to read ("does not exist", "is a folder", "is not a regular
    file …", the system's reason), or None. A pipe or device is refused before it is opened:
    reading one can wait forever."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as error:
        return f"cannot be read ({error.strerror or type(error).__name__})"
    if stat.S_ISDIR(mode):
        return "is a folder"
    if not stat.S_ISREG(mode):
        return "is not a regular file (a pipe, socket or device)"
    if not os.access(path, os.R_OK):
        return "cannot be read (permission denied)"
    return None


def output_file(value, name: str, suffix: str) -> pathlib.Path:
    """A path ending in `suffix` whose folder exists and is writable, and that is not a folder."""
    path = as_path(value, name)
    if path.name in ("", ".", ".."):
        raise ValueError(f"{name} must be a file name ending in {suffix}, got {str(value)!r}")
    if path.suffix != suffix:
        raise ValueError(
            f"{name} must end in {suffix}, got {str(path)!r}; write e.g. "
            f"{str(path.with_suffix(suffix))!r} (the file is written under exactly that name)"
        )
    try:
        folder = path.is_dir()
    except OSError as error:  # e.g. a name longer than the file system allows
        raise ValueError(f"{name}: {str(path)!r}: {error.strerror or error}") from None
    if folder:
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


SAMPLE_COPIES = 3
"""Arrays of the size of the samples a draw holds at once (the normals, the result, labels)."""
SMALL_DRAW_BYTES = 2**26
"""Draws below this many bytes are not held against the memory (the training loops draw
small batches at every step; reading the memory available costs more than the draw)."""


def sample_count(n, dim: int, name: str = "n") -> int:
    """``n`` as a positive int whose (n, dim) float64 samples can be drawn in the memory
    available, else InsufficientMemoryError (a ValueError) with the estimate."""
    n = positive_int(n, name)
    size = SAMPLE_COPIES * 8 * n * dim
    if size > SMALL_DRAW_BYTES:
        check_memory(
            size, f"a draw of {n:,} samples in d = {dim}", f"draw fewer (a smaller {name})"
        )
    return n


def require_generator(rng, name: str = "rng") -> np.random.Generator:
    """``rng`` if it is a numpy Generator, else a TypeError with the fix."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{name} must be a numpy.random.Generator, got {type(rng).__name__}; "
            f"pass e.g. {name}=np.random.default_rng(seed)"
        )
    return rng


def require_instance(value, kind: type, name: str, hint: str = ""):
    """``value`` if it is a ``kind``, else a TypeError naming ``name``, the type it got and,
    as ``hint``, how to build one."""
    if not isinstance(value, kind):
        raise TypeError(
            f"{name} must be a {kind.__module__.split('.')[0]}.{kind.__name__}, got "
            f"{'None' if value is None else type(value).__name__}{hint}"
        )
    return value


def as_box(lower, upper, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The corners of a box [lower, upper] in d = ``dim`` as float arrays (dim,) (a number
    stands for every axis); ValueError for another length, NaN, or lower ≥ upper on an axis
    (infinite corners are allowed: the box is then unbounded there)."""
    corners = []
    for value, name in ((lower, "lower"), (upper, "upper")):
        array = as_float_array(value, name)
        if array.ndim > 1 or (array.ndim == 1 and array.size != dim):
            raise ValueError(
                f"the box's {name} corner must hold {dim} number(s), one per axis, got shape "
                f"{array.shape}"
            )
        if np.isnan(array).any():
            raise ValueError(f"the box's {name} corner contains NaN")
        corners.append(np.broadcast_to(array.reshape(-1), (dim,)))
    if not np.all(corners[0] < corners[1]):
        raise ValueError(
            f"the box needs lower < upper on every axis, got {corners[0].tolist()} and "
            f"{corners[1].tolist()}"
        )
    return corners[0], corners[1]


DISCRETE_MAP_FIELDS = ("grid", "points", "weights", "map", "potential")


def require_discrete_map(value, name: str, hint: str = "the result of gridflow.minimize"):
    """``value`` if it has a `schemes.DiscreteMap`'s fields (checked by duck typing: this
    module lies below the schemes), else a TypeError naming ``name`` and, as ``hint``, where
    one comes from."""
    if not all(hasattr(value, field) for field in DISCRETE_MAP_FIELDS):
        raise TypeError(f"{name} must be a DiscreteMap ({hint}), got {type(value).__name__}")
    return value


def flag(value, name: str) -> bool:
    """``value`` as a bool if it is True or False (numpy's too), else TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)
