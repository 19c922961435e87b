"""The discrete problem: a grid, a source ϱ0 and a target γ, with the quadrature of ϱ0.

The quadrature weights w (at the map's evaluation points) and m (at the Hessian's
evaluation points) are each a probability vector: ϱ0 restricted to the grid, by the
midpoint rule. They define the weighted norm ‖T‖²_w = Σ_i w_i |T_i|², the discrete
L²(ϱ0) norm, in which every scheme of the package is a gradient flow.

The density is floored at `density_floor` (default DENSITY_FLOOR) times its maximum on
the grid before normalizing. Far in the tails, where ϱ0 falls by many orders of magnitude across one
cell, the unfloored discrete problem is numerically degenerate (its minimizer has
Hessians singular to roundoff); the floor adds at most density_floor × (number of
cells) of mass, and the discrete problem is then exactly the one of the floored source.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from gridflow import operators
from gridflow.checks import (
    as_float,
    as_node_values,
    as_shaped_array,
    open_unit_interval,
    require_finite,
    summable,
)
from gridflow.grid import Grid
from gridflow.measures import LogConcaveTarget, as_source, as_target, check_monotone_gradient
from gridflow.memory import check_memory

DEFAULT_MAX_CUT_MASS = 1e-6
DENSITY_FLOOR = 1e-12


class GridCutsSourceError(ValueError):
    """The grid's box leaves out more source mass than the problem allows."""


class FlooredSourceWarning(RuntimeWarning):
    """The density floor replaces most of the source: the grid does not resolve it."""


LARGEST_COORDINATE = 1e150
"""Boxes reaching beyond this are refused: |x|² (the identity's potential, the Gaussian
exponents) overflows near 1e154, and the solver would meet NaN, not the user's problem."""

MOSTLY_FLOORED = 0.5
"""A problem whose density floor replaces more than this share of the source mass solves
the floor's problem, not the source's: it warns (``FlooredSourceWarning``)."""


SOLVER_BYTES_PER_NODE = {1: 512, 2: 8192, 3: 49152}
"""Peak memory of a problem and its minimization (``schemes.minimize``) per grid node,
rounded up from measurements: 370–500 B in d = 1 (10⁴–10⁵ nodes), 4.6–6.2 KB in d = 2
(65² to 257² nodes with SuperLU; 5.5 KB at 513² and 5.1 KB at 1025² with the multifrontal
factorization, whose factor grows like N log N: docs/performance.md); in d = 3 at up to
65³ nodes (42 KB measured at 65³, 24 KB at 33³), beyond which `solver_bytes` scales it."""
LARGEST_MEASURED_3D = 65**3


def solver_bytes(grid: Grid) -> int:
    """The estimated peak memory of a problem on ``grid`` and its minimization: N ×
    SOLVER_BYTES_PER_NODE[d], times (N / 65³)^{1/3} beyond 65³ nodes in d = 3, where the
    multifrontal factor grows like N^{4/3} (its top separator is a plane of N^{2/3} nodes,
    held as a dense N^{2/3} × N^{2/3} front)."""
    nodes = math.prod(grid.shape)
    scale = max(1.0, nodes / LARGEST_MEASURED_3D) ** (1 / 3) if grid.dim == 3 else 1.0
    return int(nodes * SOLVER_BYTES_PER_NODE[grid.dim] * scale)


def check_problem_memory(grid: Grid) -> None:
    """InsufficientMemoryError (a ValueError), before any allocation, when a problem on
    ``grid`` and its solve would not fit in the memory available, with the estimate."""
    nodes = math.prod(grid.shape)
    check_memory(
        solver_bytes(grid),
        f"a grid problem of {' × '.join(map(str, grid.shape))} = {nodes:.3g} nodes",
        "choose fewer nodes",
    )


@dataclass(frozen=True)
class Problem:
    """Transport the source density on `grid` to `target`.

    Parameters
    ----------
    grid : Grid
        The grid of the discrete problem.
    source : callable or source object
        A density callable points (n, d) -> (n,) (unnormalized), or a source object such as
        `GaussianMixture`.
    target : LogConcaveTarget
        The target γ (a `Gaussian` is accepted, through `as_target`); the grid solver needs
        its `grad_V`.
    max_cut_mass : float, default DEFAULT_MAX_CUT_MASS
        The largest ϱ0 mass the box may leave out, in [0, 1); a larger cut raises
        `GridCutsSourceError` (the discrete problem would silently be another one). The cut
        is the source's `mass_outside`: exact for a `GaussianMixture`; for a density
        callable, a quadrature on a larger box that sees only the mass within it (see
        `CallableSource`, whose `support` argument declares where the mass lies).
    density_floor : float, default DENSITY_FLOOR
        ϱ0 is floored at density_floor × its maximum on the grid (see Notes), in (0, 1).

    Attributes
    ----------
    derived : dict
        Quantities computed from the problem once, on first use, by the modules that need
        them (the metric's factorization, `potentials.metric_factorization`; the gauge).

    Raises
    ------
    TypeError
        If `grid` is not a `gridflow.Grid`, or `density_floor` or `max_cut_mass` is not a
        real number (a str, None or a bool).
    ValueError
        If the target has no `grad_V`, its dimension is not the grid's, `density_floor` is
        not in (0, 1) or `max_cut_mass` not in [0, 1).
    InsufficientMemoryError
        (a ValueError) If the problem and its solve would not fit in the memory available
        (`check_problem_memory`), before anything is allocated.
    GridCutsSourceError
        If the box leaves out more than `max_cut_mass` of the source mass, or the source
        density vanishes at every grid point.

    Notes
    -----
    The unknowns, weights and norm are docs/mathematics.md, 'Unknowns, weights and norm'.
    """

    grid: Grid
    source: object
    target: LogConcaveTarget
    max_cut_mass: float = DEFAULT_MAX_CUT_MASS
    density_floor: float = DENSITY_FLOOR
    points: np.ndarray = field(init=False, repr=False)
    weights: np.ndarray = field(init=False, repr=False)
    hessian_points: np.ndarray = field(init=False, repr=False)
    hessian_weights: np.ndarray = field(init=False, repr=False)
    log_source: np.ndarray = field(init=False, repr=False)
    gradient_operator: sparse.csr_matrix = field(init=False, repr=False)
    hessian_operator: sparse.csr_matrix = field(init=False, repr=False)
    map_hessian_operator: sparse.csr_matrix = field(init=False, repr=False)
    floored_mass: float = field(init=False, repr=False)
    derived: dict = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.grid, Grid):
            raise TypeError("grid must be a gridflow.Grid")
        object.__setattr__(self, "target", as_target(self.target))
        if self.target.grad_V is None:
            raise ValueError(
                "the grid solver needs the target's grad_V; give it to LogConcaveTarget"
            )
        if self.target.dim != self.grid.dim:
            raise ValueError(f"target has dimension {self.target.dim}, the grid {self.grid.dim}")
        open_unit_interval(self.density_floor, "density_floor")
        max_cut_mass = as_float(self.max_cut_mass, "max_cut_mass")  # TypeError for '0.1'
        if not 0.0 <= max_cut_mass < 1.0:
            raise ValueError(f"max_cut_mass must be in [0, 1), got {self.max_cut_mass!r}")
        object.__setattr__(self, "max_cut_mass", max_cut_mass)
        check_problem_memory(self.grid)
        reach = max(np.abs(self.grid.lower).max(), np.abs(self.grid.upper).max())
        if reach > LARGEST_COORDINATE:
            raise ValueError(
                f"the grid box {self.grid.lower}..{self.grid.upper} reaches {reach:.3g}: beyond "
                f"{LARGEST_COORDINATE:g}, |x|² overflows; rescale the problem's coordinates"
            )
        source = as_source(self.source, self.grid.dim)
        object.__setattr__(self, "source", source)
        cut = source.mass_outside(self.grid.lower, self.grid.upper)
        if not cut <= self.max_cut_mass:
            describe = getattr(source, "mass_check_description", None)
            checked = (
                f"; checked by {describe(self.grid.lower, self.grid.upper)}" if describe else ""
            )
            raise GridCutsSourceError(
                f"the grid box {self.grid.lower}..{self.grid.upper} leaves out {cut:.3g} of the "
                f"source mass (max_cut_mass = {self.max_cut_mass:.3g}): enlarge the box{checked}"
            )
        points = operators.map_points(self.grid)
        if self.target.lam and not self.target.built_in:  # a V without lam may be semi-convex
            check_monotone_gradient(self.target.grad_V, points, self.target.name, self.target.lam)
        hessian_points = operators.hessian_points(self.grid)
        density, hessian_density = summable(source.density(points), source.density(hessian_points))
        largest = max(density.max(), hessian_density.max())
        floor = self.density_floor * largest
        if not largest > 0:
            raise GridCutsSourceError("the source density vanishes at every grid point")
        if not floor > 0:
            raise ValueError(
                f"the source density's largest value on the grid, {largest:.3g}, is so small "
                f"that its floor ({self.density_floor:g} times it) underflows to 0: multiply "
                "the density by a constant (an unnormalized density is the same source)"
            )
        self._set("floored_mass", float(1.0 - density.sum() / np.maximum(density, floor).sum()))
        if self.floored_mass > MOSTLY_FLOORED:
            warnings.warn(
                f"the density floor replaces {self.floored_mass:.3g} of the source's mass: the "
                f"grid (spacing {min(self.grid.spacing):.3g}) does not resolve the source, or "
                "the box is far larger than it; a map of this problem is the floor's, not the "
                "source's. Refine the grid or shrink the box",
                FlooredSourceWarning,
                stacklevel=3,
            )
        density = np.maximum(density, floor)
        hessian_density = np.maximum(hessian_density, floor)
        normalizer = density.sum() * math.prod(self.grid.spacing)  # inf, not a warning
        self._set("points", points)
        self._set("weights", density / density.sum())
        self._set("hessian_points", hessian_points)
        self._set("hessian_weights", hessian_density / hessian_density.sum())
        if 0.0 < normalizer < np.inf:
            self._set("log_source", np.log(hessian_density / normalizer))
        else:  # a box of 1e300: the cell volume overflows, its logarithm does not
            log_normalizer = np.log(density.sum()) + np.log(self.grid.spacing).sum()
            self._set("log_source", np.log(hessian_density) - log_normalizer)
        gradient = operators.gradient_operator(self.grid)
        map_hessian = operators.map_hessian_operator(self.grid)
        self._set("gradient_operator", gradient)
        self._set("hessian_operator", operators.hessian_operator(self.grid, map_hessian, gradient))
        self._set("map_hessian_operator", map_hessian)

    def _set(self, name, value):
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
        object.__setattr__(self, name, value)

    @property
    def dim(self) -> int:
        return self.grid.dim

    @property
    def size(self) -> int:
        """Number of evaluation points of the map."""
        return self.points.shape[0]

    def identity(self) -> np.ndarray:
        """T_0 = id at the evaluation points, (n, d)."""
        return self.points.copy()

    @property
    def gauge_nodes(self) -> np.ndarray:
        """Where the systems in φ fix φ = 0 (`operators.gauge_nodes`): at the interior node of
        largest weight m_j, and in d = 2, 3 the nodes that pin the other kernel modes.

        A gauge node pins the kernel modes 1 and (-1)^{i+j} of D_h; what remains of them,
        modes equal to the kernel away from the gauge nodes, has an energy of the order of
        the weights there. At the box's corner (weights at the density floor) the scaled
        Newton matrix of the paper's mixture at 33² has eigenvalues 2e-15, at the largest
        weight 8e-11: linear solves in the gauge lose four fewer digits.
        """
        cached = self.derived.get("gauge_nodes")
        if cached is None:  # every Newton step's solves read it (0.02 s at 513²)
            interior = np.unravel_index(
                int(np.argmax(self.hessian_weights)), operators.hessian_shape(self.grid)
            )
            anchor = np.ravel_multi_index(tuple(k + 1 for k in interior), self.grid.shape)
            cached = operators.gauge_nodes(self.grid, int(anchor))
            cached.setflags(write=False)
            self.derived["gauge_nodes"] = cached
        return cached

    def identity_potential(self) -> np.ndarray:
        """φ_0 = ½|x|² at the grid nodes: D_h φ_0 = id exactly (the cell centers)."""
        return 0.5 * np.sum(self.grid.nodes**2, axis=1)

    def as_potential(self, potential, name: str = "potential") -> np.ndarray:
        """Validate a potential at the grid nodes: (N,) or grid.shape, returned flattened (N,).

        Any other shape, even of the right size (a transposed grid, a column (N, 1)), is
        refused: reshaping it would silently reorder the nodes or broadcast later.
        """
        return as_node_values(potential, self.grid.shape, name)

    def map_of(self, potential) -> np.ndarray:
        """T = D_h φ at the evaluation points, (n, d), for φ at the grid nodes (N,)."""
        return (self.gradient_operator @ self.as_potential(potential)).reshape(self.points.shape)

    def _field(self, value, name: str) -> np.ndarray:
        """A vector field at the evaluation points of exactly shape (n, d), also in d = 1."""
        return as_shaped_array(value, self.points.shape, name, " = problem.points.shape")

    def norm(self, u) -> float:
        """‖u‖_w, the discrete L²(ϱ0) norm of a vector field (n, d).

        The field must have exactly the shape (n, d) of `points`, also in d = 1 (a vector
        (n,) is refused: subtracting one from a map (n, 1) broadcasts to (n, n)).
        """
        u = self._field(u, "u")
        return float(np.sqrt(np.sum(self.weights * np.sum(u**2, axis=1))))

    def inner(self, u, v) -> float:
        """⟨u, v⟩_w, the discrete L²(ϱ0) inner product of two fields (n, d), shaped as in
        `norm`."""
        u, v = self._field(u, "u"), self._field(v, "v")
        return float(np.sum(self.weights * np.sum(u * v, axis=1)))

    def as_map(self, T, name: str = "T") -> np.ndarray:
        """Validate a map given at the evaluation points: (n, d) float64, finite, of exactly
        the shape of `points`, also in d = 1 (a vector (n,) is refused, as in `norm`)."""
        T = as_shaped_array(T, self.points.shape, name, " = problem.points.shape")
        require_finite(T, name)
        return T
