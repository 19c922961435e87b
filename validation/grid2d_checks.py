"""Validation of the 2D grid solver: grid convergence, Theorem 2.13, Propositions 3.1, 3.3,
Lemma 2.8 with active constraints, Remark 2.7, and the paper mixture's ground truth.

Gaussian case: ϱ0 = N(0, [[0.6, 0.25], [0.25, 0.4]]) → γ = N(0, I) on [-5, 5]², whose OT
map is linear (closed form); the scheme statements are measured against the discrete
minimizer T_h* (Newton's method to roundoff).
"""

from __future__ import annotations

import pathlib
import tempfile
from dataclasses import replace

import numpy as np

from gridflow import LogConcaveTarget, gaussian, load_map, minimize, save_map, solve
from gridflow.examples import (
    degenerate_potential,
    gaussian_source_2d,
    problem_2d,
    quadratic_energy_descent,
)
from gridflow.functionals import discrete_hessian
from gridflow.groundtruth import build_ground_truth
from gridflow.rates import fit_log_linear
from validation import statements
from validation.plotting import figure_file, pyplot
from validation.report import Check
from validation.statements import (
    fitted_rate_check,
    implicit_scheme_checks,
    proposition_3_3_check,
    theorem_2_13_checks,
    verdict,
)

SIZES = {
    "quick": {"grid_nodes": (33, 65, 129), "nodes": 33, "flow_time": 2.0, "truth_nodes": None,
              "logcosh_nodes": 33, "logcosh_time": 6.0},
    "full": {"grid_nodes": (33, 65, 129), "nodes": 33, "flow_time": 4.0, "truth_nodes": 129,
             "logcosh_nodes": 65, "logcosh_time": 6.0},
}  # fmt: skip


def exact_map(points):
    source = gaussian_source_2d()
    A, b = gaussian.ot_map(source, gaussian.Gaussian([0, 0], np.eye(2)))
    return points @ A.T + b


def grid_convergence(grid_nodes, outdir) -> list[Check]:
    return statements.grid_convergence_checks(
        [problem_2d(nodes) for nodes in grid_nodes],
        exact_map,
        "2D Gaussian → N(0, I), [-5, 5]²",
        {0: 0.03, 1: 0.008},
        (
            "2D Gaussian: discrete OT map vs the closed form",
            outdir,
            "grid2d_convergence.png",
            "2D Gaussian source → N(0, I) on [-5, 5]²: L²(ϱ0) distance between the discrete "
            "minimizer T_h* and the closed-form OT map T*, against the grid spacing; the "
            "dotted line has slope 2.",
        ),
    )


def shifted_gaussian_source_2d() -> gaussian.Gaussian:
    """N((0.5, -0.3), [[0.6, 0.25], [0.25, 0.4]]): ``gaussian_source_2d`` moved off the
    target's mean, so that the flow's translation mode is excited."""
    return gaussian.Gaussian([0.5, -0.3], [[0.6, 0.25], [0.25, 0.4]])


def flow_checks(problem, optimum, flow_time, setting, outdir, figure_text, note=None):
    """Thm 2.13 (i), (iii) along the flow of ``problem`` for t ≤ ``flow_time``, and with a
    ``note`` (why 2λ is not attained) the fitted rate >= 2λ; returns the checks and the
    record of their figure (the energy gap and the bound (iii.a)); ``figure_text`` is its
    (file name, title, caption)."""
    name, title, caption = figure_text
    lam = problem.target.lam
    flow = solve(problem, "flow", tau=0.1, steps=round(flow_time / 0.1))
    checks = theorem_2_13_checks(flow, optimum, lam, setting)
    gap = flow.energy - optimum.energy
    label = r"$F_h(T_t) - F_h^*$"
    if note is not None:
        fit = fit_log_linear(flow.times, gap)
        checks.append(fitted_rate_check(fit, lam, setting, False, note))
        label += f", fitted rate {fit.rate:.3f}"
    with pyplot() as plt:
        figure, axis = plt.subplots(figsize=(5.5, 4))
        axis.semilogy(flow.times, gap, label=label)
        axis.semilogy(
            flow.times,
            gap[0] * np.exp(-2 * lam * flow.times),
            "--",
            label=r"Thm 2.13 (iii.a): $e^{-2\lambda t}(F_h(\mathrm{id}) - F_h^*)$",
        )
        axis.set_xlabel("$t$")
        axis.set_ylabel(r"$F_h(T_t) - F_h^*$")
        axis.set_title(title)
        axis.legend()
        record = figure_file(figure, outdir, name, caption)
    return checks, record


def scheme_checks(nodes, flow_time, outdir) -> list[Check]:
    problem = problem_2d(nodes)
    optimum = minimize(problem)
    lam = problem.target.lam
    checks = []
    for tau, steps in ((0.5, 8), (2.0, 4)):
        checks += implicit_scheme_checks(
            problem, optimum, tau, steps, f"2D Gaussian implicit, τ = {tau}, {nodes}²"
        )
    flow, record = flow_checks(
        problem,
        optimum,
        flow_time,
        f"2D Gaussian flow, {nodes}², t ≤ {flow_time}",
        outdir,
        (
            "grid2d_flow.png",
            f"2D Gaussian flow, {nodes}²",
            f"2D Gaussian source → N(0, I), {nodes}² grid: energy gap of the flow (cons.gf) to "
            f"the discrete optimum and the bound of Thm 2.13 (iii.a) with λ = {lam:g}.",
        ),
    )
    checks += flow
    checks.append(proposition_3_3_check(problem_2d(17), (0.2, 0.1, 0.05), 1.0, "2D Gaussian, 17²"))
    return [replace(c, details={**c.details, **record}) for c in checks]


def logcosh_checks(nodes, flow_time, outdir) -> list[Check]:
    """Thm 2.13 (iii) and the rate 2λ on a non-Gaussian target: the shifted Gaussian source
    → γ ∝ exp(-‖y‖²/2 - Σ log cosh y_i) (λ = 1)."""
    problem = problem_2d(nodes, shifted_gaussian_source_2d(), LogConcaveTarget.logcosh(2))
    checks, record = flow_checks(
        problem,
        minimize(problem),
        flow_time,
        f"2D flow, shifted Gaussian → exp(-‖y‖²/2 - Σ log cosh y_i), {nodes}², t ≤ {flow_time}",
        outdir,
        (
            "grid2d_flow_logcosh.png",
            f"2D flow to the logcosh target (λ = 1), {nodes}²",
            f"2D shifted Gaussian source → the non-Gaussian γ ∝ exp(-‖y‖²/2 - Σ log cosh y_i) "
            f"(λ = 1), {nodes}² grid: energy gap of the flow (cons.gf) to the discrete optimum "
            f"and the bound of Thm 2.13 (iii.a).",
        ),
        "∇²V = λI + diag(sech² y_i) > λI: no mode of the linearized flow decays as slowly as 2λ",
    )
    return [replace(c, details={**c.details, **record}) for c in checks]


def lemma_2_8_checks(nodes) -> list[Check]:
    """At random states with rank-one active points, against random S ∈ K_h."""
    problem = problem_2d(nodes)
    x = problem.grid.nodes

    def draw_state(rng):
        shift = rng.uniform(-1, 1, size=2)
        phi = degenerate_potential(problem) + 0.5 * np.maximum(x[:, 1] - shift[1], 0.0) ** 2
        phi += 0.5 * np.maximum(x[:, 0] - shift[0], 0.0) ** 2
        return problem.map_of(phi)

    def describe(states):
        active = [
            int((np.linalg.eigvalsh(discrete_hessian(problem, T))[:, 0] <= 1e-9).sum())
            for T in states
        ]
        return f"2D states with {active} active points, {nodes}²"

    return statements.lemma_2_8_checks(problem, draw_state, describe)


def remark_2_7_checks(nodes, outdir) -> list[Check]:
    problem = problem_2d(nodes)
    run = quadratic_energy_descent(problem, [[1.0, 0.5], [0.5, 1.0]], tau=0.2, steps=8)
    setting = f"W(y) = ½yᵀAy from a rank-one potential, (3.1) with τ = 0.2, {nodes}²"
    increase = float(np.diff(run.energy).max())
    with pyplot() as plt:
        figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        steps = np.arange(run.energy.size)
        axes[0].semilogy(steps, run.energy, "o-", label=r"$F(T_k)$, projected scheme (3.1)")
        axes[0].set_title("energy along the projected scheme")
        axes[0].set_ylabel(r"$F(T_k)$")
        axes[0].legend(fontsize=8)
        axes[1].plot(steps, run.rank_one, "o-", label="rank-one active points of $T_k$")
        axes[1].plot(
            steps[1:], run.unprojected_violations, "s--", label="unprojected update: outside $K_h$"
        )
        axes[1].plot(
            steps[1:], run.helmholtz_violations, "^--", label="Helmholtz only: outside $K_h$"
        )
        axes[1].set_title("where the convexity constraint matters")
        axes[1].set_ylabel("number of interior nodes")
        axes[1].legend(fontsize=8)
        for axis in axes:
            axis.set_xlabel("step $k$")
        record = figure_file(
            figure,
            outdir,
            "grid2d_remark_2_7.png",
            f"Remark 2.7 on a {nodes}² grid: the explicit scheme (3.1) for W(y) = ½ yᵀAy started "
            "at a potential with rank-one Hessians. Left: the energy decreases. Right: the "
            "unprojected update T_k − τ∇F(T_k), and its Helmholtz projection alone, leave K_h "
            "at the counted nodes; the projected iterates stay in K_h with active constraints.",
        )
    details = {
        "energy": run.energy.tolist(),
        "rank_one": run.rank_one.tolist(),
        "rank_zero": run.rank_zero.tolist(),
        "smallest_eigenvalue": run.smallest_eigenvalue.tolist(),
        "unprojected_violations": run.unprojected_violations.tolist(),
        "helmholtz_violations": run.helmholtz_violations.tolist(),
        **record,
    }
    return [
        Check(
            "Remark 2.7",
            setting,
            f"unprojected update outside K_h at {run.unprojected_violations[0]} nodes "
            f"({run.helmholtz_violations[0]} after Helmholtz)",
            "leaves K_h",
            verdict(run.unprojected_violations[0] > 0),
            details,
        ),
        Check(
            "constraint binds",
            setting,
            f"min λ {run.smallest_eigenvalue.min():.1g}, active {run.rank_one.tolist()}, "
            f"F max increase {increase:.1g}",
            "stays in K_h, F decreases",
            verdict(
                run.smallest_eigenvalue.min() >= -1e-7 and increase < 0 and run.rank_one.min() > 0
            ),
            details,
        ),
    ]


def ground_truth_check(nodes, outdir) -> list[Check]:
    setting = "paper 4-mode mixture → N(0, I), [-6, 6]², density floor 1e-6"
    if nodes is None:
        return [Check("ground truth", setting, "run --size full", "exported", "n/a")]
    fine, metadata = build_ground_truth(
        "paper-mixture", "standard", nodes, 6.0, 1e-6, progress=False
    )
    path = pathlib.Path(outdir) / f"ground_truth_paper_mixture_{nodes}.npz"
    save_map(path, fine, metadata)
    loaded = load_map(path)
    return [
        Check(
            "ground truth",
            f"{setting}, {nodes}²",
            f"error estimate {loaded.metadata['error_estimate']:.2e}",
            "exported with estimate",
            verdict(np.isfinite(loaded.metadata["error_estimate"])),
            {**metadata, "file": path.name},
        ),
    ]


def run(size: str, outdir: pathlib.Path) -> list[Check]:
    settings = SIZES[size]
    outdir = pathlib.Path(outdir if outdir is not None else tempfile.mkdtemp())
    return [
        *grid_convergence(settings["grid_nodes"], outdir),
        *scheme_checks(settings["nodes"], settings["flow_time"], outdir),
        *logcosh_checks(settings["logcosh_nodes"], settings["logcosh_time"], outdir),
        *lemma_2_8_checks(17),
        *remark_2_7_checks(17, outdir),
        *ground_truth_check(settings["truth_nodes"], outdir),
    ]
