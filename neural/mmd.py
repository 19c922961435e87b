"""Energy-distance MMD between two samples (paper eq. 1.10, Fig. 2 metric).

With the kernel k(x, y) = −‖x − y‖, eq. (1.10) is
MMD_k(ϱ, γ) = ½ ∬ k d(ϱ − γ) d(ϱ − γ) = E‖X − Y‖ − ½ E‖X − X'‖ − ½ E‖Y − Y'‖.
The paper's figures report the plain V-statistic without the ½ (docs/mathematics.md,
'Energy distance'):

    energy_distance(x, y) = 2 mean_ij ‖x_i − y_j‖ − mean_ij ‖x_i − x_j‖ − mean_ij ‖y_i − y_j‖

over all pairs, diagonal included (the diagonal terms are 0), i.e. twice eq. (1.10)
evaluated at the empirical measures. It is >= 0 (the energy distance is a squared
metric between the empirical measures).

The kernel streams over pairs (no n × m matrix is formed), parallel over rows; each
row's sum is kept and the row sums are added in a fixed order, so the result does
not depend on the number of threads.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numba import njit, prange

from gridflow.checks import as_points
from neural._kernels import JIT, squared_distances, sum4

__all__ = ["energy_distance", "energy_distance_to"]


@njit(**JIT)
def _row_distance_sum(point, others_t, start, stop, buffer):
    """Σ_{j in [start, stop)} ‖point − others_j‖ with others_t of shape (d, m)."""
    length = stop - start
    squared_distances(point, others_t, start, stop, buffer)
    for j in range(length):
        buffer[j] = math.sqrt(buffer[j])
    return sum4(buffer, length)


@njit(parallel=True, **JIT)
def _cross_sum(x, y_t):
    """Σ_{i,j} ‖x_i − y_j‖ (row sums in parallel, added in row order)."""
    n = x.shape[0]
    m = y_t.shape[1]
    rows = np.empty(n)
    for i in prange(n):
        buffer = np.empty(m)
        rows[i] = _row_distance_sum(x[i], y_t, 0, m, buffer)
    total = 0.0
    for i in range(n):
        total += rows[i]
    return total


@njit(parallel=True, **JIT)
def _within_sum(x, x_t):
    """Σ_{i<j} ‖x_i − x_j‖; rows i and n−1−i share a work item (balanced triangle)."""
    n = x.shape[0]
    rows = np.zeros(n)
    pairs = (n + 1) // 2
    for p in prange(pairs):
        buffer = np.empty(n)
        rows[p] = _row_distance_sum(x[p], x_t, p + 1, n, buffer)
        other = n - 1 - p
        if other != p:
            rows[other] = _row_distance_sum(x[other], x_t, other + 1, n, buffer)
    total = 0.0
    for i in range(n):
        total += rows[i]
    return total


def _require_representable(points: np.ndarray, name: str) -> None:
    """ValueError if squared distances between such points can overflow float64.

    ‖x_i − y_j‖² ≤ d (2M)² for entries of magnitude ≤ M, finite if M ≤ sqrt(max / d) / 4.
    """
    dim = points.shape[1]
    limit = math.sqrt(np.finfo(np.float64).max / dim) / 4.0
    largest = float(np.abs(points).max())
    if largest > limit:
        raise ValueError(
            f"{name} has entries of magnitude up to {largest:.3g}, above {limit:.3g} (d = {dim}), "
            f"where squared distances overflow float64; rescale both samples"
        )


def _within_term(points: np.ndarray, points_t: np.ndarray) -> float:
    """mean_ij ‖p_i − p_j‖ over all pairs of checked points (m, d), given also as (d, m)."""
    m = points.shape[0]
    return 2.0 * _within_sum(points, points_t) / (m * m)


def _energy(x: np.ndarray, y_t: np.ndarray, within_y: float) -> float:
    """The energy distance of checked points x (n, d) and y, given as y_t (d, m) with its own
    term."""
    n, m = x.shape[0], y_t.shape[1]
    cross = _cross_sum(x, y_t) / (n * m)
    within_x = _within_term(x, np.ascontiguousarray(x.T))
    return float(2.0 * cross - within_x - within_y)


MAX_PAIRS = 10**11
"""The most distances an energy distance evaluates (about three minutes on one core)."""


def _check_pairs(n: int, m: int) -> None:
    """ValueError when samples of sizes n and m take more than MAX_PAIRS distances."""
    pairs = n * m + (n * n + m * m) // 2
    if pairs > MAX_PAIRS:
        raise ValueError(
            f"the energy distance of {n:,} and {m:,} samples takes {pairs:.2g} distances, "
            f"more than {MAX_PAIRS:.0e} (minutes on one core): subsample both to a few "
            "thousand rows (its Monte Carlo error falls as 1/√n)"
        )


def _checked(points, name: str, dim: int | None = None) -> np.ndarray:
    points = as_points(points, name, dim=dim)
    _require_representable(points, name)
    return points


def energy_distance(x, y) -> float:
    """2 mean‖x_i − y_j‖ − mean‖x_i − x_j‖ − mean‖y_i − y_j‖.

    The V-statistic of the energy distance (twice eq. 1.10 with k = −‖x − y‖ at the
    empirical measures), as reported in the paper's Fig. 2. Streams over pairs.

    Parameters
    ----------
    x : array_like
        Samples, (n, d).
    y : array_like
        Samples, (m, d).

    Returns
    -------
    float
        The energy distance of the two empirical measures.

    Raises
    ------
    ValueError
        On NaN/inf, and entries so large that squared distances overflow.
    """
    x = _checked(x, "x")
    y = _checked(y, "y", dim=x.shape[1])
    _check_pairs(x.shape[0], y.shape[0])
    y_t = np.ascontiguousarray(y.T)
    return _energy(x, y_t, _within_term(y, y_t))


def energy_distance_to(y) -> Callable[[np.ndarray], float]:
    """x ↦ ``energy_distance(x, y)``, the same value bit for bit, for many samples x against
    one y: y's own term, a quarter of the pairs when n = m, is computed once (the Fig. 2
    sweep measures seven samples of each seed against one sample of γ)."""
    y = _checked(y, "y")
    _check_pairs(0, y.shape[0])
    y_t = np.array(y.T, order="C")  # a private copy: y's own term is cached
    within_y = _within_term(y, y_t)

    def distance_to_y(x) -> float:
        x = _checked(x, "x", dim=y_t.shape[0])
        _check_pairs(x.shape[0], y_t.shape[1])
        return _energy(x, y_t, within_y)

    return distance_to_y
