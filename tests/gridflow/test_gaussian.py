"""Tests of gridflow.gaussian: closed forms and the exact Gaussian constrained flow.

Every closed form is checked against an independent computation (quadrature, Monte
Carlo, moments, finite differences), and the flow against Thm 2.13 (i), (iii.a),
(iii.b) and the rate 2 lam of Cor 2.17 (ii).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import scipy.stats

from gridflow import Gaussian, gaussian, rates
from validation.gaussian_checks import excited_pair

DIMENSIONS = (1, 2, 3, 10)
ROUNDOFF = 1e-12  # absolute slack for the bounds of Thm 2.13 (iii): roundoff only


def random_spd(rng, dim, low=0.3, high=3.0):
    """Random SPD matrix with eigenvalues uniform in [low, high] and a random eigenbasis."""
    basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    return (basis * rng.uniform(low, high, dim)) @ basis.T


def target_with_top_gap(rng, dim):
    """Random SPD Gamma whose largest eigenvalue 3 is separated from the rest (<= 2).

    lam = 1/3; the second slowest mean mode decays at >= 1.5 lam, so a finite fitting
    window sees the asymptotic rate 2 lam (see test_near_degenerate_top_of_gamma for
    what happens without the gap).
    """
    basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    eigenvalues = rng.uniform(0.3, 2.0, dim)
    eigenvalues[-1] = 3.0
    return (basis * eigenvalues) @ basis.T


def flow_setting(dim, seed):
    """Random source, target with random means; the slowest mean mode is excited.

    ``m0 - m_gamma`` is random with its component along the top eigenvector of Gamma set
    to 1: a random mean excites that mode only almost surely (a nearly orthogonal draw
    hides the rate 2 lam behind faster modes for a long time).
    """
    rng = np.random.default_rng(seed)
    source_cov = random_spd(rng, dim)
    return excited_pair(rng, source_cov, target_with_top_gap(rng, dim))


def random_pair(dim, seed):
    rng = np.random.default_rng(seed)
    return (
        gaussian.Gaussian(rng.standard_normal(dim), random_spd(rng, dim)),
        gaussian.Gaussian(rng.standard_normal(dim), random_spd(rng, dim)),
    )


# --------------------------------------------------------------------------- Gaussian


@pytest.mark.parametrize(
    ("mean", "cov", "name"),
    [
        (np.zeros(2), np.array([[1.0, 0.0], [0.0, -1.0]]), "cov"),  # indefinite
        (np.zeros(2), np.array([[1.0, 1.0], [1.0, 1.0]]), "cov"),  # singular
        (np.zeros(2), np.array([[1.0, 0.5], [0.1, 1.0]]), "cov"),  # not symmetric
        (np.zeros(2), np.array([[1.0, np.nan], [np.nan, 1.0]]), "cov"),
        (np.zeros(2), np.array([[np.inf, 0.0], [0.0, 1.0]]), "cov"),
        (np.array([0.0, np.nan]), np.eye(2), "mean"),
        (np.zeros(3), np.eye(2), "cov"),  # shape mismatch
        (np.zeros(2), np.ones(2), "cov"),  # not a matrix
        (np.zeros((2, 1)), np.eye(2), "mean"),  # mean not 1D
        (np.zeros(0), np.eye(0), "mean"),  # empty
        (0.0, np.eye(1), "mean"),  # scalar mean
    ],
)
def test_gaussian_rejects_bad_input(mean, cov, name):
    with pytest.raises(ValueError, match=name):
        gaussian.Gaussian(mean, cov)


def test_gaussian_rejects_text_as_the_wrong_kind():
    with pytest.raises(TypeError, match="cov must be an array of real numbers, got str"):
        gaussian.Gaussian(np.zeros(2), "abc")


def test_gaussian_stores_readonly_float64_copies():
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    g = gaussian.Gaussian([1, 2], cov)
    assert g.mean.dtype == np.float64 and g.cov.dtype == np.float64
    assert g.dim == 2
    cov[0, 0] = 100.0
    assert g.cov[0, 0] == 2.0
    with pytest.raises(ValueError):
        g.mean[0] = 3.0


def test_mismatched_dimensions_are_rejected():
    g2 = gaussian.Gaussian(np.zeros(2), np.eye(2))
    g3 = gaussian.Gaussian(np.zeros(3), np.eye(3))
    for function in (gaussian.ot_map, gaussian.w2, gaussian.kl, gaussian.linearized_rates):
        with pytest.raises(ValueError, match="source and target"):
            function(g2, g3)
    with pytest.raises(ValueError, match="source and target"):
        gaussian.constrained_flow(g2, g3, [0.0, 1.0])
    with pytest.raises(TypeError, match=r"source must be a gridflow\.Gaussian, got tuple"):
        gaussian.ot_map((np.zeros(2), np.eye(2)), g2)


# ------------------------------------------------------------------------ OT and W2


@pytest.mark.parametrize("dim", DIMENSIONS)
def test_ot_map_pushes_source_onto_target(dim):
    source, target = random_pair(dim, seed=10 + dim)
    matrix, offset = gaussian.ot_map(source, target)
    np.testing.assert_array_equal(matrix, matrix.T)
    assert np.linalg.eigvalsh(matrix)[0] > 0
    np.testing.assert_allclose(matrix @ source.cov @ matrix, target.cov, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(matrix @ source.mean + offset, target.mean, atol=1e-12)


def test_w2_in_one_dimension_by_quantiles():
    source = gaussian.Gaussian([0.3], [[0.7**2]])
    target = gaussian.Gaussian([-1.1], [[1.6**2]])

    def integrand(u):
        return (
            scipy.stats.norm.ppf(u, loc=0.3, scale=0.7)
            - scipy.stats.norm.ppf(u, loc=-1.1, scale=1.6)
        ) ** 2

    quantile_value, _ = scipy.integrate.quad(integrand, 0.0, 1.0, limit=200)
    assert gaussian.w2(source, target) ** 2 == pytest.approx(quantile_value, rel=1e-8)
    assert gaussian.w2(source, target) ** 2 == pytest.approx((0.3 + 1.1) ** 2 + (0.7 - 1.6) ** 2)


def transport_cost(source, matrix, offset):
    """E|M X + o - X|^2 for X ~ source, from the first two moments of X."""
    shift = matrix - np.eye(source.dim)
    mean_displacement = shift @ source.mean + offset
    return float(np.trace(shift @ source.cov @ shift.T) + mean_displacement @ mean_displacement)


@pytest.mark.parametrize("dim", (2, 3, 10))
def test_w2_is_the_cost_of_the_closed_form_map_and_beats_other_maps(dim):
    source, target = random_pair(dim, seed=20 + dim)
    matrix, offset = gaussian.ot_map(source, target)
    squared = gaussian.w2(source, target) ** 2
    assert transport_cost(source, matrix, offset) == pytest.approx(squared, rel=1e-10)
    # Other affine maps pushing source onto target: m_g + L1 R L0^{-1} (x - m0), R orthogonal.
    rng = np.random.default_rng(dim)
    source_factor = np.linalg.cholesky(source.cov)
    target_factor = np.linalg.cholesky(target.cov)
    for _ in range(20):
        rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        other = target_factor @ rotation @ np.linalg.inv(source_factor)
        np.testing.assert_allclose(other @ source.cov @ other.T, target.cov, atol=1e-10)
        other_offset = target.mean - other @ source.mean
        assert transport_cost(source, other, other_offset) >= squared - 1e-10


def test_w2_monte_carlo_sanity():
    source, target = random_pair(3, seed=7)
    matrix, offset = gaussian.ot_map(source, target)
    samples = source.sample(np.random.default_rng(0), 200_000)
    costs = np.sum((samples @ matrix.T + offset - samples) ** 2, axis=1)
    standard_error = costs.std() / np.sqrt(costs.size)
    assert abs(costs.mean() - gaussian.w2(source, target) ** 2) < 5 * standard_error


@pytest.mark.parametrize(
    "cov",
    [
        np.eye(2),
        [[2.0, 1.0], [1.0, 2.0]],
        [[1.0, 0.999999], [0.999999, 1.0]],
        np.diag([1e-10, 1.0]),
    ],
)
def test_w2_of_identical_gaussians_is_zero_to_roundoff(cov):
    # the Bures formula's difference of traces left 4e-8 ([[2, 1], [1, 2]]) and 4.7e-6
    law = Gaussian(np.zeros(2), cov)
    assert gaussian.w2(law, law) < 1e-14


def test_w2_of_random_identical_gaussians_is_zero_to_roundoff():
    source, _ = random_pair(4, seed=3)
    assert gaussian.w2(source, source) < 1e-13


@pytest.mark.parametrize("shift", [1e-9, 1e-3, 2.5])
def test_w2_of_a_shift_is_the_shift(shift):
    law = Gaussian([0.3, -1.0], [[2.0, 0.5], [0.5, 1.0]])
    moved = Gaussian(law.mean + np.array([shift, 0.0]), law.cov)
    assert gaussian.w2(law, moved) == pytest.approx(shift, rel=1e-12)


@pytest.mark.parametrize("variance", [1.0 + 2.0**-30, 4.0, 1e-6])
def test_w2_in_1d_is_the_difference_of_deviations(variance):
    assert gaussian.w2(Gaussian([0.0], [[1.0]]), Gaussian([0.0], [[variance]])) == pytest.approx(
        abs(1.0 - np.sqrt(variance)), rel=1e-12
    )


# ------------------------------------------------------------------------------- KL


def test_kl_in_one_dimension_by_quadrature():
    source = gaussian.Gaussian([0.4], [[0.8]])
    target = gaussian.Gaussian([-0.5], [[2.5]])

    def integrand(x):
        log_p = scipy.stats.norm.logpdf(x, 0.4, np.sqrt(0.8))
        log_q = scipy.stats.norm.logpdf(x, -0.5, np.sqrt(2.5))
        return np.exp(log_p) * (log_p - log_q)

    value, _ = scipy.integrate.quad(integrand, -30, 30, limit=200)
    assert gaussian.kl(source, target) == pytest.approx(value, rel=1e-9)


def test_kl_monte_carlo():
    source, target = random_pair(3, seed=4)
    samples = source.sample(np.random.default_rng(1), 200_000)
    log_ratio = scipy.stats.multivariate_normal(source.mean, source.cov).logpdf(
        samples
    ) - scipy.stats.multivariate_normal(target.mean, target.cov).logpdf(samples)
    standard_error = log_ratio.std() / np.sqrt(log_ratio.size)
    assert abs(log_ratio.mean() - gaussian.kl(source, target)) < 5 * standard_error


@pytest.mark.parametrize("dim", DIMENSIONS)
def test_kl_matches_textbook_formula_and_log_density(dim):
    source, target = random_pair(dim, seed=30 + dim)
    precision = np.linalg.inv(target.cov)
    difference = target.mean - source.mean
    textbook = 0.5 * (
        np.trace(precision @ source.cov)
        + difference @ precision @ difference
        - dim
        + np.linalg.slogdet(target.cov)[1]
        - np.linalg.slogdet(source.cov)[1]
    )
    assert gaussian.kl(source, target) == pytest.approx(textbook, rel=1e-10)
    points = source.sample(np.random.default_rng(dim), 5)
    np.testing.assert_allclose(
        source.log_density(points),
        scipy.stats.multivariate_normal(source.mean, source.cov).logpdf(points).reshape(-1),
        rtol=1e-10,
    )


def test_kl_keeps_relative_accuracy_near_zero():
    """Second-order expansion KL ~ 1/2 |dm|^2_{G^-1} + 1/4 tr((G^-1 dS)^2) for tiny offsets."""
    _, target = random_pair(3, seed=5)
    rng = np.random.default_rng(2)
    epsilon = 1e-7
    mean_step = epsilon * rng.standard_normal(3)
    cov_step = epsilon * random_spd(rng, 3)
    nearby = gaussian.Gaussian(target.mean + mean_step, target.cov + cov_step)
    precision = np.linalg.inv(target.cov)
    expansion = 0.5 * mean_step @ precision @ mean_step + 0.25 * np.trace(
        precision @ cov_step @ precision @ cov_step
    )
    assert gaussian.kl(nearby, target) == pytest.approx(expansion, rel=1e-5)
    assert gaussian.kl(target, target) == pytest.approx(0.0, abs=1e-28)


# -------------------------------------------------------- lifted gradient, projection


def affine_kl(source, target, matrix, offset):
    """F(T) = KL(T#rho0 | gamma) for any invertible affine T (not only symmetric)."""
    pushed_cov = matrix @ source.cov @ matrix.T
    pushed = gaussian.Gaussian(matrix @ source.mean + offset, 0.5 * (pushed_cov + pushed_cov.T))
    return gaussian.kl(pushed, target)


@pytest.mark.parametrize("dim", (1, 2, 3))
def test_velocity_is_minus_the_lifted_gradient(dim):
    """Finite differences of F along arbitrary affine directions (Lemma B.6)."""
    source, target = random_pair(dim, seed=40 + dim)
    rng = np.random.default_rng(dim)
    matrix = np.eye(dim) + 0.3 * rng.standard_normal((dim, dim))  # not symmetric
    offset = rng.standard_normal(dim)
    field_matrix, field_offset = gaussian.velocity(source, target, matrix, offset)
    step = 1e-5
    for _ in range(5):
        direction = rng.standard_normal((dim, dim))
        direction_offset = rng.standard_normal(dim)
        plus = affine_kl(
            source, target, matrix + step * direction, offset + step * direction_offset
        )
        minus = affine_kl(
            source, target, matrix - step * direction, offset - step * direction_offset
        )
        derivative = (plus - minus) / (2 * step)
        # <v o T, W>_{L2(rho0)} with v o T = M (x - m0) + r and W = H (x - m0) + (H m0 + h)
        inner = np.trace(field_matrix @ source.cov @ direction.T) + field_offset @ (
            direction @ source.mean + direction_offset
        )
        assert derivative == pytest.approx(-inner, rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("dim", (1, 2, 3, 10))
def test_helmholtz_projection(dim):
    rng = np.random.default_rng(50 + dim)
    source_cov = random_spd(rng, dim)
    field_matrix = rng.standard_normal((dim, dim))
    projected, omega = gaussian.helmholtz_projection(source_cov, field_matrix)
    np.testing.assert_array_equal(projected, projected.T)
    np.testing.assert_allclose(omega, -omega.T, atol=1e-14)
    np.testing.assert_allclose(
        source_cov @ omega + omega @ source_cov, field_matrix - field_matrix.T, atol=1e-12
    )
    np.testing.assert_allclose(projected, field_matrix - source_cov @ omega, atol=1e-12)
    remainder = field_matrix - projected
    scale = np.linalg.norm(field_matrix) * np.linalg.norm(source_cov)
    for _ in range(10):
        test_matrix = rng.standard_normal((dim, dim))
        test_matrix = test_matrix + test_matrix.T
        # int <(M - S)(x - m0), P (x - m0)> d rho0 = tr(Sigma0 (M - S)^T P)
        inner = np.trace(source_cov @ remainder.T @ test_matrix)
        assert abs(inner) < 1e-13 * scale * np.linalg.norm(test_matrix)
    # Orthogonal to constants: E[(M - S)(X - m0)] = 0 trivially; and a gradient is kept.
    symmetric = field_matrix + field_matrix.T
    np.testing.assert_allclose(
        gaussian.helmholtz_projection(source_cov, symmetric)[0], symmetric, atol=1e-12
    )
    np.testing.assert_allclose(
        gaussian.helmholtz_projection(source_cov, projected)[0], projected, atol=1e-12
    )


def test_helmholtz_remainder_is_divergence_free_against_nonlinear_gradients():
    """int <Sigma0 Omega (x - m0), grad p(x)> d rho0 = 0 for non-polynomial p (Gauss–Hermite)."""
    rng = np.random.default_rng(6)
    mean = np.array([0.4, -0.2])
    source_cov = random_spd(rng, 2)
    _, omega = gaussian.helmholtz_projection(source_cov, rng.standard_normal((2, 2)))
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    grid = np.stack(np.meshgrid(nodes, nodes, indexing="ij"), axis=-1).reshape(-1, 2)
    grid_weights = np.outer(weights, weights).reshape(-1) / (2 * np.pi)
    points = mean + grid @ np.linalg.cholesky(source_cov).T
    remainder = (points - mean) @ (source_cov @ omega).T
    x, y = points[:, 0], points[:, 1]
    gradients = [
        np.stack([3 * x**2 * y, x**3], axis=1),  # p = x^3 y
        np.stack([0.5 * np.cos(0.5 * x + 0.3 * y), 0.3 * np.cos(0.5 * x + 0.3 * y)], axis=1),
        np.stack([2 * x * np.exp(0.2 * y), 0.2 * x**2 * np.exp(0.2 * y)], axis=1),
    ]
    for gradient in gradients:
        inner = np.sum(grid_weights * np.sum(remainder * gradient, axis=1))
        scale = np.sqrt(np.sum(grid_weights * np.sum(remainder**2, axis=1))) * np.sqrt(
            np.sum(grid_weights * np.sum(gradient**2, axis=1))
        )
        assert abs(inner) < 1e-12 * scale
    # The remainder itself is not zero (the field had an antisymmetric part).
    assert np.linalg.norm(omega) > 0.1


@pytest.mark.parametrize("dim", (2, 3))
def test_lemma_2_8_i_projected_velocity(dim):
    """<v o T, w> = ||w||^2 for w the projection of v o T (Lemma 2.8 (i))."""
    source, target = random_pair(dim, seed=60 + dim)
    rng = np.random.default_rng(dim)
    matrix = random_spd(rng, dim)
    offset = rng.standard_normal(dim)
    field_matrix, field_offset = gaussian.velocity(source, target, matrix, offset)
    projected, _ = gaussian.helmholtz_projection(source.cov, field_matrix)
    inner = np.trace(field_matrix @ source.cov @ projected) + field_offset @ field_offset
    norm = np.trace(projected @ source.cov @ projected) + field_offset @ field_offset
    assert inner == pytest.approx(norm, rel=1e-12)


# ------------------------------------------------------------------------------ flow


@pytest.fixture(scope="module", params=DIMENSIONS, ids=lambda d: f"d={d}")
def flow(request):
    dim = request.param
    source, target = flow_setting(dim, seed=70 + dim)
    lam = gaussian.lambda_convexity(target)
    times = np.linspace(0.0, 14.0 / lam, 300)
    return gaussian.constrained_flow(source, target, times)


def test_flow_shapes_and_start(flow):
    dim = flow.source.dim
    n = flow.times.size
    assert flow.A.shape == (n, dim, dim) and flow.b.shape == (n, dim)
    assert flow.kl.shape == flow.map_error.shape == (n,)
    np.testing.assert_array_equal(flow.A[0], np.eye(dim))
    np.testing.assert_array_equal(flow.b[0], np.zeros(dim))
    assert flow.kl[0] == flow.initial_gap == gaussian.kl(flow.source, flow.target)
    assert flow.kl_min == 0.0
    assert flow.lam == pytest.approx(1.0 / 3.0)
    ot_matrix, ot_offset = gaussian.ot_map(flow.source, flow.target)
    assert flow.map_error[0] == pytest.approx(
        transport_cost(flow.source, ot_matrix, ot_offset), rel=1e-12
    )
    np.testing.assert_array_equal(flow.A, np.swapaxes(flow.A, 1, 2))
    assert np.all(np.linalg.eigvalsh(flow.A)[:, 0] > 0)


def test_flow_theorem_2_13(flow):
    bound = gaussian.bounds(flow)
    # (i) F(T_t) nonincreasing
    assert np.all(np.diff(flow.kl) <= 1e-15)
    # (iii.a) and (iii.b) at every recorded time
    assert np.all(flow.gap <= bound.energy_gap + ROUNDOFF)
    assert np.all(flow.map_error <= bound.map_error + ROUNDOFF)
    # the rate 2 lam of (iii.a) is the asymptotic rate
    assert gaussian.fitted_rate(flow) == pytest.approx(2 * flow.lam, rel=0.05)
    # T_t -> T*
    assert flow.map_error[-1] < 1e-10
    assert flow.gap[-1] < 1e-11 * flow.gap[0]
    np.testing.assert_allclose(flow.A[-1], flow.ot_A, atol=1e-5)


def test_flow_mean_follows_closed_form(flow):
    """d(A m0 + b)/dt = -Gamma^{-1}(mean - m_gamma): the mean decouples (module docstring)."""
    expected = gaussian.pushforward_mean(flow.source, flow.target, flow.times)
    np.testing.assert_allclose(flow.mean, expected, atol=1e-9)
    np.testing.assert_allclose(flow.mean, flow.A @ flow.source.mean + flow.b, atol=1e-12)


def test_flow_energy_dissipation_equals_squared_speed():
    """dF/dt = -||d_t T||^2 (chain rule with Lemma 2.8 (i)), by central differences."""
    source, target = flow_setting(3, seed=80)
    step = 1e-4
    centers = np.array([0.1, 0.7, 2.0, 5.0])
    times = np.sort(np.concatenate([centers - step, centers, centers + step]))
    flow = gaussian.constrained_flow(source, target, times)
    for k in range(len(centers)):
        minus, center, plus = 3 * k, 3 * k + 1, 3 * k + 2
        derivative = (flow.kl[plus] - flow.kl[minus]) / (2 * step)
        field_matrix, field_offset = gaussian.velocity(
            source, target, flow.A[center], flow.b[center]
        )
        projected, _ = gaussian.helmholtz_projection(source.cov, field_matrix)
        speed = np.trace(projected @ source.cov @ projected) + field_offset @ field_offset
        assert derivative == pytest.approx(-speed, rel=1e-6)


def test_flow_times_need_not_start_at_zero():
    source, target = flow_setting(2, seed=81)
    full = gaussian.constrained_flow(source, target, [0.0, 0.5, 1.0, 2.0])
    later = gaussian.constrained_flow(source, target, [0.5, 1.0, 2.0])
    np.testing.assert_allclose(later.A, full.A[1:], atol=1e-10)
    np.testing.assert_allclose(later.b, full.b[1:], atol=1e-10)
    at_zero = gaussian.constrained_flow(source, target, [0.0])
    np.testing.assert_array_equal(at_zero.A[0], np.eye(2))


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_flow_to_t_1e8_stops_at_its_limit_and_holds_the_ot_map(dim):
    import time

    source, target = flow_setting(dim, seed=95 + dim)
    started = time.perf_counter()
    flow = gaussian.constrained_flow(source, target, [0.0, 1.0, 1e8])
    assert time.perf_counter() - started < 5.0
    optimal_matrix, optimal_offset = gaussian.ot_map(source, target)
    np.testing.assert_array_equal(flow.A[-1], optimal_matrix)
    np.testing.assert_array_equal(flow.b[-1], optimal_offset)
    assert 0.0 < flow.solver_info["converged_at"] < 1e8
    short = gaussian.constrained_flow(source, target, [0.0, 1.0])
    np.testing.assert_allclose(flow.A[:2], short.A, rtol=1e-9)  # earlier times are integrated


def test_flow_from_target_stays_at_identity():
    source, _ = flow_setting(3, seed=82)
    flow = gaussian.constrained_flow(source, source, np.linspace(0, 5, 6))
    np.testing.assert_allclose(flow.A, np.broadcast_to(np.eye(3), flow.A.shape), atol=1e-13)
    np.testing.assert_allclose(flow.kl, 0.0, atol=1e-20)


@pytest.mark.parametrize(
    "times",
    [
        [-1.0, 0.0, 1.0],
        [0.0, 2.0, 1.0],
        [0.0, 1.0, 1.0],
        [0.0, np.nan],
        [0.0, np.inf],
        [[0.0, 1.0]],
        [],
        "abc",
    ],
)
def test_flow_rejects_bad_times(times):
    source, target = flow_setting(2, seed=83)
    with pytest.raises(ValueError, match="times"):
        gaussian.constrained_flow(source, target, times)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"rtol": -1}, ValueError, r"rtol must be a finite number > 0, got -1 \(solve_ivp's"),
        ({"rtol": 0.0}, ValueError, "rtol must be a finite number > 0"),
        ({"atol": np.nan}, ValueError, "atol must be a finite number > 0"),
        ({"rtol": "1e-9"}, TypeError, "rtol must be a real number, got '1e-9'"),
        ({"atol": None}, TypeError, "atol must be a real number, got None"),
    ],
)
def test_flow_rejects_bad_tolerances(kwargs, error, match):
    """rtol=-1 used to pass, with only scipy's warning 'rtol too small, setting to ...'."""
    source, target = flow_setting(2, seed=83)
    with pytest.raises(error, match=match):
        gaussian.constrained_flow(source, target, [0.0, 1.0], **kwargs)


def test_rate_without_mean_offset_is_twice_the_slowest_covariance_rate():
    """With m0 = m_gamma only covariance modes remain; F - F* decays at 2 kappa_min > 2 lam.

    kappa_min is the slowest rate of the flow linearized at T* (gaussian.linearized_rates);
    measured ~ 2 lam (exactly 2 lam in d = 1), so the bound (iii.a) is then conservative.
    """
    for dim, seed in ((1, 90), (2, 91), (3, 92)):
        source, target = flow_setting(dim, seed)
        centered = gaussian.Gaussian(target.mean, source.cov)
        linear = gaussian.linearized_rates(centered, target)
        assert linear.mean[0] == pytest.approx(1.0 / 3.0)
        assert linear.covariance[0] > linear.mean[0]
        flow = gaussian.constrained_flow(
            centered, target, np.linspace(0.0, 14.0 / linear.covariance[0], 300)
        )
        assert gaussian.fitted_rate(flow) == pytest.approx(2 * linear.covariance[0], rel=0.01)
        assert np.all(flow.gap <= gaussian.bounds(flow).energy_gap + ROUNDOFF)
    # d = 1: everything is explicit, kappa = 2 / Gamma = 2 lam.
    one = gaussian.linearized_rates(
        gaussian.Gaussian([0.0], [[0.5]]), gaussian.Gaussian([0.0], [[2.0]])
    )
    assert one.covariance[0] == pytest.approx(1.0)


def test_near_degenerate_top_of_gamma_biases_a_finite_window():
    """Two slow mean modes 2 lam < 2 lam_2 ~ 2.16 lam: a finite window fits in between.

    The asymptotic rate is still 2 lam: later windows move toward it monotonically.
    """
    rng = np.random.default_rng(93)
    basis, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    target = gaussian.Gaussian(np.zeros(3), (basis * np.array([0.5, 2.2, 2.4])) @ basis.T)
    source = gaussian.Gaussian(basis @ np.array([0.0, 3.0, 1.0]), random_spd(rng, 3))
    lam = gaussian.lambda_convexity(target)
    second = 1.0 / 2.2
    flow = gaussian.constrained_flow(source, target, np.linspace(0.0, 22.0 / lam, 600))
    fitted = [
        gaussian.fitted_rate(flow, window)
        for window in ((1e-2, 1e-6), (1e-4, 1e-11), (1e-8, 1e-16))
    ]
    assert all(2 * lam < rate < 2 * second for rate in fitted)
    assert fitted[0] > fitted[1] > fitted[2]
    assert np.all(flow.gap <= gaussian.bounds(flow).energy_gap + ROUNDOFF)


# ---------------------------------------------------------------------------- rates


def test_rates_fit_and_bounds():
    times = np.linspace(0.0, 20.0, 201)
    gaps = 3.0 * np.exp(-0.7 * times) + 1e-3 * np.exp(-5.0 * times)
    assert rates.fitted_rate(times, gaps) == pytest.approx(0.7, rel=1e-6)
    fit = rates.fit_log_linear(times, gaps, window=(1e-2, 1e-5))
    assert fit.rate == pytest.approx(0.7, rel=1e-6) and fit.num_points >= 3
    with pytest.raises(ValueError, match="window"):
        rates.fitted_rate(times, gaps, window=(1e-20, 1e-30))
    with pytest.raises(ValueError, match="window"):
        rates.fitted_rate(times, gaps, window=(1e-6, 1e-3))
    with pytest.raises(ValueError, match="gaps"):
        rates.fitted_rate(times, gaps[:-1])
    np.testing.assert_allclose(
        rates.energy_gap_bound_strongly_convex(times, 2.0, 0.5), 2.0 * np.exp(-times)
    )
    np.testing.assert_allclose(
        rates.map_error_bound_strongly_convex(times, 2.0, 0.5), 16.0 * np.exp(-times)
    )
    convex = rates.energy_gap_bound_convex(times, 4.0)
    assert convex[0] == np.inf
    np.testing.assert_allclose(convex[1:], 2.0 / times[1:])
    for lam in (0.0, -1.0, np.nan):
        with pytest.raises(ValueError, match="lam"):
            rates.energy_gap_bound_strongly_convex(times, 1.0, lam)
    with pytest.raises(ValueError, match="times"):
        rates.map_error_bound_strongly_convex([-1.0], 1.0, 1.0)


# ----------------------------------------------------------------------- validation


def test_validation_checks_quick(tmp_path):
    from validation import gaussian_checks

    checks = gaussian_checks.run("quick", tmp_path)
    assert len(checks) == 10
    assert all(check.verdict == "pass" for check in checks), [
        (check.statement, check.setting, check.measured) for check in checks
    ]
    figures = {name for check in checks for name in check.details["figures"]}
    assert figures and all((tmp_path / name).is_file() for name in figures)
    with pytest.raises(ValueError, match="size"):
        gaussian_checks.run("huge", tmp_path)


# --------------------------------------------------------------------------- implicit scheme


def _random_pair(dim, seed):
    rng = np.random.default_rng(seed)

    def spd():
        a = rng.normal(size=(dim, dim))
        return a @ a.T / dim + 0.3 * np.eye(dim)

    return (
        gaussian.Gaussian(rng.normal(size=dim), spd()),
        gaussian.Gaussian(rng.normal(size=dim), spd()),
    )


def test_implicit_scheme_tends_to_the_flow_at_first_order():
    source, target = _random_pair(4, 0)
    gaps = []
    for tau in (0.2, 0.1, 0.05):
        scheme = gaussian.implicit_scheme(source, target, tau, round(1.0 / tau))
        flow = gaussian.constrained_flow(source, target, scheme.times)
        assert scheme.solver_info["residual"] < 1e-10
        assert np.all(np.diff(scheme.kl) < 0)  # Thm 2.13 (i) for the scheme
        gaps.append(
            np.abs(scheme.A[-1] - flow.A[-1]).max() + np.abs(scheme.b[-1] - flow.b[-1]).max()
        )
    orders = np.log2(np.array(gaps[:-1]) / np.array(gaps[1:]))
    assert np.all((orders > 0.85) & (orders < 1.15)), orders


def test_implicit_step_minimizes_the_proximal_objective():
    """T_1 beats every nearby affine map with a symmetric positive definite matrix."""
    source, target = _random_pair(3, 1)
    tau = 0.5
    step = gaussian.implicit_scheme(source, target, tau, 1)
    identity = (np.eye(3), np.zeros(3))

    def objective(matrix, offset):
        pushed = gaussian.Gaussian(matrix @ source.mean + offset, matrix @ source.cov @ matrix)
        distance = gaussian.closed_forms._map_error(source, matrix, offset, *identity)
        return gaussian.kl(pushed, target) + distance / (2 * tau)

    best = objective(step.A[1], step.b[1])
    rng = np.random.default_rng(2)
    for scale in (1e-2, 1e-3):
        for _ in range(20):
            e = rng.normal(size=(3, 3))
            assert (
                objective(step.A[1] + scale * (e + e.T), step.b[1] + scale * rng.normal(size=3))
                > best
            )


def test_implicit_scheme_rejects_bad_steps():
    source, target = _random_pair(2, 3)
    with pytest.raises(ValueError, match="tau"):
        gaussian.implicit_scheme(source, target, 0.0, 3)
    with pytest.raises(ValueError, match="steps"):
        gaussian.implicit_scheme(source, target, 0.5, 0)
    with pytest.raises(TypeError, match="tau must be a real number, got True"):
        gaussian.implicit_scheme(source, target, True, 3)
    with pytest.raises(TypeError, match=r"steps must be a positive integer, got 2\.0"):
        gaussian.implicit_scheme(source, target, 0.5, 2.0)
    with pytest.raises(ValueError, match="xtol must be a finite number > 0"):
        gaussian.implicit_scheme(source, target, 0.5, 2, xtol=-1.0)


def test_implicit_scheme_takes_the_root_in_the_cone_at_large_steps():
    """1D: each step solves (1 + τ/g) a² − a_k a − τ/s0 = 0; the proximal point is the
    positive root (the explicit Euler guess used to land on the negative one)."""
    s0, g, tau = 1.0, 0.01, 1.0
    scheme = gaussian.implicit_scheme(
        gaussian.Gaussian([0.0], [[s0]]), gaussian.Gaussian([0.0], [[g]]), tau, 4
    )
    a = 1.0
    for k in range(1, 5):
        a = (a + np.sqrt(a * a + 4 * (1 + tau / g) * tau / s0)) / (2 * (1 + tau / g))
        np.testing.assert_allclose(scheme.A[k, 0, 0], a, rtol=1e-12)
    stretched = gaussian.implicit_scheme(
        gaussian.Gaussian([0.0, 0.0], 4 * np.eye(2)),
        gaussian.Gaussian([0.0, 0.0], np.diag([0.01, 1.0])),
        2.0,
        3,
    )
    assert np.linalg.eigvalsh(stretched.A).min() > 0
