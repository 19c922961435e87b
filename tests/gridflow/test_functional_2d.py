"""The 2D discrete KL F_h, its weighted gradient and Hessian, against independent computations.

F_h(T) = Σ w V(T) - Σ m log det(B_h T) + const, with T = D_h φ at the cell centers and
B_h T = H_h φ at the interior nodes. The finite-difference checks run on a non-square box
with different spacings along the axes (the numba kernels take h0 and h1 separately).
"""

import numpy as np
import pytest

from gridflow import (
    Gaussian,
    Grid,
    GridCutsSourceError,
    LogConcaveTarget,
    Problem,
    gaussian,
    kl_energy,
    kl_gradient,
)
from gridflow.functionals import (
    OutsideConeError,
    discrete_hessian,
    kl_hessian,
    log_det_gradient,
    log_det_gradient_2d,
    log_det_term,
    log_det_term_2d,
)
from gridflow.operators import hessian_shape, map_shape

S0 = np.array([[0.6, 0.25], [0.25, 0.4]])
FD_STEP = 1e-6  # central differences: truncation ~1e-12, roundoff ~eps |F| / step ~ 1e-10


def standard_problem(nodes, box=5.0, target=None):
    return Problem(
        Grid([-box, -box], [box, box], [nodes, nodes]),
        Gaussian([0.0, 0.0], S0),
        LogConcaveTarget.gaussian([0.0, 0.0], np.eye(2)) if target is None else target,
    )


def skewed_problem(target=None):
    """The standard source on a non-square, off-center box: h0 = 1.05, h1 = 1.1875."""
    return Problem(
        Grid([-5.0, -4.5], [5.5, 5.0], [11, 9]),
        Gaussian([0.0, 0.0], S0),
        LogConcaveTarget.gaussian([0.0, 0.0], np.eye(2)) if target is None else target,
    )


def softened_target():
    """V(y) = ½|y|² + 0.3 Σ_k log cosh(y_k - 0.5): non-quadratic, 1-convex (not Gaussian).

    The constant log Z does not enter any gradient; 0 is given to skip the quadrature.
    """

    def V(y):
        return 0.5 * np.sum(y**2, axis=1) + 0.3 * np.sum(np.log(np.cosh(y - 0.5)), axis=1)

    def grad_V(y):
        return y + 0.3 * np.tanh(y - 0.5)

    def hess_V(y):
        diagonal = 1 + 0.3 / np.cosh(y - 0.5) ** 2
        return diagonal[:, :, None] * np.eye(2)[None]

    return LogConcaveTarget(V, grad_V, lam=1.0, dim=2, hess_V=hess_V, log_normalizer=0.0)


def random_interior_map(problem, seed):
    """T = D_h φ, φ = ½ xᵀAx + 0.05 h0 h1 noise: strictly convex, the noise moving the
    discrete Hessian (λmin(A) = 0.72) by O(0.1)."""
    rng = np.random.default_rng(seed)
    x = problem.grid.nodes
    A = np.array([[1.2, 0.3], [0.3, 0.9]])
    noise = 0.05 * np.prod(problem.grid.spacing) * rng.standard_normal(len(x))
    T = problem.map_of(0.5 * np.einsum("ni,ij,nj->n", x, A, x) + noise)
    assert np.linalg.eigvalsh(discrete_hessian(problem, T))[:, 0].min() > 0.3
    return T


def kernel_arguments(problem, T):
    """The layouts of the numba kernels: T on the cell grid, m on the interior nodes."""
    return (
        np.ascontiguousarray(T).reshape(*map_shape(problem.grid), 2),
        problem.hessian_weights.reshape(hessian_shape(problem.grid)),
        *problem.grid.spacing,
    )


def test_log_det_term_equals_numpy_on_the_discrete_hessian():
    problem = skewed_problem()
    T = random_interior_map(problem, 0)
    _, log_det = np.linalg.slogdet(discrete_hessian(problem, T))
    expected = -problem.hessian_weights @ log_det
    assert log_det_term(problem, T) == pytest.approx(expected, rel=1e-13)
    assert log_det_term_2d(*kernel_arguments(problem, T)) == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("seed", [0, 1])
def test_numba_log_det_gradient_matches_finite_differences_in_every_coordinate(seed):
    problem = skewed_problem()
    T = random_interior_map(problem, seed)
    cells, nodes, h0, h1 = kernel_arguments(problem, T)
    gradient = log_det_gradient_2d(cells, nodes, h0, h1)
    finite_difference = np.zeros(cells.size)
    for k in range(cells.size):
        step = np.zeros(cells.size)
        step[k] = FD_STEP
        step = step.reshape(cells.shape)
        finite_difference[k] = (
            log_det_term_2d(cells + step, nodes, h0, h1)
            - log_det_term_2d(cells - step, nodes, h0, h1)
        ) / (2 * FD_STEP)
    # measured 1.3e-10 (roundoff of the differences) against max |gradient| = 0.33
    np.testing.assert_allclose(gradient.ravel(), finite_difference, rtol=0, atol=1e-9)


def test_numba_log_det_gradient_equals_a_numpy_implementation():
    """Bᵀ (∂/∂(a, b, c) of -m log(ac - b²)) = Bᵀ m (-c, 2b, -a) / det, through the sparse B_h
    of `Problem.map_hessian_operator` (the kernel has its own stencil)."""
    problem = skewed_problem()
    T = random_interior_map(problem, 2)
    entries = (problem.map_hessian_operator @ T.ravel()).reshape(-1, 3)
    a, b, c = entries.T
    scale = problem.hessian_weights / (a * c - b * b)
    partials = np.stack([-c * scale, 2 * b * scale, -a * scale], axis=1).ravel()
    expected = (problem.map_hessian_operator.T @ partials).reshape(T.shape)
    gradient = log_det_gradient(problem, T)
    np.testing.assert_allclose(gradient, expected, rtol=0, atol=1e-14 * np.abs(expected).max())


@pytest.mark.parametrize("target", [None, softened_target()], ids=["gaussian", "softened"])
def test_kl_gradient_matches_finite_differences_of_the_energy(target):
    problem = skewed_problem(target)
    rng = np.random.default_rng(3)
    T = random_interior_map(problem, 3)
    gradient = kl_gradient(problem, T)
    for _ in range(4):
        direction = rng.standard_normal(T.shape)
        plus, minus = (kl_energy(problem, T + s * FD_STEP * direction) for s in (1, -1))
        finite_difference = (plus - minus) / (2 * FD_STEP)
        # measured relative differences ≤ 3e-10
        assert problem.inner(gradient, direction) == pytest.approx(finite_difference, rel=1e-8)


@pytest.mark.parametrize("target", [None, softened_target()], ids=["gaussian", "softened"])
def test_kl_hessian_matches_finite_differences_of_the_euclidean_gradient(target):
    problem = skewed_problem(target)
    T = random_interior_map(problem, 4)
    direction = np.random.default_rng(4).standard_normal(T.shape)

    def euclidean_gradient(map_values):
        return (problem.weights[:, None] * kl_gradient(problem, map_values)).ravel()

    finite_difference = (
        euclidean_gradient(T + FD_STEP * direction) - euclidean_gradient(T - FD_STEP * direction)
    ) / (2 * FD_STEP)
    analytic = kl_hessian(problem, T) @ direction.ravel()
    # measured 4e-11 against max |analytic| ≈ 1.7
    np.testing.assert_allclose(analytic, finite_difference, rtol=0, atol=1e-8)
    hessian = kl_hessian(problem, T)
    assert abs(hessian - hessian.T).max() <= 1e-14 * abs(hessian).max()


@pytest.mark.parametrize(("nodes", "tolerance"), [(17, 1e-6), (33, 2e-8)])
def test_energy_at_the_identity_is_the_closed_form_kl(nodes, tolerance):
    """B_h id = I, so F_h(id) = Σ w V(x) + Σ m log ϱ0 + log Zγ: midpoint quadratures of a
    Gaussian, spectrally accurate (measured 1.2e-7 at 17², 5e-9 at 33²; the latter is at the
    level of the density floor and the cut tails)."""
    problem = standard_problem(nodes)
    exact = gaussian.kl(
        gaussian.Gaussian(np.zeros(2), S0), gaussian.Gaussian(np.zeros(2), np.eye(2))
    )
    assert abs(kl_energy(problem, problem.identity()) - exact) < tolerance


# A smooth, convex, non-quadratic potential: φ = ½ xᵀAx + ε Σ_k cos(k·x).
# Its Hessian A - ε Σ cos(k·x) k kᵀ has λmin ≥ 0.72 - 4ε > 0.
POTENTIAL_MATRIX = np.array([[1.2, 0.3], [0.3, 0.9]])
WAVES = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
EPSILON = 0.05


def smooth_potential(x):
    return 0.5 * np.einsum("ni,ij,nj->n", x, POTENTIAL_MATRIX, x) + EPSILON * np.cos(
        x @ WAVES.T
    ).sum(axis=1)


def continuous_lifted_gradient(x):
    """(D²φ)⁻¹ ∇(log ϱ0 - log det D²φ) + ∇V(∇φ) at x, for ϱ0 = N(0, S0), V = ½|y|²."""
    phases = x @ WAVES.T
    gradient = x @ POTENTIAL_MATRIX - EPSILON * np.sin(phases) @ WAVES
    hessian = POTENTIAL_MATRIX - EPSILON * np.einsum("nk,ki,kj->nij", np.cos(phases), WAVES, WAVES)
    hessian_derivative = EPSILON * np.einsum(  # ∂_l D²φ, indices (n, l, i, j)
        "nk,kl,ki,kj->nlij", np.sin(phases), WAVES, WAVES, WAVES
    )
    inverse = np.linalg.inv(hessian)
    log_det_gradient_values = np.einsum("nij,nlji->nl", inverse, hessian_derivative)
    log_source_gradient = -x @ np.linalg.inv(S0)
    return (
        np.einsum("nij,nj->ni", inverse, log_source_gradient - log_det_gradient_values) + gradient
    )


def test_continuous_lifted_gradient_formula_matches_finite_differences():
    """The reference formula itself: ∇ log det D²φ by finite differences of log det."""
    x = np.array([[0.3, -0.7], [-1.1, 0.4]])
    step = 1e-6

    def hessian(y):
        cosines = np.cos(y @ WAVES.T)
        return POTENTIAL_MATRIX - EPSILON * np.einsum("nk,ki,kj->nij", cosines, WAVES, WAVES)

    log_det = [
        [np.linalg.slogdet(hessian(x + s * step * np.eye(2)[l]))[1] for s in (1, -1)]
        for l in range(2)
    ]
    numeric = np.stack([(plus - minus) / (2 * step) for plus, minus in log_det], axis=1)
    inverse = np.linalg.inv(hessian(x))
    expected = np.einsum("nij,nj->ni", inverse, -x @ np.linalg.inv(S0) - numeric) + (
        x @ POTENTIAL_MATRIX - EPSILON * np.sin(x @ WAVES.T) @ WAVES
    )
    np.testing.assert_allclose(continuous_lifted_gradient(x), expected, atol=1e-8)


def lifted_gradient_error(nodes):
    problem = standard_problem(nodes)
    T = problem.map_of(smooth_potential(problem.grid.nodes))
    difference = kl_gradient(problem, T) - continuous_lifted_gradient(problem.points)
    return problem.norm(difference)


def test_weighted_gradient_converges_to_the_continuous_lifted_gradient_at_second_order():
    """Lemma B.6 discretized. The whole box is used: the boundary cells and the floored tails
    carry errors up to ~40 but weights ≤ 1e-12, invisible in ‖·‖_w.
    Measured: 0.254 at 33², 0.0635 at 65² (order 2.00)."""
    coarse, fine = lifted_gradient_error(33), lifted_gradient_error(65)
    assert fine < 0.07
    assert np.log2(coarse / fine) > 1.9


def test_outside_the_cone_energy_is_infinite_and_derivatives_refuse():
    problem = standard_problem(13)
    x = problem.grid.nodes
    saddle = problem.map_of(0.5 * (x[:, 0] ** 2 - x[:, 1] ** 2))
    degenerate = problem.map_of(0.5 * np.maximum(x[:, 0], 0) ** 2 + 0.5 * x[:, 1] ** 2)
    for T in (saddle, degenerate):  # indefinite, and singular (a = 0) at some nodes
        assert kl_energy(problem, T) == np.inf
        with pytest.raises(OutsideConeError, match="not positive definite"):
            kl_gradient(problem, T)
        with pytest.raises(OutsideConeError):
            kl_hessian(problem, T)
        assert np.isnan(log_det_gradient_2d(*kernel_arguments(problem, T))).all()
    assert np.isfinite(kl_energy(problem, problem.identity()))


def test_grid_that_cuts_the_source_is_refused():
    with pytest.raises(GridCutsSourceError, match="enlarge the box"):
        standard_problem(17, box=2.0)
    # the cut along the second axis alone is detected too
    with pytest.raises(GridCutsSourceError):
        Problem(
            Grid([-5.0, -1.5], [5.0, 5.0], [17, 17]),
            Gaussian([0.0, 0.0], S0),
            LogConcaveTarget.gaussian([0.0, 0.0], np.eye(2)),
        )
    assert standard_problem(17).size == 16 * 16
