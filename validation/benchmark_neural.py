"""Speed of the neural kernels against plain numpy versions of the same computations.

Run ``python -m validation.benchmark_neural`` (``--quick`` for fewer repetitions).
Every timing is the median over repeated calls after a warm-up call (numba
compilation and cache loading excluded). The numpy baselines are
``neural/network/reference.py`` and ``neural/reference.py`` (the implementations the tests
also compare against).

Goals (docs/performance.md, 'Kernel goals'; a 2-core machine): map_vjp, n = 100, 541
parameters <= 50 µs;
score estimate for n = 100 to convergence <= 5 ms; energy distance 10⁴ × 10⁴ in
d = 2 <= 1 s; the score-free KL gradient at n = 100 <= 3 map_vjp.

The last goal is a ratio, so it is also measured as one: the score-free gradient and
map_vjp are called alternately, and the row "alternating with map_vjp" gives the median
of the score-free calls against 3 times the median of the map_vjp calls of the same pairs,
which a load that changes during the run (a shared machine) affects much less than two
medians taken minutes apart.

Issue #12 (speed and threads), printed after the kernels with the issue's figures of
before the change ("before"):

- one seed of the Fig. 2 sweep, the four methods at the paper's settings, one thread:
  CPU seconds of training <= 1.5 s, and >= 20 times faster than the reference
  implementation (28.6 s of CPU with its autograd anomaly mode off, issue #12). Both
  figures are the issue's machine's, where the code of commit 6315117 took 5.5 s: on
  another machine only a ratio carries over. ``--before CHECKOUT`` (a checkout of 6315117)
  times that code and this one alternately, one subprocess each, and judges the goals on
  5.5 s times the median ratio; without it the rows give this machine's seconds unjudged;
- the 100-seed sweep with ``--workers 2`` <= 4 min (``--sweep`` runs it, ~5 min);
- 2 threads against 1 with another process busy (``validation/speed_neural.py``, which
  also runs against another checkout): run_method as in the README's neural snippet,
  run_method with batches of 500 (parallel ICNN kernels) and one seed of the sweep; each
  at most 1.10 times the one-thread time.

``--thresholds`` times Sinkhorn's parallel kernels against the serial ones from n = 64 to
4096 with another process busy: the measurements behind
``neural.score.estimator.STORED_MAX_POINTS``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

from gridflow import Gaussian, LogConcaveTarget
from gridflow.examples import paper_mixture
from neural import ICNN, reference
from neural.mmd import energy_distance
from neural.network import hessian, hessian_vjp, map_vjp, transport_map
from neural.network import reference as network_reference
from neural.network.kernels import EVALUATE_PARALLEL, EVALUATE_SERIAL, LOG_DET_SERIAL, MAP_VJP
from neural.score import default_eps, self_entropic_score
from neural.score.estimator import STORED_MAX_POINTS
from neural.score.sinkhorn import SINKHORN
from neural.studies.sweep import BenchmarkConfig, run_benchmark
from neural.training.gradients import kl_parameter_gradient, wasserstein_gradient
from neural.training.kl import cholesky_factors, hessian_pass
from neural.training.optim import Adam
from neural.training.regression import regress
from validation.speed_neural import GOAL, busy_process, seed_training_seconds, thread_ratios


def median_seconds(function, *args, repeats: int) -> float:
    """Median wall time of function(*args) over ``repeats`` calls after one warm-up call."""
    function(*args)
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - begin)
    return float(np.median(times))


def alternating_medians(first, second, repeats: int) -> tuple[float, float]:
    """Median wall times of first() and second() over ``repeats`` alternating pairs of calls,
    after one warm-up call of each: both measured in the same window."""
    first()
    second()
    times = ([], [])
    for _ in range(repeats):
        begin = time.perf_counter()
        first()
        middle = time.perf_counter()
        second()
        times[0].append(middle - begin)
        times[1].append(time.perf_counter() - middle)
    return float(np.median(times[0])), float(np.median(times[1]))


def unfused_score_free_gradient(architecture, theta, x, target, weight):
    """The score-free gradient from the separate public pieces, as before the fused kernels
    (with today's hessian and hessian_vjp): map, Hessian, Cholesky, map_vjp with w ∇V,
    hessian_vjp with the factors."""
    y = transport_map(architecture, theta, x)
    _, factors = cholesky_factors(hessian(architecture, theta, x))
    gradient = map_vjp(architecture, theta, x, weight * target.grad_V(y))
    return gradient - weight * hessian_vjp(architecture, theta, x, factors)


def _format(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:9.1f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:9.2f} ms"
    return f"{seconds:9.3f} s "


def _load_average() -> str:
    try:
        return ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "n/a"


def machine_description() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"numba {numba.__version__} ({numba.get_num_threads()} threads), "
        f"numpy {np.__version__}, OPENBLAS_NUM_THREADS="
        f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, load average {_load_average()}"
    )


def run(quick: bool = False) -> list[tuple[str, float, float | None, float | None]]:
    """Rows (name, numba median [s], numpy median [s] or None, goal [s] or None)."""
    scale = 0.2 if quick else 1.0
    rows = []

    # --- map_vjp, paper network, n = 100 -----------------------------------------
    net = ICNN(dim=2, hidden=(20, 20), rng=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    x = paper_mixture().sample(rng, 100)
    u = rng.standard_normal((100, 2)) / 100
    table, index = net.architecture.kernel_tables
    kernel_args = (net.params, table, index, x, u, MAP_VJP)
    repeats = int(3000 * scale)
    vjp_numpy = median_seconds(
        network_reference.icnn_map_vjp, net.architecture, net.params, x, u, repeats=repeats // 5
    )
    vjp_method = median_seconds(net.map_vjp, x, u, repeats=repeats)
    rows.append(("map_vjp n=100, m=541 (net.map_vjp, checked)", vjp_method, vjp_numpy, 50e-6))
    vjp_function = median_seconds(map_vjp, net.architecture, net.params, x, u, repeats=repeats)
    rows.append(("  map_vjp(architecture, θ, x, u), checks θ", vjp_function, vjp_numpy, 50e-6))
    seconds = median_seconds(EVALUATE_SERIAL, *kernel_args, repeats=repeats)
    rows.append(("  kernel only (serial: n = 100 is one block)", seconds, vjp_numpy, 50e-6))
    # two blocks: the size from which net.map_vjp runs the parallel kernel
    x_256 = paper_mixture().sample(rng, 256)
    u_256 = rng.standard_normal((256, 2)) / 256
    for label, kernel in (("serial", EVALUATE_SERIAL), ("parallel", EVALUATE_PARALLEL)):
        args = (net.params, table, index, x_256, u_256, MAP_VJP)
        seconds = median_seconds(kernel, *args, repeats=repeats // 2)
        rows.append((f"map_vjp n=256 kernel, {label}", seconds, None, None))
    # the score-free KL gradient: goal <= 3 map_vjp of this run
    architecture, theta = net.architecture, net.params
    target = LogConcaveTarget.standard_gaussian(2)
    kl_args = (architecture, theta, x, target, None, "mean", "logdet")
    seconds = median_seconds(kl_parameter_gradient, *kl_args, repeats=repeats // 5)
    rows.append(("score-free KL gradient n=100 (kl='logdet')", seconds, None, 3 * vjp_method))
    forward = hessian_pass(architecture, theta, x, LOG_DET_SERIAL)
    seconds = median_seconds(hessian_pass, architecture, theta, x, LOG_DET_SERIAL,
                             repeats=repeats // 5)  # fmt: skip
    rows.append(("  kernel 1: Hessian tape, T, log det, H⁻¹", seconds, None, None))
    reverse_args = (forward.tape, theta, table, index, forward.inverses, u, -0.01)
    seconds = median_seconds(LOG_DET_SERIAL[1], *reverse_args, repeats=repeats // 5)
    rows.append(("  kernel 2: one reverse sweep, both cotangents", seconds, None, None))
    unfused_args = (architecture, theta, x, target, 0.01)
    seconds = median_seconds(unfused_score_free_gradient, *unfused_args, repeats=repeats // 5)
    rows.append(("  unfused: map, hessian, Cholesky, 2 VJPs", seconds, None, None))
    factors = np.broadcast_to(np.eye(2), (100, 2, 2))
    seconds = median_seconds(hessian_vjp, architecture, theta, x, factors, repeats=repeats // 5)
    rows.append(("  of which hessian_vjp", seconds, None, None))
    seconds = median_seconds(hessian, architecture, theta, x, repeats=repeats // 5)
    rows.append(("  of which hessian", seconds, None, None))
    score_free, vjp_alternate = alternating_medians(
        lambda: kl_parameter_gradient(*kl_args), lambda: net.map_vjp(x, u), repeats
    )
    rows.append(("  alternating with map_vjp (goal 3 of its median)", score_free, None,
                 3 * vjp_alternate))  # fmt: skip
    map_numpy = median_seconds(
        network_reference.icnn_map, net.architecture, net.params, x, repeats=repeats // 5
    )
    rows.append(
        ("map n=100 (net.map)", median_seconds(net.map, x, repeats=repeats), map_numpy, None)
    )

    # --- score, n = 100, to convergence ------------------------------------------
    gaussian = Gaussian(np.array([0.5, -1.0]), np.array([[1.0, 0.3], [0.3, 0.5]]))
    y = gaussian.sample(np.random.default_rng(2), 100)
    eps = default_eps(y)
    tol = 1e-9
    repeats = int(300 * scale)
    score_numpy = median_seconds(
        reference.self_entropic_score, y, eps, tol, repeats=max(5, repeats // 10)
    )
    rows.append(
        (
            "score n=100, tol 1e-9 (self_entropic_score)",
            median_seconds(self_entropic_score, y, None, tol, repeats=repeats),
            score_numpy,
            5e-3,
        )
    )
    for (parallel, stored), kernel in SINKHORN.items():
        label = f"{'parallel' if parallel else 'serial'}, {'stored' if stored else 'computed'} K"
        rows.append(
            (
                f"  Sinkhorn kernel only, {label}",
                median_seconds(kernel, y, eps, tol, 1000, repeats=repeats),
                None,
                None,
            )
        )

    # --- the other parts of one training step at n = 100 (issue #12) ---------------
    source = paper_mixture()
    sample_rng = np.random.default_rng(5)
    repeats = int(1000 * scale)
    rows.append(
        (
            "one step's parts: sample the mixture, n=100",
            median_seconds(source.sample, sample_rng, 100, repeats=repeats),
            None,
            None,
        )
    )
    rows.append(
        (
            "  wasserstein_gradient (score + ∇V), n=100",
            median_seconds(wasserstein_gradient, x, target, repeats=repeats),
            None,
            None,
        )
    )
    adam = Adam(learning_rate=0.1)
    gradient = map_vjp(net.architecture, net.params, x, u)
    adam_args = (net.params, gradient, adam.init(net.params))
    seconds = median_seconds(
        lambda: adam.step(*adam_args, project=net.architecture.project), repeats=repeats
    )
    rows.append(("  Adam step with the projection", seconds, None, None))

    # --- energy distance, 10^4 x 10^4, d = 2 --------------------------------------
    n_eval = 10_000
    a = paper_mixture().sample(np.random.default_rng(3), n_eval)
    b = Gaussian.standard(2).sample(np.random.default_rng(4), n_eval)
    mmd_numba = median_seconds(energy_distance, a, b, repeats=max(3, int(7 * scale)))
    mmd_numpy = median_seconds(reference.energy_distance, a, b, repeats=1)
    rows.append(("energy distance 10^4 x 10^4, d=2", mmd_numba, mmd_numpy, 1.0))
    return rows


def print_table(rows) -> None:
    print(f"{'computation':46s} {'numba':>12s} {'numpy':>12s} {'speed-up':>9s} {'goal':>12s}")
    for name, fast, slow, goal in rows:
        slow_text = _format(slow) if slow is not None else " " * 12
        ratio = f"{slow / fast:8.1f}x" if slow is not None else " " * 9
        goal_text = ""
        if goal is not None:
            goal_text = f"<= {_format(goal).strip()} {'met' if fast <= goal else 'MISSED'}"
        print(f"{name:46s} {_format(fast):>12s} {slow_text:>12s} {ratio:>9s}  {goal_text}")


REFERENCE_SECONDS = 28.6
"""The authors' PyTorch code, one seed, four methods, one thread, anomaly mode off (issue #12)."""
BEFORE = {
    "seed": "5.5 s",
    "speed-up": "5.2x",
    "sweep": "701-785 s",
    "threads": "25-123x",
}
"""Issue #12's figures of before the change (its machine; docs/performance.md has the same
measured in one run)."""


def sinkhorn_thread_rows(sizes=(64, 128, 256, 512, 1024, 2048, 4096), repeats: int = 3):
    """(label, serial median [s], parallel median [s]) of every Sinkhorn kernel at each size,
    alternately, while another process is busy: where the parallel kernel pays (the choice
    in ``neural.score.estimator``). The stored kernel is measured up to its cap only."""

    rows = []
    with busy_process():
        for n in sizes:
            x = Gaussian.standard(2).sample(np.random.default_rng(n), n)
            eps = default_eps(x)
            updates = max(2, min(1000, int(2e8 / n**2)))  # the whole solve at small n
            for stored in (True, False):
                if stored and n > STORED_MAX_POINTS:
                    continue
                kernels = (SINKHORN[False, stored], SINKHORN[True, stored])
                times = ([], [])
                for kernel in kernels:
                    kernel(x, eps, 1e-9, 1)  # compile and load caches
                for _ in range(repeats):
                    for kernel, measured in zip(kernels, times, strict=True):
                        begin = time.perf_counter()
                        kernel(x, eps, 1e-9, updates)
                        measured.append(time.perf_counter() - begin)
                kind = "stored" if stored else "computed"
                label = f"Sinkhorn n={n}, {kind} K, to 1e-9 or {updates} updates"
                rows.append((label, float(np.median(times[0])), float(np.median(times[1]))))
    return rows


def sweep_seconds() -> float:
    """Wall seconds of the 100-seed sweep with 2 workers (the command of docs/performance.md)."""
    with tempfile.TemporaryDirectory() as folder:
        begin = time.perf_counter()
        run_benchmark(range(100), BenchmarkConfig(), folder, workers=2, progress=False,
                      figure=False)  # fmt: skip
        return time.perf_counter() - begin


BEFORE_SEED_SECONDS = 5.5
"""One seed's training by commit 6315117 on the issue's machine (issue #12)."""
_SEED_LINE = re.compile(r"1 thread: ([0-9.]+) s CPU")


def checkout_seed_seconds(checkout: Path) -> float:
    """CPU seconds of one seed's training by the package in ``checkout``, one thread, in a
    subprocess (``validation/speed_neural.py --seed-only`` of this checkout)."""
    checkout = checkout.resolve()
    script = Path(__file__).with_name("speed_neural.py")
    environment = dict(os.environ, PYTHONPATH=str(checkout), NUMBA_NUM_THREADS="1",
                       OPENBLAS_NUM_THREADS="1")  # fmt: skip
    done = subprocess.run([sys.executable, str(script), "--seed-only"], env=environment,
                          capture_output=True, text=True, cwd=checkout)  # fmt: skip
    found = _SEED_LINE.search(done.stdout)
    if done.returncode or found is None:
        raise RuntimeError(f"timing the package in {checkout} failed:\n{done.stderr[-2000:]}")
    return float(found.group(1))


def seed_ratio(before: Path, repeats: int) -> tuple[float, float, float]:
    """(median ratio this / before, median seconds of this, of before) over ``repeats``
    alternations of ``checkout_seed_seconds``."""
    here = Path(__file__).resolve().parent.parent
    pairs = [(checkout_seed_seconds(before), checkout_seed_seconds(here)) for _ in range(repeats)]
    ratios = [now / then for then, now in pairs]
    return (float(np.median(ratios)), float(np.median([now for _, now in pairs])),
            float(np.median([then for then, _ in pairs])))  # fmt: skip


def seed_rows(quick: bool, before: Path | None):
    """The one-seed rows: judged on the issue's machine's scale with ``before``."""
    if before is None:
        seconds = seed_training_seconds()
        return [
            ("one seed, 4 methods, paper settings, 1 thread (CPU, this machine)",
             f"{seconds:.2f} s", BEFORE["seed"], "--before", None),
            (f"  speed-up over the reference ({REFERENCE_SECONDS} s CPU, its machine)",
             f"{REFERENCE_SECONDS / seconds:.1f}x", BEFORE["speed-up"], "--before", None),
        ]  # fmt: skip
    ratio, now, then = seed_ratio(before, repeats=1 if quick else 3)
    scaled = BEFORE_SEED_SECONDS * ratio
    return [
        (f"one seed, this machine: {now:.2f} s against {then:.2f} s before", f"{ratio:.3f}",
         "", "(ratio)", None),
        ("  on the issue's machine: 5.5 s x the ratio", f"{scaled:.2f} s", BEFORE["seed"],
         "<= 1.5 s", scaled <= 1.5),
        ("  speed-up over the reference (28.6 s CPU)", f"{REFERENCE_SECONDS / scaled:.1f}x",
         BEFORE["speed-up"], ">= 20x", REFERENCE_SECONDS / scaled >= 20.0),
    ]  # fmt: skip


def goal_rows(
    quick: bool, sweep: bool, before: Path | None = None
) -> list[tuple[str, str, str, str, bool | None]]:
    """Rows (goal, measured, before, goal, met or None when not judged) of issue #12."""
    rows = seed_rows(quick, before)
    if sweep:
        seconds = sweep_seconds()
        rows.append(("100-seed sweep, --workers 2 (wall)", f"{seconds:.0f} s", BEFORE["sweep"],
                     "<= 240 s", seconds <= 240.0))  # fmt: skip
    else:
        rows.append(("100-seed sweep, --workers 2 (wall)", "(--sweep)", BEFORE["sweep"],
                     "<= 240 s", None))  # fmt: skip
    if numba.config.NUMBA_NUM_THREADS < 2:
        rows.append(("2 threads / 1, another process busy", "(1 thread)", BEFORE["threads"],
                     f"<= {GOAL:.2f}x", None))  # fmt: skip
        return rows
    for name, one, two in thread_ratios(quick, repeats=1 if quick else 3):
        rows.append((f"2 threads / 1, busy beside: {name}", f"{two / one:.2f}x",
                     BEFORE["threads"], f"<= {GOAL:.2f}x", two / one <= GOAL))  # fmt: skip
    return rows


def regression_thread_rows(repeats: int = 3):
    """(label, wall median [s] with one BLAS thread, with BLAS's default) of 300 L-BFGS-B
    iterations of ``neural.training.regression.regress`` (paper network, n = 2000),
    alternately, while another process is busy: the reason for its ``blas_threads=1``."""

    net = ICNN(dim=2, hidden=(20, 20), rng=np.random.default_rng(0))
    x = paper_mixture().sample(np.random.default_rng(1), 2000)
    targets = 0.8 * x + 0.1 * x**2
    times = {1: [], None: []}
    with busy_process():
        for _ in range(repeats):
            for threads, measured in times.items():
                begin = time.perf_counter()
                regress(net.architecture, net.params, x, targets, 300, blas_threads=threads)
                measured.append(time.perf_counter() - begin)
    return [("regress, 300 L-BFGS-B iterations, n=2000, m=541",
             float(np.median(times[1])), float(np.median(times[None])))]  # fmt: skip


def print_goals(rows) -> None:
    print()
    print(f"issue #12 (before: the issue's figures; OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')})")  # fmt: skip
    print(f"{'goal':66s} {'measured':>9s} {'before':>10s} {'goal':>9s}")
    for name, measured, before, goal, met in rows:
        verdict = "" if met is None else ("met" if met else "MISSED")
        print(f"{name:66s} {measured:>9s} {before:>10s} {goal:>9s} {verdict}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument(
        "--sweep", action="store_true", help="also time the 100-seed sweep (--workers 2)"
    )
    parser.add_argument(
        "--goals-only", action="store_true", help="only the issue #12 goals, not the kernels"
    )
    parser.add_argument(
        "--before",
        type=Path,
        metavar="CHECKOUT",
        help="a checkout of commit 6315117: judge the one-seed goals on the issue's machine's "
        "scale (5.5 s times the ratio measured here)",
    )
    parser.add_argument(
        "--thresholds",
        action="store_true",
        help="only Sinkhorn's parallel against serial kernels, another process busy",
    )
    parser.add_argument(
        "--regression",
        action="store_true",
        help="only regress with one BLAS thread against BLAS's default, another process busy",
    )
    arguments = parser.parse_args(argv)
    if arguments.before is not None:
        if not (arguments.before / "neural").is_dir():
            parser.error(f"--before {arguments.before}: not a checkout of this project (no neural)")
        arguments.before = arguments.before.resolve()  # the subprocess runs inside it
    print(machine_description())
    if arguments.regression:
        print(f"{'wall time (another process busy)':52s} {'1 BLAS':>10s} {'default':>10s} ratio")
        for label, one, default in regression_thread_rows():
            print(f"{label:52s} {_format(one)} {_format(default)} {default / one:5.2f}")
        return
    if arguments.thresholds:
        print(f"{'kernel (another process busy)':52s} {'serial':>10s} {'parallel':>10s} ratio")
        for label, serial, parallel in sinkhorn_thread_rows():
            print(f"{label:52s} {_format(serial)} {_format(parallel)} {parallel / serial:5.2f}")
        return
    if not arguments.goals_only:
        print_table(run(quick=arguments.quick))
    print_goals(goal_rows(arguments.quick, arguments.sweep, arguments.before))
    print(f"load average at the end: {_load_average()}")


if __name__ == "__main__":
    main()
