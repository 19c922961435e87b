"""Convergence rates and the theoretical bounds of Theorem 2.13 / Corollary 2.17.

Generic helpers (arrays in, arrays out) shared by the exact Gaussian flow
(:mod:`gridflow.gaussian`) and the grid solvers:

- :func:`fitted_rate` — the asymptotic exponential decay rate of a gap
  ``F(T_t) - F*`` (or of a squared map error), fitted as the least-squares slope of
  ``log gap`` against ``t`` over a late window of gap levels;
- :func:`energy_gap_bound_strongly_convex` — Thm 2.13 (iii.a):
  ``F(T_t) - F* <= exp(-2 lam t) (F(id) - F*)``;
- :func:`map_error_bound_strongly_convex` — Thm 2.13 (iii.b):
  ``||T_t - T*||^2_{L2(rho0)} <= (4 / lam) exp(-2 lam t) (F(id) - F*)``;
- :func:`energy_gap_bound_convex` — Thm 2.13 (ii.a):
  ``F(T_t) - F* <= W2(rho0, gamma)^2 / (2 t)``.

For the relative entropy ``F(T) = KL(T#rho0 | gamma)`` with a lam-log-concave target
these are Corollary 2.17 (ii) (lam > 0) and (i) (lam = 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "RateFit",
    "energy_gap_bound_convex",
    "energy_gap_bound_strongly_convex",
    "fit_log_linear",
    "fitted_rate",
    "map_error_bound_strongly_convex",
]


@dataclass(frozen=True)
class RateFit:
    """Least-squares fit ``log gap ~ intercept - rate * t`` over a window.

    rate        fitted decay rate (positive for a decaying gap)
    intercept   fitted ``log gap`` at ``t = 0``
    time_start  first time used in the fit
    time_stop   last time used in the fit
    num_points  number of samples used
    residual    root-mean-square residual of the fit in ``log gap``
    """

    rate: float
    intercept: float
    time_start: float
    time_stop: float
    num_points: int
    residual: float


def _as_times(times) -> np.ndarray:
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1:
        raise ValueError(f"times must be a 1D array, got shape {times.shape}")
    if not np.all(np.isfinite(times)):
        raise ValueError("times must be finite (no NaN or inf)")
    if np.any(times < 0):
        raise ValueError("times must be nonnegative")
    return times


def _as_lam(lam) -> float:
    lam = float(lam)
    if not np.isfinite(lam) or lam <= 0:
        raise ValueError(
            f"lam must be a finite positive convexity constant to claim an exponential rate, "
            f"got {lam!r}; use energy_gap_bound_convex for lam = 0"
        )
    return lam


def _as_gap(initial_gap) -> float:
    initial_gap = float(initial_gap)
    if not np.isfinite(initial_gap) or initial_gap < 0:
        raise ValueError(f"initial_gap must be finite and nonnegative, got {initial_gap!r}")
    return initial_gap


def fit_log_linear(times, gaps, window=(1e-4, 1e-11), relative=True) -> RateFit:
    """Fit ``log gap = intercept - rate * t`` over the samples whose gap lies in ``window``.

    Parameters
    ----------
    times : (n,) array
        Nonnegative sample times.
    gaps : (n,) array
        Positive quantities expected to decay like ``exp(-rate t)`` at late times
        (``F(T_t) - F*`` or ``||T_t - T*||^2``). Nonpositive or non-finite entries are
        never used.
    window : (upper, lower)
        Only samples with ``lower <= gap <= upper`` enter the fit. Choose it late
        enough that the slowest mode dominates and high enough above roundoff.
    relative : bool
        If True (default), ``window`` is relative to ``gaps[0]`` (the initial gap).

    Returns
    -------
    RateFit
        ``rate`` is positive for a decaying gap. Raises ValueError if fewer than three
        samples fall in the window.
    """
    times = _as_times(times)
    gaps = np.asarray(gaps, dtype=np.float64)
    if gaps.shape != times.shape:
        raise ValueError(f"gaps must have the shape of times {times.shape}, got {gaps.shape}")
    try:
        upper, lower = (float(value) for value in window)
    except (TypeError, ValueError) as error:
        raise ValueError(f"window must be a pair (upper, lower), got {window!r}") from error
    if not (0 < lower < upper):
        raise ValueError(f"window must satisfy 0 < lower < upper, got {window!r}")
    if relative:
        reference = gaps[0]
        if not np.isfinite(reference) or reference <= 0:
            raise ValueError(
                f"gaps[0] must be positive for a relative window, got {float(reference):g}; "
                "pass relative=False and an absolute window"
            )
        upper, lower = upper * reference, lower * reference
    usable = np.isfinite(gaps) & (gaps > 0) & (gaps >= lower) & (gaps <= upper)
    if np.count_nonzero(usable) < 3:
        raise ValueError(
            f"window {window!r} (relative={relative}) contains {np.count_nonzero(usable)} "
            "samples, need at least 3: record more times or widen the window"
        )
    t = times[usable]
    log_gap = np.log(gaps[usable])
    scale = float(np.abs(t).max())  # > 0: three increasing times; 1e-300 defeats lstsq's SVD
    slope, intercept = np.polyfit(t / scale, log_gap, 1)
    slope /= scale
    residual = float(np.sqrt(np.mean((log_gap - (intercept + slope * t)) ** 2)))
    return RateFit(
        rate=float(-slope),
        intercept=float(intercept),
        time_start=float(t[0]),
        time_stop=float(t[-1]),
        num_points=int(t.size),
        residual=residual,
    )


def fitted_rate(times, gaps, window=(1e-4, 1e-11), relative=True) -> float:
    """Asymptotic decay rate of ``gaps``: minus the least-squares slope of ``log gap``.

    See :func:`fit_log_linear` for the parameters. For the constrained flow of a
    lam-convex functional, Thm 2.13 (iii.a) bounds the rate of ``F(T_t) - F*`` from
    below by ``2 lam``; the fitted rate is compared with ``2 lam``.
    """
    return fit_log_linear(times, gaps, window=window, relative=relative).rate


def energy_gap_bound_strongly_convex(times, initial_gap, lam) -> np.ndarray:
    """Thm 2.13 (iii.a): ``F(T_t) - F* <= exp(-2 lam t) (F(id) - F*)``, for lam > 0."""
    times = _as_times(times)
    return np.exp(-2.0 * _as_lam(lam) * times) * _as_gap(initial_gap)


def map_error_bound_strongly_convex(times, initial_gap, lam) -> np.ndarray:
    """Thm 2.13 (iii.b): ``||T_t - T*||^2_{L2(rho0)} <= (4/lam) exp(-2 lam t) (F(id) - F*)``.

    The left side is the *squared* L2(rho0) map error.
    """
    times = _as_times(times)
    lam = _as_lam(lam)
    return (4.0 / lam) * np.exp(-2.0 * lam * times) * _as_gap(initial_gap)


def energy_gap_bound_convex(times, w2_squared) -> np.ndarray:
    """Thm 2.13 (ii.a): ``F(T_t) - F* <= W2(rho0, gamma)^2 / (2 t)`` (``+inf`` at t = 0).

    ``w2_squared`` is the *squared* Wasserstein distance between source and target.
    """
    times = _as_times(times)
    w2_squared = float(w2_squared)
    if not np.isfinite(w2_squared) or w2_squared < 0:
        raise ValueError(f"w2_squared must be finite and nonnegative, got {w2_squared!r}")
    with np.errstate(divide="ignore"):
        return np.where(times > 0, w2_squared / (2.0 * np.where(times > 0, times, 1.0)), np.inf)
