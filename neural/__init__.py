"""ICNN transport maps in numpy + numba (paper §3.4): networks, score, MMD, optimizers.

    from neural import ICNN
    net = ICNN(dim=2, hidden=(20, 20), rng=np.random.default_rng(0))

Modules: ``icnn`` (potential, map, parameter-VJP of the map, Hessian),
``score`` (self-entropic score estimator, Remark 3.10), ``mmd`` (energy distance,
eq. 1.10), ``optim`` (SGD, Adam with projection), ``samplers`` (Gaussians, the
paper's 4-mode mixture).
"""

from neural.icnn import ICNN, ICNNArchitecture
from neural.schemes import Target, make_method, run_method

__all__ = ["ICNN", "ICNNArchitecture", "Target", "make_method", "run_method"]
