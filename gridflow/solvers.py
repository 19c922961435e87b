"""Calling cvxpy: one place for the solver choice, its tolerances and status checks."""

from __future__ import annotations

DEFAULT_SOLVER = "CLARABEL"
DEFAULT_TOLERANCE = 1e-9


def clarabel_settings(tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Clarabel's stopping tolerances, all tied to one number."""
    return {
        "tol_gap_abs": tolerance,
        "tol_gap_rel": tolerance,
        "tol_feas": tolerance,
        "tol_ktratio": min(1e-6, 100 * tolerance),
        "max_iter": 500,
    }


class SolverError(RuntimeError):
    """A cvxpy problem did not end with status 'optimal'."""


def solve_cvxpy(problem, what: str, tolerance: float = DEFAULT_TOLERANCE):
    """Solve a cvxpy problem with Clarabel at `tolerance`; raise unless the status is optimal."""
    try:
        problem.solve(solver=DEFAULT_SOLVER, **clarabel_settings(tolerance))
    except Exception as error:  # cvxpy raises its own SolverError on solver breakdown
        raise SolverError(f"{what}: the solver {DEFAULT_SOLVER} failed: {error}") from error
    if problem.status != "optimal":
        raise SolverError(
            f"{what}: the solver {DEFAULT_SOLVER} ended with status {problem.status!r}, "
            f"not 'optimal'"
        )
    return problem.value


def map_and_hessian_expressions(problem, potential):
    """T = D_h φ (n, d) and the Hessian entries H_h φ (m, s) as cvxpy expressions of φ.

    s = 1 in d = 1, and the columns (a, b, c) of [[a, b], [b, c]] in d = 2.
    """
    import cvxpy as cp

    entries = 1 if problem.dim == 1 else 3
    T = cp.reshape(problem.gradient_operator @ potential, problem.points.shape, order="C")
    hessian = cp.reshape(
        problem.hessian_operator @ potential,
        (problem.hessian_points.shape[0], entries),
        order="C",
    )
    return T, hessian
