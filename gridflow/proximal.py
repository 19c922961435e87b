"""The proximal step of the implicit scheme (3.2) on the grid, and the discrete OT map.

    T_{k+1} = argmin_{T ∈ K_h} F_h(T) + (1/2τ) ‖T - T_k‖²_w        (τ = ∞: argmin F_h)

Two solvers: "cvxpy", the reference, poses it as one conic program (exponential cones
for -log of the discrete Hessian, the target's own cvxpy form of V) solved by Clarabel;
"newton", the fast path, is a damped Newton method on the same strictly convex function
(-log keeps the iterates inside K_h, so no constraint is ever active), with the
tridiagonal Hessian of d = 1, converged to roundoff.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, sparse

from gridflow.functionals import OutsideConeError, kl_energy, kl_gradient, kl_hessian
from gridflow.problem import Problem
from gridflow.solvers import SolverError, solve_cvxpy

STEP_SOLVERS = ("newton", "cvxpy")


def proximal_step(problem: Problem, center, tau: float, solver: str = "newton", start=None):
    """argmin_{T ∈ K_h} F_h(T) + (1/2τ)‖T - center‖²_w, shape (n, d); τ = inf allowed."""
    if solver not in STEP_SOLVERS:
        raise ValueError(f"solver must be one of {STEP_SOLVERS}, got {solver!r}")
    center = problem.as_map(center, "center")
    if solver == "cvxpy":
        return _proximal_step_cvxpy(problem, center, tau)
    start = center if start is None else problem.as_map(start, "start")
    return _proximal_step_newton(problem, center, tau, start)


def _objective(problem, center, tau):
    inverse_tau = 0.0 if np.isinf(tau) else 1.0 / tau

    def value(T):
        return kl_energy(problem, T) + 0.5 * inverse_tau * problem.norm(T - center) ** 2

    def gradient(T):  # Euclidean gradient in T (n,)
        return problem.weights * (kl_gradient(problem, T) + inverse_tau * (T - center))[:, 0]

    def hessian(T):
        return kl_hessian(problem, T) + sparse.diags(inverse_tau * problem.weights)

    return value, gradient, hessian


def _proximal_step_newton(problem, center, tau, start, max_iter=100, step_tolerance=1e-13):
    """Damped Newton in the weighted metric; stops when the step's ‖·‖_w is at roundoff.

    Far from the solution, steps are backtracked (Armijo, and staying inside K_h). Once the
    Newton decrement is below 1e-10 the objective cannot resolve further decrease, and the
    quadratically convergent full steps are taken instead.
    """
    value, gradient, hessian = _objective(problem, center, tau)
    T = start.copy()
    current = value(T)
    if not np.isfinite(current):
        raise OutsideConeError("the Newton start is not strictly inside K_h")
    scale = 1.0 / np.sqrt(problem.weights)
    for _ in range(max_iter):
        g = gradient(T)
        H = hessian(T)
        banded = np.zeros((2, T.shape[0]))
        banded[0, 1:] = H.diagonal(1) * scale[1:] * scale[:-1]
        banded[1] = H.diagonal() * scale**2
        direction = (scale * linalg.solveh_banded(banded, scale * g))[:, None]
        decrement = float(g @ direction[:, 0])
        if problem.norm(direction) <= step_tolerance * (1.0 + problem.norm(T)):
            return T
        step = 1.0
        while decrement > 1e-10:
            trial_value = value(T - step * direction)
            if np.isfinite(trial_value) and trial_value <= current - 0.25 * step * decrement:
                break
            step *= 0.5
            if step < 1e-12:
                raise SolverError("Newton's method for the proximal step: line search failed")
        T = T - step * direction
        current = value(T)
        if not np.isfinite(current):
            raise SolverError("Newton's method for the proximal step left the interior of K_h")
    raise SolverError(f"Newton's method for the proximal step did not converge in {max_iter} steps")


def _proximal_step_cvxpy(problem, center, tau):
    import cvxpy as cp

    target = problem.target
    if target.expected_V_cvxpy is None:
        raise ValueError(
            "the cvxpy step needs the target's expected_V_cvxpy (V as a cvxpy expression); "
            "give it to LogConcaveTarget, or use solver='newton'"
        )
    h = problem.grid.spacing[0]
    T = cp.Variable((problem.size, 1))
    objective = target.expected_V_cvxpy(T, problem.weights) - problem.hessian_weights @ cp.log(
        cp.diff(T[:, 0]) / h
    )
    if not np.isinf(tau):
        objective = objective + cp.sum_squares(
            cp.multiply(np.sqrt(problem.weights)[:, None], T - center)
        ) / (2 * tau)
    solve_cvxpy(cp.Problem(cp.Minimize(objective)), "proximal step (3.2)")
    return np.asarray(T.value)
