"""The resumable, parallel Fig. 2 sweep over seeds (``run_benchmark``).

Each seed is one job (``neural.studies.sweep.seed``), run by ``parallel_map``; the parent
appends each record to the results store as it arrives (``neural.studies.sweep.store``),
so a killed run loses at most the seeds in flight, and a rerun skips the seeds already
there. Ctrl-C ends the sweep with ``SweepInterrupted`` saying how many seeds are kept. At
the end: the table, and Fig. 2 as fig2.png (``neural.studies.sweep.summary``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from gridflow.checks import positive_int
from gridflow.cli import OutputFile, is_interrupt
from gridflow.examples import paper_mixture
from gridflow.memory import check_memory
from neural.studies.sweep.config import BenchmarkConfig, check_covers, check_ground_truth
from neural.studies.sweep.errors import SweepInterrupted, SweepSetupError
from neural.studies.sweep.parallel import (
    check_backend,
    check_workers,
    parallel_map,
    threads_per_worker,
)
from neural.studies.sweep.seed import (
    check_seed,
    eval_samples,
    run_seed_with_threads,
    seed_sequences,
)
from neural.studies.sweep.store import (
    RESULTS_FILE,
    append_record,
    create_directory,
    drop_cut_line,
    locked,
    prepare_directory,
    read_results,
)
from neural.studies.sweep.summary import (
    MethodSummary,
    format_references,
    format_table,
    histogram_figure,
    mmd_values,
    summarize,
)

__all__ = ["BenchmarkResults", "run_benchmark"]


SEED_BYTES = 200
"""The memory of one seed in the list a sweep holds (a Python int in a list and a dict)."""


@dataclass(frozen=True)
class BenchmarkResults:
    """A sweep's records (seed -> record), its summary and the files written."""

    config: BenchmarkConfig
    records: dict[int, dict]
    summary: tuple[MethodSummary, ...]
    ran: tuple[int, ...]
    skipped: tuple[int, ...]
    seconds: float
    directory: Path | None = None
    figure: Path | None = field(default=None)

    def mmd(self, method: str) -> np.ndarray:
        """MMD of ``method`` over the finished seeds (seed order; NaN for diverged runs)."""
        return mmd_values(self.records, method)


def _check_ground_truth_covers(config: BenchmarkConfig, seeds) -> None:
    """SweepSetupError before any training if a seed's evaluation samples leave T*'s box."""
    if config.ground_truth is None:
        return
    true_map = check_ground_truth(config.ground_truth)
    source = paper_mixture()
    for seed in seeds:
        x_eval = eval_samples(seed_sequences(seed)[2], config.n_eval, source, source.dim)[0]
        check_covers(true_map, config.ground_truth, x_eval, seed)


def run_benchmark(
    seeds: Iterable[int],
    config: BenchmarkConfig | None = None,
    out=None,
    *,
    workers: int = 1,
    backend: str = "loky",
    numba_threads: int | None = None,
    progress: bool = True,
    figure: bool = True,
    force_resume: bool = False,
) -> BenchmarkResults:
    """Run ``config`` for ``seeds`` in parallel, resumably (module docstring).

    out            output directory (results.jsonl, config.json, table.txt, fig2.png);
                   None keeps everything in memory (no resume)
    workers        joblib workers (processes with loky)
    backend        ``BACKENDS``: loky (default), threading, sequential, or 'dask' (needs
                   dask.distributed; without a client a local cluster is started and closed)
    numba_threads  numba threads per worker (default: cores // workers, at least 1)
    progress       tqdm progress bar
    figure         write fig2.png (Fig. 2 histograms) into ``out``
    force_resume   resume results written by another code version (config.json "code")

    Before any seed runs, refuses with ``SweepSetupError``: a ground truth whose box
    does not hold the evaluation samples, an output folder that cannot be written, one
    holding another configuration or code version, or one locked by a running sweep
    (``SweepLockedError``). Ctrl-C raises ``SweepInterrupted`` (how many seeds are kept).
    """
    config = BenchmarkConfig() if config is None else config
    if not isinstance(config, BenchmarkConfig):
        raise TypeError(f"config must be a BenchmarkConfig, got {type(config).__name__}")
    try:
        if hasattr(seeds, "__len__"):
            count = len(seeds)
            check_memory(SEED_BYTES * count, f"a sweep of {count:,} seeds", "choose fewer seeds")
        backend = check_backend(backend)
        workers = check_workers(workers, backend)
    except ValueError as error:
        raise SweepSetupError(str(error)) from None
    seeds = list(dict.fromkeys(check_seed(s) for s in seeds))
    if not seeds:
        raise ValueError("seeds must be a nonempty list of nonnegative integers, got []")
    if numba_threads is None:
        numba_threads = threads_per_worker(workers)
    numba_threads = positive_int(numba_threads, "numba_threads")
    _check_ground_truth_covers(config, seeds)
    run = (workers, backend, numba_threads, progress, figure)
    if out is None:
        return _sweep(seeds, config, None, {}, *run)
    directory = Path(out)
    create_directory(directory)
    with locked(directory):
        prepare_directory(directory, config, force_resume)
        drop_cut_line(directory / RESULTS_FILE)
        return _sweep(seeds, config, directory, read_results(directory), *run)


def _sweep(seeds, config, directory, done, workers, backend, numba_threads, progress, figure):
    """The seeds not in ``done``, appended to ``directory`` as they finish (run_benchmark)."""
    for seed, record in done.items():
        missing = sorted(set(config.methods) - set(record["methods"]))
        if missing:  # a record edited by hand: its table rows would be empty, "0 runs"
            raise SweepSetupError(
                f"{directory / RESULTS_FILE}: the record of seed {seed} holds no results of "
                f"{', '.join(missing)}, which the sweep's config runs; remove that line to "
                "run the seed again"
            )
    todo = [s for s in seeds if s not in done]
    skipped = tuple(s for s in seeds if s in done)
    records = dict(done)
    start = time.perf_counter()
    bar = None
    if progress:
        bar = tqdm(total=len(seeds), initial=len(skipped), desc="seeds", unit="seed")
    ran = []
    jobs = [(seed, config, numba_threads) for seed in todo]
    try:
        with parallel_map(run_seed_with_threads, jobs, workers, backend, ordered=False) as results:
            for record in results:
                if directory is not None:
                    append_record(directory / RESULTS_FILE, record)
                records[record["seed"]] = record
                ran.append(record["seed"])
                if bar is not None:
                    bar.set_postfix_str(_postfix(record))
                    bar.update(1)
    except BaseException as error:
        if not is_interrupt(error):
            raise
        path = None if directory is None else directory / RESULTS_FILE
        # the file is the truth: a Ctrl-C during append_record's fsync keeps a line that
        # was not counted yet
        kept_records = records if path is None else read_results(path)
        kept = sum(seed in kept_records for seed in seeds)
        raise SweepInterrupted(kept, len(seeds), path) from None
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - start
    selected = {s: records[s] for s in seeds}
    summary = summarize(selected, config.methods)
    figure_path = None
    if directory is not None:  # each file whole or not at all (a Ctrl-C while writing)
        text = format_table(summary, config.truth_error()) + "\n" + format_references(selected)
        with OutputFile(directory / "table.txt", "table", overwrite=True).staged() as staged:
            staged.write_text(text + "\n")
        if figure:
            figure_path = directory / "fig2.png"
            with OutputFile(figure_path, "figure", overwrite=True).staged() as staged:
                histogram_figure(selected, config.methods, size=config.size).savefig(
                    staged, dpi=120
                )
    return BenchmarkResults(
        config=config,
        records=selected,
        summary=summary,
        ran=tuple(ran),
        skipped=skipped,
        seconds=elapsed,
        directory=directory,
        figure=figure_path,
    )


def _postfix(record: dict) -> str:
    """The progress bar's text: each method's MMD of the seed just finished."""
    return " ".join(
        f"{name}={entry['mmd']:.3f}" if entry["mmd"] is not None else f"{name}=div"
        for name, entry in record["methods"].items()
    )
