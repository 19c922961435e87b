"""Map files: a discrete OT map saved to and loaded from a .npz file.

`save_map` / `load_map` store a discrete minimizer (`minimize`) in a .npz file that numpy
alone can read, and give it back as a `GridMap` that evaluates T at arbitrary points.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile

import numpy as np

from gridflow import operators
from gridflow.checks import as_finite_array, output_file
from gridflow.grid import Grid
from gridflow.maps import GridMap

FORMAT_VERSION = 1


class MapFileError(ValueError):
    """`load_map` cannot read the file as a gridflow map; the message names the file and why."""


MAP_SUFFIX = ".npz"
_ARRAYS = ("lower", "upper", "shape", "points", "weights", "map", "potential", "metadata")


def save_map(path, discrete_map, metadata: dict | None = None) -> None:
    """Write a `DiscreteMap` (from `minimize`) to a .npz file readable with numpy alone.

    Parameters
    ----------
    path : str or pathlib.Path
        The file to write. It must end in .npz (unlike np.savez, nothing is appended: the
        file has exactly the name given, the one `load_map` reads) and its folder must
        exist and be writable.
    discrete_map : DiscreteMap
        The map to save; it must be finite.
    metadata : dict, optional
        More entries for the JSON metadata.

    Raises
    ------
    ValueError
        If `path` or its folder fails the checks above, or the map is not finite; all are
        checked before anything is written.

    Notes
    -----
    Arrays: lower, upper, shape (the grid), points, weights, map, potential (at the nodes,
    grid.shape), and metadata: a JSON string (format_version, energy, and what is given).

    The file is written under a temporary name and then renamed, so it is never left half
    written.
    """
    path = output_file(path, "path", MAP_SUFFIX)
    grid = discrete_map.grid
    arrays = {
        "lower": np.array(grid.lower),
        "upper": np.array(grid.upper),
        "shape": np.array(grid.shape),
        "points": as_finite_array(discrete_map.points, "discrete_map.points", ndim=2),
        "weights": as_finite_array(discrete_map.weights, "discrete_map.weights", ndim=1),
        "map": as_finite_array(discrete_map.map, "discrete_map.map", ndim=2),
        "potential": as_finite_array(discrete_map.potential, "discrete_map.potential").reshape(
            grid.shape
        ),
    }
    record = {"format_version": FORMAT_VERSION, "energy": float(discrete_map.energy)}
    record.update(metadata or {})
    arrays["metadata"] = np.array(json.dumps(record))
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=MAP_SUFFIX, delete=False) as handle:
        temporary = pathlib.Path(handle.name)
        try:
            np.savez(handle, **arrays)
        except BaseException:
            handle.close()
            temporary.unlink()
            raise
    os.replace(temporary, path)


def load_map(path) -> GridMap:
    """Read a map written by `save_map`.

    Parameters
    ----------
    path : str or pathlib.Path
        The file. The name is used as given (save_map writes exactly that name, ending in
        .npz).

    Returns
    -------
    GridMap
        The map; it evaluates T at points, m(x) (k, d).

    Raises
    ------
    MapFileError
        If the file is not a map written by `save_map` (a missing, truncated or damaged
        file, a .npy file, an unrelated .npz) or fails the checks below; the message names
        the file.

    Notes
    -----
    The file is read eagerly without pickles and checked: every array present, with the
    shapes the grid implies, finite values, cell centers that are the grid's, weights a
    probability vector, and the format version.
    """
    path = pathlib.Path(path)
    arrays = _read_archive(path)
    metadata = _metadata(path, arrays["metadata"])
    try:
        grid = Grid(
            _numeric(path, arrays, "lower", 1).tolist(),
            _numeric(path, arrays, "upper", 1).tolist(),
            _numeric(path, arrays, "shape", 1, integer=True).tolist(),
        )
    except ValueError as error:
        raise MapFileError(f"{path}: the grid it describes is invalid: {error}") from None
    n = int(np.prod(operators.map_shape(grid)))
    expected = {
        "points": (n, grid.dim),
        "map": (n, grid.dim),
        "weights": (n,),
        "potential": grid.shape,
    }
    values = {}
    for name, shape in expected.items():
        values[name] = _numeric(path, arrays, name, len(shape))
        if values[name].shape != shape:
            raise MapFileError(
                f"{path}: {name} has shape {values[name].shape}, the grid {grid.shape} implies "
                f"{shape} (incomplete or inconsistent file)"
            )
    centers = operators.map_points(grid)
    if not np.allclose(values["points"], centers, rtol=0, atol=1e-9 * (1 + np.abs(centers).max())):
        raise MapFileError(f"{path}: points are not the cell centers of the grid it describes")
    weights = values["weights"]
    if np.any(weights < 0) or abs(weights.sum() - 1.0) > 1e-9:
        raise MapFileError(f"{path}: weights must be >= 0 and sum to 1, got sum {weights.sum()}")
    return GridMap(
        grid=grid,
        points=values["points"],
        map=values["map"],
        nodal_potential=values["potential"],
        weights=values["weights"],
        metadata=metadata,
    )


def _read_archive(path: pathlib.Path) -> dict:
    """Every array of the .npz archive at `path`, read eagerly and without pickles."""
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        suggestion = path.with_name(path.name + MAP_SUFFIX)
        hint = f"; did you mean {str(suggestion)!r}?" if suggestion.is_file() else ""
        raise MapFileError(f"{path}: the map file {what}{hint}")
    with open(path, "rb") as handle:  # numpy leaves its own handle open on damaged zips
        try:
            data = np.load(handle, allow_pickle=False)
        except Exception as error:  # anything numpy's readers raise on foreign or damaged bytes
            reason = "not a zip archive" if "pickle" in str(error) else type(error).__name__
            raise MapFileError(
                f"{path} is not a .npz map archive written by gridflow.save_map ({reason})"
            ) from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise MapFileError(
                f"{path} holds a single numpy array (.npy format), not a map archive (.npz) "
                f"written by gridflow.save_map"
            )
        with data:
            missing = sorted(set(_ARRAYS) - set(data.files))
            if missing:
                raise MapFileError(
                    f"{path} is not a gridflow map file: it lacks the arrays {missing} "
                    f"(has {sorted(data.files)})"
                )
            try:
                return {name: data[name] for name in _ARRAYS}
            except Exception as error:  # truncated or corrupted members fail when read
                raise MapFileError(
                    f"{path} is damaged (truncated or corrupted): reading it failed with "
                    f"{type(error).__name__}"
                ) from None


def _metadata(path: pathlib.Path, value: np.ndarray) -> dict:
    """The JSON record saved as a 0-d string array, with a supported format version."""
    if value.ndim != 0 or value.dtype.kind != "U":
        raise MapFileError(f"{path}: metadata must be a JSON string, got {value.dtype} array")
    try:
        metadata = json.loads(str(value))
    except ValueError:
        raise MapFileError(f"{path}: metadata is not valid JSON") from None
    if not isinstance(metadata, dict):
        raise MapFileError(f"{path}: metadata must be a JSON object")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise MapFileError(
            f"{path} has format version {metadata.get('format_version')!r}, this gridflow "
            f"reads version {FORMAT_VERSION}"
        )
    return metadata


def _numeric(path, arrays: dict, name: str, ndim: int, integer: bool = False) -> np.ndarray:
    """arrays[name] as finite float64 (or int) with `ndim` axes, else MapFileError."""
    value = arrays[name]
    kinds = "iu" if integer else "fiu"
    if value.dtype.kind not in kinds or value.ndim != ndim:
        wanted = "integers" if integer else "real numbers"
        raise MapFileError(
            f"{path}: {name} must be an array of {wanted} with {ndim} axes, got "
            f"{value.dtype} with shape {value.shape}"
        )
    if integer:
        return value.astype(np.int64)
    value = value.astype(np.float64)
    if not np.all(np.isfinite(value)):
        raise MapFileError(f"{path}: {name} holds NaN or infinite values (a damaged map)")
    return value
