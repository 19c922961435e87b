"""Newton systems solved with an earlier step's factor: conjugate gradients on the new
matrix, preconditioned by the old factorization (`GaugedFactorization.solve_nearby`)."""

import weakref

import numpy as np
import pytest

from gridflow import cholesky, examples, proximal, refinement, stencils
from gridflow.fronts import front_structure
from gridflow.potentials import GaugedFactorization, scaled_in_gauge
from gridflow.proximal import newton_stencil
from gridflow.schemes import minimize


def _newton_values_3d():
    problem, before, _ = _two_newton_matrices()
    return problem, before, scaled_in_gauge(problem, before, 2)[0]


def _two_newton_matrices(nodes=9, bump=0.05):
    """The 3D Newton matrices at the identity map and at the map of a convex potential
    near ½|x|², and their problem."""
    problem = examples.problem_3d(nodes, box=(-3.5, 3.5), density_floor=1e-4, max_cut_mass=1e-3)
    x = problem.grid.nodes
    potential = problem.identity_potential() + bump * np.log(np.cosh(x[:, 0] + x[:, 1]))
    before = newton_stencil(problem, np.inf, problem.identity())
    after = newton_stencil(problem, np.inf, problem.map_of(potential))
    return problem, before, after


@pytest.mark.parametrize("precision", ["double", "mixed"])
def test_an_earlier_factor_solves_a_nearby_matrix_to_float64_accuracy(precision):
    problem, before, after = _two_newton_matrices()
    earlier = GaugedFactorization(problem, before, precision=precision)
    rhs = np.random.default_rng(3).standard_normal(before.shape[0])
    rhs[problem.gauge_nodes] = 0.0
    x, iterations = earlier.solve_nearby(problem, after, rhs, max_iterations=40)
    assert x is not None and 2 <= iterations <= 40
    exact = GaugedFactorization(problem, after).solve(rhs)
    np.testing.assert_allclose(x, exact, rtol=0, atol=1e-10 * np.abs(exact).max())
    assert np.all(x[problem.gauge_nodes] == 0.0)
    scaled, scale = scaled_in_gauge(problem, after, 2)
    y = np.divide(x, scale, out=np.zeros_like(x), where=scale > 0)
    residual = stencils.multiply(scaled, y, problem.grid.shape, 2) - scale * rhs
    norm = np.abs(scaled).sum(axis=1).max()
    assert np.abs(residual).max() <= refinement.ACCEPTED_BACKWARD_ERROR * (
        norm * np.abs(y).max() + np.abs(scale * rhs).max()
    )


def test_a_forcing_term_stops_a_solve_with_an_earlier_factor_at_its_relative_residual():
    """With a Newton forcing term the solve stops once its residual, in the norm of the
    earlier matrix's inverse, is η times the rhs's; forcing is given that norm squared."""
    problem, before, after = _two_newton_matrices(bump=0.5)
    earlier = GaugedFactorization(problem, before)
    rhs = np.random.default_rng(5).standard_normal(before.shape[0])
    rhs[problem.gauge_nodes] = 0.0
    given = []

    def forcing(energy):
        given.append(energy)
        return 1e-3

    exact, exact_iterations = earlier.solve_nearby(problem, after, rhs, 40)
    x, iterations = earlier.solve_nearby(problem, after, rhs, 40, forcing=forcing)
    assert x is not None and 1 <= iterations < exact_iterations
    assert given == [pytest.approx(rhs @ earlier.solve(rhs), rel=1e-10)]
    residual = rhs - stencils.multiply(after, x, problem.grid.shape, 2)
    residual[problem.gauge_nodes] = 0.0
    assert np.sqrt(residual @ earlier.solve(residual)) <= 1e-3 * np.sqrt(given[0]) * (1 + 1e-6)
    assert np.abs(x - exact).max() > 1e-12 * np.abs(exact).max()  # inexact, as asked


def test_the_earlier_factor_preconditions_as_the_earlier_matrix_itself(monkeypatch):
    """Conjugate gradients run on the new matrix in its own unit-diagonal scaling S A S; the
    preconditioner they get is the earlier matrix's inverse in that scaling, S⁻¹ A₀⁻¹ S⁻¹
    (the old factor's own scaling carried over), whatever the two diagonals are."""
    problem, before, after = _two_newton_matrices(bump=0.5)
    earlier = GaugedFactorization(problem, before)
    captured = []
    run = refinement.conjugate_gradients

    def capturing(multiply, precondition, *arguments):
        captured.append(precondition)
        return run(multiply, precondition, *arguments)

    monkeypatch.setattr(refinement, "conjugate_gradients", capturing)
    earlier.solve_nearby(problem, after, np.ones(before.shape[0]), max_iterations=2)
    scale = scaled_in_gauge(problem, after, 2)[1]
    free = scale > 0
    assert np.ptp(scale[free] / scaled_in_gauge(problem, before, 2)[1][free]) > 0.1
    v = np.random.default_rng(9).standard_normal(before.shape[0])
    v[problem.gauge_nodes] = 0.0
    applied = scale * captured[0](scale * v)
    np.testing.assert_allclose(applied, earlier.solve(v), atol=1e-10 * np.abs(applied).max())


def test_a_factor_of_another_reach_is_not_taken():
    problem, before, after = _two_newton_matrices()
    earlier = GaugedFactorization(problem, before)
    with pytest.raises(ValueError, match="reach-1 matrix"):
        earlier.solve_nearby(problem, after, np.ones(before.shape[0]), 40, reach=1)


def test_a_nearby_solve_takes_one_right_hand_side_of_the_grid_size():
    problem, before, after = _two_newton_matrices()
    earlier = GaugedFactorization(problem, before)
    with pytest.raises(ValueError, match=r"rhs must have shape \(729,\), got \(729, 2\)"):
        earlier.solve_nearby(problem, after, np.ones((729, 2)), 40)
    with pytest.raises(ValueError, match=r"rhs must have shape \(729,\), got \(512,\)"):
        earlier.solve_nearby(problem, after, np.ones(512), 40)


def test_a_nearby_solve_that_does_not_converge_in_its_budget_is_refused():
    problem, before, after = _two_newton_matrices(bump=1.0)
    earlier = GaugedFactorization(problem, before)
    rhs = np.random.default_rng(4).standard_normal(before.shape[0])
    x, iterations = earlier.solve_nearby(problem, after, rhs, max_iterations=3)
    assert x is None and 1 <= iterations <= 3


def test_superlu_factors_are_not_reused():
    problem, before, after = _two_newton_matrices()
    earlier = GaugedFactorization(problem, before, method="nested-dissection")
    assert earlier.solve_nearby(problem, after, np.ones(before.shape[0]), 40) == (None, 0)


def test_a_factorization_costs_solves_in_proportion_to_its_dense_work_per_entry():
    structure = front_structure((49, 49, 49), 2)
    assert refinement.solves_per_factorization(structure) == int(
        structure.flops / structure.factor_entries / refinement.FLOPS_PER_ENTRY_PER_SOLVE
    )
    budgets = [
        refinement.solves_per_factorization(front_structure((n,) * 3, 2)) for n in (17, 33, 65)
    ]
    assert budgets == sorted(budgets) and budgets[-1] >= 50


def test_small_grids_factorize_every_newton_step(monkeypatch):
    """Half their factorization costs fewer than MIN_REUSE_ITERATIONS solves (2D up to
    1025², 3D below 39³): no reuse is tried."""
    assert refinement.solves_per_factorization(front_structure((1025, 1025), 2)) // 2 < (
        proximal.MIN_REUSE_ITERATIONS
    )
    problem = _two_newton_matrices()[0]
    tried = []
    monkeypatch.setattr(GaugedFactorization, "solve_nearby", lambda *a, **k: tried.append(1))
    minimize(problem)
    assert tried == []


@pytest.mark.parametrize("precision_intensity", [np.inf, 0.0])
def test_newton_with_reused_factors_finds_the_same_minimizer(monkeypatch, precision_intensity):
    """The later Newton steps of a 9³ problem solved with an earlier factor (a budget forced
    on a grid too small to earn one) end at the minimizer of fresh factorizations."""
    problem = _two_newton_matrices()[0]
    fresh = minimize(problem)
    monkeypatch.setattr(refinement, "MIXED_PRECISION_INTENSITY", precision_intensity)
    monkeypatch.setattr(refinement, "FLOPS_PER_ENTRY_PER_SOLVE", 1.0)
    reused = []
    original = GaugedFactorization.solve_nearby

    def recording(self, *arguments, **options):
        x, iterations = original(self, *arguments, **options)
        reused.append(x is not None)
        return x, iterations

    monkeypatch.setattr(GaugedFactorization, "solve_nearby", recording)
    found = minimize(problem)
    assert reused.count(True) >= 2
    assert problem.norm(found.map - fresh.map) <= 1e-10
    assert abs(found.energy - fresh.energy) <= 1e-12 * (1 + abs(fresh.energy))


def test_steps_far_from_the_minimizer_factorize_afresh(monkeypatch):
    """Until the Newton decrement falls below REUSE_DECREMENT every step factorizes."""
    problem = _two_newton_matrices()[0]
    monkeypatch.setattr(refinement, "FLOPS_PER_ENTRY_PER_SOLVE", 1.0)
    decrements, tried = [], []
    original_solve, original_nearby = GaugedFactorization.solve, GaugedFactorization.solve_nearby

    def solving(self, rhs, forcing=None):
        x = original_solve(self, rhs, forcing)
        decrements.append(float(rhs @ x))
        return x

    def nearby(self, problem, matrix, rhs, *arguments, **options):
        tried.append(len(decrements))
        x, iterations = original_nearby(self, problem, matrix, rhs, *arguments, **options)
        if x is not None:
            decrements.append(float(rhs @ x))
        return x, iterations

    monkeypatch.setattr(GaugedFactorization, "solve", solving)
    monkeypatch.setattr(GaugedFactorization, "solve_nearby", nearby)
    minimize(problem)
    assert tried and all(decrements[k - 1] <= proximal.REUSE_DECREMENT for k in tried)
    assert decrements[0] > proximal.REUSE_DECREMENT  # the start is farther than that


def test_near_the_minimizer_a_new_factorization_is_float64(monkeypatch):
    """Where factors are reused, a factorization after a step of decrement at most
    REUSE_DECREMENT is a float64 one (it preconditions the remaining steps); before, float32
    where the grid's dense work makes it pay. Every earlier factor here fails."""
    problem = _two_newton_matrices(bump=0.5)[0]
    monkeypatch.setattr(refinement, "MIXED_PRECISION_INTENSITY", 0.0)
    monkeypatch.setattr(refinement, "FLOPS_PER_ENTRY_PER_SOLVE", 1.0)
    monkeypatch.setattr(GaugedFactorization, "solve_nearby", lambda *a, **k: (None, 0))
    steps = []
    original = GaugedFactorization.solve

    def recording(self, rhs, forcing=None):
        x = original(self, rhs, forcing)
        steps.append((self.chosen_precision, float(rhs @ x)))
        return x

    monkeypatch.setattr(GaugedFactorization, "solve", recording)
    minimize(problem)
    near = [k for k in range(1, len(steps)) if steps[k - 1][1] <= proximal.REUSE_DECREMENT]
    assert near and near[0] >= 2
    assert [chosen for chosen, _ in steps] == ["mixed"] * near[0] + ["double"] * (
        len(steps) - near[0]
    )


def test_refinements_dearer_than_half_their_limit_turn_the_next_steps_to_float64(monkeypatch):
    """A first refinement of more than half the iterations it may take (as many as a float64
    factorization costs): float32 does not pay for this problem, and the later steps
    factorize in float64, the float32 factor freed first."""
    problem = _two_newton_matrices()[0]
    monkeypatch.setattr(refinement, "MIXED_PRECISION_INTENSITY", 0.0)
    monkeypatch.setattr(refinement, "FLOPS_PER_ENTRY_PER_SOLVE", np.inf)  # no reuse
    monkeypatch.setattr(proximal, "newton_forcing", lambda decrement: 0.0)  # exact solves
    seen = []
    original = GaugedFactorization.solve

    def recording(self, rhs, forcing=None):
        x = original(self, rhs, forcing)
        seen.append((self.chosen_precision, self.precision, self.refinement_iterations))
        return x

    monkeypatch.setattr(GaugedFactorization, "solve", recording)
    minimize(problem)
    first = seen[0][2]
    assert first >= 2 and {chosen for chosen, _, _ in seen} == {"mixed"}  # within 30
    monkeypatch.setattr(refinement, "MAX_ITERATIONS", first)  # the limit: first // 2 < first
    seen.clear()
    single, freed = [], []  # the float32 factor, and whether it was freed at each factorization
    factorize = cholesky.cholesky

    def watching(values, shape, reach, reuse=None, dtype=np.float64):
        freed.append([reference() is None for reference in single])
        factor = factorize(values, shape, reach, reuse, dtype=dtype)
        if dtype == np.float32:
            single.append(weakref.ref(factor.below))
        return factor

    monkeypatch.setattr(cholesky, "cholesky", watching)
    minimize(problem)
    assert seen[0] == ("mixed", "mixed", first)
    assert len(seen) >= 3 and {chosen for chosen, _, _ in seen[1:]} == {"double"}
    assert len(single) == 1 and freed[1] == [True]  # freed before the float64 factorization


def test_a_solve_with_an_earlier_factor_may_cost_half_a_factorization(monkeypatch):
    """Solves with an earlier factor get half the solves a factorization costs; one that
    fails is followed by a factorization in the same step, one that succeeds by another try
    with the same factor."""
    problem = _two_newton_matrices()[0]
    monkeypatch.setattr(refinement, "FLOPS_PER_ENTRY_PER_SOLVE", 1.0)
    budget = refinement.solves_per_factorization(front_structure(problem.grid.shape, 2))
    events, limits = [], []
    original_init, original_nearby = GaugedFactorization.__init__, GaugedFactorization.solve_nearby

    def factorizing(self, *arguments, **options):
        events.append("factorize")
        original_init(self, *arguments, **options)

    def nearby(self, problem, matrix, rhs, max_iterations, **options):
        limits.append(max_iterations)
        failing = "failed" not in events  # the first try fails as if over its limit
        x, iterations = original_nearby(self, problem, matrix, rhs, max_iterations, **options)
        events.append("failed" if failing or x is None else "solved")
        return (None if failing else x), iterations

    monkeypatch.setattr(GaugedFactorization, "__init__", factorizing)
    monkeypatch.setattr(GaugedFactorization, "solve_nearby", nearby)
    minimize(problem)
    assert set(limits) == {budget // 2}
    first = events.index("failed")
    assert events[first + 1] == "factorize" and "solved" in events[first + 1 :]
    for k, event in enumerate(events[:-1]):
        if event == "solved":
            assert events[k + 1] != "factorize"  # the same factor is tried again


def test_a_refinement_may_take_the_solves_a_float64_factorization_costs(monkeypatch):
    problem, _, scaled = _newton_values_3d()
    shape = problem.grid.shape
    assert refinement.MixedPrecisionSolver(scaled, shape, 2).max_iterations == (
        refinement.MAX_ITERATIONS
    )
    monkeypatch.setattr(refinement, "FLOPS_PER_ENTRY_PER_SOLVE", 1.0)
    budget = refinement.solves_per_factorization(front_structure(shape, 2))
    assert budget > refinement.MAX_ITERATIONS
    assert refinement.MixedPrecisionSolver(scaled, shape, 2).max_iterations == budget


def test_the_forcing_term_asks_one_digit_far_from_the_minimizer_and_lambda_near_it():
    assert proximal.newton_forcing(0.25) == proximal.FORCING_MAX == 0.1
    assert proximal.newton_forcing(1e-6) == pytest.approx(1e-3, rel=1e-15)
    assert proximal.newton_forcing(0.0) == proximal.newton_forcing(-1e-20) == 0.0
    assert proximal.newton_forcing(np.nan) == proximal.newton_forcing(np.inf) == 0.0


def _newton_run(monkeypatch, problem, forcing):
    """minimize(problem) with float32 factors refined at every step to `forcing`, and per
    step its decrement and refinement iterations."""
    monkeypatch.setattr(refinement, "MIXED_PRECISION_INTENSITY", 0.0)
    monkeypatch.setattr(proximal, "newton_forcing", forcing)
    steps = []
    original = GaugedFactorization.solve

    def recording(self, rhs, forcing=None):
        x = original(self, rhs, forcing)
        steps.append((float(rhs @ x), self.refinement_iterations))
        return x

    monkeypatch.setattr(GaugedFactorization, "solve", recording)
    found = minimize(problem)
    monkeypatch.undo()
    return found, steps


def test_inexact_newton_steps_keep_newtons_steps_and_minimizer(monkeypatch):
    """Refined only to the forcing term, the float32 solves take fewer iterations far from
    the minimizer, and Newton's method takes as many steps to the same minimizer as with
    solves to float64's accuracy; at the common start the decrement is within the forcing
    term's relative error, squared."""
    problem = _two_newton_matrices(bump=0.5)[0]
    exact, exact_steps = _newton_run(monkeypatch, problem, lambda decrement: 0.0)
    inexact, inexact_steps = _newton_run(monkeypatch, problem, proximal.newton_forcing)
    assert len(inexact_steps) == len(exact_steps) >= 4
    assert inexact_steps[0][1] < exact_steps[0][1]
    reference = exact_steps[0][0]
    eta = proximal.newton_forcing(reference)
    assert 0 < reference - inexact_steps[0][0] <= 2 * eta**2 * reference  # M ≈ A⁻¹
    assert problem.norm(inexact.map - exact.map) <= 1e-10
