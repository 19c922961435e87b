"""The start of Newton's method on a grid from the discrete OT map of a coarser grid.

`minimize` (and the ground truths' cascade of grids) starts each grid's Newton solve from the
map of the grid before: prolonged, brought back to a potential, and made strictly convex
where the prolongation is not (docs/performance.md, "Three dimensions").
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import interpolate

from gridflow import operators
from gridflow.checks import check_map_on_points, require_discrete_map, require_instance
from gridflow.functionals import discrete_hessian, kl_energy
from gridflow.potentials import least_squares_potential
from gridflow.problem import Problem


def coarse_to_fine_start(problem: Problem, coarser) -> np.ndarray:
    """A potential strictly inside K_h of `problem` (d = 2, 3) near the coarser grid's map
    (`coarser`, a `schemes.DiscreteMap` of the same box).

    The coarser map is averaged over the 2^d cells around each interior node (the average
    inside H_h = B_h D_h, which removes the cell checkerboard that H_h does not see and the
    discrete minimizer carries), interpolated multilinearly at the cell centers, and brought
    back to a potential φ by `least_squares_potential` (the tails count as much as the
    bulk: they are where convexity is tight). Where H_h φ has a smallest eigenvalue
    λ ≤ 0, two starts are made, and the one of lower F_h kept: (1 - θ) φ + θ ½|x|², whose
    Hessians (1 - θ) H_h φ + θ I are positive definite for θ > -λ / (1 - λ) (θ is twice
    that), and φ convexified in the tails only (`_convexified_tails`).
    """
    require_instance(problem, Problem, "problem", "; build one with gridflow.Problem")
    if problem.dim == 1:
        raise ValueError("coarse_to_fine_start is for d = 2, 3, the problem has d = 1")
    check_coarser(problem, coarser)
    dim = problem.dim
    shape = (int(np.prod(operators.map_shape(coarser.grid))), dim)
    check_map_on_points(coarser.points, coarser.weights, coarser.map, "coarser", shape)
    cells = np.asarray(coarser.map).reshape(*operators.map_shape(coarser.grid), dim)
    at_nodes = np.mean(
        [
            cells[tuple(slice(1, None) if up else slice(None, -1) for up in corner)]
            for corner in itertools.product((False, True), repeat=dim)
        ],
        axis=0,
    )
    interior_axes = tuple(coarser.grid.axis(k)[1:-1] for k in range(dim))
    prolonged = interpolate.RegularGridInterpolator(
        interior_axes, at_nodes, method="linear", bounds_error=False, fill_value=None
    )(problem.points)
    potential = least_squares_potential(problem, prolonged)
    hessians = discrete_hessian(problem, problem.map_of(potential))
    smallest = np.linalg.eigvalsh(hessians)[:, 0]
    if smallest.min() > 0:
        return potential
    lowest = float(smallest.min())
    theta = min(1.0, -2.0 * lowest / (1.0 - lowest))
    starts = [(1.0 - theta) * potential + theta * problem.identity_potential()]
    tail = _convexified_tails(problem, potential, hessians, smallest <= 0)
    if tail is not None:
        starts.append(tail)
    return min(starts, key=lambda start: kl_energy(problem, problem.map_of(start)))


def check_coarser(problem: Problem, coarser) -> None:
    """That ``coarser`` is a `DiscreteMap` of a grid of ``problem``'s box and dimension with
    at most its nodes per axis: TypeError or ValueError otherwise (also where `minimize`
    does not read it, in d = 1: a map of another problem is a mistake there too)."""
    require_instance(problem, Problem, "problem", "; build one with gridflow.Problem")
    require_discrete_map(coarser, "coarser", "the minimize of a coarser grid")
    if coarser.grid.dim != problem.dim or any(
        n > m for n, m in zip(coarser.grid.shape, problem.grid.shape, strict=True)
    ):
        raise ValueError(
            f"coarser must be the map of a grid with at most the problem's nodes per axis "
            f"{problem.grid.shape}, got {coarser.grid.shape}"
        )
    if (coarser.grid.lower, coarser.grid.upper) != (problem.grid.lower, problem.grid.upper):
        raise ValueError(
            f"the coarser map's box {coarser.grid.lower}..{coarser.grid.upper} is not the "
            f"problem's {problem.grid.lower}..{problem.grid.upper}"
        )


def _convexified_tails(problem: Problem, potential, hessians, nonconvex) -> np.ndarray | None:
    """φ + θ ψ with ψ(x) = ½ max(|x - c| - r, 0)², convex and flat on the ball B(c, r) that
    holds the source's bulk, or None when no θ makes every discrete Hessian positive definite.

    Where the prolonged potential fails to be convex lies, on smooth problems, far in the
    tails (weights near the density floor): c is the source's mean and r 0.9 times the
    distance from c to the nearest such node, so ψ leaves the map unchanged on the cells
    whose corners lie inside the ball, where a mix with the identity would move it
    everywhere. θ is twice the smallest value that makes H_h(φ + θ ψ) positive definite
    (bisection on the nodes that need it or where H_h ψ, a discrete Hessian of a convex
    function, is not positive semidefinite); the result is checked, None if it is not
    strictly inside K_h.
    """
    center = problem.weights @ problem.points
    distance = np.linalg.norm(problem.hessian_points - center, axis=1)
    radius = 0.9 * float(distance[nonconvex].min())
    nodes = np.linalg.norm(problem.grid.nodes - center, axis=1)
    bump = 0.5 * np.maximum(nodes - radius, 0.0) ** 2
    added = discrete_hessian(problem, problem.map_of(bump))
    watched = nonconvex | (np.linalg.eigvalsh(added)[:, 0] < 0)

    def convex(theta):
        return np.linalg.eigvalsh(hessians[watched] + theta * added[watched])[:, 0].min() > 0

    high = 1.0
    while not convex(high):
        high *= 4.0
        if high > 1e6:
            return None
    low = 0.0
    for _ in range(30):
        middle = 0.5 * (low + high)
        low, high = (low, middle) if convex(middle) else (middle, high)
    start = potential + 2.0 * high * bump
    smallest = np.linalg.eigvalsh(discrete_hessian(problem, problem.map_of(start)))[:, 0]
    return start if smallest.min() > 0 else None
