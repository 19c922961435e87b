"""The input convex neural network (ICNN, paper §3.4) with hand-written derivatives.

Modules, one job each: ``architecture`` (layout of θ, constraints and projection, θ0),
``kernels`` (the numba passes: first order, second order, fused log-det kernels),
``functions`` (potential, map, map VJP, Hessian, Hessian VJP of (architecture, θ, x),
checked and unchecked), ``icnn`` (the ``ICNN`` object), ``initialization`` (θ0 schemes),
``reference`` (plain-numpy versions of the kernels, for the tests and benchmarks).
"""

from neural.network.architecture import ICNNArchitecture, LayerParams
from neural.network.functions import hessian, hessian_vjp, map_vjp, potential, transport_map
from neural.network.icnn import ICNN

__all__ = [
    "ICNN",
    "ICNNArchitecture",
    "LayerParams",
    "hessian",
    "hessian_vjp",
    "map_vjp",
    "potential",
    "transport_map",
]
