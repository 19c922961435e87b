"""The neural schemes checked step by step against a reference scheme.

The same problem, the same step τ and number of steps K, both started at T̂_0 = id:

- the reference: for a Gaussian pair (any d) the exact implicit scheme (3.2)
  (``gridflow.gaussian.implicit_scheme``, with the exact flow for context); for the
  paper's mixture the grid solver's implicit scheme on an N × N grid
  (``gridflow.solve``), its maps interpolated at the samples and its KL the discrete F_h;
- the neural schemes of Algorithm 2 (implicit and explicit; score or score-free KL,
  ``neural.training``), with an ICNN that has the quadratic part (``quadratic=True``) so
  that the anchor T̂_0 = id and the Gaussian maps are representable, and θ0 sample-anchored
  (``neural.network.initialization``): every hidden unit bends at a sample of ϱ0 and T_θ0 = id
  exactly. From the 'normal' θ0 (``SETTINGS[...]["init"]``) the mixture's neural KL lags
  the reference from the first step and levels off near 0.2 (docs/neural.md).

Per outer step k: the exact KL H(T_θk#ϱ0 | γ) of the neural map (``neural.training.kl.exact_kl``,
Monte Carlo with its standard error), the reference's KL, and ‖T_θk − T_ref,k‖ in L²(ϱ0).
Rates: the decay rate of the KL fitted by least squares on log KL over the steps where
the reference KL exceeds ``noise_factor`` times the Monte Carlo standard error, for the
reference and for each neural scheme, next to 2λ (Thm 2.13 (iii), Cor. 2.17; the
implicit scheme's own per-step contraction makes its rate smaller than the flow's).
"""

from __future__ import annotations

import pathlib
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from gridflow import Gaussian, Grid, LogConcaveTarget, Problem, examples, gaussian, rates, solve
from gridflow.checks import positive_float, positive_int, require_generator
from gridflow.examples import paper_mixture
from gridflow.groundtruth import read_ground_truth
from gridflow.maps import GridMap
from gridflow.measures import GaussianMixture, as_target
from gridflow.problem import FlooredSourceWarning
from neural.network.functions import transport_map_unchecked
from neural.network.initialization import INITS, initial_network
from neural.studies.dimensions import gaussian_problem
from neural.training import make_method, run_method
from neural.training.kl import exact_kl, relative_entropy

__all__ = [
    "CASES",
    "MAX_STEPS",
    "MIN_FIT_POINTS",
    "MIN_STEPS",
    "VARIANTS",
    "FlowCheck",
    "NeuralTrajectory",
    "Reference",
    "case_from_file",
    "flow_check",
    "flowcheck_figure",
    "format_flowcheck",
    "gaussian_case",
    "grid_case",
    "make_case",
]

MIN_FIT_POINTS = 3
"""The fewest steps k = 0..K a decay rate is fitted over (a line through 2 points fits any)."""
MIN_STEPS = MIN_FIT_POINTS - 1
"""The fewest outer steps K of a flow check: K + 1 = MIN_FIT_POINTS points k = 0..K."""
MAX_STEPS = 1000
"""The most outer steps K of a flow check: each trains every scheme's network (a thousand
take about half an hour at the quick size), and the flow is at its limit long before."""


def check_steps(steps, name: str = "steps") -> int:
    """The outer steps K as an int in [MIN_STEPS, MAX_STEPS], else ValueError (TypeError if
    not an integer)."""
    steps = positive_int(steps, name)
    if not MIN_STEPS <= steps <= MAX_STEPS:
        raise ValueError(
            f"{name} must be at least {MIN_STEPS} and at most {MAX_STEPS}, got {steps}: the KL "
            f"decay rates are fitted over at least {MIN_FIT_POINTS} points, and each step trains "
            "every scheme's network"
        )
    return steps


# ---------------------------------------------------------------------------
# Cases and their references
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Reference:
    """A reference trajectory at t_k = k τ, k = 0..K: its KL and its maps at any samples."""

    label: str
    kl: np.ndarray
    maps: Callable[[int, np.ndarray], np.ndarray]
    domain: Callable[[np.ndarray], np.ndarray]
    """Mask of the samples where ``maps`` is defined (a grid's box)."""


@dataclass(frozen=True, eq=False)
class Case:
    """A problem: ϱ0 (with a density and samples), γ (a ``LogConcaveTarget`` with V, log Z,
    λ), and a builder ``reference(tau, steps) -> Reference``."""

    name: str
    source: object
    target: LogConcaveTarget
    reference: Callable[[float, int], Reference]


def _everywhere(x):
    return np.ones(len(x), dtype=bool)


def gaussian_case(name: str, source: Gaussian, target) -> Case:
    """A Gaussian source and target in any d: the reference is the exact implicit scheme
    (``gridflow.gaussian.implicit_scheme``)."""
    target = as_target(target)
    if not isinstance(source, Gaussian) or not target.is_gaussian:
        raise TypeError("a Gaussian case needs a gridflow.Gaussian source and a Gaussian target")
    pair = (source, Gaussian(target.mean, target.cov))

    def reference(tau, steps):
        scheme = gaussian.implicit_scheme(*pair, tau, steps)

        def maps(k, x):
            return x @ scheme.A[k].T + scheme.b[k]

        return Reference("exact implicit scheme (Gaussian)", np.array(scheme.kl), maps, _everywhere)

    return Case(name, source, target, reference)


MAX_REFERENCE_FLOORED_MASS = 0.01
"""The largest share of the source's mass a grid reference's density floor may replace (its
label states the share: 0.0066 at the tiny size's 33² on the paper's mixture, which moves
the reference's KL by about 8 %; 0.036 on a 3D mixture at 33³, refused)."""
MAX_NODES_3D = 33
"""The finest 3D grid reference of the check: an implicit step at 65³ takes about 15 minutes
(docs/performance.md, "Three dimensions")."""


def grid_case(
    name: str, source, target, *, nodes: int = 65, box: float = 6.0, density_floor: float = 1e-5
) -> Case:
    """Any source with a density and samples and any target, in d = 1, 2 or 3: the reference
    is the grid's implicit scheme on [−box, box]^d with ``nodes`` nodes per axis
    (``gridflow.solve``; ``make_case`` says how to choose the density floor).

    The grid problem is made here, so that a grid that does not fit in memory, one whose
    density floor replaces more than MAX_REFERENCE_FLOORED_MASS of the source (its scheme would be
    another problem's: on a 3D mixture at 33³ with floor 1e-4, 3.6 % of the mass and a KL
    at k = 0 of 1.08 against 0.73), or a 3D grid above MAX_NODES_3D nodes per axis (hours of
    implicit steps) is refused before any training.
    """
    target = as_target(target)
    nodes = positive_int(nodes, "nodes")
    box = positive_float(box, "box")
    density_floor = positive_float(density_floor, "density_floor")
    if target.dim == 3 and nodes > MAX_NODES_3D:
        raise ValueError(
            f"a 3D grid reference of {nodes}³ nodes takes hours of implicit steps: use --size "
            f"tiny ({MAX_NODES_3D}³), or a Gaussian source and target (an exact reference)"
        )
    grid = Grid(lower=[-box] * target.dim, upper=[box] * target.dim, shape=[nodes] * target.dim)
    with warnings.catch_warnings():  # the floored mass is checked below, with its advice
        warnings.simplefilter("ignore", FlooredSourceWarning)
        problem = Problem(grid, source, target, density_floor=density_floor)
    if problem.floored_mass > MAX_REFERENCE_FLOORED_MASS:
        advice = "a larger size (more nodes)" if target.dim < 3 else "no finer grid is allowed"
        raise ValueError(
            f"the grid reference ({nodes} nodes per axis on [-{box:g}, {box:g}]^{target.dim}, "
            f"density floor {density_floor:g}) floors {problem.floored_mass:.2g} of the "
            f"source's mass (at most {MAX_REFERENCE_FLOORED_MASS:g}): its scheme would be another "
            f"problem's ({advice}); a Gaussian source and target have an exact reference"
        )

    def reference(tau, steps):
        trajectory = solve(problem, scheme="implicit", tau=tau, steps=steps)
        interpolants = [
            GridMap(grid, trajectory.points, trajectory.maps[k], None, trajectory.weights, {})
            for k in range(steps + 1)
        ]

        def maps(k, x):
            return interpolants[k](x)

        def domain(x):
            return np.all(np.abs(x) <= box, axis=1)

        label = (
            f"grid implicit scheme, {nodes}{('', '', '²', '³')[target.dim]} nodes, density floor "
            f"{density_floor:g} "
            f"(floored mass {problem.floored_mass:.2g})"
        )
        return Reference(label, np.array(trajectory.energy), maps, domain)

    return Case(name, source, target, reference)


def case_from_file(path, *, nodes: int = 65, density_floor: float = 1e-5) -> Case:
    """The problem a ground-truth file records (``gridflow.groundtruth.problem_of``): a
    ``gaussian_case`` when both laws are Gaussian, else a ``grid_case`` on the file's box."""
    truth = read_ground_truth(path)
    source, target, true_map = truth.source, truth.target, truth.map
    name = pathlib.Path(path).stem
    if isinstance(source, GaussianMixture) and source.weights.size == 1:
        source = Gaussian(source.means[0], source.covs[0])  # how the command writes a Gaussian
    if isinstance(source, Gaussian) and target.is_gaussian:
        return gaussian_case(name, source, target)
    lower, upper = np.array(true_map.grid.lower), np.array(true_map.grid.upper)
    if not np.allclose(lower, -upper):
        raise ValueError(
            f"ground truth {path}: the flow check's grid box is symmetric, the file's is not"
        )
    return grid_case(
        name, source, target, nodes=nodes, box=float(upper.max()), density_floor=density_floor
    )


MAX_TAU = 1e6
"""The largest step of the check (``flow_check``)."""
MIN_TAU = 1e-6
"""The smallest step of the check: below it the KL moves less than its Monte Carlo error."""


def check_tau(tau, name: str = "tau") -> float:
    """τ as a float in [MIN_TAU, MAX_TAU], else ValueError (TypeError if not a number)."""
    tau = positive_float(tau, name)
    if tau < MIN_TAU:
        raise ValueError(
            f"{name} must be at least {MIN_TAU:g}, got {tau:g}: a step that small leaves the "
            "flow where it starts (it contracts by e^(-2λτ) per step), and the check would "
            "fit a rate to Monte Carlo noise"
        )
    if tau > MAX_TAU:
        raise ValueError(
            f"{name} must be at most {MAX_TAU:g}, got {tau!r}: one implicit step of "
            f"{MAX_TAU:g} already reaches the OT map (the flow contracts by e^(-2λτ)), and "
            "longer times overflow"
        )
    return tau


CASES = ("gaussian2d", "mixture", "gaussian8")
"""Built-in cases: the 2D Gaussian pair of ``gridflow.examples.gaussian_source_2d`` →
N(0, I); the paper's mixture → N(0, I); a random Gaussian pair in d = 8
(``neural.studies.dimensions.gaussian_problem``, seed 0). Any other problem:
``gaussian_case`` or ``grid_case``."""


def make_case(name: str, *, nodes: int = 65, box: float = 6.0, density_floor: float = 1e-5) -> Case:
    """The built-in case ``name`` (``CASES``); ``nodes``, ``box``, ``density_floor``: the
    mixture's grid problem (``gridflow.Problem``). The grid's implicit steps from the
    identity need the floor: with 1e-6 Newton's method does not converge at 33² and 65²,
    nor with 1e-5 at 33² (the barrier at near-empty cells between the modes limits its
    steps); the sizes of ``SETTINGS`` use 1e-4 at 33², 1e-5 from 65². The floor changes
    the source by its floored mass (recorded in the label: 0.06 % at 65² with 1e-5), which
    shows in the reference KL once it is below about 1e-3."""
    if name == "gaussian2d":
        return gaussian_case(name, examples.gaussian_source_2d(), Gaussian.standard(2))
    if name == "gaussian8":
        source, target, *_ = gaussian_problem(8, np.random.default_rng(0))
        return gaussian_case(name, source, target)
    if name == "mixture":
        target = LogConcaveTarget.standard_gaussian(2)
        return grid_case(
            name, paper_mixture(), target, nodes=nodes, box=box, density_floor=density_floor
        )
    raise ValueError(f"unknown case {name!r}; choose from {', '.join(CASES)}")


# ---------------------------------------------------------------------------
# Neural trajectories
# ---------------------------------------------------------------------------


VARIANTS = (
    ("implicit", "logdet"),
    ("implicit", "score"),
    ("explicit", "logdet"),
    ("explicit", "score"),
)
"""(method, kl) run by default (``neural.training``)."""


@dataclass(frozen=True)
class NeuralTrajectory:
    """One neural scheme along the K outer steps (index k = 0..K, k = 0 the identity)."""

    method: str
    kl_gradient: str
    kl: np.ndarray
    kl_error: np.ndarray
    distance: np.ndarray
    seconds: float

    @property
    def label(self) -> str:
        return f"{self.method}, {self.kl_gradient}"


@dataclass(frozen=True)
class FlowCheck:
    """Reference and neural trajectories of one case, with the fitted KL decay rates."""

    case: str
    tau: float
    steps: int
    two_lambda: float
    reference: Reference
    neural: tuple[NeuralTrajectory, ...]
    fit_steps: np.ndarray
    reference_rate: float
    rates: dict
    noise_factor: float = 10.0

    @property
    def times(self) -> np.ndarray:
        return self.tau * np.arange(self.steps + 1)


def _distance(reference: Reference, k: int, y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum((y - reference.maps(k, x)) ** 2, axis=1))))


def _run_variant(case, reference, variant, tau, steps, settings, x_eval, rng):
    method, kl = variant
    dim = x_eval.shape[1]
    net = initial_network(
        dim, settings["hidden"], rng, settings["init"], source=case.source, quadratic=True
    )
    config = make_method(
        method,
        kl=kl,
        tau=tau,
        outer_steps=steps,
        inner_steps=settings["inner_steps"],
        inner_learning_rate=settings["inner_learning_rate"],
        inner_cosine_decay=settings["inner_cosine_decay"],
        batch_size=settings["batch_size" if kl == "logdet" else "score_batch_size"],
    )
    iterates = []
    start = time.process_time()
    run_method(config, net, case.source, case.target, rng,
               callback=lambda k, theta: iterates.append(np.array(theta)))  # fmt: skip
    seconds = time.process_time() - start
    identity = relative_entropy(case.source, case.target, x_eval, x_eval, np.zeros(len(x_eval)))
    estimates = [identity] + [
        exact_kl(net.architecture, theta, case.source, case.target, x_eval) for theta in iterates
    ]
    distances = [0.0] + [
        _distance(
            reference, k + 1, transport_map_unchecked(net.architecture, theta, x_eval), x_eval
        )
        for k, theta in enumerate(iterates)
    ]
    return NeuralTrajectory(
        method=method,
        kl_gradient=kl,
        kl=np.array([e.value for e in estimates]),
        kl_error=np.array([e.standard_error for e in estimates]),
        distance=np.array(distances),
        seconds=seconds,
    )


SETTINGS = {
    "tiny": {"hidden": (6, 6), "init": "anchored", "inner_steps": 20, "inner_learning_rate": 0.02,
             "inner_cosine_decay": True, "batch_size": 100, "score_batch_size": 50,
             "n_eval": 3000, "nodes": 33, "density_floor": 1e-4},
    "quick": {"hidden": (32, 32), "init": "anchored", "inner_steps": 500,
              "inner_learning_rate": 0.05,
              "inner_cosine_decay": True, "batch_size": 1000, "score_batch_size": 100,
              "n_eval": 50000, "nodes": 65, "density_floor": 1e-5},
    "full": {"hidden": (32, 32), "init": "anchored", "inner_steps": 2000,
             "inner_learning_rate": 0.05,
             "inner_cosine_decay": True, "batch_size": 2000, "score_batch_size": 100,
             "n_eval": 200000, "nodes": 129, "density_floor": 1e-5},
}  # fmt: skip
"""Network and its θ0 scheme, inner Adam solver, batch and evaluation sizes, the mixture's
grid, per size (tiny: for tests only)."""


def flow_check(
    case: str | Case,
    *,
    tau: float = 0.25,
    steps: int = 10,
    variants: Sequence[tuple[str, str]] = VARIANTS,
    size: str | Mapping = "quick",
    noise_factor: float = 10.0,
    rng: np.random.Generator | None = None,
) -> FlowCheck:
    """Run the reference and the neural ``variants`` on ``case`` (module docstring).

    ``size``: a key of ``SETTINGS``, or a dict overriding entries of SETTINGS['quick'].
    """
    if isinstance(size, Mapping):
        settings = {**SETTINGS["quick"], **size}
    elif size in SETTINGS:
        settings = SETTINGS[size]
    else:
        raise ValueError(f"size must be one of {', '.join(SETTINGS)} or a dict, got {size!r}")
    if settings["init"] not in INITS:
        raise ValueError(
            f"size['init'] must be one of {', '.join(INITS)}, got {settings['init']!r}"
        )
    tau = check_tau(tau)
    steps = check_steps(steps)
    if isinstance(case, str):
        case = make_case(case, nodes=settings["nodes"], density_floor=settings["density_floor"])
    rng = np.random.default_rng(0) if rng is None else require_generator(rng)
    reference = case.reference(tau, steps)
    x_eval = case.source.sample(rng, settings["n_eval"])
    x_eval = x_eval[reference.domain(x_eval)]
    neural = tuple(
        _run_variant(case, reference, variant, tau, steps, settings, x_eval, rng)
        for variant in variants
    )
    noise = np.max([t.kl_error for t in neural], axis=0) if neural else np.zeros(steps + 1)
    fit_steps = np.flatnonzero(reference.kl > noise_factor * noise)
    times = tau * np.arange(steps + 1)

    def rate(kl):
        if fit_steps.size < MIN_FIT_POINTS:
            return np.nan
        window = (np.inf, np.finfo(float).tiny)
        return rates.fit_log_linear(times[fit_steps], kl[fit_steps], window, relative=False).rate

    return FlowCheck(
        case=case.name,
        tau=tau,
        steps=steps,
        two_lambda=2.0 * (case.target.lam if case.target.lam is not None else np.nan),
        reference=reference,
        neural=neural,
        fit_steps=fit_steps,
        reference_rate=rate(reference.kl),
        rates={t.label: rate(t.kl) for t in neural},
        noise_factor=noise_factor,
    )


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def format_flowcheck(check: FlowCheck) -> str:
    """The KL per step of the reference and of each scheme [j] (± its standard error), the map
    distances to the reference, and the fitted rates."""
    lines = [
        f"case {check.case}: τ = {check.tau}, K = {check.steps}",
        f"  ref  {check.reference.label}",
    ]
    lines += [f"  [{j}]  {t.label}" for j, t in enumerate(check.neural, 1)]
    columns = "".join(f"{f'KL [{j}]':>21}" for j in range(1, len(check.neural) + 1))
    lines.append(f"{'k':>3} {'t':>6} {'KL ref':>11}{columns}")
    for k in range(check.steps + 1):
        cells = "".join(f"{t.kl[k]:>12.4g} ± {t.kl_error[k]:<6.1g}" for t in check.neural)
        lines.append(f"{k:>3} {check.tau * k:>6.2f} {check.reference.kl[k]:>11.4g}{cells}")
    lines.append("‖T_θk − T_ref,k‖ in L²(ϱ0), k = 0..K:")
    for j, t in enumerate(check.neural, 1):
        lines.append(f"  [{j}] " + " ".join(f"{v:.3g}" for v in t.distance))
    steps = check.fit_steps
    above = f"reference KL > {check.noise_factor:g} × Monte Carlo error"
    if steps.size < MIN_FIT_POINTS:
        found = ", ".join(map(str, steps)) if steps.size else "none"
        lines += [
            f"KL decay rate: not fitted (2λ = {check.two_lambda:.3g}): a rate needs "
            f"{MIN_FIT_POINTS} steps with {above}, this run has {steps.size} (steps: {found})",
            "  the KL falls below the Monte Carlo error of its estimate too soon: give more "
            "steps, a smaller τ, or a larger size (a smaller Monte Carlo error)",
        ]
        lines += [f"  [{j}] {t.seconds:.1f} s CPU" for j, t in enumerate(check.neural, 1)]
        return "\n".join(lines)
    lines.append(
        f"KL decay rate, fitted over steps {steps.min()}..{steps.max()} ({above}): "
        f"reference {check.reference_rate:.3g}, 2λ = {check.two_lambda:.3g}"
    )
    for j, t in enumerate(check.neural, 1):
        ratio = check.rates[t.label] / check.reference_rate
        lines.append(
            f"  [{j}] {check.rates[t.label]:.3g} ({ratio:.2f} × reference), {t.seconds:.1f} s CPU"
        )
    return "\n".join(lines)


def flowcheck_figure(checks: Sequence[FlowCheck]):
    """KL vs step (log scale; shaded: ± 2 Monte Carlo standard errors) and map distance vs
    step, one row per case."""
    # start-up time: matplotlib takes about 0.3 s to import, and only the figure needs it
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(checks), 2, figsize=(11, 3.8 * len(checks)), squeeze=False)
    for row, check in zip(axes, checks, strict=True):
        steps = np.arange(check.steps + 1)
        row[0].semilogy(steps, check.reference.kl, "k-o", lw=2, label="reference")
        for t in check.neural:
            (line,) = row[0].semilogy(steps, t.kl, marker=".", label=t.label)
            low = np.maximum(t.kl - 2 * t.kl_error, 1e-12)
            row[0].fill_between(steps, low, t.kl + 2 * t.kl_error, color=line.get_color(),
                                alpha=0.2, lw=0)  # fmt: skip
            row[1].plot(steps, t.distance, marker=".", color=line.get_color(), label=t.label)
        row[0].set(xlabel="outer step k", ylabel="KL(T_k#ϱ0 | γ)",
                   title=f"{check.case}: KL per step, τ = {check.tau}")  # fmt: skip
        row[1].set(xlabel="outer step k", ylabel="‖T_θk − T_ref,k‖ in L²(ϱ0)",
                   title=f"{check.case}: distance to the reference")  # fmt: skip
        for ax in row:
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
