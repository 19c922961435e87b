"""Dimension study: every method on Gaussian → Gaussian pairs against the closed form.

``gaussian_problem(d, rng)`` draws a random pair (any d) with its OT map
(``gridflow.gaussian``); ``dimension_study`` trains every method on d = 2, 8, 32 and
reports the L² error, the L²-UVP (``gridflow.map_distance``) and the MMD (eq. 1.10) of the
trained maps next to those of θ0 and of the identity.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from tqdm.auto import tqdm

from gridflow import Gaussian, LogConcaveTarget, gaussian
from gridflow.checks import positive_int
from gridflow.maps import map_distance
from gridflow.memory import check_memory
from neural.errors import DivergenceError
from neural.mmd import energy_distance
from neural.network.initialization import initial_network
from neural.studies.sweep.config import method_configs
from neural.studies.sweep.parallel import (
    check_backend,
    check_workers,
    parallel_map,
    threads_per_worker,
    using_numba_threads,
)
from neural.training import run_method
from neural.training.kl import check_eval_size

__all__ = [
    "GAUSSIAN_MATRICES",
    "DimensionResult",
    "check_dimension_memory",
    "dimension_study",
    "format_dimension_table",
    "gaussian_problem",
    "gaussian_problem_memory",
    "write_dimension_rows",
]


GAUSSIAN_MATRICES = 8
"""d × d float64 matrices alive at once while a Gaussian pair and its OT map are made: the
random rotations with their QR factors, the two covariances, the map's A and the square
roots ``gridflow.gaussian.ot_map`` takes for the closed-form map."""


def gaussian_problem_memory(dim: int, hidden: Sequence[int] = (), samples: int = 0) -> float:
    """Bytes a Gaussian problem in dimension ``dim`` needs: ``GAUSSIAN_MATRICES`` d × d
    matrices, a network of widths ``hidden`` (its parameters, gradient and two Adam moments)
    and ``samples`` points with the network's activations."""
    width = sum(hidden)
    params = dim * width + width * width
    return 8.0 * (GAUSSIAN_MATRICES * dim * dim + 4 * params + 4 * samples * (dim + width))


def _check_gaussian_memory(dim: int, estimate: float) -> None:
    check_memory(
        estimate,
        f"the Gaussian problem in d = {dim}",
        "choose a smaller dimension (it grows as d²)",
    )


def gaussian_problem(dim: int, rng: np.random.Generator):
    """A random Gaussian pair in dimension ``dim`` and its OT map (``gridflow.gaussian``).

    Source N(m0, Σ0), target N(0, Γ): m0 ~ N(0, ½² I); Σ0, Γ = Q diag(λ) Qᵀ with Q
    a random rotation and log λ uniform in [log ½, log 2]. Returns
    (source, target, A, b, Γ) with T*(x) = A x + b.
    """
    dim = positive_int(dim, "dim")
    _check_gaussian_memory(dim, gaussian_problem_memory(dim))  # before any d × d matrix

    def random_spd():
        q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
        q = q * np.sign(np.diag(r))
        eigenvalues = np.exp(rng.uniform(np.log(0.5), np.log(2.0), dim))
        cov = (q * eigenvalues) @ q.T
        return 0.5 * (cov + cov.T)

    m0 = 0.5 * rng.standard_normal(dim)
    cov0 = random_spd()
    cov1 = random_spd()
    source = Gaussian(m0, cov0)
    A, b = gaussian.ot_map(gaussian.Gaussian(m0, cov0), gaussian.Gaussian(np.zeros(dim), cov1))
    return source, LogConcaveTarget.gaussian(np.zeros(dim), cov1), A, b, cov1


@dataclass(frozen=True)
class DimensionResult:
    """One (dimension, method) run of the dimension study (map errors vs the closed form)."""

    dim: int
    method: str
    status: str
    l2: float
    uvp: float
    uvp_initial: float
    uvp_identity: float
    mmd: float
    seconds: float


def _dimension_job(dim, method_name, config, seed, hidden, init, n_eval, numba_threads):
    with using_numba_threads(numba_threads):
        return _dimension_run(dim, method_name, config, seed, hidden, init, n_eval)


def _dimension_run(dim, method_name, config, seed, hidden, init, n_eval):
    problem_seq, init_seq, data_seq, eval_seq = np.random.SeedSequence([seed, dim]).spawn(4)
    source, target, A, b, cov1 = gaussian_problem(dim, np.random.default_rng(problem_seq))
    net0 = initial_network(dim, hidden, np.random.default_rng(init_seq), init, source=source)
    eval_rng = np.random.default_rng(eval_seq)
    x_eval = source.sample(eval_rng, n_eval)
    y_eval = eval_rng.standard_normal((n_eval, dim)) @ np.linalg.cholesky(cov1).T

    def true_map(x):
        return x @ A.T + b

    def identity(x):
        return x

    initial = map_distance(net0.map, true_map, x_eval, cov1)
    ident = map_distance(identity, true_map, x_eval, cov1)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = run_method(config, net0, source, target, np.random.default_rng(data_seq))
        error = map_distance(result.map, true_map, x_eval, cov1)
        mmd = energy_distance(result.map(x_eval), y_eval)
        status, l2, uvp = "ok", error.l2, error.uvp
    except DivergenceError:
        status, l2, uvp, mmd = "diverged", np.nan, np.nan, np.nan
    return DimensionResult(
        dim=dim,
        method=method_name,
        status=status,
        l2=l2,
        uvp=uvp,
        uvp_initial=initial.uvp,
        uvp_identity=ident.uvp,
        mmd=mmd,
        seconds=time.perf_counter() - start,
    )


def check_dimension_memory(
    dims: Sequence[int], hidden: Sequence[int], n_eval: int, workers: int = 1
) -> None:
    """Refuse (InsufficientMemoryError, a ValueError) a dimension whose problem, network and
    evaluation samples (``gaussian_problem_memory``), once per worker, exceed the memory
    available; before anything is allocated."""
    for dim in dims:
        estimate = workers * gaussian_problem_memory(dim, hidden, n_eval)
        check_memory(
            estimate,
            f"the Gaussian problem in d = {dim}"
            + (f" in each of {workers} workers" if workers > 1 else ""),
            f"choose a smaller dimension (it grows as d²) or fewer samples than n_eval = "
            f"{n_eval:,}",
        )


def dimension_study(
    dims: Sequence[int] = (2, 8, 32),
    methods: Sequence[str] | None = None,
    *,
    size: str = "small",
    seed: int = 0,
    hidden: Sequence[int] = (20, 20),
    init: str = "normal",
    n_eval: int = 2000,
    workers: int = 1,
    backend: str = "loky",
    progress: bool = False,
) -> tuple[DimensionResult, ...]:
    """Every method on Gaussian → Gaussian in each dimension, against T*(x) = A x + b.

    One problem per dimension (``gaussian_problem``, seeded by (seed, d)), shared by the
    methods, with the same θ0 and batches for every method. Reports the L² error and
    L²-UVP (``map_distance``) of the trained map, of θ0 and of the identity, and the MMD.
    """
    dims = [positive_int(d, "dims") for d in dims]
    configs = method_configs(size, methods)
    n_eval = check_eval_size(n_eval)
    backend = check_backend(backend)
    workers = check_workers(workers, backend)
    numba_threads = threads_per_worker(workers)
    check_dimension_memory(dims, hidden, n_eval, workers)
    jobs = [
        (d, name, config, int(seed), tuple(hidden), init, n_eval, numba_threads)
        for d in dims
        for name, config in configs.items()
    ]
    with parallel_map(_dimension_job, jobs, workers, backend) as results:
        if progress:
            results = tqdm(results, total=len(jobs), desc="runs")
        return tuple(results)


def format_dimension_table(results: Sequence[DimensionResult]) -> str:
    """Plain-text table of a dimension study."""
    header = (
        f"{'d':>3} {'method':<10} {'status':<8} {'L2 err':>8} {'UVP %':>8} {'UVP θ0':>8} "
        f"{'UVP id':>8} {'MMD':>8} {'s':>6}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r.dim:>3} {r.method:<10} {r.status:<8} {r.l2:>8.4f} {r.uvp:>8.3f} "
            f"{r.uvp_initial:>8.2f} {r.uvp_identity:>8.2f} {r.mmd:>8.4f} {r.seconds:>6.1f}"
        )
    return "\n".join(lines)


def write_dimension_rows(rows: Sequence[DimensionResult], path) -> None:
    """Write the rows of a dimension study to ``path`` as strict JSON (a diverged run's NaN
    as null)."""
    with open(path, "w", encoding="utf-8") as handle:
        rows_json = [
            {key: None if value != value else value for key, value in asdict(row).items()}
            for row in rows
        ]  # NaN (diverged) -> null: strict JSON
        json.dump(rows_json, handle, indent=1, allow_nan=False)
