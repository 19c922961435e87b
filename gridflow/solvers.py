"""Calling cvxpy: one place for the solver choice, its tolerances and status checks."""

from __future__ import annotations

import warnings

import numpy as np

from gridflow.operators import hessian_entries

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


def solve_cvxpy(problem, what: str, tolerance: float = DEFAULT_TOLERANCE, relaxations: int = 2):
    """Solve a cvxpy problem with Clarabel; raise unless the status is optimal.

    Clarabel is asked for `tolerance` first. When it stops with 'optimal_inaccurate' (the
    2D projections, whose weights span twelve orders of magnitude, sometimes do), it is
    asked again with the tolerance relaxed tenfold, at most `relaxations` times; the
    tolerance reached is returned with the value, and any other status raises.
    """
    status = None
    for attempt in range(relaxations + 1):
        attempt_tolerance = tolerance * 10.0**attempt
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                problem.solve(solver=DEFAULT_SOLVER, **clarabel_settings(attempt_tolerance))
        except Exception as error:  # cvxpy raises its own SolverError on solver breakdown
            raise SolverError(f"{what}: the solver {DEFAULT_SOLVER} failed: {error}") from error
        status = problem.status
        if status == "optimal":
            return problem.value, attempt_tolerance
        if status != "optimal_inaccurate":
            break
    raise SolverError(
        f"{what}: the solver {DEFAULT_SOLVER} ended with status {status!r}, not 'optimal'"
    )


def map_and_hessian_expressions(problem, potential):
    """T = D_h φ (n, d) and the Hessian entries H_h φ (m, s) as cvxpy expressions of φ.

    s = d(d + 1)/2 in the layout of `operators.hessian_entries`: the columns (a, b, c) of
    [[a, b], [b, c]] in d = 2.
    """
    import cvxpy as cp  # loads in about a second: imported where a reference solve runs

    entries = problem.dim * (problem.dim + 1) // 2
    T = cp.reshape(problem.gradient_operator @ potential, problem.points.shape, order="C")
    hessian = cp.reshape(
        problem.hessian_operator @ potential,
        (problem.hessian_points.shape[0], entries),
        order="C",
    )
    return T, hessian


def symmetric_expressions(hessian) -> list:
    """The symmetric d × d cvxpy matrices of the rows of Hessian entries (m, s), in the
    layout of `operators.hessian_entries`."""
    import cvxpy as cp  # loads in about a second: imported where a reference solve runs

    s = hessian.shape[1]
    dim = round((np.sqrt(8 * s + 1) - 1) / 2)
    position = {}
    for k, (r, c) in enumerate(zip(*hessian_entries(dim), strict=True)):
        position[r, c] = position[c, r] = k
    return [
        cp.bmat([[hessian[j, position[r, c]] for c in range(dim)] for r in range(dim)])
        for j in range(hessian.shape[0])
    ]
