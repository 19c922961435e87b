"""SGD and Adam on flat parameter vectors, with a projection hook (paper §3.4).

The schemes of paper §3.4 update the ICNN parameters θ with plain gradient descent
(Algorithm 1, method (c)) or Adam (method (d), and the inner solvers of
Algorithm 2); after each update θ is projected onto the constraint set
(Wz_l ≥ 0, w ≥ 0; ``ICNNArchitecture.project``).

Each optimizer is a frozen dataclass of hyperparameters with pure methods:
``state = opt.init(params)`` and ``params, state = opt.step(params, grad, state)``.
Inputs are never modified. ``project`` (a callable θ -> θ) is applied to the
updated parameters.

- SGD:  v ← μ v + g;  θ ← θ − η v  (μ = 0: θ ← θ − η g).
- Adam (Kingma & Ba 2015, as in torch/optax): m ← β1 m + (1 − β1) g,
  v ← β2 v + (1 − β2) g², m̂ = m / (1 − β1^t), v̂ = v / (1 − β2^t),
  θ ← θ − η m̂ / (√v̂ + ε), with t the step count after the increment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gridflow.checks import as_float_array, positive_float, positive_int, require_finite

__all__ = ["SGD", "Adam", "AdamState", "SGDState"]

Projection = Callable[[np.ndarray], np.ndarray]


def _check_vector(value, name: str) -> np.ndarray:
    array = as_float_array(value, name)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a flat parameter vector (1-D), got shape {array.shape}")
    require_finite(array, name)
    return array


def _check_step(params, grad, state, state_type, buffer: str):
    """Validated (params, grad) for ``step``; ``state`` must be a ``state_type`` whose
    array ``buffer`` has the shape of params."""
    params = _check_vector(params, "params")
    grad = _check_vector(grad, "grad")
    if grad.shape != params.shape:
        raise ValueError(f"grad must have the shape of params {params.shape}, got {grad.shape}")
    if not isinstance(state, state_type) or getattr(state, buffer).shape != params.shape:
        raise TypeError(
            f"state must be the {state_type.__name__} returned by init(params) or step() "
            f"for parameters of shape {params.shape}"
        )
    return params, grad


def _apply(project: Projection | None, params: np.ndarray) -> np.ndarray:
    if project is None:
        return params
    projected = np.asarray(project(params), dtype=np.float64)
    if projected.shape != params.shape:
        raise ValueError(
            f"project must return a vector of shape {params.shape}, got {projected.shape}"
        )
    return projected


def _check_beta(value, name):
    value = positive_float(value, name, allow_zero=True)
    if value >= 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {value}")
    return value


@dataclass(frozen=True)
class SGDState:
    """The last update direction v (zeros before the first step) and the step count."""

    velocity: np.ndarray
    step: int = 0


@dataclass(frozen=True)
class SGD:
    """Gradient descent θ ← θ − η g (optionally heavy-ball momentum μ)."""

    learning_rate: float
    momentum: float = 0.0

    def __post_init__(self):
        object.__setattr__(
            self, "learning_rate", positive_float(self.learning_rate, "learning_rate")
        )
        object.__setattr__(self, "momentum", _check_beta(self.momentum, "momentum"))

    def init(self, params) -> SGDState:
        params = _check_vector(params, "params")
        return SGDState(velocity=np.zeros_like(params), step=0)

    def step(
        self, params, grad, state: SGDState, project: Projection | None = None
    ) -> tuple[np.ndarray, SGDState]:
        """One update; returns new (params, state)."""
        params, grad = _check_step(params, grad, state, SGDState, "velocity")
        return self.step_unchecked(params, grad, state, project)

    def step_unchecked(self, params, grad, state: SGDState, project) -> tuple[np.ndarray, SGDState]:
        """``step`` for checked params and grad (the training loops check them once)."""
        velocity = self.momentum * state.velocity + grad
        updated = params - self.learning_rate * velocity
        return _apply(project, updated), SGDState(velocity=velocity, step=state.step + 1)


@dataclass(frozen=True)
class AdamState:
    """First and second moment estimates and the step count t."""

    first_moment: np.ndarray
    second_moment: np.ndarray
    step: int = 0


@dataclass(frozen=True)
class Adam:
    """Adam with bias correction (module docstring).

    ``cosine_steps`` T (optional): the learning rate of step t = 1, ..., T is
    learning_rate · ½(1 + cos(π t/T)) (cosine decay; the last step's rate is 0, so it leaves
    the parameters as they are: the figures in docs/neural.md were measured with this form).
    """

    learning_rate: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    cosine_steps: int | None = None

    def __post_init__(self):
        object.__setattr__(
            self, "learning_rate", positive_float(self.learning_rate, "learning_rate")
        )
        object.__setattr__(self, "beta1", _check_beta(self.beta1, "beta1"))
        object.__setattr__(self, "beta2", _check_beta(self.beta2, "beta2"))
        object.__setattr__(self, "epsilon", positive_float(self.epsilon, "epsilon"))
        if self.cosine_steps is not None:
            object.__setattr__(
                self, "cosine_steps", positive_int(self.cosine_steps, "cosine_steps")
            )

    def rate(self, t: int) -> float:
        """The learning rate of step t = 1, 2, ... (constant, or the cosine decay)."""
        if self.cosine_steps is None:
            return self.learning_rate
        return (
            self.learning_rate
            * 0.5
            * (1.0 + np.cos(np.pi * min(t, self.cosine_steps) / self.cosine_steps))
        )

    def init(self, params) -> AdamState:
        params = _check_vector(params, "params")
        return AdamState(np.zeros_like(params), np.zeros_like(params), 0)

    def step(
        self, params, grad, state: AdamState, project: Projection | None = None
    ) -> tuple[np.ndarray, AdamState]:
        """One update; returns new (params, state)."""
        params, grad = _check_step(params, grad, state, AdamState, "first_moment")
        return self.step_unchecked(params, grad, state, project)

    def step_unchecked(
        self, params, grad, state: AdamState, project
    ) -> tuple[np.ndarray, AdamState]:
        """``step`` for checked params and grad (the training loops check them once)."""
        t = state.step + 1
        first = self.beta1 * state.first_moment + (1.0 - self.beta1) * grad
        second = self.beta2 * state.second_moment + (1.0 - self.beta2) * (grad * grad)
        first_hat = first / (1.0 - self.beta1**t)
        second_hat = second / (1.0 - self.beta2**t)
        updated = params - self.rate(t) * first_hat / (np.sqrt(second_hat) + self.epsilon)
        return _apply(project, updated), AdamState(first, second, t)
