"""The exact 1D map in the far tails: finite where T* is finite, or refused by name."""

import numpy as np
import pytest

from gridflow import GaussianMixture, LogConcaveTarget, quantile_map

SOURCE = GaussianMixture(means=[[-1.0], [2.0]], covs=[[[1.0]], [[0.25]]], weights=[0.5, 0.5])


def log_normal_cdf_series(z):
    """log Φ(z) for z → −∞: −z²/2 − log(−z) − ½ log 2π + log(1 − z⁻² + 3z⁻⁴ − 15z⁻⁶ + 105z⁻⁸)
    (Abramowitz and Stegun 26.2.12; relative error below 1e-13 for z ≤ −30)."""
    z = np.asarray(z, dtype=float)
    u = 1.0 / z**2
    series = 1.0 - u + 3 * u**2 - 15 * u**3 + 105 * u**4
    return -0.5 * z**2 - np.log(-z) - 0.5 * np.log(2 * np.pi) + np.log(series)


def log_tail_series(x, side):
    """log F0(x) (side -1) or log(1 − F0(x)) (side +1) of SOURCE, by the series."""
    means, sds = SOURCE.means[:, 0], np.sqrt(SOURCE.covs[:, 0, 0])
    z = -side * (x - means) / sds
    terms = [np.log(w) + log_normal_cdf_series(zk) for w, zk in zip(SOURCE.weights, z, strict=True)]
    return np.logaddexp(*terms)


@pytest.mark.parametrize("x", [-40.0, 40.0])
def test_quantile_map_is_finite_and_exact_at_plus_minus_40(x):
    mapped = quantile_map(SOURCE, LogConcaveTarget.standard_gaussian(1), np.array([[x]]))
    assert mapped.shape == (1, 1) and np.isfinite(mapped).all()
    side = np.sign(x)
    assert np.sign(mapped[0, 0]) == side
    # T*(x) = Φ⁻¹(F0(x)): the series of log Φ at −|T*| equals the series of log F0's tail
    expected = log_tail_series(x, side)
    assert log_normal_cdf_series(-abs(mapped[0, 0])) == pytest.approx(expected, rel=1e-12)


def test_quantile_map_is_monotone_through_the_underflow_of_the_cdf():
    x = np.linspace(-60.0, 60.0, 2001)[:, None]
    mapped = quantile_map(SOURCE, LogConcaveTarget.standard_gaussian(1), x)[:, 0]
    assert np.isfinite(mapped).all()
    assert np.all(np.diff(mapped) > 0)


def test_quantile_map_refuses_points_beyond_a_tabulated_target_by_name():
    with pytest.raises(ValueError, match=r"quantile_map: x = \[-40.0\].*tabulated"):
        quantile_map(SOURCE, LogConcaveTarget.quartic(), np.array([[-40.0], [0.0]]))


def test_quantile_map_needs_a_gaussian_or_mixture_source_in_one_dimension():
    """A callable density is the wrong kind of source (TypeError, probe P101); a mixture in
    two dimensions the wrong value (ValueError)."""
    target = LogConcaveTarget.gaussian([0.0], [[1.0]])
    with pytest.raises(TypeError, match=r"Gaussian or GaussianMixture source .*got function"):
        quantile_map(lambda x: np.exp(-(x**2)), target, np.zeros((3, 1)))
    plane = GaussianMixture([[0.0, 0.0]], [np.eye(2)], [1.0])
    with pytest.raises(ValueError, match="got one of dimension 2"):
        quantile_map(plane, target, np.zeros((3, 1)))
