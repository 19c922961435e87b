"""The symmetric Sinkhorn solver of the self-entropic OT problem (Remark 3.10): numba kernels.

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
change between updates: up to ``neural.score.estimator.STORED_MAX_POINTS`` samples it is
computed once (its upper triangle, mirrored) and each update is one pass over it, n²
multiply-adds and n exponentials instead of n² exponentials; for larger n its rows are
recomputed at every update. The residual is ‖h − T(h)‖_∞ = max_i |log(n (π 1)_i)|, the
largest relative violation of the marginal constraint in log scale (dimensionless).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from neural._kernels import JIT, block_bounds, dot4, exp_nonpositive, squared_distances, sum4

__all__ = ["MAX_BLOCK", "ROW_BLOCK", "SINKHORN", "make_row_sums"]

ROW_BLOCK = 32
"""Rows per parallel work item (row boundaries depend on n only)."""
MAX_BLOCK = 2**62
"""A block size that makes every n one block."""


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


def make_row_sums(parallel, stored):
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
    row_sums = make_row_sums(parallel, stored)
    block = ROW_BLOCK if parallel else MAX_BLOCK  # the row sums do not depend on the blocks

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


SINKHORN = {
    (parallel, stored): _make_sinkhorn(parallel, stored)
    for parallel in (False, True)
    for stored in (False, True)
}
"""The Sinkhorn kernels by (parallel, stored kernel matrix)."""
