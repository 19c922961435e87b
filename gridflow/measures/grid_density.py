"""A source ϱ0 given by its values on a regular grid (d = 1, 2): an image works.

The interpolant
---------------
The values v ≥ 0 at the nodes are interpolated as a square, ϱ0 ∝ s², where s is the
tensor-product cubic spline (not-a-knot; degree min(3, n − 1) on an axis of n nodes)
through √v. So:

- ϱ0 interpolates the values (s² = v at the nodes) and is C² on the box: the midpoint
  quadratures of the grid solver (docs/mathematics.md, 'Unknowns, weights and norm') see
  a smooth density. A cubic spline through v itself can go negative between the nodes
  and would have to be clipped at 0, which leaves kinks where it is clipped; s² cannot
  go negative and needs no clipping.
- Where √ϱ0 is smooth (a Gaussian mixture: √ is again a sum of Gaussian bumps) the
  interpolation error is O(h⁴), h the node spacing. Where ϱ0 vanishes on a region (an
  image with a black background), s² can carry small positive ripples into it: a single
  nonzero value among zeros (9 nodes on [−1, 1]) puts 2.6 % of the mass beyond its
  neighbouring nodes. Give sharp or sparse densities on a finer grid of values.
- ϱ0 is 0 outside the box: the box holds all the mass.

Integrals are exact up to rounding: on each knot interval s² is a polynomial of degree
≤ 6 per axis, integrated by the 4-point Gauss–Legendre rule (exact to degree 7) through the
Gram matrices G_ab = ∫ B_a B_b of the B-spline basis, ∫ s² = Σ C ⊙ (G_1 C G_2ᵀ). The
normalizer and ``mass_outside`` use them. Samples are exact draws of ϱ0 by rejection: a
knot cell is drawn with probability ∝ its volume × max c² over the B-spline coefficients c
active on it (a bound on s² there: B-splines are nonnegative and sum to 1), a uniform point
in it is accepted with probability s²(x) / max c².
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import interpolate, sparse

from gridflow.checks import (
    as_box,
    as_float_array,
    as_points,
    positive_int,
    readonly_copy,
    require_finite,
    require_generator,
    unreadable,
)

__all__ = ["GridDensity"]

SPEC_KIND = "grid-density"
_GAUSS_NODES, _GAUSS_WEIGHTS = np.polynomial.legendre.leggauss(4)


def _values(values) -> np.ndarray:
    values = as_float_array(values, "values")
    shape = values.shape
    if len(shape) not in (1, 2):
        hint = (
            " (a colour image: convert it to one channel first; a density in d = 3 is not "
            "supported: give a Gaussian mixture file)"
            if len(shape) == 3
            else ""
        )
        raise ValueError(
            f"values must have shape (n1,) in d = 1 or (n1, n2) in d = 2, got shape {shape}{hint}"
        )
    if min(values.shape) < 2:
        raise ValueError(
            f"values needs at least 2 nodes per axis, got shape {values.shape}; "
            f"give the density on a finer grid"
        )
    require_finite(values, "values")
    if np.any(values < 0):
        raise ValueError(
            f"values must be >= 0 (a density), got {int(np.sum(values < 0))} negative entries "
            f"(smallest {values.min():.3g}); clip or shift them"
        )
    if not np.any(values > 0):
        raise ValueError("values are all 0: a density needs some positive values")
    return values


def _box(box, dim: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if box is None:
        raise ValueError(
            f"box is required: ((lower_1, ..., lower_{dim}), (upper_1, ..., upper_{dim}))"
        )
    try:
        array = np.asarray(box, dtype=np.float64)
    except (TypeError, ValueError):
        shown = box.tolist() if isinstance(box, np.ndarray) else box  # one line, not a repr
        raise ValueError(
            f"box must be ((lower...), (upper...)) of numbers, got {shown!r}"
        ) from None
    if dim == 1 and array.shape == (2,):
        array = array[:, None]
    if array.shape != (2, dim):
        raise ValueError(
            f"box must be ((lower_1, ..., lower_d), (upper_1, ..., upper_d)), shape (2, {dim}) "
            f"for values in d = {dim}, got shape {array.shape}"
        )
    require_finite(array, "box")
    if np.any(array[0] >= array[1]):
        raise ValueError(f"box needs lower < upper on every axis, got {array.tolist()}")
    return tuple(map(float, array[0])), tuple(map(float, array[1]))


def _gram(knots: np.ndarray, degree: int, a: float, b: float) -> sparse.csr_matrix:
    """G_ij = ∫_a^b B_i B_j for the B-splines of (knots, degree), exact (Gauss, 4 nodes per
    knot interval of [a, b]: the products have degree ≤ 6)."""
    breaks = np.unique(np.concatenate([[a, b], knots[(knots > a) & (knots < b)]]))
    half = 0.5 * np.diff(breaks)[:, None]
    points = ((breaks[:-1, None] + breaks[1:, None]) / 2 + half * _GAUSS_NODES).ravel()
    weights = (half * _GAUSS_WEIGHTS).ravel()
    basis = interpolate.BSpline.design_matrix(points, knots, degree).tocsr()
    return (basis.T @ sparse.diags(weights) @ basis).tocsr()


def _cell_bounds(coefficients: np.ndarray, degrees: tuple[int, ...]) -> np.ndarray:
    """max c² over the (k+1)^d coefficients active on each knot cell: a bound on s² there."""
    bound = coefficients**2
    for axis, degree in enumerate(degrees):
        bound = sliding_window_view(bound, degree + 1, axis=axis).max(axis=-1)
    return bound


@dataclass(frozen=True, eq=False)
class GridDensity:
    """A density given by its values at the nodes of a regular grid on ``box`` (d = 1, 2).

    Parameters
    ----------
    values : array_like, shape (n1,) or (n1, n2)
        The density at the nodes, unnormalized, ≥ 0, finite, not all 0, at least 2 nodes per
        axis; ``values[i, j]`` is at (x_i, y_j), x along axis 0 (an image ``img[row, col]``
        shown with row 0 at the top is ``np.flipud(img).T`` in this convention).
    box : ((lower_1, ..., lower_d), (upper_1, ..., upper_d))
        The nodes span the box, both ends included (in d = 1, (lower, upper) also works).

    Raises
    ------
    ValueError
        For any of the above not met (the message names the argument and the fix).

    Notes
    -----
    The interpolant, its normalization and the sampler are in the module docstring:
    ϱ0 ∝ s², s the cubic spline through √values, 0 outside the box.
    """

    values: np.ndarray
    box: tuple
    _spline: interpolate.NdBSpline = field(init=False, repr=False)
    _degrees: tuple = field(init=False, repr=False)
    _normalizer: float = field(init=False, repr=False)
    _cell_edges: tuple = field(init=False, repr=False)
    _cumulative_cells: np.ndarray = field(init=False, repr=False)
    _cell_bound: np.ndarray = field(init=False, repr=False)
    _acceptance: float = field(init=False, repr=False)

    def __post_init__(self):
        values = _values(self.values)
        box = _box(self.box, values.ndim)
        object.__setattr__(self, "values", readonly_copy(values))
        object.__setattr__(self, "box", box)
        # The spline is of √(values / max): the density is unnormalized, and values near
        # 1e308 would overflow the squares summed by the integrals (NaN mass, warnings).
        coefficients, knots, degrees = np.sqrt(values / values.max()), [], []
        for axis, count in enumerate(values.shape):
            degree = min(3, count - 1)
            nodes = np.linspace(box[0][axis], box[1][axis], count)
            along = np.moveaxis(coefficients, axis, 0)
            spline = interpolate.make_interp_spline(nodes, along, k=degree)
            coefficients = np.moveaxis(spline.c, 0, axis)
            knots.append(spline.t)
            degrees.append(degree)
        degrees = tuple(degrees)
        object.__setattr__(
            self, "_spline", interpolate.NdBSpline(tuple(knots), coefficients, degrees)
        )
        object.__setattr__(self, "_degrees", degrees)
        normalizer = self._integral_of_square(*box)
        object.__setattr__(self, "_normalizer", normalizer)
        edges = tuple(np.unique(t) for t in knots)
        bound = _cell_bounds(coefficients, degrees)
        volume = np.prod(np.meshgrid(*(np.diff(e) for e in edges), indexing="ij"), axis=0)
        cumulative = np.cumsum((bound * volume).ravel())
        object.__setattr__(self, "_cell_edges", edges)
        object.__setattr__(self, "_cell_bound", readonly_copy(bound))
        object.__setattr__(self, "_cumulative_cells", readonly_copy(cumulative / cumulative[-1]))
        object.__setattr__(self, "_acceptance", normalizer / cumulative[-1])

    @property
    def dim(self) -> int:
        """Dimension d (1 or 2)."""
        return self.values.ndim

    @property
    def spec(self) -> dict:
        """A JSON-able description without the values: kind, box and shape."""
        return {
            "kind": SPEC_KIND,
            "box": [list(self.box[0]), list(self.box[1])],
            "shape": list(self.values.shape),
        }

    @classmethod
    def from_spec(cls, spec: dict, values) -> GridDensity:
        """The density of ``spec`` (as ``spec`` returns it) with its ``values``."""
        if not isinstance(spec, dict) or spec.get("kind") != SPEC_KIND:
            raise ValueError(f"spec must be a dict with kind {SPEC_KIND!r}, got {spec!r}")
        missing = {"box", "shape"} - spec.keys()
        if missing:
            raise ValueError(f"spec lacks {sorted(missing)}; it needs kind, box and shape")
        shape = tuple(np.shape(values))
        if list(shape) != list(spec["shape"]):
            raise ValueError(
                f"values have shape {shape}, the spec says {spec['shape']}: not the values "
                f"saved with this spec"
            )
        return cls(values, tuple(map(tuple, spec["box"])))

    @classmethod
    def from_file(cls, path, box=None) -> GridDensity:
        """Read a density from a .npy file (``box`` required) or a .npz file holding the
        array ``density`` and optionally ``box`` (shape (2, d)); a grayscale image saved
        as a (n1, n2) .npy works."""
        path = pathlib.Path(path)
        if path.suffix.lower() not in (".npy", ".npz"):
            raise ValueError(f"density file {str(path)!r} must be a .npy or .npz file")
        problem = unreadable(path)
        if problem:
            raise ValueError(f"density file {str(path)!r} {problem}")
        try:
            loaded = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:  # EOFError: an empty file
            raise ValueError(f"density file {str(path)!r} cannot be read: {error}") from None
        if path.suffix.lower() == ".npy":
            if box is None:
                raise ValueError(
                    f"density file {str(path)!r} holds no box: give box=((lower...), (upper...)) "
                    f"or save a .npz with arrays 'density' and 'box'"
                )
            return cls(loaded, box)
        with loaded:
            keys = set(loaded.files)
            if "density" not in keys:
                raise ValueError(
                    f"density file {str(path)!r} has no array 'density' (it has {sorted(keys)})"
                )
            unknown = keys - {"density", "box"}
            if unknown:
                raise ValueError(
                    f"density file {str(path)!r} has unknown arrays {sorted(unknown)}; "
                    f"it may hold only 'density' and 'box'"
                )
            values = loaded["density"]
            stored_box = loaded["box"] if "box" in keys else None
        if stored_box is None and box is None:
            raise ValueError(
                f"density file {str(path)!r} holds no 'box': give box=((lower...), (upper...))"
            )
        if stored_box is not None and box is not None:
            if not np.array_equal(np.asarray(box, float).reshape(-1), stored_box.reshape(-1)):
                raise ValueError(
                    f"box {box!r} differs from the box {stored_box.tolist()} stored in "
                    f"{str(path)!r}; give one of them only"
                )
        if stored_box is not None:
            values = _values(values)
            if stored_box.shape != (2, values.ndim):
                raise ValueError(
                    f"the 'box' in {str(path)!r} must have shape (2, {values.ndim}) "
                    f"(lower row, upper row), got {stored_box.shape}"
                )
            box = stored_box
        return cls(values, box)

    def _inside(self, points: np.ndarray) -> np.ndarray:
        lower, upper = self.box
        return np.all((points >= lower) & (points <= upper), axis=1)

    def _root(self, points: np.ndarray) -> np.ndarray:
        """s at points (n, d), 0 outside the box."""
        inside = self._inside(points)
        out = np.zeros(points.shape[0])
        if np.any(inside):
            out[inside] = self._spline(points[inside])
        return out

    def _integral_of_square(self, lower, upper) -> float:
        """∫ s² over [lower, upper] ∩ box, exact up to rounding."""
        low = np.maximum(lower, self.box[0])
        high = np.minimum(upper, self.box[1])
        if np.any(low >= high):
            return 0.0
        coefficients = self._spline.c
        product = coefficients
        for axis, (knots, degree) in enumerate(zip(self._spline.t, self._degrees, strict=True)):
            gram = _gram(knots, degree, low[axis], high[axis])
            product = np.moveaxis(gram @ np.moveaxis(product, axis, 0), 0, axis)
        return float(np.sum(coefficients * product))

    def density(self, points) -> np.ndarray:
        """ϱ0 at points (n, d) -> (n,): normalized, 0 outside the box."""
        points = as_points(points, "points", self.dim)
        return self._root(points) ** 2 / self._normalizer

    def log_density(self, points) -> np.ndarray:
        """log ϱ0 at points (n, d) -> (n,); −inf where ϱ0 = 0 (outside the box)."""
        points = as_points(points, "points", self.dim)
        with np.errstate(divide="ignore"):
            return 2.0 * np.log(np.abs(self._root(points))) - np.log(self._normalizer)

    def mass_outside(self, lower, upper) -> float:
        """ϱ0 mass outside the box [lower, upper]: 1 − ∫ over the part of ``box`` inside it,
        exact up to rounding (module docstring)."""
        lower, upper = as_box(lower, upper, self.dim)
        inside = self._integral_of_square(lower, upper) / self._normalizer
        return float(min(max(1.0 - inside, 0.0), 1.0))

    def mass_check_description(self, lower, upper) -> str:
        """What ``mass_outside`` computes, for error messages."""
        return (
            f"exact integral of the interpolant, which vanishes outside its box "
            f"{list(self.box[0])}..{list(self.box[1])}"
        )

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n exact draws (n, d) of ϱ0, by rejection from the cell bounds (module docstring).

        Each round draws, for the m samples still missing, ⌈1.2 m / a⌉ + 8 proposals (a the
        expected acceptance rate, ∫ s² / Σ cell volume × bound): cell indices, uniform
        points in them, uniforms for the acceptance test; it keeps the accepted ones in order.
        """
        rng = require_generator(rng)
        n = positive_int(n, "n")
        shape = self._cell_bound.shape
        found, missing = [], n
        while missing > 0:
            count = int(np.ceil(1.2 * missing / self._acceptance)) + 8
            cells = self._cumulative_cells.searchsorted(rng.random(count), side="right")
            cells = np.minimum(cells, self._cumulative_cells.size - 1)
            index = np.unravel_index(cells, shape)
            pairs = list(zip(self._cell_edges, index, strict=True))
            lower = np.stack([edges[i] for edges, i in pairs], axis=1)
            upper = np.stack([edges[i + 1] for edges, i in pairs], axis=1)
            points = lower + rng.random((count, self.dim)) * (upper - lower)
            bound = self._cell_bound[index]
            accepted = points[rng.random(count) * bound < self._root(points) ** 2][:missing]
            found.append(accepted)
            missing -= accepted.shape[0]
        return np.concatenate(found)
