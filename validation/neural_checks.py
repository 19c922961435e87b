"""The neural solver against the reference schemes: the rate regression check.

The check is docs/mathematics.md, 'Checking against a reference'.

For each case (a 2D Gaussian pair, the paper's mixture, and the shifted Gaussian source to
the non-Gaussian γ ∝ exp(-‖y‖²/2 - Σ log cosh y_i) of ``grid2d_checks``), the neural
implicit scheme with the score-free KL gradient (``neural.studies.flowcheck``) runs with the
same τ and number of steps as the reference implicit scheme (exact for the Gaussian pair,
the grid solver's for the others), both from T̂_0 = id. Its KL decay rate, fitted over the
steps where the reference KL exceeds 10 times the Monte Carlo error of the neural KL, must
lie within 25 % of the reference's; the reference's must be at least 2λ (Thm 2.13 (iii),
Cor. 2.17).
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping

from gridflow import LogConcaveTarget
from neural.studies.flowcheck import SETTINGS, Case, flow_check, flowcheck_figure, grid_case
from validation.grid2d_checks import shifted_gaussian_source_2d
from validation.plotting import figure_file, pyplot
from validation.report import Check

SIZES = {
    "quick": {"size": "quick", "tau": 0.25, "steps": 6},
    "full": {"size": "full", "tau": 0.25, "steps": 10},
}

CASES = ("gaussian2d", "mixture", "logcosh")


def make_case(name: str, size: str | Mapping) -> str | Case:
    """The case ``name`` of CASES: a built-in case of ``neural.studies.flowcheck``, or
    "logcosh" on the grid of the flow check's ``size`` (a key of SETTINGS, or a dict
    overriding SETTINGS['quick'], as ``flow_check`` takes it)."""
    if name != "logcosh":
        return name
    settings = {**SETTINGS["quick"], **size} if isinstance(size, Mapping) else SETTINGS[size]
    return grid_case(
        name,
        shifted_gaussian_source_2d(),
        LogConcaveTarget.logcosh(2),
        nodes=settings["nodes"],
        density_floor=settings["density_floor"],
    )


RATE_TOLERANCE = 0.25
"""Largest relative difference between the neural and the reference KL decay rates."""


def rate_check(
    case: str, size: str | Mapping, tau: float, steps: int, outdir: pathlib.Path
) -> Check:
    """The neural implicit scheme (score-free KL) tracks the reference KL decay on ``case``."""
    check = flow_check(
        make_case(case, size), tau=tau, steps=steps, size=size, variants=[("implicit", "logdet")]
    )
    (run,) = check.neural
    rate = check.rates[run.label]
    ratio = rate / check.reference_rate
    steps_used = check.fit_steps
    passed = abs(ratio - 1.0) <= RATE_TOLERANCE and check.reference_rate >= check.two_lambda
    with pyplot():
        figure = flowcheck_figure([check])
        record = figure_file(
            figure,
            outdir,
            f"neural_flowcheck_{case}.png",
            f"{case}: KL per outer step of the reference ({check.reference.label}) and of the "
            f"neural implicit scheme with the score-free KL gradient (± Monte Carlo standard "
            f"error), τ = {tau}; right: their distance in L²(ϱ0).",
        )
    return Check(
        statement="Thm 2.13 (iii), neural vs reference",
        setting=(
            f"{case}: implicit, score-free KL, τ = {tau}, {steps} steps vs {check.reference.label}"
        ),
        measured=(
            f"rate {rate:.3g} = {ratio:.2f} × reference {check.reference_rate:.3g} "
            f"(steps {steps_used.min()}..{steps_used.max()}); max distance "
            f"{run.distance.max():.3g}"
        ),
        theoretical=(
            f"within {RATE_TOLERANCE:.0%} of the reference; reference >= 2λ = {check.two_lambda:g}"
        ),
        verdict="pass" if passed else "fail",
        details={
            "rate": rate,
            "reference_rate": check.reference_rate,
            "fit_steps": steps_used.tolist(),
            "neural_kl": run.kl.tolist(),
            "neural_kl_error": run.kl_error.tolist(),
            "reference_kl": check.reference.kl.tolist(),
            "distance": run.distance.tolist(),
            "seconds": run.seconds,
            **record,
        },
    )


def run(size: str, outdir: pathlib.Path) -> list[Check]:
    settings = SIZES[size]
    return [
        rate_check(case, settings["size"], settings["tau"], settings["steps"], outdir)
        for case in CASES
    ]
