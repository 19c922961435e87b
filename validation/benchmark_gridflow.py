"""Speed of the grid solver's kernels: `python -m validation.benchmark_gridflow`.

Medians over repeats, compile time excluded (every kernel runs once before timing):
- one implicit step (3.2) with 10⁴ nodes: Newton's method and the cvxpy conic program;
- the projection onto K_h: the isotonic fast path against the cvxpy reference (polished),
  at 10⁴ and 10⁵ nodes;
- the numba kernel of the weighted KL gradient against the same formula in numpy;
- the exact Gaussian constrained flow in d = 50 up to t = 10;
- d = 2: one implicit step (Newton in φ) at 65² and 129² nodes, one factorization of the
  Newton matrix (at a map off the identity, with the full 5 × 5 stencil pattern) at 129²
  and 257² by the three methods of `GaugedFactorization`: SuperLU in its minimum-degree
  order, SuperLU in nested-dissection order, and the multifrontal Cholesky factorization;
  the weighted Helmholtz projection at 257², and the numba log-det gradient against numpy
  (sparse B_hᵀ) at 257²;
- with `--groundtruth 129 257` (513 and 1025 are opt-in: minutes), the paper mixture's
  ground truth (`build_ground_truth` with the command's defaults, all the grids it solves)
  at those sizes, each in a fresh one-thread process, with its error estimate, peak
  resident memory and processor time; with `--before CHECKOUT` also by the package in
  that checkout (a worktree of an earlier release), in the same run.

- with `--three-d gaussian:33 gaussian:65 mixture:65`, the 3D goals of issue #20: the
  Gaussian pair's discrete maps from 17³ up to the size, with their errors against the
  closed form and the orders, and the 3D mixture's ground truth, each in a fresh one-thread
  process, with peak memory and processor time.

Rows with a goal (issues #12 and #20) print it in the last column. `--only 1d` or
`--only 2d` runs one half.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

from gridflow.cones import project_onto_cone
from gridflow.examples import paper_mixture, problem_1d, problem_2d
from gridflow.functionals import log_det_gradient, log_det_gradient_1d
from gridflow.groundtruth import grid_cascade
from gridflow.potentials import (
    FACTORIZATIONS,
    GaugedFactorization,
    helmholtz_projection,
    metric,
    metric_factorization,
)
from gridflow.proximal import newton_matrix, proximal_step
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
    "groundtruth 513": "<= 30 s processor, error <= 3e-4",
    "groundtruth 1025": "<= 240 s, error <= 1e-4, peak <= 8 GB",
    "gaussian3d 33": "<= 60 s",
    "gaussian3d 65": "<= 600 s, order >= 1.8",
    "mixture3d 65": "<= 600 s, with its estimate",
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
        matrix = newton_matrix(problem, T, np.inf, T)
        for method in FACTORIZATIONS[::-1]:  # SuperLU's two, then the multifrontal one
            seconds = median_seconds(
                lambda p=problem, m=matrix, o=method: GaugedFactorization(p, m, o), repeats
            )
            ratio = None if method == "mmd" else rows[-1][1] / seconds
            label = f"Newton matrix factorization, {nodes}^2, {method}"
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


_GROUND_TRUTH_RUN = """
import json, resource, sys, time
import gridflow
from gridflow.groundtruth import build_ground_truth
started, usage = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
_, metadata = build_ground_truth("paper-mixture", "standard", int(sys.argv[1]), 6.0, 1e-6,
                                 progress=False)
after = resource.getrusage(resource.RUSAGE_SELF)
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
            if line.startswith("VmHWM:"))
print(json.dumps({"package": gridflow.__file__, "seconds": time.perf_counter() - started,
                  "estimate": metadata["error_estimate"], "peak": peak, "processor":
                  after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime}))
"""
"""build_ground_truth of the paper's mixture with the CLI's defaults, timed in the process that
runs it: wall and processor seconds, the error estimate, the peak resident memory (VmHWM,
Linux; not ru_maxrss, which Linux keeps across exec). Only the package's public function,
so that an earlier release (``--before``) runs it too."""


def timed_ground_truth(nodes: int, checkout: pathlib.Path) -> dict:
    """One ground truth at ``nodes`` by the package in ``checkout``, in a fresh process with
    one thread started in the checkout (the working directory comes first on the import
    path: started elsewhere, the process could import another checkout's package, which is
    refused): its own peak memory, compile caches warm from earlier runs."""
    environment = dict(os.environ, PYTHONPATH=str(checkout.resolve()), NUMBA_NUM_THREADS="1",
                       OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", _GROUND_TRUTH_RUN, str(nodes)], cwd=checkout,
                          env=environment, capture_output=True, text=True)  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"the ground truth of {checkout} failed:\n{done.stderr[-2000:]}")
    run = json.loads(done.stdout.splitlines()[-1])
    if not pathlib.Path(run["package"]).resolve().is_relative_to(checkout.resolve()):
        raise RuntimeError(f"{checkout}'s run imported gridflow from {run['package']}")
    return run


def rows_ground_truth(sizes, before: pathlib.Path | None = None):
    """Per size: with ``before``, that checkout's ground truth, then this checkout's, in the
    same run (the ratio column: processor time before / now). The processor time is printed
    too: with one thread it is what an idle machine would take, where the wall time of a
    loaded one is longer."""
    here = pathlib.Path(__file__).resolve().parent.parent
    rows = []
    for nodes in sizes:
        runs = ([("before: " + str(before), before)] if before else []) + [("this", here)]
        results = [(name, timed_ground_truth(nodes, checkout)) for name, checkout in runs]
        grids = " + ".join(f"{n}^2" for n in grid_cascade(nodes))
        for name, run in results:
            now = name == "this"
            ratio = results[0][1]["processor"] / run["processor"] if now and before else None
            label = (
                f"ground truth {grids} ({name}), error estimate {run['estimate']:.2e}, peak RSS "
                f"{run['peak'] / 2**20:.0f} MiB, processor {run['processor']:.1f} s"
            )
            rows.append(
                (label, run["seconds"], ratio, GOALS.get(f"groundtruth {nodes}") if now else None)
            )
    return rows


_THREE_D_RUN = """
import json, resource, sys, time
import numpy as np
from gridflow import gaussian, minimize
from gridflow.examples import gaussian_pair_3d, mixture_3d, problem_3d
from gridflow.groundtruth import build_ground_truth
kind, nodes = sys.argv[1], int(sys.argv[2])
def processor():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
started = processor()
if kind == "mixture":
    _, metadata = build_ground_truth(mixture_3d(), "standard", nodes, 6.0, 1e-6, progress=False)
    result = {"estimate": metadata["error_estimate"]}
else:
    A, b = gaussian.ot_map(*gaussian_pair_3d())
    errors, previous = {}, None
    for size in [17, 33, 65, 129][: [17, 33, 65, 129].index(nodes) + 1]:
        problem = problem_3d(size)
        previous = minimize(problem, coarser=previous)
        errors[size] = problem.norm(previous.map - problem.points @ A.T - b)
    result = {"errors": errors}
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
            if line.startswith("VmHWM:"))
print(json.dumps({**result, "processor": processor() - started, "peak": peak}))
"""
"""A 3D run in a fresh one-thread process: the Gaussian pair's discrete maps from 17³ up to
the size (each started from the one before), with their errors against the closed form, or
the mixture's ground truth (`build_ground_truth`, the command's defaults)."""


def rows_3d(kinds_and_sizes):
    """The 3D goals of issue #20, each run in a fresh process of this checkout."""
    here = pathlib.Path(__file__).resolve().parent.parent
    environment = dict(os.environ, PYTHONPATH=str(here), NUMBA_NUM_THREADS="1",
                       OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")  # fmt: skip
    rows = []
    for kind, nodes in kinds_and_sizes:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", _THREE_D_RUN, kind, str(nodes)], cwd=here,
                              env=environment, capture_output=True, text=True)  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"the 3D {kind} run at {nodes}³ failed:\n{done.stderr[-2000:]}")
        run = json.loads(done.stdout.splitlines()[-1])
        if kind == "mixture":
            detail = f"mixture ground truth {nodes}^3, error estimate {run['estimate']:.2e}"
        else:
            errors = {int(n): e for n, e in run["errors"].items()}
            sizes = sorted(errors)
            orders = [np.log2(errors[a] / errors[b]) for a, b in itertools.pairwise(sizes)]
            detail = (
                f"Gaussian pair {' -> '.join(f'{n}^3' for n in sizes)}, errors "
                f"{', '.join(f'{errors[n]:.2e}' for n in sizes)}, orders "
                f"{', '.join(f'{o:.2f}' for o in orders)}"
            )
        label = (
            f"3D {detail}, peak RSS {run['peak'] / 2**20:.0f} MiB, processor "
            f"{run['processor']:.1f} s"
        )
        goal = GOALS.get(f"{'mixture3d' if kind == 'mixture' else 'gaussian3d'} {nodes}")
        rows.append((label, time.perf_counter() - started, None, goal))
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
        help="also time the mixture's ground truth at these sizes (129 257; 513 and 1025 "
        "take minutes)",
    )
    parser.add_argument(
        "--before",
        type=pathlib.Path,
        metavar="CHECKOUT",
        help="also time the ground truths of the package in this checkout (e.g. a worktree "
        "of v0.3.0), in the same run; the ratio column is its processor time over this one's",
    )
    parser.add_argument(
        "--three-d",
        nargs="+",
        default=[],
        metavar="KIND:NODES",
        help="also time 3D runs: gaussian:33, gaussian:65 (the Gaussian pair from 17³ up, with "
        "the errors against the closed form), mixture:65 (the mixture's ground truth); minutes",
    )
    arguments = parser.parse_args(argv)
    three_d = []
    for item in arguments.three_d:
        kind, _, nodes = item.partition(":")
        if kind not in ("gaussian", "mixture") or not nodes.isdigit():
            parser.error(f"--three-d takes gaussian:NODES or mixture:NODES, got {item!r}")
        three_d.append((kind, int(nodes)))
    repeats = arguments.repeats
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; medians of {repeats} runs"
    )
    rows = [] if arguments.only == "1d" else rows_2d(repeats)
    rows += rows_ground_truth(arguments.groundtruth, arguments.before)
    rows += rows_3d(three_d)
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
