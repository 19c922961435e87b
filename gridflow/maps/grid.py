"""Grid maps: the interpolant of a discrete map T_h = D_h φ of the grid solver."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import interpolate

from gridflow.checks import (
    as_node_values,
    as_points,
    as_shaped_array,
    readonly_copy,
    require_discrete_map,
    require_finite,
)
from gridflow.grid import Grid
from gridflow.operators import check_cell_map

__all__ = ["GridMap"]


@dataclass(frozen=True, eq=False)
class GridMap:
    """A discrete map of the grid solver as a map of points: T at any point of its box.

    ``map`` (n, d) holds T at the cell centers ``points`` of ``grid``; calling the object
    interpolates it (piecewise-linearly on the cell-center grid, second-order accurate like
    the discretization, docs/mathematics.md) at points (k, d) inside the grid's box; points
    outside raise. ``nodal_potential`` holds φ at the grid's nodes (grid.shape) when known
    (the discrete OT map and ground-truth files), else None, and ``potential(x)``
    interpolates it; ``weights`` are the cell masses of ϱ0; ``metadata`` what a ground-truth
    file records (source, target, floor, error estimates).
    """

    grid: Grid
    points: np.ndarray
    map: np.ndarray
    nodal_potential: np.ndarray | None
    weights: np.ndarray
    metadata: dict

    def __post_init__(self):
        check_cell_map(self.grid, self.points, self.weights, self.map, "GridMap")
        if not isinstance(self.metadata, dict):
            raise TypeError(f"metadata must be a dict, got {type(self.metadata).__name__}")
        for name in ("points", "map", "weights"):  # copies: the map cannot change under it
            object.__setattr__(self, name, readonly_copy(getattr(self, name)))
        object.__setattr__(self, "metadata", dict(self.metadata))
        if self.nodal_potential is not None:
            potential = as_shaped_array(
                self.nodal_potential, self.grid.shape, "GridMap.nodal_potential", " = grid.shape"
            )
            require_finite(potential, "GridMap.nodal_potential")
            object.__setattr__(self, "nodal_potential", readonly_copy(potential))

    @classmethod
    def from_discrete_map(cls, discrete_map, metadata: dict | None = None) -> GridMap:
        """The interpolating map of a `DiscreteMap` (from `minimize`), without a file."""
        require_discrete_map(discrete_map, "discrete_map")
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict or None, got {type(metadata).__name__}")
        return cls(
            grid=discrete_map.grid,
            points=discrete_map.points,
            map=discrete_map.map,
            nodal_potential=as_node_values(
                discrete_map.potential, discrete_map.grid.shape, "discrete_map.potential"
            ).reshape(discrete_map.grid.shape),
            weights=discrete_map.weights,
            metadata=dict(metadata or {}),
        )

    @property
    def dim(self) -> int:
        """Dimension d."""
        return self.grid.dim

    def _inside(self, x) -> np.ndarray:
        x = as_points(x, "x", self.grid.dim)
        outside = np.any((x < np.array(self.grid.lower)) | (x > np.array(self.grid.upper)), axis=1)
        if outside.any():
            raise ValueError(
                f"{int(outside.sum())} of the {len(x)} points lie outside the map's box "
                f"{self.grid.lower}..{self.grid.upper}"
            )
        return x

    @functools.cached_property
    def _map_interpolator(self):
        axes = (self.grid.axis(k) for k in range(self.grid.dim))
        centers = tuple(0.5 * (axis[1:] + axis[:-1]) for axis in axes)
        values = self.map.reshape(*(c.size for c in centers), self.grid.dim)
        return interpolate.RegularGridInterpolator(
            centers, values, method="linear", bounds_error=False, fill_value=None
        )

    def __call__(self, x) -> np.ndarray:
        """T(x) at points x (k, d) inside the box -> (k, d)."""
        return self._map_interpolator(self._inside(x))

    def potential(self, x) -> np.ndarray:
        """φ(x) at points x (k, d) inside the box -> (k,): φ interpolated multilinearly
        between the grid's nodes (its gradient is T only up to the discretization's error)."""
        if self.nodal_potential is None:
            raise ValueError("this grid map carries no potential (a trajectory's map)")
        axes = tuple(self.grid.axis(k) for k in range(self.grid.dim))
        interpolator = interpolate.RegularGridInterpolator(axes, self.nodal_potential)
        return interpolator(self._inside(x))
