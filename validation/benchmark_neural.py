"""Speed of the neural kernels against plain numpy versions of the same computations.

Run ``python -m validation.benchmark_neural`` (``--quick`` for fewer repetitions).
Every timing is the median over repeated calls after a warm-up call (numba
compilation and cache loading excluded). The numpy baselines are
``neural/_reference.py`` (the implementations the tests also compare against).

Goals (DESIGN §4, on a 2-core machine): map_vjp, n = 100, 541 parameters <= 50 µs;
score estimate for n = 100 to convergence <= 5 ms; energy distance 10⁴ × 10⁴ in
d = 2 <= 1 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numba
import numpy as np

from neural import ICNN
from neural import _reference as reference
from neural.icnn import _map_vjp_parallel, _map_vjp_serial
from neural.mmd import energy_distance
from neural.samplers import Gaussian, paper_mixture
from neural.score import (
    _sinkhorn_parallel,
    _sinkhorn_serial,
    default_eps,
    self_entropic_score,
)


def median_seconds(function, *args, repeats: int, min_seconds: float = 0.0) -> float:
    """Median wall time of function(*args) over ``repeats`` calls after one warm-up call."""
    function(*args)
    times = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_seconds:
        begin = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - begin)
    return float(np.median(times))


def _format(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:9.1f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:9.2f} ms"
    return f"{seconds:9.3f} s "


def machine_description() -> str:
    try:
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        load = "n/a"
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"numba {numba.__version__} ({numba.get_num_threads()} threads), "
        f"numpy {np.__version__}, load average {load}"
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
    kernel_args = (net.params, net.architecture.widths, net.architecture.layout, x, u)
    repeats = int(3000 * scale)
    vjp_numpy = median_seconds(
        reference.icnn_map_vjp, net.architecture, net.params, x, u, repeats=repeats // 5
    )
    vjp_method = median_seconds(net.map_vjp, x, u, repeats=repeats)
    rows.append(("map_vjp n=100, m=541 (net.map_vjp, checked)", vjp_method, vjp_numpy, 50e-6))
    rows.append(
        (
            "  kernel only, parallel",
            median_seconds(_map_vjp_parallel, *kernel_args, repeats=repeats),
            vjp_numpy,
            50e-6,
        )
    )
    rows.append(
        (
            "  kernel only, serial",
            median_seconds(_map_vjp_serial, *kernel_args, repeats=repeats),
            vjp_numpy,
            None,
        )
    )
    map_numpy = median_seconds(
        reference.icnn_map, net.architecture, net.params, x, repeats=repeats // 5
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
    for label, kernel in (("serial", _sinkhorn_serial), ("parallel", _sinkhorn_parallel)):
        rows.append(
            (
                f"  Sinkhorn kernel only, {label}",
                median_seconds(kernel, y, eps, tol, 1000, repeats=repeats),
                None,
                None,
            )
        )

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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    arguments = parser.parse_args(argv)
    print(machine_description())
    print_table(run(quick=arguments.quick))


if __name__ == "__main__":
    main()
