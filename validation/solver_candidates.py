"""Sparse solvers on the grid solver's Newton systems: `python -m validation.solver_candidates`.

For each --nodes N, the paper mixture's ground truth is built as `build_ground_truth` builds
it (the N × N grid started from the coarser ones), and the first and the last Newton system
of the N × N grid are recorded (with the continuation in the density floor, at small N: the
first of its first run, the last of its last). For each system and candidate the table gives
the seconds of the one-off analysis where a library separates it (timed once; qdldl's
`Solver` includes a first factorization), the median over --repeats (after an untimed run)
of the factorization (the refactorization where there is an analysis; the setup for AMG)
and of one solve (one CG run for AMG), relres = ‖Sy − b‖/‖b‖ in the reduced scaled system
S y = b (the free nodes scaled to unit diagonal, as GaugedFactorization's SuperLU methods
factorize it), and ‖y − y_ref‖_S/‖y_ref‖_S against the "nested-dissection" solution.

Candidates: the three methods of `GaugedFactorization`, timed as the class itself; then on S,
each if importable: pypardiso (MKL PARDISO, real SPD; its private `_call_pardiso`, which also
copies the indices), cholespy (CHOLMOD), qdldl, and CG preconditioned by pyamg's smoothed
aggregation (to relres CG_TOLERANCE in at most CG_MAX_ITER iterations). With one thread:

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \\
        python -m validation.solver_candidates --nodes 129 257 --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import os
import platform
import statistics
import time
from importlib import metadata
from typing import NamedTuple
from unittest import mock

import numpy as np
from scipy import sparse
from scipy.sparse import linalg as sparse_linalg

from gridflow.cli import integer
from gridflow.groundtruth import build_ground_truth, check_nodes
from gridflow.potentials import FACTORIZATIONS, GaugedFactorization, free_nodes
from gridflow.proximal import NEWTON_REACH
from gridflow.stencils import to_csr

CG_TOLERANCE = 1e-10
CG_MAX_ITER = 500
THREADS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
REFERENCE = "nested-dissection"


class System(NamedTuple):
    """A Newton system: the problem, matrix (N × N) and gradient, and its reduced scaled form
    S y = b with S = D A_ff D, b = D g_f, D = diag(A_ff)^(-1/2) on the free nodes f."""

    label: str
    problem: object
    matrix: sparse.csr_matrix
    rhs: np.ndarray
    S: sparse.csr_matrix
    b: np.ndarray
    free: np.ndarray
    scale: np.ndarray


class Measurement(NamedTuple):
    """Seconds (None where a stage does not exist), the reduced solution, and a note."""

    analysis: float | None
    factorization: float
    solve: float
    solution: np.ndarray
    note: str = ""


def make_system(label: str, problem, matrix, rhs) -> System:
    """The System of (problem, matrix, gradient), reduced as GaugedFactorization's SuperLU path
    reduces it (free nodes in natural order)."""
    free = free_nodes(problem)
    reduced = matrix.tocsr()[free][:, free]
    scale = 1.0 / np.sqrt(reduced.diagonal())
    S = sparse.csr_matrix(sparse.diags(scale) @ reduced @ sparse.diags(scale))
    S.sort_indices()
    return System(label, problem, matrix, rhs, S, scale * rhs[free], free, scale)


@contextlib.contextmanager
def recording_newton_systems(shape: tuple[int, int]):
    """Yields a dict that gets the first and the last (problem, matrix, gradient) that
    gridflow.proximal solves on a grid of `shape`, and "steps": their number."""
    record = {"steps": 0}

    class Recording(GaugedFactorization):
        def __init__(self, problem, matrix, *args, **kwargs):
            super().__init__(problem, matrix, *args, **kwargs)
            if not sparse.issparse(matrix):  # Newton's stencil values (proximal.newton_stencil)
                matrix = to_csr(matrix, problem.grid.shape, NEWTON_REACH)
            self.system = (problem, matrix)

        def solve(self, rhs, forcing=None):
            if self.system[0].grid.shape == shape:
                record.setdefault("first", (*self.system, rhs))
                record["last"] = (*self.system, rhs)
                record["steps"] += 1
            return super().solve(rhs, forcing)

    with mock.patch("gridflow.proximal.GaugedFactorization", Recording):
        yield record


def capture(nodes: int) -> tuple[list[System], int]:
    """The first and the last Newton system of the nodes × nodes grid of the paper mixture's
    ground truth, and the number of Newton systems solved on that grid."""
    with recording_newton_systems((nodes, nodes)) as record:
        build_ground_truth("paper-mixture", "standard", nodes, None, 1e-6, progress=False)
    systems = [make_system(f"{nodes}² {which}", *record[which]) for which in ("first", "last")]
    return systems, record["steps"]


def timed(function, repeats: int):
    """(the last result, the median seconds of `repeats` calls after an untimed one)."""
    result, samples = function(), []
    for _ in range(repeats):
        result, seconds = once(function)
        samples.append(seconds)
    return result, statistics.median(samples)


def once(function):
    """(the result, the seconds) of one call."""
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def measure_builtin(method: str, system: System, repeats: int) -> Measurement:
    """GaugedFactorization(problem, matrix, method) and its solve of the gradient."""
    make = functools.partial(GaugedFactorization, system.problem, system.matrix, method)
    factor, factorization = timed(make, repeats)
    solution, solve = timed(lambda: factor.solve(system.rhs), repeats)
    return Measurement(None, factorization, solve, solution[system.free] / system.scale)


def measure_pardiso(system: System, repeats: int) -> Measurement:
    """MKL PARDISO on S's upper triangle: analysis once, then refactorizations and solves."""
    import pypardiso

    solver, upper = pypardiso.PyPardisoSolver(mtype=2), sparse.triu(system.S, format="csr")

    def phase(number):  # pypardiso's API has no refactorization: its private call
        solver.set_phase(number)
        return solver._call_pardiso(upper, system.b)

    _, analysis = once(lambda: phase(11))
    _, factorization = timed(lambda: phase(22), repeats)
    solution, solve = timed(lambda: phase(33), repeats)
    return Measurement(analysis, factorization, solve, solution)


def measure_cholespy(system: System, repeats: int) -> Measurement:
    """cholespy's CholeskySolverD (CHOLMOD, analysis included) on S's lower triangle."""
    import cholespy

    lower, n = sparse.tril(system.S, format="csc"), system.S.shape[0]
    arrays = (lower.indptr.astype(np.int32), lower.indices.astype(np.int32), lower.data)
    make = functools.partial(cholespy.CholeskySolverD, n, *arrays, cholespy.MatrixType.CSC)
    factor, factorization = timed(make, repeats)
    solution = np.zeros(n)
    _, solve = timed(lambda: factor.solve(system.b, solution), repeats)
    return Measurement(None, factorization, solve, solution)


def measure_qdldl(system: System, repeats: int) -> Measurement:
    """qdldl's LDLᵀ of S's upper triangle: Solver once, then `update` (numeric only)."""
    import qdldl

    upper = sparse.triu(system.S, format="csc")
    factor, analysis = once(lambda: qdldl.Solver(upper, upper=True))
    _, factorization = timed(lambda: factor.update(upper, upper=True), repeats)
    solution, solve = timed(lambda: factor.solve(system.b), repeats)
    return Measurement(analysis, factorization, solve, solution, "analysis incl. a factorization")


def measure_amg_cg(system: System, repeats: int) -> Measurement:
    """CG on S preconditioned by a V-cycle of pyamg's smoothed aggregation."""
    import pyamg

    hierarchy, setup = timed(lambda: pyamg.smoothed_aggregation_solver(system.S), repeats)
    steps, preconditioner = [], hierarchy.aspreconditioner()
    options = {"rtol": CG_TOLERANCE, "atol": 0.0, "maxiter": CG_MAX_ITER, "M": preconditioner}
    (solution, info), solve = once(
        lambda: sparse_linalg.cg(system.S, system.b, callback=lambda _: steps.append(1), **options)
    )
    verdict = "" if info == 0 else ": did not converge"
    return Measurement(None, setup, solve, solution, f"setup; {len(steps)} CG iterations{verdict}")


OPTIONAL = {
    "pypardiso": measure_pardiso,
    "cholespy": measure_cholespy,
    "qdldl": measure_qdldl,
    "pyamg": measure_amg_cg,
}


@functools.cache
def importable(name: str) -> bool:
    """Whether the optional package `name` imports."""
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def candidates() -> dict:
    """name → measure(system, repeats): the built-in methods, then the importable packages."""
    builtin = {method: functools.partial(measure_builtin, method) for method in FACTORIZATIONS}
    return builtin | {name: measure for name, measure in OPTIONAL.items() if importable(name)}


def compare(system: System, name: str, measurement: Measurement, reference: np.ndarray) -> dict:
    """The table row of one measurement: times, relres and the energy-norm difference."""
    S, y = system.S, measurement.solution
    difference = y - reference
    energy = np.sqrt(abs(difference @ (S @ difference)) / (reference @ (S @ reference)))
    relres = np.linalg.norm(S @ y - system.b) / np.linalg.norm(system.b)
    row = {"system": system.label, "candidate": name, **measurement._asdict()}
    return row | {"relres": float(relres), "energy diff": float(energy)}


def header() -> list[str]:
    """The machine, the threads, the versions, and the optional packages skipped."""
    found = ["numpy", "scipy", *(name for name in OPTIONAL if importable(name))]
    skipped = [name for name in OPTIONAL if not importable(name)]
    threads = [f"{key}={os.environ.get(key, 'unset')}" for key in THREADS]
    return [
        f"machine: {platform.node()}, {platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.platform()}, Python {platform.python_version()}; " + ", ".join(threads),
        "versions: " + ", ".join(f"{name} {metadata.version(name)}" for name in found),
        "skipped (not importable): " + (", ".join(skipped) or "none"),
    ]


def print_table(lines: list[str], rows: list[dict]) -> None:
    """The header lines, then one aligned row per (system, candidate); '—': no such stage."""
    formats = dict.fromkeys(["analysis", "factorization", "solve"], ".4g")
    formats |= dict.fromkeys(["relres", "energy diff"], ".1e")
    columns = ["system", "candidate", *formats, "note"]
    cells = [[format(r[c], formats.get(c, "")) if r[c] is not None else "—" for c in columns]
             for r in rows]  # fmt: skip
    widths = [max(map(len, column)) for column in zip(columns, *cells, strict=True)]
    print("\n".join(lines))
    for line in [columns, *cells]:
        print(" | ".join(map(str.ljust, line, widths)).rstrip())


def main(argv=None) -> list[dict]:
    """Capture, measure and print; returns the table's rows (times in seconds)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=check_nodes, nargs="+", default=[129, 257])
    parser.add_argument("--repeats", type=lambda text: integer(text, "repeats", 1), default=3)
    args = parser.parse_args(argv)
    measures, lines, rows = candidates(), header(), []
    lines.append(f"times in seconds; CG to relres {CG_TOLERANCE:g}, at most {CG_MAX_ITER} steps")
    for nodes in args.nodes:
        systems, steps = capture(nodes)
        lines.append(f"{nodes}²: {steps} Newton systems, n = {systems[0].S.shape[0]} free nodes")
        for system in systems:
            measured = {name: measure(system, args.repeats) for name, measure in measures.items()}
            reference = measured[REFERENCE].solution
            rows += [compare(system, name, m, reference) for name, m in measured.items()]
    print_table(lines, rows)
    return rows


if __name__ == "__main__":
    main()
