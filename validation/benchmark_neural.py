"""Speed of the neural kernels against plain numpy versions of the same computations.

Run ``python -m validation.benchmark_neural`` (``--quick`` for fewer repetitions).
Every timing is the median over repeated calls after a warm-up call (numba
compilation and cache loading excluded). The numpy baselines are
``neural/_reference.py`` (the implementations the tests also compare against).

Goals (DESIGN §4, on a 2-core machine): map_vjp, n = 100, 541 parameters <= 50 µs;
score estimate for n = 100 to convergence <= 5 ms; energy distance 10⁴ × 10⁴ in
d = 2 <= 1 s; the score-free KL gradient (DESIGN §4b) at n = 100 <= 3 map_vjp.

The last goal is a ratio, so it is also measured as one: calls of the two alternate and
the median of the per-pair ratios is reported, which a load that changes during the run
(a shared machine) affects much less than the ratio of two medians taken minutes apart.
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
from neural.icnn import (
    _EVALUATE_PARALLEL,
    _EVALUATE_SERIAL,
    _LOG_DET_SERIAL,
    _MAP_VJP,
    hessian,
    hessian_vjp,
    map_vjp,
    transport_map,
)
from neural.kl import _hessian_pass, cholesky_factors
from neural.mmd import energy_distance
from neural.samplers import Gaussian, paper_mixture
from neural.schemes import Target, kl_gradient
from neural.score import (
    _sinkhorn_parallel,
    _sinkhorn_serial,
    default_eps,
    self_entropic_score,
)


def median_seconds(function, *args, repeats: int) -> float:
    """Median wall time of function(*args) over ``repeats`` calls after one warm-up call."""
    function(*args)
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - begin)
    return float(np.median(times))


def median_ratio(numerator, denominator, repeats: int) -> float:
    """Median over ``repeats`` alternating pairs of time(numerator()) / time(denominator()),
    after one warm-up call of each."""
    numerator()
    denominator()
    ratios = []
    for _ in range(repeats):
        begin = time.perf_counter()
        numerator()
        middle = time.perf_counter()
        denominator()
        ratios.append((middle - begin) / (time.perf_counter() - middle))
    return float(np.median(ratios))


def unfused_score_free_gradient(architecture, theta, x, target, weight):
    """The score-free gradient from the separate public pieces (the path before the fused
    kernels): map, Hessian, Cholesky, map_vjp with w ∇V, hessian_vjp with the factors."""
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


def run(quick: bool = False):
    """(rows, ratios): rows (name, numba median [s], numpy median [s] or None, goal [s] or
    None); ratios (name, median ratio of alternating calls, goal or None)."""
    scale = 0.2 if quick else 1.0
    rows = []
    ratios = []

    # --- map_vjp, paper network, n = 100 -----------------------------------------
    net = ICNN(dim=2, hidden=(20, 20), rng=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    x = paper_mixture().sample(rng, 100)
    u = rng.standard_normal((100, 2)) / 100
    table, index = net.architecture.kernel_tables
    kernel_args = (net.params, table, index, x, u, _MAP_VJP)
    repeats = int(3000 * scale)
    vjp_numpy = median_seconds(
        reference.icnn_map_vjp, net.architecture, net.params, x, u, repeats=repeats // 5
    )
    vjp_method = median_seconds(net.map_vjp, x, u, repeats=repeats)
    rows.append(("map_vjp n=100, m=541 (net.map_vjp, checked)", vjp_method, vjp_numpy, 50e-6))
    vjp_function = median_seconds(map_vjp, net.architecture, net.params, x, u, repeats=repeats)
    rows.append(("  map_vjp(architecture, θ, x, u), checks θ", vjp_function, vjp_numpy, 50e-6))
    seconds = median_seconds(_EVALUATE_SERIAL, *kernel_args, repeats=repeats)
    rows.append(("  kernel only (serial: n = 100 is one block)", seconds, vjp_numpy, 50e-6))
    # two blocks: the size from which net.map_vjp runs the parallel kernel
    x_256 = paper_mixture().sample(rng, 256)
    u_256 = rng.standard_normal((256, 2)) / 256
    for label, kernel in (("serial", _EVALUATE_SERIAL), ("parallel", _EVALUATE_PARALLEL)):
        args = (net.params, table, index, x_256, u_256, _MAP_VJP)
        seconds = median_seconds(kernel, *args, repeats=repeats // 2)
        rows.append((f"map_vjp n=256 kernel, {label}", seconds, None, None))
    # the score-free KL gradient (DESIGN §4b): goal <= 3 map_vjp of this run
    architecture, theta = net.architecture, net.params
    target = Target.standard_gaussian(2)
    kl_args = (architecture, theta, x, target, None, "mean", "logdet")
    seconds = median_seconds(kl_gradient, *kl_args, repeats=repeats // 5)
    rows.append(("score-free KL gradient n=100 (kl='logdet')", seconds, None, 3 * vjp_method))
    forward = _hessian_pass(architecture, theta, x, _LOG_DET_SERIAL)
    seconds = median_seconds(_hessian_pass, architecture, theta, x, _LOG_DET_SERIAL,
                             repeats=repeats // 5)  # fmt: skip
    rows.append(("  kernel 1: Hessian tape, T, log det, H⁻¹", seconds, None, None))
    reverse_args = (forward.tape, theta, table, index, forward.inverses, u, -0.01)
    seconds = median_seconds(_LOG_DET_SERIAL[1], *reverse_args, repeats=repeats // 5)
    rows.append(("  kernel 2: one reverse sweep, both cotangents", seconds, None, None))
    unfused_args = (architecture, theta, x, target, 0.01)
    seconds = median_seconds(unfused_score_free_gradient, *unfused_args, repeats=repeats // 5)
    rows.append(("  unfused: map, hessian, Cholesky, 2 VJPs", seconds, None, None))
    factors = np.broadcast_to(np.eye(2), (100, 2, 2))
    seconds = median_seconds(hessian_vjp, architecture, theta, x, factors, repeats=repeats // 5)
    rows.append(("  of which hessian_vjp", seconds, None, None))
    seconds = median_seconds(hessian, architecture, theta, x, repeats=repeats // 5)
    rows.append(("  of which hessian", seconds, None, None))
    ratios.append(
        (
            "score-free KL gradient / map_vjp, n=100",
            median_ratio(lambda: kl_gradient(*kl_args), lambda: net.map_vjp(x, u), repeats),
            3.0,
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
    return rows, ratios


def print_table(rows) -> None:
    print(f"{'computation':46s} {'numba':>12s} {'numpy':>12s} {'speed-up':>9s} {'goal':>12s}")
    for name, fast, slow, goal in rows:
        slow_text = _format(slow) if slow is not None else " " * 12
        ratio = f"{slow / fast:8.1f}x" if slow is not None else " " * 9
        goal_text = ""
        if goal is not None:
            goal_text = f"<= {_format(goal).strip()} {'met' if fast <= goal else 'MISSED'}"
        print(f"{name:46s} {_format(fast):>12s} {slow_text:>12s} {ratio:>9s}  {goal_text}")


def print_ratios(ratios) -> None:
    print(f"{'ratio, alternating calls (median of pairs)':46s} {'ratio':>12s}")
    for name, value, goal in ratios:
        goal_text = "" if goal is None else f"<= {goal:g} {'met' if value <= goal else 'MISSED'}"
        print(f"{name:46s} {value:11.2f}x  {goal_text}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    arguments = parser.parse_args(argv)
    print(machine_description())
    rows, ratios = run(quick=arguments.quick)
    print_table(rows)
    print_ratios(ratios)
    print(f"load average at the end: {_load_average()}")


if __name__ == "__main__":
    main()
