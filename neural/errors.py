"""Exceptions of the neural solver."""

from __future__ import annotations

__all__ = ["DivergenceError"]


class DivergenceError(FloatingPointError):
    """A scheme produced non-finite values, collapsed its samples, or met a Hessian ∇²φ_θ
    that is not positive definite (message: method, step, what failed)."""
