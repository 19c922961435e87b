"""The distance between two maps in L²(ϱ0) and the L²-UVP, by Monte Carlo over ϱ0.

L²-UVP(T, T*) = 100 · ‖T − T*‖²_{L²(ϱ0)} / Var(γ) %, with Var(γ) the trace of the
target's covariance (the unexplained-variance percentage of the OT benchmarks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gridflow.checks import as_finite_array, as_float_array, symmetric_positive_definite

__all__ = ["MapDistance", "map_distance"]


@dataclass(frozen=True)
class MapDistance:
    """‖T − T*‖ in L²(ϱ0) over n source samples, and the L²-UVP.

    l2          sqrt(mean_i ‖T(x_i) − T*(x_i)‖²)
    l2_squared  mean_i ‖T(x_i) − T*(x_i)‖²
    uvp         100 · l2_squared / Var(γ), Var(γ) = trace of the target covariance (%)
    n           number of source samples
    """

    l2: float
    l2_squared: float
    uvp: float
    n: int


def _is_boolean(value) -> bool:
    """Whether ``value`` is a bool or an array or list of them."""
    if isinstance(value, (bool, np.bool_)):
        return True
    try:
        return np.asarray(value).dtype == np.bool_
    except ValueError:  # a ragged list: as_float_array says so
        return False


def _target_variance(target_cov, dim: int) -> float:
    cov = getattr(target_cov, "cov", target_cov)  # a Gaussian law or target: its covariance
    if cov is None:
        raise ValueError("the target's covariance is not known: pass it (or its trace)")
    if _is_boolean(cov):  # as_float_array takes True for 1.0: no variance is meant by it
        raise TypeError(
            f"target_cov must be a number (the variance) or a ({dim}, {dim}) covariance "
            f"matrix, got booleans: {cov!r}"
        )
    cov = as_float_array(cov, "target_cov")
    if cov.ndim == 0:
        variance = float(cov)
    elif cov.shape == (dim, dim):
        variance = float(np.trace(symmetric_positive_definite(cov, "target_cov", dim)))
    else:
        raise ValueError(
            f"target_cov must have shape ({dim}, {dim}) or be a number, got {cov.shape}"
        )
    if not (np.isfinite(variance) and variance > 0.0):
        raise ValueError(f"the target variance (trace of target_cov) must be > 0, got {variance}")
    return variance


def map_distance(
    trained_map: Callable[[np.ndarray], np.ndarray],
    true_map: Callable[[np.ndarray], np.ndarray],
    source_samples,
    target_cov,
) -> MapDistance:
    """The distance of a map to a reference T* in L²(ϱ0), and the L²-UVP.

    Parameters
    ----------
    trained_map, true_map : callable
        Points (n, d) -> (n, d): any map of the family (``AffineMap``, ``GridMap``, an
        ``ICNN``) or a function.
    source_samples : array_like, shape (n, d)
        Samples x_i of ϱ0.
    target_cov : array_like or float or Gaussian or LogConcaveTarget
        γ's covariance (d, d), its trace, or a Gaussian target or law (its covariance).

    Returns
    -------
    MapDistance
        sqrt(mean_i ‖T(x_i) − T*(x_i)‖²), its square, the UVP in % and n.

    Raises
    ------
    ValueError
        For samples that are not (n, d), a map that returns another shape or values that
        are not finite, or a target variance that is not positive.
    TypeError
        When a map is not callable, or `target_cov` is not numbers (a str, or booleans
        such as True).
    """
    x = as_finite_array(source_samples, "source_samples")
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"source_samples must be an (n, d) array of points, got {x.shape}")
    n, d = x.shape
    if not callable(trained_map) or not callable(true_map):
        raise TypeError("trained_map and true_map must be callables (n, d) -> (n, d)")
    for name, function in (("trained_map", trained_map), ("true_map", true_map)):
        dim = getattr(function, "dim", None)
        if isinstance(dim, int) and dim != d:
            raise ValueError(f"source_samples are points in d = {d}, {name} maps d = {dim}")
    variance = _target_variance(target_cov, d)
    values = []
    for name, function in (("trained_map", trained_map), ("true_map", true_map)):
        value = as_float_array(function(x.copy()), f"{name}(source_samples)")  # each its own
        if value.shape != (n, d):
            raise ValueError(f"{name} must return shape ({n}, {d}), got {value.shape}")
        bad = int(np.count_nonzero(~np.isfinite(value).all(axis=1)))
        if bad:
            raise ValueError(
                f"{name} returned NaN or inf at {bad} of {n} points; a distance to a map "
                f"that is not finite is not defined (has the map diverged?)"
            )
        values.append(value)
    residual = values[0] - values[1]
    squared = float(np.einsum("ij,ij->", residual, residual)) / n
    return MapDistance(
        l2=float(np.sqrt(squared)), l2_squared=squared, uvp=100.0 * squared / variance, n=n
    )
