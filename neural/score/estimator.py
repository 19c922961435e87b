"""The self-entropic score estimator (paper Remark 3.10): the public functions.

``self_entropic_potential(x)`` solves the symmetric Sinkhorn problem on the point cloud x
(``neural.score.sinkhorn``) at the given ε or the default one (``neural.score.pairs``);
``self_entropic_score(x)`` returns the score estimate −(2/ε)(x_i − B(x_i))
(``neural.score.barycentric``). Both check their arguments first, then the data, and
report non-convergence and too small an ε as ``neural.score.reports`` describes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from gridflow.checks import as_points, flag, positive_float, positive_int
from neural.score.barycentric import barycentric_score, default_eps_score, score_from_kernel
from neural.score.pairs import (
    check_pair_memory,
    eps_from_median,
    nearest_squared_distances,
    pair_statistics,
)
from neural.score.reports import check_resolution, report_nonconvergence
from neural.score.sinkhorn import SINKHORN

__all__ = [
    "STORED_MAX_POINTS",
    "SelfEntropicPotential",
    "self_entropic_potential",
    "self_entropic_score",
]

_EPS_HINT = (
    " (the entropic regularization); pass eps=None for the default 5% of the median "
    "squared distance"
)

STORED_MAX_POINTS = 2048
"""Up to this many points Sinkhorn stores the kernel matrix (n² floats, 32 MiB at 2048).

With the stored kernel, Sinkhorn runs serially whatever the thread count: an update is
too short to share (at most 4·10⁶ multiply-adds). Measured on 2 cores with another
process busy (``python -m validation.benchmark_neural --thresholds``), the parallel kernel
took 1.9 to 24 times as long as the serial one for n = 64 to 2048 (once 800 times, n = 256:
a worker descheduled at every update). Above the cap the rows are recomputed at every
update, about 60 ms of exponentials at n = 4096, and the parallel kernel is used: 0.77 to
1.03 times the serial time there under load, and it shares the work when the cores are
free."""


@dataclass(frozen=True)
class SelfEntropicPotential:
    """Solution of the symmetric Sinkhorn problem on a point cloud (Remark 3.10).

    points      the samples x (n, d)
    eps         the entropic regularization ε
    potential   the self-entropic potential f (n,) (cost units, f = ε h)
    residual    final ‖h − T(h)‖_∞ = max_i |log(n (π 1)_i)| (dimensionless)
    iterations  number of updates done (evaluations of T)
    converged   residual <= tol
    """

    points: np.ndarray
    eps: float
    potential: np.ndarray
    residual: float
    iterations: int
    converged: bool

    def score(self) -> np.ndarray:
        """Score estimate −(2/ε)(x_i − B(x_i)) at the samples, (n, d)."""
        return barycentric_score(self.points, self.points, self.potential / self.eps, self.eps)

    def score_at(self, y) -> np.ndarray:
        """The same estimator at other points y (m, d): −(2/ε)(y − Σ_j softmax_j(...) x_j)."""
        y = as_points(y, "y", dim=self.points.shape[1])
        return barycentric_score(y, self.points, self.potential / self.eps, self.eps)


def _sinkhorn(x, eps, tol, max_iter):
    """(h, residual, iterations, kernel matrix or an empty array) by the Sinkhorn kernel that
    fits n (stored kernel matrix up to ``STORED_MAX_POINTS``) and the thread count."""
    stored = x.shape[0] <= STORED_MAX_POINTS
    parallel = not stored and numba.get_num_threads() > 1
    return SINKHORN[parallel, stored](x, eps, tol, max_iter)


def _checked_arguments(x, eps, tol, max_iter):
    """(x, ε or None, tol, max_iter) checked in this order, before any work."""
    x = as_points(x, "x", min_points=2)
    if eps is not None:
        eps = positive_float(eps, "eps", hint=_EPS_HINT)
    return x, eps, positive_float(tol, "tol"), positive_int(max_iter, "max_iter")


def _scale(x, eps, want_nearest: bool):
    """(ε: the given one or the default, and with ``want_nearest`` the samples' squared
    distances to their nearest other sample, else None) for checked x. The default ε's
    median holds all pairs in memory; a given ε needs O(n)."""
    if eps is None:
        check_pair_memory(x.shape[0])
        median, nearest = pair_statistics(x)
        return eps_from_median(median), nearest
    return eps, nearest_squared_distances(x) if want_nearest else None


def _outcome(x, eps, tol, h, residual, iterations) -> SelfEntropicPotential:
    """The ``SelfEntropicPotential`` of a Sinkhorn run; ``report_nonconvergence`` first."""
    report_nonconvergence(x, eps, tol, residual, iterations, stacklevel=4)
    return SelfEntropicPotential(
        points=x,
        eps=eps,
        potential=eps * h,
        residual=float(residual),
        iterations=int(iterations),
        converged=bool(residual <= tol),
    )


def self_entropic_potential(
    x, eps: float | None = None, tol: float = 1e-9, max_iter: int = 1000
) -> SelfEntropicPotential:
    """Self-entropic OT potential of the point cloud x (n, d) (Remark 3.10).

    eps       entropic regularization ε > 0; default ``neural.score.pairs.default_eps(x)``
    tol       stop when ‖h − T(h)‖_∞ <= tol (h = f/ε, see ``neural.score.sinkhorn``)
    max_iter  cap on the (Anderson-mixed) averaged updates (``neural.score.sinkhorn``)

    Does not raise on non-convergence: it emits a ``ConvergenceWarning`` with the
    reached residual (inside ``count_nonconvergence``: counts it instead), and the result
    carries ``residual`` and ``converged``.
    """
    x, eps, tol, max_iter = _checked_arguments(x, eps, tol, max_iter)
    eps, _ = _scale(x, eps, want_nearest=False)
    h, residual, iterations, _ = _sinkhorn(x, eps, tol, max_iter)
    return _outcome(x, eps, tol, h, residual, iterations)


def self_entropic_score(
    x,
    eps: float | None = None,
    tol: float = 1e-9,
    max_iter: int = 1000,
    *,
    return_info: bool = False,
):
    """Score estimate ∇log ρ(x_i) ≈ −(2/ε)(x_i − B(x_i)) from samples x (Remark 3.10).

    Parameters
    ----------
    x : array_like
        Samples, (n, d).
    eps : float, optional
        The scale ε > 0; default: chosen from the samples' pairwise distances.
    tol : float, default 1e-9
        The Sinkhorn iteration's tolerance.
    max_iter : int, default 1000
        The most Sinkhorn iterations.
    return_info : bool, default False
        Also return the ``SelfEntropicPotential``.

    Returns
    -------
    score : numpy.ndarray
        The estimate, (n, d).
    potential : SelfEntropicPotential
        Only if ``return_info``: residual, iterations, converged.

    Raises
    ------
    ValueError
        If ``eps <= 0`` or another argument is invalid; if at least half of the pairwise
        distances are 0 (the default ε would be 0); if the kernel underflows at every
        sample (the message names eps and the smallest safe scale).

    Warns
    -----
    ConvergenceWarning
        Non-convergence within ``max_iter``, stating the residual reached; it does not
        raise.
    ScoreResolutionWarning
        The kernel underflows at some samples only (isolated points): their score is 0.

    Notes
    -----
    The arguments are checked first (x, eps, tol, max_iter), then the data: at least half
    of the pairwise distances 0, and too small an ε (checked against each sample's nearest
    neighbour, see ``smallest_safe_eps``). When the kernel underflows at every sample, the
    estimate would be all zeros: an all-zero field is never a meaningful answer, hence the
    error; a few isolated samples are common at the default ε, hence only a warning.
    """
    x, eps, tol, max_iter = _checked_arguments(x, eps, tol, max_iter)
    return_info = flag(return_info, "return_info")
    if eps is None and x.shape[0] <= STORED_MAX_POINTS:  # the estimate in one kernel call
        score, h, median, nearest, safe, residual, iterations = default_eps_score(x, tol, max_iter)
        eps = eps_from_median(median)
        if eps < safe:
            check_resolution(nearest, eps)
        if return_info:
            return score, _outcome(x, eps, tol, h, residual, iterations)
        report_nonconvergence(x, eps, tol, residual, iterations)
        return score
    eps, nearest = _scale(x, eps, want_nearest=True)
    check_resolution(nearest, eps)
    h, residual, iterations, kernel = _sinkhorn(x, eps, tol, max_iter)
    solution = _outcome(x, eps, tol, h, residual, iterations)
    if kernel.size:  # the stored kernel matrix: B(x_i) without recomputing it
        score = score_from_kernel(x, kernel, h, eps)
    else:
        score = solution.score()
    return (score, solution) if return_info else score
