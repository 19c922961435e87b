"""Running a study's jobs in parallel: joblib backends, numba threads per worker, Ctrl-C.

Backends (``BACKENDS``): loky (processes; its workers ignore SIGINT, the parent handles
Ctrl-C and ends them), threading, dask (``dask.distributed``: the current client, or a
local cluster started and closed for the block), sequential (in process, for debugging).
"""

from __future__ import annotations

import os
import signal
from contextlib import ExitStack, contextmanager

import joblib
import numba

from gridflow.checks import positive_int
from gridflow.memory import check_memory

__all__ = [
    "BACKENDS",
    "check_backend",
    "check_workers",
    "parallel_map",
    "threads_per_worker",
    "using_numba_threads",
]

BACKENDS = ("loky", "threading", "dask", "sequential")
"""joblib backends of the sweeps: loky (processes), threading, dask (dask.distributed),
sequential (in process, for debugging)."""


def check_backend(backend: str) -> str:
    """``backend`` if it is one of ``BACKENDS`` (and, for dask, dask.distributed imports)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "dask":
        try:  # an optional dependency (monge-flows[dask])
            import dask.distributed  # noqa: F401
        except ImportError:
            raise ValueError(
                "backend 'dask' needs dask.distributed: pip install 'monge-flows[dask]' "
                "(or 'dask[distributed]'), or choose another backend"
            ) from None
    return backend


WORKER_BYTES = 160 * 2**20
"""The resident memory of one worker process (numpy, numba and the package imported)."""


def check_workers(workers: int, backend: str) -> int:
    """``workers`` as a positive int whose processes (loky, dask) fit in the memory
    available, else ValueError with the estimate; ``backend`` is a checked one."""
    workers = positive_int(workers, "workers")
    if workers > 1 and backend in ("loky", "dask"):
        check_memory(
            workers * WORKER_BYTES,
            f"a pool of {workers} worker processes",
            f"choose fewer workers (about one per core; this machine has {os.cpu_count()})",
        )
    return workers


@contextmanager
def parallel_map(function, jobs, workers: int = 1, backend: str = "loky", ordered: bool = True):
    """An iterator over ``function(*job)`` for every job, run by ``workers`` joblib workers.

    In process when workers == 1 (except with dask); ``ordered=False`` yields results as
    they finish. With backend 'dask' the current ``dask.distributed`` client serves if
    there is one; otherwise a local cluster (``workers`` processes, one thread each) is
    started for the block and closed, with its client, when the block ends.
    """
    backend = check_backend(backend)
    workers = check_workers(workers, backend)
    jobs = list(jobs)
    if workers == 1 and backend != "dask":
        yield (function(*job) for job in jobs)
        return
    with ExitStack() as stack:
        if backend == "dask":
            _enter_dask_client(stack, workers)
        options = {"initializer": _ignore_interrupts} if backend == "loky" else {}
        stack.enter_context(joblib.parallel_config(backend=backend, n_jobs=workers, **options))
        parallel = joblib.Parallel(return_as="generator" if ordered else "generator_unordered")
        results = parallel(joblib.delayed(function)(*job) for job in jobs)
        try:
            yield results
        finally:
            results.close()  # stops the jobs not started yet before the backend goes away


def _ignore_interrupts() -> None:
    """A loky worker's initializer: Ctrl-C reaches the whole process group, and only the
    parent handles it (it stops the sweep and ends the workers). A worker interrupted in
    loky's own code between two seeds printed loky's traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _enter_dask_client(stack: ExitStack, workers: int) -> None:
    """Use the current dask client, or start a local cluster and its client on ``stack``."""
    # an optional dependency, checked by check_backend
    from dask.distributed import Client, LocalCluster, get_client

    try:
        get_client()
        return
    except ValueError:  # no client: start one, closed with the stack
        pass
    cluster = stack.enter_context(
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
    )
    stack.enter_context(Client(cluster))


@contextmanager
def using_numba_threads(count: int | None):
    """numba's thread count set to ``count`` (capped at the pool size) inside, restored after
    (None: unchanged)."""
    previous = numba.get_num_threads()
    if count is not None:
        numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def threads_per_worker(workers: int) -> int:
    """numba threads per worker when ``workers`` share the machine: cores // workers, at
    least 1."""
    return max(1, (os.cpu_count() or 1) // workers)
