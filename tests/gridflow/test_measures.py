"""Gaussian and Gaussian-mixture samplers, log-densities and scores (paper §3.4.2)."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from gridflow import Gaussian, GaussianMixture
from gridflow.examples import paper_mixture


def test_paper_mixture_parameters():
    mixture = paper_mixture()
    np.testing.assert_array_equal(
        mixture.means, [[-2.0, -2.0], [-1.0, 2.0], [2.0, -3.0], [2.0, 2.0]]
    )
    np.testing.assert_array_equal(mixture.weights, [0.3, 0.2, 0.3, 0.2])
    np.testing.assert_array_equal(mixture.covs[1], [[0.1, 0.01], [0.01, 0.5]])
    assert mixture.dim == 2


def test_gaussian_sample_moments_and_density():
    gaussian = Gaussian([1.0, -2.0], [[2.0, 0.5], [0.5, 1.0]])
    x = gaussian.sample(np.random.default_rng(0), 200_000)
    np.testing.assert_allclose(x.mean(axis=0), gaussian.mean, atol=0.01)
    np.testing.assert_allclose(np.cov(x.T), gaussian.cov, atol=0.02)
    points = x[:10]
    expected = multivariate_normal(gaussian.mean, gaussian.cov).logpdf(points)
    np.testing.assert_allclose(gaussian.log_density(points), expected, rtol=1e-13)


def _finite_difference_score(measure, x, step=1e-6):
    out = np.empty_like(x)
    for k in range(x.shape[1]):
        shift = np.zeros(x.shape[1])
        shift[k] = step
        out[:, k] = (measure.log_density(x + shift) - measure.log_density(x - shift)) / (2 * step)
    return out


@pytest.mark.parametrize("measure", [Gaussian.standard(3), paper_mixture()])
def test_score_is_gradient_of_log_density(measure):
    x = np.random.default_rng(1).standard_normal((20, measure.dim)) * 2
    np.testing.assert_allclose(
        measure.score(x), _finite_difference_score(measure, x), rtol=1e-6, atol=1e-6
    )


def test_mixture_density_and_sampling():
    mixture = paper_mixture()
    x = mixture.sample(np.random.default_rng(2), 100_000)
    expected_mean = mixture.weights @ mixture.means
    np.testing.assert_allclose(x.mean(axis=0), expected_mean, atol=0.02)
    points = x[:5]
    density = sum(
        w * multivariate_normal(m, c).pdf(points)
        for w, m, c in zip(mixture.weights, mixture.means, mixture.covs, strict=True)
    )
    np.testing.assert_allclose(np.exp(mixture.log_density(points)), density, rtol=1e-12)


def test_same_seed_same_samples():
    mixture = paper_mixture()
    a = mixture.sample(np.random.default_rng(7), 100)
    b = mixture.sample(np.random.default_rng(7), 100)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, mixture.sample(np.random.default_rng(8), 100))


def test_inputs_are_copied():
    mean = np.zeros(2)
    gaussian = Gaussian(mean, np.eye(2))
    mean[0] = 5.0
    assert gaussian.mean[0] == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match="positive definite"):
        Gaussian(np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="symmetric"):
        Gaussian(np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"cov must have shape \(2, 2\)"):
        Gaussian(np.zeros(2), np.eye(3))
    with pytest.raises(ValueError, match="weights must sum to 1"):
        GaussianMixture(np.zeros((2, 2)), np.stack([np.eye(2)] * 2), [0.5, 0.6])
    with pytest.raises(TypeError, match=r"numpy\.random\.Generator"):
        Gaussian.standard(2).sample(42, 10)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        Gaussian.standard(2).sample(np.random.default_rng(0), 0)
    with pytest.raises(ValueError, match="x must have 2 columns"):
        paper_mixture().score(np.zeros((3, 3)))
    with pytest.raises(TypeError, match="mean must be an array of real numbers, got str"):
        Gaussian("0", "1")
    with pytest.raises(TypeError, match="mean must be an array of real numbers, got None"):
        Gaussian(None, None)
    with pytest.raises(TypeError, match="cov must be an array of real numbers, got a list of str"):
        Gaussian([0.0], [["1"]])


def test_mixture_labels_are_the_draws_of_generator_choice():
    """The component labels are rng.choice(K, n, p=weights)'s, so the streams of earlier
    versions are kept; each sample is m_k + L_k z, summed in the order j = 0, ..., d − 1
    without fused multiply-adds (numpy's separate multiply and add ufuncs here)."""
    mixture = paper_mixture()
    samples = mixture.sample(np.random.default_rng(7), 5000)
    rng = np.random.default_rng(7)
    labels = rng.choice(4, size=5000, p=mixture.weights)
    z = rng.standard_normal((5000, 2))
    factors = np.stack([component._cholesky for component in mixture.components])[labels]
    expected = np.empty((5000, 2))
    for r in range(2):
        total = np.zeros(5000)
        for j in range(r + 1):
            total = total + factors[:, r, j] * z[:, j]
        expected[:, r] = mixture.means[labels, r] + total
    np.testing.assert_array_equal(samples, expected)
    # the BLAS product of earlier versions differs at most by rounding
    blas = np.empty((5000, 2))
    for index, component in enumerate(mixture.components):
        mask = labels == index
        blas[mask] = component.mean + z[mask] @ component._cholesky.T
    np.testing.assert_allclose(samples, blas, rtol=0, atol=4 * np.finfo(float).eps * 8)


def test_a_gaussian_target_has_the_laws_density_score_and_samples():
    """LogConcaveTarget.gaussian(m, Σ) and Gaussian(m, Σ) are one law, seen as a target or
    as a source: the same log-density, score and samples."""
    from gridflow import LogConcaveTarget

    mean, cov = np.array([0.5, -1.0]), np.array([[1.5, 0.3], [0.3, 0.7]])
    law, target = Gaussian(mean, cov), LogConcaveTarget.gaussian(mean, cov)
    y = law.sample(np.random.default_rng(0), 50)
    np.testing.assert_allclose(target.log_density(y), law.log_density(y), rtol=1e-13)
    np.testing.assert_allclose(target.score(y), law.score(y), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(target.density(y), law.density(y), rtol=1e-12)
    np.testing.assert_array_equal(
        target.sample(np.random.default_rng(1), 5), law.sample(np.random.default_rng(1), 5)
    )
    with pytest.raises(ValueError, match="Gaussian targets only"):
        LogConcaveTarget.quartic().sample(np.random.default_rng(0), 3)
