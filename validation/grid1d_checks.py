"""Validation of the 1D grid solver: grid convergence, Theorem 2.13, Propositions 3.1, 3.3.

Each check runs the discrete problem (docs/mathematics.md, 'The grid discretization') and
measures a paper statement against the discrete minimizer T_h* (computed by Newton's method
to roundoff), or against the exact quantile map for grid convergence.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, replace

import numpy as np

from gridflow import LogConcaveTarget, minimize, quantile_map, solve
from gridflow.cones import project_onto_tangent_cone
from gridflow.examples import gaussian_source_1d, mixture_1d, problem_1d, shifted_mixture_1d
from gridflow.functionals import kl_gradient
from gridflow.rates import (
    energy_gap_bound_convex,
    energy_gap_bound_strongly_convex,
    fit_log_linear,
    map_error_bound_strongly_convex,
)
from gridflow.schemes import explicit_stability_bound
from validation.plotting import (
    convergence_figure,
    figure_file,
    pyplot,
    readable_log_ticks,
    slope_guide,
)
from validation.report import Check
from validation.statements import (
    ROUNDOFF,
    fitted_rate_check,
    implicit_scheme_checks,
    proposition_3_3_check,
    theorem_2_13_checks,
    verdict,
)

SIZES = {
    "quick": {"nodes": 200, "grid_nodes": (100, 200, 400, 800), "flow_steps": 60},
    "full": {"nodes": 400, "grid_nodes": (100, 200, 400, 800, 1600), "flow_steps": 80},
}


def grid_convergence(grid_nodes, outdir) -> list[Check]:
    errors = []
    for nodes in grid_nodes:
        problem = problem_1d(nodes)
        exact = quantile_map(problem.source, problem.target, problem.points)
        errors.append(problem.norm(minimize(problem).map - exact))
    errors = np.array(errors)
    orders = np.log2(errors[:-1] / errors[1:])
    spacings = 12.0 / (np.array(grid_nodes) - 1)
    record = convergence_figure(
        spacings,
        errors,
        "1D: discrete OT map vs the exact quantile map",
        outdir,
        "grid1d_convergence.png",
        "1D mixture → N(0, 1) on [-6, 6]: L²(ϱ0) distance between the discrete minimizer "
        "T_h* of F_h and the exact quantile map T*, against the grid spacing; the dotted "
        "line has slope 2 (second order).",
    )
    at_400 = float(errors[list(grid_nodes).index(400)])
    details = {"nodes": list(grid_nodes), "errors": errors.tolist(), "orders": orders.tolist()}
    setting = "1D mixture → N(0,1), [-6, 6]"
    return [
        Check(
            "grid convergence",
            f"{setting}, 400 nodes",
            f"{at_400:.3g}",
            "< 1e-4",
            verdict(at_400 < 1e-4),
            {**details, **record},
        ),
        Check(
            "grid convergence order",
            f"{setting}, nodes {list(grid_nodes)}",
            f"{orders.min():.3f} (min)",
            ">= 1.8",
            verdict(orders.min() >= 1.8),
            details,
        ),
    ]


@dataclass(frozen=True)
class FlowTarget:
    """A target of the 1D flow checks, with what its report rows and figure say about it."""

    target: LogConcaveTarget
    label: str
    """Appended to the setting (empty for the default N(0, 1))."""
    figure: str
    caption: str
    note: str
    """Why the fitted rate exceeds 2λ when the check is a lower bound."""


MEAN_MATCHED_NOTE = (
    "the source's mean equals the target's: the translation mode, the only one of rate 2λ, "
    "is not excited and the next mode decays at ~4λ"
)

FLOW_TARGETS = {
    "gaussian": FlowTarget(
        LogConcaveTarget.gaussian([0.0], [[1.0]]),
        "",
        "grid1d_flow.png",
        "1D flows (cons.gf) to N(0, 1), 200 nodes: energy gap and squared map error to the "
        "discrete optimum, with the bounds of Thm 2.13 (iii.a), (iii.b) (dashed, λ = 1). "
        "The mean-matched mixture does not excite the translation mode and decays at ~4λ; "
        "the shifted one decays at the rate 2λ, parallel to the dotted slope-2λ guide drawn a "
        "decade below it.",
        MEAN_MATCHED_NOTE,
    ),
    "logcosh": FlowTarget(
        LogConcaveTarget.logcosh(1),
        " → exp(-y²/2 - log cosh y)",
        "grid1d_flow_logcosh.png",
        "1D flows (cons.gf) to the non-Gaussian γ ∝ exp(-y²/2 - log cosh y) (λ = 1), 200 "
        "nodes: energy gap and squared map error to the discrete optimum, with the bounds of "
        "Thm 2.13 (iii.a), (iii.b) (dashed). V'' = 1 + sech² y > λ, so both decay faster "
        "than 2λ: steeper than the dotted slope-2λ guide (drawn a decade below the shifted "
        "mixture's fitted line).",
        "V'' = λ + sech² y > λ: no mode of the linearized flow decays as slowly as 2λ",
    ),
}


def flow_checks(nodes, steps, outdir, kind: str = "gaussian") -> list[Check]:
    """Thm 2.13 (i), (iii) and the fitted rate along the flow to ``FLOW_TARGETS[kind]``, from
    the mean-matched and the shifted mixture."""
    flow_target = FLOW_TARGETS[kind]
    checks, curves = [], []
    for label, source in (
        ("mean-matched mixture", mixture_1d()),
        ("shifted mixture", shifted_mixture_1d()),
    ):
        problem = problem_1d(nodes, source=source, target=flow_target.target)
        optimum = minimize(problem)
        flow = solve(problem, "flow", tau=0.1, steps=steps)
        lam = problem.target.lam
        gap = flow.energy - optimum.energy
        squared_error = flow.errors(optimum.map) ** 2
        energy_bound = energy_gap_bound_strongly_convex(flow.times, gap[0], lam)
        error_bound = map_error_bound_strongly_convex(flow.times, gap[0], lam)
        fit = fit_log_linear(flow.times, gap)
        setting = f"1D flow, {label}{flow_target.label}, {nodes} nodes"
        checks += theorem_2_13_checks(flow, optimum, lam, setting)
        exact = flow_target.target.is_gaussian and label == "shifted mixture"
        checks.append(fitted_rate_check(fit, lam, setting, exact, flow_target.note))
        curves.append((label, flow.times, gap, energy_bound, fit, squared_error, error_bound))
    with pyplot() as plt:
        figure, axes = plt.subplots(1, 2, figsize=(11, 4))
        for label, times, gap, energy_bound, fit, squared_error, error_bound in curves:
            (line,) = axes[0].semilogy(times, gap, label=f"{label}: fitted rate {fit.rate:.3f}")
            color = line.get_color()
            axes[0].semilogy(
                times, energy_bound, "--", color=color, lw=0.8, label=f"{label}: bound (iii.a)"
            )
            axes[1].semilogy(times, squared_error, color=color, label=label)
            axes[1].semilogy(
                times, error_bound, "--", color=color, lw=0.8, label=f"{label}: bound (iii.b)"
            )
        label, times, _, _, fit = curves[1][:5]  # the shifted mixture: the rate 2λ when exact
        guide = rf"slope $2\lambda$ (a decade below the {label} where its rate is fitted)"
        slope_guide(axes[0], times, fit, 2.0 * lam, guide)
        axes[0].set_title("energy gap (dashed: Thm 2.13 (iii.a))")
        axes[0].set_ylabel(r"$F_h(T_t) - F_h^*$")
        axes[1].set_title("squared map error (dashed: Thm 2.13 (iii.b))")
        axes[1].set_ylabel(r"$\|T_t - T_h^*\|_w^2$")
        for axis in axes:
            axis.set_xlabel("$t$")
            axis.set_ylim(1e-14, None)
            axis.legend(fontsize=7, loc="lower left")
        record = figure_file(figure, outdir, flow_target.figure, flow_target.caption)
    return [replace(c, details={**c.details, **record}) for c in checks]


def implicit_checks(nodes, outdir) -> list[Check]:
    problem = problem_1d(nodes)
    optimum = minimize(problem)
    checks = []
    for tau in (0.1, 0.5, 2.0):
        setting = f"1D implicit, τ = {tau}, {nodes} nodes"
        checks += implicit_scheme_checks(problem, optimum, tau, 8, setting)
    checks.append(proposition_3_3_check(problem, (0.2, 0.1, 0.05), 1.0, "1D"))
    return checks


def explicit_checks(nodes) -> list[Check]:
    mixture = problem_1d(nodes)
    mixture_bounds = [
        explicit_stability_bound(mixture, T) for T in (mixture.identity(), minimize(mixture).map)
    ]
    problem = problem_1d(100, source=gaussian_source_1d())
    optimum = minimize(problem)
    tau = 0.5 * explicit_stability_bound(problem, problem.identity(), optimum.map)
    trajectory = solve(problem, "explicit", tau=tau, steps=int(8.0 / tau))
    errors = trajectory.errors(optimum.map)
    increase = float(np.diff(trajectory.energy).max())
    return [
        Check(
            "explicit scheme (3.1)",
            f"1D Gaussian source, 100 nodes, τ = {tau:.2g} = half the bound",
            f"error ×{errors[-1] / errors[0]:.1e} at t = 8, max increase {increase:.1g}",
            "converges, F_h nonincreasing",
            verdict(errors[-1] < 1e-3 * errors[0] and increase <= ROUNDOFF),
            {
                "stability_bound_mixture_identity": mixture_bounds[0],
                "stability_bound_mixture_optimum": mixture_bounds[1],
                "note": "for the bimodal mixture the bound 2/L falls from "
                f"{mixture_bounds[0]:.2g} at the identity to {mixture_bounds[1]:.2g} at the "
                "optimum, whose slope between the modes is small: the scheme is stiff",
            },
        )
    ]


def lemma_2_8_checks(nodes) -> list[Check]:
    problem = problem_1d(nodes)
    rng = np.random.default_rng(0)
    worst_i, worst_ii = 0.0, -np.inf
    for _ in range(5):
        T = np.round(rng.uniform(1, 4) * problem.identity()) / 2  # active plateaus
        v = -kl_gradient(problem, problem.identity()) + rng.standard_normal(T.shape)
        w = project_onto_tangent_cone(problem, T, v)
        worst_i = max(worst_i, abs(problem.inner(v, w) - problem.norm(w) ** 2))
        for _ in range(20):
            S = np.sort(rng.standard_normal(problem.size) * 3)[:, None]
            worst_ii = max(worst_ii, problem.inner(v - w, S - T))
    setting = f"1D random states with active constraints, {nodes} nodes"
    return [
        Check(
            "Lemma 2.8 (i)",
            setting + ": ⟨v,w⟩ - ‖w‖²",
            f"deviation {worst_i:.1g}",
            "= 0",
            verdict(worst_i <= 1e-12),
        ),
        Check(
            "Lemma 2.8 (ii)",
            setting,
            f"max ⟨v-w, S-T⟩ = {worst_ii:.2g}",
            "<= 0",
            verdict(worst_ii <= 1e-12),
        ),
    ]


def quartic_checks(nodes, outdir) -> list[Check]:
    problem = problem_1d(nodes, target=LogConcaveTarget.quartic())
    optimum = minimize(problem)
    flow = solve(problem, "flow", tau=0.25, steps=24)
    gap = flow.energy - optimum.energy
    w2_squared = problem.norm(optimum.map - problem.points) ** 2
    bound = energy_gap_bound_convex(flow.times, w2_squared)
    ratio = float(np.max(gap[1:] / bound[1:]))
    with pyplot() as plt:
        figure, axis = plt.subplots(figsize=(5.5, 4))
        axis.loglog(flow.times[1:], gap[1:], label=r"$F_h(T_t) - F_h^*$")
        axis.loglog(flow.times[1:], bound[1:], "--", label=r"$W_2^2 / 2t$ (Thm 2.13 (ii.a))")
        axis.set_xlabel("$t$")
        axis.set_ylabel(r"$F_h(T_t) - F_h^*$")
        axis.set_title(r"1D flow to $\gamma \propto e^{-y^4/4}$ ($\lambda = 0$)")
        axis.legend()
        readable_log_ticks(axis)
        record = figure_file(
            figure,
            outdir,
            "grid1d_quartic.png",
            "1D flow from the mixture to γ ∝ exp(-y⁴/4) (log-concave, λ = 0): energy gap to "
            "the discrete optimum against the bound W₂²/(2t) of Thm 2.13 (ii.a), for t > 0.",
        )
    setting = f"1D flow, mixture → exp(-y⁴/4), {nodes} nodes"
    return [
        Check(
            "Thm 2.13 (ii.a)",
            setting,
            f"max gap/bound {ratio:.4f}",
            "<= 1",
            verdict(ratio <= 1),
            record,
        ),
        Check("Thm 2.13 (iii)", setting, "λ = 0", "needs λ > 0", "n/a"),
    ]


def run(size: str, outdir: pathlib.Path) -> list[Check]:
    """All 1D checks at `size` ("quick" or "full"); figures are written into `outdir`."""
    config = SIZES[size]
    return [
        *grid_convergence(config["grid_nodes"], outdir),
        *flow_checks(config["nodes"], config["flow_steps"], outdir),
        *flow_checks(config["nodes"], config["flow_steps"], outdir, "logcosh"),
        *implicit_checks(config["nodes"], outdir),
        *explicit_checks(config["nodes"]),
        *lemma_2_8_checks(config["nodes"]),
        *quartic_checks(config["nodes"], outdir),
    ]
