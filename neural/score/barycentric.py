"""The score estimate from a self-entropic potential: the barycentric projection. numba kernels.

Score estimate (Remark 3.10, [Mor24]): for small ε, f ≈ −(ε/2) log ρ + const, and the
barycentric projection of the plan, B(x_i) = Σ_j softmax_j((f_j − ½‖x_i − x_j‖²)/ε) x_j,
equals x_i + (ε/2) ∇log ρ(x_i) + o(ε): to leading order the plan's conditional law
at x_i is ∝ ρ^{1/2}(y) N(y; x_i, εI), whose mean is x_i + ε ∇log(ρ^{1/2} ∗ N(0, εI))(x_i).
Hence

    ∇log ρ(x_i) ≈ −(2/ε) (x_i − B(x_i)).

``barycentric_score`` evaluates it at any query points; ``score_from_kernel`` at the samples
from Sinkhorn's stored kernel matrix; ``default_eps_score`` runs pair statistics, Sinkhorn
and the score at the default ε in one call.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from neural._kernels import JIT, block_bounds, exp_nonpositive, squared_distances, sum4
from neural.score.pairs import DEFAULT_EPS_FRACTION, blind_below, pair_statistics
from neural.score.sinkhorn import MAX_BLOCK, ROW_BLOCK, SINKHORN, make_row_sums

__all__ = ["barycentric_score", "default_eps_score", "score_from_kernel"]


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


_STORED_ROW_SUMS = make_row_sums(parallel=False, stored=True)


@njit(**JIT)
def score_from_kernel(x, kernel, h, eps):
    """−(2/ε)(x_i − B(x_i)) at the samples from the stored kernel matrix K (n, n):
    B(x_i) = Σ_j K_ij w_j x_j / Σ_j K_ij w_j, w_j = e^{h_j − max h}, by the row sums of
    Sinkhorn's updates (x, x_t and the scale are not read with the stored kernel)."""
    n, dim = x.shape
    x_t = np.ascontiguousarray(x.T)
    bounds = block_bounds(n, MAX_BLOCK, 1)
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


_SERIAL_STORED_SINKHORN = SINKHORN[False, True]


@njit(**JIT)
def default_eps_score(x, tol, max_iter):
    """The score at the default ε with the stored kernel, serially, in one call: (score, h,
    median squared distance, nearest squared distances, the smallest safe ε of
    ``smallest_safe_eps``, residual, iterations); when the median is not in (0, inf), it
    returns there with an empty score (the caller raises)."""
    median, nearest = pair_statistics(x)
    safe = blind_below(nearest).max()
    if not 0.0 < median < np.inf:
        return np.empty((0, x.shape[1])), np.empty(0), median, nearest, safe, np.inf, 0
    eps = DEFAULT_EPS_FRACTION * median  # as eps_from_median
    h, residual, iterations, kernel = _SERIAL_STORED_SINKHORN(x, eps, tol, max_iter)
    score = score_from_kernel(x, kernel, h, eps)
    return score, h, median, nearest, safe, residual, iterations


@njit(parallel=True, **JIT)
def barycentric_score(query, support, h, eps):
    """−(2/ε)(y_i − Σ_j softmax_j(h_j − ‖y_i − x_j‖²/(2ε)) x_j) for every query row y_i."""
    m = query.shape[0]
    n, dim = support.shape
    support_t = np.ascontiguousarray(support.T)
    scale = 0.5 / eps
    out = np.empty((m, dim))
    bounds = block_bounds(m, ROW_BLOCK, 1)
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
