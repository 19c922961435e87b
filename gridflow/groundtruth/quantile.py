"""The exact OT map in d = 1: the monotone rearrangement T* = G⁻¹ ∘ F0.

F0 and G are the cumulative distribution functions of ϱ0 and γ. For a Gaussian or
Gaussian-mixture source and a Gaussian target it is evaluated in closed form, through the
survival functions in the right tail so that no precision is lost to 1 − F0 ≈ 1, and in log
space where F0(x) or 1 − F0(x) underflows (far tails: log F0 by log_ndtr, G⁻¹ by ndtri_exp),
so that T* stays finite wherever it is. Other targets are handled by tabulating G on a fine
grid; points whose tail probability lies below the table's first node are refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import interpolate, special

from gridflow.checks import as_points
from gridflow.measures import Gaussian, GaussianMixture, LogConcaveTarget, as_target

__all__ = ["quantile_map"]

TABLE_FLOOR = 1e-280
"""The smallest tail probability tabulated for a non-Gaussian target's quantile."""


def quantile_map(source: GaussianMixture, target: LogConcaveTarget, x) -> np.ndarray:
    """T*(x) = G⁻¹(F0(x)): the OT map in d = 1.

    Parameters
    ----------
    source : Gaussian or GaussianMixture
        ϱ0, one-dimensional.
    target : LogConcaveTarget
        γ (a `Gaussian` is accepted, through `as_target`).
    x : array_like
        Points, (n, 1).

    Returns
    -------
    numpy.ndarray
        T*(x), shape (n, 1).

    Raises
    ------
    TypeError
        If `source` is not a `Gaussian` or `GaussianMixture`.
    ValueError
        If `source` or `target` is not one-dimensional; if a point lies so far in a tail that even
        log F0 underflows (|z| beyond about 1e154), or, for a non-Gaussian target, beyond
        the range of its tabulated quantile.
    """
    if not isinstance(source, (Gaussian, GaussianMixture)):
        kind = "None" if source is None else type(source).__name__
        raise TypeError(
            f"quantile_map needs a one-dimensional Gaussian or GaussianMixture source (its "
            f"CDF in closed form), got {kind}"
        )
    if source.dim != 1:
        raise ValueError(
            f"quantile_map needs a one-dimensional Gaussian or GaussianMixture source, got "
            f"one of dimension {source.dim}"
        )
    target = as_target(target)
    if target.dim != 1:
        raise ValueError(
            f"quantile_map needs a one-dimensional target, got {target.name} of dimension "
            f"{target.dim}"
        )
    x = as_points(x, "x", 1)[:, 0]
    lower = source.cdf(x)
    upper = source.sf(x)
    left = lower < 0.5
    if target.is_gaussian:
        mean, sd = target.mean[0], np.sqrt(target.cov[0, 0])
        tail = np.where(left, lower, upper)
        with np.errstate(divide="ignore"):
            z = np.where(left, special.ndtri(lower), -special.ndtri(upper))
        far = tail < np.finfo(np.float64).tiny
        if far.any():
            z[far] = _log_space_quantiles(source, x[far], left[far])
        return (mean + sd * z)[:, None]
    quantile, survival_quantile = _tabulated_quantiles(target)
    _refuse_beyond_table(x, np.where(left, lower, upper), quantile, survival_quantile, left)
    return np.where(left, quantile(lower), survival_quantile(upper))[:, None]


def _log_space_quantiles(source, x: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Φ⁻¹(F0(x)) for x in the left tail, −Φ⁻¹(1 − F0(x)) in the right one, where the tail
    probability underflows: log F0 = logsumexp_k(log w_k + log Φ(z_k)) and Φ⁻¹ = ndtri_exp."""
    if isinstance(source, GaussianMixture):
        means, variances, weights = source.means[:, 0], source.covs[:, 0, 0], source.weights
    else:
        means, variances, weights = source.mean, source.cov[0], np.ones(1)
    z = (x[:, None] - means) / np.sqrt(variances)
    with np.errstate(divide="ignore"):
        log_weights = np.log(weights)
    signed = np.where(left[:, None], z, -z)
    log_tail = special.logsumexp(log_weights + special.log_ndtr(signed), axis=1)
    if not np.all(np.isfinite(log_tail)):
        bad = x[~np.isfinite(log_tail)]
        raise ValueError(
            f"quantile_map: x = {bad[:3].tolist()} lies beyond the range where log F0 is "
            f"representable in float64 (log of the tail probability underflows)"
        )
    quantiles = special.ndtri_exp(log_tail)
    return np.where(left, quantiles, -quantiles)


def _refuse_beyond_table(x, tail, quantile, survival_quantile, left) -> None:
    """Refuse points whose tail probability is below the first node of the table."""
    smallest = np.where(left, quantile.smallest, survival_quantile.smallest)
    beyond = tail < smallest
    if beyond.any():
        raise ValueError(
            f"quantile_map: x = {x[beyond][:3].tolist()} lies beyond the range of the "
            f"target's tabulated quantile (tail probability below {smallest[beyond][0]:.3g}); "
            f"the exact map is evaluated in the far tails for Gaussian targets only"
        )


@dataclass(frozen=True)
class TabulatedQuantile:
    """p ↦ the tabulated quantile at p, interpolated in log p; defined for p ≥ smallest."""

    log_interpolant: interpolate.PchipInterpolator
    smallest: float

    def __call__(self, p) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return self.log_interpolant(np.log(np.maximum(p, self.smallest)))


def _tabulated_quantiles(target: LogConcaveTarget, nodes: int = 400_001):
    """G⁻¹ and (1 - G)⁻¹ of γ ∝ exp(-V) in d = 1, by the trapezoid rule on a fine grid."""
    probe = np.linspace(-50.0, 50.0, 20_001)
    log_density = -target.V(probe[:, None]) - target.log_normalizer
    support = probe[log_density > np.log(1e-300)]
    y = np.linspace(support[0], support[-1], nodes)
    density = np.exp(-target.V(y[:, None]) - target.log_normalizer)
    steps = 0.5 * (density[1:] + density[:-1]) * np.diff(y)
    cdf = np.concatenate([[0.0], np.cumsum(steps)])
    sf = np.concatenate([np.cumsum(steps[::-1])[::-1], [0.0]])
    # interpolated in log p: in p, the slopes dy/dp = 1/γ overflow in the tails
    keep_cdf = np.concatenate([[False], np.diff(cdf) > 0]) & (cdf > TABLE_FLOOR)
    keep_sf = np.concatenate([np.diff(sf) < 0, [False]]) & (sf > TABLE_FLOOR)
    log_quantile = interpolate.PchipInterpolator(np.log(cdf[keep_cdf]), y[keep_cdf])
    log_survival = interpolate.PchipInterpolator(np.log(sf[keep_sf][::-1]), y[keep_sf][::-1])
    quantile = TabulatedQuantile(log_quantile, float(cdf[keep_cdf][0]))
    survival_quantile = TabulatedQuantile(log_survival, float(sf[keep_sf][-1]))
    return quantile, survival_quantile
