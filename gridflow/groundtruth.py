"""Ground truth: the exact 1D quantile map, and discrete OT maps saved to and loaded from files.

`save_map` / `load_map` store a discrete minimizer (`minimize`) in a .npz file that numpy
alone can read, and give it back as a callable that evaluates T at arbitrary points.

In d = 1 the OT map from ϱ0 to γ is the monotone rearrangement T* = G⁻¹ ∘ F0 with F0, G
the cumulative distribution functions. For a Gaussian-mixture source and a Gaussian
target it is evaluated in closed form, through the survival functions in the right tail
so that no precision is lost to 1 - F0 ≈ 1. Other targets are handled by tabulating G
on a fine grid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from scipy import interpolate, special

from gridflow._checks import as_points
from gridflow.grid import Grid
from gridflow.measures import GaussianMixture, LogConcaveTarget


def quantile_map(source: GaussianMixture, target: LogConcaveTarget, x) -> np.ndarray:
    """T*(x) = G⁻¹(F0(x)) at points x (n, 1), shape (n, 1)."""
    if not isinstance(source, GaussianMixture) or source.dim != 1:
        raise ValueError("quantile_map needs a one-dimensional GaussianMixture source")
    x = as_points(x, "x", 1)[:, 0]
    lower = source.cdf(x)
    upper = source.sf(x)
    left = lower < 0.5
    if target.is_gaussian:
        mean, sd = target.mean[0], np.sqrt(target.cov[0, 0])
        z = np.where(left, special.ndtri(lower), -special.ndtri(upper))
        return (mean + sd * z)[:, None]
    quantile, survival_quantile = _tabulated_quantiles(target)
    return np.where(left, quantile(lower), survival_quantile(upper))[:, None]


def _tabulated_quantiles(target: LogConcaveTarget, nodes: int = 400_001):
    """G⁻¹ and (1 - G)⁻¹ of γ ∝ exp(-V) in d = 1, by the trapezoid rule on a fine grid."""
    probe = np.linspace(-50.0, 50.0, 20_001)
    log_density = -target.V(probe[:, None]) - target.log_normalizer
    support = probe[log_density > np.log(1e-300)]
    y = np.linspace(support[0], support[-1], nodes)
    density = np.exp(-target.V(y[:, None]) - target.log_normalizer)
    steps = 0.5 * (density[1:] + density[:-1]) * np.diff(y)
    cdf = np.concatenate([[0.0], np.cumsum(steps)])
    sf = np.concatenate([np.cumsum(steps[::-1])[::-1], [0.0]])
    keep_cdf = np.concatenate([[True], np.diff(cdf) > 0])
    keep_sf = np.concatenate([np.diff(sf) < 0, [True]])
    quantile = interpolate.PchipInterpolator(cdf[keep_cdf], y[keep_cdf])
    survival_quantile = interpolate.PchipInterpolator(sf[keep_sf][::-1], y[keep_sf][::-1])
    return quantile, survival_quantile


FORMAT_VERSION = 1


@dataclass(frozen=True)
class GroundTruthMap:
    """A discrete OT map loaded from a file: T at arbitrary points by interpolation.

    `map` (n, d) holds T at the cell centers `points` of `grid`; calling the object
    interpolates it (piecewise-linearly on the cell-center grid, second-order accurate like
    the discretization) at points (k, d) inside the grid's box; points outside raise.
    `metadata` holds the source, target, density floor, energy and error estimates.
    """

    grid: Grid
    points: np.ndarray
    map: np.ndarray
    potential: np.ndarray
    weights: np.ndarray
    metadata: dict

    @classmethod
    def from_discrete_map(cls, discrete_map, metadata: dict | None = None) -> GroundTruthMap:
        """The interpolating map of a `DiscreteMap` (from `minimize`), without a file."""
        return cls(
            grid=discrete_map.grid,
            points=discrete_map.points,
            map=discrete_map.map,
            potential=np.asarray(discrete_map.potential).reshape(discrete_map.grid.shape),
            weights=discrete_map.weights,
            metadata=dict(metadata or {}),
        )

    def __call__(self, x) -> np.ndarray:
        x = as_points(x, "x", self.grid.dim)
        outside = np.any((x < np.array(self.grid.lower)) | (x > np.array(self.grid.upper)), axis=1)
        if outside.any():
            raise ValueError(
                f"{int(outside.sum())} of the {len(x)} points lie outside the map's box "
                f"{self.grid.lower}..{self.grid.upper}"
            )
        centers = tuple(np.unique(self.points[:, k]) for k in range(self.grid.dim))
        values = self.map.reshape(*(c.size for c in centers), self.grid.dim)
        interpolator = interpolate.RegularGridInterpolator(
            centers, values, method="linear", bounds_error=False, fill_value=None
        )
        return interpolator(x)


def save_map(path, discrete_map, metadata: dict | None = None) -> None:
    """Write a `DiscreteMap` (from `minimize`) to a .npz file readable with numpy alone.

    Arrays: lower, upper, shape (the grid), points, weights, map, potential (at the nodes,
    grid.shape), and metadata: a JSON string (format_version, energy, and what is given).
    """
    grid = discrete_map.grid
    record = {"format_version": FORMAT_VERSION, "energy": float(discrete_map.energy)}
    record.update(metadata or {})
    np.savez(
        path,
        lower=np.array(grid.lower),
        upper=np.array(grid.upper),
        shape=np.array(grid.shape),
        points=discrete_map.points,
        weights=discrete_map.weights,
        map=discrete_map.map,
        potential=np.asarray(discrete_map.potential).reshape(grid.shape),
        metadata=np.array(json.dumps(record)),
    )


def load_map(path) -> GroundTruthMap:
    """Read a map written by `save_map`; the result evaluates T at points, m(x) (k, d)."""
    with np.load(path, allow_pickle=False) as data:
        missing = {"lower", "upper", "shape", "points", "map", "metadata"} - set(data.files)
        if missing:
            raise ValueError(f"{path} is not a gridflow map file: missing {sorted(missing)}")
        metadata = json.loads(str(data["metadata"]))
        if metadata.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{path} has format version {metadata.get('format_version')}, this gridflow "
                f"reads version {FORMAT_VERSION}"
            )
        grid = Grid(data["lower"].tolist(), data["upper"].tolist(), data["shape"].tolist())
        return GroundTruthMap(
            grid=grid,
            points=data["points"],
            map=data["map"],
            potential=data["potential"],
            weights=data["weights"],
            metadata=metadata,
        )
