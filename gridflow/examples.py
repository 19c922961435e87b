"""Named test cases shared by the tests, the validation report and the notebooks."""

from __future__ import annotations

from gridflow.grid import Grid
from gridflow.measures import GaussianMixture, LogConcaveTarget
from gridflow.problem import Problem

BOX_1D = (-6.0, 6.0)


def mixture_1d() -> GaussianMixture:
    """½ N(-1.5, 0.5²) + ½ N(1.5, 0.7²): mean 0, as the target's (DESIGN §3)."""
    return GaussianMixture([0.5, 0.5], [[-1.5], [1.5]], [[[0.25]], [[0.49]]])


def shifted_mixture_1d() -> GaussianMixture:
    """½ N(-1, 0.5²) + ½ N(2, 0.7²): mean 0.5, which excites the slowest (translation) mode."""
    return GaussianMixture([0.5, 0.5], [[-1.0], [2.0]], [[[0.25]], [[0.49]]])


def gaussian_source_1d() -> GaussianMixture:
    """N(0.5, 0.8²): its OT map to N(0, 1) has slope 1.25 everywhere (a non-stiff case)."""
    return GaussianMixture.gaussian([0.5], [[0.64]])


def problem_1d(nodes: int = 400, source=None, target=None, box=BOX_1D) -> Problem:
    """The 1D mixture → N(0, 1) on [-6, 6] with `nodes` grid nodes."""
    return Problem(
        Grid(lower=[box[0]], upper=[box[1]], shape=[nodes]),
        source=mixture_1d() if source is None else source,
        target=LogConcaveTarget.gaussian([0.0], [[1.0]]) if target is None else target,
    )
