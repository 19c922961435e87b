"""The θ-gradients of the training schemes (paper §3.2–3.4): eq. 3.7 and the inner objectives.

Functional: F(T_θ) = H(T_θ#ϱ0 | γ), γ ∝ exp(−V) log-concave. Its Wasserstein gradient
at the pushed samples y_i = T_θ(x_i) is estimated by

    g_i = ŝ_θ(y_i) + ∇V(y_i),                                           (bracket of eq. 3.7)

with ŝ_θ the self-entropic score of the cloud (y_1, ..., y_n) (Remark 3.10,
``neural.score.self_entropic_score``). Every loss below is a mean over n fresh
samples x_i ~ ϱ0 and has a gradient of the form ∇_θ Σ_i ⟨u_i, T_θ(x_i)⟩ with a cotangent
u computed outside the network, so ``neural.network.map_vjp`` is the one derivative used:

- Algorithm 1, (eucl.gd) / eq. 3.7: ∇_θ F ≈ (1/n) Σ_i g_iᵀ ∇_θ T_θ(x_i), u_i = g_i / n
  (``kl_parameter_gradient``).
- Algorithm 2, (gd, expl.) (empirical form of eq. 3.1, paper §3.4.1):
      min_θ (1/n) Σ_i ‖ g^k_i + (T_θ(x_i) − T_θk(x_i)) / τ ‖²,
  g^k the Wasserstein gradient at the frozen iterate θ_k, recomputed on the fresh
  batch of every inner step; u_i = (2 / (n τ)) (g^k_i + (T_θ(x_i) − T_θk(x_i)) / τ).
  Equivalently, regress T_θ onto the frozen target T_θk − τ g^k (``explicit_objective``).
- Algorithm 2, (gd, impl.) (empirical form of the proximal step eq. 3.2):
      min_θ H(T_θ#ϱ0 | γ) + (1/(2τ)) (1/n) Σ_i ‖T_θ(x_i) − T_θk(x_i)‖²,
  with the KL gradient (eq. 3.7) recomputed at the current inner θ:
  u_i = (1/n) (g^θ_i + (T_θ(x_i) − T_θk(x_i)) / τ) (``implicit_gradient``).
  The two inner gradients differ only in where g is evaluated (θ_k: forward
  Euler; θ: backward Euler) and by the factor 2/τ, which Adam does not see.

Normalization. The losses are means over the batch, as written in the paper (eq. 3.7
and §3.4.1). The authors' public code (github.com/theodumont/monge-constrained-flow)
differs in one place: its KL θ-gradient is a sum over the batch, not a mean. For
Algorithm 1 with plain GD this scales the step by n (its η = 1e−3 is a mean-gradient
step of 0.1 at n = 100); for the implicit scheme it weighs the KL n times more than the
proximal term (an effective step nτ); Adam (method (d) and every inner solver) is
invariant to a constant scaling of the whole gradient. ``kl_reduction='sum'`` reproduces
that code; the default 'mean' is the paper's text. (Its explicit inner loss, a mean over
the n·d coordinates of ‖T_θ − (T_θk − τ g^k)‖², is ours times τ²/d: same Adam iterates.)

Score-free KL (``kl='logdet'``, every method; ``neural.training.kl``). The KL part of
every gradient above uses the score estimate ŝ (``kl='score'``, the paper's, default).
With ``kl='logdet'`` it is the exact θ-gradient of the batch form of
H(T_θ#ϱ0 | γ) = E[log ϱ0 − log det ∇²φ_θ + V∘T_θ] + const, i.e.
(1/n) Σ_i [⟨∇V(T_θ(x_i)), ∂_θT_θ(x_i)⟩ − tr(H_i⁻¹ ∂_θ H_i)], which needs no score:
Algorithm 1 and the implicit scheme use it in place of eq. 3.7. The explicit scheme
linearizes F at the frozen T_k by its first variation,
F(T) ≈ F(T_k) + (1/n) Σ_i [⟨∇V(T_k(x_i)), T(x_i)⟩ − tr(∇T_k(x_i)⁻¹ ∇T(x_i))] + const
(in expectation the same linear term as ⟨∇ log ϱ_k∘T_k + ∇V∘T_k, T⟩ of the score form, by
an integration by parts; it needs ∇T_k, which is I at T_0 = id), and minimizes that plus
the proximal term
(1/(2τ))(1/n)Σ‖T_θ − T_k‖²; with ``kl='score'`` the linear term is ⟨g^k, T⟩ and
this is the regression above, up to a factor 2/τ and a constant
(``explicit_logdet_gradient``). The Hessians must stay
positive definite (``DivergenceError`` otherwise); an ICNN with ``strong_convexity`` > 0
guarantees it. ``fisher`` is not estimated on this path (NaN).

Natural gradient (paper §3.3): with exact inner solves and τ → 0, the explicit step is
θ_{k+1} − θ_k ≈ −τ G⁺ ∇_θ F, G = (1/n) Σ_i ∇_θT_θ(x_i)ᵀ ∇_θT_θ(x_i) (eq. 3.4, Cor. 3.8);
``map_jacobian`` and ``natural_gradient`` compute it for small networks (tests).

Each public function checks its inputs; its ``*_unchecked`` form (and ``kl_part_gradient``)
is the same computation for inputs the training loops have checked once.
"""

from __future__ import annotations

import numpy as np

from gridflow.checks import as_points, positive_float, require_finite
from gridflow.measures import as_target
from neural.errors import DivergenceError
from neural.network.architecture import ICNNArchitecture
from neural.network.functions import (
    hessian_vjp_unchecked,
    map_vjp,
    map_vjp_unchecked,
    transport_map_unchecked,
)
from neural.score import self_entropic_score
from neural.training.kl import checked_values, cholesky_factors, score_free_gradient

__all__ = [
    "KL_GRADIENTS",
    "KL_REDUCTIONS",
    "check_kl",
    "check_kl_reduction",
    "explicit_logdet_gradient",
    "explicit_logdet_gradient_unchecked",
    "explicit_objective",
    "explicit_objective_unchecked",
    "fisher_estimate",
    "implicit_gradient",
    "implicit_gradient_unchecked",
    "kl_parameter_gradient",
    "kl_part_gradient",
    "map_jacobian",
    "mean_squared_norm",
    "natural_gradient",
    "wasserstein_gradient",
    "wasserstein_gradient_unchecked",
]


def wasserstein_gradient(y, target, eps: float | None = None) -> np.ndarray:
    """g_i = ŝ(y_i) + ∇V(y_i) at pushed samples y (n, d): the bracket of eq. 3.7.

    ŝ is the self-entropic score of the cloud y (Remark 3.10; ``eps=None``: 5% of the
    median squared distance). The estimate of ∇_W H(ρ | γ) at the points of ρ = T#ϱ0.
    Raises ``DivergenceError`` if the cloud has collapsed or ∇V is not finite.
    """
    return wasserstein_gradient_unchecked(as_points(y, "y", min_points=2), as_target(target), eps)


def wasserstein_gradient_unchecked(y, target, eps) -> np.ndarray:
    """``wasserstein_gradient`` at points y for a ``LogConcaveTarget``; the training loops pass the
    map's values unchecked, so a non-finite y (a diverged map) is a ``DivergenceError``."""
    try:
        score = self_entropic_score(y, eps=eps)
    except ValueError as error:  # repeated points (the default eps is 0), or a diverged map
        if not np.isfinite(y).all():
            count = int(np.sum(~np.isfinite(y).all(axis=1)))
            raise DivergenceError(f"the map sent {count} of the samples to inf or NaN") from None
        raise DivergenceError(f"cannot estimate the score of the pushed samples: {error}") from None
    grad_v = np.asarray(target.grad_V(y), dtype=np.float64)
    if grad_v.shape != y.shape:
        raise ValueError(f"target.grad_V must return shape {y.shape}, got {grad_v.shape}")
    result = score + grad_v
    if not np.isfinite(result).all():
        raise DivergenceError("the Wasserstein gradient estimate ŝ + ∇V is not finite")
    return result


KL_REDUCTIONS = ("mean", "sum")


def check_kl_reduction(reduction: str) -> str:
    """``reduction`` if it is 'mean' (eq. 3.7) or 'sum' (the authors' code), else ValueError."""
    if reduction not in KL_REDUCTIONS:
        raise ValueError(f"kl_reduction must be 'mean' (eq. 3.7) or 'sum', got {reduction!r}")
    return reduction


KL_GRADIENTS = ("score", "logdet")
"""How the KL part of a gradient is computed: the self-entropic score (eq. 3.7) or the
score-free log-det form (module docstring)."""


def check_kl(kl: str) -> str:
    """``kl`` if it is 'score' (eq. 3.7, the paper's) or 'logdet' (score-free), else ValueError."""
    if kl not in KL_GRADIENTS:
        raise ValueError(
            f"kl must be 'score' (self-entropic score, eq. 3.7) or 'logdet' (score-free, "
            f"log det of the ICNN Hessian), got {kl!r}"
        )
    return kl


def _kl_weight(reduction: str, n: int) -> float:
    """Weight of Σ_i g_iᵀ∇_θT(x_i): 1/n for eq. 3.7 ('mean'), 1 for 'sum'."""
    return 1.0 / n if check_kl_reduction(reduction) == "mean" else 1.0


def _checked_inputs(architecture: ICNNArchitecture, theta, x) -> tuple[np.ndarray, np.ndarray]:
    """(θ, x) checked once as ``transport_map`` checks them, for the unchecked kernels."""
    return architecture.check_params(theta, "theta"), as_points(x, "x", dim=architecture.dim)


def mean_squared_norm(values) -> float:
    """(1/n) Σ_i ‖values_i‖² of an (n, d) array."""
    return float(np.einsum("ij,ij->", values, values)) / values.shape[0]


def _same_shape(array, x, name) -> np.ndarray:
    """``array`` as float64 if it is finite with the shape (n, d) of the samples x, else
    ValueError."""
    array = np.asarray(array, dtype=np.float64)
    if array.shape != x.shape:
        raise ValueError(f"{name} must have the shape {x.shape} of x, got {array.shape}")
    require_finite(array, name)
    return array


def kl_part_gradient(architecture, theta, x, target, eps, reduction, kl, cotangent=None):
    """(∇_θ [KL + Σ_i ⟨cotangent_i(y), T_θ(x_i)⟩], y = T_θ(x), g or None) in one map-VJP.

    kl='score': the KL gradient of eq. 3.7 with g = ŝ + ∇V at y; kl='logdet': the
    score-free gradient (module docstring, ``neural.training.kl``; g is None). ``cotangent``
    (optional) maps y (n, d) to an extra cotangent, e.g. the implicit proximal term.
    θ and x are checked, ``target`` is a ``LogConcaveTarget`` (callers check them once).
    """
    weight = _kl_weight(reduction, x.shape[0])
    if check_kl(kl) == "logdet":
        gradient, y, _ = score_free_gradient(architecture, theta, x, target, weight, cotangent)
        return gradient, y, None
    y = transport_map_unchecked(architecture, theta, x)
    g = wasserstein_gradient_unchecked(y, target, eps)
    u = weight * g if cotangent is None else weight * g + cotangent(y)
    return map_vjp_unchecked(architecture, theta, x, u), y, g


def fisher_estimate(g) -> float:
    """mean ‖g‖² of the Wasserstein gradient estimate, NaN where none was estimated."""
    return np.nan if g is None else mean_squared_norm(g)


def kl_parameter_gradient(
    architecture: ICNNArchitecture,
    theta,
    x,
    target,
    eps=None,
    reduction: str = "mean",
    kl: str = "score",
):
    """∇_θ H(T_θ#ϱ0 | γ) on samples x (n, d).

    kl='score': (1/n) Σ_i g_iᵀ ∇_θ T_θ(x_i), g = ŝ + ∇V at T_θ(x) (eq. 3.7);
    kl='logdet': the score-free gradient (1/n) Σ_i [⟨∇V(T_θ(x_i)), ∂_θT_θ(x_i)⟩
    − tr(H_i⁻¹ ∂_θH_i)] (module docstring). ``reduction='sum'`` drops the 1/n (as the
    authors' public code does; module docstring, Normalization). Returns (gradient
    (num_params,), g (n, d), None for kl='logdet').
    """
    theta, x = _checked_inputs(architecture, theta, x)
    gradient, _, g = kl_part_gradient(architecture, theta, x, as_target(target), eps, reduction, kl)
    return gradient, g


def explicit_objective(architecture: ICNNArchitecture, theta, x, y_previous, g_previous, tau):
    """Empirical (gd, expl.) objective (paper §3.4.1, eq. 3.1 in Θ) and its θ-gradient.

        L(θ) = (1/n) Σ_i ‖ g_i + (T_θ(x_i) − y_previous_i) / τ ‖²

    with y_previous = T_θk(x) and g_previous = ŝ_θk + ∇V at y_previous (frozen).
    Returns (L, ∇_θ L).
    """
    tau = positive_float(tau, "tau")
    theta, x = _checked_inputs(architecture, theta, x)
    y_previous = _same_shape(y_previous, x, "y_previous")
    g_previous = _same_shape(g_previous, x, "g_previous")
    return explicit_objective_unchecked(architecture, theta, x, y_previous, g_previous, tau)


def explicit_objective_unchecked(architecture, theta, x, y_previous, g_previous, tau):
    """``explicit_objective`` for checked inputs."""
    y = transport_map_unchecked(architecture, theta, x)
    residual = g_previous + (y - y_previous) / tau
    n = x.shape[0]
    return mean_squared_norm(residual), map_vjp_unchecked(
        architecture, theta, x, (2.0 / (n * tau)) * residual
    )


def explicit_logdet_gradient(
    architecture: ICNNArchitecture, theta, x, y_previous, hessian_previous, target, tau
):
    """θ-gradient of the score-free (gd, expl.) objective (module docstring):

        E(θ) = (1/n) Σ_i [⟨∇V(y_previous_i), T_θ(x_i)⟩ − tr(H_k(x_i)⁻¹ ∇²φ_θ(x_i))
                          + ‖T_θ(x_i) − y_previous_i‖² / (2τ)],

    the first variation of H(·#ϱ0 | γ) at the frozen T_k (y_previous = T_k(x),
    hessian_previous = ∇T_k(x), (n, d, d)) plus the proximal term. Exact: the trace
    is linear in ∇²φ_θ. Returns (∇_θ E, proximal term value).
    """
    tau = positive_float(tau, "tau")
    theta = architecture.check_params(theta, "theta")
    x = as_points(x, "x", dim=architecture.dim)
    y_previous = _same_shape(y_previous, x, "y_previous")
    n, d = x.shape
    hessian_previous = np.asarray(hessian_previous, dtype=np.float64)
    if hessian_previous.shape != (n, d, d):
        raise ValueError(
            f"hessian_previous must have shape ({n}, {d}, {d}) (∇T_k at each sample), "
            f"got {hessian_previous.shape}"
        )
    return explicit_logdet_gradient_unchecked(
        architecture, theta, x, y_previous, hessian_previous, as_target(target), tau
    )


def explicit_logdet_gradient_unchecked(
    architecture, theta, x, y_previous, hessian_previous, target, tau
):
    """``explicit_logdet_gradient`` for checked inputs and a ``LogConcaveTarget``."""
    n = x.shape[0]
    _, factors = cholesky_factors(hessian_previous)
    grad_v = checked_values(target.grad_V, y_previous, "target.grad_V", x.shape)
    y = transport_map_unchecked(architecture, theta, x)
    step = y - y_previous
    gradient = map_vjp_unchecked(architecture, theta, x, (grad_v + step / tau) / n)
    gradient -= hessian_vjp_unchecked(architecture, theta, x, factors) / n
    return gradient, mean_squared_norm(step) / (2.0 * tau)


def implicit_gradient(
    architecture: ICNNArchitecture,
    theta,
    x,
    y_previous,
    target,
    tau,
    eps=None,
    reduction: str = "mean",
    kl: str = "score",
):
    """θ-gradient of the empirical (gd, impl.) objective (paper §3.4.1, eq. 3.2 in Θ).

        J(θ) = H(T_θ#ϱ0 | γ) + (1/(2τ)) (1/n) Σ_i ‖T_θ(x_i) − y_previous_i‖²,

    the first term's gradient by eq. 3.7 at the current θ (``reduction='sum'``: without
    its 1/n, as in the authors' public code; the proximal term stays a mean, so this
    weighs the KL n times more, an effective step n τ); ``kl`` as in ``kl_parameter_gradient``.
    Returns (∇_θ J, proximal term value, mean ‖g‖² at the current θ (NaN for 'logdet')).
    """
    tau = positive_float(tau, "tau")
    theta, x = _checked_inputs(architecture, theta, x)
    y_previous = _same_shape(y_previous, x, "y_previous")
    target = as_target(target)
    return implicit_gradient_unchecked(
        architecture, theta, x, y_previous, target, tau, eps, reduction, kl
    )


def implicit_gradient_unchecked(
    architecture, theta, x, y_previous, target, tau, eps, reduction, kl
):
    """``implicit_gradient`` for checked inputs and a ``LogConcaveTarget``."""
    n = x.shape[0]

    def proximal_cotangent(y):
        return (y - y_previous) / (tau * n)

    gradient, y, g = kl_part_gradient(
        architecture, theta, x, target, eps, reduction, kl, cotangent=proximal_cotangent
    )
    proximal = mean_squared_norm(y - y_previous) / (2.0 * tau)
    return gradient, proximal, fisher_estimate(g)


def map_jacobian(architecture: ICNNArchitecture, theta, x) -> np.ndarray:
    """∇_θ T_θ(x_i) stacked: (n, d, num_params), by d·n parameter-VJPs (small networks only)."""
    x = as_points(x, "x", dim=architecture.dim)
    n, d = x.shape
    jacobian = np.empty((n, d, architecture.num_params))
    basis = np.eye(d)
    for i in range(n):
        for j in range(d):
            jacobian[i, j] = map_vjp(architecture, theta, x[i : i + 1], basis[j : j + 1])
    return jacobian


def natural_gradient(architecture: ICNNArchitecture, theta, x, g, rcond: float = 1e-10):
    """Direction of (nat.gf), eq. 3.4: −G⁺ (1/n) Σ_i ∇_θT(x_i)ᵀ g_i, G = (1/n) Σ_i ∇_θTᵀ∇_θT.

    The minimum-norm least-squares solution of min_δ (1/n) Σ_i ‖g_i + ∇_θT_θ(x_i) δ‖²
    (the linearized (gd, expl.) step per unit τ), computed with ``numpy.linalg.lstsq``.
    """
    x = as_points(x, "x", dim=architecture.dim)
    g = as_points(g, "g", dim=architecture.dim)
    jacobian = map_jacobian(architecture, theta, x).reshape(-1, architecture.num_params)
    direction, *_ = np.linalg.lstsq(jacobian, -g.reshape(-1), rcond=rcond)
    return direction
