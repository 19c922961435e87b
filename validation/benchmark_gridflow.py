"""Speed of the grid solver's kernels: `python -m validation.benchmark_gridflow`.

Medians over repeats, compile time excluded (every kernel runs once before timing):
- one implicit step (3.2) with 10⁴ nodes: Newton's method and the cvxpy conic program;
- the projection onto K_h: the isotonic fast path against the cvxpy reference (polished),
  at 10⁴ and 10⁵ nodes;
- the numba kernel of the weighted KL gradient against the same formula in numpy;
- the exact Gaussian constrained flow in d = 50 up to t = 10;
- d = 2: one implicit step (Newton in φ) at 65² and 129² nodes, one factorization of the
  Newton matrix (at a map off the identity, with the sparsity of Newton's) at 129² and 257²
  in nested-dissection order against SuperLU's minimum degree,
  the weighted Helmholtz projection at 257², and the numba log-det gradient against numpy
  (sparse B_hᵀ) at 257²;
- with `--groundtruth 129 257` (513 is opt-in: minutes), `python -m gridflow groundtruth` of
  the paper's mixture at those sizes (all the grids it solves), each once in a fresh
  process, with its error estimate, the process's peak resident memory and processor time.

Rows with a goal (issue #12) print it in the last column. `--only 1d` or `--only 2d` runs
one half.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import platform
import resource
import statistics
import time

import numpy as np

from gridflow.cones import project_onto_cone
from gridflow.examples import paper_mixture, problem_1d, problem_2d
from gridflow.functionals import log_det_gradient, log_det_gradient_1d
from gridflow.groundtruth import build_ground_truth, grid_cascade
from gridflow.memory import peak_resident_memory
from gridflow.potentials import (
    GaugedFactorization,
    helmholtz_projection,
    metric,
    metric_factorization,
)
from gridflow.proximal import newton_matrix_2d, proximal_step
from validation.gaussian_checks import benchmark_gaussian_flow


def median_seconds(function, repeats: int) -> float:
    function()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def numpy_log_det_gradient(T, hessian_weights):
    """The log-det part of the gradient of F_h with numpy array operations (the reference)."""
    increments = np.diff(T)
    if np.any(increments <= 0):
        return np.full(T.shape, np.nan)
    slopes = hessian_weights / increments
    gradient = np.zeros(T.shape[0])
    gradient[:-1] += slopes
    gradient[1:] -= slopes
    return gradient


def numpy_log_det_gradient_2d(problem, T):
    """The gradient of -Σ m log det(B_h T) as B_hᵀ[m (-c, 2b, -a) / det] with numpy/scipy."""
    a, b, c = (problem.map_hessian_operator @ T.ravel()).reshape(-1, 3).T
    determinant = a * c - b * b
    partial = problem.hessian_weights[:, None] * np.stack([-c, 2 * b, -a], axis=1)
    return (problem.map_hessian_operator.T @ (partial / determinant[:, None]).ravel()).reshape(
        T.shape
    )


# issue #12: the goals (seconds on an idle machine; L²(ϱ0) error estimates)
GOALS = {
    "implicit step 129": "<= 3 s",
    "projection 257": "<= 1 s",
    "groundtruth 129": "<= 8 s",
    "groundtruth 257": "<= 60 s, error <= 1.5e-3",
    "groundtruth 513": "<= 480 s, error <= 4e-4",
}


def rows_2d(repeats):
    rows = []
    for nodes in (65, 129):
        problem = problem_2d(nodes)
        center = problem.identity()
        seconds = median_seconds(lambda p=problem, c=center: proximal_step(p, c, 0.5), repeats)
        label = f"2D implicit step, {nodes}^2 nodes, Newton in phi"
        rows.append((label, seconds, None, GOALS.get(f"implicit step {nodes}")))
    for nodes in (129, 257):
        problem = problem_2d(nodes, source=paper_mixture(), box=(-6.0, 6.0))
        # off the identity, where the log-det curvature blocks vanish off their diagonal and
        # the matrix has half the entries of those Newton factorizes (about 408 000 at 129²)
        T = problem.map_of(problem.identity_potential() + 0.05 * np.cos(problem.grid.nodes).prod(1))
        matrix = newton_matrix_2d(problem, T, np.inf, T)
        for ordering in ("mmd", "nested-dissection"):
            seconds = median_seconds(
                lambda p=problem, m=matrix, o=ordering: GaugedFactorization(p, m, o), repeats
            )
            ratio = None if ordering == "mmd" else rows[-1][1] / seconds
            label = f"Newton matrix factorization, {nodes}^2, {ordering} order"
            rows.append((label, seconds, ratio, None))
    problem = problem_2d(257)
    v = np.random.default_rng(0).standard_normal(problem.points.shape)
    metric_factorization(problem)  # factorized once per problem; timed separately
    first = median_seconds(lambda: GaugedFactorization(problem, metric(problem)), 1)
    solve = median_seconds(lambda: helmholtz_projection(problem, v), repeats)
    rows.append(("Helmholtz projection, 257^2, factorization (once per problem)", first, None))
    rows.append(
        ("Helmholtz projection, 257^2, each projection", solve, None, GOALS["projection 257"])
    )
    T = problem.map_of(problem.identity_potential() + 0.05 * np.cos(problem.grid.nodes).sum(1))
    kernel = median_seconds(lambda: log_det_gradient(problem, T), repeats * 4)
    plain = median_seconds(lambda: numpy_log_det_gradient_2d(problem, T), repeats * 4)
    rows.append(("2D log-det gradient of F_h, 257^2, numba", kernel, None))
    rows.append(("2D log-det gradient of F_h, 257^2, numpy + scipy.sparse", plain, plain / kernel))
    return rows


def _processor_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed_ground_truth(nodes: int):
    """build_ground_truth of the paper's mixture (the CLI's defaults), in this process:
    (seconds, processor seconds, error estimate, peak resident memory in MiB)."""

    started, processor = time.perf_counter(), _processor_seconds()
    _, metadata = build_ground_truth("paper-mixture", "standard", nodes, 6.0, 1e-6, progress=False)
    seconds, processor = time.perf_counter() - started, _processor_seconds() - processor
    return seconds, processor, metadata["error_estimate"], peak_resident_memory() / 2**20


def rows_ground_truth(sizes):
    """One fresh process per size, so that each peak memory is its own. The processor time
    of the process is printed too: with one thread it is what an idle machine would take,
    where the wall time of a loaded one is longer."""

    rows = []
    context = multiprocessing.get_context("spawn")
    for nodes in sizes:
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
            seconds, processor, estimate, peak = pool.submit(_timed_ground_truth, nodes).result()
        grids = " + ".join(f"{n}^2" for n in grid_cascade(nodes))
        label = (
            f"ground truth {grids}, error estimate {estimate:.2e}, peak RSS {peak:.0f} MiB, "
            f"processor {processor:.0f} s"
        )
        rows.append((label, seconds, None, GOALS.get(f"groundtruth {nodes}")))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", choices=("1d", "2d"))
    parser.add_argument(
        "--groundtruth",
        type=int,
        nargs="+",
        default=[],
        metavar="NODES",
        help="also time the mixture's ground truth at these sizes (129 257; 513 takes minutes)",
    )
    arguments = parser.parse_args(argv)
    repeats = arguments.repeats
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; medians of {repeats} runs"
    )
    rows = [] if arguments.only == "1d" else rows_2d(repeats)
    rows += rows_ground_truth(arguments.groundtruth)
    if arguments.only == "2d":
        return print_rows(rows)

    problem = problem_1d(10_001)
    center = problem.identity()
    newton = median_seconds(lambda: proximal_step(problem, center, 0.5), repeats)
    conic = median_seconds(
        lambda: proximal_step(problem, center, 0.5, solver="cvxpy"), max(1, repeats // 2)
    )
    rows.append(("implicit step, 10^4 nodes, Newton", newton, None))
    rows.append(("implicit step, 10^4 nodes, cvxpy/Clarabel", conic, conic / newton))

    for nodes in (10_001, 100_001):
        problem = problem_1d(nodes)
        v = problem.identity() + 0.5 * np.random.default_rng(0).standard_normal((problem.size, 1))
        fast = median_seconds(lambda p=problem, v=v: project_onto_cone(p, v), repeats)
        reference = median_seconds(
            lambda p=problem, v=v: project_onto_cone(p, v, method="cvxpy"), max(1, repeats // 2)
        )
        label = f"projection onto K_h, 10^{len(str(nodes - 1)) - 1} nodes"
        rows.append((f"{label}, isotonic", fast, None))
        rows.append((f"{label}, cvxpy + polish", reference, reference / fast))

    problem = problem_1d(100_001)
    T = (problem.identity() + 0.1 * np.sin(problem.identity()))[:, 0]
    m = problem.hessian_weights
    kernel = median_seconds(lambda: log_det_gradient_1d(T, m), repeats * 4)
    plain = median_seconds(lambda: numpy_log_det_gradient(T, m), repeats * 4)
    rows.append(("log-det gradient of F_h, 10^5 nodes, numba", kernel, None))
    rows.append(("log-det gradient of F_h, 10^5 nodes, numpy", plain, plain / kernel))

    flow = benchmark_gaussian_flow(dim=50, t_end=10.0, num_times=200, repeats=repeats)
    rows.append(("Gaussian flow, d = 50, t in [0, 10], 200 times", flow["median_seconds"], None))
    return print_rows(rows)


def print_rows(rows):
    """rows: (label, seconds, ratio to the row above or None[, goal or None])."""
    width = max(len(r[0]) for r in rows)
    print(f"{'kernel'.ljust(width)} | median (s) | ratio to the line above | goal")
    for label, seconds, ratio, *goal in rows:
        ratio_text = "" if ratio is None else f"{ratio:.1f}x"
        goal_text = goal[0] if goal and goal[0] else ""
        print(f"{label.ljust(width)} | {seconds:10.4g} | {ratio_text:23} | {goal_text}")


if __name__ == "__main__":
    main()
