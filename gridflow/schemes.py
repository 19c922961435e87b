"""Time discretizations of the constrained gradient flow on the grid (paper §3.1).

- "implicit": the proximal scheme (3.2), T_{k+1} = argmin_{K_h} F_h + (1/2τ)‖· - T_k‖²_w.
- "explicit": the scheme (3.1), T_{k+1} = proj_{K_h}(T_k - τ ∇_w F_h(T_k)). It is a
  parabolic (stiff) scheme: stable only for τ < 2/L with L the largest eigenvalue of
  the weighted Hessian of F_h (L ≈ 4/h² near the identity); larger τ is refused.
- "flow": (cons.gf) itself, ∂_t T = proj_{Tan_T K_h}(-∇_w F_h(T)), integrated by a stiff
  implicit Runge-Kutta method (Radau IIA) with the exact tridiagonal Jacobian, recorded
  every τ. (F_h is a barrier for K_h, so in d = 1 no constraint is active along it.)
Each returns a `Trajectory` sampled at t_k = k τ, k = 0..steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.integrate import solve_ivp
from tqdm import tqdm

from gridflow import cones
from gridflow.functionals import (
    OutsideConeError,
    kl_energy,
    kl_gradient,
    kl_hessian,
    weighted_curvature_bound,
)
from gridflow.operators import potential_from_map
from gridflow.problem import Problem
from gridflow.proximal import proximal_step
from gridflow.solvers import SolverError

SCHEMES = ("implicit", "explicit", "flow")


class UnstableStepError(ValueError):
    """The explicit scheme's step exceeds its stability bound."""


@dataclass(frozen=True)
class Trajectory:
    """Maps T_k at the evaluation points along a scheme, with their energies F_h(T_k).

    points (n, d), weights (n,), times (K + 1,), maps (K + 1, n, d), energy (K + 1,),
    active (K + 1,): the number of Hessian points where the convexity constraint is
    active (within the activity tolerance).
    """

    scheme: str
    tau: float
    points: np.ndarray
    weights: np.ndarray
    times: np.ndarray
    maps: np.ndarray
    energy: np.ndarray
    active: np.ndarray

    def errors(self, reference) -> np.ndarray:
        """‖T_k - reference‖_w along the trajectory (reference (n, d))."""
        difference = self.maps - np.asarray(reference)[None]
        return np.sqrt(np.einsum("i,kid->k", self.weights, difference**2))


@dataclass(frozen=True)
class DiscreteMap:
    """The discrete OT map T_h* = argmin_{K_h} F_h, with its potential at the grid nodes."""

    grid: object
    points: np.ndarray
    weights: np.ndarray
    map: np.ndarray
    potential: np.ndarray
    energy: float


def _check_steps(tau, steps):
    tau = float(tau)
    if not (np.isfinite(tau) and tau > 0):
        raise ValueError(f"tau must be finite and > 0, got {tau}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps}")
    return tau, int(steps)


def _initial_map(problem: Problem, initial):
    T = problem.identity() if initial is None else problem.as_map(initial, "initial")
    if not np.isfinite(kl_energy(problem, T)):
        raise ValueError(
            "initial is not strictly inside K_h: its potential is not strictly convex "
            "(the map must be strictly increasing in d = 1)"
        )
    return T


def solve(
    problem: Problem,
    scheme: str = "implicit",
    tau: float = 0.5,
    steps: int = 10,
    *,
    initial=None,
    step_solver: str = "newton",
    projection: str = "fast",
    activity_tolerance: float = cones.DEFAULT_ACTIVITY_TOLERANCE,
    progress: bool = False,
) -> Trajectory:
    """Run `scheme` for `steps` steps of size `tau` from `initial` (default: the identity).

    step_solver ("newton" | "cvxpy") solves the implicit scheme's proximal steps;
    projection ("fast" | "cvxpy") computes the explicit scheme's and the flow's projections;
    activity_tolerance is the tangent cone's threshold (see `cones.active_constraints`).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    tau, steps = _check_steps(tau, steps)
    cones._check_method(projection)
    cones._check_tolerance(activity_tolerance)
    T0 = _initial_map(problem, initial)
    times = tau * np.arange(steps + 1)
    bar = tqdm(total=steps, desc=f"{scheme} scheme", disable=not progress, leave=False)
    if scheme == "flow":
        maps = _flow(problem, T0, times, projection, activity_tolerance, bar)
    else:
        maps = [T0]
        for k in range(steps):
            if scheme == "implicit":
                maps.append(proximal_step(problem, maps[-1], tau, solver=step_solver))
            else:
                maps.append(_explicit_step(problem, maps[-1], tau, k, projection))
            bar.update()
        maps = np.stack(maps)
    bar.close()
    return Trajectory(
        scheme=scheme,
        tau=tau,
        points=problem.points,
        weights=problem.weights,
        times=times,
        maps=maps,
        energy=np.array([kl_energy(problem, T) for T in maps]),
        active=np.array(
            [int(cones.active_constraints(problem, T, activity_tolerance).sum()) for T in maps]
        ),
    )


def explicit_stability_bound(problem: Problem, *maps) -> float:
    """The largest stable step of the explicit scheme at the given maps: min 2/L(T).

    L(T) is the largest eigenvalue of the weighted Hessian W^{-1/2} ∇²F_h(T) W^{-1/2}.
    """
    return min(2.0 / weighted_curvature_bound(problem, T) for T in maps)


def _explicit_step(problem, T, tau, k, projection):
    bound = explicit_stability_bound(problem, T)
    if tau >= bound:
        raise UnstableStepError(
            f"tau = {tau:.4g} exceeds the explicit scheme's stability bound 2/L = {bound:.4g} "
            f"at step {k} (L is the largest eigenvalue of the weighted Hessian of F_h, about "
            f"4/h² = {4 / problem.grid.spacing[0] ** 2:.4g} near the identity): take tau < "
            f"{bound:.4g} or use the implicit scheme"
        )
    return cones.project_onto_cone(problem, T - tau * kl_gradient(problem, T), method=projection)


def _flow(problem, T0, times, projection, activity_tolerance, bar, rtol=1e-10, atol=1e-12):
    shape = T0.shape
    inverse_weights = sparse.diags(1.0 / problem.weights)

    def velocity(_, state):
        T = state.reshape(shape)
        try:
            direction = -kl_gradient(problem, T)
        except OutsideConeError as error:
            raise SolverError(f"the flow left the interior of K_h: {error}") from error
        return cones.project_onto_tangent_cone(
            problem, T, direction, activity_tolerance, method=projection
        ).ravel()

    def jacobian(_, state):
        return -(inverse_weights @ kl_hessian(problem, state.reshape(shape))).tocsc()

    recorded = [0]

    def progress(t, state):
        done = int(np.searchsorted(times, t, side="right")) - 1
        bar.update(max(0, done - recorded[0]))
        recorded[0] = max(recorded[0], done)

    def velocity_with_progress(t, state):
        progress(t, state)
        return velocity(t, state)

    solution = solve_ivp(
        velocity_with_progress,
        (times[0], times[-1]),
        T0.ravel(),
        method="Radau",
        t_eval=times,
        jac=jacobian,
        rtol=rtol,
        atol=atol,
    )
    if not solution.success:
        raise SolverError(f"integrating the flow failed: {solution.message}")
    return solution.y.T.reshape(len(times), *shape)


def minimize(problem: Problem, *, solver: str = "newton") -> DiscreteMap:
    """The discrete OT map: argmin_{K_h} F_h (the implicit step with τ = ∞)."""
    T = proximal_step(problem, problem.identity(), np.inf, solver=solver)
    return DiscreteMap(
        grid=problem.grid,
        points=problem.points,
        weights=problem.weights,
        map=T,
        potential=potential_from_map(problem.grid, T),
        energy=kl_energy(problem, T),
    )
