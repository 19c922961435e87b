"""The discrete KL F_h and its weighted gradient against independent computations (d = 1)."""

import numpy as np
import pytest
from scipy import integrate

from gridflow import LogConcaveTarget, kl_energy, kl_gradient
from gridflow.examples import mixture_1d, problem_1d
from gridflow.functionals import OutsideConeError, kl_hessian, weighted_curvature_bound


def smooth_map(x):
    """A strictly increasing, non-affine map: T' = 1 + 0.3 cos x > 0."""
    return 0.2 + x + 0.3 * np.sin(x)


def smooth_map_derivatives(x):
    return 1 + 0.3 * np.cos(x), -0.3 * np.sin(x)


def test_energy_at_identity_is_the_continuous_kl():
    problem = problem_1d(400)
    source = problem.source

    def integrand(x):
        rho = source.density(np.array([[x]]))[0]
        return rho * (np.log(rho) + 0.5 * x**2 + 0.5 * np.log(2 * np.pi)) if rho > 0 else 0.0

    exact, _ = integrate.quad(integrand, -12, 12, limit=200, epsabs=1e-13)
    assert kl_energy(problem, problem.identity()) == pytest.approx(exact, abs=1e-8)


@pytest.mark.parametrize(
    "target", [LogConcaveTarget.gaussian([0.3], [[2.0]]), LogConcaveTarget.quartic()]
)
def test_gradient_matches_finite_differences(target):
    problem = problem_1d(120, target=target)
    rng = np.random.default_rng(0)
    T = smooth_map(problem.points)
    for _ in range(3):
        direction = rng.standard_normal(T.shape)
        step = 1e-6
        finite_difference = (
            kl_energy(problem, T + step * direction) - kl_energy(problem, T - step * direction)
        ) / (2 * step)
        analytic = problem.inner(kl_gradient(problem, T), direction)
        assert analytic == pytest.approx(finite_difference, rel=1e-6, abs=1e-9)


def test_hessian_matches_finite_differences_of_the_gradient():
    problem = problem_1d(60, target=LogConcaveTarget.quartic())
    T = smooth_map(problem.points)
    direction = np.random.default_rng(1).standard_normal(T.shape)
    step = 1e-6
    euclidean = [
        problem.weights * kl_gradient(problem, T + s * step * direction)[:, 0] for s in (1, -1)
    ]
    finite_difference = (euclidean[0] - euclidean[1]) / (2 * step)
    analytic = kl_hessian(problem, T) @ direction[:, 0]
    np.testing.assert_allclose(analytic, finite_difference, rtol=1e-5, atol=1e-9)


def continuous_gradient(x):
    """(ϱ0'/ϱ0 - T''/T')/T' + V'(T) for the mixture source and γ = N(0, 1)."""
    source = mixture_1d()
    sigmas2 = source.covs[:, 0, 0]
    components = np.exp(-((x - source.means[:, 0]) ** 2) / (2 * sigmas2)) / np.sqrt(sigmas2)
    weighted = components * source.weights
    log_density_derivative = (weighted * (-(x - source.means[:, 0]) / sigmas2)).sum(
        axis=1
    ) / weighted.sum(axis=1)
    first, second = smooth_map_derivatives(x[:, 0])
    return ((log_density_derivative - second / first) / first + smooth_map(x[:, 0]))[:, None]


def interior_error(nodes):
    problem = problem_1d(nodes)
    difference = kl_gradient(problem, smooth_map(problem.points)) - continuous_gradient(
        problem.points
    )
    inside = slice(2, -2)  # the two end cells carry an O(1/h) boundary layer of negligible mass
    return np.sqrt(np.sum(problem.weights[inside] * difference[inside, 0] ** 2))


def test_gradient_converges_to_the_continuous_lifted_gradient_at_second_order():
    coarse, fine = interior_error(200), interior_error(400)
    assert fine < 2e-3
    assert np.log2(coarse / fine) > 1.9


def test_outside_the_cone_energy_is_infinite_and_gradient_refuses():
    problem = problem_1d(50)
    T = problem.identity()
    T[10] = T[11]
    assert kl_energy(problem, T) == np.inf
    with pytest.raises(OutsideConeError):
        kl_gradient(problem, T)


def test_curvature_bound_is_the_largest_weighted_eigenvalue():
    problem = problem_1d(40)
    T = smooth_map(problem.points)
    hessian = kl_hessian(problem, T).toarray()
    scale = 1 / np.sqrt(problem.weights)
    dense = np.linalg.eigvalsh(scale[:, None] * hessian * scale[None, :]).max()
    assert weighted_curvature_bound(problem, T) == pytest.approx(dense, rel=1e-10)


def test_numba_log_det_gradient_equals_the_numpy_formula():
    from gridflow.functionals import log_det_gradient_1d
    from validation.benchmark_gridflow import numpy_log_det_gradient

    problem = problem_1d(300)
    T = smooth_map(problem.points)[:, 0]
    np.testing.assert_allclose(
        log_det_gradient_1d(T, problem.hessian_weights),
        numpy_log_det_gradient(T, problem.hessian_weights),
        rtol=1e-14,
    )
    T[5] = T[4]
    assert np.isnan(log_det_gradient_1d(T, problem.hessian_weights)).all()
