"""The grid solver in d = 3: operators, the kernel of D_h and its gauge, F_h and its
derivatives, the Newton matrices, the proximal step and the tangent-cone projections, each
against an independent computation (SVDs, exact quadratics, finite differences, the 2D
kernels, sparse products, cvxpy)."""

import numpy as np
import pytest
from scipy import linalg

from gridflow import (
    Gaussian,
    Grid,
    LogConcaveTarget,
    Problem,
    cones,
    kl_energy,
    kl_gradient,
    operators,
    proximal,
)
from gridflow.functionals import (
    _curvature_by_inverse,
    _log_det_by_cholesky,
    _log_det_gradient_by_inverse,
    discrete_hessian,
    kl_hessian,
    log_det_curvature,
    log_det_gradient,
    log_det_term,
)
from gridflow.potentials import GaugedFactorization, helmholtz_projection, in_gauge, metric

S0 = np.array([[0.6, 0.2, 0.1], [0.2, 0.5, -0.1], [0.1, -0.1, 0.7]])
M0 = np.array([0.2, -0.1, 0.1])
GAMMA = np.array([[1.0, 0.3, 0.0], [0.3, 0.8, 0.2], [0.0, 0.2, 1.2]])
M_GAMMA = np.array([0.0, 0.3, -0.2])
FD_STEP = 1e-6


def small_problem(shape=(6, 7, 5), density_floor=1e-3):
    """A coarse, non-cubic grid with different spacings (the box cuts some mass: allowed)."""
    return Problem(
        Grid([-3.0, -3.5, -2.5], [3.0, 3.0, 3.5], list(shape)),
        Gaussian(M0, S0),
        LogConcaveTarget.gaussian(M_GAMMA, GAMMA),
        max_cut_mass=0.05,
        density_floor=density_floor,
    )


@pytest.fixture(scope="module")
def problem():
    return small_problem()


def random_interior_map(problem, seed, size=0.2):
    """D_h of ½|x|² plus a small random potential: strictly inside K_h."""
    rng = np.random.default_rng(seed)
    potential = problem.identity_potential() + size * rng.standard_normal(
        problem.grid.nodes.shape[0]
    )
    T = problem.map_of(potential)
    assert cones.smallest_eigenvalues(problem, T).min() > 0.05
    return T


@pytest.mark.parametrize("shape", [(4, 4, 4), (5, 6, 7), (6, 4, 5)])
def test_the_kernel_of_the_gradient_is_the_constants_and_the_alternating_planes(shape):
    grid = Grid([-1.0, 0.0, -2.0], [1.0, 2.0, 1.0], list(shape))
    D = operators.gradient_operator(grid).toarray()
    kernel = linalg.null_space(D)  # by an SVD, independently of the construction
    assert kernel.shape[1] == 1 + sum(shape) - 2
    basis = operators.kernel_basis(grid).toarray()
    assert basis.shape == (kernel.shape[1], D.shape[1])
    assert np.linalg.matrix_rank(basis) == basis.shape[0]
    assert np.abs(D @ basis.T).max() == 0.0
    assert np.abs(basis.T - kernel @ (kernel.T @ basis.T)).max() < 1e-12
    H = operators.hessian_operator(grid)
    assert np.abs(H @ basis.T).max() < 1e-12


@pytest.mark.parametrize("anchor", [0, 37, 209, 100])
def test_gauge_nodes_pin_the_kernel_in_3d(anchor):
    grid = Grid([-1.0, 0.0, -2.0], [1.0, 2.0, 1.0], [5, 6, 7])
    D = operators.gradient_operator(grid).toarray()
    gauge = operators.gauge_nodes(grid, anchor)
    assert gauge[0] == anchor and len(set(gauge.tolist())) == gauge.size == 17
    free = np.setdiff1d(np.arange(D.shape[1]), gauge)
    assert np.linalg.matrix_rank(D[:, free]) == free.size
    restricted = operators.kernel_basis(grid).toarray()[:, gauge]
    assert np.linalg.cond(restricted) < 100  # measured 8–31 for these anchors


def test_gradient_and_hessian_are_exact_on_quadratics():
    grid = Grid([-1.0, -2.0, -1.5], [1.0, 2.0, 1.5], [5, 6, 7])
    A = np.array([[2.0, 0.3, 0.1], [0.3, 1.0, -0.2], [0.1, -0.2, 1.5]])
    b = np.array([0.1, 0.2, -0.3])
    x = grid.nodes
    phi = 0.5 * np.einsum("ni,ij,nj->n", x, A, x) + x @ b
    T = (operators.gradient_operator(grid) @ phi).reshape(-1, 3)
    np.testing.assert_allclose(T, operators.map_points(grid) @ A + b, atol=1e-13)
    entries = (operators.hessian_operator(grid) @ phi).reshape(-1, 6)
    rows, columns = operators.hessian_entries(3)
    np.testing.assert_allclose(
        entries, np.broadcast_to(A[rows, columns], entries.shape), atol=1e-13
    )


def test_the_generic_log_det_equals_the_2d_numba_kernels():
    """The batched-Cholesky value, the inverse-based gradient and curvature (used in d = 3)
    against the 2D numba kernels and the 2D closed form, on the same map."""
    problem = Problem(
        Grid([-5.0, -4.5], [5.5, 5.0], [11, 9]),
        Gaussian([0.0, 0.0], [[0.6, 0.25], [0.25, 0.4]]),
        LogConcaveTarget.gaussian([0.0, 0.0], np.eye(2)),
    )
    rng = np.random.default_rng(4)
    T = problem.map_of(problem.identity_potential() + 0.1 * rng.standard_normal(99))
    assert _log_det_by_cholesky(problem, T)[1] == pytest.approx(log_det_term(problem, T), rel=1e-13)
    expected = log_det_gradient(problem, T)
    np.testing.assert_allclose(
        _log_det_gradient_by_inverse(problem, T), expected, atol=1e-13 * np.abs(expected).max()
    )
    generic = _curvature_by_inverse(problem.hessian_weights, discrete_hessian(problem, T))
    np.testing.assert_allclose(generic, log_det_curvature(problem, T), rtol=1e-12)


def test_log_det_term_in_3d_equals_numpy_slogdet(problem):
    T = random_interior_map(problem, 0)
    sign, log_det = np.linalg.slogdet(discrete_hessian(problem, T))
    assert np.all(sign > 0)
    assert log_det_term(problem, T) == pytest.approx(-problem.hessian_weights @ log_det, rel=1e-13)


def test_kl_gradient_in_3d_matches_finite_differences_of_the_energy(problem):
    T = random_interior_map(problem, 1)
    gradient = kl_gradient(problem, T) * problem.weights[:, None]  # the Euclidean gradient
    rng = np.random.default_rng(5)
    for _ in range(6):
        direction = rng.standard_normal(T.shape)
        difference = (
            kl_energy(problem, T + FD_STEP * direction)
            - kl_energy(problem, T - FD_STEP * direction)
        ) / (2 * FD_STEP)
        # measured ≤ 4.6e-10 (the differences' roundoff, ε|F_h| / step) against directional
        # derivatives of 0.04 to 0.63
        assert difference == pytest.approx(np.sum(gradient * direction), abs=1e-8)


def test_kl_hessian_in_3d_matches_finite_differences_of_the_gradient(problem):
    T = random_interior_map(problem, 2)
    hessian = kl_hessian(problem, T)
    rng = np.random.default_rng(6)
    for _ in range(4):
        direction = rng.standard_normal(T.shape)
        difference = (
            (
                kl_gradient(problem, T + FD_STEP * direction)
                - kl_gradient(problem, T - FD_STEP * direction)
            )
            * problem.weights[:, None]
            / (2 * FD_STEP)
        )
        expected = (hessian @ direction.ravel()).reshape(T.shape)
        # measured ≤ 9e-11 relative to the largest entry
        np.testing.assert_allclose(difference, expected, atol=1e-8 * np.abs(expected).max())


def test_a_map_outside_the_cone_has_infinite_energy_in_3d(problem):
    T = problem.map_of(-problem.identity_potential())
    assert log_det_term(problem, T) == np.inf
    with pytest.raises(ValueError, match="not positive definite"):
        log_det_gradient(problem, T)


@pytest.mark.parametrize("tau", [0.5, np.inf])
def test_the_3d_newton_matrix_equals_the_plain_product(problem, tau):
    T = random_interior_map(problem, 3)
    G = problem.gradient_operator
    assembled = proximal.newton_matrix(problem, T, tau, T)
    expected = G.T @ proximal._euclidean_hessian(problem, T, tau, T) @ G
    assert abs(assembled - expected).max() <= 1e-12 * abs(expected).max()


def test_the_gauged_factorization_solves_the_singular_3d_metric(problem):
    M = metric(problem)
    rhs = M @ np.random.default_rng(7).standard_normal(M.shape[0])  # in the range
    solution = GaugedFactorization(problem, M, reach=1).solve(rhs)
    np.testing.assert_array_equal(solution[problem.gauge_nodes], 0.0)
    np.testing.assert_allclose(M @ solution, rhs, atol=1e-10 * np.abs(rhs).max())


def test_in_gauge_removes_the_kernel_and_keeps_the_map(problem):
    rng = np.random.default_rng(8)
    potential = rng.standard_normal(problem.grid.nodes.shape[0])
    kernel = operators.kernel_basis(problem.grid)
    shifted = potential + kernel.T @ rng.standard_normal(kernel.shape[0])
    representative = in_gauge(problem, shifted)
    np.testing.assert_allclose(kernel @ representative, 0.0, atol=1e-11)
    np.testing.assert_allclose(
        problem.map_of(representative), problem.map_of(potential), atol=1e-11
    )


def test_the_3d_proximal_step_agrees_with_the_semidefinite_program(problem):
    """Newton against cvxpy's log_det (Clarabel): the strongly convex objective (modulus
    1/τ in ‖·‖_w) bounds the distance by the energy gap of the interior-point solution."""
    center = 1.1 * problem.identity()
    tau = 0.5
    newton = proximal.proximal_step(problem, center, tau)
    conic = proximal.proximal_step(problem, center, tau, solver="cvxpy")

    def objective(T):
        return kl_energy(problem, T) + problem.norm(T - center) ** 2 / (2 * tau)

    gap = objective(conic) - objective(newton)
    assert -1e-12 <= gap < 1e-8
    assert problem.norm(conic - newton) <= np.sqrt(2 * tau * gap) + 1e-9  # measured 5.6e-8


def degenerate_state(problem):
    """½ max(x, 0)² + ½ max(y, 0)² + ½ z²: Hessians of nullity 0, 1 and 2 at the nodes."""
    x = problem.grid.nodes
    return problem.map_of(
        0.5 * np.maximum(x[:, 0], 0) ** 2 + 0.5 * np.maximum(x[:, 1], 0) ** 2 + 0.5 * x[:, 2] ** 2
    )


def test_active_set_in_3d_counts_the_kernel_dimension(problem):
    active = cones.active_set(problem, degenerate_state(problem))
    x, h = problem.hessian_points, problem.grid.spacing
    # flat along an axis where the node's whole stencil (one node on each side) has x_k ≤ 0
    expected = (x[:, 0] + h[0] < 0).astype(int) + (x[:, 1] + h[1] < 0)
    np.testing.assert_array_equal(active.nullity, expected)
    assert set(np.unique(active.nullity)) == {0, 1, 2}


@pytest.mark.parametrize("seed", [0, 1])
def test_lemma_2_8_for_the_3d_tangent_projection(problem, seed):
    """w = proj_{Tan_T K_h}(v) at a state with active constraints of nullity 1 and 2:
    (i) ⟨v, w⟩ = ‖w‖²_w, (ii) ⟨v - w, S - T⟩ ≤ 0 for S ∈ K_h, and w in the tangent cone."""
    T = degenerate_state(problem)
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(T.shape)
    w = cones.project_onto_tangent_cone(problem, T, v)
    assert problem.inner(v, w) == pytest.approx(problem.norm(w) ** 2, abs=1e-8)
    for S in [random_interior_map(problem, 10 + k, size=0.05) for k in range(5)] + [0 * T, 2 * T]:
        assert problem.inner(v - w, S - T) <= 1e-7 * problem.norm(S - T)
    active = cones.active_set(problem, T)
    X = discrete_hessian(problem, w)
    for nullity in (1, 2):
        U = active.eigenvectors[active.nullity == nullity][:, :, :nullity]
        reduced = np.einsum("jpa,jpq,jqb->jab", U, X[active.nullity == nullity], U)
        assert np.linalg.eigvalsh(reduced)[:, 0].min() >= -1e-7 * (1 + np.abs(X).max())


def test_the_fast_3d_projection_is_the_helmholtz_projection_where_it_is_feasible(problem):
    """At a state strictly inside K_h no constraint binds: the tangent cone is the whole
    space of gradient fields and both methods return the Helmholtz projection P v."""
    T = random_interior_map(problem, 4)
    v = np.random.default_rng(3).standard_normal(T.shape)
    _, helmholtz = helmholtz_projection(problem, v)
    fast = cones.project_onto_tangent_cone(problem, T, v)
    np.testing.assert_array_equal(fast, helmholtz)
    conic = cones.project_onto_tangent_cone(problem, T, v, method="cvxpy")
    assert problem.norm(conic - helmholtz) <= 1e-6 * problem.norm(helmholtz)


def test_projection_onto_the_3d_cone_is_in_the_cone_and_optimal(problem):
    """proj_{K_h}(v) with the 3 × 3 semidefinite constraint at every node: P ∈ K_h,
    ⟨v - P, P⟩ = 0 and ⟨v - P, S - P⟩ ≤ 0 for S ∈ K_h."""
    v = np.random.default_rng(12).standard_normal(problem.points.shape)
    P = cones.project_onto_cone(problem, v, method="cvxpy")
    assert cones.smallest_eigenvalues(problem, P).min() >= -1e-8
    assert abs(problem.inner(v - P, P)) <= 1e-6
    for k in range(5):
        S = random_interior_map(problem, 20 + k, size=0.05)
        assert problem.inner(v - P, S - P) <= 1e-6 * problem.norm(S - P)
