"""`minimize` started from a coarser grid's map (`coarse_to_fine_start`), and the grids that
`python -m gridflow groundtruth` solves: the warm start must give the direct path's
minimizer, and fall back to the continuation when it does not converge."""

import dataclasses

import numpy as np
import pytest

from gridflow import examples, schemes, warm_start
from gridflow.functionals import discrete_hessian, kl_energy
from gridflow.groundtruth import grid_cascade, ground_truth_problems
from gridflow.schemes import minimize
from gridflow.warm_start import coarse_to_fine_start


def _mixture(nodes):
    problem = examples.problem_2d(nodes, source=examples.paper_mixture(), box=(-6.0, 6.0))
    return dataclasses.replace(problem, density_floor=1e-6)


def test_grid_cascade_halves_down_to_the_coarsest_resolved_grid():
    assert grid_cascade(9) == [5, 9]
    assert grid_cascade(65) == [33, 65]
    assert grid_cascade(129) == [65, 129]
    assert grid_cascade(513) == [65, 129, 257, 513]
    assert grid_cascade(131) == [66, 131]  # an even grid has no nested halving
    problems = ground_truth_problems("gaussian", "standard", 257, 6.0, 1e-6)
    assert [p.grid.shape for p in problems] == [(65, 65), (129, 129), (257, 257)]


def test_the_start_is_strictly_inside_the_cone():
    """From 17² to 33² on the paper's mixture, whose map compresses the tails: every discrete
    Hessian of the start is positive definite, and F_h is finite there."""
    coarse, fine = _mixture(17), _mixture(33)
    start = coarse_to_fine_start(fine, minimize(coarse))
    smallest = np.linalg.eigvalsh(discrete_hessian(fine, fine.map_of(start)))[:, 0]
    assert smallest.min() > 0
    assert np.isfinite(kl_energy(fine, fine.map_of(start)))


def test_the_start_refuses_another_box_or_dimension():
    coarse = minimize(examples.problem_2d(17))
    other_box = examples.problem_2d(33, box=(-4.0, 4.0))
    with pytest.raises(ValueError, match="box"):
        coarse_to_fine_start(other_box, coarse)
    with pytest.raises(ValueError, match="d = 2"):
        coarse_to_fine_start(examples.problem_1d(17), coarse)


def test_warm_start_gives_the_direct_minimizer():
    coarse, fine = examples.problem_2d(17), examples.problem_2d(33)
    direct = minimize(fine)
    warm = minimize(fine, coarser=minimize(coarse))
    assert fine.norm(warm.map - direct.map) < 1e-12
    assert abs(warm.energy - direct.energy) <= 1e-13 * (1 + abs(direct.energy))


def test_a_warm_start_that_does_not_converge_falls_back_to_the_continuation(monkeypatch):
    coarse, fine = examples.problem_2d(17), examples.problem_2d(33)
    direct = minimize(fine)
    monkeypatch.setattr(schemes, "WARM_START_MAX_ITER", 1)
    warm = minimize(fine, coarser=minimize(coarse))
    assert fine.norm(warm.map - direct.map) < 1e-10


@pytest.mark.slow
def test_warm_start_gives_the_direct_minimizer_on_the_mixture():
    """65² from 33²: the barrier damps the first steps in the tails (~67 Newton steps)."""
    coarse, fine = _mixture(33), _mixture(65)
    direct = minimize(fine)
    warm = minimize(fine, coarser=minimize(coarse))
    assert fine.norm(warm.map - direct.map) < 1e-12
    assert abs(warm.energy - direct.energy) <= 1e-13 * (1 + abs(direct.energy))


def _small_3d(nodes):
    return examples.problem_3d(nodes, box=(-3.5, 3.5), density_floor=1e-4, max_cut_mass=1e-3)


def test_the_3d_warm_start_gives_the_direct_minimizer():
    coarse, fine = _small_3d(9), _small_3d(17)
    start = coarse_to_fine_start(fine, minimize(coarse))
    assert np.linalg.eigvalsh(discrete_hessian(fine, fine.map_of(start)))[:, 0].min() > 0
    direct = minimize(fine)
    warm = minimize(fine, coarser=minimize(coarse))
    assert fine.norm(warm.map - direct.map) < 1e-10


def test_convexified_tails_leave_the_bulk_and_make_every_hessian_definite():
    """A potential that is concave along the radius beyond |x| = 4 (the corners of the box):
    φ + θψ is convex at every node and equal to φ where ψ is flat (inside 0.9 × the distance
    to the nearest nonconvex node)."""
    problem = examples.problem_2d(17)
    x = problem.grid.nodes
    radius = np.linalg.norm(x, axis=1)
    phi = 0.5 * radius**2 - 1.5 * 0.5 * np.maximum(radius - 4.0, 0.0) ** 2
    hessians = discrete_hessian(problem, problem.map_of(phi))
    nonconvex = np.linalg.eigvalsh(hessians)[:, 0] <= 0
    assert nonconvex.any()
    start = warm_start._convexified_tails(problem, phi, hessians, nonconvex)
    assert np.linalg.eigvalsh(discrete_hessian(problem, problem.map_of(start)))[:, 0].min() > 0
    center = problem.weights @ problem.points
    distance = np.linalg.norm(problem.hessian_points - center, axis=1)
    inside = np.linalg.norm(x - center, axis=1) <= 0.9 * distance[nonconvex].min()
    assert inside.sum() > 100
    np.testing.assert_array_equal(start[inside], phi[inside])
