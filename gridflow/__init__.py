"""gridflow: the grid reference solver of the constrained Monge flow.

Optimal transport maps as the long-time limit of the gradient flow of
T ↦ KL(T#ϱ0 | γ) constrained to gradients of convex functions (cons.gf), discretized on
grids (d = 1, 2, 3), with exact Gaussian flows in any dimension.
"""

from gridflow import (  # noqa: F401 (_compile_notice, _interrupt_guard: listeners)
    _compile_notice,
    _interrupt_guard,
    gaussian,
    rates,
)
from gridflow.cones import project_onto_cone, project_onto_tangent_cone
from gridflow.functionals import kl_energy, kl_gradient
from gridflow.grid import Grid
from gridflow.groundtruth import (
    MapFileError,
    load_map,
    quantile_map,
    save_map,
)
from gridflow.maps import AffineMap, GridMap, MapDistance, map_distance
from gridflow.measures import (
    CallableSource,
    EmpiricalSource,
    Gaussian,
    GaussianMixture,
    GridDensity,
    LogConcaveTarget,
)
from gridflow.problem import GridCutsSourceError, Problem
from gridflow.schemes import DiscreteMap, Trajectory, UnstableStepError, minimize, solve
from gridflow.solvers import SolverError

__all__ = [
    "AffineMap",
    "CallableSource",
    "DiscreteMap",
    "EmpiricalSource",
    "Gaussian",
    "GaussianMixture",
    "Grid",
    "GridCutsSourceError",
    "GridDensity",
    "GridMap",
    "LogConcaveTarget",
    "MapDistance",
    "MapFileError",
    "Problem",
    "SolverError",
    "Trajectory",
    "UnstableStepError",
    "gaussian",
    "kl_energy",
    "kl_gradient",
    "load_map",
    "map_distance",
    "minimize",
    "project_onto_cone",
    "project_onto_tangent_cone",
    "quantile_map",
    "rates",
    "save_map",
    "solve",
]
