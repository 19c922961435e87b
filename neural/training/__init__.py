"""Training ICNN maps T_θ = ∇φ_θ with the paper's schemes (paper §3.2–3.4, Algorithms 1, 2).

    from neural.training import make_method, run_method
    result = run_method(make_method("implicit"), net, source, target, rng)

Modules, from the mathematics to the loops:

- ``targets``     the target γ ∝ exp(−V) and the source sampler of ϱ0
- ``kl``          the relative entropy by the change of variables: exact KL, score-free
                  θ-gradient (log det of the ICNN Hessian)
- ``gradients``   the θ-gradients: Wasserstein gradient ŝ + ∇V and eq. 3.7, the inner
                  objectives of eqs. 3.1 and 3.2, the natural gradient eq. 3.4
- ``optim``       SGD and Adam with the projection onto the constraint set
- ``regression``  least-squares regression of a map (L-BFGS-B with bounds)
- ``methods``     the four methods (a)–(d) as configurations with the paper's defaults
- ``batches``     the fresh batch of every step and the checks of every update
- ``algorithm1``  Algorithm 1: Euclidean GD and Adam, methods (c), (d)
- ``algorithm2``  Algorithm 2: the explicit and implicit schemes, methods (b), (a)
- ``run``         ``run_method`` and its ``SchemeResult``
"""

from neural.training.methods import (
    METHODS,
    EuclideanAdam,
    EuclideanGD,
    ExplicitScheme,
    ImplicitScheme,
    MethodConfig,
    make_method,
)
from neural.training.run import SchemeResult, run_method

__all__ = [
    "METHODS",
    "EuclideanAdam",
    "EuclideanGD",
    "ExplicitScheme",
    "ImplicitScheme",
    "MethodConfig",
    "SchemeResult",
    "make_method",
    "run_method",
]
