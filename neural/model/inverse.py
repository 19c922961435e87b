"""The inverse map ∇φ_θ* of an ICNN map: y ↦ the x with ∇φ_θ(x) = y, by Newton's method.

For a strictly convex φ_θ the inverse of T_θ = ∇φ_θ is the gradient of the convex conjugate,
∇φ_θ*(y) = argmin_x φ_θ(x) − ⟨x, y⟩. The minimizer solves g(x) = ∇φ_θ(x) − y = 0, whose
Jacobian is the Hessian ∇²φ_θ(x) ≻ 0: Newton's step is x ← x − t ∇²φ_θ(x)⁻¹ g(x), for all
points at once.

The step length t comes from backtracking on the merit ½‖g‖². Along the Newton direction
its derivative at t = 0 is −‖g‖² < 0, so a short enough step always decreases it; its only
stationary points are the solutions (∇(½‖g‖²) = ∇²φ_θ g vanishes only with g), so the
iteration cannot stall elsewhere; near the solution t = 1 is accepted and convergence is
quadratic. Unlike the objective φ_θ(x) − ⟨x, y⟩, whose decrease drowns in rounding near the
solution, ‖g‖ can be driven to the rounding floor of ∇φ_θ itself.

∇φ_θ is onto ℝ^d when φ_θ is strongly convex: with a quadratic part whose matrix
Q = L Lᵀ + α I is positive definite (``ICNNArchitecture``), ∇²φ_θ ⪰ Q. Without one, a point
y outside the range of ∇φ_θ has no preimage; Newton's method then does not converge there
and the points are named in the error.
"""

from __future__ import annotations

import warnings

import numpy as np

from gridflow.checks import as_points, positive_float, positive_int
from neural.errors import NotConvergedError
from neural.network.functions import hessian_unchecked, transport_map_unchecked
from neural.network.icnn import ICNN

__all__ = ["INVERSE_TOLERANCE", "inverse_map", "strong_convexity_modulus"]

INVERSE_TOLERANCE = 1e-11
"""Default tolerance of ``inverse_map``: ‖∇φ_θ(x) − y‖ ≤ tolerance · max(1, ‖y‖)."""
_MAX_HALVINGS = 40
_MAX_CONDITION = 1e14
"""A Hessian more ill-conditioned than this gives no Newton step (φ_θ flat there)."""
_RESOLUTION = 16 * np.finfo(np.float64).eps
"""A Newton step below this times max(1, ‖x‖) cannot change x: x is the solution to the
precision of its floating-point coordinates, whatever the residual."""
_ROUNDING_FLOOR = float(np.sqrt(np.finfo(np.float64).eps))
"""Where no step decreases ‖∇φ_θ(x) − y‖ any more (its rounding dominates), a residual below
this times max(1, ‖y‖) is accepted: far preimages, where ∇φ_θ(x) sums terms of the size of
‖x‖ ≫ ‖y‖ (a map nearly flat in some direction), cannot reach 1e-11 · ‖y‖."""
_SUFFICIENT_DECREASE = 1e-4
_COLLAPSED = 1e-12
"""A quadratic part whose smallest eigenvalue is below this times its largest is taken for
none: ∇φ_θ then grows too slowly to be onto in floating point."""


def _norms(points: np.ndarray) -> np.ndarray:
    """‖p_i‖ per row without overflow (rows scaled by their largest entry first)."""
    scale = np.abs(points).max(axis=1)
    safe = np.where(scale > 0, scale, 1.0)
    return scale * np.linalg.norm(points / safe[:, None], axis=1)


def strong_convexity_modulus(network: ICNN) -> float:
    """The smallest eigenvalue of the quadratic part's matrix Q = L Lᵀ + α I: a lower bound of
    ∇²φ_θ everywhere (0 without a quadratic part)."""
    architecture = network.architecture
    if not architecture.has_quadratic_part:
        return 0.0
    return float(max(np.linalg.eigvalsh(architecture.quadratic_matrix(network.params))[0], 0.0))


def inverse_map(
    network: ICNN, y, tolerance: float = INVERSE_TOLERANCE, max_iterations: int = 100
) -> np.ndarray:
    """∇φ_θ*(y): the points x with ∇φ_θ(x) = y, by damped Newton steps (module docstring).

    Parameters
    ----------
    network : ICNN
        The network φ_θ.
    y : array_like
        Points of the target space, (n, d).
    tolerance : float, default INVERSE_TOLERANCE
        Stop at ‖∇φ_θ(x_i) − y_i‖ ≤ tolerance · max(1, ‖y_i‖); or when the Newton step is
        below the resolution of x_i (16 ε max(1, ‖x_i‖): x_i is then exact to rounding); or
        when no step decreases the residual any more and it is at most √ε max(1, ‖y_i‖)
        (the rounding of ∇φ_θ far out).
    max_iterations : int, default 100
        Newton steps at most.

    Returns
    -------
    numpy.ndarray
        x, (n, d).

    Raises
    ------
    NotConvergedError
        If some points reach none of the three stops (outside the range of ∇φ_θ, or where
        φ_θ is flat); the message gives their number, the worst residual and the point.

    Warns
    -----
    RuntimeWarning
        If φ_θ has no strongly convex quadratic part (``strong_convexity_modulus`` 0, or
        below 1e-12 of the quadratic part's largest eigenvalue: a collapsed L Lᵀ): ∇φ_θ
        need not be onto, and far points may have no preimage.
    """
    if not isinstance(network, ICNN):
        raise TypeError(f"network must be an ICNN, got {type(network).__name__}")
    y = as_points(y, "y", dim=network.dim)
    tolerance = positive_float(tolerance, "tolerance")
    max_iterations = positive_int(max_iterations, "max_iterations")
    largest = float(np.abs(network.architecture.quadratic_matrix(network.params)).max())
    if strong_convexity_modulus(network) <= _COLLAPSED * largest:
        warnings.warn(
            "φ_θ has no strongly convex quadratic part (ICNN(..., quadratic=True) or "
            "strong_convexity > 0), so ∇φ_θ need not be onto: points outside its range have "
            "no preimage",
            RuntimeWarning,
            stacklevel=2,
        )
    architecture, theta = network.architecture, network.params

    def residual(points, targets):
        return transport_map_unchecked(architecture, theta, points) - targets

    x = y.copy()
    g = residual(x, y)
    bound = tolerance * np.maximum(1.0, _norms(y))
    active = np.flatnonzero(_norms(g) > bound)
    stuck = []
    for _ in range(max_iterations):
        if active.size == 0:
            break
        hessians = hessian_unchecked(architecture, theta, x[active])
        invertible = np.linalg.cond(hessians) < _MAX_CONDITION
        stuck.append(active[~invertible])
        active = active[invertible]
        direction = np.linalg.solve(hessians[invertible], g[active][:, :, None])[:, :, 0]
        resolved = _norms(direction) <= _RESOLUTION * np.maximum(1.0, _norms(x[active]))
        active = active[~resolved]
        direction = direction[~resolved]
        x[active], g[active], moved = _backtrack(
            x[active], g[active], direction, y[active], residual
        )
        at_floor = _norms(g[active]) <= _ROUNDING_FLOOR * np.maximum(1.0, _norms(y[active]))
        stuck.append(active[~moved & ~at_floor])
        active = active[moved]
        active = active[_norms(g[active]) > bound[active]]
    failed = np.concatenate([*stuck, active])
    if failed.size == 0:
        return x
    norms = _norms(g[failed])
    raise NotConvergedError(
        f"∇φ_θ*(y) did not converge at {failed.size} of {y.shape[0]} points in "
        f"{max_iterations} Newton steps (worst ‖∇φ_θ(x) − y‖ = {norms.max():.3e}, at "
        f"y = {y[failed[np.argmax(norms)]].tolist()}): y outside the range of ∇φ_θ, a flat "
        f"φ_θ (singular Hessian), or a tolerance below the rounding of ∇φ_θ ({tolerance:g})"
    )


def _backtrack(x, g, direction, y, residual):
    """(x − t·direction, its residual, whether it moved) with t = 1, ½, ¼, ... the first
    step that decreases ½‖g‖² sufficiently, per point; points with no such step stay."""
    merit = np.einsum("ij,ij->i", g, g)
    step = np.ones(x.shape[0])
    new_x, new_g = x.copy(), g.copy()
    pending = np.arange(x.shape[0])
    for _ in range(_MAX_HALVINGS):
        trial = x[pending] - step[pending, None] * direction[pending]
        trial_g = residual(trial, y[pending])
        trial_merit = np.einsum("ij,ij->i", trial_g, trial_g)
        accepted = (
            trial_merit <= (1.0 - 2.0 * _SUFFICIENT_DECREASE * step[pending]) * merit[pending]
        )
        new_x[pending[accepted]] = trial[accepted]
        new_g[pending[accepted]] = trial_g[accepted]
        pending = pending[~accepted]
        if pending.size == 0:
            break
        step[pending] *= 0.5
    moved = np.ones(x.shape[0], dtype=bool)
    moved[pending] = False
    return new_x, new_g, moved
