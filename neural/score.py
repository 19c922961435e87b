"""Score estimation from samples by the self-entropic OT potential (paper Remark 3.10).

Given samples x_1, ..., x_n of a density ρ and the empirical measure
ρ̂ = (1/n) Σ_j δ_{x_j}, the self-entropic OT problem is entropic OT between ρ̂ and
itself with cost c(x, y) = ½‖x − y‖² and regularization ε. Its optimal plan is
symmetric, π_ij = (1/n²) exp((f_i + f_j − c_ij)/ε), with one potential f solving
the symmetric Schrödinger fixed point

    f_i = −ε log Σ_j (1/n) exp((f_j − c_ij)/ε),   i = 1, ..., n.

Writing h = f/ε and G_ij = c_ij/ε, the fixed point of T(h)_i = log n − LSE_j(h_j − G_ij)
is the fixed point of the averaged map A(h) = ½(h + T(h)) (the plain update h ← T(h)
oscillates between two states for the symmetric problem). A's linearization is
½(I − P), P_ij = ∂T_i/∂h_j negated, a row-stochastic matrix similar to a positive
semidefinite one (the Gaussian kernel is): its eigenvalues lie in [0, ½], and the plain
averaged update h ← A(h) converges at rate ½ (27–28 updates to 1e-9 for n = 100). The
updates are Anderson-mixed: h ← A(h_k) − Σ_j γ_j ΔA_j over the last ``_ANDERSON_DEPTH``
differences ΔA_j of A's values, γ the least-squares fit of the residual f_k = A(h_k) − h_k
by the differences Δf_j of the residuals, then clipped to the box |h_i| <= ½ log n. That
takes 14–15 updates to 1e-9, and each costs ~(2 + 3·depth)·n more flops than the n² of an
update. Starting from h = 0, every plain iterate satisfies |h_i| <= ½ log n
(T(h)_i <= log n − h_i from the diagonal term, T(h)_i >= −max h), so the fixed point lies
in the box, and the clipped mixed iterates keep the bound that the log-sum-exp needs.
Each update computes the log-sum-exp with the single shift max_j h_j as

    LSE_j(h_j − G_ij) = max h + log Σ_j K_ij exp(h_j − max h),   K_ij = exp(−G_ij),

with the Gibbs kernel K ∈ [0, 1], K_ii = 1: every term is <= 1 and the diagonal one is
>= exp(h_i − max h) >= 1/n, so the row sums neither overflow nor underflow. K does not
change between updates: up to ``_STORED_MAX_POINTS`` samples it is computed once (its
upper triangle, mirrored) and each update is one pass over it, n² multiply-adds and n
exponentials instead of n² exponentials; for larger n its rows are recomputed at every
update. The residual is ‖h − T(h)‖_∞ = max_i |log(n (π 1)_i)|, the largest relative
violation of the marginal constraint in log scale (dimensionless).

Score estimate (Remark 3.10, [Mor24]): for small ε, f ≈ −(ε/2) log ρ + const, and the
barycentric projection of the plan, B(x_i) = Σ_j softmax_j((f_j − ½‖x_i − x_j‖²)/ε) x_j,
equals x_i + (ε/2) ∇log ρ(x_i) + o(ε): to leading order the plan's conditional law
at x_i is ∝ ρ^{1/2}(y) N(y; x_i, εI), whose mean is x_i + ε ∇log(ρ^{1/2} ∗ N(0, εI))(x_i).
Hence

    ∇log ρ(x_i) ≈ −(2/ε) (x_i − B(x_i)).

Default ε (Remark 3.10, as in ott-jax): 5% of the median of the squared pairwise
distances ‖x_i − x_j‖², i < j, of the point cloud.
"""

from __future__ import annotations

import contextvars
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from gridflow.checks import as_points, positive_float, positive_int
from neural._kernels import (
    JIT,
    block_bounds,
    dot4,
    exp_nonpositive,
    squared_distances,
    sum4,
)

__all__ = [
    "DEFAULT_EPS_FRACTION",
    "ConvergenceWarning",
    "NonConvergenceCount",
    "ScoreResolutionWarning",
    "SelfEntropicPotential",
    "count_nonconvergence",
    "default_eps",
    "self_entropic_potential",
    "self_entropic_score",
    "smallest_safe_eps",
]

DEFAULT_EPS_FRACTION = 0.05
"""ε = DEFAULT_EPS_FRACTION × median squared pairwise distance (paper Remark 3.10)."""

_ROW_BLOCK = 32
"""Rows per parallel work item (row boundaries depend on n only)."""
_MAX_BLOCK = 2**62
"""A block size that makes every n one block."""
_EPS_HINT = (
    " (the entropic regularization); pass eps=None for the default 5% of the median "
    "squared distance"
)
_STORED_MAX_POINTS = 2048
"""Up to this many points Sinkhorn stores the kernel matrix (n² floats, 32 MiB at 2048).

With the stored kernel, Sinkhorn runs serially whatever the thread count: an update is
too short to share (at most 4·10⁶ multiply-adds). Measured on 2 cores with another
process busy (``python -m validation.benchmark_neural --thresholds``), the parallel kernel
took 1.9 to 24 times as long as the serial one for n = 64 to 2048 (once 800 times, n = 256:
a worker descheduled at every update). Above the cap the rows are recomputed at every
update, about 60 ms of exponentials at n = 4096, and the parallel kernel is used: 0.77 to
1.03 times the serial time there under load, and it shares the work when the cores are
free."""


class ConvergenceWarning(RuntimeWarning):
    """Sinkhorn stopped at max_iter with a residual above tol (numbers in the message)."""


@dataclass
class NonConvergenceCount:
    """Sinkhorn runs that stopped at max_iter inside ``count_nonconvergence`` (``runs``)."""

    runs: int = 0


_NONCONVERGENCE_COUNT: contextvars.ContextVar[NonConvergenceCount | None] = contextvars.ContextVar(
    "neural_score_nonconvergence_count", default=None
)


@contextmanager
def count_nonconvergence() -> Iterator[NonConvergenceCount]:
    """Count the non-converged Sinkhorn runs of this thread instead of warning about them.

    Inside the block, ``self_entropic_potential`` adds 1 to the yielded counter where it
    would emit a ``ConvergenceWarning``. The counter lives in a context variable, so each
    thread (and asyncio task) counts its own runs: unlike ``warnings.catch_warnings``,
    which swaps process-wide state, this is safe when several threads train at once.
    """
    counter = NonConvergenceCount()
    token = _NONCONVERGENCE_COUNT.set(counter)
    try:
        yield counter
    finally:
        _NONCONVERGENCE_COUNT.reset(token)


class ScoreResolutionWarning(RuntimeWarning):
    """ε is below the kernel's resolution at some samples: their score estimate is 0."""


_ROUNDOFF_EXPONENT = -math.log(np.finfo(np.float64).eps)
"""log(1/ε_machine) ≈ 36.04: a kernel weight exp(−v) with v above it is below roundoff."""


@njit(**JIT)
def _blind_below(nearest):
    """d_i² / (2 log(1/ε_machine)) per sample (d_i² = ``nearest``): below this ε the kernel
    weight of x_i's nearest neighbour is below roundoff (``smallest_safe_eps``)."""
    return nearest / (2.0 * _ROUNDOFF_EXPONENT)


@dataclass(frozen=True)
class SelfEntropicPotential:
    """Solution of the symmetric Sinkhorn problem on a point cloud (Remark 3.10).

    points      the samples x (n, d)
    eps         the entropic regularization ε
    potential   the self-entropic potential f (n,) (cost units, f = ε h)
    residual    final ‖h − T(h)‖_∞ = max_i |log(n (π 1)_i)| (dimensionless)
    iterations  number of updates done (evaluations of T)
    converged   residual <= tol
    """

    points: np.ndarray
    eps: float
    potential: np.ndarray
    residual: float
    iterations: int
    converged: bool

    def score(self) -> np.ndarray:
        """Score estimate −(2/ε)(x_i − B(x_i)) at the samples, (n, d)."""
        return _score(self.points, self.points, self.potential / self.eps, self.eps)

    def score_at(self, y) -> np.ndarray:
        """The same estimator at other points y (m, d): −(2/ε)(y − Σ_j softmax_j(...) x_j)."""
        y = as_points(y, "y", dim=self.points.shape[1])
        return _score(y, self.points, self.potential / self.eps, self.eps)


# --------------------------------------------------------------------------- kernels


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
def _nearest_squared_distances(x):
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
def _pair_statistics(x):
    """(median of ‖x_i − x_j‖² over the pairs i < j, min_{j ≠ i} ‖x_i − x_j‖² for every i)
    from one pass over the pairs (the nearest is 0 for a repeated point). The median needs
    all n(n − 1)/2 values in memory; ``_nearest_squared_distances`` alone does not."""
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


@njit(**JIT)
def _row_logits(query_row, support_t, h, scale, out):
    """out[j] = h[j] − ‖y − x_j‖² · scale (scale = 1/(2ε)) for one query point y."""
    m = support_t.shape[1]
    squared_distances(query_row, support_t, 0, m, out)
    for j in range(m):
        out[j] = h[j] - out[j] * scale


@njit(**JIT)
def _shifted_exp_sum(logits, shift, terms):
    """terms[j] = exp(logits[j] − shift), for a shift >= max logits; returns Σ_j terms[j]."""
    m = logits.size
    for j in range(m):
        terms[j] = exp_nonpositive(logits[j] - shift)
    return sum4(terms, m)


@njit(**JIT)
def _kernel_row(point, x_t, scale, start, out):
    """out[j − start] = exp(−‖point − x_j‖² · scale) (scale = 1/(2ε)) for j >= start."""
    length = x_t.shape[1] - start
    squared_distances(point, x_t, start, x_t.shape[1], out)
    for j in range(length):
        out[j] = exp_nonpositive(-(out[j] * scale))


@njit(**JIT)
def _kernel_matrix(x, x_t, scale):
    """K_ij = exp(−‖x_i − x_j‖²/(2ε)) (n, n): the upper triangle, mirrored (K is symmetric)."""
    n = x.shape[0]
    kernel = np.empty((n, n))
    for i in range(n):
        kernel[i, i] = 1.0
        _kernel_row(x[i], x_t, scale, i + 1, kernel[i, i + 1 :])
        for j in range(i + 1, n):
            kernel[j, i] = kernel[i, j]
    return kernel


@njit(**JIT)
def _weighted_sum(values, weights, terms):
    """terms[j] = values[j] weights[j]; returns Σ_j terms[j] in the fixed order of ``sum4``."""
    n = values.size
    for j in range(n):
        terms[j] = values[j] * weights[j]
    return sum4(terms, n)


def _make_row_sums(parallel, stored):
    """out_i = Σ_j K_ij w_j for every row block of ``bounds`` (in parallel over the blocks)."""
    loop = prange if parallel else range

    @njit(parallel=parallel, **JIT)
    def stored_row_sums(kernel, x, x_t, scale, weights, bounds, out):
        # K is symmetric: out_i = Σ_j w_j K_ji, a sum over the rows K_j of contiguous
        # stretches, in the order j = 0, ..., n−1 whatever the blocks
        n = weights.size
        for b in loop(bounds.size - 1):
            start, stop = bounds[b], bounds[b + 1]
            block_out = out[start:stop]  # views indexed from 0: the loops vectorize
            for i in range(stop - start):
                block_out[i] = 0.0
            for j in range(n):
                weight = weights[j]
                block_row = kernel[j, start:stop]
                for i in range(stop - start):
                    block_out[i] += weight * block_row[i]

    @njit(parallel=parallel, **JIT)
    def computed_row_sums(kernel, x, x_t, scale, weights, bounds, out):
        n = weights.size
        for b in loop(bounds.size - 1):
            row = np.empty(n)
            terms = np.empty(n)
            for i in range(bounds[b], bounds[b + 1]):
                _kernel_row(x[i], x_t, scale, 0, row)
                out[i] = _weighted_sum(row, weights, terms)

    return stored_row_sums if stored else computed_row_sums


_ANDERSON_DEPTH = 4
"""Past differences kept by the Anderson mixing of Sinkhorn's averaged updates."""
_ANDERSON_RIDGE = 1e-12
"""Tikhonov term of the mixing's normal equations (their matrix scaled to unit diagonal)."""


@njit(**JIT)
def _anderson_record(g, f, g_last, f_last, dg, df, gram, slot, count):
    """Store g − g_last and f − f_last in row ``slot`` of dg and df and the new row of the
    Gram matrix of df over its first ``count`` rows; then g_last, f_last ← g, f."""
    n = g.size
    for i in range(n):
        dg[slot, i] = g[i] - g_last[i]
        df[slot, i] = f[i] - f_last[i]
        g_last[i] = g[i]
        f_last[i] = f[i]
    for j in range(count):
        gram[slot, j] = gram[j, slot] = dot4(df[slot], df[j])


@njit(**JIT)
def _anderson_coefficients(df, gram, f, count, matrix, gamma):
    """γ minimizing ‖f − Σ_j γ_j df_j‖₂ over the first ``count`` rows of df, by the normal
    equations scaled to unit diagonal plus ``_ANDERSON_RIDGE`` (Cholesky); False when a
    difference vanishes or the system is not numerically positive definite."""
    for j in range(count):
        if not gram[j, j] > 0.0:
            return False
        gamma[j] = 1.0 / math.sqrt(gram[j, j])  # the scaling, then the solution
    for j in range(count):
        for k in range(count):
            matrix[j, k] = gram[j, k] * gamma[j] * gamma[k]
        matrix[j, j] += _ANDERSON_RIDGE
    for j in range(count):  # Cholesky factor L in the lower triangle
        for k in range(j + 1):
            value = matrix[j, k]
            for p in range(k):
                value -= matrix[j, p] * matrix[k, p]
            if k < j:
                matrix[j, k] = value / matrix[k, k]
            elif value > 0.0:
                matrix[j, j] = math.sqrt(value)
            else:
                return False
    right = np.empty(count)
    for j in range(count):  # L y = D dfᵀ f
        value = dot4(df[j], f) * gamma[j]
        for p in range(j):
            value -= matrix[j, p] * right[p]
        right[j] = value / matrix[j, j]
    for j in range(count - 1, -1, -1):  # Lᵀ z = y, γ = D z
        value = right[j]
        for p in range(j + 1, count):
            value -= matrix[p, j] * right[p]
        right[j] = value / matrix[j, j]
    for j in range(count):
        gamma[j] *= right[j]
    return True


def _make_sinkhorn(parallel, stored):
    row_sums = _make_row_sums(parallel, stored)
    block = _ROW_BLOCK if parallel else _MAX_BLOCK  # the row sums do not depend on the blocks

    @njit(**JIT)
    def sinkhorn(x, eps, tol, max_iter):
        """Averaged symmetric Sinkhorn with Anderson mixing (module docstring): (h, residual,
        iterations, kernel matrix, or an empty (0, 0) array when it is not stored)."""
        n = x.shape[0]
        x_t = np.ascontiguousarray(x.T)
        scale = 0.5 / eps
        log_n = math.log(n)
        bound = 0.5 * log_n
        kernel = _kernel_matrix(x, x_t, scale) if stored else np.empty((0, 0))
        h = np.zeros(n)
        weights = np.empty(n)
        sums = np.empty(n)
        bounds = block_bounds(n, block, 1)
        depth = _ANDERSON_DEPTH
        g_last, f_last = np.empty(n), np.empty(n)
        dg, df = np.empty((depth, n)), np.empty((depth, n))
        gram, matrix, gamma = np.empty((depth, depth)), np.empty((depth, depth)), np.empty(depth)
        recorded = count = 0  # differences stored since the last restart, and used
        residual = np.inf
        iterations = 0
        while iterations < max_iter:
            shift = h.max()
            for j in range(n):
                weights[j] = exp_nonpositive(h[j] - shift)
            row_sums(kernel, x, x_t, scale, weights, bounds, sums)
            residual = 0.0
            for i in range(n):  # sums ← g = ½(h + T(h)), weights ← f = g − h
                update = log_n - (shift + math.log(sums[i]))
                residual = max(residual, abs(h[i] - update))
                sums[i] = 0.5 * (h[i] + update)
                weights[i] = sums[i] - h[i]
            iterations += 1
            if residual <= tol or iterations == max_iter:
                h[:] = sums
                break
            if iterations > 1:
                count = min(recorded + 1, depth)
                _anderson_record(
                    sums, weights, g_last, f_last, dg, df, gram, recorded % depth, count
                )
                recorded += 1
            else:
                g_last[:] = sums
                f_last[:] = weights
            if count == 0 or not _anderson_coefficients(df, gram, weights, count, matrix, gamma):
                recorded = count = 0
                h[:] = sums
                continue
            h[:] = sums
            for j in range(count):
                step, row = gamma[j], dg[j]
                for i in range(n):
                    h[i] -= step * row[i]
            for i in range(n):
                h[i] = min(max(h[i], -bound), bound)
        return h, residual, iterations, kernel

    return sinkhorn


_SINKHORN = {
    (parallel, stored): _make_sinkhorn(parallel, stored)
    for parallel in (False, True)
    for stored in (False, True)
}
"""The Sinkhorn kernels by (parallel, stored kernel matrix)."""


_STORED_ROW_SUMS = _make_row_sums(parallel=False, stored=True)


@njit(**JIT)
def _score_from_kernel(x, kernel, h, eps):
    """−(2/ε)(x_i − B(x_i)) at the samples from the stored kernel matrix K (n, n):
    B(x_i) = Σ_j K_ij w_j x_j / Σ_j K_ij w_j, w_j = e^{h_j − max h}, by the row sums of
    Sinkhorn's updates (x, x_t and the scale are not read with the stored kernel)."""
    n, dim = x.shape
    x_t = np.ascontiguousarray(x.T)
    bounds = block_bounds(n, _MAX_BLOCK, 1)
    shift = h.max()
    weights = np.empty(n)
    for j in range(n):
        weights[j] = exp_nonpositive(h[j] - shift)
    total = np.empty(n)
    _STORED_ROW_SUMS(kernel, x, x_t, 1.0, weights, bounds, total)
    weighted_coordinate = np.empty(n)
    moment = np.empty(n)
    out = np.empty((n, dim))
    for k in range(dim):
        for j in range(n):
            weighted_coordinate[j] = weights[j] * x_t[k, j]
        _STORED_ROW_SUMS(kernel, x, x_t, 1.0, weighted_coordinate, bounds, moment)
        for i in range(n):
            out[i, k] = -(2.0 / eps) * (x[i, k] - moment[i] / total[i])
    return out


_SERIAL_STORED_SINKHORN = _SINKHORN[False, True]


@njit(**JIT)
def _default_eps_score(x, tol, max_iter):
    """The score at the default ε with the stored kernel, serially, in one call: (score, h,
    median squared distance, nearest squared distances, the smallest safe ε of
    ``smallest_safe_eps``, residual, iterations); when the median is not in (0, inf), it
    returns there with an empty score (the caller raises)."""
    median, nearest = _pair_statistics(x)
    safe = _blind_below(nearest).max()
    if not 0.0 < median < np.inf:
        return np.empty((0, x.shape[1])), np.empty(0), median, nearest, safe, np.inf, 0
    eps = DEFAULT_EPS_FRACTION * median  # as _eps_from_median
    h, residual, iterations, kernel = _SERIAL_STORED_SINKHORN(x, eps, tol, max_iter)
    score = _score_from_kernel(x, kernel, h, eps)
    return score, h, median, nearest, safe, residual, iterations


@njit(parallel=True, **JIT)
def _score(query, support, h, eps):
    """−(2/ε)(y_i − Σ_j softmax_j(h_j − ‖y_i − x_j‖²/(2ε)) x_j) for every query row y_i."""
    m = query.shape[0]
    n, dim = support.shape
    support_t = np.ascontiguousarray(support.T)
    scale = 0.5 / eps
    out = np.empty((m, dim))
    bounds = block_bounds(m, _ROW_BLOCK, 1)
    for b in prange(bounds.size - 1):
        logits = np.empty(n)
        terms = np.empty(n)
        for i in range(bounds[b], bounds[b + 1]):
            _row_logits(query[i], support_t, h, scale, logits)
            total = _shifted_exp_sum(logits, logits.max(), terms)
            for k in range(dim):
                support_k = support_t[k]
                for j in range(n):
                    logits[j] = terms[j] * support_k[j]
                barycenter = sum4(logits, n) / total
                out[i, k] = -(2.0 / eps) * (query[i, k] - barycenter)
    return out


# --------------------------------------------------------------------------- public API


def default_eps(x) -> float:
    """DEFAULT_EPS_FRACTION × median of ‖x_i − x_j‖² over pairs i < j (Remark 3.10)."""
    return _eps_from_median(_pair_statistics(as_points(x, "x", min_points=2))[0])


def _eps_from_median(median) -> float:
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
    return float(_blind_below(_nearest_squared_distances(x)).max())


def _check_resolution(nearest, eps) -> None:
    """Raise if ε is below the kernel's resolution at every sample (an all-zero score); warn
    (ScoreResolutionWarning) if at some of them (their scores are 0). ``nearest``: each
    sample's squared distance to its nearest other sample."""
    blind_below = _blind_below(nearest)
    safe = float(blind_below.max())
    if eps >= safe:
        return
    blind = eps < blind_below
    if blind.all():
        raise ValueError(
            f"eps={eps:.3g} is below the kernel's resolution at every sample: "
            f"exp(−‖x_i − x_j‖²/(2 eps)) underflows (below roundoff) for each sample's nearest "
            f"neighbour, and the score estimate would be all zeros; the smallest safe scale "
            f"for these samples is eps >= {safe:.3g} (eps=None gives the default, 5% of the "
            f"median squared distance)"
        )
    warnings.warn(
        f"eps={eps:.3g} is below the kernel's resolution at {int(blind.sum())} of the "
        f"{blind.size} samples (isolated ones): their score estimate is 0; eps >= {safe:.3g} "
        f"resolves every sample",
        ScoreResolutionWarning,
        stacklevel=3,
    )


def _sinkhorn(x, eps, tol, max_iter):
    """(h, residual, iterations, kernel matrix or an empty array) by the Sinkhorn kernel that
    fits n (stored kernel matrix up to ``_STORED_MAX_POINTS``) and the thread count."""
    stored = x.shape[0] <= _STORED_MAX_POINTS
    parallel = not stored and numba.get_num_threads() > 1
    return _SINKHORN[parallel, stored](x, eps, tol, max_iter)


def _checked_arguments(x, eps, tol, max_iter):
    """(x, ε or None, tol, max_iter) checked in this order, before any work."""
    x = as_points(x, "x", min_points=2)
    if eps is not None:
        eps = positive_float(eps, "eps", hint=_EPS_HINT)
    return x, eps, positive_float(tol, "tol"), positive_int(max_iter, "max_iter")


def _scale(x, eps, want_nearest: bool):
    """(ε: the given one or the default, and with ``want_nearest`` the samples' squared
    distances to their nearest other sample, else None) for checked x. The default ε's
    median holds all pairs in memory; a given ε needs O(n)."""
    if eps is None:
        median, nearest = _pair_statistics(x)
        return _eps_from_median(median), nearest
    return eps, _nearest_squared_distances(x) if want_nearest else None


def _outcome(x, eps, tol, h, residual, iterations) -> SelfEntropicPotential:
    """The ``SelfEntropicPotential`` of a Sinkhorn run; ``_report_nonconvergence`` first."""
    _report_nonconvergence(x, eps, tol, residual, iterations, stacklevel=4)
    return SelfEntropicPotential(
        points=x,
        eps=eps,
        potential=eps * h,
        residual=float(residual),
        iterations=int(iterations),
        converged=bool(residual <= tol),
    )


def _report_nonconvergence(x, eps, tol, residual, iterations, stacklevel=3) -> None:
    """Warn about (or count, inside ``count_nonconvergence``) a run that stopped above tol,
    blaming the caller of the public function that called this (or ``_outcome``)."""
    if residual <= tol:
        return
    counter = _NONCONVERGENCE_COUNT.get()
    if counter is not None:
        counter.runs += 1
    else:
        warnings.warn(
            f"self-entropic Sinkhorn did not converge: residual {residual:.3e} > tol "
            f"{tol:.1e} after {iterations} iterations (eps={eps:.4g}, n={x.shape[0]}); "
            f"increase max_iter or eps, or loosen tol",
            ConvergenceWarning,
            stacklevel=stacklevel,
        )


def self_entropic_potential(
    x, eps: float | None = None, tol: float = 1e-9, max_iter: int = 1000
) -> SelfEntropicPotential:
    """Self-entropic OT potential of the point cloud x (n, d) (Remark 3.10).

    eps       entropic regularization ε > 0; default ``default_eps(x)``
    tol       stop when ‖h − T(h)‖_∞ <= tol (h = f/ε, see the module docstring)
    max_iter  cap on the (Anderson-mixed) averaged updates, see the module docstring

    Does not raise on non-convergence: it emits a ``ConvergenceWarning`` with the
    reached residual (inside ``count_nonconvergence``: counts it instead), and the result
    carries ``residual`` and ``converged``.
    """
    x, eps, tol, max_iter = _checked_arguments(x, eps, tol, max_iter)
    eps, _ = _scale(x, eps, want_nearest=False)
    h, residual, iterations, _ = _sinkhorn(x, eps, tol, max_iter)
    return _outcome(x, eps, tol, h, residual, iterations)


def self_entropic_score(
    x,
    eps: float | None = None,
    tol: float = 1e-9,
    max_iter: int = 1000,
    *,
    return_info: bool = False,
):
    """Score estimate ∇log ρ(x_i) ≈ −(2/ε)(x_i − B(x_i)) from samples x (n, d) (Remark 3.10).

    Returns the (n, d) estimate, or ``(score, potential)`` with the
    ``SelfEntropicPotential`` (residual, iterations, converged) if ``return_info``.
    Non-convergence within ``max_iter`` emits a ``ConvergenceWarning`` stating the
    residual reached; it does not raise. ``eps <= 0`` raises a ValueError.

    The arguments are checked first (x, eps, tol, max_iter), then the data: at least half
    of the pairwise distances 0 (the default ε would be 0), and too small an ε (checked
    against each sample's nearest neighbour, see ``smallest_safe_eps``). When the kernel
    underflows at every sample, so that the estimate would be all zeros, a ValueError
    names eps and the smallest safe scale; when it underflows at some samples only
    (isolated points), their score is 0 and a ``ScoreResolutionWarning`` says so.
    An all-zero field is never a meaningful answer, hence the error; a few isolated
    samples are common at the default ε, hence only a warning.
    """
    x, eps, tol, max_iter = _checked_arguments(x, eps, tol, max_iter)
    if eps is None and x.shape[0] <= _STORED_MAX_POINTS:  # the estimate in one kernel call
        score, h, median, nearest, safe, residual, iterations = _default_eps_score(x, tol, max_iter)
        eps = _eps_from_median(median)
        if eps < safe:
            _check_resolution(nearest, eps)
        if return_info:
            return score, _outcome(x, eps, tol, h, residual, iterations)
        _report_nonconvergence(x, eps, tol, residual, iterations)
        return score
    eps, nearest = _scale(x, eps, want_nearest=True)
    _check_resolution(nearest, eps)
    h, residual, iterations, kernel = _sinkhorn(x, eps, tol, max_iter)
    solution = _outcome(x, eps, tol, h, residual, iterations)
    if kernel.size:  # the stored kernel matrix: B(x_i) without recomputing it
        score = _score_from_kernel(x, kernel, h, eps)
    else:
        score = solution.score()
    return (score, solution) if return_info else score
