"""One problem, two solvers: a source and a target built once go unchanged everywhere.

A mixture and a target of ``gridflow.measures`` pass, as the same objects, to the grid
solver (``examples.problem_2d``, ``minimize``), to the neural solver (``run_method``), to
the flow check and to the error budget; the maps they produce are members of one family
and are measured against each other by ``map_distance``.
"""

import numpy as np
import pytest

from gridflow import (
    EmpiricalSource,
    Gaussian,
    GaussianMixture,
    GridMap,
    LogConcaveTarget,
    examples,
    gaussian,
    map_distance,
    minimize,
)
from neural import ICNN, make_method, run_method
from neural.studies.errorbudget import BudgetProblem, error_budget
from neural.studies.flowcheck import flow_check, gaussian_case, grid_case

MIXTURE = GaussianMixture(
    means=[[-1.0, 0.5], [1.0, -0.5]],
    covs=[[[0.3, 0.05], [0.05, 0.4]], [[0.4, 0.0], [0.0, 0.3]]],
    weights=[0.4, 0.6],
)
TARGET = LogConcaveTarget.gaussian([0.2, -0.1], [[1.2, 0.2], [0.2, 0.8]])


@pytest.fixture(scope="module")
def ground_truth():
    problem = examples.problem_2d(33, source=MIXTURE, target=TARGET, box=(-6.0, 6.0))
    assert problem.source is MIXTURE and problem.target is TARGET
    return GridMap.from_discrete_map(minimize(problem))


def test_one_mixture_and_target_through_both_solvers_and_the_studies(ground_truth):
    rng = np.random.default_rng(0)
    config = make_method("adam", kl="logdet", steps=150, batch_size=200, learning_rate=0.02)
    net0 = ICNN(dim=2, hidden=(6, 6), rng=rng, quadratic=True)
    result = run_method(config, net0, MIXTURE, TARGET, rng)
    x = MIXTURE.sample(rng, 4000)
    trained = map_distance(result.network, ground_truth, x, TARGET)
    untrained = map_distance(lambda p: p, ground_truth, x, TARGET)
    assert trained.uvp < 0.2 * untrained.uvp  # training moved the map toward T*

    case = grid_case("mine", MIXTURE, TARGET, nodes=17, box=6.0, density_floor=1e-4)
    assert case.source is MIXTURE and case.target is TARGET
    check = flow_check(case, tau=0.5, steps=2, size="tiny", variants=[("implicit", "logdet")])
    assert np.all(np.diff(check.reference.kl) < 0)  # Thm 2.13 (i) for the grid scheme

    budget = BudgetProblem("mine", MIXTURE, TARGET, ground_truth)
    np.testing.assert_array_equal(budget.target_cov, TARGET.cov)
    rows = error_budget(
        [budget], widths=[(6,)], quadratic=[True], causes=["logdet"], steps=20, n_eval=2000
    )
    assert len(rows) == 1 and np.isfinite(rows[0].uvp)


def test_a_gaussian_law_is_a_source_and_a_target_of_both_solvers():
    source = Gaussian([0.3, -0.2], [[0.6, 0.25], [0.25, 0.4]])
    target = Gaussian([0.0, 0.0], np.eye(2))
    exact = gaussian.ot_map(source, target)  # an AffineMap, the same family as the grid's
    errors = []
    for nodes in (17, 33):
        problem = examples.problem_2d(nodes, source=source, target=target)
        errors.append(problem.norm(minimize(problem).map - exact(problem.points)))
    assert errors[1] < 0.03 and errors[0] / errors[1] > 3.5  # second order (0.113, 0.024)
    case = gaussian_case("pair", source, target)
    assert case.target.is_gaussian and case.source is source


def test_an_empirical_source_trains_the_network_but_not_the_grid():
    data = MIXTURE.sample(np.random.default_rng(1), 500)
    source = EmpiricalSource(data)
    rng = np.random.default_rng(2)
    rows = source.sample(rng, 7)
    assert rows.shape == (7, 2) and all(any(np.array_equal(r, d) for d in data) for r in rows)
    config = make_method("adam", kl="logdet", steps=5, batch_size=50)
    run_method(config, ICNN(dim=2, hidden=(4,), rng=rng, quadratic=True), source, TARGET, rng)
    with pytest.raises(TypeError, match="samples only"):
        examples.problem_2d(9, source=source, target=TARGET)
