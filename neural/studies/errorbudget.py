"""The error budget of Remark 3.11: which cause keeps a trained map away from T*.

Remark 3.11 names three causes: (i) the parameterization (the ICNN class cannot represent
T*), (ii) inexact inner solves, (iii) sampling and the score estimate. Against an exact T*
(the closed form for Gaussian pairs, a ``gridflow`` ground-truth file for the paper's
mixture) this module measures, per problem and network width, with and without the
quadratic part (``ICNN(quadratic=True)``):

- ``fit``     (i) the parameterization floor: the ICNN fitted to T* directly,
              min_θ (1/N) Σ_i ‖∇φ_θ(x_i) − T*(x_i)‖² on a fixed sample of N = ``FIT_SAMPLES``
              points by L-BFGS-B (the constraints Wz_l ≥ 0, w ≥ 0 as bounds). A least-squares
              problem is bounded below, so a fixed sample is safe here (unlike the KL,
              ``neural.training``), and a quasi-Newton method gets much closer to the floor
              than Adam: on the mixture, (20, 20), from the default θ0, 2000 iterations
              reach L²-UVP 0.35 % where 2000 Adam steps stopped at 1.95 %, and from
              anchored units 0.045 % (docs/neural.md, 'Error budget');
- ``logdet``  (iii) the KL minimized with the exact, score-free gradient (``neural.training.kl``),
              Adam with cosine decay on fresh batches of n (n = batch size);
- ``score``   (iii) the same with the paper's self-entropic score estimate (eq. 3.7);
- ``implicit`` (ii) Algorithm 2's implicit scheme (score-free KL), K = 5 steps of τ = 2,
              with K' = ``inner_steps`` and 10 × ``inner_steps`` Adam inner steps (the
              inner solves' error);
- ``fit+logdet`` the ``logdet`` run started from the ``fit`` instead of θ0: where it ends
              far below ``logdet`` in KL and in L² error, the KL runs are held back by
              where their optimization ends (the basin), not by the class or the samples.

Every configuration starts from the θ0 of each scheme of ``inits``
(``neural.network.initialization``, 'normal' by default). On the paper's mixture the θ0
decides more than any cause: from the default draw every KL run stops on a plateau near KL
0.2 (UVP 1.9–3.8 %), from 'anchored' units they end at UVP 0.04–0.33 % (docs/neural.md,
'Error budget').

Each run reports ‖T_θ − T*‖ in L²(ϱ0), the L²-UVP, the exact KL (``neural.training.kl.exact_kl``)
with its standard error, the energy-distance MMD to γ and the CPU time of training.
"""

from __future__ import annotations

import itertools
import pathlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from gridflow import LogConcaveTarget
from gridflow.checks import positive_int, require_generator, sample_count
from gridflow.examples import paper_mixture
from gridflow.groundtruth import (
    RESOLUTION_FACTOR,
    read_ground_truth,
    resolved,
    truth_error,
)
from gridflow.maps import map_distance
from gridflow.measures import as_target
from neural.errors import DivergenceError
from neural.mmd import energy_distance
from neural.network import ICNN
from neural.network.functions import transport_map_unchecked
from neural.network.initialization import INITS, initial_network
from neural.studies.dimensions import gaussian_problem
from neural.studies.evaluation import DEFAULT_EVAL_SAMPLES
from neural.studies.sweep.config import check_ground_truth
from neural.training import make_method, run_method
from neural.training.kl import check_eval_size, exact_kl
from neural.training.methods import check_step_record
from neural.training.regression import MapFit, regress

__all__ = [
    "FIT_SAMPLES",
    "BudgetProblem",
    "BudgetRun",
    "budget_figure",
    "check_options",
    "error_budget",
    "fit_to_map",
    "format_budget",
    "make_problem",
    "problem_from_file",
]


@dataclass(frozen=True, eq=False)
class BudgetProblem:
    """ϱ0 (samples and density), γ (a ``LogConcaveTarget`` or ``Gaussian``), the exact T*
    (any map of ``gridflow.maps``: a ground truth's ``GridMap``, a Gaussian pair's
    ``AffineMap``), and γ's covariance (the UVP's scale; by default the target's own)."""

    name: str
    source: object
    target: LogConcaveTarget
    true_map: Callable[[np.ndarray], np.ndarray]
    target_cov: np.ndarray | None = None

    def __post_init__(self):
        object.__setattr__(self, "target", as_target(self.target))
        if self.target_cov is None:
            if not self.target.is_gaussian:
                raise ValueError("give target_cov: the target's covariance is not known")
            object.__setattr__(self, "target_cov", self.target.cov)


def problem_from_file(path) -> BudgetProblem:
    """The problem a ground-truth file records (its source and target, rebuilt from its
    metadata: ``gridflow.groundtruth.problem_of``), graded against the file's map."""
    truth = read_ground_truth(path)
    source, target, true_map = truth.source, truth.target, truth.map
    if not target.is_gaussian:
        raise ValueError(
            f"ground truth {path}: the error budget's UVP needs the target's covariance, and "
            f"{target.name} is not Gaussian: give a ground truth of a Gaussian target "
            "(groundtruth --target standard or a Gaussian .json), or, in Python, a "
            "BudgetProblem with target_cov"
        )
    return BudgetProblem(pathlib.Path(path).stem, source, target, true_map)


GROUND_TRUTH_PROBLEMS = ("mixture", "file")
"""The problems graded against the ground-truth file; the Gaussian pairs have closed forms."""


def check_ground_truth_use(names, ground_truth) -> None:
    """ValueError for a ground-truth file that none of the problems ``names`` reads (the
    Gaussian pairs are graded against their closed form): it would be ignored without a
    word."""
    if ground_truth is not None and not set(names) & set(GROUND_TRUTH_PROBLEMS):
        raise ValueError(
            f"the ground truth {str(ground_truth)!r} is read by the problems "
            f"{' and '.join(GROUND_TRUTH_PROBLEMS)} only, and --problems lists "
            f"{' '.join(map(str, names))} (graded against their closed forms): add one, or "
            "drop --ground-truth"
        )


def make_problem(name: str, ground_truth=None) -> BudgetProblem:
    """'mixture' (the paper's, against the ground-truth file, checked to be the mixture's by
    ``neural.studies.sweep.check_ground_truth``), 'file' (the problem the ground-truth file
    records, ``problem_from_file``) or 'gaussianD' (the dimension study's random pair in
    d = D, ``neural.studies.dimensions.gaussian_problem``)."""
    if name == "file":
        if ground_truth is None:
            raise ValueError("the problem 'file' is the one of --ground-truth: give the file")
        return problem_from_file(ground_truth)
    if name == "mixture":
        if ground_truth is None:
            raise ValueError(
                "the mixture's error budget needs a ground-truth map: "
                "python -m gridflow groundtruth --source paper-mixture --nodes 129 --out truth.npz"
            )
        try:
            true_map = check_ground_truth(ground_truth)  # the mixture's map, or ValueError
        except ValueError as error:
            raise ValueError(
                f"'mixture' is the paper's 2D mixture, graded against its ground truth: {error}; "
                "for the problem this file records, use --problems file"
            ) from None
        return BudgetProblem(
            name, paper_mixture(), LogConcaveTarget.standard_gaussian(2), true_map, np.eye(2)
        )
    if not isinstance(name, str):
        raise TypeError(f"the problem's name (--problems) must be a str, got {name!r}")
    if name.startswith("gaussian") and name[len("gaussian") :].isdigit():
        dim = positive_int(
            int(name[len("gaussian") :]),
            f"the dimension D of the problem {name!r} (--problems gaussianD, e.g. gaussian8)",
        )
        problem_seq = np.random.SeedSequence([0, dim]).spawn(4)[0]  # the dimension study's pair
        source, target, matrix, offset, cov = gaussian_problem(
            dim, np.random.default_rng(problem_seq)
        )
        return BudgetProblem(name, source, target, lambda x: x @ matrix.T + offset, cov)
    raise ValueError(
        f"unknown problem {name!r} (--problems): 'mixture', 'file' or 'gaussianD' (e.g. gaussian8)"
    )


FIT_SAMPLES = 20_000
"""Size of the fixed sample of the regression onto T* (``fit``): with at most a few thousand
parameters, the fit's held-out error equals its training error to a few percent."""


def fit_to_map(net: ICNN, sampler, true_map, steps: int, samples: int, rng) -> MapFit:
    """(i): θ minimizing (1/N) Σ_i ‖∇φ_θ(x_i) − T*(x_i)‖² over a fixed sample x of N =
    ``samples`` points of ``sampler``, by at most ``steps`` iterations of L-BFGS-B from
    ``net.params``, the constrained entries (Wz_l, w) bounded below by 0."""
    samples = positive_int(samples, "samples")
    x = sampler.sample(require_generator(rng), samples)
    targets = np.asarray(true_map(x), dtype=np.float64)
    return regress(net.architecture, net.params, x, targets, steps)


@dataclass(frozen=True)
class BudgetRun:
    """One training run of the budget and its errors against T* (module docstring)."""

    problem: str
    cause: str
    hidden: tuple[int, ...]
    quadratic: bool
    batch: int
    steps: int
    l2: float
    uvp: float
    kl: float
    kl_error: float
    mmd: float
    seconds: float
    status: str = "ok"
    init: str = "normal"
    truth_error: float = 0.0
    """T*'s own error in L²(ϱ0) (the ground truth's estimate; 0 for a closed form)."""


def _evaluate(problem, net_architecture, theta, x_eval, y_eval):
    pushed = transport_map_unchecked(net_architecture, theta, x_eval)
    if not np.isfinite(pushed).all():
        raise DivergenceError("the trained map is not finite at the evaluation samples")
    error = map_distance(lambda _x: pushed, problem.true_map, x_eval, problem.target_cov)
    try:
        kl = exact_kl(net_architecture, theta, problem.source, problem.target, x_eval)
        kl_value, kl_error = kl.value, kl.standard_error
    except DivergenceError:
        kl_value, kl_error = np.inf, np.nan
    return error, kl_value, kl_error, energy_distance(pushed, y_eval)


def _train(problem, cause, net, batch, steps, learning_rate, inner_steps, fit_samples, rng):
    if cause in ("fit", "fit+logdet"):
        fit = fit_to_map(net, problem.source, problem.true_map, steps, fit_samples, rng)
        if cause == "fit":
            return fit.params
        net = ICNN.from_architecture(net.architecture, fit.params)
    if cause in ("logdet", "score", "fit+logdet"):
        config = make_method("adam", kl="score" if cause == "score" else "logdet",
                             batch_size=batch, steps=steps, learning_rate=learning_rate,
                             cosine_decay=True)  # fmt: skip
    else:  # implicit: K = IMPLICIT_OUTER_STEPS proximal steps of τ = IMPLICIT_TAU
        config = make_method(
            "implicit", kl="logdet", batch_size=batch, tau=IMPLICIT_TAU,
            outer_steps=IMPLICIT_OUTER_STEPS, inner_steps=inner_steps,
            inner_learning_rate=learning_rate, inner_cosine_decay=True,
        )  # fmt: skip
    return run_method(config, net, problem.source, problem.target, rng).params


CAUSES = ("fit", "logdet", "score", "implicit", "fit+logdet")

IMPLICIT_TAU, IMPLICIT_OUTER_STEPS = 2.0, 5
"""The implicit runs (ii): K = 5 proximal steps of τ = 2 (their KL contracts by about
(1 + 2λτ)⁻¹ per step), each solved by K' Adam steps; K' = inner_steps and 10 × inner_steps
measure the error of the inner solves."""


def check_options(causes: Sequence[str], inits: Sequence[str], quadratic: Sequence[bool]):
    """ValueError, before any run, for an unknown cause or θ0 scheme, or a combination that
    cannot be built (the 'torch' θ0 has no quadratic part)."""
    unknown = set(causes) - set(CAUSES)
    if unknown:
        raise ValueError(f"unknown cause(s) {sorted(unknown)}; choose from {', '.join(CAUSES)}")
    unknown = set(inits) - set(INITS)
    if unknown:
        raise ValueError(f"unknown init(s) {sorted(unknown)}; choose from {', '.join(INITS)}")
    if "torch" in inits and any(quadratic):
        raise ValueError(
            "the 'torch' θ0 has no quadratic part: choose quadratic=False (--quadratic without)"
        )


def check_run_lengths(steps: int, inner_steps: int) -> None:
    """ValueError (TypeError if not integers), before any run, for step counts whose
    per-step records cannot fit in memory: ``steps`` of every run, and the implicit runs'
    IMPLICIT_OUTER_STEPS × 10 × ``inner_steps``."""
    check_step_record(positive_int(steps, "steps"))
    check_step_record(IMPLICIT_OUTER_STEPS * 10 * positive_int(inner_steps, "inner_steps"))


def check_evaluation_memory(problems: Sequence[BudgetProblem], n_eval: int) -> None:
    """InsufficientMemoryError (a ValueError), before any run, when ``n_eval`` samples of a
    problem's source cannot be drawn in the memory available."""
    for problem in problems:
        sample_count(n_eval, problem.source.dim, "n_eval")


def error_budget(
    problems: Sequence[BudgetProblem],
    *,
    widths: Sequence[tuple[int, ...]] = ((20, 20), (64, 64)),
    quadratic: Sequence[bool] = (False, True),
    causes: Sequence[str] = CAUSES,
    inits: Sequence[str] = ("normal",),
    batches: Sequence[int] = (1000,),
    steps: int = 2000,
    learning_rate: float = 0.01,
    inner_steps: int = 100,
    n_eval: int = DEFAULT_EVAL_SAMPLES,
    fit_samples: int = FIT_SAMPLES,
    seed: int = 0,
    progress: bool = False,
    on_row: Callable[[BudgetRun], None] | None = None,
) -> tuple[BudgetRun, ...]:
    """Every (problem, width, quadratic part, θ0 scheme, cause, batch) run; the same θ0 per
    (problem, width, quadratic part, θ0 scheme: ``neural.network.initialization.INITS``) and fresh
    data streams from ``seed``. ``steps`` Adam steps for
    'logdet' and 'score', L-BFGS-B iterations for 'fit' (once per configuration, on
    ``fit_samples`` points, whatever ``batches``; 'fit+logdet' both in turn); 'implicit'
    runs twice, with
    K' = ``inner_steps`` and 10 × ``inner_steps`` inner Adam steps per outer step
    (``IMPLICIT_OUTER_STEPS``).
    ``on_row(run)`` is called as each run finishes (e.g. to save it at once)."""
    check_options(causes, inits, quadratic)
    check_run_lengths(steps, inner_steps)
    n_eval = check_eval_size(n_eval)
    check_evaluation_memory(problems, n_eval)
    jobs = []
    for problem in problems:
        for hidden in widths:
            for quad, init, cause in itertools.product(quadratic, inits, causes):
                for batch in (fit_samples,) if cause == "fit" else batches:
                    inners = (inner_steps, 10 * inner_steps) if cause == "implicit" else (0,)
                    jobs += [(problem, hidden, quad, init, cause, batch, i) for i in inners]
    iterator = jobs
    if progress:
        iterator = tqdm(jobs, desc="error budget runs")
    rows = []
    for problem, hidden, quad, init, cause, batch, inner in iterator:
        eval_rng = np.random.default_rng([seed, 1])
        x_eval = problem.source.sample(eval_rng, n_eval)
        y_eval = eval_rng.standard_normal((n_eval, x_eval.shape[1])) @ np.linalg.cholesky(
            problem.target_cov
        ).T + (problem.target.mean if problem.target.mean is not None else 0.0)
        net = initial_network(x_eval.shape[1], hidden, np.random.default_rng([seed, 2]), init,
                              source=problem.source, quadratic=quad)  # fmt: skip
        rng = require_generator(np.random.default_rng([seed, 3]))
        label = cause if cause != "implicit" else f"implicit K'={inner}"
        start = time.process_time()
        try:
            theta = _train(
                problem, cause, net, batch, steps, learning_rate, inner, fit_samples, rng
            )
            seconds = time.process_time() - start
            error, kl, kl_error, mmd = _evaluate(problem, net.architecture, theta, x_eval, y_eval)
            values = (error.l2, error.uvp, kl, kl_error, mmd, seconds, "ok")
        except DivergenceError as failure:
            values = (np.nan,) * 5 + (time.process_time() - start, f"diverged: {failure}")
        rows.append(
            BudgetRun(
                problem.name,
                label,
                tuple(hidden),
                quad,
                batch,
                steps,
                *values,
                init=init,
                truth_error=truth_error(problem.true_map),
            )
        )
        if on_row is not None:
            on_row(rows[-1])
    return tuple(rows)


def format_budget(rows: Sequence[BudgetRun]) -> str:
    """Plain-text table of an error budget."""
    header = (
        f"{'problem':<11} {'cause':<16} {'width':<9} {'quad':<5} {'init':<8} {'n':>6} "
        f"{'L2 err':>8} {'UVP %':>9} {'KL':>16} {'MMD':>8} {'CPU s':>7}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        width = "x".join(map(str, r.hidden))
        kl = f"{r.kl:.4f} ± {r.kl_error:.1g}" if np.isfinite(r.kl) else "inf"
        lines.append(
            f"{r.problem:<11} {r.cause:<16} {width:<9} {'yes' if r.quadratic else 'no':<5} "
            f"{r.init:<8} {r.batch:>6} {r.l2:>8.4f} {r.uvp:>9.4f} {kl:>16} {r.mmd:>8.4f} "
            f"{r.seconds:>7.1f}"
            + ("" if r.status == "ok" else f"  {r.status}")
            + ("" if resolved(r.l2, r.truth_error) else "  *")
        )
    unresolved = {r.problem: r.truth_error for r in rows if not resolved(r.l2, r.truth_error)}
    for problem, error in unresolved.items():
        lines.append(
            f"* {problem}: below {RESOLUTION_FACTOR:g} × the ground truth's estimated error "
            f"{error:.2g}: not resolved, the distance is the ground truth's as much"
        )
    return "\n".join(lines)


def _configuration(row: BudgetRun) -> tuple[str, bool, str]:
    return "x".join(map(str, row.hidden)), row.quadratic, row.init


def budget_figure(rows: Sequence[BudgetRun]):
    """L²-UVP of every run (log scale), one panel per problem, grouped by configuration."""
    # start-up time: matplotlib takes about 0.3 s to import, and only the figure needs it
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = list(dict.fromkeys(r.problem for r in rows))
    fig, axes = plt.subplots(1, len(problems), figsize=(6 * len(problems), 4.5), squeeze=False)
    for ax, name in zip(axes[0], problems, strict=True):
        mine = [r for r in rows if r.problem == name]
        configs = list(dict.fromkeys(_configuration(r) for r in mine))
        causes = list(dict.fromkeys((r.cause, r.batch) for r in mine))
        width = 0.8 / len(causes)
        for j, (cause, batch) in enumerate(causes):
            values = [
                next((r.uvp for r in mine if _configuration(r) == c
                      and (r.cause, r.batch) == (cause, batch)), np.nan)
                for c in configs
            ]  # fmt: skip
            ax.bar(np.arange(len(configs)) + j * width, values, width, label=f"{cause}, n={batch}")
        ax.set_xticks(np.arange(len(configs)) + 0.4 - width / 2)
        ax.set_xticklabels([f"{w}{' +quad' if q else ''}\n{i}" for w, q, i in configs], fontsize=8)
        ax.set(xlabel="ICNN width", ylabel="L²-UVP (%)", title=name)
        if any(np.isfinite(r.uvp) and r.uvp > 0 for r in mine):
            ax.set_yscale("log")
        else:  # every run diverged (NaN): a log axis has nothing to scale
            ax.text(0.5, 0.5, "no finite UVP: every run diverged", ha="center",
                    transform=ax.transAxes)  # fmt: skip
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig
