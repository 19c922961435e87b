"""Cone projections: the isotonic fast path against SciPy and the cvxpy reference (d = 1)."""

import numpy as np
import pytest
from scipy.optimize import isotonic_regression as scipy_isotonic_regression

from gridflow import project_onto_cone, project_onto_tangent_cone
from gridflow.cones import active_constraints, isotonic_regression
from gridflow.examples import problem_1d


@pytest.mark.parametrize("size", [2, 17, 1000])
def test_pava_matches_scipy(size):
    rng = np.random.default_rng(size)
    values, weights = rng.standard_normal(size), rng.uniform(0.01, 2.0, size)
    ours = isotonic_regression(values, weights, np.ones(size - 1, dtype=bool))
    np.testing.assert_allclose(
        ours, scipy_isotonic_regression(values, weights=weights).x, atol=1e-14
    )


def test_pava_with_free_links_regresses_each_chain_separately():
    rng = np.random.default_rng(3)
    values, weights = rng.standard_normal(30), rng.uniform(0.5, 1.5, 30)
    imposed = np.ones(29, dtype=bool)
    imposed[[9, 19]] = False
    ours = isotonic_regression(values, weights, imposed)
    for chain in (slice(0, 10), slice(10, 20), slice(20, 30)):
        expected = scipy_isotonic_regression(values[chain], weights=weights[chain]).x
        np.testing.assert_allclose(ours[chain], expected, atol=1e-14)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_projection_onto_cone_fast_equals_cvxpy(seed):
    problem = problem_1d(300)
    rng = np.random.default_rng(seed)
    v = problem.identity() + 0.5 * rng.standard_normal((problem.size, 1))
    fast = project_onto_cone(problem, v)
    reference = project_onto_cone(problem, v, method="cvxpy")
    np.testing.assert_allclose(fast, reference, atol=1e-8)
    assert np.all(np.diff(fast[:, 0]) >= 0)


def test_projection_onto_tangent_cone_fast_equals_cvxpy_with_active_constraints():
    problem = problem_1d(300)
    T = np.round(2 * problem.identity()) / 2  # a staircase: many active constraints
    active = active_constraints(problem, T)
    assert 0 < active.sum() < active.size
    rng = np.random.default_rng(4)
    v = rng.standard_normal((problem.size, 1))
    fast = project_onto_tangent_cone(problem, T, v)
    reference = project_onto_tangent_cone(problem, T, v, method="cvxpy")
    np.testing.assert_allclose(fast, reference, atol=1e-8)
    assert np.all(np.diff(fast[:, 0])[active] >= 0)


def test_tangent_projection_is_a_projection_onto_a_convex_cone():
    """Lemma 2.8 at a random state: ⟨v - w, w⟩ = 0 and ⟨v - w, S - T⟩ ≤ 0 for S ∈ K_h."""
    problem = problem_1d(200)
    rng = np.random.default_rng(5)
    T = np.round(3 * problem.identity()) / 3
    v = rng.standard_normal((problem.size, 1))
    w = project_onto_tangent_cone(problem, T, v)
    assert problem.inner(v, w) == pytest.approx(problem.norm(w) ** 2, rel=1e-12)
    for _ in range(20):
        S = np.sort(rng.standard_normal(problem.size) * 3)[:, None]
        assert problem.inner(v - w, S - T) <= 1e-12


def test_no_active_constraint_means_identity_projection():
    problem = problem_1d(100)
    v = np.random.default_rng(6).standard_normal((problem.size, 1))
    np.testing.assert_array_equal(project_onto_tangent_cone(problem, problem.identity(), v), v)


@pytest.mark.parametrize("tolerance", [-1e-3, 1.0, np.nan])
def test_activity_tolerance_out_of_range_is_refused(tolerance):
    problem = problem_1d(50)
    with pytest.raises(ValueError, match="activity_tolerance"):
        project_onto_tangent_cone(problem, problem.identity(), problem.identity(), tolerance)


def test_unknown_method_is_refused():
    problem = problem_1d(50)
    with pytest.raises(ValueError, match="method"):
        project_onto_cone(problem, problem.identity(), method="magic")
