"""The relative entropy of an ICNN map by the change of variables.

The derivation is docs/mathematics.md, 'The exact KL and the score-free gradient'.

For T_θ = ∇φ_θ with φ_θ strictly convex, the pushforward T_θ#ϱ0 has the density
ϱ0(x) / det ∇²φ_θ(x) at y = T_θ(x), so the relative entropy (eq. 1.8) is

    H(T_θ#ϱ0 | γ) = E_ϱ0[ log ϱ0(x) − log det ∇²φ_θ(x) + V(∇φ_θ(x)) ] + log Z_γ,   (★)

γ = exp(−V) / Z_γ. Two uses:

- ``exact_kl``: (★) by Monte Carlo over samples of ϱ0 when ϱ0's density and V, log Z_γ
  are known (Gaussians, Gaussian mixtures), with its standard error. It is 0 exactly
  when T_θ#ϱ0 = γ, and needs no score estimate.
- ``score_free_gradient``: the θ-gradient of the θ-dependent part of (★) on a batch,

      J(θ) = (1/n) Σ_i [ V(T_θ(x_i)) − log det H_i ],   H_i = ∇²φ_θ(x_i),
      ∇_θ J = (1/n) Σ_i [ ⟨∇V(T_θ(x_i)), ∂_θ T_θ(x_i)⟩ − tr(H_i⁻¹ ∂_θ H_i) ],

  an unbiased estimate of ∇_θ H(T_θ#ϱ0 | γ) that needs samples of ϱ0 and ∇V only. The
  first term is ``map_vjp``; the second is ``hessian_vjp`` with the factors
  C_i = R_i⁻ᵀ of the Cholesky factorization H_i = R_i R_iᵀ (C_i C_iᵀ = H_i⁻¹). It is
  the sample version of the grid solver's discrete F_h (the log-det form of §3).

  Both terms come from one fused pair of kernels (``neural.network.kernels``, the comment above
  ``_second_order_reverse``): the Hessian kernel's forward tape gives T_θ(x_i) and H_i,
  H_i is factored in the same kernel; after ∇V(T_θ(x_i)) is evaluated (in Python), one
  reverse sweep over that tape carries both cotangents, u_i on T_θ(x_i) and
  −weight C_i C_iᵀ on H_i, so neither the forward pass nor a separate map-VJP is repeated.

A Hessian that is not positive definite (at a point where φ_θ is flat in some
direction) has no log-determinant: both raise ``DivergenceError`` naming the number of
such points and the smallest eigenvalue, never return NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridflow.checks import as_points, positive_int
from gridflow.measures import as_target
from neural.errors import DivergenceError
from neural.network.architecture import ICNNArchitecture
from neural.network.functions import hessian_unchecked, transport_map_unchecked, use_parallel
from neural.network.kernels import LOG_DET_PARALLEL, LOG_DET_SERIAL, cholesky_kernel

__all__ = [
    "MIN_EVAL_SAMPLES",
    "HessianPass",
    "KLEstimate",
    "check_eval_size",
    "checked_values",
    "cholesky_factors",
    "exact_kl",
    "hessian_pass",
    "relative_entropy",
    "score_free_gradient",
]

MIN_EVAL_SAMPLES = 50
"""The fewest evaluation samples the studies draw: the standard error of a mean of n samples
(the error bar of ``exact_kl``) is itself uncertain by about 1/√(2n), 10 % at 50; below, the
figures would be printed with error bars that do not hold."""


def check_eval_size(n_eval, name: str = "n_eval") -> int:
    """``n_eval`` as an int >= MIN_EVAL_SAMPLES, else ValueError (TypeError if not an int)."""
    n_eval = positive_int(n_eval, name)
    if n_eval < MIN_EVAL_SAMPLES:
        raise ValueError(
            f"{name} must be at least {MIN_EVAL_SAMPLES} (an error bar from n samples is "
            f"itself uncertain by about 1/√(2n), 10 % at {MIN_EVAL_SAMPLES}), got {n_eval}"
        )
    return n_eval


def _not_positive_definite(hessians) -> DivergenceError:
    """The error for Hessians (n, d, d) of which some have no Cholesky factorization."""
    n = hessians.shape[0]
    finite = np.isfinite(hessians).all(axis=(1, 2))
    smallest = np.full(n, -np.inf)
    smallest[finite] = np.linalg.eigvalsh(hessians[finite])[:, 0]
    bad = int(np.sum(smallest <= 0.0))
    what = (
        f"not positive definite at {bad} of {n} points"
        if bad
        else "too ill-conditioned to invert in floating point"
    )
    return DivergenceError(
        f"the Hessian ∇²φ_θ is {what} (smallest eigenvalue {smallest.min():.3e}), so "
        "log det ∇²φ_θ is undefined; an ICNN with strong_convexity > 0 keeps it invertible"
    )


def cholesky_factors(hessians) -> tuple[np.ndarray, np.ndarray]:
    """(log det H_i (n,), C_i = R_i⁻ᵀ (n, d, d)) for symmetric H_i = R_i R_iᵀ, (n, d, d).

    C_i C_iᵀ = H_i⁻¹. Raises ``DivergenceError`` if some H_i is not positive definite
    (numerically: a Cholesky pivot is not > 0, or an entry is not finite).
    """
    hessians = np.ascontiguousarray(hessians, dtype=np.float64)
    if hessians.ndim != 3 or hessians.shape[1] != hessians.shape[2]:
        raise ValueError(f"hessians must have shape (n, d, d), got {hessians.shape}")
    n, d = hessians.shape[:2]
    log_det, factors = np.empty(n), np.empty((n, d, d))
    finite = np.isfinite(hessians).all(axis=(1, 2))
    failures = cholesky_kernel(hessians, log_det, factors) if finite.all() else 1
    if failures or not (np.isfinite(log_det).all() and np.isfinite(factors).all()):
        raise _not_positive_definite(hessians)
    return log_det, factors


def checked_values(function, points, name, shape) -> np.ndarray:
    """``function(points)`` as float64 of the given shape, finite (else DivergenceError)."""
    values = np.asarray(function(points), dtype=np.float64)
    if values.shape != shape:
        raise ValueError(f"{name} must return shape {shape}, got {values.shape}")
    if not np.isfinite(values).all():
        raise DivergenceError(f"{name} is not finite at the samples")
    return values


@dataclass(frozen=True)
class HessianPass:
    """The first kernel's results at samples x: T_θ(x) (n, d), log det ∇²φ_θ(x) (n,),
    S = ∇²φ_θ(x)⁻¹ (n, d, d), and the forward tape the reverse sweep continues."""

    y: np.ndarray
    log_det: np.ndarray
    inverses: np.ndarray
    tape: np.ndarray


def hessian_pass(architecture, theta, x, kernels) -> HessianPass:
    """T_θ(x), log det ∇²φ_θ(x) and its inverse from one forward tape; ``DivergenceError``
    if some ∇²φ_θ(x_i) is not positive definite."""
    table, index = architecture.kernel_tables
    quadratic = architecture.quadratic_matrix(theta)
    tape, y, inverses, log_det, failures = kernels[0](theta, table, index, x, quadratic)
    if failures:  # the kernel's Hessians, bit for bit
        raise _not_positive_definite(hessian_unchecked(architecture, theta, x))
    if architecture.has_quadratic_part:
        y += x @ quadratic  # as in transport_map, bit for bit
    return HessianPass(y, log_det, inverses, tape)


def _quadratic_part_gradient(factor, x, cotangent, inverses, second_seed) -> np.ndarray:
    """∂/∂L of Σ_i [⟨u_i, Q x_i⟩ + β ⟨S_i, Q⟩], Q = L Lᵀ + α I: (Uᵀ X + Xᵀ U + 2 β Σ_i S_i) L."""
    coupling = cotangent.T @ x
    return ((coupling + coupling.T + 2.0 * second_seed * inverses.sum(axis=0)) @ factor).ravel()


def score_free_gradient(
    architecture: ICNNArchitecture, theta, x, target, weight: float = 1.0, extra=None
):
    """θ-gradient of J(θ) = Σ_i weight · [V(T_θ(x_i)) − log det ∇²φ_θ(x_i)] (module docstring).

    ``weight`` 1/n gives the batch mean of (★) (eq. 3.7's normalization); 1 the sum.
    ``extra`` (optional) maps y = T_θ(x) to a cotangent (n, d) whose term
    Σ_i ⟨extra_i, T_θ(x_i)⟩ is differentiated in the same reverse sweep (e.g. a proximal
    term). Returns (gradient (num_params,), y (n, d), log det H (n,)). θ and x are not
    validated (callers check them once); ``target`` is a ``gridflow.LogConcaveTarget``.
    """
    kernels = LOG_DET_PARALLEL if use_parallel(x.shape[0]) else LOG_DET_SERIAL
    forward = hessian_pass(architecture, theta, x, kernels)
    y = forward.y
    cotangent = weight * checked_values(target.grad_V, y, "target.grad_V", y.shape)
    if extra is not None:
        cotangent += extra(y)
    table, index = architecture.kernel_tables
    gradient = kernels[1](forward.tape, theta, table, index, forward.inverses, cotangent, -weight)
    factor = architecture.quadratic_factor(theta)
    if factor is not None:
        gradient[-factor.size :] = _quadratic_part_gradient(
            factor, x, cotangent, forward.inverses, -weight
        )
    return gradient, y, forward.log_det


@dataclass(frozen=True)
class KLEstimate:
    """Monte Carlo estimate of H(T#ϱ0 | γ) by (★): ``value`` ± ``standard_error`` (n samples)."""

    value: float
    standard_error: float
    n: int

    def __str__(self) -> str:
        return f"{self.value:.4g} ± {self.standard_error:.1g}"


def _check_densities(source, target) -> None:
    """The exact KL needs ϱ0's log-density and γ's V and log Z_γ: TypeError/ValueError."""
    if not callable(getattr(source, "log_density", None)):
        raise TypeError(
            "the exact KL needs the source density: source must have log_density(x) -> (n,) "
            f"(e.g. gridflow.GaussianMixture), got {type(source).__name__}"
        )
    if target.log_normalizer is None:
        raise ValueError(
            f"the exact KL needs log Z_γ of the target; {target.name} lacks log_normalizer "
            f"(give it to LogConcaveTarget)"
        )


def relative_entropy(source, target, x, y, log_det) -> KLEstimate:
    """(★) from its pieces at samples x (n, d) of ϱ0: the map's values y = T(x) (n, d) and
    log det ∇T(x) (n,); ``source`` has ``log_density``, ``target`` (a ``LogConcaveTarget``) V and
    log Z_γ. The identity map is y = x, log_det = 0."""
    _check_densities(source, target)
    x = as_points(x, "x", min_points=2)
    n = x.shape[0]
    y = np.asarray(y, dtype=np.float64)
    log_det = np.asarray(log_det, dtype=np.float64)
    if y.shape != x.shape:
        raise ValueError(f"y must have the shape {x.shape} of x, got {y.shape}")
    if log_det.shape not in ((), (n,)):
        raise ValueError(f"log_det must be a number or have shape ({n},), got {log_det.shape}")
    terms = (
        checked_values(source.log_density, x, "source.log_density", (n,))
        - log_det
        + checked_values(target.V, y, "target.V", (n,))
    )
    return KLEstimate(
        value=float(np.mean(terms) + target.log_normalizer),
        standard_error=float(np.std(terms, ddof=1) / np.sqrt(n)),
        n=n,
    )


def exact_kl(architecture: ICNNArchitecture, theta, source, target, x) -> KLEstimate:
    """H(T_θ#ϱ0 | γ) by (★) (the module docstring) on samples of ϱ0, with its standard error.

    Parameters
    ----------
    architecture : ICNNArchitecture
        The architecture of θ.
    theta : array_like
        The flat parameter vector θ, admissible.
    source : object
        ϱ0 with ``log_density(x) -> (n,)`` (``gridflow.Gaussian``, ``GaussianMixture``).
    target : gridflow.LogConcaveTarget or gridflow.Gaussian
        γ with log Z_γ known.
    x : array_like
        Samples of ϱ0, (n, d), n >= 2.

    Returns
    -------
    KLEstimate
        ``value`` ± ``standard_error``.

    Raises
    ------
    TypeError
        If `source` has no ``log_density``.
    ValueError
        If the target lacks log Z_γ, or θ or x is invalid.
    """
    target = as_target(target)
    theta = architecture.check_params(theta, "theta")
    x = as_points(x, "x", dim=architecture.dim, min_points=2)
    _check_densities(source, target)
    log_det, _ = cholesky_factors(hessian_unchecked(architecture, theta, x))
    y = transport_map_unchecked(architecture, theta, x)
    return relative_entropy(source, target, x, y, log_det)
