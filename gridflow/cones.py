"""The discrete cone K_h = {D_h φ : H_h φ ≥ 0}, its tangent cone, and projections onto both.

Both projections are in the weighted norm ‖·‖_w. `method="cvxpy"` solves them as
quadratic programs in the potential φ (the reference); `method="fast"` is exact too:
in d = 1, K_h is the set of nondecreasing vectors, so the projection onto K_h is a
weighted isotonic regression, and the projection onto the tangent cone
Tan_T K_h = {p : p_{j} ≥ p_{j-1} wherever T_j = T_{j-1}} (only active constraints
bind) is an isotonic regression on each run of active constraints. One pool-adjacent-
violators kernel with a mask of imposed order constraints serves both.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from scipy import sparse
from scipy.sparse import linalg as sparse_linalg

from gridflow.problem import Problem
from gridflow.solvers import SolverError, solve_cvxpy

DEFAULT_ACTIVITY_TOLERANCE = 1e-9
METHODS = ("fast", "cvxpy")


@njit(cache=True)
def isotonic_regression(values, weights, imposed):
    """argmin Σ w_i (x_i - v_i)² s.t. x_i ≤ x_{i+1} wherever imposed[i] (weighted PAVA).

    values (n,), weights (n,) > 0, imposed (n - 1,) booleans. O(n).
    """
    size = values.shape[0]
    block_mean = np.empty(size)
    block_weight = np.empty(size)
    block_start = np.empty(size, dtype=np.int64)
    blocks = 0
    for i in range(size):
        block_mean[blocks] = values[i]
        block_weight[blocks] = weights[i]
        block_start[blocks] = i
        blocks += 1
        while (
            blocks > 1
            and imposed[block_start[blocks - 1] - 1]
            and block_mean[blocks - 2] > block_mean[blocks - 1]
        ):
            total = block_weight[blocks - 2] + block_weight[blocks - 1]
            block_mean[blocks - 2] = (
                block_weight[blocks - 2] * block_mean[blocks - 2]
                + block_weight[blocks - 1] * block_mean[blocks - 1]
            ) / total
            block_weight[blocks - 2] = total
            blocks -= 1
    result = np.empty(size)
    for b in range(blocks):
        end = block_start[b + 1] if b + 1 < blocks else size
        for i in range(block_start[b], end):
            result[i] = block_mean[b]
    return result


def _check_method(method: str):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def _check_tolerance(tolerance) -> float:
    tolerance = float(tolerance)
    if not (0.0 <= tolerance < 1.0):
        raise ValueError(
            f"activity_tolerance must be in [0, 1) (a bound on the discrete second "
            f"derivative below which a constraint counts as active), got {tolerance}"
        )
    return tolerance


def discrete_hessian(problem: Problem, T) -> np.ndarray:
    """H_h φ at the Hessian points for the map T = D_h φ, (m,) in d = 1."""
    T = problem.as_map(T)
    return np.diff(T[:, 0]) / problem.grid.spacing[0]


def active_constraints(problem: Problem, T, activity_tolerance=DEFAULT_ACTIVITY_TOLERANCE):
    """Mask of the Hessian points where the convexity constraint binds: H_h φ ≤ tolerance.

    activity_tolerance is absolute, on the discrete second derivative of φ (the slope of
    T): a point counts as active when (T_j - T_{j-1}) / h ≤ activity_tolerance.
    """
    return discrete_hessian(problem, T) <= _check_tolerance(activity_tolerance)


def project_onto_cone(problem: Problem, v, method: str = "fast") -> np.ndarray:
    """proj_{K_h}(v) in ‖·‖_w: the nearest discrete gradient of a convex potential."""
    _check_method(method)
    v = problem.as_map(v, "v")
    imposed = np.ones(problem.size - 1, dtype=bool)
    if method == "fast":
        return isotonic_regression(v[:, 0], problem.weights, imposed)[:, None]
    return _weighted_projection_cvxpy(problem, v, imposed)


def project_onto_tangent_cone(
    problem: Problem, T, v, activity_tolerance=DEFAULT_ACTIVITY_TOLERANCE, method: str = "fast"
) -> np.ndarray:
    """proj_{Tan_T K_h}(v) in ‖·‖_w (the projection of (cons.gf) and eq. (2.3))."""
    _check_method(method)
    v = problem.as_map(v, "v")
    imposed = active_constraints(problem, T, activity_tolerance)
    if method == "fast":
        return isotonic_regression(v[:, 0], problem.weights, imposed)[:, None]
    return _weighted_projection_cvxpy(problem, v, imposed)


def _weighted_projection_cvxpy(problem: Problem, v, imposed) -> np.ndarray:
    """min ‖T - v‖²_w s.t. T_{j+1} ≥ T_j for the imposed j, by cvxpy, then polished.

    In d = 1, T = D_h φ is a bijection between potentials (gauge φ_0 = 0) and maps, so
    the program is posed in T, where it is well conditioned. An interior-point
    solution is accurate to the square root of its duality gap only; `polish_on_active_set`
    makes it exact and certifies it by the KKT conditions.
    """
    import cvxpy as cp

    order = ordering_matrix(problem.size)[np.flatnonzero(imposed)]
    scaled_weights = problem.weights / problem.weights.max()
    T = cp.Variable(problem.size)
    objective = cp.sum_squares(cp.multiply(np.sqrt(scaled_weights), T - v[:, 0]))
    constraints = [order @ T >= 0] if order.shape[0] else []
    solve_cvxpy(
        cp.Problem(cp.Minimize(objective), constraints), "weighted projection", tolerance=1e-8
    )
    return polish_on_active_set(T.value, v[:, 0], scaled_weights, order)[:, None]


def ordering_matrix(size: int) -> sparse.csr_matrix:
    """C with (C T)_j = T_{j+1} - T_j, shape (size - 1, size)."""
    ones = np.ones(size - 1)
    return sparse.diags([-ones, ones], [0, 1], shape=(size - 1, size), format="csr")


def polish_on_active_set(candidate, v, weights, constraints, threshold=1e-6, max_rounds=100):
    """Exact solution of min ‖x - v‖²_w s.t. C x ≥ 0, started from an approximate one.

    A primal-dual active-set iteration seeded by the constraints with (C x)_j ≤ threshold
    at the candidate: on the current active set A the equality-constrained problem is
    solved exactly (x = v + W⁻¹ Cₐᵀ μ with Cₐ W⁻¹ Cₐᵀ μ = -Cₐ v); violated constraints
    join A, those with negative multipliers leave it. The result is returned only with
    its KKT certificate (C x ≥ 0, μ ≥ 0 up to roundoff); SolverError otherwise.
    """
    if constraints.shape[0] == 0:
        return np.array(v, dtype=np.float64)
    inverse_weights = sparse.diags(1.0 / weights)
    scale = np.abs(v).max() + 1.0
    active = constraints @ candidate <= threshold
    for _ in range(max_rounds):
        rows = constraints[np.flatnonzero(active)]
        multipliers = np.zeros(constraints.shape[0])
        if rows.shape[0]:
            normal = (rows @ inverse_weights @ rows.T).tocsc()
            multipliers[active] = np.atleast_1d(sparse_linalg.spsolve(normal, -(rows @ v)))
        polished = v + inverse_weights @ (constraints.T @ multipliers)
        violated = constraints @ polished < -1e-12 * scale
        negative = multipliers < -1e-14 * scale
        if not (violated.any() or negative.any()):
            return polished
        active = (active | violated) & ~negative
    raise SolverError(
        "weighted projection: the active-set polish of the cvxpy solution found no point "
        f"satisfying the KKT conditions in {max_rounds} rounds"
    )
