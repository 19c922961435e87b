"""The proximal step of the implicit scheme (3.2) on the grid, and the discrete OT map.

    T_{k+1} = argmin_{T ∈ K_h} F_h(T) + (1/2τ) ‖T - T_k‖²_w        (τ = ∞: argmin F_h)

Two solvers: "cvxpy", the reference, poses it as one conic program (exponential cones
for the logarithms, in d = 2 one second-order cone per interior node for the
determinant, in d = 3 a 3 × 3 semidefinite cone per node, the target's own cvxpy form of
V) solved by Clarabel; "newton", the fast
path, is a damped (and, where its systems are solved iteratively, inexact) Newton method
on the same strictly convex function (-log det keeps the iterates inside K_h, so no
constraint is ever active), converged to roundoff. Newton
works on T in d = 1 (a tridiagonal Hessian, D_h is onto) and on the potential φ in
d = 2, 3 (T must stay a discrete gradient field; the Hessian D_hᵀ ∇²F D_h is sparse).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, sparse

from gridflow import cholesky, operators, refinement, stencils
from gridflow.checks import as_float
from gridflow.failures import NotLogConcaveError, matrix_failure
from gridflow.functionals import (
    OutsideConeError,
    kl_energy,
    kl_gradient,
    kl_hessian,
    log_det_curvature,
)
from gridflow.potentials import GaugedFactorization, in_gauge
from gridflow.problem import Problem
from gridflow.solvers import (
    SolverError,
    map_and_hessian_expressions,
    solve_cvxpy,
    symmetric_expressions,
)

STEP_SOLVERS = ("newton", "cvxpy")
NEWTON = "Newton's method for the proximal step"


def check_step_solver(solver: str) -> str:
    if not isinstance(solver, str) or solver not in STEP_SOLVERS:
        raise ValueError(f"step_solver must be one of {STEP_SOLVERS}, got {solver!r}")
    return solver


def check_tau(tau) -> float:
    """The proximal step's τ: a real number > 0, or inf (the minimizer of F_h)."""
    tau = as_float(tau, "tau")
    if not tau > 0:  # also NaN
        raise ValueError(f"tau must be > 0 (inf for the minimizer of F_h), got {tau}")
    return tau


def proximal_step(problem: Problem, center, tau: float, solver: str = "newton", start=None):
    """argmin_{T ∈ K_h} F_h(T) + (1/2τ)‖T - center‖²_w, shape (n, d); τ = inf allowed.

    `start` (a map strictly inside K_h) seeds Newton's method in d = 1; default `center`. In
    d ≥ 2 Newton's method runs on the potential: pass its start to `proximal_potential`.
    """
    check_step_solver(solver)
    tau = check_tau(tau)
    center = problem.as_map(center, "center")
    if problem.dim >= 2:
        if start is not None:
            raise ValueError(
                "start seeds Newton's method on the map in d = 1; in d >= 2 it runs on the "
                "potential: pass start (a potential) to proximal_potential"
            )
        return problem.map_of(proximal_potential(problem, center, tau, solver))
    if solver == "cvxpy":
        return problem.map_of(_proximal_potential_cvxpy(problem, center, tau))
    start = center if start is None else problem.as_map(start, "start")
    return _proximal_map_newton_1d(problem, center, tau, start)


def proximal_potential(
    problem: Problem,
    center,
    tau: float,
    solver="newton",
    start=None,
    max_iter: int = 100,
    **newton_options,
):
    """The potential φ (N,) of the proximal step, orthogonal to ker D_h (`potentials.in_gauge`).

    `start`: a potential whose map is strictly inside K_h; default the identity's ½|x|².
    `newton_options` (tolerance, stall_steps) go to `damped_newton`.
    """
    check_step_solver(solver)
    tau = check_tau(tau)
    center = problem.as_map(center, "center")
    if solver == "cvxpy":
        return in_gauge(problem, _proximal_potential_cvxpy(problem, center, tau))
    start = problem.identity_potential() if start is None else problem.as_potential(start, "start")
    potential = _proximal_potential_newton(problem, center, tau, start, max_iter, **newton_options)
    return in_gauge(problem, potential)


def _inverse(tau) -> float:
    return 0.0 if np.isinf(tau) else 1.0 / tau


def _value(problem, center, tau):
    return lambda T: kl_energy(problem, T) + 0.5 * _inverse(tau) * problem.norm(T - center) ** 2


def _euclidean_gradient(problem, center, tau, T):
    """∂/∂T of the proximal objective, (n, d)."""
    return problem.weights[:, None] * (kl_gradient(problem, T) + _inverse(tau) * (T - center))


def _euclidean_hessian(problem, center, tau, T):
    return kl_hessian(problem, T) + sparse.diags(
        _inverse(tau) * np.repeat(problem.weights, problem.dim)
    )


SHORT_STEP = 1.0 / 16.0
FORCING_MAX = 0.1
"""The largest relative residual of a Newton system's iterative solve (`newton_forcing`)."""
REUSE_DECREMENT = 1e-4
"""Near the minimizer, after a step of at most this Newton decrement, the Newton systems are
solved with the latest factor first (`GaugedFactorization.solve_nearby`), whose matrix then
differs little from theirs, and a new factorization there is in float64: it preconditions
the remaining steps, whose forcing terms ask for many digits. Farther away an earlier
factor's directions, though within their forcing terms, cut the damped steps short (their
errors gather at the density floor's nodes, where the barrier limits the step), and a float32
factor of the matrix itself serves. Measured at 65³ in docs/performance.md."""
MIN_REUSE_ITERATIONS = 10
"""Grids where half a factorization costs fewer solves than this (all 2D grids up to 1025²;
3D grids below 39³) factorize at every Newton step: too few iterations to pay."""


def newton_forcing(decrement_estimate: float) -> float:
    """The relative residual ‖H d − g‖_{H⁻¹} ≤ η ‖g‖_{H⁻¹} to which a Newton system H d = g is
    solved iteratively, from an estimate λ² of the Newton decrement gᵀH⁻¹g: η = min(FORCING_MAX,
    λ), Dembo, Eisenstat and Steihaug's forcing term that keeps Newton's quadratic convergence
    (the step's error, O(η λ) = O(λ²), is of the order of Newton's own), while far from the
    minimizer one digit suffices for a descent direction."""
    if not np.isfinite(decrement_estimate):
        return 0.0  # float64's accuracy
    return min(FORCING_MAX, float(np.sqrt(max(decrement_estimate, 0.0))))


NEWTON_REACH = 2
"""The Newton matrices in φ couple nodes two apart (H_hᵀ·H_h: a 5 × 5 stencil in d = 2)."""


SUPERLINEAR_RATIO = 1e-2
"""Two whole Newton steps in a row whose norms shrink by this factor or more converge
quadratically: the next step's norm is predicted from them (`_predicted_step`)."""
PREDICTION_MARGIN = 100.0
"""How far the next step may exceed its quadratic prediction (at 513² the last step before
the float64 floor came out 26 times above it) and still meet the tolerance."""


def _predicted_step(norm: float, ratio: float) -> float:
    """PREDICTION_MARGIN times the next Newton step's norm predicted by quadratic convergence,
    ‖d_{k+1}‖ ≈ C‖d_k‖² with C = ‖d_k‖ / ‖d_{k−1}‖², from ‖d_k‖ (`norm`) and ‖d_k‖ / ‖d_{k−1}‖
    (`ratio`): when it is within the tolerance, the step just taken ends the iteration, and
    the direction that would only confirm it (a factorization) is not computed."""
    return PREDICTION_MARGIN * norm * ratio * ratio


NEGATIVE_DECREMENT = 1e-10
"""A Newton decrement below −NEGATIVE_DECREMENT means the linear solves failed: the
stagnation test would otherwise take such a point for the minimizer (seen at 257²: the
decrement was −5.5e-7 where Newton stopped, 5.7e-4 in L²(ϱ0) from the minimizer)."""


def damped_newton(
    value,
    gradient,
    direction,
    step_norm,
    start,
    max_iter=100,
    tolerance=1e-13,
    stall_steps=None,
    explain=None,
):
    """Minimize a strictly convex `value` by Newton's method with backtracking.

    gradient(x) and direction(x, g) (the Newton step H⁻¹g, or an inexact one from conjugate
    gradients started at 0, whose gᵀd is then positive and at most gᵀH⁻¹g) are arrays shaped
    like x;
    step_norm measures a step in the problem's metric. Far from the solution, steps are
    backtracked (Armijo, and staying where `value` is finite). Once the Newton decrement
    gᵀH⁻¹g is below 1e-10 the objective cannot resolve further decrease, and full steps
    are taken until the step's norm is at roundoff, tolerance × (1 + step_norm(x)), or stops
    shrinking (three full steps without a smaller one: the accuracy of the linear solves,
    which coarse 2D grids with tiny tail weights can limit to about 1e-7); after two whole
    steps of quadratic convergence it ends as soon as the next step's predicted norm, with a
    margin, is within that tolerance (`_predicted_step`).
    With `stall_steps`, it gives up (SolverError) after that many consecutive steps damped
    to SHORT_STEP or less: the barrier then limits every step, and a continuation is faster.
    A negative decrement (inaccurate linear solves) is a SolverError, never convergence.
    `explain(x, detail)` turns a failure at x (a failed linear solve, a ``LinAlgError``; a
    negative decrement; a failed line search; a stall; no convergence) into the SolverError
    that names its likely cause (``failures.matrix_failure``): a target that is not
    log-concave where the map lies is reported as such, whatever the symptom.
    """

    def failure(x, detail, message):
        """The error for a failure at x: its cause in the target where one is found."""
        cause = explain(x, detail) if explain is not None else None
        return cause if isinstance(cause, NotLogConcaveError) else SolverError(message)

    x = start.copy()
    current = value(x)
    previous_norms = []
    full_step_norm = None  # the norm of the latest step if it was taken whole
    short_steps = 0
    if not np.isfinite(current):
        raise OutsideConeError("the Newton start is not strictly inside K_h")
    for _ in range(max_iter):
        g = gradient(x)
        try:
            step_direction = direction(x, g)
        except (np.linalg.LinAlgError, OutsideConeError) as error:  # the latter: a curvature
            # block too near singular to factorize where F_h is still finite
            if explain is None:
                raise SolverError(f"Newton's method for the proximal step: {error}") from error
            raise explain(x, str(error)) from error
        decrement = float(np.sum(g * step_direction))
        if decrement < -NEGATIVE_DECREMENT:  # gᵀH⁻¹g < 0 is impossible for SPD H
            raise failure(  # an indefinite H where V is not convex, else roundoff
                x,
                f"negative Newton decrement {decrement:.3g}",
                f"Newton's method for the proximal step: negative Newton decrement "
                f"({decrement:.3g}), the linear solves are inaccurate; refusing to report "
                "convergence",
            )
        norm = step_norm(step_direction)
        if norm <= tolerance * (1.0 + step_norm(x)):
            return x
        if decrement <= 1e-10 and len(previous_norms) >= 3 and norm >= min(previous_norms[-3:]):
            return x  # stagnation: the steps stopped shrinking at the linear solves' accuracy
        previous_norms.append(norm)
        step = 1.0
        while True:  # backtrack: stay where value is finite, and Armijo while it is resolvable
            trial_value = value(x - step * step_direction)
            if np.isfinite(trial_value) and (
                decrement <= 1e-10 or trial_value <= current - 0.25 * step * decrement
            ):
                break
            step *= 0.5
            if step < 1e-12:
                raise failure(
                    x, "line search", "Newton's method for the proximal step: line search failed"
                )
        x = x - step * step_direction
        current = trial_value
        if step == 1.0 and full_step_norm is not None:
            ratio = norm / full_step_norm
            if ratio <= SUPERLINEAR_RATIO and _predicted_step(norm, ratio) <= tolerance * (
                1.0 + step_norm(x)
            ):
                return x
        full_step_norm = norm if step == 1.0 else None
        short_steps = short_steps + 1 if step <= SHORT_STEP else 0
        if stall_steps is not None and short_steps >= stall_steps:
            raise failure(
                x,
                "stalled",
                f"Newton's method for the proximal step stalled: {short_steps} steps in a row "
                f"damped to {SHORT_STEP} or less",
            )
    raise failure(
        x,
        f"no convergence in {max_iter} steps",
        f"Newton's method for the proximal step did not converge in {max_iter} steps",
    )


def newton_matrix(problem, center, tau, T) -> sparse.csr_matrix:
    """The Hessian in φ of the proximal objective, D_hᵀ ∂²_T(F_h + ‖· - center‖²_w/2τ) D_h.

    With H_h = B_h D_h it is D_hᵀ blockdiag(w_i (∇²V(T_i) + I/τ)) D_h + H_hᵀ blockdiag(κ_j)
    H_h, κ_j the log-det curvature blocks (`log_det_curvature`): the same matrix as
    D_hᵀ (`_euclidean_hessian`) D_h, assembled cell by cell and node by node into the
    stencil of 5^d nodes (`newton_stencil`) instead of by sparse products, and returned with
    the full stencil pattern. `center` only fixes the signature shared with the other
    derivatives (the Hessian does not depend on it). T must be strictly inside K_h.
    """
    del center
    return stencils.to_csr(newton_stencil(problem, tau, T), problem.grid.shape, NEWTON_REACH)


def newton_stencil(problem, tau, T) -> np.ndarray:
    """`newton_matrix` in the stencil layout of `gridflow.stencils`, (N, 5^d): the values the
    multifrontal factorization reads, without the detour through a sparse matrix."""
    tau = check_tau(tau)
    grid = problem.grid
    shift = _inverse(tau) * np.eye(problem.dim)
    potential = problem.weights[:, None, None] * (problem.target.hessian(T) + shift)
    values = np.zeros((problem.gradient_operator.shape[1], (2 * NEWTON_REACH + 1) ** problem.dim))
    for blocks, window, sites in (
        (potential, operators.map_window(grid.spacing), operators.map_shape(grid)),
        (
            log_det_curvature(problem, T),
            operators.hessian_window(grid.spacing),
            operators.hessian_shape(grid),
        ),
    ):
        stencils.add_quadratic_form(
            values, np.ascontiguousarray(blocks), window, sites, grid.shape, NEWTON_REACH
        )
    return values


def _proximal_map_newton_1d(problem, center, tau, start):
    """Newton on T (d = 1), the tridiagonal Hessian solved in the metric W^{-1/2}·W^{-1/2}."""
    scale = 1.0 / np.sqrt(problem.weights)

    def direction(T, g):
        H = _euclidean_hessian(problem, center, tau, T)
        banded = np.zeros((2, T.shape[0]))
        banded[0, 1:] = H.diagonal(1) * scale[1:] * scale[:-1]
        banded[1] = H.diagonal() * scale**2
        if not np.all(np.isfinite(banded)):
            raise np.linalg.LinAlgError("the Newton matrix is not finite")
        return (scale * linalg.solveh_banded(banded, scale * g[:, 0]))[:, None]

    return damped_newton(
        _value(problem, center, tau),
        lambda T: _euclidean_gradient(problem, center, tau, T),
        direction,
        problem.norm,
        start,
        explain=lambda T, detail: matrix_failure(problem, T, tau, NEWTON, detail),
    )


def _proximal_potential_newton(problem, center, tau, start, max_iter=100, **newton_options):
    """Newton on φ (d = 2, 3): gradient D_hᵀ ∂_T, Hessian D_hᵀ ∂²_T D_h, solved in the gauge.

    A step's system is solved directly by a float64 factor, or iteratively (a float32 factor
    of its own matrix; near the minimizer, where the grid earns it, the latest factor) to
    the relative residual `newton_forcing` asks, which keeps Newton's quadratic convergence;
    on the last steps, whose forcing terms are below float64's accuracy, the float64
    backward-error test ends the iterations, as for an exact solve."""
    G = problem.gradient_operator
    value = _value(problem, center, tau)
    last = None  # the latest factorization: a new one takes over its memory
    precision = "auto"  # "double" once float32 proved too weak for this problem's systems
    structure = cholesky.front_structure(problem.grid.shape, NEWTON_REACH)
    # a solve with an earlier factor may cost half a factorization: a new factor would also
    # precondition the later steps better
    nearby_limit = refinement.solves_per_factorization(structure) // 2
    refinement_limit = refinement.refinement_limit(structure)
    reuse = nearby_limit >= MIN_REUSE_ITERATIONS  # whether this grid earns any
    near = False  # whether the latest step's decrement was at most REUSE_DECREMENT

    def direction(phi, g):
        nonlocal last, precision, near
        hessian = newton_stencil(problem, tau, problem.map_of(phi))
        step = None
        if near:
            step, _ = last.solve_nearby(problem, hessian, g, nearby_limit, forcing=newton_forcing)
        if step is None:
            if precision == "double" and last is not None and last.precision == "mixed":
                last = None  # a float32 factor cannot lend its memory to a float64 one
            last = GaugedFactorization(problem, hessian, reuse=last, precision=precision)
            step = last.solve(g, forcing=newton_forcing)
            if last.chosen_precision == "mixed" and (
                last.precision == "double" or last.refinement_iterations > refinement_limit // 2
            ):
                precision = "double"  # float32 proved no cheaper for this problem
        near = reuse and float(g @ step) <= REUSE_DECREMENT
        if near:
            precision = "double"
        return step

    def norm(phi):
        return problem.norm(problem.map_of(phi))

    return damped_newton(
        lambda phi: value(problem.map_of(phi)),
        lambda phi: G.T @ _euclidean_gradient(problem, center, tau, problem.map_of(phi)).ravel(),
        direction,
        norm,
        start,
        max_iter=max_iter,
        explain=lambda phi, detail: matrix_failure(
            problem, problem.map_of(phi), tau, NEWTON, detail
        ),
        **newton_options,
    )


def _proximal_potential_cvxpy(problem, center, tau):
    """The proximal step as one conic program in φ (gauge: φ = 0 at the gauge nodes).

    d = 1: -m_j log((D_h φ)_{j+1} - (D_h φ)_j) / h). d = 2: -log det [[a, b], [b, c]] is
    -2 log t_j with the second-order cone ‖(a - c, 2b, 2t_j)‖ ≤ a + c, which at the optimum
    makes t_j² = ac - b² (docs/mathematics.md, 'The discrete relative entropy'). d = 3:
    cvxpy's log_det of each 3 × 3 matrix (a semidefinite cone and exponential cones).
    """
    import cvxpy as cp  # loads in about a second: imported where a reference solve runs

    target = problem.target
    if target.expected_V_cvxpy is None:
        raise ValueError(
            "the cvxpy step needs the target's expected_V_cvxpy (V as a cvxpy expression); "
            "give it to LogConcaveTarget, or use solver='newton'"
        )
    phi = cp.Variable(problem.gradient_operator.shape[1])
    T, hessian = map_and_hessian_expressions(problem, phi)
    constraints = [phi[problem.gauge_nodes] == 0]
    if problem.dim == 1:
        log_det = cp.log(hessian[:, 0])
    elif problem.dim == 2:
        a, b, c = hessian[:, 0], hessian[:, 1], hessian[:, 2]
        t = cp.Variable(problem.hessian_points.shape[0])
        constraints.append(cp.SOC(a + c, cp.vstack([a - c, 2 * b, 2 * t]), axis=0))
        log_det = 2 * cp.log(t)
    else:
        log_det = cp.hstack([cp.log_det(matrix) for matrix in symmetric_expressions(hessian)])
    objective = target.expected_V_cvxpy(T, problem.weights) - problem.hessian_weights @ log_det
    if not np.isinf(tau):
        objective = objective + cp.sum_squares(
            cp.multiply(np.sqrt(problem.weights)[:, None], T - center)
        ) / (2 * tau)
    solve_cvxpy(cp.Problem(cp.Minimize(objective), constraints), "proximal step (3.2)")
    return np.asarray(phi.value)
