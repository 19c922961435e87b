"""Why a Newton or Rosenbrock matrix of the grid solver failed, in words.

The matrices are ∂²_T of F_h(T) + ‖T − T_k‖²_w / 2τ (the proximal step (3.2); τ = ∞ for
the discrete OT map), through D_h in d = 2: their V part is blockdiag(w_i (∇²V(T_i) + I/τ)),
the −log det part is convex. They are positive definite when ∇²V + I/τ ≻ 0 at the points of
the map, the strong convexity of V (a log-concave target, Theorem 2.13's λ > 0 or the
step's 1/τ) that the solver assumes. A factorization that fails (a numpy or scipy
``LinAlgError``) or a negative Newton decrement is reported as a ``SolverError`` naming the
likely cause: a V that is not convex where the map lies (non-log-concave target), one that
is flat there (a singular Hessian), a Hessian that is not finite, or, when ∇²V is fine, the
weights of ϱ0 (their range, set by density_floor) or a map at the boundary of K_h.
"""

from __future__ import annotations

import numpy as np

from gridflow.solvers import SolverError

SINGULAR_CURVATURE = 1e-12
"""∇²V + I/τ with an eigenvalue below this (relative to 1 + |∇²V|) counts as singular."""


class NotLogConcaveError(SolverError):
    """The solver failed where ∇²V + I/τ is not positive definite (or not finite): γ ∝
    exp(−V) is not (strictly) log-concave where the map lies. Another start or a
    continuation does not help; a convex V (or, for the implicit step, a smaller τ) does."""


def curvature_cause(problem, T, tau: float) -> str | None:
    """The likely cause in ∇²V at the map T (n, d), or None when ∇²V + I/τ ≻ 0 there."""
    T = np.asarray(T, dtype=np.float64).reshape(-1, problem.dim)
    hessian = problem.target.hessian(T)
    name = problem.target.name
    finite = np.all(np.isfinite(hessian.reshape(len(T), -1)), axis=1)
    if not finite.all():
        point = T[np.argmin(finite)]
        return f"the Hessian ∇²V of the target {name} is not finite at y = {_point(point)}"
    smallest = np.linalg.eigvalsh(0.5 * (hessian + np.swapaxes(hessian, 1, 2)))[:, 0]
    shift = 0.0 if np.isinf(tau) else 1.0 / tau
    i = int(np.argmin(smallest))
    scale = 1.0 + float(np.abs(hessian).max())
    if smallest[i] + shift > SINGULAR_CURVATURE * scale:
        return None
    where = f"∇²V has the eigenvalue {smallest[i]:.3g} at y = {_point(T[i])}"
    if smallest[i] < -SINGULAR_CURVATURE * scale:
        cause = f"V is not convex: {where}, so the target ({name}) is not log-concave"
    else:
        cause = f"V is not strictly convex: {where} (a singular Hessian) for the target ({name})"
    if shift == 0.0 and smallest[i] < 0:
        return f"{cause}; the grid solver needs a convex V"
    if smallest[i] < 0:
        return (
            f"{cause}; the step of size τ = {tau:.3g} is convex only for τ < "
            f"{-1.0 / smallest[i]:.3g}, and the grid solver needs a convex V"
        )
    return f"{cause}; the grid solver needs ∇²V + I/τ positive definite on the map"


def matrix_failure(problem, T, tau: float, what: str, detail: str) -> SolverError:
    """The error to raise when the matrix of ``what`` at the map T failed (``detail``)."""
    cause = curvature_cause(problem, T, tau)
    if cause is not None:
        return NotLogConcaveError(f"{what} failed ({detail}): {cause}")
    return SolverError(
        f"{what} failed ({detail}) although ∇²V + I/τ is positive definite on the map: the "
        f"weights of ϱ0 span too many orders of magnitude (a larger density_floor or a "
        f"smaller box helps) or the map is at the boundary of K_h"
    )


def _point(point) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in np.atleast_1d(point)) + ")"
