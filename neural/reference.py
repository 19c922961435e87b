"""Plain-numpy versions of the score and energy-distance kernels (same formulas, vectorized).

They serve twice: as an independent implementation the tests compare the kernels
against, and as the baseline of ``validation/benchmark_neural.py``. Inputs are
assumed valid (no checks); shapes as in the public functions.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

# --------------------------------------------------------------------------- score


def self_entropic_score(x, eps, tol=1e-6, max_iter=1000):
    """Symmetric log-domain Sinkhorn, then the score -(2/ε)(x - B(x)); (score, iterations)."""
    n = x.shape[0]
    squared = np.sum(x * x, axis=1)
    cost = 0.5 * np.maximum(squared[:, None] + squared[None, :] - 2.0 * (x @ x.T), 0.0)
    kernel_log = -cost / eps
    h = np.zeros(n)
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007
        update = np.log(n) - logsumexp(kernel_log + h[None, :], axis=1)
        residual = np.max(np.abs(h - update))
        h = 0.5 * (h + update)
        if residual <= tol:
            break
    logits = kernel_log + h[None, :]
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    weights /= weights.sum(axis=1, keepdims=True)
    return -(2.0 / eps) * (x - weights @ x), iterations


# --------------------------------------------------------------------------- MMD


def _mean_distance(a, b, block=2048):
    total = 0.0
    for start in range(0, a.shape[0], block):
        chunk = a[start : start + block]
        diff = chunk[:, None, :] - b[None, :, :]
        total += np.sqrt(np.einsum("ijk,ijk->ij", diff, diff)).sum()
    return total / (a.shape[0] * b.shape[0])


def energy_distance(x, y, block=2048):
    """2 mean‖x_i - y_j‖ - mean‖x_i - x_j‖ - mean‖y_i - y_j‖ (V-statistic), blocked over rows."""
    return (
        2.0 * _mean_distance(x, y, block)
        - _mean_distance(x, x, block)
        - _mean_distance(y, y, block)
    )
