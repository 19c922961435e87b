"""Validation of the 3D grid solver: grid convergence to the closed form, Theorem 2.13 and
Proposition 3.1 along a small 3D flow, Lemma 2.8 where the constraints are active.

Gaussian pair of `gridflow.examples.gaussian_pair_3d` (correlated, off-center), whose OT map
is affine (closed form), on [-5, 5]³ with the default density floor for the convergence; the
scheme statements on a smaller box with a higher floor (a discrete problem of its own: the
statements hold for it exactly), measured against its discrete minimizer.
"""

from __future__ import annotations

import pathlib
import tempfile
from dataclasses import replace

import numpy as np

from gridflow import gaussian, minimize
from gridflow.cones import active_set, project_onto_tangent_cone
from gridflow.examples import gaussian_pair_3d, problem_3d
from gridflow.functionals import discrete_hessian, kl_gradient
from validation.grid2d_checks import flow_checks
from validation.plotting import convergence_figure
from validation.report import Check
from validation.statements import discrete_map_errors, implicit_scheme_checks, verdict

SIZES = {
    "quick": {"grid_nodes": (17, 25), "nodes": 9, "flow_time": 2.0},
    "full": {"grid_nodes": (17, 33, 65), "nodes": 11, "flow_time": 3.0},
}
SMALL_PROBLEM = {"box": (-3.5, 3.5), "density_floor": 1e-4, "max_cut_mass": 1e-3}
"""The scheme statements' problem: a box that cuts 1e-4 of the source, a floor that keeps
9³–11³ grids' Newton solves and flows short."""
ORDER = 1.8


def exact_map(points):
    source, target = gaussian_pair_3d()
    A, b = gaussian.ot_map(source, target)
    return points @ A.T + b


def grid_convergence(grid_nodes, outdir) -> list[Check]:
    errors, orders, spacings = discrete_map_errors(
        [problem_3d(nodes) for nodes in grid_nodes], exact_map, warm_start=True
    )
    record = convergence_figure(
        spacings,
        errors,
        "3D Gaussian pair: discrete OT map vs the closed form",
        outdir,
        "grid3d_convergence.png",
        "Correlated 3D Gaussian source → correlated 3D Gaussian target on [-5, 5]³: L²(ϱ0) "
        "distance between the discrete minimizer T_h* and the closed-form OT map T*, against "
        "the grid spacing; the dotted line has slope 2.",
    )
    setting = "3D Gaussian pair, [-5, 5]³"
    details = {
        "nodes": list(grid_nodes),
        "errors": errors.tolist(),
        "orders": orders.tolist(),
        **record,
    }
    return [
        Check(
            "grid convergence",
            f"{setting}, 17³",
            f"{errors[0]:.4f}",
            "<= 0.12",
            verdict(errors[0] <= 0.12),
            details,
        ),
        Check(
            "grid convergence order",
            f"{setting}, {list(grid_nodes)}",
            f"{orders.min():.2f}",
            f">= {ORDER}",
            verdict(orders.min() >= ORDER),
            details,
        ),
    ]


def scheme_checks(nodes, flow_time, outdir) -> list[Check]:
    problem = problem_3d(nodes, **SMALL_PROBLEM)
    optimum = minimize(problem)
    lam = problem.target.lam
    setting = f"3D Gaussian pair, [-3.5, 3.5]³, floor 1e-4, {nodes}³"
    checks = implicit_scheme_checks(problem, optimum, 1.0, 4, f"{setting}, implicit, τ = 1")
    flow, record = flow_checks(
        problem,
        optimum,
        flow_time,
        f"{setting}, flow, t ≤ {flow_time}",
        outdir,
        (
            "grid3d_flow.png",
            f"3D Gaussian flow, {nodes}³",
            f"3D Gaussian pair on a {nodes}³ grid: energy gap of the flow (cons.gf) to the "
            f"discrete optimum and the bound of Thm 2.13 (iii.a) with λ = {lam:.4g}.",
        ),
    )
    return [replace(c, details={**c.details, **record}) for c in checks + flow]


def lemma_2_8_checks(nodes) -> list[Check]:
    """At convex states whose Hessians have kernels of dimension 1 and 2 (kinks along one
    and two axes, at random places), against random S ∈ K_h."""
    problem = problem_3d(nodes, **SMALL_PROBLEM)
    rng = np.random.default_rng(0)
    x = problem.grid.nodes
    worst_i, worst_ii, nullities = 0.0, -np.inf, np.zeros(4, dtype=int)
    for _ in range(3):
        kinks = rng.uniform(-1, 1, size=2)
        phi = 0.5 * x[:, 2] ** 2 + 0.5 * np.sum(np.maximum(x[:, :2] - kinks, 0.0) ** 2, axis=1)
        T = problem.map_of(phi)
        nullities += np.bincount(active_set(problem, T).nullity, minlength=4)
        v = -kl_gradient(problem, problem.identity()) + rng.standard_normal(T.shape)
        w = project_onto_tangent_cone(problem, T, v)
        worst_i = max(worst_i, abs(problem.inner(v, w) - problem.norm(w) ** 2))
        for _ in range(10):
            M = rng.standard_normal((3, 3))
            psi = 0.5 * np.einsum("ni,ij,nj->n", x, M @ M.T, x) + np.logaddexp(
                0.0, x @ rng.standard_normal(3)
            )
            S = problem.map_of(psi)
            assert np.linalg.eigvalsh(discrete_hessian(problem, S))[:, 0].min() >= 0
            worst_ii = max(worst_ii, problem.inner(v - w, S - T))
    setting = (
        f"3D states with {nullities[1]} points of nullity 1 and {nullities[2]} of nullity 2, "
        f"{nodes}³"
    )
    tolerance = 1e-8  # the cvxpy/Clarabel projection's accuracy
    return [
        Check(
            "Lemma 2.8 (i)",
            setting + ": ⟨v,w⟩ - ‖w‖²",
            f"deviation {worst_i:.1g}",
            f"= 0 (solver tol {tolerance:g})",
            verdict(worst_i <= tolerance),
        ),
        Check(
            "Lemma 2.8 (ii)",
            setting,
            f"max ⟨v-w, S-T⟩ = {worst_ii:.2g}",
            f"<= 0 (solver tol {tolerance:g})",
            verdict(worst_ii <= tolerance),
        ),
    ]


def run(size: str, outdir: pathlib.Path) -> list[Check]:
    settings = SIZES[size]
    outdir = pathlib.Path(outdir if outdir is not None else tempfile.mkdtemp())
    return [
        *grid_convergence(settings["grid_nodes"], outdir),
        *scheme_checks(settings["nodes"], settings["flow_time"], outdir),
        *lemma_2_8_checks(9),
    ]
