"""The normal equations D_hᵀ D_h p = r by fast diagonalization (gridflow.fast_diagonalization)
against dense least squares, in d = 1, 2, 3, on boxes of unequal sides and spacings."""

import numpy as np
import pytest

from gridflow import Grid, operators
from gridflow.fast_diagonalization import solve_gradient_normal_equations
from gridflow.potentials import least_squares_potential

GRIDS = [
    Grid([-1.0], [2.0], [12]),
    Grid([-1.0, -3.0], [2.0, 1.0], [9, 14]),
    Grid([-1.0, 0.0, -2.0], [1.0, 3.0, 2.0], [5, 7, 6]),
]


@pytest.mark.parametrize("grid", GRIDS, ids=lambda grid: f"{grid.dim}d")
def test_the_field_is_the_dense_least_squares_one(grid):
    """D_h p for p = (D_hᵀ D_h)⁺ D_hᵀ v is the field of numpy's least-squares solution of
    D_h p ≈ v, and p solves the normal equations to roundoff."""
    gradient = operators.gradient_operator(grid)
    v = np.random.default_rng(grid.dim).standard_normal(gradient.shape[0])
    rhs = gradient.T @ v
    p = solve_gradient_normal_equations(grid, rhs)
    expected, *_ = np.linalg.lstsq(gradient.toarray(), v, rcond=None)
    scale = np.abs(gradient @ expected).max()
    np.testing.assert_allclose(gradient @ p, gradient @ expected, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(gradient.T @ (gradient @ p), rhs, rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("grid", GRIDS[1:], ids=lambda grid: f"{grid.dim}d")
def test_the_kernel_of_the_gradient_is_left_out(grid):
    """A potential in ker D_h (a constant plus a checkerboard; in 3D also the planes'
    alternations) has rhs 0 and gives p = 0; added to another potential, the same p."""
    kernel = operators.kernel_basis(grid).toarray()
    gradient = operators.gradient_operator(grid)
    np.testing.assert_allclose(gradient @ kernel.T, 0.0, atol=1e-12)
    base = np.random.default_rng(3).standard_normal(gradient.shape[1])
    shifted = base + kernel.T @ np.arange(1.0, kernel.shape[0] + 1.0)
    first = solve_gradient_normal_equations(grid, gradient.T @ (gradient @ base))
    second = solve_gradient_normal_equations(grid, gradient.T @ (gradient @ shifted))
    np.testing.assert_allclose(first, second, atol=1e-10)
    np.testing.assert_allclose(gradient @ first, gradient @ base, atol=1e-10)


def test_least_squares_potential_fits_a_gradient_field_exactly():
    """v = D_h q for a potential q: the fitted field is v itself."""
    from gridflow import examples

    problem = examples.problem_2d(9)
    q = np.random.default_rng(4).standard_normal(problem.grid.nodes.shape[0])
    v = problem.map_of(q)
    np.testing.assert_allclose(problem.map_of(least_squares_potential(problem, v)), v, atol=1e-12)


def test_a_right_hand_side_of_another_grid_or_no_grid_is_refused():
    with pytest.raises(ValueError, match=r"rhs must have shape \(126,\)"):
        solve_gradient_normal_equations(GRIDS[1], np.ones(125))
    with pytest.raises(TypeError, match=r"grid must be a gridflow\.Grid, got tuple"):
        solve_gradient_normal_equations((9, 14), np.ones(126))
    with pytest.raises(ValueError, match="rhs must be finite"):
        solve_gradient_normal_equations(GRIDS[1], np.full(126, np.nan))
