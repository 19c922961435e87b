"""One seed of the Fig. 2 sweep: every method trained from the same θ0 on the same data.

Seed s gives ``numpy.random.SeedSequence(s).spawn(3)`` = (init, data, eval)
(``seed_sequences``): θ0 from ``init``; every method draws its batches from a fresh
Generator on ``data`` (so all methods share θ0 and the data stream, as in the paper); the
evaluation samples (source, target, and a second target sample for the MMD noise floor)
come from ``eval`` (``eval_samples``). A seed's record does not depend on the other seeds,
the worker, or the order of runs. The metric is the energy-distance MMD (eq. 1.10,
``neural.mmd``) between T_θ#ϱ0 and γ; each record also holds the exact KL of each trained
map (``neural.training.kl.exact_kl``) and, with a ground truth, its L²(ϱ0) error and L²-UVP.
"""

from __future__ import annotations

import time

import numpy as np

from gridflow import LogConcaveTarget
from gridflow.examples import paper_mixture
from gridflow.maps import map_distance
from neural.errors import DivergenceError
from neural.mmd import energy_distance_to
from neural.network.initialization import initial_network
from neural.score import count_nonconvergence
from neural.studies.sweep.config import BenchmarkConfig, check_covers, check_ground_truth
from neural.studies.sweep.parallel import using_numba_threads
from neural.training import run_method
from neural.training.kl import exact_kl

__all__ = ["check_seed", "eval_samples", "run_seed", "run_seed_with_threads", "seed_sequences"]


def check_seed(seed) -> int:
    """``seed`` as an int; ValueError unless it is a nonnegative integer."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seeds must be nonnegative integers, got {seed!r}")
    return int(seed)


def seed_sequences(seed: int):
    """(init, data, eval) streams of ``seed`` (module docstring)."""
    return np.random.SeedSequence(seed).spawn(3)


def eval_samples(seed_sequence, n_eval, source, dim):
    """(x_eval, y_eval, y_floor): ``n_eval`` samples of ϱ0 and two of γ = N(0, I) from the
    evaluation stream ``seed_sequence`` (module docstring)."""
    rng = np.random.default_rng(seed_sequence)
    x_eval = source.sample(rng, n_eval)
    y_eval = rng.standard_normal((n_eval, dim))
    y_floor = rng.standard_normal((n_eval, dim))
    return x_eval, y_eval, y_floor


def run_seed(seed: int, config: BenchmarkConfig) -> dict:
    """Run every method of ``config`` for one seed; a JSON-ready record.

    {"seed", "mmd_initial" (T_θ0), "mmd_identity" (ϱ0 itself), "mmd_floor" (two
    independent target samples), "methods": {name: {"status": "ok" | "diverged",
    "mmd", "seconds", "error", "score_warnings" (Sinkhorn runs that stopped at max_iter),
    and "l2", "uvp" with a ground truth}}}
    """
    seed = check_seed(seed)
    source = paper_mixture()
    dim = source.dim
    target = LogConcaveTarget.standard_gaussian(dim)
    init_seq, data_seq, eval_seq = seed_sequences(seed)
    net0 = initial_network(
        dim, config.hidden, np.random.default_rng(init_seq), config.init, source=source
    )
    x_eval, y_eval, y_floor = eval_samples(eval_seq, config.n_eval, source, dim)
    true_map = None
    if config.ground_truth is not None:
        true_map = check_ground_truth(config.ground_truth)
        check_covers(true_map, config.ground_truth, x_eval, seed)
    mmd_to_target = energy_distance_to(y_eval)
    record = {
        "seed": seed,
        "mmd_initial": mmd_to_target(net0.map(x_eval)),
        "mmd_identity": mmd_to_target(x_eval),
        "mmd_floor": mmd_to_target(y_floor),
        "methods": {},
    }
    for name, method in config.method_configs().items():
        start = time.perf_counter()
        entry = {"status": "ok", "mmd": None, "error": None}
        try:
            # counted per thread (a context variable), not with the process-wide
            # warnings.catch_warnings: seeds may train side by side in threads
            with count_nonconvergence() as nonconverged:
                try:
                    result = run_method(
                        method, net0, source, target, np.random.default_rng(data_seq)
                    )
                finally:
                    entry["score_warnings"] = nonconverged.runs
            pushed = result.map(x_eval)
            entry["mmd"] = mmd_to_target(pushed)
            entry["kl"], entry["kl_error"] = _exact_kl(result, source, target, x_eval)
            if true_map is not None:
                error = map_distance(lambda _x, p=pushed: p, true_map, x_eval, np.eye(dim))
                entry["l2"], entry["uvp"] = error.l2, error.uvp
        except DivergenceError as error:
            entry["status"], entry["error"] = "diverged", str(error)
        entry["seconds"] = time.perf_counter() - start
        record["methods"][name] = entry
    return record


def _exact_kl(result, source, target, x_eval) -> tuple[float | None, float | None]:
    """The exact KL of a trained map and its standard error (``neural.training.kl.exact_kl``), or
    (None, None) where its Hessian is singular at an evaluation sample (KL = +∞)."""
    try:
        estimate = exact_kl(result.architecture, result.params, source, target, x_eval)
    except DivergenceError:
        return None, None
    return estimate.value, estimate.standard_error


def run_seed_with_threads(seed: int, config: BenchmarkConfig, numba_threads: int | None) -> dict:
    """``run_seed`` with numba's thread count set to ``numba_threads`` (a sweep's job)."""
    with using_numba_threads(numba_threads):
        return run_seed(seed, config)
