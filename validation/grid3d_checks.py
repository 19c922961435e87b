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
from gridflow.cones import active_set
from gridflow.examples import gaussian_pair_3d, problem_3d
from validation import statements
from validation.grid2d_checks import flow_checks
from validation.report import Check
from validation.statements import implicit_scheme_checks

SIZES = {
    "quick": {"grid_nodes": (17, 25), "nodes": 9, "flow_time": 2.0},
    "full": {"grid_nodes": (17, 33, 65), "nodes": 11, "flow_time": 3.0},
}
SMALL_PROBLEM = {"box": (-3.5, 3.5), "density_floor": 1e-4, "max_cut_mass": 1e-3}
"""The scheme statements' problem: a box that cuts 1e-4 of the source, a floor that keeps
9³–11³ grids' Newton solves and flows short."""


def exact_map(points):
    source, target = gaussian_pair_3d()
    A, b = gaussian.ot_map(source, target)
    return points @ A.T + b


def grid_convergence(grid_nodes, outdir) -> list[Check]:
    return statements.grid_convergence_checks(
        [problem_3d(nodes) for nodes in grid_nodes],
        exact_map,
        "3D Gaussian pair, [-5, 5]³",
        {0: 0.12},
        (
            "3D Gaussian pair: discrete OT map vs the closed form",
            outdir,
            "grid3d_convergence.png",
            "Correlated 3D Gaussian source → correlated 3D Gaussian target on [-5, 5]³: L²(ϱ0) "
            "distance between the discrete minimizer T_h* and the closed-form OT map T*, "
            "against the grid spacing; the dotted line has slope 2.",
        ),
        warm_start=True,
    )


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
    x = problem.grid.nodes

    def draw_state(rng):
        kinks = rng.uniform(-1, 1, size=2)
        phi = 0.5 * x[:, 2] ** 2 + 0.5 * np.sum(np.maximum(x[:, :2] - kinks, 0.0) ** 2, axis=1)
        return problem.map_of(phi)

    def describe(states):
        nullities = sum(np.bincount(active_set(problem, T).nullity, minlength=4) for T in states)
        return (
            f"3D states with {nullities[1]} points of nullity 1 and {nullities[2]} of "
            f"nullity 2, {nodes}³"
        )

    return statements.lemma_2_8_checks(problem, draw_state, describe)


def run(size: str, outdir: pathlib.Path) -> list[Check]:
    settings = SIZES[size]
    outdir = pathlib.Path(outdir if outdir is not None else tempfile.mkdtemp())
    return [
        *grid_convergence(settings["grid_nodes"], outdir),
        *scheme_checks(settings["nodes"], settings["flow_time"], outdir),
        *lemma_2_8_checks(9),
    ]
