"""Least-squares regression of an ICNN map onto given values: min_θ (1/n) Σ_i ‖T_θ(x_i) − z_i‖².

One sample x (n, d), fixed targets z (n, d): the problem is bounded below (by 0), so unlike
the KL (``neural.training.algorithm2``, module docstring) it can be solved on a fixed sample to a
stated tolerance. L-BFGS-B handles the ICNN's constraints Wz_l ≥ 0, w ≥ 0 exactly, as
bounds. Used for the parameterization floor of the error budget (regression onto T*,
``neural.studies.errorbudget``) and for the exact inner solves of the explicit scheme (regression
onto T_k − τ g^k, ``neural.training.methods.ExplicitScheme`` with ``inner_solver='lbfgs'``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.optimize
from threadpoolctl import threadpool_limits

from gridflow.checks import as_points, positive_float, positive_int
from neural.network.architecture import ICNNArchitecture
from neural.network.functions import map_vjp_unchecked, transport_map_unchecked

__all__ = ["MapFit", "projected_gradient_norm", "regress"]


@dataclass(frozen=True)
class MapFit:
    """A regression's outcome: θ, the mean squared residual (1/n) Σ ‖T_θ(x_i) − z_i‖², the
    largest entry of its projected gradient (0 at a constrained stationary point),
    L-BFGS-B's iterations and stopping message."""

    params: np.ndarray
    mean_squared_residual: float
    projected_gradient: float
    iterations: int
    message: str


def projected_gradient_norm(architecture: ICNNArchitecture, theta, gradient) -> float:
    """max |P(∇)| with P zeroing the entries held at their bound 0 that the gradient pushes
    below it (the first-order optimality measure of the bound-constrained problem)."""
    held = architecture.constrained_mask & (theta <= 0.0) & (gradient > 0.0)
    return float(np.max(np.abs(np.where(held, 0.0, gradient)), initial=0.0))


def regress(
    architecture: ICNNArchitecture,
    theta0,
    x,
    targets,
    max_iterations: int,
    tolerance: float = 1e-12,
    *,
    blas_threads: int | None = 1,
) -> MapFit:
    """θ minimizing (1/n) Σ_i ‖T_θ(x_i) − targets_i‖² by L-BFGS-B from θ0, until the projected
    gradient's largest entry is at most ``tolerance`` or after ``max_iterations``.

    ``blas_threads``: BLAS threads during the solve (None: BLAS's own default). L-BFGS-B's
    dense products are too small for threads, which only spin: with a busy process beside,
    300 iterations at n = 2000 took 4.7 times the wall time with OpenBLAS's 2 threads as
    with one on 2 cores (``python -m validation.benchmark_neural --regression``)."""
    theta0 = architecture.check_params(theta0, "theta0")
    x = as_points(x, "x", dim=architecture.dim)
    targets = as_points(targets, "targets", dim=architecture.dim)
    if targets.shape != x.shape:
        raise ValueError(f"targets must have the shape {x.shape} of x, got {targets.shape}")
    max_iterations = positive_int(max_iterations, "max_iterations")
    tolerance = positive_float(tolerance, "tolerance")
    n = x.shape[0]

    def objective(theta):
        residual = transport_map_unchecked(architecture, theta, x) - targets
        value = float(np.einsum("ij,ij->", residual, residual)) / n
        return value, map_vjp_unchecked(architecture, theta, x, (2.0 / n) * residual)

    bounds = [(0.0, None) if held else (None, None) for held in architecture.constrained_mask]
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        result = scipy.optimize.minimize(
            objective, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
            options={"maxiter": max_iterations, "maxcor": 30, "ftol": 0.0, "gtol": tolerance},
        )  # fmt: skip
    theta = architecture.project(result.x)
    value, gradient = objective(theta)
    return MapFit(
        params=theta,
        mean_squared_residual=value,
        projected_gradient=projected_gradient_norm(architecture, theta, gradient),
        iterations=int(result.nit),
        message=str(result.message),
    )
