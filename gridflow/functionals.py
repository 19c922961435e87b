"""The discrete lifted relative entropy F_h and its gradient in the weighted norm.

F(T) = KL(T#ϱ0 | γ) = ∫ ϱ0 log ϱ0 - ∫ ϱ0 log det DT + ∫ V(T) dϱ0 + log Z_γ (the
Lagrangian form: the density of T#ϱ0 at T(x) is ϱ0(x) / det DT(x)). Discretized
(DESIGN §3) with the quadratures w and m of `Problem`, in d = 1:

    F_h(T) = Σ_i w_i V(T_i) - Σ_j m_j log (H_h φ)_j + Σ_j m_j log ϱ0_j + log Z_γ,
    (H_h φ)_j = (T_j - T_{j-1}) / h.

F_h is convex, and λ-convex in ‖·‖_w when V is λ-convex. Its gradient in the weighted
inner product, (1/w_i) ∂F_h/∂T_i, is the discrete counterpart of the lifted gradient
∇F(T) = (∇ log ϱ_t + ∇V) ∘ T of Lemma B.6, which in d = 1 reads
(ϱ0'/ϱ0 - T''/T') / T' + V'(T).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from scipy import sparse

from gridflow.problem import Problem


class OutsideConeError(ValueError):
    """The map is not strictly inside K_h: its discrete Hessian has a zero or negative entry."""


@njit(cache=True)
def log_det_term_1d(T, hessian_weights, spacing):
    """-Σ_j m_j log((T_j - T_{j-1}) / h) (d = 1); inf when T is not strictly increasing."""
    value = 0.0
    for j in range(T.shape[0] - 1):
        increment = T[j + 1] - T[j]
        if not increment > 0.0:
            return np.inf
        value -= hessian_weights[j] * np.log(increment / spacing)
    return value


@njit(cache=True)
def log_det_gradient_1d(T, hessian_weights):
    """The gradient in T of -Σ_j m_j log((T_j - T_{j-1}) / h) (d = 1); NaNs if T is not
    strictly increasing."""
    size = T.shape[0]
    gradient = np.zeros(size)
    for j in range(size - 1):
        increment = T[j + 1] - T[j]
        if not increment > 0.0:
            gradient[:] = np.nan
            return gradient
        slope = hessian_weights[j] / increment
        gradient[j] += slope
        gradient[j + 1] -= slope
    return gradient


def _entropy_constant(problem: Problem) -> float:
    return float(problem.hessian_weights @ problem.log_source) + problem.target.log_normalizer


def kl_energy(problem: Problem, T) -> float:
    """F_h(T), the discrete KL(T#ϱ0 | γ); +inf when T is not strictly inside K_h."""
    T = problem.as_map(T)
    log_det = log_det_term_1d(T[:, 0], problem.hessian_weights, problem.grid.spacing[0])
    potential = float(problem.weights @ problem.target.V(T))
    return potential + log_det + _entropy_constant(problem)


def kl_gradient(problem: Problem, T) -> np.ndarray:
    """The gradient of F_h in the weighted inner product, (1/w_i) ∂F_h/∂T_i, shape (n, d).

    Raises OutsideConeError when T is not strictly inside K_h (F_h is +inf there).
    """
    T = problem.as_map(T)
    gradient = log_det_gradient_1d(T[:, 0], problem.hessian_weights)
    if np.isnan(gradient[0]):
        raise OutsideConeError("the map is not strictly increasing: F_h is +inf there")
    return problem.target.grad_V(T) + (gradient / problem.weights)[:, None]


def kl_hessian(problem: Problem, T) -> sparse.csr_matrix:
    """The Euclidean Hessian ∂²F_h/∂T² (tridiagonal in d = 1), at T strictly inside K_h."""
    T = problem.as_map(T)
    increments = np.diff(T[:, 0])
    if np.any(increments <= 0):
        raise OutsideConeError("the map is not strictly increasing: F_h is +inf there")
    curvature = problem.hessian_weights / increments**2
    differences = sparse.diags(
        [-np.ones(T.shape[0] - 1), np.ones(T.shape[0] - 1)],
        [0, 1],
        shape=(T.shape[0] - 1, T.shape[0]),
    )
    potential = sparse.diags(problem.weights * problem.target.hessian(T)[:, 0, 0])
    return (potential + differences.T @ sparse.diags(curvature) @ differences).tocsr()


def weighted_curvature_bound(problem: Problem, T) -> float:
    """L(T) = λmax(W^{-1/2} ∇²F_h(T) W^{-1/2}): the explicit scheme's step must be < 2/L."""
    from scipy.linalg import eigvalsh_tridiagonal

    hessian = kl_hessian(problem, T)
    scale = 1.0 / np.sqrt(problem.weights)
    diagonal = hessian.diagonal() * scale**2
    off_diagonal = hessian.diagonal(1) * scale[1:] * scale[:-1]
    last = diagonal.size - 1
    return float(
        eigvalsh_tridiagonal(diagonal, off_diagonal, select="i", select_range=(last, last))[0]
    )
