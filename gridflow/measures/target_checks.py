"""Checks of a target's V and ∇V by cheap probes (``LogConcaveTarget``, the solvers): exp(−V)
integrable, ∇V the gradient of V, ∇V monotone (λ-strongly, when λ is stated)."""

from __future__ import annotations

import numpy as np

from gridflow.checks import as_float_array

__all__ = ["check_gradient_of_V", "check_growth", "check_monotone_gradient", "values_of_V"]

GROWTH_RADIUS = 1e3
GROWTH_DIRECTIONS = 64
GROWTH_SEED = 0
"""Seed of the random unit directions of ``check_growth`` in d > 2 (the probe is fixed)."""
MONOTONE_TOLERANCE = 1e-8
"""⟨∇V(x) − ∇V(y), x − y⟩ below −this × ‖∇V(x) − ∇V(y)‖ ‖x − y‖ is beyond rounding."""


def check_growth(V, dim: int) -> None:
    """Refuse a V under which exp(−V) is not integrable, as far as a cheap probe can tell.

    For convex V, exp(−V) is integrable iff V(r u) → ∞ as r → ∞ in every direction u, and
    by convexity V(r u) ≥ V(0) + (r / R)(V(R u) − V(0)) for r ≥ R. Checked: V(0) is finite
    and V(R u) > V(0) at R = GROWTH_RADIUS for the 2 axis directions (d = 1) or
    GROWTH_DIRECTIONS unit vectors (d = 2), or the 2d directions ±e_k and GROWTH_DIRECTIONS
    random unit vectors drawn with the fixed seed GROWTH_SEED (d > 2). That refuses V constant
    or linear, or constant along a line; a V growing only between the probed directions is
    not seen here.
    """
    if dim == 1:
        directions = np.array([[1.0], [-1.0]])
    elif dim == 2:
        angles = 2 * np.pi * np.arange(GROWTH_DIRECTIONS) / GROWTH_DIRECTIONS
        directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        directions[np.abs(directions) < 1e-12] = 0.0  # the axes exactly
    else:
        axes = np.vstack([np.eye(dim), -np.eye(dim)])
        random = np.random.default_rng(GROWTH_SEED).standard_normal((GROWTH_DIRECTIONS, dim))
        directions = np.vstack([axes, random / np.linalg.norm(random, axis=1, keepdims=True)])
    probe = np.vstack([np.zeros((1, dim)), GROWTH_RADIUS * directions])
    with np.errstate(over="ignore"):
        values = values_of_V(V, probe)
    if not np.isfinite(values[0]):
        raise ValueError(f"V(0) must be finite, got {values[0]}")
    rise = values[1:] - values[0]
    flat = ~(rise > 1e-9 * (1.0 + abs(values[0])))  # NaN counts as flat
    if flat.any():
        u = directions[np.argmax(flat)]
        raise ValueError(
            f"exp(-V) is not integrable (or numerically flat): V does not grow along the direction "
            f"u = {np.round(u, 3).tolist()} (V({GROWTH_RADIUS:g} u) - V(0) = "
            f"{rise[np.argmax(flat)]:.3g}); γ ∝ exp(-V) needs V → ∞ in every direction "
            f"(e.g. V(y) = |y|²/2 for N(0, I))"
        )


GRADIENT_CHECK_POINTS = 8
"""Points (at radius 0.7, fixed seed GROWTH_SEED) where `check_gradient_of_V` compares
grad_V with central differences of V."""
GRADIENT_TOLERANCE = 1e-2
"""A relative difference above this between grad_V and the differences of V is no rounding."""


def check_gradient_of_V(V, grad_V, dim: int, name: str = "target") -> None:
    """Refuse a grad_V that is visibly not the gradient of V (a factor or a sign off).

    Compared, at GRADIENT_CHECK_POINTS points of norm 0.7 (away from a kink at 0), with the
    central differences of V of step 1e-4 along every axis; a gradient of the wrong shape
    or not finite, or a V not finite there, is left to the callers' own checks.
    """
    directions = np.random.default_rng(GROWTH_SEED).standard_normal((GRADIENT_CHECK_POINTS, dim))
    points = 0.7 * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    with np.errstate(all="ignore"):
        gradients = np.asarray(grad_V(points), dtype=np.float64)
        step = 1e-4
        differences = np.stack(
            [
                (values_of_V(V, points + step * axis) - values_of_V(V, points - step * axis))
                / (2 * step)
                for axis in np.eye(dim)
            ],
            axis=1,
        )
    if gradients.shape != points.shape or not (
        np.isfinite(gradients).all() and np.isfinite(differences).all()
    ):
        return
    gap = np.abs(gradients - differences).max(axis=1)
    size = np.abs(gradients).max(axis=1) + np.abs(differences).max(axis=1)
    bad = np.flatnonzero(gap > GRADIENT_TOLERANCE * size + 1e-8)
    if bad.size:
        k = bad[0]
        raise ValueError(
            f"the {name}'s grad_V is not the gradient of V: at y = "
            f"{np.round(points[k], 3).tolist()} grad_V(y) = {np.round(gradients[k], 4).tolist()}"
            f", the differences of V give {np.round(differences[k], 4).tolist()}; check the "
            "factor and the sign of grad_V (γ ∝ exp(-V), grad_V = ∇V)"
        )


def values_of_V(V, points: np.ndarray) -> np.ndarray:
    """V at points (n, d) as a float64 array of shape exactly (n,): a column (n, 1) is refused
    (it broadcasts against (n,) silently, and fails later with numpy's messages)."""
    values = as_float_array(V(points), "V(y)")
    if values.shape != points.shape[:1]:
        hint = (
            "; return a vector, e.g. 0.5 * (y**2).sum(axis=1), not sum(..., keepdims=True)"
            if values.shape == (len(points), 1)
            else ""
        )
        raise ValueError(
            f"V must return one value per point, shape ({len(points)},) for points y of shape "
            f"{points.shape}, got shape {values.shape}{hint}"
        )
    return values


MONOTONE_CHECK_POINTS = 2000
"""The most points whose pairs `check_monotone_gradient` checks (2 million pairs, ~0.1 s)."""


def check_monotone_gradient(grad_V, points, name: str = "target", lam=None) -> None:
    """Refuse a ∇V that is visibly not monotone on ``points`` (V not convex, §1.3), or not
    ``lam``-strongly monotone when the target states its convexity modulus ``lam``.

    For λ-convex V, ⟨∇V(x) − ∇V(y), x − y⟩ ≥ λ ‖x − y‖² for all x, y. Checked on every pair
    of the points (n, d), or of MONOTONE_CHECK_POINTS of them evenly spaced in the array when
    there are more (the pairs cost n²: 11 s for a batch of 20 000); a pair below it by more
    than MONOTONE_TOLERANCE (‖∇V(x) − ∇V(y)‖ ‖x − y‖ + λ ‖x − y‖²) (beyond rounding) raises
    ValueError naming the pair. Gradients of the wrong shape or non-finite are left to the
    callers' own checks.
    """
    lam = 0.0 if lam is None else float(lam)
    points = np.asarray(points, dtype=np.float64)
    if len(points) > MONOTONE_CHECK_POINTS:
        points = points[np.linspace(0, len(points) - 1, MONOTONE_CHECK_POINTS).astype(int)]
    gradients = np.asarray(grad_V(points), dtype=np.float64)
    if gradients.shape != points.shape or not np.isfinite(gradients).all():
        return
    for i in range(len(points) - 1):  # row by row: memory O(n d), not O(n² d)
        dx = points[i + 1 :] - points[i]
        dg = gradients[i + 1 :] - gradients[i]
        inner = np.einsum("jk,jk->j", dg, dx)
        squared = np.einsum("jk,jk->j", dx, dx)
        scale = np.linalg.norm(dg, axis=1) * np.sqrt(squared)
        bad = np.flatnonzero(inner < -MONOTONE_TOLERANCE * scale)
        weak = np.flatnonzero(inner < lam * squared - MONOTONE_TOLERANCE * (scale + lam * squared))
        if weak.size and not bad.size:
            j = i + 1 + weak[0]
            raise ValueError(
                f"the {name}'s lam = {lam:g} exceeds the convexity of V: <grad_V(x) - "
                f"grad_V(y), x - y> = {inner[weak[0]] / squared[weak[0]]:.3g} |x - y|^2 at x = "
                f"{np.round(points[i], 3).tolist()}, y = {np.round(points[j], 3).tolist()}; "
                "pass a lam with ∇²V ⪰ lam I everywhere (or None when it is unknown)"
            )
        if bad.size:
            j = i + 1 + bad[0]
            raise ValueError(
                f"the {name}'s grad_V is not monotone, so V is not convex: "
                f"<grad_V(x) - grad_V(y), x - y> = {inner[bad[0]]:.3g} < 0 at x = "
                f"{np.round(points[i], 3).tolist()}, y = {np.round(points[j], 3).tolist()}; "
                f"γ ∝ exp(-V) needs a convex V (is grad_V the gradient of V, with the right "
                f"sign?)"
            )
