"""Pair statistics of a point cloud and the scale ε of its self-entropic score (Remark 3.10).

Default ε (Remark 3.10, as in ott-jax): 5% of the median of the squared pairwise
distances ‖x_i − x_j‖², i < j, of the point cloud. ``pair_statistics`` gives that median
and every sample's squared distance to its nearest other sample in one pass over the
pairs; ``smallest_safe_eps`` the scale below which some sample's score estimate is 0.
The statistics are numba kernels.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from gridflow.checks import as_points
from gridflow.memory import check_memory
from neural._kernels import JIT, squared_distances

__all__ = [
    "DEFAULT_EPS_FRACTION",
    "blind_below",
    "default_eps",
    "eps_from_median",
    "nearest_squared_distances",
    "pair_statistics",
    "smallest_safe_eps",
]

DEFAULT_EPS_FRACTION = 0.05
"""ε = DEFAULT_EPS_FRACTION × median squared pairwise distance (paper Remark 3.10)."""

_ROUNDOFF_EXPONENT = -math.log(np.finfo(np.float64).eps)
"""log(1/ε_machine) ≈ 36.04: a kernel weight exp(−v) with v above it is below roundoff."""


@njit(**JIT)
def blind_below(nearest):
    """d_i² / (2 log(1/ε_machine)) per sample (d_i² = ``nearest``): below this ε the kernel
    weight of x_i's nearest neighbour is below roundoff (``smallest_safe_eps``)."""
    return nearest / (2.0 * _ROUNDOFF_EXPONENT)


_MEDIAN_BUCKETS = 1024
"""Buckets of the median's counting pass (``_order_statistic``)."""


@njit(**JIT)
def _order_statistic(values, rank, bucket, counts):
    """The value of the given rank (0-based) in ``values`` (exact): the members of the bucket
    that holds it, sorted, where ``bucket``/``counts`` are the counting pass's."""
    below = 0
    chosen = 0
    while below + counts[chosen] <= rank:
        below += counts[chosen]
        chosen += 1
    members = np.empty(counts[chosen])
    found = 0
    for i in range(values.size):
        if bucket[i] == chosen:
            members[found] = values[i]
            found += 1
    members.sort()
    return members[rank - below]


@njit(**JIT)
def _median(values):
    """np.median(values) of a non-empty array, exactly, without its branchy selection.

    A counting pass puts each value in one of ``_MEDIAN_BUCKETS`` equal-width buckets over
    [min, max]; the bucket index, floor((v − min) · scale), is nondecreasing in v (rounding is
    monotone), so a value's rank is the count of the buckets below it plus its rank in its
    own bucket, which is sorted. For n = 100 points (4950 pairs) the default ε then takes
    about 20 µs against 75 µs with numba's quickselect, whose comparisons on fresh data the
    branch predictor cannot learn.
    """
    m = values.size
    low, high = values.min(), values.max()
    width = high - low
    scale = _MEDIAN_BUCKETS / width if width > 0.0 else np.inf
    if not 0.0 < scale < np.inf:  # all equal, an infinite distance, or a subnormal spread
        return np.median(values)
    counts = np.zeros(_MEDIAN_BUCKETS + 1, dtype=np.int64)
    bucket = np.empty(m, dtype=np.int64)
    for i in range(m):
        index = min(int((values[i] - low) * scale), _MEDIAN_BUCKETS)
        bucket[i] = index
        counts[index] += 1
    half = m >> 1
    upper = _order_statistic(values, half, bucket, counts)
    if m & 1:
        return upper
    return (_order_statistic(values, half - 1, bucket, counts) + upper) / 2


@njit(**JIT)
def nearest_squared_distances(x):
    """min_{j ≠ i} ‖x_i − x_j‖² for every i (0 for a repeated point), in O(n) memory."""
    n = x.shape[0]
    x_t = np.ascontiguousarray(x.T)
    out = np.empty(n)
    row = np.empty(n)
    for i in range(n):
        squared_distances(x[i], x_t, 0, n, row)
        row[i] = np.inf
        out[i] = row.min()
    return out


@njit(**JIT)
def pair_statistics(x):
    """(median of ‖x_i − x_j‖² over the pairs i < j, min_{j ≠ i} ‖x_i − x_j‖² for every i)
    from one pass over the pairs (the nearest is 0 for a repeated point). The median needs
    all n(n − 1)/2 values in memory; ``nearest_squared_distances`` alone does not."""
    n = x.shape[0]
    x_t = np.ascontiguousarray(x.T)
    values = np.empty(n * (n - 1) // 2)
    nearest = np.full(n, np.inf)
    position = 0
    for i in range(n - 1):
        length = n - 1 - i
        row = values[position : position + length]
        squared_distances(x[i], x_t, i + 1, n, row)
        tail = nearest[i + 1 :]
        for j in range(length):
            tail[j] = min(tail[j], row[j])
        nearest[i] = min(nearest[i], row.min())
        position += length
    return _median(values), nearest


def check_pair_memory(n: int) -> None:
    """InsufficientMemoryError (a ValueError), before the pass, when the n(n − 1)/2 squared
    distances of ``pair_statistics`` would not fit in the memory available."""
    check_memory(
        8.0 * n * (n - 1) / 2,
        f"the default ε of {n} samples (the median of their {n * (n - 1) // 2:.3g} pairwise "
        f"distances)",
        "give eps (O(n) memory) or use fewer samples",
    )


def default_eps(x) -> float:
    """DEFAULT_EPS_FRACTION × median of ‖x_i − x_j‖² over pairs i < j (Remark 3.10)."""
    x = as_points(x, "x", min_points=2)
    check_pair_memory(x.shape[0])
    return eps_from_median(pair_statistics(x)[0])


def eps_from_median(median) -> float:
    median = float(median)
    if not median > 0.0:
        raise ValueError(
            "cannot choose eps from x: at least half of the pairwise distances are 0 "
            "(repeated points); pass eps explicitly"
        )
    if median == np.inf:
        raise ValueError(
            "cannot choose eps from x: its squared pairwise distances overflow float64; rescale x"
        )
    return DEFAULT_EPS_FRACTION * median


def smallest_safe_eps(x) -> float:
    """The smallest ε at which every sample's score estimate sees its nearest neighbour.

    max_i d_i² / (2 log(1/ε_machine)), d_i the distance from x_i to its nearest other
    sample. At a smaller ε the kernel weight exp(−d_i²/(2ε)) of that neighbour is below
    roundoff relative to x_i's own (and underflows to 0 soon after), so the barycentric
    projection B(x_i) is x_i and the score estimate at x_i is exactly 0.
    """
    x = as_points(x, "x", min_points=2)
    return float(blind_below(nearest_squared_distances(x)).max())
