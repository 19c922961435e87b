"""Algorithm 1 of the paper (eucl.gd): an optimizer step on ∇_θ F of eq. 3.7 per batch.

Method (c), ``EuclideanGD``: θ ← proj(θ − η ∇_θ F); method (d), ``EuclideanAdam``: the
same gradient fed to Adam (not a discretization of a flow, paper §3.4.2 (iii)). ∇_θ F is
``neural.training.gradients.kl_parameter_gradient`` (the score, eq. 3.7, or the score-free form) on
a fresh batch per step; every update is followed by the projection onto the constraint
set (Wz_l ≥ 0, w ≥ 0, ``ICNNArchitecture.project``). Algorithm 1 has no anchor: it
starts at T_θ0.
"""

from __future__ import annotations

import numpy as np

from neural.errors import DivergenceError
from neural.training.batches import checked_step, draw_batch
from neural.training.gradients import fisher_estimate, kl_part_gradient
from neural.training.methods import EuclideanGD
from neural.training.optim import SGD, Adam

__all__ = ["run_algorithm1"]


def run_algorithm1(config, architecture, theta, sampler, target, rng, callback):
    """Algorithm 1 for an ``EuclideanGD`` or ``EuclideanAdam`` configuration from θ:
    (fisher (steps,), None, θ_K); callback(k, θ_k) after every step."""
    if isinstance(config, EuclideanGD):
        optimizer = SGD(learning_rate=config.step_size)
    else:
        optimizer = Adam(
            learning_rate=config.learning_rate,
            cosine_steps=config.steps if config.cosine_decay else None,
        )
    project = architecture._project
    state = optimizer.init(theta)
    fisher = np.empty(config.steps)
    n, dim = config.batch_size, architecture.dim
    for k in range(config.steps):
        try:
            x = draw_batch(sampler, rng, n, dim, config.name, k)
            gradient, _, g = kl_part_gradient(
                architecture, theta, x, target, config.score_eps, config.kl_reduction, config.kl
            )
            fisher[k] = fisher_estimate(g)
        except DivergenceError as error:
            raise DivergenceError(f"{config.name} diverged at step {k}: {error}") from None
        theta, state = checked_step(optimizer, theta, gradient, state, project, config.name, k)
        if callback is not None:
            callback(k + 1, theta)
    return fisher, None, theta
