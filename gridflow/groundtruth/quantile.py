"""The exact OT map in d = 1: the monotone rearrangement T* = G⁻¹ ∘ F0.

F0 and G are the cumulative distribution functions of ϱ0 and γ. For a Gaussian or
Gaussian-mixture source and a Gaussian target it is evaluated in closed form, through the
survival functions in the right tail so that no precision is lost to 1 − F0 ≈ 1. Other
targets are handled by tabulating G on a fine grid.
"""

from __future__ import annotations

import numpy as np
from scipy import interpolate, special

from gridflow.checks import as_points
from gridflow.measures import Gaussian, GaussianMixture, LogConcaveTarget, as_target

__all__ = ["quantile_map"]


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
    ValueError
        If `source` is not a one-dimensional `Gaussian` or `GaussianMixture`.
    """
    if not isinstance(source, (Gaussian, GaussianMixture)) or source.dim != 1:
        raise ValueError("quantile_map needs a one-dimensional Gaussian or GaussianMixture source")
    target = as_target(target)
    x = as_points(x, "x", 1)[:, 0]
    lower = source.cdf(x)
    upper = source.sf(x)
    left = lower < 0.5
    if target.is_gaussian:
        mean, sd = target.mean[0], np.sqrt(target.cov[0, 0])
        z = np.where(left, special.ndtri(lower), -special.ndtri(upper))
        return (mean + sd * z)[:, None]
    quantile, survival_quantile = _tabulated_quantiles(target)
    return np.where(left, quantile(lower), survival_quantile(upper))[:, None]


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
    keep_cdf = np.concatenate([[True], np.diff(cdf) > 0])
    keep_sf = np.concatenate([np.diff(sf) < 0, [True]])
    quantile = interpolate.PchipInterpolator(cdf[keep_cdf], y[keep_cdf])
    survival_quantile = interpolate.PchipInterpolator(sf[keep_sf][::-1], y[keep_sf][::-1])
    return quantile, survival_quantile
