"""What the score estimator reports besides its value: non-convergence and resolution.

A Sinkhorn run that stops at max_iter above tol emits a ``ConvergenceWarning``, or inside
``count_nonconvergence`` is counted per thread instead; an ε below the kernel's resolution
at some samples emits a ``ScoreResolutionWarning`` (their score is 0), and at every sample
raises (the estimate would be all zeros; ``neural.score.pairs.smallest_safe_eps``).
"""

from __future__ import annotations

import contextvars
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from neural.score.pairs import blind_below

__all__ = [
    "ConvergenceWarning",
    "NonConvergenceCount",
    "ScoreResolutionWarning",
    "check_resolution",
    "count_nonconvergence",
    "report_nonconvergence",
]


class ConvergenceWarning(RuntimeWarning):
    """Sinkhorn stopped at max_iter with a residual above tol (numbers in the message)."""


@dataclass
class NonConvergenceCount:
    """Sinkhorn runs that stopped at max_iter inside ``count_nonconvergence`` (``runs``)."""

    runs: int = 0


_NONCONVERGENCE_COUNT: contextvars.ContextVar[NonConvergenceCount | None] = contextvars.ContextVar(
    "neural_score_nonconvergence_count", default=None
)


@contextmanager
def count_nonconvergence() -> Iterator[NonConvergenceCount]:
    """Count the non-converged Sinkhorn runs of this thread instead of warning about them.

    Inside the block, ``self_entropic_potential`` adds 1 to the yielded counter where it
    would emit a ``ConvergenceWarning``. The counter lives in a context variable, so each
    thread (and asyncio task) counts its own runs: unlike ``warnings.catch_warnings``,
    which swaps process-wide state, this is safe when several threads train at once.
    """
    counter = NonConvergenceCount()
    token = _NONCONVERGENCE_COUNT.set(counter)
    try:
        yield counter
    finally:
        _NONCONVERGENCE_COUNT.reset(token)


class ScoreResolutionWarning(RuntimeWarning):
    """ε is below the kernel's resolution at some samples: their score estimate is 0."""


def check_resolution(nearest, eps) -> None:
    """Raise if ε is below the kernel's resolution at every sample (an all-zero score); warn
    (ScoreResolutionWarning) if at some of them (their scores are 0). ``nearest``: each
    sample's squared distance to its nearest other sample."""
    thresholds = blind_below(nearest)
    safe = float(thresholds.max())
    if eps >= safe:
        return
    blind = eps < thresholds
    if blind.all():
        raise ValueError(
            f"eps={eps:.3g} is below the kernel's resolution at every sample: "
            f"exp(−‖x_i − x_j‖²/(2 eps)) underflows (below roundoff) for each sample's nearest "
            f"neighbour, and the score estimate would be all zeros; the smallest safe scale "
            f"for these samples is eps >= {safe:.3g} (eps=None gives the default, 5% of the "
            f"median squared distance)"
        )
    warnings.warn(
        f"eps={eps:.3g} is below the kernel's resolution at {int(blind.sum())} of the "
        f"{blind.size} samples (isolated ones): their score estimate is 0; eps >= {safe:.3g} "
        f"resolves every sample",
        ScoreResolutionWarning,
        stacklevel=3,
    )


def report_nonconvergence(x, eps, tol, residual, iterations, stacklevel=3) -> None:
    """Warn about (or count, inside ``count_nonconvergence``) a run that stopped above tol,
    blaming the caller of the public estimator that called this (through ``stacklevel``)."""
    if residual <= tol:
        return
    counter = _NONCONVERGENCE_COUNT.get()
    if counter is not None:
        counter.runs += 1
    else:
        warnings.warn(
            f"self-entropic Sinkhorn did not converge: residual {residual:.3e} > tol "
            f"{tol:.1e} after {iterations} iterations (eps={eps:.4g}, n={x.shape[0]}); "
            f"increase max_iter or eps, or loosen tol",
            ConvergenceWarning,
            stacklevel=stacklevel,
        )
