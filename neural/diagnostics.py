"""How far a trained map is from the truth: ‖T_θ − T*‖ in L²(ϱ0) and the L²-UVP.

The exact KL of a trained map is ``neural.kl.exact_kl``; the MMD is ``neural.mmd``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from neural._validate import as_points

__all__ = ["MapError", "map_error"]


@dataclass(frozen=True)
class MapError:
    """‖T_θ − T*‖ in L²(ϱ0) by Monte Carlo over n source samples, and the L²-UVP.

    l2          sqrt(mean_i ‖T_θ(x_i) − T*(x_i)‖²)
    l2_squared  mean_i ‖T_θ(x_i) − T*(x_i)‖²
    uvp         100 · l2_squared / Var(γ), Var(γ) = trace of the target covariance (%)
    n           number of source samples
    """

    l2: float
    l2_squared: float
    uvp: float
    n: int


def map_error(
    trained_map: Callable[[np.ndarray], np.ndarray],
    true_map: Callable[[np.ndarray], np.ndarray],
    source_samples,
    target_cov,
) -> MapError:
    """Distance of a trained map to the ground truth T* in L²(ϱ0) and the L²-UVP.

    trained_map, true_map  callables (n, d) -> (n, d)
    source_samples         x_i ~ ϱ0, (n, d)
    target_cov             covariance of γ, (d, d) (or its trace, a positive number)
    """
    x = as_points(source_samples, "source_samples")
    n, d = x.shape
    if not callable(trained_map) or not callable(true_map):
        raise TypeError("trained_map and true_map must be callables (n, d) -> (n, d)")
    cov = np.asarray(target_cov, dtype=np.float64)
    if cov.ndim == 0:
        variance = float(cov)
    elif cov.shape == (d, d):
        variance = float(np.trace(cov))
    else:
        raise ValueError(f"target_cov must have shape ({d}, {d}) or be a number, got {cov.shape}")
    if not (np.isfinite(variance) and variance > 0.0):
        raise ValueError(f"the target variance (trace of target_cov) must be > 0, got {variance}")
    difference = []
    for name, function in (("trained_map", trained_map), ("true_map", true_map)):
        values = np.asarray(function(x), dtype=np.float64)
        if values.shape != (n, d):
            raise ValueError(f"{name} must return shape ({n}, {d}), got {values.shape}")
        difference.append(values)
    residual = difference[0] - difference[1]
    squared = float(np.einsum("ij,ij->", residual, residual)) / n
    return MapError(
        l2=float(np.sqrt(squared)), l2_squared=squared, uvp=100.0 * squared / variance, n=n
    )
