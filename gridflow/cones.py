"""The discrete cone K_h = {D_h φ : H_h φ ⪰ 0}, its tangent cone, and projections onto both.

Both projections are in the weighted norm ‖·‖_w. `method="cvxpy"` solves them as
conic programs (the reference); `method="fast"` is exact too:

- d = 1: K_h is the set of nondecreasing vectors, so the projection onto K_h is a
  weighted isotonic regression, and the projection onto the tangent cone
  Tan_T K_h = {p : p_{j} ≥ p_{j-1} wherever T_j = T_{j-1}} (only active constraints
  bind) is an isotonic regression on each run of active constraints. One pool-adjacent-
  violators kernel with a mask of imposed order constraints serves both.
- d = 2, 3: K_h lies in the discrete gradient fields, so both projections factor through
  the weighted Helmholtz projection P (one sparse solve, `potentials`): when P v already
  satisfies the constraints it is the answer; otherwise the cvxpy program is solved.

Tangent cone in d = 2, 3 (the d × d PSD cone at X_j = H_h φ_j): where X_j is positive
definite, no constraint; where X_j has a kernel spanned by the columns of U_j,
U_jᵀ(H_h p)_j U_j ⪰ 0 — a linear constraint uᵀ(H_h p)_j u ≥ 0 for a one-dimensional kernel,
a 2 × 2 (second-order) cone for a plane, (H_h p)_j ⪰ 0 where X_j = 0. A point counts as
rank-deficient when an eigenvalue of X_j is at most `activity_tolerance`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit
from scipy import sparse
from scipy.sparse import linalg as sparse_linalg

from gridflow.checks import as_float
from gridflow.functionals import discrete_hessian
from gridflow.operators import hessian_entries
from gridflow.potentials import helmholtz_projection
from gridflow.problem import Problem
from gridflow.solvers import (
    SolverError,
    map_and_hessian_expressions,
    solve_cvxpy,
    symmetric_expressions,
)

DEFAULT_ACTIVITY_TOLERANCE = 1e-9
FEASIBILITY_TOLERANCE = 1e-10  # relative roundoff allowed when testing a Helmholtz projection
OUTSIDE_CONE_TOLERANCE = 1e-6
"""A map whose discrete Hessian has an eigenvalue below -(activity tolerance + this × (1 +
its largest entry)) is not in K_h (`active_set`); above it, within a conic solver's
accuracy, the point counts as active."""
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


def check_method(method: str) -> str:
    """``method`` if it is one of METHODS (the projection's solvers), else ValueError."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method


def _check_tolerance(tolerance) -> float:
    tolerance = as_float(tolerance, "activity_tolerance")
    if not (0.0 <= tolerance < 1.0):
        raise ValueError(
            f"activity_tolerance must be in [0, 1) (a bound on the discrete second "
            f"derivative below which a constraint counts as active), got {tolerance}"
        )
    return tolerance


@dataclass(frozen=True)
class ActiveSet:
    """Where the convexity constraint binds at a map T, with the tangent cone's data.

    nullity (m,): how many eigenvalues of X_j = (H_h φ)_j are ≤ the tolerance (0: X_j is
    positive definite, no constraint); eigenvectors (m, d, d): X_j's eigenvectors as
    columns, by increasing eigenvalue, so that the first nullity[j] span its kernel U_j. The
    tangent cone asks U_jᵀ (H_h p)_j U_j ⪰ 0 at every point with nullity ≥ 1.
    """

    nullity: np.ndarray
    eigenvectors: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        return self.nullity > 0

    @property
    def count(self) -> int:
        return int(self.mask.sum())

    @property
    def rank_zero(self) -> np.ndarray:
        """Points where every eigenvalue of X_j is ≤ the tolerance."""
        return self.nullity == self.eigenvectors.shape[1]

    @property
    def rank_one(self) -> np.ndarray:
        """Points where X_j has exactly one eigenvalue above the tolerance (in d = 2: exactly
        one small eigenvalue, whose eigenvector is `kernel_directions`)."""
        return self.nullity == self.eigenvectors.shape[1] - 1

    @property
    def kernel_directions(self) -> np.ndarray:
        """The eigenvector of X_j's smallest eigenvalue, (m, d)."""
        return self.eigenvectors[:, :, 0]


def active_set(problem: Problem, T, activity_tolerance=DEFAULT_ACTIVITY_TOLERANCE) -> ActiveSet:
    """The rank-deficient points of the discrete Hessian of T (see the module docstring).

    activity_tolerance is absolute, on the eigenvalues of the discrete Hessian of φ (in
    d = 1 the slope of T: a point is active when (T_j - T_{j-1}) / h ≤ tolerance). Raises
    ValueError when T is not in K_h: an eigenvalue below -tolerance by more than
    OUTSIDE_CONE_TOLERANCE relative to the largest entry (the conic projections onto K_h
    return eigenvalues of -1.7e-8 at points that belong to its boundary).
    """
    tolerance = _check_tolerance(activity_tolerance)
    X = discrete_hessian(problem, T)
    eigenvalues, eigenvectors = np.linalg.eigh(X)
    solver_accuracy = OUTSIDE_CONE_TOLERANCE * (1.0 + np.abs(X).max())
    if eigenvalues[:, 0].min() < -(tolerance + solver_accuracy):
        raise ValueError(
            f"T is not in K_h: its discrete Hessian has an eigenvalue "
            f"{eigenvalues[:, 0].min():.3g} < 0 (in d = 1: T decreases somewhere); the tangent "
            "cone is defined at maps of the cone"
        )
    return ActiveSet(nullity=(eigenvalues <= tolerance).sum(axis=1), eigenvectors=eigenvectors)


def active_constraints(problem: Problem, T, activity_tolerance=DEFAULT_ACTIVITY_TOLERANCE):
    """Mask of the Hessian points where the convexity constraint binds (see `active_set`)."""
    return active_set(problem, T, activity_tolerance).mask


def smallest_eigenvalues(problem: Problem, T) -> np.ndarray:
    """λmin of the discrete Hessian at every interior node, (m,): T ∈ K_h iff all are ≥ 0."""
    return np.linalg.eigvalsh(discrete_hessian(problem, T))[:, 0]


def project_onto_cone(problem: Problem, v, method: str = "fast") -> np.ndarray:
    """proj_{K_h}(v) in ‖·‖_w: the nearest discrete gradient of a convex potential."""
    check_method(method)
    v = problem.as_map(v, "v")
    everywhere = np.ones(problem.hessian_points.shape[0], dtype=bool)
    if problem.dim >= 2:
        identity = np.broadcast_to(np.eye(problem.dim), (everywhere.size, problem.dim, problem.dim))
        cone = ActiveSet(np.full(everywhere.size, problem.dim), identity)
        return _project_onto_gradient_fields(problem, v, cone, method)
    if method == "fast":
        return isotonic_regression(v[:, 0], problem.weights, everywhere)[:, None]
    return _weighted_projection_cvxpy(problem, v, everywhere)


def project_onto_tangent_cone(
    problem: Problem, T, v, activity_tolerance=DEFAULT_ACTIVITY_TOLERANCE, method: str = "fast"
) -> np.ndarray:
    """proj_{Tan_T K_h}(v) in ‖·‖_w (the projection of (cons.gf) and eq. (2.3))."""
    check_method(method)
    v = problem.as_map(v, "v")
    active = active_set(problem, T, activity_tolerance)
    if problem.dim >= 2:
        return _project_onto_gradient_fields(problem, v, active, method)
    if method == "fast":
        return isotonic_regression(v[:, 0], problem.weights, active.mask)[:, None]
    return _weighted_projection_cvxpy(problem, v, active.mask)


def _constraint_values(problem: Problem, field, active: ActiveSet) -> np.ndarray:
    """The tangent-cone constraints at a field: λmin(U_jᵀ X_j U_j) at every active point."""
    X = discrete_hessian(problem, field)
    values = []
    for nullity in range(1, problem.dim + 1):
        rows = active.nullity == nullity
        U = active.eigenvectors[rows][:, :, :nullity]
        values.append(np.linalg.eigvalsh(np.einsum("jpa,jpq,jqb->jab", U, X[rows], U))[:, 0])
    return np.concatenate(values)


def _project_onto_gradient_fields(problem: Problem, v, active: ActiveSet, method: str):
    """Projection onto the cone {D_h p : constraints of `active` on H_h p} (d ≥ 2)."""
    if method == "fast":
        _, projected = helmholtz_projection(problem, v)
        values = _constraint_values(problem, projected, active)
        scale = 1.0 + np.abs(discrete_hessian(problem, projected)).max()
        if values.size == 0 or values.min() >= -FEASIBILITY_TOLERANCE * scale:
            return projected
    return problem.map_of(_projection_potential_cvxpy(problem, v, active))


def bilinear_coefficients(u: np.ndarray, w: np.ndarray) -> np.ndarray:
    """c (k, s) with uᵀ X w = c · x for each row pair of u, w (k, d), X the symmetric matrix
    of the Hessian entries x in the layout of `operators.hessian_entries`."""
    rows, columns = hessian_entries(u.shape[1])
    coefficients = u[:, rows] * w[:, columns]
    off = rows != columns
    coefficients[:, off] += u[:, columns[off]] * w[:, rows[off]]
    return coefficients


def _projection_potential_cvxpy(problem: Problem, v, active: ActiveSet) -> np.ndarray:
    """min ‖D_h p - v‖²_w s.t. the tangent-cone constraints of `active`, as a cvxpy program.

    Posed in p with the gauge p = 0 at `Problem.gauge_nodes`, with U_jᵀ (H_h p)_j U_j ⪰ 0 at
    the active points: a linear constraint where the kernel U_j is one vector u
    (uᵀ(H_h p)_j u ≥ 0), the second-order cone ‖(a - c, 2b)‖ ≤ a + c of the 2 × 2 matrix
    [[a, b], [b, c]] = U_jᵀ(H_h p)_j U_j ⪰ 0 where it is a plane, and (H_h p)_j ⪰ 0, a 3 × 3
    semidefinite constraint, where it is all of R³.
    """
    import cvxpy as cp  # loads in about a second: imported where a reference solve runs

    p = cp.Variable(problem.gradient_operator.shape[1])
    field, hessian = map_and_hessian_expressions(problem, p)
    constraints = [p[problem.gauge_nodes] == 0]
    U = active.eigenvectors

    def along(rows, first, second):  # u_jᵀ (H_h p)_j w_j at the given rows
        coefficients = bilinear_coefficients(U[rows, :, first], U[rows, :, second])
        return cp.sum(cp.multiply(coefficients, hessian[rows]), axis=1)

    lines = np.flatnonzero(active.nullity == 1)
    if lines.size:
        constraints.append(along(lines, 0, 0) >= 0)
    planes = np.flatnonzero(active.nullity == 2)
    if planes.size:
        a, b, c = along(planes, 0, 0), along(planes, 0, 1), along(planes, 1, 1)
        constraints.append(cp.SOC(a + c, cp.vstack([a - c, 2 * b]), axis=0))
    everywhere = np.flatnonzero(active.nullity == 3)
    if everywhere.size:
        constraints += [matrix >> 0 for matrix in symmetric_expressions(hessian[everywhere])]
    scaled_weights = problem.weights / problem.weights.max()
    objective = cp.sum_squares(cp.multiply(np.sqrt(scaled_weights)[:, None], field - v))
    solve_cvxpy(cp.Problem(cp.Minimize(objective), constraints), "weighted projection")
    return np.asarray(p.value)


def _weighted_projection_cvxpy(problem: Problem, v, imposed) -> np.ndarray:
    """min ‖T - v‖²_w s.t. T_{j+1} ≥ T_j for the imposed j, by cvxpy, then polished.

    In d = 1, T = D_h φ is a bijection between potentials (gauge φ_0 = 0) and maps, so
    the program is posed in T, where it is well conditioned. An interior-point
    solution is accurate to the square root of its duality gap only; `polish_on_active_set`
    makes it exact and certifies it by the KKT conditions.
    """
    import cvxpy as cp  # loads in about a second: imported where a reference solve runs

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
