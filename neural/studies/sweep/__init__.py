"""The paper's seed sweep (Fig. 2).

Fig. 2 (paper §3.4.2): source ϱ0 = the 4-mode mixture (``samplers.paper_mixture``),
target γ = N(0, I_2), ICNN with two hidden layers of 20 (m = 541), methods
(a) implicit, (b) explicit (Algorithm 2), (c) Euclidean GD, (d) Adam (Algorithm 1) with
the paper's hyperparameters (``neural.training``), metric: energy-distance MMD
(V-statistic without ½, ``neural.mmd.energy_distance``) between T_θ#ϱ0 and γ with
n_eval = 10 000 samples per side, over 100 seeds.

Seeds. Seed s gives ``numpy.random.SeedSequence(s).spawn(3)`` = (init, data, eval):
θ0 from ``init``; every method draws its batches from a fresh Generator on ``data``
(so all methods share θ0 and the data stream, as in the paper); the evaluation samples
(source, target, and a second target sample for the MMD noise floor) come from ``eval``.
A seed's results do not depend on the other seeds, the worker, or the order of runs.

Resumable runs. ``run_benchmark`` writes into a directory: ``config.json`` (the run's
configuration and the code version, ``code_version``: a rerun with another configuration
is refused, one with another code version too unless ``force_resume``) and
``results.jsonl`` (one JSON line per finished seed, appended and flushed as soon as the
seed finishes, by the parent process only). A rerun skips the seeds already in the file,
so a killed run loses at most the seeds in flight; a line cut by the kill is dropped on
the next run. A sweep holds an flock on its directory (a second one is refused), and
Ctrl-C ends it with ``SweepInterrupted`` saying how many seeds the file keeps.

Ground truth. With ``ground_truth=PATH.npz`` the sweep also reports ‖T_θ − T*‖ in
L²(ϱ0) and the L²-UVP (``gridflow.map_distance``) against
``gridflow.load_map(PATH)``. The file is checked before any training
(``check_ground_truth``): dimension 2, the source and target its metadata record
(``GROUND_TRUTH_SOURCE``, ``GROUND_TRUTH_TARGET``), and a box that holds every seed's
evaluation samples. Every record also holds the exact KL of each trained map
(``neural.training.kl.exact_kl``, the mixture's density being known) with its standard error.

Modules: ``config`` (what a sweep runs: ``BenchmarkConfig``, ``method_configs``, the
ground-truth checks), ``seed`` (one seed, ``run_seed``), ``store`` (results.jsonl,
config.json, the lock, the code version), ``summary`` (the table and the figure),
``parallel`` (the backends, numba threads per worker, Ctrl-C), ``run`` (the sweep,
``run_benchmark``), ``errors``. The dimension study (``neural.studies.dimensions``) and
the flow check (``neural.studies.flowcheck``) are modules of their own.
"""

from neural.studies.sweep.config import (
    GROUND_TRUTH_SOURCE,
    GROUND_TRUTH_TARGET,
    SIZES,
    BenchmarkConfig,
    check_ground_truth,
    method_configs,
)
from neural.studies.sweep.errors import SweepInterrupted, SweepLockedError, SweepSetupError
from neural.studies.sweep.parallel import BACKENDS, check_backend, parallel_map
from neural.studies.sweep.run import BenchmarkResults, run_benchmark
from neural.studies.sweep.seed import run_seed
from neural.studies.sweep.store import code_version, read_results
from neural.studies.sweep.summary import (
    PAPER_RESULTS,
    MethodSummary,
    format_references,
    format_table,
    histogram_figure,
    summarize,
)

__all__ = [
    "BACKENDS",
    "GROUND_TRUTH_SOURCE",
    "GROUND_TRUTH_TARGET",
    "PAPER_RESULTS",
    "SIZES",
    "BenchmarkConfig",
    "BenchmarkResults",
    "MethodSummary",
    "SweepInterrupted",
    "SweepLockedError",
    "SweepSetupError",
    "check_backend",
    "check_ground_truth",
    "code_version",
    "format_references",
    "format_table",
    "histogram_figure",
    "method_configs",
    "parallel_map",
    "read_results",
    "run_benchmark",
    "run_seed",
    "summarize",
]
