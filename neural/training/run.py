"""Training an ICNN map with one of the paper's methods: ``run_method`` and its result.

``run_method(config, initial, source, target, rng)`` checks its inputs once and runs
Algorithm 1 (``neural.training.algorithm1``: methods (c), (d)) or Algorithm 2
(``neural.training.algorithm2``: methods (a), (b)) with the configuration of
``neural.training.methods``; the outcome is a ``SchemeResult``.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gridflow.checks import require_generator
from gridflow.measures import as_sampler, as_target, check_monotone_gradient
from neural.errors import DivergenceError
from neural.network import ICNN, ICNNArchitecture, transport_map
from neural.training.algorithm1 import run_algorithm1
from neural.training.algorithm2 import run_algorithm2
from neural.training.batches import draw_batch
from neural.training.methods import (
    METHODS,
    EuclideanAdam,
    EuclideanGD,
    ExplicitScheme,
    ImplicitScheme,
    MethodConfig,
    make_method,
)
from neural.training.regression import MapFit

__all__ = ["SchemeResult", "run_method"]


@dataclass(frozen=True, eq=False)
class SchemeResult:
    """Outcome of one run (Algorithm 1 or 2).

    Attributes
    ----------
    method : str
        The method name.
    config : MethodConfig
        The method configuration used.
    architecture : ICNNArchitecture
        The ICNN architecture of θ.
    initial_params : numpy.ndarray
        θ_0.
    params : numpy.ndarray
        θ_K (admissible: projected after every update).
    fisher : numpy.ndarray
        Mean ‖ŝ + ∇V‖² on each batch (an estimate of the relative Fisher information of
        T_θ#ϱ0 w.r.t. γ): Algorithm 1 (steps,) at θ_0..θ_{K−1}; Algorithm 2 (K, K'):
        implicit at the inner iterates, explicit at the anchor T_k (θ_k, or ϱ0 itself for
        k = 0 with start='identity'); NaN with kl='logdet' (no score is estimated).
    inner_loss : numpy.ndarray or None
        Algorithm 2 (K, K') before each inner update: explicit, the (gd, expl.) objective
        (kl='score') or its proximal term (kl='logdet'); implicit, the proximal term
        (1/(2τ))(1/n)Σ‖T_θ − T_θk‖²; None for Algorithm 1; explicit with
        inner_solver='lbfgs': (K, 1), the objective at the solution.
    inner_solves : tuple of MapFit or None
        Explicit with inner_solver='lbfgs': the K regressions
        (``neural.training.regression.MapFit``: residual, projected gradient reached,
        iterations); None otherwise.
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
        """T_θK(x).

        Parameters
        ----------
        x : array_like
            Points, (n, d).

        Returns
        -------
        numpy.ndarray
            T_θK(x), (n, d).
        """
        return transport_map(self.architecture, self.params, x)


def _initial(initial) -> tuple[ICNNArchitecture, np.ndarray]:
    """(architecture, a copy of θ_0) of an ICNN, else TypeError."""
    if isinstance(initial, ICNN):
        return initial.architecture, np.array(initial.params)
    raise TypeError(
        "initial must be an ICNN (e.g. ICNN(dim=2, hidden=(20, 20), rng=rng)), "
        f"got {type(initial).__name__}"
    )


def check_dimensions(network_dim: int, source, target) -> None:
    """Refuse (ValueError) a network, source and target of different dimensions, before
    training: the source's ``dim`` when it has one, and the target's (a target given by
    functions and left at LogConcaveTarget's default dim = 1 in a run in d > 1 is refused:
    its growth check and log Z were computed in d = 1)."""
    dims = {"the target": int(target.dim)}
    if getattr(source, "dim", None) is not None:
        dims["the source"] = int(source.dim)
    dims["the network"] = int(network_dim)
    if len(set(dims.values())) == 1:
        return
    groups: dict[int, list[str]] = {}
    for name, dim in dims.items():
        groups.setdefault(dim, []).append(name)
    parts = []
    for position, (dim, names) in enumerate(groups.items()):
        verb = "" if position else "has " if len(names) == 1 else "have "
        parts.append(f"{' and '.join(names)} {verb}d = {dim}")
    raise ValueError(
        ", ".join(parts) + ": give them one dimension (the network's is ICNN(dim, ...))"
    )


def check_target_on_first_batch(config, architecture, theta0, sampler, target, rng) -> None:
    """Refuse, before training, an initial map T_θ0 that is constant on the first batch x
    (``check_initial_map``) and a ∇V that is visibly not monotone where it is first used, at
    T_θ0(x) (x drawn from a copy of ``rng``, so that the run's own draws are unchanged)."""
    x = draw_batch(sampler, copy.deepcopy(rng), config.batch_size, architecture.dim, config.name, 0)
    y = transport_map(architecture, theta0, x)
    check_initial_map(config.name, architecture, theta0, y)
    if target.grad_V is not None:
        check_monotone_gradient(target.grad_V, y, target.name, target.lam)


def check_initial_map(
    method: str, architecture: ICNNArchitecture, theta0: np.ndarray, y: np.ndarray
) -> None:
    """DivergenceError, before training, if T_θ0 sends the n >= 2 samples of the first batch
    to one point y: the pushed samples have collapsed at θ_0 (no score can be estimated at
    them). A network without a quadratic part does that when every output weight w of θ_0 is
    0 (each drawn negative and clipped by the convexity constraint: probability 2^-h_L); the
    message says so and how to start from a map that is not constant."""
    if y.shape[0] < 2 or not np.isfinite(y).all() or np.ptp(y, axis=0).max() > 0.0:
        return
    point = np.array2string(y[0], precision=3, separator=", ")
    output = architecture.views(theta0)["w"]
    if not np.any(output):
        why = (
            f"all {output.size} output weights w of θ_0 are 0, drawn negative and clipped "
            f"to 0 by the convexity constraint w >= 0, so φ_θ0 is constant"
        )
    else:
        why = "θ_0 leaves ∇φ_θ0 with no dependence on x"
    quadratic = "" if architecture.quadratic else "a quadratic part, ICNN(..., quadratic=True), or "
    raise DivergenceError(
        f"{method}: the initial map T_θ0 = ∇φ_θ0 is constant: it sends all {y.shape[0]} "
        f"samples of the first batch to {point}, so the pushed samples have collapsed before "
        f"training starts (nothing diverged: {why}). Start from a network with {quadratic}a "
        f"wider last hidden layer, or draw θ_0 with another rng (anchors=samples bends the "
        f"hidden units but leaves w as drawn)"
    )


class DeadUnitsWarning(RuntimeWarning):
    """Training clipped every hidden unit's output weight to 0: T_θ is the quadratic part."""


def warn_if_units_died(method: str, architecture: ICNNArchitecture, theta0, theta) -> None:
    """DeadUnitsWarning when training left all output weights w at 0 (the convexity
    constraint w ≥ 0 clips them) though θ_0 had some: the hidden units no longer reach φ_θ,
    whose gradient is then the affine quadratic part alone, however long it trains."""
    if np.any(architecture.views(theta)["w"]) or not np.any(architecture.views(theta0)["w"]):
        return
    left = "the quadratic part alone, an affine map" if architecture.quadratic else "constant"
    warnings.warn(
        f"{method}: training clipped all {architecture.views(theta)['w'].size} output weights "
        f"w of the hidden units to 0 (w >= 0 keeps φ_θ convex): the hidden units no longer "
        f"reach the map, which is {left}; start from another θ_0 (another rng, or "
        "anchors=samples) or with a lower learning rate",
        DeadUnitsWarning,
        stacklevel=3,
    )


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

    Parameters
    ----------
    config : EuclideanGD, EuclideanAdam, ExplicitScheme, ImplicitScheme or str
        The method's configuration, or a name: the paper's configuration (`make_method`).
    initial : ICNN
        Gives the architecture and θ_0.
    source : object or callable
        ϱ0: an object with ``sample(rng, n)`` or a callable (rng, n) -> (n, d).
    target : Target, gridflow.LogConcaveTarget or Gaussian
        γ ∝ exp(−V) (``as_target``).
    rng : numpy.random.Generator
        Draws the batches (the only randomness).
    callback : callable, optional
        Called as callback(k, θ_k) after each outer step (Algorithm 1: every step).

    Returns
    -------
    SchemeResult
        θ_K, the trained network (``.network``) and the run's records.

    Raises
    ------
    TypeError
        If `config` is not a configuration or a method name, or `callback` is not callable.
    ValueError
        If the target's ∇V is visibly not monotone on the first batch (V not convex).
    DivergenceError
        If the iterates become non-finite or the samples collapse, or, before training, if
        the initial map T_θ0 is constant (collapses the first batch to one point).
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
    check_dimensions(architecture.dim, source, target)
    rng = require_generator(rng)
    if callback is not None and not callable(callback):
        raise TypeError("callback must be None or a callable (k, theta) -> None")
    check_target_on_first_batch(config, architecture, theta0, sampler, target, rng)
    theta = theta0.copy()
    inner_solves = None
    if isinstance(config, (EuclideanGD, EuclideanAdam)):
        fisher, inner, theta = run_algorithm1(
            config, architecture, theta, sampler, target, rng, callback
        )
    else:
        fisher, inner, theta, inner_solves = run_algorithm2(
            config, architecture, theta, sampler, target, rng, callback
        )
    warn_if_units_died(config.name, architecture, theta0, theta)
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
