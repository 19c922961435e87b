"""Algorithm 2 of the paper: K outer steps of size τ, each an inner problem (eqs. 3.1, 3.2).

(gd, expl.), method (b), ``ExplicitScheme``: the inner problem is the empirical form of
eq. 3.1 with the Wasserstein gradient g^k frozen at T_k; (gd, impl.), method (a),
``ImplicitScheme``: the proximal step eq. 3.2 with the KL gradient at the current θ. The
inner objectives and their θ-gradients are ``neural.training.gradients``.

Each inner problem is solved by K' Adam steps started at θ_k with a fresh Adam state, a
fresh batch per step; every update is followed by the projection onto the constraint set
(Wz_l ≥ 0, w ≥ 0, ``ICNNArchitecture.project``).

The one exception is the explicit scheme with the score (``ExplicitScheme(inner_solver=
'lbfgs')``): its inner problem is a regression, bounded below, and is solved exactly on one
batch per outer step (``neural.training.regression``). The other inner problems are never
solved to convergence on one fixed batch: on a fixed sample the score-free objective is
unbounded below for a flexible map (a map that is steep at every sample and flat between
them has a large log det there at a bounded V), and an L-BFGS-B solve of it drifts there.
Measured: a (4, 4) network with the quadratic part (49 parameters), 1000 samples, L-BFGS-B
for 3000 iterations: the objective still decreasing (0.590 → 0.368) while weights grew to
~400, and at fresh samples the next objective was 2.5e6.

Start. The paper's schemes in Θ start from an initial parameter θ0; the flow they
discretize starts from T_0 = id (cons.gf), and the schemes in K_ϱ0 from T̂_0 := id
(eqs. 3.1, 3.2). By default (``start='identity'``) the first outer step is anchored at
the identity: its proximal term (implicit) or its regression target x − τ g(x) (explicit)
uses T̂_0 = id in place of T_θ0, and θ0 is only where the first inner solve starts. So the
discrete trajectory follows the flow from id whatever the network's initial map, which
with the default initialization is nearly constant (a collapsed cloud, far from any
finite-KL state). ``start='network'`` anchors the first step at T_θ0 (Algorithm 2 read
literally). The authors' public code anchors its explicit scheme at the identity and its
implicit one at T_θ0. The effect of the anchor over seeds is measured in docs/neural.md
(neural benchmark).
"""

from __future__ import annotations

import numpy as np

from neural.errors import DivergenceError
from neural.network.functions import hessian_unchecked, transport_map_unchecked
from neural.training.batches import checked_params, checked_step, draw_batch
from neural.training.gradients import (
    explicit_logdet_gradient_unchecked,
    explicit_objective_unchecked,
    implicit_gradient_unchecked,
    mean_squared_norm,
    wasserstein_gradient_unchecked,
)
from neural.training.methods import ExplicitScheme
from neural.training.optim import Adam
from neural.training.regression import regress

__all__ = ["run_algorithm2"]


def run_algorithm2(config, architecture, theta, sampler, target, rng, callback):
    """Algorithm 2 for an ``ExplicitScheme`` or ``ImplicitScheme`` configuration from θ:
    (fisher, inner_loss, θ_K, the regressions of inner_solver='lbfgs' or None) as in
    ``neural.training.run.SchemeResult``; callback(k, θ_k) after every outer step."""
    if isinstance(config, ExplicitScheme) and config.inner_solver == "lbfgs":
        return _exact_explicit_loop(config, architecture, theta, sampler, target, rng, callback)
    make_step = _explicit_step if isinstance(config, ExplicitScheme) else _implicit_step
    fisher, inner, theta = _adam_loop(
        config, make_step(config, architecture, target), architecture, theta, sampler, rng,
        callback,
    )  # fmt: skip
    return fisher, inner, theta, None


def _adam_loop(config, inner_step, architecture, theta, sampler, rng, callback):
    """Algorithm 2 with Adam inner solves: K outer steps from θ_k, each K' Adam steps (fresh state,
    fresh batch per step) on ``inner_step(θ, anchor, x, T_k(x))`` ->
    (∇_θ loss, fisher, inner loss).

    T_k = T_θk (anchor θ_k), except T_0 = id (anchor None) with ``start='identity'``
    (eqs. 3.1, 3.2).
    """
    project = architecture._project
    optimizer = Adam(
        learning_rate=config.inner_learning_rate,
        cosine_steps=config.inner_steps if config.inner_cosine_decay else None,
    )
    shape = (config.outer_steps, config.inner_steps)
    fisher, inner_loss = np.empty(shape), np.empty(shape)
    n, dim = config.batch_size, architecture.dim
    for k in range(config.outer_steps):
        theta_k = theta
        state = optimizer.init(theta_k)
        for j in range(config.inner_steps):
            step = (k, j)
            try:
                x = draw_batch(sampler, rng, n, dim, config.name, step)
                anchor = _anchor(config, k, theta_k)
                y_k = _anchor_map(architecture, anchor, x)
                gradient, fisher[k, j], inner_loss[k, j] = inner_step(theta, anchor, x, y_k)
            except DivergenceError as error:
                raise DivergenceError(f"{config.name} diverged at step {step}: {error}") from None
            theta, state = checked_step(
                optimizer, theta, gradient, state, project, config.name, step
            )
        if callback is not None:
            callback(k + 1, theta)
    return fisher, inner_loss, theta


def _anchor(config, k, theta_k):
    """θ_k, the anchor of outer step k, or None for T̂_0 = id (k = 0, start='identity')."""
    return None if k == 0 and config.start == "identity" else theta_k


def _anchor_map(architecture, anchor, x) -> np.ndarray:
    """T_k(x): the anchor's map, or x itself for T̂_0 = id (anchor None)."""
    return x.copy() if anchor is None else transport_map_unchecked(architecture, anchor, x)


def _exact_explicit_loop(config, architecture, theta, sampler, target, rng, callback):
    """Algorithm 2 with (gd, expl.) solved exactly (``ExplicitScheme``, inner_solver='lbfgs'):
    per outer step one batch x, y_k = T_k(x), g^k at y_k, and θ_{k+1} the regression of T_θ
    onto y_k − τ g^k from θ_k."""
    steps, n, dim = config.outer_steps, config.batch_size, architecture.dim
    if n * dim < architecture.num_params:
        raise ValueError(
            f"inner_solver='lbfgs' regresses θ onto one batch: batch_size × d = {n * dim} "
            f"values for {architecture.num_params} parameters would interpolate it; use "
            f"batch_size >= {-(-architecture.num_params // dim)}"
        )
    fisher, inner_loss, fits = np.empty((steps, 1)), np.empty((steps, 1)), []
    for k in range(steps):
        try:
            x = draw_batch(sampler, rng, n, dim, config.name, k)
            y_k = _anchor_map(architecture, _anchor(config, k, theta), x)
            g_k = wasserstein_gradient_unchecked(y_k, target, config.score_eps)
        except DivergenceError as error:
            raise DivergenceError(f"{config.name} diverged at step {k}: {error}") from None
        fit = regress(architecture, theta, x, y_k - config.tau * g_k, config.inner_steps,
                      config.inner_tolerance)  # fmt: skip
        theta = checked_params(fit.params, config.name, k)
        fisher[k, 0] = mean_squared_norm(g_k)
        inner_loss[k, 0] = fit.mean_squared_residual / config.tau**2
        fits.append(fit)
        if callback is not None:
            callback(k + 1, theta)
    return fisher, inner_loss, theta, tuple(fits)


def _explicit_step(config, architecture, target):
    """(gd, expl.) inner step: the explicit objective with F linearized at the frozen T_k
    (g^k = ŝ + ∇V at T_k(x) for kl='score'; the first variation for kl='logdet')."""

    def anchor_hessian(anchor, x):
        if anchor is None:  # T_0 = id
            return np.broadcast_to(np.eye(x.shape[1]), (x.shape[0], x.shape[1], x.shape[1]))
        return hessian_unchecked(architecture, anchor, x)

    def inner_step(theta, anchor, x, y_k):
        if config.kl == "logdet":
            gradient, proximal = explicit_logdet_gradient_unchecked(
                architecture, theta, x, y_k, anchor_hessian(anchor, x), target, config.tau
            )
            return gradient, np.nan, proximal
        g_k = wasserstein_gradient_unchecked(y_k, target, config.score_eps)
        fisher = mean_squared_norm(g_k)
        loss, gradient = explicit_objective_unchecked(architecture, theta, x, y_k, g_k, config.tau)
        return gradient, fisher, loss

    return inner_step


def _implicit_step(config, architecture, target):
    """(gd, impl.) inner step: the KL gradient at the current θ plus the proximal term."""

    def inner_step(theta, anchor, x, y_k):
        gradient, proximal, fisher = implicit_gradient_unchecked(
            architecture, theta, x, y_k, target, config.tau, config.score_eps,
            config.kl_reduction, config.kl,
        )  # fmt: skip
        return gradient, fisher, proximal

    return inner_step
