"""The fast paths of Newton's method in φ (d = 2) against the reference computations.

- the Newton matrix grouped through H_h = B_h D_h equals D_hᵀ ∂²_T D_h formed the plain way;
- the attempt from the identity gives up early on a stalled barrier (the paper's mixture);
- the density-floor continuation reaches the same minimizer as Newton's method from the
  identity (a Gaussian, where both converge).
"""

import dataclasses

import numpy as np
import pytest

from gridflow import Gaussian, Grid, LogConcaveTarget, Problem, examples, minimize
from gridflow.proximal import _euclidean_hessian, newton_matrix, proximal_potential
from gridflow.schemes import STALL_STEPS, _minimize_by_floor_continuation
from gridflow.solvers import SolverError


@pytest.fixture(scope="module")
def skewed_problem():
    grid = Grid([-4.0, -3.5], [4.5, 3.0], [10, 9])
    source = Gaussian([0.2, -0.1], [[0.6, 0.25], [0.25, 0.4]])
    target = LogConcaveTarget.gaussian([0.3, 0.0], [[1.0, 0.3], [0.3, 0.8]])
    return Problem(grid, source, target)


@pytest.mark.parametrize("tau", [0.3, np.inf])
def test_newton_matrix_equals_the_plain_product(skewed_problem, tau):
    problem = skewed_problem
    phi = problem.identity_potential() + 0.05 * np.cos(problem.grid.nodes).sum(1)
    T = problem.map_of(phi)
    G = problem.gradient_operator
    plain = (G.T @ _euclidean_hessian(problem, T, tau, T) @ G).toarray()
    grouped = newton_matrix(problem, T, tau, T).toarray()
    np.testing.assert_allclose(grouped, plain, rtol=0, atol=1e-13 * np.abs(plain).max())


def test_newton_from_the_identity_gives_up_on_a_stalled_barrier():
    problem = examples.problem_2d(33, source=examples.paper_mixture(), box=(-6.0, 6.0))
    problem = dataclasses.replace(problem, density_floor=1e-6)
    with pytest.raises(SolverError, match=f"stalled: {STALL_STEPS} steps in a row"):
        proximal_potential(
            problem, problem.identity(), np.inf, max_iter=40, stall_steps=STALL_STEPS
        )


def test_floor_continuation_reaches_the_minimizer_from_the_identity():
    problem = examples.problem_2d(17)
    direct = minimize(problem)  # Newton from the identity converges on this Gaussian
    continued = problem.map_of(_minimize_by_floor_continuation(problem, progress=False))
    assert problem.norm(continued - direct.map) < 1e-10


def test_a_negative_newton_decrement_is_an_error_not_convergence():
    """Inaccurate linear solves can give gᵀH⁻¹g < 0; the stagnation test must not read that
    as convergence (a wrong minimizer returned without a word)."""
    from gridflow.proximal import damped_newton

    def value(x):
        return 0.5 * float(np.sum(x * x))

    def gradient(x):
        return x

    def wrong_direction(_x, g):
        return -1e-3 * g  # an ascent direction: decrement −1e-3 ‖g‖²

    with pytest.raises(SolverError, match="negative Newton decrement"):
        damped_newton(value, gradient, wrong_direction, np.linalg.norm, np.ones(3))
    exact = damped_newton(value, gradient, lambda _x, g: g, np.linalg.norm, np.ones(3))
    np.testing.assert_allclose(exact, 0.0, atol=1e-12)


def test_a_newton_matrix_singular_to_roundoff_is_still_solved():
    """The paper mixture at 65² with the default floor 1e-12: the continuation meets a matrix
    whose scaled form has an eigenvalue of -1e-16, which Cholesky refuses; the factorization
    falls back to SuperLU's LU, and minimize reaches the minimizer as 0.3.0 did."""
    problem = examples.problem_2d(65, source=examples.paper_mixture(), box=(-6.0, 6.0))
    found = minimize(problem)
    assert abs(found.energy - (-0.004392611738675889)) < 1e-9  # 0.3.0's value
