"""Finite-difference operators of the discretization (DESIGN §3).

In d = 1 the potential φ lives at the N grid nodes, the map T = D_h φ at the N - 1
cell midpoints, and the discrete second derivative H_h φ at the N - 2 interior nodes:

    T_i = (φ_{i+1} - φ_i) / h,        (H_h φ)_j = (T_j - T_{j-1}) / h.

D_h is onto R^{N-1} with kernel the constants, so every vector T is the gradient of a
discrete potential, and φ is convex (H_h φ ≥ 0) exactly when T is nondecreasing.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from gridflow.grid import Grid


def _require_1d(grid: Grid):
    if grid.dim != 1:
        raise NotImplementedError("this operator is implemented for d = 1 grids")


def midpoints(grid: Grid) -> np.ndarray:
    """Evaluation points of the map: the cell midpoints, (N - 1, 1)."""
    _require_1d(grid)
    nodes = grid.axis(0)
    return (0.5 * (nodes[1:] + nodes[:-1]))[:, None]


def interior_nodes(grid: Grid) -> np.ndarray:
    """Evaluation points of the discrete Hessian: the interior nodes, (N - 2, 1)."""
    _require_1d(grid)
    return grid.axis(0)[1:-1, None]


def difference(size: int, spacing: float) -> sparse.csr_matrix:
    """The (size - 1, size) forward difference (u_{i+1} - u_i) / spacing."""
    ones = np.ones(size - 1) / spacing
    return sparse.diags([-ones, ones], [0, 1], shape=(size - 1, size), format="csr")


def gradient_operator(grid: Grid) -> sparse.csr_matrix:
    """D_h: potential at nodes -> map at midpoints."""
    _require_1d(grid)
    return difference(grid.shape[0], grid.spacing[0])


def hessian_operator(grid: Grid) -> sparse.csr_matrix:
    """H_h: potential at nodes -> second differences at interior nodes."""
    _require_1d(grid)
    h = grid.spacing[0]
    return (difference(grid.shape[0] - 1, h) @ difference(grid.shape[0], h)).tocsr()


def potential_from_map(grid: Grid, T: np.ndarray) -> np.ndarray:
    """The potential φ with D_h φ = T, in the gauge φ(0) = 0 (d = 1).

    φ is first accumulated from the left end, then shifted so that its piecewise-linear
    interpolant vanishes at x = 0 (or at the node nearest 0 when 0 is outside the box).
    """
    _require_1d(grid)
    h = grid.spacing[0]
    phi = np.concatenate([[0.0], np.cumsum(h * np.asarray(T).reshape(-1))])
    nodes = grid.axis(0)
    return phi - np.interp(np.clip(0.0, nodes[0], nodes[-1]), nodes, phi)
