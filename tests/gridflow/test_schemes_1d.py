"""The 1D schemes against the exact quantile map and the paper's convergence statements."""

import numpy as np
import pytest

from gridflow import (
    GridCutsSourceError,
    LogConcaveTarget,
    Problem,
    SolverError,
    UnstableStepError,
    minimize,
    quantile_map,
    solve,
)
from gridflow.examples import gaussian_source_1d, problem_1d, shifted_mixture_1d
from gridflow.grid import Grid
from gridflow.proximal import proximal_step
from gridflow.rates import fitted_rate
from gridflow.schemes import explicit_stability_bound


def error_to_exact(nodes):
    problem = problem_1d(nodes)
    discrete = minimize(problem)
    return problem.norm(discrete.map - quantile_map(problem.source, problem.target, problem.points))


def test_discrete_ot_map_is_within_1e4_of_the_quantile_map_at_400_nodes():
    assert error_to_exact(400) < 1e-4


def test_grid_convergence_order_is_at_least_1_8():
    errors = np.array([error_to_exact(n) for n in (100, 200, 400, 800)])
    orders = np.log2(errors[:-1] / errors[1:])
    assert np.all(orders >= 1.8), orders


@pytest.mark.parametrize("tau", [0.3, np.inf])
def test_newton_step_agrees_with_the_cvxpy_conic_program(tau):
    """The interior-point solution is accurate to about the root of its duality gap."""
    problem = problem_1d(150)
    center = problem.identity()
    newton = proximal_step(problem, center, tau, solver="newton")
    conic = proximal_step(problem, center, tau, solver="cvxpy")
    assert problem.norm(newton - conic) < 1e-5


@pytest.fixture(scope="module")
def problem():
    return problem_1d(200)


@pytest.fixture(scope="module")
def optimum(problem):
    return minimize(problem)


@pytest.mark.parametrize("tau", [0.1, 0.5, 2.0])
def test_implicit_scheme_decreases_energy_and_contracts_within_proposition_3_1(
    problem, optimum, tau
):
    trajectory = solve(problem, "implicit", tau=tau, steps=8)
    assert np.all(np.diff(trajectory.energy) <= 1e-13)
    errors = trajectory.errors(optimum.map)
    alpha = (1 + problem.target.lam**2 * tau**2 / 4) ** -0.5
    assert np.all(errors[1:] <= alpha * errors[:-1])


def test_flow_satisfies_both_bounds_of_theorem_2_13_iii(problem, optimum):
    flow = solve(problem, "flow", tau=0.1, steps=30)
    lam = problem.target.lam
    gap = flow.energy - optimum.energy
    decay = np.exp(-2 * lam * flow.times)
    assert np.all(np.diff(flow.energy) <= 1e-13)
    assert np.all(gap <= decay * gap[0] * (1 + 1e-9))
    assert np.all(flow.errors(optimum.map) ** 2 <= 4 / lam * decay * gap[0])


def test_flow_rate_is_2_lambda_when_the_translation_mode_is_excited():
    """The mean of ϱ0 differs from γ's: the slowest mode, of rate exactly 2λ, is present."""
    problem = problem_1d(200, source=shifted_mixture_1d())
    optimum = minimize(problem)
    flow = solve(problem, "flow", tau=0.1, steps=60)
    rate = fitted_rate(flow.times, flow.energy - optimum.energy)
    assert rate == pytest.approx(2 * problem.target.lam, rel=0.05)


def test_explicit_scheme_converges_for_a_stable_step():
    """A Gaussian source: the optimal map's slope stays near 1.25, so the stability bound
    2/L stays near h²/2 along the run (for the bimodal mixture it falls to ~1e-5 at the
    optimum, where the map's slope between the modes is 0.07)."""
    problem = problem_1d(100, source=gaussian_source_1d())
    optimum = minimize(problem)
    tau = 0.5 * explicit_stability_bound(problem, problem.identity(), optimum.map)
    trajectory = solve(problem, "explicit", tau=tau, steps=int(8.0 / tau))
    errors = trajectory.errors(optimum.map)
    assert np.all(np.diff(trajectory.energy) <= 1e-13)
    assert errors[-1] < 1e-3 * errors[0]


def test_explicit_scheme_refuses_an_unstable_step_and_states_the_bound(problem):
    with pytest.raises(UnstableStepError, match=r"stability bound 2/L = [0-9.e-]+"):
        solve(problem, "explicit", tau=0.01, steps=5)


def test_merely_log_concave_target_satisfies_theorem_2_13_ii():
    problem = problem_1d(200, target=LogConcaveTarget.quartic())
    assert problem.target.lam == 0
    optimum = minimize(problem)
    flow = solve(problem, "flow", tau=0.25, steps=20)
    gap = (flow.energy - optimum.energy)[1:]
    w2_squared = problem.norm(optimum.map - problem.points) ** 2
    assert np.all(gap <= w2_squared / (2 * flow.times[1:]))
    assert gap[-1] < 1e-3 * gap[0]


def test_trajectory_shapes(problem):
    trajectory = solve(problem, "implicit", tau=0.5, steps=3)
    assert trajectory.maps.shape == (4, problem.size, 1)
    assert trajectory.energy.shape == trajectory.times.shape == trajectory.active.shape == (4,)
    np.testing.assert_array_equal(trajectory.maps[0], problem.points)


@pytest.mark.parametrize("tau", [0.0, -1.0, np.nan, np.inf])
def test_bad_tau_is_refused(problem, tau):
    with pytest.raises(ValueError, match="tau"):
        solve(problem, "implicit", tau=tau, steps=2)


def test_bad_initial_maps_are_refused(problem):
    nonconvex = problem.identity()[::-1].copy()
    with pytest.raises(ValueError, match="initial is not strictly inside K_h"):
        solve(problem, "implicit", tau=0.5, steps=1, initial=nonconvex)
    with pytest.raises(ValueError, match="initial must have shape"):
        solve(problem, "implicit", tau=0.5, steps=1, initial=np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        solve(problem, "implicit", tau=0.5, steps=1, initial=np.full(problem.points.shape, np.nan))


def test_unknown_scheme_is_refused(problem):
    with pytest.raises(ValueError, match="scheme"):
        solve(problem, "leapfrog", tau=0.5, steps=1)


def test_grid_that_cuts_the_source_is_refused():
    with pytest.raises(GridCutsSourceError, match="enlarge the box"):
        problem_1d(100, box=(-3.0, 3.0))


def test_callable_source_cut_is_estimated():
    def density(points):
        return np.exp(-0.5 * (points[:, 0] / 2.0) ** 2)

    target = LogConcaveTarget.gaussian([0.0], [[1.0]])
    with pytest.raises(GridCutsSourceError):
        Problem(Grid([-4.0], [4.0], [100]), density, target)
    assert Problem(Grid([-14.0], [14.0], [100]), density, target).size == 99


def test_solver_failure_reports_the_status():
    import cvxpy as cp

    from gridflow.solvers import solve_cvxpy

    x = cp.Variable()
    with pytest.raises(SolverError, match="infeasible"):
        solve_cvxpy(cp.Problem(cp.Minimize(x), [x >= 1, x <= 0]), "test problem")


def test_cvxpy_step_needs_a_cvxpy_form_of_v():
    target = LogConcaveTarget(V=lambda y: 0.5 * y[:, 0] ** 2, grad_V=lambda y: y, lam=1.0)
    problem = problem_1d(50, target=target)
    with pytest.raises(ValueError, match="expected_V_cvxpy"):
        proximal_step(problem, problem.identity(), 1.0, solver="cvxpy")
    # the Newton path needs only V and its gradient
    assert np.isfinite(minimize(problem).energy)


@pytest.mark.parametrize("call", [lambda p: minimize(p), lambda p: solve(p, 0.1, 2)])
def test_a_problem_that_is_not_a_problem_is_refused(call):
    with pytest.raises(TypeError, match=r"problem must be a gridflow\.Problem, got None"):
        call(None)
