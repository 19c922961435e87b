"""Ground-truth OT maps of the grid solver, with their two-grid error estimate.

The map is the discrete minimizer of F_h (`minimize`) on a nodes × nodes grid. Its error is
estimated from the two finest grids: the same problem is solved on the grid with
(nodes − 1) / 2 + 1 nodes per axis, interpolated to the fine cell centers, and the L²(ϱ0)
difference d is stored with the second-order Richardson estimate d / 3. The grids are
solved from coarse to fine (`grid_cascade`), each Newton solve from CASCADE_COARSEST nodes
on started from the coarser grid's map instead of the continuation in the density floor.
"""

from __future__ import annotations

import dataclasses
import time

from tqdm import tqdm

from gridflow import examples
from gridflow.checks import open_unit_interval, positive_float
from gridflow.cli import integer
from gridflow.maps import GridMap
from gridflow.schemes import minimize

__all__ = [
    "CASCADE_COARSEST",
    "MIN_NODES",
    "SOURCES",
    "build_ground_truth",
    "check_nodes",
    "grid_cascade",
    "ground_truth_problems",
]

SOURCES = {"paper-mixture": examples.paper_mixture, "gaussian": examples.gaussian_source_2d}
MIN_NODES = 9
"""The smallest --nodes: the coarse grid (nodes - 1) / 2 + 1 must have 5 nodes per axis."""
CASCADE_COARSEST = 65
"""The grids solved for --nodes N are N, (N - 1) / 2 + 1 and further halvings down to the
first with at most this many nodes per axis; a grid is started from the one before it only
when that one has at least this many. Measured on the paper's mixture: from 65² the 129²
Newton solve takes 19 steps (the continuation ~90); from 33² the 65² one 67 (~88); from 17²
the 33² one does not converge in `schemes.WARM_START_MAX_ITER` (the continuation takes over)."""


def check_nodes(value) -> int:
    """Nodes per axis of the fine grid: an odd integer >= MIN_NODES (the grids are nested)."""
    return integer(value, "nodes", MIN_NODES, odd=True)


def grid_cascade(nodes: int) -> list[int]:
    """Nodes per axis of the grids solved for `nodes`, coarsest first: nodes, its halving
    (nodes - 1) / 2 + 1 (the error estimate's coarser grid), and halvings of odd sizes on
    down to CASCADE_COARSEST nodes or fewer."""
    sizes = [check_nodes(nodes), (nodes - 1) // 2 + 1]
    while sizes[-1] > CASCADE_COARSEST and sizes[-1] % 2 == 1:
        sizes.append((sizes[-1] - 1) // 2 + 1)
    return sizes[::-1]


def ground_truth_problems(source: str, nodes: int, box: float, density_floor: float):
    """The `Problem`s of `grid_cascade(nodes)`, coarsest first, the finest last; raises
    ValueError (before any solve) on bad input.

    A box that cuts more than the allowed source mass raises `GridCutsSourceError`.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {sorted(SOURCES)}, got {source!r}")
    nodes = check_nodes(nodes)
    box = positive_float(box, "box")
    density_floor = open_unit_interval(density_floor, "density_floor")
    return [
        dataclasses.replace(
            examples.problem_2d(grid_nodes, source=SOURCES[source](), box=(-box, box)),
            density_floor=density_floor,
        )
        for grid_nodes in grid_cascade(nodes)
    ]


def build_ground_truth(source: str, nodes: int, box: float, density_floor: float, progress=True):
    """Solve the grids of `grid_cascade` in turn and return the finest map.

    Each grid is started from the map of the one before when that has CASCADE_COARSEST
    nodes or more.

    Parameters
    ----------
    source : {"paper-mixture", "gaussian"}
        The source ϱ0 (a key of SOURCES); the target is N(0, I).
    nodes : int
        Nodes per axis of the finest grid: an odd integer >= MIN_NODES.
    box : float
        The box is [-box, box]², box > 0.
    density_floor : float
        The problems' density floor, in (0, 1).
    progress : bool, default True
        Show progress bars.

    Returns
    -------
    fine : DiscreteMap
        The map on the finest grid.
    metadata : dict
        What was solved, the difference to the map of the coarser grid and the error
        estimate made from it, and the seconds spent on all the grids.

    Raises
    ------
    ValueError
        On bad input, before any solve.
    GridCutsSourceError
        If the box cuts more than the allowed source mass.
    """
    problems = ground_truth_problems(source, nodes, box, density_floor)
    started = time.perf_counter()
    solutions = []
    for problem in tqdm(problems, desc="grids", disable=not progress):
        resolved = solutions and solutions[-1].grid.shape[0] >= CASCADE_COARSEST
        coarser = solutions[-1] if resolved else None
        solutions.append(minimize(problem, progress=progress, coarser=coarser))
    seconds = time.perf_counter() - started
    (coarse_problem, fine_problem), (coarse, fine) = problems[-2:], solutions[-2:]
    difference = fine_problem.norm(fine.map - GridMap.from_discrete_map(coarse)(fine.points))
    metadata = {
        "source": source,
        "target": "N(0, I)",
        "box": [-box, box],
        "density_floor": density_floor,
        "floored_mass": fine_problem.floored_mass,
        "coarser_shape": list(coarse_problem.grid.shape),
        "difference_to_coarser": difference,
        "error_estimate": difference / 3.0,
        "seconds": seconds,
    }
    return fine, metadata
