"""Ground-truth OT maps of the grid solver, with their two-grid error estimate.

The map is the discrete minimizer of F_h (`minimize`) on a grid of nodes^d nodes. Its error is
estimated from the two finest grids: the same problem is solved on the grid with
(nodes − 1) / 2 + 1 nodes per axis, interpolated to the fine cell centers, and the L²(ϱ0)
difference d is stored with the second-order Richardson estimate d / 3. The grids are
solved from coarse to fine (`grid_cascade`), each Newton solve from CASCADE_COARSEST[d] nodes
on started from the coarser grid's map instead of the continuation in the density floor.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from tqdm import tqdm

from gridflow.checks import flag, open_unit_interval, positive_float, recorded_number
from gridflow.cli import integer
from gridflow.grid import SUPPORTED_DIMENSIONS, Grid
from gridflow.groundtruth.problems import read_source, read_target, source_spec, target_spec
from gridflow.maps import GridMap
from gridflow.measures import Gaussian
from gridflow.problem import FlooredSourceWarning, Problem, check_problem_memory
from gridflow.schemes import minimize

__all__ = [
    "CASCADE_COARSEST",
    "DEFAULT_BOX",
    "MAX_FLOORED_MASS",
    "MAX_RELATIVE_ERROR",
    "MIN_NODES",
    "TARGET_MAX_CUT_MASS",
    "accuracy_problems",
    "build_ground_truth",
    "check_nodes",
    "check_target_mass",
    "floor_problems",
    "grid_cascade",
    "ground_truth_problems",
]

DEFAULT_BOX = 6.0
"""Half-width of the grid's box when neither the command nor the source gives one."""
TARGET_MAX_CUT_MASS = 1e-6
"""The largest target mass the box may leave out (as the source's ``max_cut_mass``)."""
MAX_FLOORED_MASS = 1e-3
"""The largest share of the source mass the density floor may replace in a ground truth
(the paper's mixture at [-6, 6]², floor 1e-6: 6e-5)."""
MAX_RELATIVE_ERROR = 0.1
"""The largest two-grid error estimate of a ground truth, relative to the map's spread
sqrt(Σ w_i |T_i − T̄|²) (the paper's mixture: 20 % at 33², 1.8 % at 65², 0.35 % at 129²)."""
MIN_NODES = 9
"""The smallest --nodes: the coarse grid (nodes - 1) / 2 + 1 must have 5 nodes per axis."""
CASCADE_COARSEST = {1: 65, 2: 65, 3: 17}
"""By dimension: the grids solved for --nodes N are N, (N - 1) / 2 + 1 and further halvings
down to the first with at most this many nodes per axis; a grid is started from the one
before it only when that one has at least this many. Measured on the paper's mixture in 2D:
from 65² the 129² Newton solve takes 19 steps (the continuation ~90); from 33² the 65² one 67
(~88); from 17² the 33² one does not converge in `schemes.WARM_START_MAX_ITER` (the
continuation takes over). In 3D a Newton step costs far more, and the coarse grids resolve a
smooth problem sooner: on the Gaussian pair of the validation, 33³ from 17³ takes 11 steps."""


def check_nodes(value) -> int:
    """Nodes per axis of the fine grid: an odd integer >= MIN_NODES (the grids are nested)."""
    return integer(value, "nodes", MIN_NODES, odd=True)


def grid_cascade(nodes: int, dim: int = 2) -> list[int]:
    """Nodes per axis of the grids solved for `nodes` in dimension `dim`, coarsest first:
    nodes, its halving (nodes - 1) / 2 + 1 (the error estimate's coarser grid), and halvings
    of odd sizes on down to CASCADE_COARSEST[dim] nodes or fewer."""
    if dim not in CASCADE_COARSEST:
        raise ValueError(f"the grid solver works in d = 1, 2 and 3, got dim = {dim!r}")
    sizes = [check_nodes(nodes), (nodes - 1) // 2 + 1]
    while sizes[-1] > CASCADE_COARSEST[dim] and sizes[-1] % 2 == 1:
        sizes.append((sizes[-1] - 1) // 2 + 1)
    return sizes[::-1]


def _box(box, source, dim: int) -> tuple[list[float], list[float]]:
    """(lower, upper) of the grid: ``box`` as a half-width (the box [-box, box]^d), as
    (lower, upper), or None for the source's own box (a density given on a grid) or
    [-6, 6]^d."""
    if box is None:
        own = getattr(source, "box", None)
        if own is not None:
            return [float(v) for v in own[0]], [float(v) for v in own[1]]
        box = DEFAULT_BOX
    if np.ndim(box) == 0:
        half = positive_float(box, "box")
        return [-half] * dim, [half] * dim
    lower, upper = (np.atleast_1d(np.asarray(v, dtype=float)) for v in box)
    if lower.shape != (dim,) or upper.shape != (dim,) or not np.all(lower < upper):
        raise ValueError(f"box must be a half-width or (lower, upper) in d = {dim}, got {box!r}")
    return lower.tolist(), upper.tolist()


def ground_truth_problems(source, target, nodes: int, box, density_floor: float):
    """The `Problem`s of `grid_cascade(nodes)`, coarsest first, the finest last.

    ``source`` and ``target`` are built-in names, files or objects (``read_source``,
    ``read_target``); the dimension is the source's (1, 2 or 3). Raises ValueError before any
    solve on bad input, `GridCutsSourceError` if the box cuts more than the allowed source
    mass, and ValueError if it cuts more than TARGET_MAX_CUT_MASS of the target's.
    """
    source = read_source(source)
    dim = int(source.dim)
    if dim not in SUPPORTED_DIMENSIONS:
        raise ValueError(f"the grid solver works in d = 1, 2 and 3, the source has d = {dim}")
    target = read_target(target, dim)
    nodes = check_nodes(nodes)
    lower, upper = _box(box, source, dim)
    density_floor = open_unit_interval(density_floor, "density_floor")
    check_target_mass(target, lower, upper, _box_origin(box, source))
    check_problem_memory(Grid(lower, upper, [nodes] * dim))  # the finest, before the coarser
    with warnings.catch_warnings():  # floor_problems reports it, with --force's handling
        warnings.simplefilter("ignore", FlooredSourceWarning)
        return [
            Problem(
                Grid(lower, upper, [grid_nodes] * dim), source, target, density_floor=density_floor
            )
            for grid_nodes in grid_cascade(nodes, dim)
        ]


def _box_origin(box, source) -> str:
    """Where the grid's box comes from, for the refusals that name it."""
    if box is not None:
        return "the box"
    if getattr(source, "box", None) is not None:
        return "the box (the source density's own, as no --box is given)"
    return f"the box (the default [-{DEFAULT_BOX:g}, {DEFAULT_BOX:g}]^d, as no --box is given)"


def check_target_mass(target, lower, upper, origin: str = "the box") -> float:
    """The target's mass outside the box, if it is known (Gaussian targets: exact per axis,
    a union bound in d = 2); ValueError above TARGET_MAX_CUT_MASS: the grid's maps would
    have to leave their box to reach γ. ``origin`` names the box in the message."""
    if not target.is_gaussian:
        return float("nan")
    mass = Gaussian(target.mean, target.cov).mass_outside(lower, upper)
    if mass > TARGET_MAX_CUT_MASS:
        raise ValueError(
            f"{origin} {lower}..{upper} leaves out {mass:.2g} of the target's mass (at most "
            f"{TARGET_MAX_CUT_MASS:g}): choose a larger --box"
        )
    return mass


def build_ground_truth(
    source, target, nodes: int, box=None, density_floor: float = 1e-6, progress=True
):
    """Solve the grids of `grid_cascade` in turn and return the finest map.

    Each grid is started from the map of the one before when that has
    CASCADE_COARSEST[d] nodes or more.

    Parameters
    ----------
    source : str or path or source object
        The source ϱ0: a key of ``SOURCE_NAMES``, a mixture's JSON file, or an object of
        ``gridflow.measures`` (``read_source``); its dimension (1, 2 or 3) is the problem's.
    target : str or path or LogConcaveTarget
        The target γ: a key of ``TARGET_NAMES``, a Gaussian's JSON file, or a target or
        Gaussian object (``read_target``).
    nodes : int
        Nodes per axis of the finest grid: an odd integer >= MIN_NODES.
    box : float or (lower, upper) or None
        A half-width (the box [-box, box]^d), the box's corners, or None: the source's
        own box if it has one (a density given on a grid), else [-6, 6]^d.
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
    progress = flag(progress, "progress")
    problems = ground_truth_problems(source, target, nodes, box, density_floor)
    started = time.perf_counter()
    solutions = []
    with tqdm(problems, desc="grids", disable=not progress) as bar:  # closed before any print
        for problem in bar:
            resolved = solutions and solutions[-1].grid.shape[0] >= CASCADE_COARSEST[problem.dim]
            coarser = solutions[-1] if resolved else None
            solutions.append(minimize(problem, progress=progress, coarser=coarser))
    seconds = time.perf_counter() - started
    (coarse_problem, fine_problem), (coarse, fine) = problems[-2:], solutions[-2:]
    difference = fine_problem.norm(fine.map - GridMap.from_discrete_map(coarse)(fine.points))
    centered = fine.map - fine_problem.weights @ fine.map
    metadata = {
        "source": source_spec(fine_problem.source),
        "target": target_spec(fine_problem.target),
        "box": [list(fine_problem.grid.lower), list(fine_problem.grid.upper)],
        "density_floor": fine_problem.density_floor,
        "floored_mass": fine_problem.floored_mass,
        "coarser_shape": list(coarse_problem.grid.shape),
        "difference_to_coarser": difference,
        "error_estimate": difference / 3.0,
        "map_spread": float(np.sqrt(fine_problem.weights @ np.sum(centered**2, axis=1))),
        "target_spread": (
            float(np.sqrt(np.trace(fine_problem.target.cov)))
            if fine_problem.target.is_gaussian
            else None
        ),
        "seconds": seconds,
    }
    return fine, metadata


def floor_problems(problem) -> list[str]:
    """Why a ground truth of ``problem`` would be meaningless before it is solved: a density
    floor that replaces more than MAX_FLOORED_MASS of the source (a box far larger than the
    source, or a floor too high), as a list of reasons (empty when there are none)."""
    if problem.floored_mass > MAX_FLOORED_MASS:
        return [
            f"the density floor replaces {problem.floored_mass:.2g} of the source's mass (at "
            f"most {MAX_FLOORED_MASS:g}): the box is too large for the source, or the floor too "
            f"high; choose a smaller --box or --density-floor"
        ]
    return []


def accuracy_problems(metadata: dict) -> list[str]:
    """Why a solved ground truth is meaningless: a two-grid error estimate above
    MAX_RELATIVE_ERROR of the map's spread (the grid does not resolve the source), as a list
    of reasons (empty when there are none)."""
    need = "a ground truth's accuracy is judged by them"
    estimate = recorded_number(metadata, "error_estimate", "metadata", need)
    spread = recorded_number(metadata, "map_spread", "metadata", need, positive=True)
    reasons = []
    relative = estimate / spread
    if not relative <= MAX_RELATIVE_ERROR:
        reasons.append(
            f"its estimated error {metadata['error_estimate']:.3g} is {relative:.2%} of the "
            f"map's spread {metadata['map_spread']:.3g} (at most {MAX_RELATIVE_ERROR:.0%}): the "
            f"grid does not resolve the problem; choose more --nodes"
        )
    # T#ϱ0 = γ: the images spread as γ does (a necessary condition the two-grid estimate
    # cannot see: both grids miss a target far below the solver's scale alike)
    target_spread = metadata.get("target_spread")
    if target_spread is not None:
        ratio = metadata["map_spread"] / target_spread
        if not abs(ratio - 1.0) <= MAX_RELATIVE_ERROR:
            reasons.append(
                f"its images spread over {metadata['map_spread']:.3g} where the target spreads "
                f"over {target_spread:.3g} (a ratio of {ratio:.3g}; a map onto the target has "
                f"1 within {MAX_RELATIVE_ERROR:.0%}): the problem is outside the solver's scale "
                "or the grid does not resolve it; rescale the target or choose more --nodes"
            )
    return reasons
