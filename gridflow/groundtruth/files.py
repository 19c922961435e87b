"""Map files: a discrete OT map saved to and loaded from a .npz file.

`save_map` / `load_map` store a discrete minimizer (`minimize`) in a .npz file that numpy
alone can read, and give it back as a `GridMap` that evaluates T at arbitrary points.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import tempfile
from dataclasses import dataclass

import numpy as np

from gridflow import operators
from gridflow.checks import (
    as_float,
    as_node_values,
    as_path,
    as_shaped_array,
    output_file,
    require_finite,
)
from gridflow.grid import Grid
from gridflow.maps import GridMap

FORMAT_VERSION = 1
RESERVED_METADATA = ("format_version", "energy")
"""The metadata keys save_map writes itself: a map's metadata may not set them."""


class MapFileError(ValueError):
    """`load_map` cannot read the file as a gridflow map; the message names the file and why."""


MAP_SUFFIX = ".npz"
_DISCRETE_MAP_FIELDS = ("grid", "points", "weights", "map", "potential", "energy")
_ARRAYS = ("lower", "upper", "shape", "points", "weights", "map", "potential", "metadata")


def save_map(path, discrete_map, metadata: dict | None = None) -> None:
    """Write a `DiscreteMap` (from `minimize`) or a `GridMap` read by `load_map` to a .npz
    file readable with numpy alone.

    Parameters
    ----------
    path : str or pathlib.Path
        The file to write. It must end in .npz (unlike np.savez, nothing is appended: the
        file has exactly the name given, the one `load_map` reads) and its folder must
        exist and be writable.
    discrete_map : DiscreteMap or GridMap
        The map to save; it must be finite. A `GridMap` read by `load_map` saves again
        unchanged: its nodal potential, and the energy and metadata of its file.
    metadata : dict, optional
        More entries for the JSON metadata (after a loaded map's own), with string keys
        other than the ones the file format writes itself (RESERVED_METADATA:
        format_version, energy). Values are JSON values (str, int, float, bool, None,
        lists and dicts of them); numpy scalars are converted to the Python number, bool
        or str they hold, numpy arrays and tuples to lists.

    Raises
    ------
    ValueError
        If `path` or its folder fails the checks above, the map's arrays do not have the
        shapes its grid implies or are not finite, a metadata key is reserved, or a metadata
        number is NaN or infinite; all are checked before anything is written.
    TypeError
        If `path` is not a file name, `discrete_map` is neither a DiscreteMap nor a GridMap,
        `metadata` is not a dict, has a key that is not a string, or holds a value that
        JSON cannot represent (a set, bytes, a complex number, any other object).

    Notes
    -----
    Arrays: lower, upper, shape (the grid), points, weights, map, potential (at the nodes,
    grid.shape), and metadata: a JSON string (format_version, energy, and what is given).

    The file is written under a temporary name and then renamed, so it is never left half
    written.
    """
    path = output_file(path, "path", MAP_SUFFIX)
    saved = _saved_fields(discrete_map, metadata)
    grid = discrete_map.grid
    cells = (int(np.prod(operators.map_shape(grid))), grid.dim)
    arrays = {
        "lower": np.array(grid.lower),
        "upper": np.array(grid.upper),
        "shape": np.array(grid.shape),
        "points": as_shaped_array(
            discrete_map.points, cells, "discrete_map.points", " (the grid's cell centers)"
        ),
        "weights": as_shaped_array(discrete_map.weights, cells[:1], "discrete_map.weights"),
        "map": as_shaped_array(discrete_map.map, cells, "discrete_map.map", " = points.shape"),
        "potential": as_node_values(saved.potential, grid.shape, "discrete_map.potential").reshape(
            grid.shape
        ),
    }
    for name in ("points", "weights", "map", "potential"):
        require_finite(arrays[name], f"discrete_map.{name}")
    energy = as_float(saved.energy, "discrete_map.energy")
    if not math.isfinite(energy):
        raise ValueError(f"discrete_map.energy must be finite, got {energy}")
    record = dict(zip(RESERVED_METADATA, (FORMAT_VERSION, energy), strict=True))
    record.update(json_metadata(saved.metadata))
    arrays["metadata"] = np.array(json.dumps(record, allow_nan=False))
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=MAP_SUFFIX, delete=False) as handle:
        temporary = pathlib.Path(handle.name)
        try:
            np.savez(handle, **arrays)
        except BaseException:
            handle.close()
            temporary.unlink()
            raise
    os.replace(temporary, path)


@dataclass(frozen=True)
class _SavedFields:
    """What `save_map` takes from a map beyond its grid, points, weights and values."""

    potential: object
    energy: object
    metadata: dict | None


def _saved_fields(discrete_map, metadata) -> _SavedFields:
    """The potential at the nodes, the energy and the metadata to save: a `DiscreteMap`'s
    own fields, or for a `GridMap` (a loaded map) its nodal potential and the energy and
    metadata of its file (followed by ``metadata``), so that it saves again unchanged."""
    if isinstance(discrete_map, GridMap):
        recorded = dict(discrete_map.metadata)
        if discrete_map.nodal_potential is None or "energy" not in recorded:
            raise ValueError(
                "discrete_map is a GridMap without a nodal potential or without the energy "
                "in its metadata (not read by load_map): save the DiscreteMap of minimize "
                "instead"
            )
        energy = recorded.pop("energy")
        recorded.pop("format_version", None)
        if metadata is not None:
            if not isinstance(metadata, dict):
                raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
            recorded.update(metadata)
        return _SavedFields(discrete_map.nodal_potential, energy, recorded)
    missing = [name for name in _DISCRETE_MAP_FIELDS if not hasattr(discrete_map, name)]
    if missing:
        raise TypeError(
            f"discrete_map must be a DiscreteMap (from gridflow.minimize) or a GridMap (from "
            f"gridflow.load_map), got {type(discrete_map).__name__} (it lacks {missing})"
        )
    if not isinstance(discrete_map.grid, Grid):
        raise TypeError(
            f"discrete_map.grid must be a gridflow.Grid, got {type(discrete_map.grid).__name__}"
        )
    return _SavedFields(discrete_map.potential, discrete_map.energy, metadata)


def json_metadata(metadata, reserved=RESERVED_METADATA) -> dict:
    """``metadata`` as a dict of JSON values (see `save_map`), refusing the ``reserved`` keys."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    clashes = sorted(key for key in metadata if key in reserved)
    if clashes:
        raise ValueError(
            f"metadata keys {clashes} are written by save_map itself (reserved: "
            f"{sorted(reserved)}); give these entries other names"
        )
    return _json_value(metadata, "metadata")


def _json_value(value, where: str):
    """``value`` as a JSON value; numpy scalars and arrays and tuples converted (see
    `save_map`), anything else JSON cannot hold refused naming ``where``."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufU":
            raise TypeError(f"{where} is a numpy array of dtype {value.dtype}, not JSON")
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value}: JSON has no NaN or infinity; store e.g. None")
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"{where} has the key {key!r}: JSON keys must be strings")
        return {key: _json_value(item, f"{where}[{key!r}]") for key, item in value.items()}
    raise TypeError(
        f"{where} has type {type(value).__name__}, which JSON cannot hold; convert it to a "
        f"str, number, bool, None, list or dict"
    )


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
    TypeError
        If `path` is not a file name (a str or pathlib.Path).
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
    path = as_path(path, "path")
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
