"""The four methods of the paper's Fig. 2 as configurations, with the paper's defaults.

- (a) ``ImplicitScheme``: Algorithm 2 with (gd, impl.), the proximal step eq. 3.2;
- (b) ``ExplicitScheme``: Algorithm 2 with (gd, expl.), eq. 3.1;
- (c) ``EuclideanGD``: Algorithm 1 (eucl.gd), θ ← proj(θ − η ∇_θ F) with eq. 3.7;
- (d) ``EuclideanAdam``: the same gradient fed to Adam (not a discretization of a flow,
  paper §3.4.2 (iii)).

Defaults are the paper's hyperparameters (§3.4.2 (iii)): n = 100; (a) implicit τ = 0.4,
K = 10, K' = 100, inner Adam lr 0.1; (b) explicit the same; (c) Euclidean GD η = 1e−3,
3000 steps; (d) Adam lr 0.05, 1000 steps. ``make_method(name, **overrides)`` builds one;
``neural.training.run.run_method`` runs it. The gradients are in
``neural.training.gradients``, the loops in ``neural.training.algorithm1`` and
``neural.training.algorithm2``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

from gridflow.checks import flag, positive_float, positive_int
from gridflow.memory import check_memory
from neural.training.gradients import check_kl, check_kl_reduction

__all__ = [
    "INNER_SOLVERS",
    "METHODS",
    "STARTS",
    "EuclideanAdam",
    "EuclideanGD",
    "ExplicitScheme",
    "ImplicitScheme",
    "MethodConfig",
    "make_method",
]


STEP_RECORD_BYTES = 16
"""Bytes a run keeps per optimizer step (its records of the Fisher estimate and the loss)."""


def check_step_record(steps: int) -> None:
    """InsufficientMemoryError (a ValueError) when a run of ``steps`` optimizer steps cannot
    keep its per-step records in the memory available."""
    check_memory(
        STEP_RECORD_BYTES * steps,
        f"a run of {steps:,} optimizer steps (its per-step records)",
        "choose fewer steps",
    )


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
    check_step_record(config.gradient_evaluations)


@dataclass(frozen=True)
class EuclideanGD:
    """Algorithm 1 (eucl.gd), method (c): θ ← proj(θ − step_size · ∇_θ F) with eq. 3.7.

    ``kl_reduction='sum'`` uses n ∇_θ F (the authors' code, ``neural.training.gradients``).
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
    """Shared fields of Algorithm 2 (``neural.training.algorithm2``). ``start``: the map T_0
    that the first outer step moves from, 'identity' (T̂_0 = id of eqs. 3.1, 3.2; default)
    or 'network' (T_θ0, Algorithm 2 read literally). ``kl``: 'score' (eq. 3.7) or 'logdet'
    (score-free, ``neural.training.gradients``); every method has it.
    ``inner_cosine_decay``: each inner solve's Adam learning rate decays to 0 over its K'
    steps (cosine; not in the paper), so that the inner iterate settles instead of
    jittering at the scale of the rate."""

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
paper's), or exactly on one batch per outer step by L-BFGS-B (``neural.training.regression``)."""


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

    ``kl_reduction='sum'`` weighs the KL gradient by n (the authors' code,
    ``neural.training.gradients``).
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
    """The paper's configuration of method ``name``, with fields replaced by ``overrides``.

    Parameters
    ----------
    name : {"implicit", "explicit", "euclidean", "adam"}
        The method.
    **overrides
        Fields of its configuration to replace (e.g. ``steps=10``).

    Returns
    -------
    MethodConfig
        An ImplicitScheme, ExplicitScheme, EuclideanGD or EuclideanAdam.

    Raises
    ------
    ValueError
        If `name` is not a method.
    TypeError
        If `name` is not a str, or an override is not a field of the method's configuration.
    """
    if not isinstance(name, str):
        raise TypeError(
            f"name must be a method name (a str), one of {', '.join(METHODS)}, got {name!r}"
        )
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
