"""ICNN transport maps in numpy + numba (paper §3.4): networks, score, MMD, optimizers.

    from neural import ICNN
    net = ICNN(dim=2, hidden=(20, 20), rng=np.random.default_rng(0))

Modules: ``network`` (the ICNN: potential, map, parameter-VJP of the map, Hessian),
``score`` (self-entropic score estimator, Remark 3.10), ``training`` (the paper's
schemes, the KL, optimizers), ``mmd`` (energy distance, eq. 1.10). Sources, targets and
maps are those of ``gridflow.measures`` and ``gridflow.maps``, shared with the grid solver.
"""

import os

# Idle OpenMP workers sleep instead of spinning (the one setting of the package's threads).
# numba's 'omp' threading layer (GNU libgomp) keeps a worker spinning for ~300 000 rounds
# after each parallel region by default; with another process busy on the cores that
# spinning steals the CPU the kernels need: measured on 2 cores, run_method with batches
# of 500 (parallel ICNN kernels) took 4.3 times as long with 2 threads as with 1, and
# 0.98 times with idle workers asleep (docs/performance.md, 'Threads'). libgomp reads the
# variable once, when numba starts its threads (the first parallel kernel), which is after
# this import; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from neural.model import NetworkFileError, NetworkMap, load
from neural.network import ICNN, ICNNArchitecture
from neural.training import make_method, run_method

__all__ = [
    "ICNN",
    "ICNNArchitecture",
    "NetworkFileError",
    "NetworkMap",
    "load",
    "make_method",
    "run_method",
]
