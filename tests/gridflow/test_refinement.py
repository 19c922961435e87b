"""Mixed precision (gridflow.refinement): the float32 multifrontal factor, conjugate gradients
preconditioned by it, the fall-backs to float64, and Newton's method with refined solves
against float64 factorizations."""

import dataclasses
import weakref

import numpy as np
import pytest

from gridflow import cholesky, examples, proximal, refinement, stencils
from gridflow.fronts import front_structure
from gridflow.potentials import GaugedFactorization, scaled_in_gauge
from gridflow.proximal import newton_stencil
from gridflow.schemes import minimize


def _newton_values(nodes=9):
    """A 3D Newton matrix's stencil values, the same in the gauge with unit diagonal (an SPD
    matrix), and its problem."""
    problem = examples.problem_3d(nodes, box=(-3.5, 3.5), density_floor=1e-4, max_cut_mass=1e-3)
    values = newton_stencil(problem, np.inf, problem.identity())
    return problem, values, scaled_in_gauge(problem, values, 2)[0]


@pytest.mark.parametrize(("shape", "reach"), [((40,), 1), ((13, 11), 2), ((7, 6, 9), 2)])
def test_the_float32_factor_is_the_float64_one_rounded(random_grid_matrix, shape, reach):
    matrix = random_grid_matrix(shape, reach, seed=8)
    double = cholesky.cholesky(matrix, shape, reach)
    single = cholesky.cholesky(matrix, shape, reach, dtype=np.float32)
    assert single.diagonal.dtype == single.below.dtype == np.float32
    for ours, theirs in ((single.diagonal, double.diagonal), (single.below, double.below)):
        scale = np.abs(theirs).max()
        assert np.abs(ours - theirs).max() <= 1e-5 * scale
    rhs = np.random.default_rng(9).standard_normal(matrix.shape[0])
    exact = double.solve(rhs)
    error = np.linalg.norm(single.solve(rhs) - exact) / np.linalg.norm(exact)
    assert 1e-10 < error < 1e-4  # a float32 factor's accuracy, not float64's


@pytest.mark.parametrize(("shape", "reach"), [((40,), 1), ((13, 11), 2), ((7, 6, 9), 2)])
def test_a_float32_factor_solves_in_float64_arithmetic(random_grid_matrix, shape, reach):
    """The substitutions with a float32 factor (their sums interleaved) give the solves of
    the same entries held in float64 (their sums in order), to float64 roundoff."""
    matrix = random_grid_matrix(shape, reach, seed=10)
    single = cholesky.cholesky(matrix, shape, reach, dtype=np.float32)
    widened = cholesky.CholeskyFactor(
        single.structure, single.diagonal.astype(float), single.below.astype(float)
    )
    rhs = np.random.default_rng(11).standard_normal((matrix.shape[0], 2))
    expected = widened.solve(rhs)
    np.testing.assert_allclose(
        single.solve(rhs), expected, rtol=0, atol=1e-13 * abs(expected).max()
    )


def test_other_dtypes_and_a_factor_of_another_dtype_are_not_taken(random_grid_matrix):
    shape = (9, 8)
    matrix = random_grid_matrix(shape, 2)
    with pytest.raises(ValueError, match="dtype must be float64 or float32"):
        cholesky.cholesky(matrix, shape, 2, dtype=np.float16)
    double = cholesky.cholesky(matrix, shape, 2)
    single = cholesky.cholesky(matrix, shape, 2, reuse=double, dtype=np.float32)
    assert not np.shares_memory(single.below, double.below)
    again = cholesky.cholesky(matrix, shape, 2, reuse=single, dtype=np.float32)
    assert np.shares_memory(again.below, single.below)


def test_conjugate_gradients_converge_and_report_the_true_backward_error():
    rng = np.random.default_rng(4)
    root = rng.standard_normal((30, 30))
    matrix = root @ root.T + 30 * np.eye(30)
    norm = np.abs(matrix).sum(axis=1).max()
    rhs = rng.standard_normal(30)
    exact = np.linalg.solve(matrix, rhs)

    def backward_error(x):
        residual = np.abs(matrix @ x - rhs).max()
        return residual / (norm * np.abs(x).max() + np.abs(rhs).max())

    x, iterations, error, _ = refinement.conjugate_gradients(
        lambda p: matrix @ p, lambda r: np.linalg.solve(matrix, r), rhs, norm, 10
    )
    assert iterations == 1 and error <= 2.0**-52
    np.testing.assert_allclose(x, exact, rtol=1e-12)
    x, iterations, error, _ = refinement.conjugate_gradients(
        lambda p: matrix @ p, lambda r: r, rhs, norm, 100
    )
    assert 1 < iterations <= 60 and error <= 1e-15
    np.testing.assert_allclose(x, exact, rtol=1e-10)
    x, iterations, error, _ = refinement.conjugate_gradients(
        lambda p: matrix @ p, lambda r: r, rhs, norm, 2
    )
    assert iterations == 2 and error == pytest.approx(backward_error(x)) and error > 1e-8
    assert refinement.conjugate_gradients(lambda p: p, lambda r: r, np.zeros(3), 1.0, 5)[1] == 0


def test_conjugate_gradients_stop_at_their_roundoff_floor_only_when_it_is_acceptable():
    """Products perturbed by relative noise put a floor under the true backward error: at
    1e-15 (acceptable) the iterations stop near it; at 1e-9 the error returned, recomputed
    from A x − b, is that floor (the caller falls back), whatever the recursive residual
    says; a preconditioner giving NaN stops them at once."""
    rng = np.random.default_rng(13)
    root = rng.standard_normal((40, 40))
    matrix = root @ root.T + 40 * np.eye(40)
    norm = np.abs(matrix).sum(axis=1).max()
    rhs = rng.standard_normal(40)

    def solve(multiply, precondition=lambda r: r):
        return refinement.conjugate_gradients(multiply, precondition, rhs, norm, 200)

    def noisy(level):
        return lambda p: (matrix @ p) * (1 + level * rng.standard_normal(40))

    _, iterations, error, _ = solve(noisy(1e-15))
    assert iterations < 200
    assert refinement.BACKWARD_ERROR < error <= refinement.ACCEPTED_BACKWARD_ERROR
    assert solve(noisy(1e-9))[2] > refinement.ACCEPTED_BACKWARD_ERROR
    _, iterations, error, _ = solve(lambda p: matrix @ p, lambda r: np.full_like(r, np.nan))
    assert iterations == 1 and np.isnan(error)


def _ill_conditioned(seed, size=300, condition=1e6):
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((size, size)))[0]
    matrix = (basis * np.logspace(0, np.log10(condition), size)) @ basis.T
    return matrix, np.abs(matrix).sum(axis=1).max(), rng.standard_normal(size)


def test_conjugate_gradients_give_up_early_when_too_slow_for_their_limit():
    """Without preconditioning, a matrix of condition number 1e6 converges far too slowly for
    30 iterations: they stop at the tenth, where the rate so far shows it; preconditioned
    by its inverse computed in float32 they converge in a few."""
    matrix, norm, rhs = _ill_conditioned(14)
    _, iterations, error, _ = refinement.conjugate_gradients(
        lambda p: matrix @ p, lambda r: r, rhs, norm, 30
    )
    assert iterations == 10 and error > refinement.ACCEPTED_BACKWARD_ERROR
    inverse = np.linalg.inv(matrix.astype(np.float32))
    _, iterations, error, _ = refinement.conjugate_gradients(
        lambda p: matrix @ p, lambda r: inverse @ r, rhs, norm, 30
    )
    assert iterations <= 10 and error <= refinement.BACKWARD_ERROR


def test_refined_solves_reach_a_float64_factorizations_accuracy():
    problem, _, scaled = _newton_values()
    shape = problem.grid.shape
    solver = refinement.MixedPrecisionSolver(scaled, shape, 2)
    assert solver.precision == "mixed"
    rhs = np.random.default_rng(5).standard_normal(scaled.shape[0])
    exact = cholesky.cholesky(scaled, shape, 2).solve(rhs)
    x = solver.solve(rhs)
    assert 1 <= solver.iterations[-1] <= 10
    residual = np.abs(stencils.multiply(scaled, x, shape, 2) - rhs).max()
    norm = np.abs(scaled).sum(axis=1).max()
    assert residual <= 1e-15 * (norm * np.abs(x).max() + np.abs(rhs).max())
    np.testing.assert_allclose(x, exact, rtol=0, atol=1e-10 * np.abs(exact).max())


def test_a_matrix_singular_in_float32_is_factorized_in_float64():
    """1 − 1e-10 rounds to 1 in float32: the matrix [[1, 1 − 1e-10], [·, 1]] becomes singular."""
    values = np.array([[0.0, 1.0, 1.0 - 1e-10], [1.0 - 1e-10, 1.0, 0.0]])
    solver = refinement.MixedPrecisionSolver(values, (2,), 1)
    assert solver.precision == "double"
    x = solver.solve(np.array([1.0, -1.0]))
    np.testing.assert_allclose(x, np.linalg.solve([[1, 1 - 1e-10], [1 - 1e-10, 1]], [1, -1]))
    assert solver.iterations == [0]


def test_a_refinement_that_does_not_converge_falls_back_to_float64(monkeypatch):
    problem, _, scaled = _newton_values()
    shape = problem.grid.shape
    monkeypatch.setattr(refinement, "MAX_ITERATIONS", 1)
    solver = refinement.MixedPrecisionSolver(scaled, shape, 2)
    single, freed = weakref.ref(solver.factor.below), []
    factorize = cholesky.cholesky

    def watching(*arguments, **options):
        freed.append(single() is None)
        return factorize(*arguments, **options)

    monkeypatch.setattr(cholesky, "cholesky", watching)
    rhs = np.random.default_rng(6).standard_normal(scaled.shape[0])
    x = solver.solve(rhs)
    monkeypatch.setattr(cholesky, "cholesky", factorize)
    assert solver.precision == "double" and solver.iterations == [0]
    assert freed == [True]  # the float32 factor is freed before the float64 one is allocated
    np.testing.assert_array_equal(x, cholesky.cholesky(scaled, shape, 2).solve(rhs))
    solver.solve(rhs)
    assert solver.iterations == [0, 0]  # the float64 factor stays


def test_the_precision_follows_the_dense_work_per_factor_entry():
    assert front_structure((5,), 1).flops == pytest.approx(125 / 3)
    structure = front_structure((9, 9, 9), 2)
    pieces = [(f.eliminated.size, f.boundary.size) for f in structure.fronts]
    assert structure.flops == pytest.approx(sum(e**3 / 3 + e**2 * b + e * b**2 for e, b in pieces))
    assert structure.factor_entries == sum(e * e + e * b for e, b in pieces)
    assert refinement.choose_precision(structure) == "double"
    assert refinement.choose_precision(front_structure((33, 33, 33), 2)) == "mixed"
    assert refinement.choose_precision(front_structure((1025, 1025), 2)) == "double"


def test_gauged_factorizations_in_either_precision_solve_alike():
    problem, values, _ = _newton_values()
    rhs = problem.gradient_operator.T @ np.random.default_rng(7).standard_normal(
        problem.gradient_operator.shape[0]
    )
    double = GaugedFactorization(problem, values)
    mixed = GaugedFactorization(problem, values, precision="mixed")
    assert (double.precision, mixed.precision) == ("double", "mixed")
    assert GaugedFactorization(problem, values, precision="auto").precision == "double"
    expected = double.solve(rhs)
    np.testing.assert_allclose(mixed.solve(rhs), expected, atol=1e-9 * np.abs(expected).max())
    assert mixed.precision == "mixed"  # the refinement converged: no fall-back
    with pytest.raises(ValueError, match="precision must be one of"):
        GaugedFactorization(problem, values, precision="single")


def test_a_float64_failure_during_a_refined_solve_turns_to_superlu(monkeypatch):
    """When the refinement's float64 fall-back finds the matrix not positive definite (it
    raises LinAlgError inside a solve), the factorization goes on with SuperLU's LU, as a
    float64 factorization that fails at construction does."""
    problem, values, _ = _newton_values()
    rhs = problem.gradient_operator.T @ np.random.default_rng(12).standard_normal(
        problem.gradient_operator.shape[0]
    )
    expected = GaugedFactorization(problem, values, method="nested-dissection").solve(rhs)

    def failing(self, rhs, forcing=None):
        raise np.linalg.LinAlgError("not positive definite")

    monkeypatch.setattr(refinement.MixedPrecisionSolver, "solve", failing)
    mixed = GaugedFactorization(problem, values, precision="mixed")
    found = mixed.solve(rhs)
    assert mixed.precision == "double" and mixed.multifrontal_factor() is None
    np.testing.assert_allclose(found, expected, atol=1e-9 * np.abs(expected).max())
    np.testing.assert_array_equal(mixed.solve(rhs), found)


def test_a_refined_solve_takes_one_right_hand_side():
    problem, _, scaled = _newton_values()
    solver = refinement.MixedPrecisionSolver(scaled, problem.grid.shape, 2)
    with pytest.raises(ValueError, match=r"rhs must have shape \(729,\)"):
        solver.solve(np.ones((729, 2)))


@pytest.mark.parametrize("dim", [2, 3])
def test_newton_with_refined_solves_finds_the_same_minimizer(monkeypatch, dim):
    if dim == 2:
        problem = examples.problem_2d(17, source=examples.paper_mixture(), box=(-6.0, 6.0))
        problem = dataclasses.replace(problem, density_floor=1e-6)
    else:
        problem = _newton_values()[0]
    double = minimize(problem)
    monkeypatch.setattr(refinement, "MIXED_PRECISION_INTENSITY", 0.0)
    monkeypatch.setattr(refinement, "FLOPS_PER_ENTRY_PER_SOLVE", 1.0)  # refinements are cheap
    monkeypatch.setattr(proximal, "MIN_REUSE_ITERATIONS", np.inf)  # every step refines
    solves = []
    original = refinement.MixedPrecisionSolver.solve

    def recording(self, rhs, forcing=None):
        x = original(self, rhs, forcing)
        solves.append(self.iterations[-1] > 0)  # refined (> 0), or solved in float64
        return x

    monkeypatch.setattr(refinement.MixedPrecisionSolver, "solve", recording)
    mixed = minimize(problem)
    if dim == 3:
        assert len(solves) >= 3 and all(solves)
    else:  # float32 cannot factorize the 2D systems where the floor weights dominate
        assert solves.count(True) >= 3
    assert problem.norm(mixed.map - double.map) <= 1e-10
    assert abs(mixed.energy - double.energy) <= 1e-12 * (1 + abs(double.energy))


def test_after_a_fall_back_the_newton_solve_stays_in_float64(monkeypatch):
    """Once a refinement falls back to float64, the later steps of the same Newton solve do
    not try float32 again (its factorization would be lost work)."""
    problem = _newton_values()[0]
    monkeypatch.setattr(refinement, "MIXED_PRECISION_INTENSITY", 0.0)
    monkeypatch.setattr(refinement, "MAX_ITERATIONS", 1)
    chosen = []
    original = GaugedFactorization.solve

    def recording(self, rhs, forcing=None):
        chosen.append(self.chosen_precision)
        return original(self, rhs, forcing)

    monkeypatch.setattr(GaugedFactorization, "solve", recording)
    found = minimize(problem)
    assert len(chosen) >= 3 and chosen[0] == "mixed" and set(chosen[1:]) == {"double"}
    monkeypatch.undo()
    assert problem.norm(found.map - minimize(problem).map) <= 1e-10


@pytest.mark.parametrize("eta", [0.5, 1e-2, 1e-5])
def test_a_forcing_term_stops_conjugate_gradients_at_its_relative_residual(eta):
    """With a Newton step's forcing term the iterations stop once ‖r‖_M ≤ η ‖rhs‖_M (M the
    preconditioner; forcing is given rhsᵀ M rhs): the residual recomputed from the solution
    meets it, in fewer iterations than the full accuracy takes."""
    matrix, norm, rhs = _ill_conditioned(21, condition=1e2)
    jacobi = 1.0 / np.diag(matrix)  # a rough preconditioner: 145 iterations to full accuracy
    given = []

    def forcing(energy):
        given.append(energy)
        return eta

    solve = refinement.conjugate_gradients(
        lambda p: matrix @ p, lambda r: jacobi * r, rhs, norm, 400, forcing
    )
    full = refinement.conjugate_gradients(
        lambda p: matrix @ p, lambda r: jacobi * r, rhs, norm, 400
    )
    assert given == [pytest.approx(rhs @ (jacobi * rhs), rel=1e-14)]
    residual = rhs - matrix @ solve.solution
    assert solve.converged and full.converged
    assert np.sqrt(residual @ (jacobi * residual)) <= eta * np.sqrt(given[0]) * (1 + 1e-8)
    assert solve.iterations < full.iterations
    assert solve.backward_error > refinement.ACCEPTED_BACKWARD_ERROR  # inexact, as asked


def test_a_forcing_term_within_reach_is_not_given_up_for_the_full_accuracy():
    """Unpreconditioned, a matrix of condition number 100 cannot reach float64's accuracy in
    30 iterations (they give up at the tenth, unconverged); a relative residual of 0.1 is
    within reach (15 iterations), and the rate test lets them get it."""
    matrix, norm, rhs = _ill_conditioned(14, condition=1e2)
    hopeless = refinement.conjugate_gradients(lambda p: matrix @ p, lambda r: r, rhs, norm, 30)
    assert hopeless.iterations == 10 and not hopeless.converged
    one_digit = refinement.conjugate_gradients(
        lambda p: matrix @ p, lambda r: r, rhs, norm, 30, forcing=lambda energy: 0.1
    )
    assert one_digit.converged and 10 < one_digit.iterations <= 30
    residual = rhs - matrix @ one_digit.solution
    assert np.linalg.norm(residual) <= 0.1 * np.linalg.norm(rhs) * (1 + 1e-8)


@pytest.mark.parametrize(
    "precondition", [lambda r: -r, lambda r: np.full_like(r, np.nan)], ids=["negative", "nan"]
)
def test_a_forcing_term_needs_a_positive_definite_preconditioner(precondition):
    """rhsᵀ M rhs ≤ 0 or NaN: the forcing term is not consulted and the iterations aim at
    float64's accuracy (here they cannot reach it: not converged)."""
    matrix, norm, rhs = _ill_conditioned(3, size=20, condition=10.0)
    asked = []
    solve = refinement.conjugate_gradients(
        lambda p: matrix @ p, precondition, rhs, norm, 5, lambda energy: asked.append(1) or 0.5
    )
    assert asked == [] and not solve.converged


def test_a_forcing_term_whose_residual_underflows_asks_float64s_accuracy():
    matrix, norm, rhs = _ill_conditioned(3, size=20, condition=10.0)
    solve = refinement.conjugate_gradients(
        lambda p: matrix @ p, np.linalg.inv(matrix).__matmul__, rhs, norm, 5, lambda e: 1e-200
    )
    assert solve.converged and solve.backward_error <= refinement.BACKWARD_ERROR


def test_a_refined_newton_solve_gives_its_forcing_term_the_decrement_estimate():
    """In the float32 factor's scaled system gᵀMg is the decrement gᵀA⁻¹g to float32's
    accuracy, whatever the scaling."""
    problem, values, _ = _newton_values()
    rhs = np.random.default_rng(8).standard_normal(values.shape[0])
    rhs[problem.gauge_nodes] = 0.0
    exact = GaugedFactorization(problem, values).solve(rhs)
    given = []

    def forcing(energy):
        given.append(energy)
        return 1e-2

    inexact = GaugedFactorization(problem, values, precision="mixed").solve(rhs, forcing)
    assert given == [pytest.approx(rhs @ exact, rel=1e-4)]
    assert 0 < rhs @ exact - rhs @ inexact <= 2e-4 * (rhs @ exact)  # CG from 0 underestimates
