"""The ICNN's functions of (architecture, θ, x) (paper §3.4): potential, map, map VJP,
Hessian and Hessian VJP, checked and unchecked.

The checked functions validate the architecture, θ (finite and admissible) and the points;
the ``*_unchecked`` ones, which the training code calls on inputs it has validated, take
them as they are (θ may then be outside the constraint set, e.g. for finite differences).
Both run the kernels of ``neural.network.kernels`` and add the quadratic part
½ xᵀ (L Lᵀ + α I) x (``neural.network.architecture``).
"""

from __future__ import annotations

import numba
import numpy as np

from gridflow.checks import as_float_array, as_points, require_finite
from neural.network.architecture import ICNNArchitecture
from neural.network.kernels import (
    BLOCK_POINTS,
    EVALUATE_PARALLEL,
    EVALUATE_SERIAL,
    HESSIAN,
    HESSIAN_VJP,
    MAP,
    MAP_VJP,
    POTENTIAL,
)

__all__ = [
    "check_architecture",
    "check_cotangent",
    "evaluate",
    "hessian",
    "hessian_unchecked",
    "hessian_vjp",
    "hessian_vjp_unchecked",
    "map_vjp",
    "map_vjp_unchecked",
    "potential",
    "potential_unchecked",
    "transport_map",
    "transport_map_unchecked",
    "use_parallel",
]


def use_parallel(num_points: int) -> bool:
    """Parallel kernels when there are at least two blocks of points and two threads."""
    return num_points > BLOCK_POINTS and numba.get_num_threads() > 1


def evaluate(architecture, theta, x, u, mode, parallel=None):
    """The flat output of a kernel mode (``neural.network.kernels``); inputs unchecked.

    u is the cotangent or the flattened factors of the mode (x where the mode uses none).

    ``parallel`` None chooses by the number of points (``use_parallel``).
    """
    if parallel is None:
        parallel = use_parallel(x.shape[0])
    kernel = EVALUATE_PARALLEL if parallel else EVALUATE_SERIAL
    table, index = architecture.kernel_tables
    return kernel(theta, table, index, x, u, mode)


# Unchecked versions of the checked functions below (θ, x, u already validated; θ may be
# outside the constraint set, e.g. for finite differences).


def potential_unchecked(architecture, theta, x):
    """``potential`` without checks: φ_θ(x_i) (n,)."""
    values = evaluate(architecture, theta, x, x, POTENTIAL)
    if architecture.has_quadratic_part:
        values += 0.5 * np.einsum("ij,jk,ik->i", x, architecture.quadratic_matrix(theta), x)
    return values


def transport_map_unchecked(architecture, theta, x):
    """``transport_map`` without checks: T_θ(x_i) (n, d)."""
    values = evaluate(architecture, theta, x, x, MAP).reshape(x.shape)
    if architecture.has_quadratic_part:
        values += x @ architecture.quadratic_matrix(theta)  # Q symmetric
    return values


def map_vjp_unchecked(architecture, theta, x, u):
    """With the quadratic part: ∂/∂L Σ_i u_iᵀ L Lᵀ x_i = (Uᵀ X + Xᵀ U) L."""
    gradient = evaluate(architecture, theta, x, u, MAP_VJP)
    factor = architecture.quadratic_factor(theta)
    if factor is not None:
        coupling = u.T @ x
        gradient[-factor.size :] = ((coupling + coupling.T) @ factor).ravel()
    return gradient


def hessian_vjp_unchecked(architecture, theta, x, factors):
    """∇_θ Σ_i tr(C_iᵀ ∇²φ(x_i) C_i) for factors C (n, d, K); with L: 2 Σ_i C_i C_iᵀ L."""
    n, dim, directions = factors.shape
    flat = np.ascontiguousarray(factors.reshape(n, dim * directions))
    gradient = evaluate(architecture, theta, x, flat, HESSIAN_VJP)
    factor = architecture.quadratic_factor(theta)
    if factor is not None:
        cotangent = np.einsum("nik,njk->ij", factors, factors)
        gradient[-factor.size :] = (2.0 * cotangent @ factor).ravel()
    return gradient


def hessian_unchecked(architecture, theta, x):
    """∇²φ(x_i) from the d tangent passes along e_1..e_d, run at once (plus Q)."""
    n, dim = x.shape
    out = evaluate(architecture, theta, x, x, HESSIAN).reshape(n, dim + dim * dim)
    hessians = np.ascontiguousarray(out[:, dim:].reshape(n, dim, dim))
    if architecture.has_quadratic_part:
        hessians += architecture.quadratic_matrix(theta)
    return hessians


# ---------------------------------------------------------------------------
# Pure functions on (architecture, θ, x)
# ---------------------------------------------------------------------------


def check_architecture(architecture):
    """Raise TypeError unless ``architecture`` is an ``ICNNArchitecture``."""
    if not isinstance(architecture, ICNNArchitecture):
        raise TypeError(
            f"architecture must be an ICNNArchitecture, got {type(architecture).__name__}"
        )


def check_cotangent(u, x, architecture):
    """The cotangents u as points of the shape of x (one per point), checked."""
    u = as_points(u, "u", dim=architecture.dim)
    if u.shape != x.shape:
        raise ValueError(
            f"u must have the shape of x, {x.shape} (one cotangent per point), got {u.shape}"
        )
    return u


def potential(architecture: ICNNArchitecture, theta, x) -> np.ndarray:
    """φ_θ(x_i) for points x (n, d) -> (n,) (paper §3.4, the ICNN potential)."""
    check_architecture(architecture)
    theta = architecture.check_params(theta, "theta")
    x = as_points(x, "x", dim=architecture.dim)
    return potential_unchecked(architecture, theta, x)


def transport_map(architecture: ICNNArchitecture, theta, x) -> np.ndarray:
    """T_θ(x_i) = ∇_x φ_θ(x_i) for points x (n, d) -> (n, d) (the map of §3.2, §3.4)."""
    check_architecture(architecture)
    theta = architecture.check_params(theta, "theta")
    x = as_points(x, "x", dim=architecture.dim)
    return transport_map_unchecked(architecture, theta, x)


def map_vjp(architecture: ICNNArchitecture, theta, x, u) -> np.ndarray:
    """∇_θ Σ_i ⟨u_i, T_θ(x_i)⟩ -> (num_params,) for points x and cotangents u, both (n, d).

    The gradient of every loss of paper §3.4.1 (eq. 3.7 and the (gd, expl.),
    (gd, impl.) objectives) is of this form, with u computed outside the network
    (e.g. u_i = (ŝ(T(x_i)) + ∇V(T(x_i))) / n for eq. 3.7). Exact (second-order
    reverse mode), see ``neural.network.kernels``.
    """
    check_architecture(architecture)
    theta = architecture.check_params(theta, "theta")
    x = as_points(x, "x", dim=architecture.dim)
    u = check_cotangent(u, x, architecture)
    return map_vjp_unchecked(architecture, theta, x, u)


def hessian_vjp(architecture: ICNNArchitecture, theta, x, factors) -> np.ndarray:
    """∇_θ Σ_i ⟨C_i C_iᵀ, ∇²φ_θ(x_i)⟩ -> (num_params,), for points x (n, d), factors (n, d, K).

    The θ-VJP of the Hessian with the symmetric cotangents S_i = C_i C_iᵀ, i.e. the
    gradient of Σ_i Σ_m c_imᵀ ∇²φ_θ(x_i) c_im with the columns c_im of C_i frozen.
    With C_i C_iᵀ = H_i⁻¹ it is Σ_i tr(H_i⁻¹ ∂_θ H_i) = ∇_θ Σ_i log det H_i, the
    score-free part of the KL gradient (``neural.training.kl``). Third-order
    backpropagation (``neural.network.kernels``, the comment above ``_hessian_vjp_block``).
    """
    check_architecture(architecture)
    theta = architecture.check_params(theta, "theta")
    x = as_points(x, "x", dim=architecture.dim)
    factors = as_float_array(factors, "factors")
    if factors.ndim != 3 or factors.shape[:2] != x.shape or factors.shape[2] < 1:
        raise ValueError(
            f"factors must have shape ({x.shape[0]}, {x.shape[1]}, K), K >= 1 (one (d, K) "
            f"factor per point), got {factors.shape}"
        )
    require_finite(factors, "factors")
    return hessian_vjp_unchecked(architecture, theta, x, factors)


def hessian(architecture: ICNNArchitecture, theta, x) -> np.ndarray:
    """∇²_x φ_θ(x_i) for points x (n, d) -> (n, d, d), positive semidefinite for admissible θ."""
    check_architecture(architecture)
    theta = architecture.check_params(theta, "theta")
    x = as_points(x, "x", dim=architecture.dim)
    return hessian_unchecked(architecture, theta, x)
