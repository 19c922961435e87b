"""Self-entropic score estimator (paper Remark 3.10)."""

import itertools
import warnings

import numpy as np
import pytest

from gridflow import Gaussian
from neural import reference
from neural.score import (
    ConvergenceWarning,
    ScoreResolutionWarning,
    default_eps,
    self_entropic_potential,
    self_entropic_score,
    smallest_safe_eps,
)

GAUSSIAN = Gaussian(np.array([0.5, -1.0]), np.array([[1.0, 0.3], [0.3, 0.5]]))


def _relative_l2(estimate, truth):
    return float(np.sqrt(np.sum((estimate - truth) ** 2) / np.sum(truth**2)))


def test_default_eps_is_five_percent_of_median_squared_distance():
    x = np.random.default_rng(0).standard_normal((40, 3))
    diff = x[:, None, :] - x[None, :, :]
    squared = np.sum(diff**2, axis=-1)[np.triu_indices(40, k=1)]
    assert default_eps(x) == pytest.approx(0.05 * np.median(squared), rel=1e-14)


def test_bucketed_median_is_numpys_median_exactly():
    from neural.score.pairs import _median

    rng = np.random.default_rng(2)
    for size, trial in itertools.product((1, 2, 3, 4, 5, 10, 101, 4950), range(12)):
        values = rng.standard_normal(size) ** 2 * 10.0 ** rng.integers(-3, 4)
        if trial % 3 == 1:
            values = np.round(values, 1)  # ties, and often many equal values
        if trial % 4 == 2:
            values[: size // 2 + 1] = values[0]  # the median among repeated values
        if trial == 11:
            values[-1] = np.inf  # an overflowed distance: the sorting fallback
        assert _median(values) == np.median(values), (size, trial)
    clustered = np.concatenate([np.full(3000, 1e-9), rng.random(1950) + 1e6])
    assert _median(clustered) == np.median(clustered)  # the median bucket holds 3000 values
    for tiny in ([0.0, 1e-320, 1e-320], [0.0, 5e-324, 1e-310, 2e-310]):  # 1024 / spread = inf
        assert _median(np.array(tiny)) == np.median(tiny)


def test_default_eps_refuses_overflowing_distances():
    # ε would be inf and the score silently zero
    with pytest.raises(ValueError, match="overflow float64"):
        self_entropic_score(np.array([[1e200, 0.0], [0.0, 0.0], [1.0, 1.0]]))
    assert default_eps(np.array([[0.0], [1e-160], [3e-160], [4e-160]])) > 0.0


def test_matches_numpy_reference():
    x = np.random.default_rng(1).standard_normal((150, 2))
    eps = default_eps(x)
    score, info = self_entropic_score(x, eps=eps, tol=1e-12, return_info=True)
    expected, _ = reference.self_entropic_score(x, eps, tol=1e-12)
    np.testing.assert_allclose(score, expected, rtol=1e-10, atol=1e-10)
    assert info.converged and info.residual <= 1e-12


def test_potential_solves_the_symmetric_fixed_point():
    x = np.random.default_rng(2).standard_normal((120, 2))
    solution = self_entropic_potential(x, tol=1e-12)
    f, eps = solution.potential, solution.eps
    cost = 0.5 * np.sum((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)
    plan = np.exp((f[:, None] + f[None, :] - cost) / eps) / x.shape[0] ** 2
    np.testing.assert_allclose(plan.sum(axis=1), 1.0 / x.shape[0], rtol=1e-10)
    np.testing.assert_allclose(plan, plan.T, rtol=1e-12)
    assert solution.iterations < 100  # the averaged update converges fast


def test_anderson_mixing_halves_the_updates_and_keeps_the_fixed_point():
    """The mixed iteration reaches the plain averaged iteration's fixed point (the numpy
    reference, unmixed) in about half the updates (seen: 15 against 26 at n = 100)."""
    x = np.random.default_rng(12).standard_normal((100, 2))
    eps = default_eps(x)
    score, info = self_entropic_score(x, eps=eps, tol=1e-9, return_info=True)
    expected, plain_iterations = reference.self_entropic_score(x, eps, tol=1e-9)
    np.testing.assert_allclose(score, expected, rtol=0, atol=1e-7 * np.abs(expected).max())
    assert info.converged and info.iterations <= 18 < 24 <= plain_iterations
    assert np.all(np.abs(info.potential / eps) <= 0.5 * np.log(100))


def test_anderson_coefficients_are_the_least_squares_fit():
    from neural.score.sinkhorn import _anderson_coefficients

    rng = np.random.default_rng(13)
    for count in (1, 2, 4):
        df = np.zeros((4, 50))
        df[:count] = rng.standard_normal((count, 50)) * 10.0 ** -np.arange(count)[:, None]
        f = rng.standard_normal(50)
        gram = df @ df.T
        gamma = np.empty(4)
        assert _anderson_coefficients(df, gram, f, count, np.empty((4, 4)), gamma)
        expected = np.linalg.lstsq(df[:count].T, f, rcond=None)[0]
        np.testing.assert_allclose(gamma[:count], expected, rtol=1e-9)
    df[1] = df[0]  # two equal differences: the ridge keeps the system definite, and the
    assert _anderson_coefficients(df, df @ df.T, f, 2, np.empty((4, 4)), gamma)  # step is the
    single = np.linalg.lstsq(df[:1].T, f, rcond=None)[0][0]  # one column's fit
    assert gamma[0] + gamma[1] == pytest.approx(single, rel=1e-9)
    df[0] = 0.0  # a vanishing difference: no mixing, a plain update
    assert not _anderson_coefficients(df, df @ df.T, f, 1, np.empty((4, 4)), gamma)


def test_score_error_decreases_with_n():
    """Relative L2 error over the sample vs the exact score −Σ⁻¹(x − m).

    Seen (seed 0): n = 250: 0.549, 500: 0.426, 1000: 0.288, 2000: 0.247.
    """
    errors = []
    for n in (250, 500, 1000, 2000):
        x = GAUSSIAN.sample(np.random.default_rng(0), n)
        errors.append(_relative_l2(self_entropic_score(x), GAUSSIAN.score(x)))
    assert errors[-1] < 0.3
    assert all(later < earlier for earlier, later in itertools.pairwise(errors))


def test_score_at_other_points_extends_the_estimator():
    x = GAUSSIAN.sample(np.random.default_rng(3), 500)
    solution = self_entropic_potential(x)
    np.testing.assert_allclose(solution.score_at(x), solution.score(), rtol=1e-13, atol=1e-13)
    y = np.array([[0.5, -1.0], [1.0, -0.5]])
    estimate = solution.score_at(y)
    assert estimate.shape == (2, 2)
    assert np.all(np.isfinite(estimate))


def test_non_convergence_warns_with_the_residual():
    x = np.random.default_rng(4).standard_normal((60, 2))
    with pytest.warns(ConvergenceWarning, match=r"residual .* > tol .* after 2 iterations"):
        score, info = self_entropic_score(x, max_iter=2, tol=1e-14, return_info=True)
    assert not info.converged and info.iterations == 2 and info.residual > 1e-14
    assert score.shape == (60, 2)


def test_potential_stays_within_half_log_n():
    # the bound that makes the single log-sum-exp shift safe (score.py docstring)
    x = np.random.default_rng(5).standard_normal((80, 2)) * np.array([1.0, 30.0])
    x[:20] = x[0] + 1e-6 * np.random.default_rng(6).standard_normal((20, 2))  # a tight cluster
    solution = self_entropic_potential(x, eps=1e-3, tol=1e-12, max_iter=5000)
    h = solution.potential / solution.eps
    assert solution.converged
    assert np.all(np.abs(h) <= 0.5 * np.log(80) + 1e-12)
    assert np.all(np.isfinite(solution.score()))


@pytest.mark.parametrize("eps", [0.0, -1.0, np.inf, np.nan])
def test_bad_eps(eps):
    with pytest.raises(ValueError, match=r"eps must be a finite number > 0.*eps=None"):
        self_entropic_score(np.random.default_rng(0).standard_normal((10, 2)), eps=eps)


def test_eps_of_the_wrong_type():
    with pytest.raises(TypeError, match="eps must be a real number"):
        self_entropic_score(np.random.default_rng(0).standard_normal((10, 2)), eps="0.1")


def test_bad_samples():
    x = np.random.default_rng(0).standard_normal((10, 2))
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="x contains 1 NaN"):
        self_entropic_score(x)
    with pytest.raises(ValueError, match="at least 2 point"):
        self_entropic_score(np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"shape \(n, d\)"):
        self_entropic_score(np.zeros(5))
    with pytest.raises(ValueError, match=r"x is a ragged list \(rows of different lengths\)"):
        self_entropic_score([[0, 1], [2]])
    with pytest.raises(ValueError, match="pass eps explicitly"):
        self_entropic_score(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="tol"):
        self_entropic_score(np.eye(3), tol=0.0)
    with pytest.raises(TypeError, match="max_iter"):
        self_entropic_score(np.eye(3), max_iter=2.5)


def _nearest_squared(x):
    squared = np.sum((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)
    np.fill_diagonal(squared, np.inf)
    return squared.min(axis=1)


def test_one_pass_over_the_pairs_gives_the_median_and_every_nearest_neighbour():
    from neural.score.pairs import nearest_squared_distances, pair_statistics

    rng = np.random.default_rng(9)
    for n, d in ((2, 1), (3, 2), (100, 2), (57, 5)):
        x = rng.standard_normal((n, d))
        x[-1] = x[0]  # a repeated point: its nearest distance is 0
        median, nearest = pair_statistics(x)
        np.testing.assert_allclose(nearest, _nearest_squared(x), rtol=1e-15, atol=0)
        # the O(n)-memory pass of a given ε and smallest_safe_eps: the same values
        np.testing.assert_array_equal(nearest_squared_distances(x), nearest)
        assert nearest[0] == nearest[-1] == 0.0
        pairs = np.sum((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)[np.triu_indices(n, k=1)]
        assert median == pytest.approx(np.median(pairs), rel=1e-15)


def test_smallest_safe_eps_is_the_roundoff_scale_of_the_farthest_nearest_neighbour():
    x = np.random.default_rng(7).standard_normal((50, 2))
    expected = _nearest_squared(x).max() / (2 * np.log(1 / np.finfo(float).eps))
    assert smallest_safe_eps(x) == pytest.approx(expected, rel=1e-14)


def test_eps_below_the_kernel_resolution_everywhere_raises():
    """eps = 1e-8 used to return an all-zero field silently."""
    x = np.random.default_rng(8).standard_normal((100, 2))
    safe = smallest_safe_eps(x)
    with pytest.raises(ValueError, match=rf"eps=1e-08 .* eps >= {safe:.3g}"):
        self_entropic_score(x, eps=1e-8)


def test_eps_below_the_resolution_at_some_samples_warns_and_their_score_is_zero():
    x = np.random.default_rng(8).standard_normal((100, 2))
    eps = 0.5 * smallest_safe_eps(x)
    blind = int(np.sum(_nearest_squared(x) / (2 * np.log(1 / np.finfo(float).eps)) > eps))
    assert 0 < blind < 100
    with pytest.warns(ScoreResolutionWarning, match=rf"at {blind} of the 100 samples"):
        score = self_entropic_score(x, eps=eps)
    assert int(np.sum(np.all(score == 0.0, axis=1))) == blind


def test_eps_at_the_safe_scale_resolves_every_sample():
    x = np.random.default_rng(8).standard_normal((100, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScoreResolutionWarning)
        score = self_entropic_score(x, eps=smallest_safe_eps(x))
    assert np.all(np.any(score != 0.0, axis=1))


def test_sinkhorn_kernels_agree():
    """Stored or recomputed Gibbs kernel, serial or parallel: the same iteration."""
    from neural.score.sinkhorn import SINKHORN

    x = GAUSSIAN.sample(np.random.default_rng(9), 150)
    eps = default_eps(x)
    runs = {key: kernel(x, eps, 1e-12, 1000) for key, kernel in SINKHORN.items()}
    for stored in (False, True):  # the row sums do not depend on the blocks: bit for bit
        serial, parallel = runs[False, stored], runs[True, stored]
        np.testing.assert_array_equal(serial[0], parallel[0])
        assert serial[1:3] == parallel[1:3]
    stored, computed = runs[False, True], runs[False, False]
    np.testing.assert_allclose(stored[0], computed[0], rtol=0, atol=1e-13)
    assert stored[2] == computed[2]  # iterations
    assert computed[3].size == 0
    kernel = stored[3]
    squared = np.sum((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)
    exponent = squared / (2 * eps)
    # exp(−G) carries the rounding of G: relative error ~ G × a few ulp
    relative = np.abs(kernel / np.exp(-exponent) - 1.0)
    assert np.all(relative <= 1e-15 * np.maximum(exponent, 1.0))
    np.testing.assert_array_equal(kernel, kernel.T)
    np.testing.assert_array_equal(np.diag(kernel), 1.0)


def test_score_from_the_stored_kernel_is_the_estimator(monkeypatch):
    from neural.score import estimator as score_module

    x = GAUSSIAN.sample(np.random.default_rng(10), 120)
    fused, solution = self_entropic_score(x, tol=1e-12, return_info=True)
    np.testing.assert_allclose(fused, solution.score(), rtol=1e-12, atol=1e-12)
    monkeypatch.setattr(score_module, "STORED_MAX_POINTS", 100)  # 120 points: recomputed rows
    recomputed = self_entropic_score(x, tol=1e-12)
    np.testing.assert_allclose(recomputed, fused, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("points", "stored"), [(50, True), (51, False)])
def test_sinkhorn_runs_serially_with_the_stored_kernel(monkeypatch, points, stored):
    """Parallel only where the rows are recomputed, and only with two threads or more."""
    import numba

    from neural.score import estimator as score_module

    calls = []

    def recording(key):
        def kernel(x, eps, tol, max_iter):
            calls.append(key)
            return np.zeros(x.shape[0]), 0.0, 1, np.empty((0, 0))

        return kernel

    monkeypatch.setattr(score_module, "STORED_MAX_POINTS", 50)
    monkeypatch.setattr(score_module, "SINKHORN", {k: recording(k) for k in score_module.SINKHORN})
    x = np.random.default_rng(11).standard_normal((points, 2))
    for threads in (1, 2):
        monkeypatch.setattr(numba, "get_num_threads", lambda threads=threads: threads)
        self_entropic_potential(x)
    assert calls == [(False, stored), (not stored, stored)]


@pytest.mark.parametrize("function", [self_entropic_score, self_entropic_potential])
def test_arguments_are_checked_in_order_before_the_data(function):
    x = np.random.default_rng(14).standard_normal((20, 2))
    bad_x = x.copy()
    bad_x[3, 0] = np.nan
    with pytest.raises(ValueError, match="x contains 1 NaN"):
        function(bad_x, tol=0.0)
    with pytest.raises(ValueError, match="eps"):
        function(x, eps=-1.0, tol=-1.0)
    with pytest.raises(ValueError, match="tol"):
        function(x, tol=-1.0, max_iter=0)
    with pytest.raises(ValueError, match="max_iter"):
        function(x, max_iter=0)
    repeated = np.repeat(x[:1], 20, axis=0)
    with pytest.raises(ValueError, match="tol"):  # an argument before the data's problem
        function(repeated, tol=-1.0)
    with pytest.raises(ValueError, match="cannot choose eps"):
        function(repeated)


def test_the_default_eps_kernel_is_the_step_by_step_estimate():
    """eps=None runs pairs, ε, Sinkhorn and the score in one kernel call: the same numbers,
    bit for bit, as the given-ε path with default_eps(x), and the same report."""
    x = GAUSSIAN.sample(np.random.default_rng(15), 90)
    fused, info = self_entropic_score(x, return_info=True)
    stepwise, expected = self_entropic_score(x, eps=default_eps(x), return_info=True)
    np.testing.assert_array_equal(fused, stepwise)
    np.testing.assert_array_equal(info.potential, expected.potential)
    assert (info.eps, info.residual, info.iterations) == (
        expected.eps,
        expected.residual,
        expected.iterations,
    )
