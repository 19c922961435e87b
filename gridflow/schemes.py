"""Time discretizations of the constrained gradient flow on the grid (paper §3.1).

- "implicit": the proximal scheme (3.2), T_{k+1} = argmin_{K_h} F_h + (1/2τ)‖· - T_k‖²_w.
- "explicit": the scheme (3.1), T_{k+1} = proj_{K_h}(T_k - τ ∇_w F_h(T_k)). It is a
  parabolic (stiff) scheme: stable only for τ < 2/L with L the largest eigenvalue of
  the weighted Hessian of F_h (L ≈ 4/h² near the identity); larger τ is refused.
- "flow": (cons.gf) itself, ∂_t T = proj_{Tan_T K_h}(-∇_w F_h(T)), recorded every τ.
  F_h is a barrier for K_h, so no constraint is active along it and the projection is
  the one onto K_h's span: the identity in d = 1, the weighted Helmholtz projection in
  d = 2, 3. d = 1: integrated in T by scipy's Radau IIA (order 5, adaptive) with the exact
  tridiagonal Jacobian. d = 2, 3: the flow is M φ' = -∇_φ F_h(φ) with the metric
  M = D_hᵀ W D_h (so that T' = D_h φ' is the Helmholtz projection of -∇_w F_h), which
  scipy cannot integrate (it has no mass matrices); it is integrated by the Rosenbrock
  method ROS2 (order 2, L-stable, one sparse symmetric factorization per step) with
  steps of at most FLOW_STEP.
Each returns a `Trajectory` sampled at t_k = k τ, k = 0..steps.
"""

from __future__ import annotations

import dataclasses
import itertools
import numbers
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.integrate import solve_ivp
from tqdm import tqdm

from gridflow import cones, operators
from gridflow.checks import (
    as_float,
    as_node_values,
    as_shaped_array,
    check_map_on_points,
    flag,
    require_instance,
)
from gridflow.failures import NotLogConcaveError, matrix_failure
from gridflow.functionals import (
    OutsideConeError,
    kl_energy,
    kl_gradient,
    kl_hessian,
    weighted_curvature_bound,
)
from gridflow.potentials import (
    GaugedFactorization,
    helmholtz_projection,
    metric,
)
from gridflow.problem import FlooredSourceWarning, Problem
from gridflow.proximal import check_step_solver, proximal_potential, proximal_step
from gridflow.solvers import SolverError
from gridflow.warm_start import check_coarser, coarse_to_fine_start

SCHEMES = ("implicit", "explicit", "flow")
FLOW_STEP = 0.01
CONTINUATION_MAX_ITER = 1000
"""Newton steps allowed per stage of `minimize`'s density-floor continuation. On coarse grids
that do not resolve the source (17² on [-6, 6]² for the paper's mixture), the last stages'
Hessians are ill-conditioned (λmin(H_h φ) ~ 1e-6) and Newton needs ~200 steps there."""

# minimize in d = 2: the attempt from the identity gives up after STALL_STEPS steps in a row
# damped to 1/16 or less (the 2D Gaussian examples' shortest step is 1/8; the paper's mixture
# stays at 1/32 and below, and used to spend 40 steps there before the continuation).
STALL_STEPS = 8

PROBLEM_HINT = "; build one with gridflow.Problem(grid, source, target)"

WARM_START_MAX_ITER = 100
"""Newton steps allowed from `coarse_to_fine_start` before the continuation takes over. Its
first steps are damped by the barrier in the tails (8 in a row to 1/16 or less at 129²,
which STALL_STEPS would stop), then it converges: 18 steps in all at 129² from 65²."""


class UnstableStepError(ValueError):
    """The explicit scheme's step exceeds its stability bound."""


@dataclass(frozen=True)
class Trajectory:
    """Maps T_k at the evaluation points along a scheme, with their energies F_h(T_k).

    Attributes
    ----------
    scheme : str
        The scheme run ("implicit", "explicit" or "flow").
    tau : float
        The step size.
    points : numpy.ndarray
        The evaluation points, (n, d).
    weights : numpy.ndarray
        The weights of ϱ0 at the points, (n,).
    times : numpy.ndarray
        The times k τ, (K + 1,).
    maps : numpy.ndarray
        The maps T_k at the points, (K + 1, n, d).
    energy : numpy.ndarray
        F_h(T_k), (K + 1,).
    active : numpy.ndarray
        The number of Hessian points where the convexity constraint is active (within the
        activity tolerance), (K + 1,).
    """

    scheme: str
    tau: float
    points: np.ndarray
    weights: np.ndarray
    times: np.ndarray
    maps: np.ndarray
    energy: np.ndarray
    active: np.ndarray

    def __post_init__(self):
        shape = check_map_on_points(self.points, self.weights, None, "Trajectory")
        steps = np.shape(self.times)
        as_shaped_array(self.maps, steps + shape, "Trajectory.maps", " = times + points shapes")
        for name in ("energy", "active"):
            as_shaped_array(getattr(self, name), steps, f"Trajectory.{name}", " = times.shape")

    def errors(self, reference) -> np.ndarray:
        """‖T_k - reference‖_w along the trajectory.

        `reference` must have exactly the shape (n, d) of `points`, also in d = 1 (a vector
        (n,) would broadcast against the maps (K + 1, n, 1)).
        """
        reference = as_shaped_array(reference, self.points.shape, "reference", " = points.shape")
        difference = self.maps - reference[None]
        return np.sqrt(np.einsum("i,kid->k", self.weights, difference**2))


@dataclass(frozen=True)
class DiscreteMap:
    """The discrete OT map T_h* = argmin_{K_h} F_h, with its potential at the grid nodes.

    Attributes
    ----------
    grid : Grid
        The grid of the problem solved.
    points : numpy.ndarray
        The evaluation points, (n, d).
    weights : numpy.ndarray
        The weights of ϱ0 at the points, (n,).
    map : numpy.ndarray
        T_h* at the points, (n, d).
    potential : numpy.ndarray
        Its potential at the grid nodes, flattened (reshape with grid.shape).
    energy : float
        F_h(T_h*).
    """

    grid: object
    points: np.ndarray
    weights: np.ndarray
    map: np.ndarray
    potential: np.ndarray
    energy: float

    def __post_init__(self):
        operators.check_cell_map(self.grid, self.points, self.weights, self.map, "DiscreteMap")
        as_node_values(self.potential, self.grid.shape, "DiscreteMap.potential")
        object.__setattr__(self, "energy", as_float(self.energy, "DiscreteMap.energy"))


def _check_steps(tau, steps):
    tau = as_float(tau, "tau")  # TypeError for True or '0.5': float() took them silently
    if not (np.isfinite(tau) and tau > 0):
        raise ValueError(f"tau must be finite and > 0, got {tau}")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Real):
        raise TypeError(f"steps must be an integer >= 1, got {steps!r}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps}")
    return tau, int(steps)


def _initial_state(problem: Problem, initial):
    """T_0 (default: the identity) and, in d ≥ 2, its potential φ_0 (else None)."""
    if initial is None:
        T = problem.identity()
        potential = problem.identity_potential() if problem.dim >= 2 else None
    else:
        T = problem.as_map(initial, "initial")
        potential = None
        if problem.dim >= 2:
            potential, gradient_field = helmholtz_projection(problem, T)
            distance = np.abs(gradient_field - T).max()
            if distance > 1e-9 * (1.0 + np.abs(T).max()):
                raise ValueError(
                    f"initial is not a discrete gradient field D_h φ (its distance to the "
                    f"nearest one is {distance:.3g}); build it as problem.map_of(potential)"
                )
            T = gradient_field
    if not np.isfinite(kl_energy(problem, T)):
        raise ValueError(
            "initial is not strictly inside K_h: its potential is not strictly convex (the "
            "discrete Hessian must be positive definite at every interior node; in d = 1, "
            "the map must be strictly increasing)"
        )
    return T, potential


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

    Parameters
    ----------
    problem : Problem
        The discrete problem.
    scheme : {"implicit", "explicit", "flow"}, default "implicit"
        The scheme to run.
    tau : float, default 0.5
        The step size, finite and > 0.
    steps : int, default 10
        The number of steps, an integer >= 1.
    initial : numpy.ndarray, optional
        T_0 at the evaluation points, (n, d); default: the identity. In d ≥ 2 it must be a
        discrete gradient field D_h φ (build it as ``problem.map_of(potential)``).
    step_solver : {"newton", "cvxpy"}, default "newton"
        Solves the implicit scheme's proximal steps.
    projection : {"fast", "cvxpy"}, default "fast"
        Computes the explicit scheme's and the flow's projections.
    activity_tolerance : float, default cones.DEFAULT_ACTIVITY_TOLERANCE
        The tangent cone's threshold (see `cones.active_constraints`).
    progress : bool, default False
        Show a progress bar.

    Returns
    -------
    Trajectory
        The maps T_k at the times k τ, with their energies F_h(T_k).

    Raises
    ------
    TypeError
        If `tau` or `steps` is not a number (a bool is not one) or `progress` not a bool.
    ValueError
        If `scheme` is unknown, `tau` or `steps` is invalid, or, in d ≥ 2, `initial` is not
        a discrete gradient field.
    """
    require_instance(problem, Problem, "problem", PROBLEM_HINT)
    progress = flag(progress, "progress")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    tau, steps = _check_steps(tau, steps)
    check_step_solver(step_solver)
    cones.check_method(projection)
    cones._check_tolerance(activity_tolerance)
    T0, potential = _initial_state(problem, initial)
    times = tau * np.arange(steps + 1)
    with tqdm(total=steps, desc=f"{scheme} scheme", disable=not progress, leave=False) as bar:
        if scheme == "flow" and problem.dim == 1:
            maps = _flow_1d(problem, T0, times, projection, activity_tolerance, bar)
        elif scheme == "flow":
            maps = _flow_in_potential(problem, potential, times, bar)
        else:
            maps = [T0]
            for k in range(steps):
                if scheme == "explicit":
                    maps.append(_explicit_step(problem, maps[-1], tau, k, projection))
                elif problem.dim == 1:
                    maps.append(proximal_step(problem, maps[-1], tau, solver=step_solver))
                else:
                    potential = proximal_potential(
                        problem, maps[-1], tau, solver=step_solver, start=potential
                    )
                    maps.append(problem.map_of(potential))
                bar.update()
            maps = np.stack(maps)
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
            f"at step {k} (L is the largest eigenvalue of the weighted Hessian of F_h, which "
            f"grows like 1/h² and near the boundary of K_h): take tau < {bound:.4g} or use the "
            f"implicit scheme"
        )
    return cones.project_onto_cone(problem, T - tau * kl_gradient(problem, T), method=projection)


def _flow_1d(problem, T0, times, projection, activity_tolerance, bar, rtol=1e-10, atol=1e-12):
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


def _flow_in_potential(problem, potential, times, bar, max_halvings=12):
    """(cons.gf) in d = 2, 3 by the Rosenbrock method ROS2 on M φ' = -∇_φ F_h(φ).

    With W = M + γ h ∇²_φF_h(φ_n), γ = 1 + 1/√2 (L-stable, second order for any W):
        W k1 = -∇_φF_h(φ_n),   W k2 = -∇_φF_h(φ_n + h k1) - 2 M k1,
        φ_{n+1} = φ_n + (3/2) h k1 + (1/2) h k2.
    One sparse symmetric factorization per step (`potentials.GaugedFactorization`). A step
    whose stages leave K_h's interior is replaced by two half steps.
    """
    G = problem.gradient_operator
    M = metric(problem)
    gamma = 1.0 + 1.0 / np.sqrt(2.0)

    def gradient(phi):
        T = problem.map_of(phi)
        return G.T @ (problem.weights[:, None] * kl_gradient(problem, T)).ravel()

    def step(phi, h):
        T = problem.map_of(phi)
        hessian = G.T @ kl_hessian(problem, T) @ G
        try:
            factor = GaugedFactorization(problem, M + gamma * h * hessian)
            k1 = factor.solve(-gradient(phi))
            k2 = factor.solve(-gradient(phi + h * k1) - 2.0 * (M @ k1))
        except np.linalg.LinAlgError as error:  # W = M + γh∇²F: M/(γh) plays I/τ's part
            raise matrix_failure(
                problem, T, gamma * h, "the flow's Rosenbrock step", str(error)
            ) from error

        new = phi + h * (1.5 * k1 + 0.5 * k2)
        if not np.isfinite(kl_energy(problem, problem.map_of(new))):
            raise OutsideConeError("the step left the interior of K_h")
        return new

    def advance(phi, h, depth=0):
        """One step of size h, or, when it leaves K_h's interior, two of size h / 2."""
        try:
            return step(phi, h)
        except OutsideConeError as error:
            if depth >= max_halvings:
                raise SolverError(
                    f"the flow left the interior of K_h: {error}, even with steps "
                    f"{2**max_halvings} times shorter; a finer grid, a larger density_floor or "
                    "the implicit scheme keeps it inside"
                ) from error
            return advance(advance(phi, h / 2, depth + 1), h / 2, depth + 1)

    potentials = [potential]
    for start, stop in itertools.pairwise(times):
        substeps = int(np.ceil((stop - start) / FLOW_STEP - 1e-9))
        phi = potentials[-1]
        for _ in range(substeps):
            phi = advance(phi, (stop - start) / substeps)
        potentials.append(phi)
        bar.update()
    return np.stack([problem.map_of(phi) for phi in potentials])


def minimize(
    problem: Problem,
    *,
    solver: str = "newton",
    progress: bool = False,
    coarser: DiscreteMap | None = None,
) -> DiscreteMap:
    """The discrete OT map: argmin_{K_h} F_h (the implicit step with τ = ∞).

    Parameters
    ----------
    problem : Problem
        The discrete problem.
    solver : {"newton", "cvxpy"}, default "newton"
        The solver of the proximal step.
    progress : bool, default False
        Show a progress bar (for the continuation in the density floor).
    coarser : DiscreteMap, optional
        The minimizer of the same problem on a coarser grid of the same box, to start
        Newton's method from (d = 2, 3, Newton solver).

    Returns
    -------
    DiscreteMap
        The map at the evaluation points and its potential at the grid nodes, flattened
        (reshape with grid.shape).

    Notes
    -----
    In d = 2, 3 with the Newton solver, Newton's method starts at the identity, or, given
    `coarser`, at its prolongation (`coarse_to_fine_start`). When that does not converge
    (sources with near-empty regions, whose map must compress them, make the barrier
    -log det limit its steps), the minimizer is reached by continuation in the density floor
    instead: the problems with floors 10^{-1}, 10^{-1.5}, ... down to problem.density_floor
    are solved in turn, each started at the previous solution, each with up to
    CONTINUATION_MAX_ITER Newton steps.
    """
    require_instance(problem, Problem, "problem", PROBLEM_HINT)
    progress = flag(progress, "progress")  # 'yes' or 0 would be taken silently
    check_step_solver(solver)
    if coarser is not None:
        require_instance(coarser, DiscreteMap, "coarser", " (the minimize of a coarser grid)")
        check_coarser(problem, coarser)
    if problem.dim == 1:
        T = proximal_step(problem, problem.identity(), np.inf, solver=solver)
        potential = operators.potential_from_map(problem.grid, T)
    elif solver == "cvxpy":
        potential = proximal_potential(problem, problem.identity(), np.inf, solver=solver)
    else:
        start, limits = problem.identity_potential(), {"max_iter": 40, "stall_steps": STALL_STEPS}
        if coarser is not None:
            start, limits = (
                coarse_to_fine_start(problem, coarser),
                {"max_iter": WARM_START_MAX_ITER},
            )
        try:
            potential = proximal_potential(
                problem, problem.identity(), np.inf, start=start, **limits
            )
        except NotLogConcaveError:
            raise  # no start or continuation makes a non-convex problem convex
        except SolverError:
            potential = _minimize_by_floor_continuation(problem, progress)
    T = problem.map_of(potential)
    return DiscreteMap(
        grid=problem.grid,
        points=problem.points,
        weights=problem.weights,
        map=T,
        potential=potential,
        energy=kl_energy(problem, T),
    )


def _minimize_by_floor_continuation(problem: Problem, progress: bool) -> np.ndarray:
    exponents = np.arange(1.0, -np.log10(problem.density_floor), 0.5)
    floors = [*(10.0**-exponents), problem.density_floor]
    potential = problem.identity_potential()
    # leave=False: the bar is cleared when done, so that one of an enclosing loop (the
    # ground truth's grids) stays the only one on the screen
    bar = tqdm(floors, desc="density-floor continuation", disable=not progress, leave=False)
    with bar:
        for floor in bar:
            with warnings.catch_warnings():  # the continuation's high floors are meant
                warnings.simplefilter("ignore", FlooredSourceWarning)
                stage = dataclasses.replace(problem, density_floor=floor)
            try:
                potential = proximal_potential(
                    stage, stage.identity(), np.inf, start=potential,
                    max_iter=CONTINUATION_MAX_ITER,
                )  # fmt: skip
            except NotLogConcaveError:
                raise
            except SolverError as error:
                raise SolverError(
                    f"minimize: the continuation in the density floor failed at floor "
                    f"{floor:.3g} (target {problem.density_floor:.3g}): {error}. A larger "
                    f"density_floor, a finer grid or a smaller box makes the problem easier"
                ) from error
    return potential
