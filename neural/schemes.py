"""The paper's training schemes for ICNN maps T_θ = ∇φ_θ (paper §3.2–3.4, Algorithms 1 and 2).

Functional: F(T_θ) = H(T_θ#ϱ0 | γ), γ ∝ exp(−V) log-concave. Its Wasserstein gradient
at the pushed samples y_i = T_θ(x_i) is estimated by

    g_i = ŝ_θ(y_i) + ∇V(y_i),                                           (bracket of eq. 3.7)

with ŝ_θ the self-entropic score of the cloud (y_1, ..., y_n) (Remark 3.10,
``neural.score.self_entropic_score``). Every loss below is a mean over n fresh
samples x_i ~ ϱ0 and has a gradient of the form ∇_θ Σ_i ⟨u_i, T_θ(x_i)⟩ with a cotangent
u computed outside the network, so ``neural.icnn.map_vjp`` is the one derivative used:

- Algorithm 1, (eucl.gd) / eq. 3.7: ∇_θ F ≈ (1/n) Σ_i g_iᵀ ∇_θ T_θ(x_i), u_i = g_i / n.
  Method (c): θ ← proj(θ − η ∇_θ F) (``EuclideanGD``); method (d): the same gradient
  fed to Adam (``EuclideanAdam``; not a discretization of a flow, paper §3.4.2 (iii)).
- Algorithm 2, (gd, expl.) (empirical form of eq. 3.1, paper §3.4.1):
      min_θ (1/n) Σ_i ‖ g^k_i + (T_θ(x_i) − T_θk(x_i)) / τ ‖²,
  g^k the Wasserstein gradient at the frozen iterate θ_k, recomputed on the fresh
  batch of every inner step; u_i = (2 / (n τ)) (g^k_i + (T_θ(x_i) − T_θk(x_i)) / τ).
  Equivalently, regress T_θ onto the frozen target T_θk − τ g^k (``ExplicitScheme``).
- Algorithm 2, (gd, impl.) (empirical form of the proximal step eq. 3.2):
      min_θ H(T_θ#ϱ0 | γ) + (1/(2τ)) (1/n) Σ_i ‖T_θ(x_i) − T_θk(x_i)‖²,
  with the KL gradient (eq. 3.7) recomputed at the current inner θ:
  u_i = (1/n) (g^θ_i + (T_θ(x_i) − T_θk(x_i)) / τ) (``ImplicitScheme``).
  The two inner gradients differ only in where g is evaluated (θ_k: forward
  Euler; θ: backward Euler) and by the factor 2/τ, which Adam does not see.

Each inner problem of Algorithm 2 is solved by K' Adam steps started at θ_k with a fresh
Adam state, a fresh batch per step; every update is followed by the projection onto the
constraint set (Wz_l ≥ 0, w ≥ 0, ``ICNNArchitecture.project``). Defaults are the paper's
hyperparameters (§3.4.2 (iii), DESIGN §4): n = 100; (a) implicit τ = 0.4, K = 10,
K' = 100, inner Adam lr 0.1; (b) explicit the same; (c) Euclidean GD η = 1e−3, 3000
steps; (d) Adam lr 0.05, 1000 steps.

Natural gradient (paper §3.3): with exact inner solves and τ → 0, the explicit step is
θ_{k+1} − θ_k ≈ −τ G⁺ ∇_θ F, G = (1/n) Σ_i ∇_θT_θ(x_i)ᵀ ∇_θT_θ(x_i) (eq. 3.4, Cor. 3.8);
``map_jacobian`` and ``natural_gradient`` compute it for small networks (tests).

Normalization. The losses are means over the batch, as written in the paper (eq. 3.7
and §3.4.1). The authors' public code (github.com/theodumont/monge-constrained-flow)
differs in one place: its KL θ-gradient is a sum over the batch, not a mean. For
Algorithm 1 with plain GD this scales the step by n (its η = 1e−3 is a mean-gradient
step of 0.1 at n = 100); for the implicit scheme it weighs the KL n times more than the
proximal term (an effective step nτ); Adam (method (d) and every inner solver) is
invariant to a constant scaling of the whole gradient. ``kl_reduction='sum'`` reproduces
that code; the default 'mean' is the paper's text. (Its explicit inner loss, a mean over
the n·d coordinates of ‖T_θ − (T_θk − τ g^k)‖², is ours times τ²/d: same Adam iterates.)

Start. The paper's schemes in Θ start from an initial parameter θ0; the flow they
discretize starts from T_0 = id (cons.gf), and the schemes in K_ϱ0 from T̂_0 := id
(eqs. 3.1, 3.2). By default (``start='identity'``) the first outer step is anchored at
the identity: its proximal term (implicit) or its regression target x − τ g(x) (explicit)
uses T̂_0 = id in place of T_θ0, and θ0 is only where the first inner solve starts. So the
discrete trajectory follows the flow from id whatever the network's initial map, which
with the default initialization is nearly constant (a collapsed cloud, far from any
finite-KL state). ``start='network'`` anchors the first step at T_θ0 (Algorithm 2 read
literally). The authors' public code anchors its explicit scheme at the identity and its
implicit one at T_θ0. Algorithm 1 has no anchor: it starts at T_θ0. The effect of the
anchor over seeds is measured in the README (neural benchmark).

Score-free KL (``kl='logdet'``, every method; DESIGN §4b, ``neural.kl``). The KL part of
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
this is the regression above, up to a factor 2/τ and a constant. The Hessians must stay
positive definite (``DivergenceError`` otherwise); an ICNN with ``strong_convexity`` > 0
guarantees it. ``fisher`` is not estimated on this path (NaN).

The inner problems are solved with fresh batches (Adam). The one exception is the explicit
scheme with the score (``ExplicitScheme(inner_solver='lbfgs')``): its inner problem is a
regression, bounded below, and is solved exactly on one batch per outer step. The other
inner problems are never solved to convergence on one fixed
batch: on a fixed sample the score-free objective is unbounded below for a flexible map
(a map that is steep at every sample and flat between them has a large log det there at a
bounded V), and an L-BFGS-B solve of it drifts there. Measured: a (4, 4) network with the
quadratic part (49 parameters), 1000 samples, L-BFGS-B for 3000 iterations: the objective
still decreasing (0.590 → 0.368) while weights grew to ~400, and at fresh samples the
next objective was 2.5e6.

Randomness: one batch ``source.sample(rng, n)`` per (inner) step (per outer step with
inner_solver='lbfgs'), in step order, from
the Generator passed in; nothing else draws. Same inputs, same rng state → the same θ,
bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np

from gridflow.checks import (
    as_points,
    flag,
    positive_float,
    positive_int,
    require_finite,
    require_generator,
)
from gridflow.measures import as_sampler, as_target
from neural.errors import DivergenceError
from neural.icnn import (
    ICNN,
    ICNNArchitecture,
    _hessian,
    _hessian_vjp,
    _map_vjp,
    map_vjp,
    transport_map,
)
from neural.icnn import _transport_map as _transport_map_unchecked
from neural.kl import checked_values, cholesky_factors, score_free_gradient
from neural.optim import SGD, Adam
from neural.regression import MapFit, regress
from neural.score import self_entropic_score

__all__ = [
    "METHODS",
    "DivergenceError",
    "EuclideanAdam",
    "EuclideanGD",
    "ExplicitScheme",
    "ImplicitScheme",
    "SchemeResult",
    "check_kl",
    "check_kl_reduction",
    "explicit_logdet_gradient",
    "explicit_objective",
    "implicit_gradient",
    "kl_gradient",
    "make_method",
    "map_jacobian",
    "mean_squared_norm",
    "natural_gradient",
    "run_method",
    "wasserstein_gradient",
]


# ---------------------------------------------------------------------------
# Gradients shared by the schemes (all cotangents of Σ_i ⟨u_i, T_θ(x_i)⟩)
# ---------------------------------------------------------------------------


def wasserstein_gradient(y, target, eps: float | None = None) -> np.ndarray:
    """g_i = ŝ(y_i) + ∇V(y_i) at pushed samples y (n, d): the bracket of eq. 3.7.

    ŝ is the self-entropic score of the cloud y (Remark 3.10; ``eps=None``: 5% of the
    median squared distance). The estimate of ∇_W H(ρ | γ) at the points of ρ = T#ϱ0.
    Raises ``DivergenceError`` if the cloud has collapsed or ∇V is not finite.
    """
    return _wasserstein_gradient(as_points(y, "y", min_points=2), as_target(target), eps)


def _wasserstein_gradient(y, target, eps) -> np.ndarray:
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


def _kl_part(architecture, theta, x, target, eps, reduction, kl, cotangent=None):
    """(∇_θ [KL + Σ_i ⟨cotangent_i(y), T_θ(x_i)⟩], y = T_θ(x), g or None) in one map-VJP.

    kl='score': the KL gradient of eq. 3.7 with g = ŝ + ∇V at y; kl='logdet': the
    score-free gradient (module docstring, ``neural.kl``; g is None). ``cotangent``
    (optional) maps y (n, d) to an extra cotangent, e.g. the implicit proximal term.
    θ and x are checked, ``target`` is a ``LogConcaveTarget`` (callers check them once).
    """
    weight = _kl_weight(reduction, x.shape[0])
    if check_kl(kl) == "logdet":
        gradient, y, _ = score_free_gradient(architecture, theta, x, target, weight, cotangent)
        return gradient, y, None
    y = _transport_map_unchecked(architecture, theta, x)
    g = _wasserstein_gradient(y, target, eps)
    u = weight * g if cotangent is None else weight * g + cotangent(y)
    return _map_vjp(architecture, theta, x, u), y, g


def _fisher(g) -> float:
    """mean ‖g‖² of the Wasserstein gradient estimate, NaN where none was estimated."""
    return np.nan if g is None else mean_squared_norm(g)


def kl_gradient(
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
    authors' public code does, see ``EuclideanGD``). Returns (gradient (num_params,),
    g (n, d), None for kl='logdet').
    """
    theta, x = _checked_inputs(architecture, theta, x)
    gradient, _, g = _kl_part(architecture, theta, x, as_target(target), eps, reduction, kl)
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
    return _explicit_objective(architecture, theta, x, y_previous, g_previous, tau)


def _explicit_objective(architecture, theta, x, y_previous, g_previous, tau):
    """``explicit_objective`` for checked inputs."""
    y = _transport_map_unchecked(architecture, theta, x)
    residual = g_previous + (y - y_previous) / tau
    n = x.shape[0]
    return mean_squared_norm(residual), _map_vjp(
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
    return _explicit_logdet_gradient(
        architecture, theta, x, y_previous, hessian_previous, as_target(target), tau
    )


def _explicit_logdet_gradient(architecture, theta, x, y_previous, hessian_previous, target, tau):
    """``explicit_logdet_gradient`` for checked inputs and a ``LogConcaveTarget``."""
    n = x.shape[0]
    _, factors = cholesky_factors(hessian_previous)
    grad_v = checked_values(target.grad_V, y_previous, "target.grad_V", x.shape)
    y = _transport_map_unchecked(architecture, theta, x)
    step = y - y_previous
    gradient = _map_vjp(architecture, theta, x, (grad_v + step / tau) / n)
    gradient -= _hessian_vjp(architecture, theta, x, factors) / n
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
    weighs the KL n times more, an effective step n τ); ``kl`` as in ``kl_gradient``.
    Returns (∇_θ J, proximal term value, mean ‖g‖² at the current θ (NaN for 'logdet')).
    """
    tau = positive_float(tau, "tau")
    theta, x = _checked_inputs(architecture, theta, x)
    y_previous = _same_shape(y_previous, x, "y_previous")
    target = as_target(target)
    return _implicit_gradient(architecture, theta, x, y_previous, target, tau, eps, reduction, kl)


def _implicit_gradient(architecture, theta, x, y_previous, target, tau, eps, reduction, kl):
    """``implicit_gradient`` for checked inputs and a ``LogConcaveTarget``."""
    n = x.shape[0]

    def proximal_cotangent(y):
        return (y - y_previous) / (tau * n)

    gradient, y, g = _kl_part(
        architecture, theta, x, target, eps, reduction, kl, cotangent=proximal_cotangent
    )
    proximal = mean_squared_norm(y - y_previous) / (2.0 * tau)
    return gradient, proximal, _fisher(g)


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


# ---------------------------------------------------------------------------
# Method configurations (paper defaults) and results
# ---------------------------------------------------------------------------


def _check_common(config, floats=(), ints=()) -> None:
    """Validate (and normalize) a configuration's positive ``floats`` and ``ints`` fields and
    the fields every method has."""
    for name in floats:
        object.__setattr__(config, name, positive_float(getattr(config, name), name))
    for name in (*ints, "batch_size"):
        object.__setattr__(config, name, positive_int(getattr(config, name), name))
    check_kl_reduction(getattr(config, "kl_reduction", "mean"))
    check_kl(config.kl)
    if config.batch_size < 2:
        raise ValueError("batch_size must be at least 2 (the score is estimated from the batch)")
    if config.score_eps is not None:
        object.__setattr__(config, "score_eps", positive_float(config.score_eps, "score_eps"))


@dataclass(frozen=True)
class EuclideanGD:
    """Algorithm 1 (eucl.gd), method (c): θ ← proj(θ − step_size · ∇_θ F) with eq. 3.7.

    ``kl_reduction='sum'`` uses n ∇_θ F (the authors' code, module docstring).
    """

    name: ClassVar[str] = "euclidean"
    label: ClassVar[str] = "(c) Euclidean gradient descent"
    step_size: float = 1e-3
    steps: int = 3000
    batch_size: int = 100
    score_eps: float | None = None
    kl_reduction: str = "mean"
    kl: str = "score"

    def __post_init__(self):
        _check_common(self, floats=("step_size",), ints=("steps",))

    @property
    def gradient_evaluations(self) -> int:
        return self.steps


@dataclass(frozen=True)
class EuclideanAdam:
    """Algorithm 1 with Adam, method (d): Adam(learning_rate) on ∇_θ F of eq. 3.7.

    ``cosine_decay``: the learning rate decays to 0 over the ``steps`` (cosine; not in
    the paper, which keeps it constant)."""

    name: ClassVar[str] = "adam"
    label: ClassVar[str] = "(d) Euclidean gradient, Adam"
    learning_rate: float = 0.05
    steps: int = 1000
    batch_size: int = 100
    score_eps: float | None = None
    kl_reduction: str = "mean"
    kl: str = "score"
    cosine_decay: bool = False

    def __post_init__(self):
        _check_common(self, floats=("learning_rate",), ints=("steps",))
        object.__setattr__(self, "cosine_decay", flag(self.cosine_decay, "cosine_decay"))

    @property
    def gradient_evaluations(self) -> int:
        return self.steps


STARTS = ("network", "identity")
"""Map of the first outer step of Algorithm 2: T_θ0, or T̂_0 = id as in eqs. 3.1, 3.2."""


@dataclass(frozen=True)
class _Algorithm2:
    """Shared fields of Algorithm 2 (module docstring). ``start``: the map T_0 that the
    first outer step moves from, 'identity' (T̂_0 = id of eqs. 3.1, 3.2; default) or
    'network' (T_θ0, Algorithm 2 read literally). ``kl``: 'score' (eq. 3.7) or 'logdet'
    (score-free, module docstring); every method has it. ``inner_cosine_decay``: each inner
    solve's Adam learning rate decays to 0 over its K' steps (cosine; not in the paper), so
    that the inner iterate settles instead of jittering at the scale of the rate."""

    tau: float = 0.4
    outer_steps: int = 10
    inner_steps: int = 100
    inner_learning_rate: float = 0.1
    batch_size: int = 100
    score_eps: float | None = None
    start: str = "identity"
    kl: str = "score"
    inner_cosine_decay: bool = False

    def __post_init__(self):
        object.__setattr__(
            self, "inner_cosine_decay", flag(self.inner_cosine_decay, "inner_cosine_decay")
        )
        if self.start not in STARTS:
            raise ValueError(
                f"start must be 'network' (T_θ0) or 'identity' (T̂_0 = id), got {self.start!r}"
            )
        _check_common(
            self, floats=("tau", "inner_learning_rate"), ints=("outer_steps", "inner_steps")
        )

    @property
    def gradient_evaluations(self) -> int:
        return self.outer_steps * self.inner_steps


INNER_SOLVERS = ("adam", "lbfgs")
"""How the explicit scheme solves its inner problem: K' Adam steps on fresh batches (the
paper's), or exactly on one batch per outer step by L-BFGS-B (``neural.regression``)."""


@dataclass(frozen=True)
class ExplicitScheme(_Algorithm2):
    """Algorithm 2 with (gd, expl.), method (b): K outer steps of size τ, K' inner Adam steps.

    ``inner_solver='lbfgs'`` (kl='score' only) solves each inner problem exactly instead: one
    batch of n per outer step, g^k on it, and the regression of T_θ onto T_k − τ g^k (the
    (gd, expl.) objective times τ², a least-squares problem bounded below) by at most K'
    L-BFGS-B iterations until the projected gradient is at most ``inner_tolerance``; the
    result's ``inner_solves`` report the residual and the tolerance reached per step. It
    needs n·d >= the number of parameters, or the regression would interpolate the batch.
    With kl='logdet' the inner objective is linear in ∇²φ_θ and unbounded below on a fixed
    batch, so only Adam on fresh batches solves it.
    """

    name: ClassVar[str] = "explicit"
    label: ClassVar[str] = "(b) Constrained flow, explicit"
    inner_solver: str = "adam"
    inner_tolerance: float = 1e-10

    def __post_init__(self):
        super().__post_init__()
        if self.inner_solver not in INNER_SOLVERS:
            raise ValueError(f"inner_solver must be 'adam' or 'lbfgs', got {self.inner_solver!r}")
        if self.inner_solver == "lbfgs" and self.kl != "score":
            raise ValueError(
                "inner_solver='lbfgs' needs kl='score': with kl='logdet' the explicit inner "
                "objective is linear in the Hessian and unbounded below on one batch"
            )
        _check_common(self, floats=("inner_tolerance",))


@dataclass(frozen=True)
class ImplicitScheme(_Algorithm2):
    """Algorithm 2 with (gd, impl.), method (a): K proximal steps of size τ, K' inner Adam steps.

    ``kl_reduction='sum'`` weighs the KL gradient by n (the authors' code, module docstring).
    """

    name: ClassVar[str] = "implicit"
    label: ClassVar[str] = "(a) Constrained flow, implicit"
    kl_reduction: str = "mean"


MethodConfig = EuclideanGD | EuclideanAdam | ExplicitScheme | ImplicitScheme

METHODS: dict[str, type] = {
    "implicit": ImplicitScheme,
    "explicit": ExplicitScheme,
    "euclidean": EuclideanGD,
    "adam": EuclideanAdam,
}
"""Method name -> configuration class; the classes' defaults are the paper's (Fig. 2)."""


def make_method(name: str, **overrides) -> MethodConfig:
    """The paper's configuration of method ``name`` (implicit, explicit, euclidean, adam),
    with fields replaced by ``overrides`` (e.g. ``steps=10``)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    cls = METHODS[name]
    known = {f.name for f in fields(cls)}
    unknown = set(overrides) - known
    if unknown:
        raise TypeError(
            f"method {name!r} has no option(s) {sorted(unknown)}; options: {sorted(known)}"
        )
    return cls(**overrides)


@dataclass(frozen=True, eq=False)
class SchemeResult:
    """Outcome of one run (Algorithm 1 or 2).

    method          method name
    config          the method configuration used
    architecture    ICNN architecture of θ
    initial_params  θ_0
    params          θ_K (admissible: projected after every update)
    fisher          mean ‖ŝ + ∇V‖² on each batch (an estimate of the relative Fisher
                    information of T_θ#ϱ0 w.r.t. γ): Algorithm 1 (steps,) at θ_0..θ_{K−1};
                    Algorithm 2 (K, K'): implicit at the inner iterates, explicit at the
                    anchor T_k (θ_k, or ϱ0 itself for k = 0 with start='identity');
                    NaN with kl='logdet' (no score is estimated)
    inner_loss      Algorithm 2 (K, K') before each inner update: explicit, the (gd, expl.)
                    objective (kl='score') or its proximal term (kl='logdet'); implicit,
                    the proximal term (1/(2τ))(1/n)Σ‖T_θ − T_θk‖²; None for Algorithm 1;
                    explicit with inner_solver='lbfgs': (K, 1), the objective at the
                    solution
    inner_solves    explicit with inner_solver='lbfgs': the K regressions
                    (``neural.regression.MapFit``: residual, projected gradient reached,
                    iterations); None otherwise
    """

    method: str
    config: MethodConfig
    architecture: ICNNArchitecture
    initial_params: np.ndarray
    params: np.ndarray
    fisher: np.ndarray
    inner_loss: np.ndarray | None = None
    inner_solves: tuple[MapFit, ...] | None = None

    @property
    def network(self) -> ICNN:
        """The trained network (ICNN with θ_K)."""
        return ICNN.from_architecture(self.architecture, self.params)

    def map(self, x) -> np.ndarray:
        """T_θK(x) for points x (n, d)."""
        return transport_map(self.architecture, self.params, x)


# ---------------------------------------------------------------------------
# The algorithms
# ---------------------------------------------------------------------------


def _initial(initial) -> tuple[ICNNArchitecture, np.ndarray]:
    if isinstance(initial, ICNN):
        return initial.architecture, np.array(initial.params)
    raise TypeError(
        "initial must be an ICNN (e.g. ICNN(dim=2, hidden=(20, 20), rng=rng)), "
        f"got {type(initial).__name__}"
    )


def _batch(sampler, rng, n, dim, method, step) -> np.ndarray:
    x = np.asarray(sampler(rng, n), dtype=np.float64)
    if x.shape != (n, dim):
        raise ValueError(f"source.sample(rng, {n}) must return shape ({n}, {dim}), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{method}: the source returned non-finite samples at step {step}")
    return x


def _checked_gradient(gradient, method, step) -> np.ndarray:
    if not np.isfinite(gradient).all():
        raise DivergenceError(f"{method} diverged at step {step}: non-finite θ-gradient")
    return gradient


def _checked_params(theta, method, step) -> np.ndarray:
    if not np.isfinite(theta).all():
        raise DivergenceError(f"{method} diverged at step {step}: non-finite parameters")
    return theta


def _algorithm1(config, optimizer, architecture, theta, sampler, target, rng, callback):
    """Shared loop of Algorithm 1: θ_{k+1} = optimizer step on eq. 3.7 (fresh batch per step)."""
    project = architecture._project
    state = optimizer.init(theta)
    fisher = np.empty(config.steps)
    n, dim = config.batch_size, architecture.dim
    for k in range(config.steps):
        try:
            x = _batch(sampler, rng, n, dim, config.name, k)
            gradient, _, g = _kl_part(
                architecture, theta, x, target, config.score_eps, config.kl_reduction, config.kl
            )
            fisher[k] = _fisher(g)
        except DivergenceError as error:
            raise DivergenceError(f"{config.name} diverged at step {k}: {error}") from None
        theta, state = optimizer._step(
            theta, _checked_gradient(gradient, config.name, k), state, project
        )
        _checked_params(theta, config.name, k)
        if callback is not None:
            callback(k + 1, theta)
    return fisher, None, theta


def _algorithm2(config, inner_step, architecture, theta, sampler, rng, callback):
    """Shared loop of Algorithm 2: K outer steps from θ_k, each K' Adam steps (fresh state,
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
                x = _batch(sampler, rng, n, dim, config.name, step)
                anchor = _anchor(config, k, theta_k)
                y_k = _anchor_map(architecture, anchor, x)
                gradient, fisher[k, j], inner_loss[k, j] = inner_step(theta, anchor, x, y_k)
            except DivergenceError as error:
                raise DivergenceError(f"{config.name} diverged at step {step}: {error}") from None
            theta, state = optimizer._step(
                theta, _checked_gradient(gradient, config.name, step), state, project
            )
            _checked_params(theta, config.name, step)
        if callback is not None:
            callback(k + 1, theta)
    return fisher, inner_loss, theta


def _anchor(config, k, theta_k):
    """θ_k, the anchor of outer step k, or None for T̂_0 = id (k = 0, start='identity')."""
    return None if k == 0 and config.start == "identity" else theta_k


def _anchor_map(architecture, anchor, x) -> np.ndarray:
    """T_k(x): the anchor's map, or x itself for T̂_0 = id (anchor None)."""
    return x.copy() if anchor is None else _transport_map_unchecked(architecture, anchor, x)


def _algorithm2_exact(config, architecture, theta, sampler, target, rng, callback):
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
            x = _batch(sampler, rng, n, dim, config.name, k)
            y_k = _anchor_map(architecture, _anchor(config, k, theta), x)
            g_k = _wasserstein_gradient(y_k, target, config.score_eps)
        except DivergenceError as error:
            raise DivergenceError(f"{config.name} diverged at step {k}: {error}") from None
        fit = regress(architecture, theta, x, y_k - config.tau * g_k, config.inner_steps,
                      config.inner_tolerance)  # fmt: skip
        theta = _checked_params(fit.params, config.name, k)
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
        return _hessian(architecture, anchor, x)

    def inner_step(theta, anchor, x, y_k):
        if config.kl == "logdet":
            gradient, proximal = _explicit_logdet_gradient(
                architecture, theta, x, y_k, anchor_hessian(anchor, x), target, config.tau
            )
            return gradient, np.nan, proximal
        g_k = _wasserstein_gradient(y_k, target, config.score_eps)
        fisher = mean_squared_norm(g_k)
        loss, gradient = _explicit_objective(architecture, theta, x, y_k, g_k, config.tau)
        return gradient, fisher, loss

    return inner_step


def _implicit_step(config, architecture, target):
    """(gd, impl.) inner step: the KL gradient at the current θ plus the proximal term."""

    def inner_step(theta, anchor, x, y_k):
        gradient, proximal, fisher = _implicit_gradient(
            architecture, theta, x, y_k, target, config.tau, config.score_eps,
            config.kl_reduction, config.kl,
        )  # fmt: skip
        return gradient, fisher, proximal

    return inner_step


def run_method(
    config: MethodConfig,
    initial: ICNN,
    source,
    target,
    rng: np.random.Generator,
    *,
    callback: Callable[[int, np.ndarray], None] | None = None,
) -> SchemeResult:
    """Train T_θ = ∇φ_θ from ``initial`` with one of the paper's methods (Algorithms 1, 2).

    config    EuclideanGD | EuclideanAdam | ExplicitScheme | ImplicitScheme (or a name:
              the paper's configuration, ``make_method``)
    initial   ICNN giving the architecture and θ_0
    source    ϱ0: an object with ``sample(rng, n)`` or a callable (rng, n) -> (n, d)
    target    γ ∝ exp(−V): ``Target``, gridflow.LogConcaveTarget, or a Gaussian (``as_target``)
    rng       numpy Generator for the batches (the only randomness)
    callback  called as callback(k, θ_k) after each outer step (Algorithm 1: every step)

    Raises ``DivergenceError`` if the iterates become non-finite or the samples collapse.
    """
    if isinstance(config, str):
        config = make_method(config)
    if not isinstance(config, (EuclideanGD, EuclideanAdam, ExplicitScheme, ImplicitScheme)):
        raise TypeError(
            "config must be EuclideanGD, EuclideanAdam, ExplicitScheme, ImplicitScheme or a "
            f"method name ({', '.join(METHODS)}); got {type(config).__name__}"
        )
    architecture, theta0 = _initial(initial)
    sampler = as_sampler(source)
    target = as_target(target)
    rng = require_generator(rng)
    if callback is not None and not callable(callback):
        raise TypeError("callback must be None or a callable (k, theta) -> None")
    theta = theta0.copy()
    if isinstance(config, EuclideanGD):
        optimizer = SGD(learning_rate=config.step_size)
    elif isinstance(config, EuclideanAdam):
        optimizer = Adam(
            learning_rate=config.learning_rate,
            cosine_steps=config.steps if config.cosine_decay else None,
        )
    inner_solves = None
    if isinstance(config, (EuclideanGD, EuclideanAdam)):
        fisher, inner, theta = _algorithm1(
            config, optimizer, architecture, theta, sampler, target, rng, callback
        )
    elif isinstance(config, ExplicitScheme) and config.inner_solver == "lbfgs":
        fisher, inner, theta, inner_solves = _algorithm2_exact(
            config, architecture, theta, sampler, target, rng, callback
        )
    else:
        make_step = _explicit_step if isinstance(config, ExplicitScheme) else _implicit_step
        fisher, inner, theta = _algorithm2(
            config, make_step(config, architecture, target), architecture, theta, sampler, rng,
            callback,
        )  # fmt: skip
    for array in (theta0, theta, fisher, inner):
        if array is not None:
            array.setflags(write=False)
    return SchemeResult(
        method=config.name,
        config=config,
        architecture=architecture,
        initial_params=theta0,
        params=theta,
        fisher=fisher,
        inner_loss=inner,
        inner_solves=inner_solves,
    )
