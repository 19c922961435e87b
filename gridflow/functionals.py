"""The discrete lifted relative entropy F_h and its gradient in the weighted norm.

F(T) = KL(T#ϱ0 | γ) = ∫ ϱ0 log ϱ0 - ∫ ϱ0 log det DT + ∫ V(T) dϱ0 + log Z_γ (the
Lagrangian form: the density of T#ϱ0 at T(x) is ϱ0(x) / det DT(x)). Discretized
(docs/mathematics.md, 'The discrete relative entropy') with the quadratures w and m of `Problem`:

    F_h(T) = Σ_i w_i V(T_i) - Σ_j m_j log det (B_h T)_j + Σ_j m_j log ϱ0_j + log Z_γ,

with B_h T = H_h φ the discrete Hessian (`operators`): (T_j - T_{j-1}) / h in d = 1,
the symmetric d × d matrix at each interior node in d = 2, 3 ([[a, b], [b, c]] in d = 2; its
symmetric part when T is not a discrete gradient field, which does not change F_h on
gradient fields nor its gradient there).

F_h is convex, and λ-convex in ‖·‖_w when V is λ-convex. Its gradient in the weighted
inner product, (1/w_i) ∂F_h/∂T_i, is the discrete counterpart of the lifted gradient
∇F(T) = (∇ log ϱ_t + ∇V) ∘ T of Lemma B.6, which for T = ∇φ reads
(D²φ)⁻¹ ∇(log ϱ0 - log det D²φ) + ∇V(∇φ).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from scipy import sparse
from scipy.linalg import eigvalsh_tridiagonal
from scipy.sparse.linalg import eigsh

from gridflow.operators import block_diagonal, hessian_entries, hessian_shape, map_shape
from gridflow.potentials import free_nodes, metric
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


@njit(cache=True)
def _hessian_entries_2d(T, i, j, h0, h1):
    """(a, b, c) of B_h T at the interior node surrounded by the cells (i..i+1, j..j+1)."""
    a = (T[i + 1, j, 0] + T[i + 1, j + 1, 0] - T[i, j, 0] - T[i, j + 1, 0]) / (2.0 * h0)
    b_first = (T[i, j + 1, 0] + T[i + 1, j + 1, 0] - T[i, j, 0] - T[i + 1, j, 0]) / (2.0 * h1)
    b_second = (T[i + 1, j, 1] + T[i + 1, j + 1, 1] - T[i, j, 1] - T[i, j + 1, 1]) / (2.0 * h0)
    c = (T[i, j + 1, 1] + T[i + 1, j + 1, 1] - T[i, j, 1] - T[i + 1, j, 1]) / (2.0 * h1)
    return a, 0.5 * (b_first + b_second), c


@njit(cache=True)
def log_det_term_2d(T, hessian_weights, h0, h1):
    """-Σ_j m_j log det (B_h T)_j (d = 2); inf unless every (B_h T)_j is positive definite.

    T (n0, n1, 2) on the cell grid, hessian_weights (n0 - 1, n1 - 1) on the interior nodes.
    """
    value = 0.0
    for i in range(T.shape[0] - 1):
        for j in range(T.shape[1] - 1):
            a, b, c = _hessian_entries_2d(T, i, j, h0, h1)
            determinant = a * c - b * b
            if not (a > 0.0 and determinant > 0.0):
                return np.inf
            value -= hessian_weights[i, j] * np.log(determinant)
    return value


@njit(cache=True)
def log_det_gradient_2d(T, hessian_weights, h0, h1):
    """The gradient in T of -Σ_j m_j log det (B_h T)_j (d = 2), shape of T; NaNs if some
    (B_h T)_j is not positive definite.

    d(-log det X) = -tr(X⁻¹ dX): with X = [[a, b], [b, c]] the partial derivatives in
    (a, b, c) are (-c, 2b, -a) / det, scattered onto the four cells around each node with
    the stencil of `_hessian_entries_2d`. (A serial loop: on 2 cores a parallel gather was
    slower, its threads costing more than the arithmetic.)
    """
    gradient = np.zeros_like(T)
    for p in range(T.shape[0] - 1):
        for q in range(T.shape[1] - 1):
            a, b, c = _hessian_entries_2d(T, p, q, h0, h1)
            determinant = a * c - b * b
            if not (a > 0.0 and determinant > 0.0):
                gradient[:] = np.nan
                return gradient
            scale = hessian_weights[p, q] / determinant
            along_a = -c * scale / (2.0 * h0)  # on T_1, through a
            first_b = b * scale / (2.0 * h1)  # on T_1, through b
            second_b = b * scale / (2.0 * h0)  # on T_2, through b
            along_c = -a * scale / (2.0 * h1)  # on T_2, through c
            gradient[p, q, 0] += -along_a - first_b
            gradient[p + 1, q, 0] += along_a - first_b
            gradient[p, q + 1, 0] += -along_a + first_b
            gradient[p + 1, q + 1, 0] += along_a + first_b
            gradient[p, q, 1] += -second_b - along_c
            gradient[p + 1, q, 1] += second_b - along_c
            gradient[p, q + 1, 1] += -second_b + along_c
            gradient[p + 1, q + 1, 1] += second_b + along_c
    return gradient


def _entropy_constant(problem: Problem) -> float:
    return float(problem.hessian_weights @ problem.log_source) + problem.target.log_normalizer


def discrete_hessian(problem: Problem, T) -> np.ndarray:
    """The discrete Hessian B_h T = H_h φ at the interior nodes as matrices, (m, d, d)."""
    T = problem.as_map(T)
    return _symmetric_matrices(problem, problem.map_hessian_operator @ T.ravel())


def _symmetric_matrices(problem: Problem, entries: np.ndarray) -> np.ndarray:
    """The symmetric matrices (m, d, d) of Hessian entries in the layout of
    `operators.hessian_entries`, given flat (m s,)."""
    rows, columns = hessian_entries(problem.dim)
    entries = entries.reshape(problem.hessian_points.shape[0], rows.size)
    matrices = np.empty((entries.shape[0], problem.dim, problem.dim))
    matrices[:, rows, columns] = entries
    matrices[:, columns, rows] = entries
    return matrices


def _entry_basis(dim: int) -> np.ndarray:
    """E_k (s, d, d): X = Σ_k x_k E_k for the entries x of `hessian_entries` (an off-diagonal
    entry sits at (p, q) and (q, p))."""
    rows, columns = hessian_entries(dim)
    basis = np.zeros((rows.size, dim, dim))
    basis[np.arange(rows.size), rows, columns] = 1.0
    basis[np.arange(rows.size), columns, rows] = 1.0
    return basis


def _log_det_by_cholesky(problem: Problem, T):
    """(X, -Σ_j m_j log det X_j) for X = B_h T, any d; the value is inf unless every X_j is
    positive definite (their Cholesky factorizations exist)."""
    X = discrete_hessian(problem, T)
    try:
        factors = np.linalg.cholesky(X)
    except np.linalg.LinAlgError:
        return X, np.inf
    diagonals = np.diagonal(factors, axis1=1, axis2=2)
    if not np.all(diagonals > 0.0):
        return X, np.inf
    return X, float(-2.0 * problem.hessian_weights @ np.log(diagonals).sum(axis=1))


def _log_det_gradient_by_inverse(problem: Problem, T) -> np.ndarray:
    """The gradient in T of -Σ_j m_j log det X_j, any d, (n, d): B_hᵀ of -m_j tr(X_j⁻¹ E_k)
    (d(-log det X) = -tr(X⁻¹ dX)); NaNs outside K_h."""
    X, value = _log_det_by_cholesky(problem, T)
    if not np.isfinite(value):
        return np.full(T.shape, np.nan)
    inverse = np.linalg.inv(X)
    in_entries = -problem.hessian_weights[:, None] * np.einsum(
        "jpq,kqp->jk", inverse, _entry_basis(problem.dim)
    )
    return (problem.map_hessian_operator.T @ in_entries.ravel()).reshape(T.shape)


def log_det_term(problem: Problem, T) -> float:
    """-Σ_j m_j log det (B_h T)_j, by the numba kernel of the dimension (d = 1, 2) or by
    batched Cholesky factorizations (d = 3); inf outside K_h."""
    T = problem.as_map(T)
    if problem.dim == 1:
        return log_det_term_1d(T[:, 0], problem.hessian_weights, problem.grid.spacing[0])
    if problem.dim == 2:
        return log_det_term_2d(_on_cells(problem, T), _on_nodes(problem), *problem.grid.spacing)
    return _log_det_by_cholesky(problem, T)[1]


def log_det_gradient(problem: Problem, T) -> np.ndarray:
    """The Euclidean gradient in T of -Σ_j m_j log det (B_h T)_j, (n, d).

    Raises OutsideConeError when some (B_h T)_j is not positive definite.
    """
    T = problem.as_map(T)
    if problem.dim == 1:
        gradient = log_det_gradient_1d(T[:, 0], problem.hessian_weights)[:, None]
    elif problem.dim == 2:
        gradient = log_det_gradient_2d(
            _on_cells(problem, T), _on_nodes(problem), *problem.grid.spacing
        ).reshape(T.shape)
    else:
        gradient = _log_det_gradient_by_inverse(problem, T)
    if np.isnan(gradient[0, 0]):
        raise OutsideConeError(
            "the discrete Hessian of the map is not positive definite at every interior node "
            "(in d = 1: the map is not strictly increasing): F_h is +inf there"
        )
    return gradient


def _on_cells(problem: Problem, T) -> np.ndarray:
    return np.ascontiguousarray(T).reshape(*map_shape(problem.grid), problem.dim)


def _on_nodes(problem: Problem) -> np.ndarray:
    return problem.hessian_weights.reshape(hessian_shape(problem.grid))


def kl_energy(problem: Problem, T) -> float:
    """F_h(T), the discrete KL(T#ϱ0 | γ); +inf when T is not strictly inside K_h."""
    T = problem.as_map(T)
    potential = float(problem.weights @ problem.target.V(T))
    return potential + log_det_term(problem, T) + _entropy_constant(problem)


def kl_gradient(problem: Problem, T) -> np.ndarray:
    """The gradient of F_h in the weighted inner product, (1/w_i) ∂F_h/∂T_i, shape (n, d).

    Raises OutsideConeError when T is not strictly inside K_h (F_h is +inf there).
    """
    T = problem.as_map(T)
    return problem.target.gradient(T) + log_det_gradient(problem, T) / problem.weights[:, None]


def log_det_curvature(problem: Problem, T) -> np.ndarray:
    """The Hessian blocks of -m_j log det X_j in the entries of X_j = (B_h T)_j, (m, s, s).

    The quadratic form m tr(X⁻¹ dX X⁻¹ dX): the block [k, l] is m tr(X⁻¹ E_k X⁻¹ E_l), E_k the
    matrix of entry k (`hessian_entries`; `_curvature_by_inverse`, used in d = 3). d = 1:
    m / X². d = 2, entries (a, b, c) and X⁻¹ = [[p, q], [q, r]]: m [[p², 2pq, q²],
    [2pq, 2(q² + pr), 2qr], [q², 2qr, r²]]. Raises OutsideConeError unless every X_j is
    positive definite (in d = 1, 2 by the sign tests of the numba kernels, so that the
    domains agree).
    """
    m = problem.hessian_weights
    if problem.dim == 3:
        X, value = _log_det_by_cholesky(problem, T)
        if not np.isfinite(value):
            raise OutsideConeError("the map is not strictly inside K_h: F_h is +inf there")
        return _curvature_by_inverse(m, X)
    X = discrete_hessian(problem, T)
    if problem.dim == 1:
        if not np.all(X[:, 0, 0] > 0.0):
            raise OutsideConeError("the map is not strictly increasing: F_h is +inf there")
        return (m / X[:, 0, 0] ** 2)[:, None, None]
    a, b, c = X[:, 0, 0], X[:, 0, 1], X[:, 1, 1]
    determinant = a * c - b * b
    if not np.all((a > 0.0) & (determinant > 0.0)):
        raise OutsideConeError("the map is not strictly inside K_h: F_h is +inf there")
    p, q, r = c / determinant, -b / determinant, a / determinant
    rows = [
        [p * p, 2 * p * q, q * q],
        [2 * p * q, 2 * (q * q + p * r), 2 * q * r],
        [q * q, 2 * q * r, r * r],
    ]
    return m[:, None, None] * np.array(rows).transpose(2, 0, 1)


def _curvature_by_inverse(weights, X) -> np.ndarray:
    """m_j tr(X_j⁻¹ E_k X_j⁻¹ E_l) for positive definite X (m, d, d), any d: (m, s, s)."""
    inverse_times_entry = np.einsum("jpq,kqr->jkpr", np.linalg.inv(X), _entry_basis(X.shape[1]))
    return weights[:, None, None] * np.einsum(
        "jkpr,jlrp->jkl", inverse_times_entry, inverse_times_entry
    )


def kl_hessian(problem: Problem, T) -> sparse.csr_matrix:
    """The Euclidean Hessian ∂²F_h/∂T², (n d, n d), at T strictly inside K_h.

    blockdiag(w_i ∇²V(T_i)) + B_hᵀ blockdiag(log_det_curvature) B_h; tridiagonal in d = 1.
    """
    T = problem.as_map(T)
    if not np.isfinite(log_det_term(problem, T)):
        raise OutsideConeError("the map is not strictly inside K_h: F_h is +inf there")
    B = problem.map_hessian_operator
    potential = block_diagonal(problem.weights[:, None, None] * problem.target.hessian(T))
    return (potential + B.T @ block_diagonal(log_det_curvature(problem, T)) @ B).tocsr()


def weighted_curvature_bound(problem: Problem, T) -> float:
    """L(T) = λmax(W^{-1/2} ∇²F_h(T) W^{-1/2}) on the maps of K_h's span: the explicit
    scheme's step must be < 2/L. In d ≥ 2, the generalized eigenvalue problem
    (D_hᵀ ∇²F_h D_h) p = L (D_hᵀ W D_h) p in the gauge."""
    hessian = kl_hessian(problem, T)
    if problem.dim >= 2:
        G, free = problem.gradient_operator, free_nodes(problem)
        stiffness = (G.T @ hessian @ G).tocsr()[free][:, free]
        mass = metric(problem)[free][:, free]
        return float(eigsh(stiffness.tocsc(), k=1, M=mass.tocsc(), which="LA")[0][0])
    scale = 1.0 / np.sqrt(problem.weights)
    diagonal = hessian.diagonal() * scale**2
    off_diagonal = hessian.diagonal(1) * scale[1:] * scale[:-1]
    last = diagonal.size - 1
    return float(
        eigvalsh_tridiagonal(diagonal, off_diagonal, select="i", select_range=(last, last))[0]
    )
