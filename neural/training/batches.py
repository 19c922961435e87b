"""The fresh batch of every training step, and the checks of every update (Algorithms 1, 2).

Randomness: one batch ``source.sample(rng, n)`` per (inner) step (per outer step with
inner_solver='lbfgs'), in step order, from the Generator passed in; nothing else draws.
Same inputs, same rng state → the same θ, bit for bit.
"""

from __future__ import annotations

import numpy as np

from neural.errors import DivergenceError

__all__ = ["checked_gradient", "checked_params", "checked_step", "draw_batch"]


def draw_batch(sampler, rng, n, dim, method, step) -> np.ndarray:
    """x = sampler(rng, n), (n, dim) and finite (else ValueError naming the method and step)."""
    x = np.asarray(sampler(rng, n), dtype=np.float64)
    if x.shape != (n, dim):
        raise ValueError(f"source.sample(rng, {n}) must return shape ({n}, {dim}), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{method}: the source returned non-finite samples at step {step}")
    return x


def checked_gradient(gradient, method, step) -> np.ndarray:
    """The θ-gradient of a step if it is finite, else ``DivergenceError``."""
    if not np.isfinite(gradient).all():
        raise DivergenceError(f"{method} diverged at step {step}: non-finite θ-gradient")
    return gradient


def checked_params(theta, method, step) -> np.ndarray:
    """θ after a step if it is finite, else ``DivergenceError``."""
    if not np.isfinite(theta).all():
        raise DivergenceError(f"{method} diverged at step {step}: non-finite parameters")
    return theta


def checked_step(optimizer, theta, gradient, state, project, method, step):
    """One optimizer update from a finite gradient to finite parameters (the loops of both
    algorithms), else ``DivergenceError`` naming the method and the step."""
    theta, state = optimizer.step_unchecked(
        theta, checked_gradient(gradient, method, step), state, project
    )
    return checked_params(theta, method, step), state
