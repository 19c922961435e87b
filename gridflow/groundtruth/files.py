"""Map files: a discrete OT map saved to and loaded from a .npz file.

`save_map` / `load_map` store a discrete minimizer (`minimize`) in a .npz file that numpy
alone can read, and give it back as a `GridMap` that evaluates T at arbitrary points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gridflow import operators
from gridflow.archives import (
    ARCHIVE_SUFFIX,
    json_metadata,
    numeric_array,
    read_archive,
    read_record,
    write_archive,
)
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


MAP_SUFFIX = ARCHIVE_SUFFIX
MAP_FILE = "a map file written by gridflow.save_map"
_DISCRETE_MAP_FIELDS = ("grid", "points", "weights", "map", "potential", "energy")
_ARRAYS = ("lower", "upper", "shape", "points", "weights", "map", "potential")


def save_map(path, discrete_map, metadata: dict | None = None) -> None:
    """Write a `DiscreteMap` (from `minimize`) or a `GridMap` read by `load_map` to a .npz
    file readable with numpy alone.

    Parameters
    ----------
    path : str or pathlib.Path
        The file to write. It must end in .npz (unlike np.savez, nothing is appended: the
        file has exactly the name given, the one `load_map` reads) and its folder must
        exist and be writable. A file of that name is replaced, as numpy.save does (the
        commands ask for --overwrite).
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
    mismatch = _gradient_mismatch(grid, arrays["map"], arrays["potential"])
    if mismatch is not None:
        raise ValueError(
            f"discrete_map.map is not the discrete gradient D_h φ of discrete_map.potential "
            f"(they differ by up to {mismatch:.3g}): a map file holds a minimizer's T_h = D_h φ"
        )
    energy = as_float(saved.energy, "discrete_map.energy")
    if not math.isfinite(energy):
        raise ValueError(f"discrete_map.energy must be finite, got {energy}")
    record = dict(zip(RESERVED_METADATA, (FORMAT_VERSION, energy), strict=True))
    record.update(json_metadata(saved.metadata, RESERVED_METADATA, "save_map"))
    write_archive(path, arrays, record)


def _gradient_mismatch(grid: Grid, values: np.ndarray, potential: np.ndarray) -> float | None:
    """The largest difference between a map's values and D_h φ of its potential when it
    exceeds roundoff (1e-9 of the map's scale), else None."""
    from_potential = operators.gradient_operator(grid) @ potential.ravel()
    mismatch = float(np.max(np.abs(from_potential - values.ravel())))
    return None if mismatch <= 1e-9 * (1.0 + float(np.max(np.abs(values)))) else mismatch


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
    probability vector, a map that is the discrete gradient of the potential (to roundoff)
    and the format version.
    """
    path = as_path(path, "path")
    arrays = read_archive(path, _ARRAYS, MapFileError, MAP_FILE)
    metadata = read_record(path, arrays, FORMAT_VERSION, MapFileError, "this gridflow")
    try:
        grid = Grid(
            numeric_array(path, arrays, "lower", 1, MapFileError).tolist(),
            numeric_array(path, arrays, "upper", 1, MapFileError).tolist(),
            numeric_array(path, arrays, "shape", 1, MapFileError, integer=True).tolist(),
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
        values[name] = numeric_array(path, arrays, name, len(shape), MapFileError)
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
    mismatch = _gradient_mismatch(grid, values["map"], values["potential"])
    if mismatch is not None:
        raise MapFileError(
            f"{path}: the map is not the discrete gradient D_h φ of the file's potential (they "
            f"differ by up to {mismatch:.3g}): the file was changed after it was written"
        )
    for array in values.values():  # a map read from a file grades others: it cannot change
        array.setflags(write=False)
    return GridMap(
        grid=grid,
        points=values["points"],
        map=values["map"],
        nodal_potential=values["potential"],
        weights=values["weights"],
        metadata=metadata,
    )
