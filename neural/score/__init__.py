"""Score estimation from samples by the self-entropic OT potential (paper Remark 3.10).

    from neural.score import self_entropic_score
    s = self_entropic_score(y)          # ∇log ρ at the samples y (n, d) of ρ

Modules:

- ``pairs``        pair statistics of a point cloud (median squared distance, nearest
                   neighbours), the default ε and the smallest safe ε (numba kernels)
- ``sinkhorn``     the symmetric Sinkhorn solver with Anderson mixing (numba kernels)
- ``barycentric``  the score from the potential: the barycentric projection (numba kernels)
- ``reports``      non-convergence (warned or counted) and resolution warnings
- ``estimator``    the public estimators ``self_entropic_potential``, ``self_entropic_score``
"""

from neural.score.estimator import (
    SelfEntropicPotential,
    self_entropic_potential,
    self_entropic_score,
)
from neural.score.pairs import DEFAULT_EPS_FRACTION, default_eps, smallest_safe_eps
from neural.score.reports import (
    ConvergenceWarning,
    NonConvergenceCount,
    ScoreResolutionWarning,
    count_nonconvergence,
)

__all__ = [
    "DEFAULT_EPS_FRACTION",
    "ConvergenceWarning",
    "NonConvergenceCount",
    "ScoreResolutionWarning",
    "SelfEntropicPotential",
    "count_nonconvergence",
    "default_eps",
    "self_entropic_potential",
    "self_entropic_score",
    "smallest_safe_eps",
]
