"""Speed of one sweep seed and 2 numba threads against 1 under load (issue #12).

Run ``python validation/speed_neural.py`` (``--quick``: the README snippet with 2 outer
steps, one seed at size tiny). It uses only functions that older versions of the package
have too, so it also measures another checkout: ``PYTHONPATH=OTHER python
validation/speed_neural.py`` times OTHER's package (how the README's "before" figures were
taken). It prints

- the CPU seconds of training the four methods of one seed of the Fig. 2 sweep at the
  paper's settings with one thread (as ``run_seed`` does, without the evaluation);
- 2 threads against 1: each case timed alternately with ``numba.set_num_threads(1)`` and
  ``(2)`` in one process while ``python -c 'while True: pass'`` runs beside it; the goal is
  at most 1.10 times the one-thread time. Needs NUMBA_NUM_THREADS >= 2.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from functools import partial

import numba
import numpy as np

from gridflow import LogConcaveTarget
from gridflow.examples import paper_mixture
from neural import ICNN, make_method, run_method

try:
    from neural.network.initialization import initial_network
    from neural.studies.sweep import BenchmarkConfig, run_seed
    from neural.studies.sweep.seed import seed_sequences
except ImportError:  # an older checkout, timed through PYTHONPATH (module docstring)
    from neural.benchmark import BenchmarkConfig, initial_network, run_seed
    from neural.benchmark import _seed_sequences as seed_sequences

GOAL = 1.10
"""Largest allowed ratio of the 2-thread time to the 1-thread time."""


def seed_training_seconds(seed: int = 0) -> float:
    """CPU seconds to train the four methods of one sweep seed at the paper's settings, as
    ``run_seed`` does (without the evaluation), with one numba thread (caches warmed first)."""
    config = BenchmarkConfig()
    source, target = paper_mixture(), LogConcaveTarget.standard_gaussian(2)
    init, data, _ = seed_sequences(seed)
    anchors = {"source": source} if config.init == "anchored" else {}  # older versions: none
    net0 = initial_network(2, config.hidden, np.random.default_rng(init), config.init, **anchors)
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        for warm_up in (True, False):
            begin = time.process_time()
            for method in config.method_configs().values():
                run_method(method, net0, source, target, np.random.default_rng(data))
            if not warm_up:
                return time.process_time() - begin
    finally:
        numba.set_num_threads(previous)


@contextmanager
def busy_process():
    """Another process busy on a core for the duration (``while True: pass``)."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        process.kill()
        process.wait()


def _implicit_run(outer_steps: int, inner_steps: int, batch_size: int) -> None:
    """Method (a) from the README snippet's θ0 and data (seed 0)."""
    rng = np.random.default_rng(0)
    net0 = ICNN(dim=2, hidden=(20, 20), rng=rng)
    config = make_method(
        "implicit", outer_steps=outer_steps, inner_steps=inner_steps, batch_size=batch_size
    )
    run_method(config, net0, paper_mixture(), LogConcaveTarget.standard_gaussian(2), rng)


def cases(quick: bool) -> tuple[tuple[str, Callable[[], None]], ...]:
    """(name, run) of the README snippet, method (a) with batches of 500 (parallel ICNN
    kernels) and one seed of the sweep."""
    outer, seed_config = (
        (2, BenchmarkConfig(size="tiny", n_eval=2000))
        if quick
        else (10, BenchmarkConfig(size="small"))
    )
    return (
        (
            f"README snippet, method (a), {outer} outer steps",
            partial(_implicit_run, outer, 100, 100),
        ),
        ("method (a), 2 x 50 steps, batches of 500", partial(_implicit_run, 2, 50, 500)),
        (f"one seed of the sweep, size {seed_config.size}", partial(run_seed, 0, seed_config)),
    )


def thread_ratios(quick: bool, repeats: int) -> list[tuple[str, float, float]]:
    """(case, median seconds with 1 thread, with 2 threads), alternately, another process busy."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        raise SystemExit("needs NUMBA_NUM_THREADS >= 2")
    previous = numba.get_num_threads()
    rows = []
    try:
        with busy_process():
            for name, run in cases(quick):
                run()  # compile and load caches
                times = {1: [], 2: []}
                for _ in range(repeats):
                    for threads in (1, 2):
                        numba.set_num_threads(threads)
                        begin = time.perf_counter()
                        run()
                        times[threads].append(time.perf_counter() - begin)
                rows.append((name, float(np.median(times[1])), float(np.median(times[2]))))
    finally:
        numba.set_num_threads(previous)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter cases")
    parser.add_argument("--repeats", type=int, default=3, help="alternations (default 3)")
    parser.add_argument("--seed-only", action="store_true", help="only the one-seed CPU time")
    arguments = parser.parse_args(argv)
    print(f"one seed, 4 methods, paper settings, 1 thread: {seed_training_seconds():.2f} s CPU")
    if arguments.seed_only:
        return
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, {os.cpu_count()} CPUs, "
          f"layer after the runs: ", end="")  # fmt: skip
    rows = thread_ratios(arguments.quick, arguments.repeats)
    print(numba.threading_layer())
    for name, one, two in rows:
        verdict = "met" if two / one <= GOAL else "MISSED"
        print(f"{name:48s} 1 thread {one:7.2f} s  2 threads {two:7.2f} s  "
              f"ratio {two / one:5.2f}  (<= {GOAL}) {verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
