"""Exceptions of the neural solver."""

from __future__ import annotations

__all__ = ["DivergenceError", "NotConvergedError"]


class DivergenceError(FloatingPointError):
    """A scheme produced non-finite values, collapsed its samples, or met a Hessian ∇²φ_θ
    that is not positive definite (message: method, step, what failed)."""


class NotConvergedError(ArithmeticError):
    """An iterative solve (the inverse map ∇φ_θ*) did not reach its tolerance; the message
    says where and by how much."""
