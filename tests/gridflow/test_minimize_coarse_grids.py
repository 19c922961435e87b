"""`minimize` on grids too coarse to resolve the source: the density-floor continuation.

The paper's mixture (component standard deviations ~0.3) on a 17² grid of [-6, 6]²
(h = 0.75) makes the continuation's last stages ill-conditioned (λmin(H_h φ) ~ 1e-6):
Newton's method converges, but in ~200 steps. `python -m gridflow groundtruth --nodes 33`
solves this problem as its coarse grid.
"""

import dataclasses

import numpy as np

from gridflow import examples, minimize


def test_continuation_converges_on_a_grid_that_does_not_resolve_the_source():
    problem = dataclasses.replace(
        examples.problem_2d(17, source=examples.paper_mixture(), box=(-6.0, 6.0)),
        density_floor=1e-6,
    )
    newton = minimize(problem)
    reference = minimize(problem, solver="cvxpy")
    assert abs(newton.energy - reference.energy) <= 1e-9 * (1.0 + abs(reference.energy))
    assert problem.norm(newton.map - reference.map) <= 1e-5
    assert np.all(np.isfinite(newton.map))
