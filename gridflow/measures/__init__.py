"""The vocabulary of measures shared by both solvers: sources ϱ0 and targets γ.

``Gaussian`` and ``GaussianMixture`` serve as sources of either solver (density, mass
outside a box, samples, log-density, score); ``CallableSource`` is a density given by a
function, ``GridDensity`` a density given on a regular grid (an image),
``EmpiricalSource`` a data array; ``LogConcaveTarget`` is the one target type.
"""

from gridflow.measures.gaussians import Gaussian, GaussianMixture
from gridflow.measures.grid_density import GridDensity
from gridflow.measures.sources import CallableSource, EmpiricalSource, as_sampler, as_source
from gridflow.measures.targets import (
    LogConcaveTarget,
    as_target,
    check_growth,
    check_monotone_gradient,
)

__all__ = [
    "CallableSource",
    "EmpiricalSource",
    "Gaussian",
    "GaussianMixture",
    "GridDensity",
    "LogConcaveTarget",
    "as_sampler",
    "as_source",
    "as_target",
    "check_growth",
    "check_monotone_gradient",
]
