"""Gaussian laws N(m, Σ) and finite Gaussian mixtures Σ_k w_k N(m_k, Σ_k).

One class each, shared by the grid solver (``density``, ``mass_outside``, ``cdf`` in
d = 1) and the neural solver (``sample``, ``log_density``, ``score``). Randomness comes only
from a ``numpy.random.Generator`` passed in; the same seed gives the same samples bit for
bit.

Mixture sampling draws, in this order, the component labels (the draws of
``rng.choice(K, size=n, p=weights)``) and an (n, d) block of standard normals z; sample i
is m_k + L_k z_i with L_k the Cholesky factor of Σ_k and k its label, summed in a fixed
order without fused multiply-adds (one numba kernel), so the samples do not depend on a
BLAS kernel's rounding.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from numba import njit
from scipy import special, stats

from gridflow.checks import (
    as_box,
    as_finite_array,
    as_float_array,
    as_points,
    positive_int,
    readonly_copy,
    require_generator,
    sample_count,
)

__all__ = ["Gaussian", "GaussianMixture"]

_SYMMETRY_RTOL = 1e-10
_WEIGHTS_ATOL = 1e-12


def _covariance(cov, dim: int, name: str = "cov") -> np.ndarray:
    """A (dim, dim) covariance: finite, symmetric to relative 1e-10 (then symmetrized
    exactly) and positive definite (smallest eigenvalue above d · eps · largest)."""
    cov = as_float_array(cov, name)
    if cov.shape != (dim, dim):
        raise ValueError(
            f"{name} must have shape ({dim}, {dim}) to match the mean, got {cov.shape}"
        )
    if not np.all(np.isfinite(cov)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    scale = np.max(np.abs(cov))
    asymmetry = np.max(np.abs(cov - cov.T))
    if asymmetry > _SYMMETRY_RTOL * scale:
        raise ValueError(
            f"{name} must be symmetric: max |cov - cov.T| = {asymmetry:.3g} "
            f"(relative {asymmetry / scale:.3g}); symmetrize it, e.g. (cov + cov.T) / 2"
        )
    cov = 0.5 * cov + 0.5 * cov.T  # halves first: no overflow near the float range
    eigenvalues = np.linalg.eigvalsh(cov)
    if eigenvalues[0] <= dim * np.finfo(np.float64).eps * max(eigenvalues[-1], 0.0):
        raise ValueError(
            f"{name} must be positive definite: its smallest eigenvalue is "
            f"{eigenvalues[0]:.3g} (largest {eigenvalues[-1]:.3g})"
        )
    return cov


@dataclass(frozen=True, eq=False)
class Gaussian:
    """The normal law N(mean, cov) on R^d: a source of both solvers, and a target.

    Parameters
    ----------
    mean : array_like, shape (d,)
        Finite mean.
    cov : array_like, shape (d, d)
        Finite covariance, symmetric to relative 1e-10 (then symmetrized exactly) and
        positive definite (smallest eigenvalue above ``d * eps * largest``).

    Raises
    ------
    ValueError
        Naming ``mean`` or ``cov`` and what is wrong with it.

    Notes
    -----
    Stored arrays are read-only copies. Wherever a target is expected, a Gaussian stands
    for ``LogConcaveTarget.gaussian(mean, cov)``.

    Examples
    --------
    >>> law = Gaussian([0.0, 1.0], [[1.0, 0.2], [0.2, 0.5]])
    >>> law.sample(np.random.default_rng(0), 3).shape
    (3, 2)
    """

    mean: np.ndarray
    cov: np.ndarray
    _cholesky: np.ndarray = field(init=False, repr=False)
    _precision: np.ndarray = field(init=False, repr=False)
    _log_normalizer: float = field(init=False, repr=False)

    def __post_init__(self):
        mean = as_float_array(self.mean, "mean")
        if mean.ndim != 1 or mean.size == 0:
            raise ValueError(
                f"mean must be a 1D array of shape (d,) with d >= 1, got shape {mean.shape}"
            )
        if not np.all(np.isfinite(mean)):
            raise ValueError("mean must be finite (no NaN or inf)")
        cov = _covariance(self.cov, mean.size)
        try:
            cholesky = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError as error:
            raise ValueError(f"cov must be positive definite (Cholesky failed: {error})") from None
        precision = np.linalg.inv(cov)
        log_det = 2.0 * np.sum(np.log(np.diag(cholesky)))
        object.__setattr__(self, "mean", readonly_copy(mean))
        object.__setattr__(self, "cov", readonly_copy(cov))
        object.__setattr__(self, "_cholesky", readonly_copy(cholesky))
        object.__setattr__(self, "_precision", readonly_copy(0.5 * (precision + precision.T)))
        object.__setattr__(
            self, "_log_normalizer", -0.5 * (mean.size * np.log(2.0 * np.pi) + log_det)
        )

    @classmethod
    def standard(cls, dim: int) -> Gaussian:
        """N(0, I_d)."""
        dim = positive_int(dim, "dim")
        return cls(np.zeros(dim), np.eye(dim))

    @property
    def dim(self) -> int:
        """Dimension d."""
        return self.mean.size

    @property
    def cholesky_factor(self) -> np.ndarray:
        """The lower-triangular L with L Lᵀ = cov (read-only)."""
        return self._cholesky

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n samples (n, d): mean + L z with z an (n, d) block of standard normals from rng."""
        rng = require_generator(rng)
        n = sample_count(n, self.dim)
        return self.mean + rng.standard_normal((n, self.dim)) @ self._cholesky.T

    def log_density(self, x) -> np.ndarray:
        """log N(x; mean, cov) at points x (n, d) -> (n,)."""
        centered = as_points(x, "x", self.dim) - self.mean
        quadratic = np.einsum("ij,jk,ik->i", centered, self._precision, centered)
        return self._log_normalizer - 0.5 * quadratic

    def density(self, x) -> np.ndarray:
        """N(x; mean, cov) at points x (n, d) -> (n,) (scipy's multivariate normal)."""
        x = as_points(x, "x", self.dim)
        with np.errstate(over="ignore"):  # far points: their squared distance is inf, pdf 0
            return stats.multivariate_normal(self.mean, self.cov).pdf(x).reshape(-1)

    def score(self, x) -> np.ndarray:
        """∇ log density = −cov⁻¹ (x − mean) at points x (n, d) -> (n, d)."""
        return -(as_points(x, "x", self.dim) - self.mean) @ self._precision

    @functools.cached_property
    def _as_mixture(self) -> GaussianMixture:
        return GaussianMixture(self.mean[None, :], self.cov[None], np.ones(1))

    def cdf(self, x) -> np.ndarray:
        """Cumulative distribution function (d = 1)."""
        return self._as_mixture.cdf(x)

    def sf(self, x) -> np.ndarray:
        """Survival function 1 − cdf, accurate in the right tail (d = 1)."""
        return self._as_mixture.sf(x)

    def mass_outside(self, lower, upper) -> float:
        """Mass outside the box [lower, upper] (see ``GaussianMixture.mass_outside``)."""
        return self._as_mixture.mass_outside(lower, upper)

    def mass_check_description(self, lower, upper) -> str:
        """What ``mass_outside`` computes, for error messages."""
        return self._as_mixture.mass_check_description(lower, upper)


@njit(cache=True)
def _affine_rows(labels, z, means, factors):
    """Row i: m_k + L_k z_i with k = labels[i], L_k lower triangular; the sum over j runs
    j = 0, ..., r in this order, without fused multiply-adds, so the samples are the same on
    every machine (a BLAS product's rounding depends on its kernel, hence on the shapes)."""
    n, dim = z.shape
    out = np.empty((n, dim))
    for i in range(n):
        k = labels[i]
        for r in range(dim):
            total = 0.0
            for j in range(r + 1):
                total += factors[k, r, j] * z[i, j]
            out[i, r] = means[k, r] + total
    return out


def _mixture_weights(weights, count: int) -> np.ndarray:
    weights = as_finite_array(weights, "weights")
    if weights.shape != (count,):
        raise ValueError(f"weights must have shape ({count},), one per mean, got {weights.shape}")
    with np.errstate(over="ignore"):  # weights near 1e308 sum to inf: refused below
        total = weights.sum()
    if np.any(weights < 0.0) or not total > 0.0:
        raise ValueError(f"weights must be >= 0 and not all 0, got {weights.tolist()}")
    if not np.isclose(total, 1.0, rtol=0.0, atol=_WEIGHTS_ATOL):
        raise ValueError(f"weights must sum to 1, got {total:.6g}; pass weights / weights.sum()")
    return weights / total


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """The mixture Σ_k weights[k] N(means[k], covs[k]) on R^d.

    Parameters
    ----------
    means : array_like, shape (K, d)
        The components' means (a (K,) array in d = 1).
    covs : array_like, shape (K, d, d)
        The components' covariances, each a valid ``Gaussian`` covariance (a (K,) array of
        variances in d = 1).
    weights : array_like, shape (K,)
        Nonnegative, summing to 1 within 1e-12.

    Raises
    ------
    ValueError
        For a shape that does not match, a covariance that is not symmetric positive
        definite, or weights that do not sum to 1 (the message gives the fix).

    Notes
    -----
    The argument order is that of POT and OTT. ``components`` holds the K ``Gaussian``
    laws; stored arrays are read-only copies.

    Examples
    --------
    >>> mixture = GaussianMixture([[-1.0], [1.0]], [0.25, 0.25], [0.5, 0.5])
    >>> float(mixture.cdf(0.0)[()])
    0.5
    """

    means: np.ndarray
    covs: np.ndarray
    weights: np.ndarray
    components: tuple[Gaussian, ...] = field(init=False, repr=False)
    _cumulative_weights: np.ndarray = field(init=False, repr=False)
    _cholesky_factors: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        means = as_finite_array(self.means, "means")
        if means.ndim == 1:
            means = means[:, None]
        if means.ndim != 2 or means.shape[0] < 1 or means.shape[1] < 1:
            raise ValueError(f"means must have shape (K, d), got {means.shape}")
        count, dim = means.shape
        covs = as_finite_array(self.covs, "covs")
        if dim == 1 and covs.shape in ((count,), (count, 1)):
            covs = covs.reshape(count, 1, 1)
        if covs.shape != (count, dim, dim):
            raise ValueError(
                f"covs must have shape ({count}, {dim}, {dim}) to match means, got {covs.shape}"
            )
        weights = _mixture_weights(self.weights, count)
        components = tuple(
            Gaussian(mean, _covariance(cov, dim, f"covs[{k}]"))
            for k, (mean, cov) in enumerate(zip(means, covs, strict=True))
        )
        cumulative = np.cumsum(weights)
        object.__setattr__(self, "means", readonly_copy(means))
        object.__setattr__(self, "covs", readonly_copy(np.stack([c.cov for c in components])))
        object.__setattr__(self, "weights", readonly_copy(weights))
        object.__setattr__(self, "components", components)
        object.__setattr__(self, "_cumulative_weights", readonly_copy(cumulative / cumulative[-1]))
        factors = np.stack([c.cholesky_factor for c in components])
        object.__setattr__(self, "_cholesky_factors", readonly_copy(factors))

    @property
    def dim(self) -> int:
        """Dimension d."""
        return self.means.shape[1]

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n samples (n, d) (draw order in the module docstring)."""
        rng = require_generator(rng)
        n = sample_count(n, self.dim)
        # the draws of rng.choice(K, size=n, p=weights), without its per-call checks (5x)
        labels = self._cumulative_weights.searchsorted(rng.random(n), side="right")
        z = rng.standard_normal((n, self.dim))
        return _affine_rows(labels, z, self.means, self._cholesky_factors)

    def _component_log_terms(self, x) -> np.ndarray:
        with np.errstate(divide="ignore"):
            log_weights = np.log(self.weights)
        pairs = zip(log_weights, self.components, strict=True)
        return np.stack([log_weight + c.log_density(x) for log_weight, c in pairs], axis=1)

    def log_density(self, x) -> np.ndarray:
        """log Σ_k w_k N(x; m_k, Σ_k) at points x (n, d) -> (n,)."""
        x = as_points(x, "x", self.dim)
        return special.logsumexp(self._component_log_terms(x), axis=1)

    def density(self, x) -> np.ndarray:
        """Σ_k w_k N(x; m_k, Σ_k) at points x (n, d) -> (n,)."""
        x = as_points(x, "x", self.dim)
        pairs = zip(self.weights, self.components, strict=True)
        return sum(weight * component.density(x) for weight, component in pairs)

    def score(self, x) -> np.ndarray:
        """∇ log density = Σ_k r_k(x) (−Σ_k⁻¹(x − m_k)), r_k the responsibilities."""
        x = as_points(x, "x", self.dim)
        terms = self._component_log_terms(x)
        responsibilities = np.exp(terms - special.logsumexp(terms, axis=1, keepdims=True))
        scores = np.stack([c.score(x) for c in self.components], axis=1)  # (n, K, d)
        return np.einsum("nk,nkd->nd", responsibilities, scores)

    def cdf(self, x) -> np.ndarray:
        """Cumulative distribution function (d = 1), at any array of x."""
        return special.ndtr(self._standardized(x, "cdf")) @ self.weights

    def sf(self, x) -> np.ndarray:
        """Survival function 1 − cdf, accurate in the right tail (d = 1)."""
        return special.ndtr(-self._standardized(x, "sf")) @ self.weights

    def _standardized(self, x, what: str) -> np.ndarray:
        if self.dim != 1:
            raise ValueError(f"{what} is defined for d = 1 only, this law has d = {self.dim}")
        sigmas = np.sqrt(self.covs[:, 0, 0])
        return (as_float_array(x, "x")[..., None] - self.means[:, 0]) / sigmas

    def mass_outside(self, lower, upper) -> float:
        """Mass outside the box [lower, upper]: exact in d = 1, a union bound over the axes
        in d ≥ 2. z-scores that overflow to ±inf (tiny variances) give the limits 0 and 1."""
        lower, upper = as_box(lower, upper, self.dim)
        total = 0.0
        for k in range(self.dim):
            sigmas = np.sqrt(self.covs[:, k, k])
            with np.errstate(over="ignore"):
                below = special.ndtr((lower[k] - self.means[:, k]) / sigmas)
                above = special.ndtr((self.means[:, k] - upper[k]) / sigmas)
            total += float(self.weights @ (below + above))
        return total

    def mass_check_description(self, lower, upper) -> str:
        """What ``mass_outside`` computes, for error messages."""
        return "exact" if self.dim == 1 else "a union bound over the axes (exact per axis)"
