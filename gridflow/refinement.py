"""Solves refined by preconditioned conjugate gradients, to a float64 factorization's accuracy
or to the relative residual a Newton step asks (its forcing term).

The preconditioner is a Cholesky factor of a nearby matrix: a float32 factor of the matrix
itself (mixed precision, below), or the factor of an earlier Newton step's matrix
(`GaugedFactorization.solve_nearby`). Either pays while the iterations cost less than a new
factorization (`solves_per_factorization`).

The dense work of the multifrontal factorization runs twice as fast in float32 as in
float64 and its factor takes half the memory. A factor L computed in float32 is the exact
factor of a nearby matrix, L Lᵀ = A + E with ‖E‖ a modest multiple of float32's roundoff
(6e-8) times ‖A‖, so M = L Lᵀ is a preconditioner for A whose eigenvalues relative to A are
1 + O(6e-8 κ(A)) times that multiple: conjugate
gradients on A x = b preconditioned by M (the solves with L in float64 arithmetic) reduce
the residual by about that factor per iteration, and a few iterations reach the accuracy
of a float64 factorization. When they do not (a matrix too ill-conditioned for float32,
whose factorization may even break down), the matrix is factorized in float64 instead.
docs/performance.md ("Three dimensions") has the measurements that set
`MIXED_PRECISION_INTENSITY` and `FLOPS_PER_ENTRY_PER_SOLVE` and the iteration counts on the
Newton systems.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gridflow import cholesky, stencils
from gridflow.fronts import FrontStructure, front_structure

BACKWARD_ERROR = 2.0**-52
"""The refined solves stop once x solves a matrix and a right-hand side within this relative
distance of A and b (the normwise backward error ‖A x − b‖∞ / (‖A‖∞ ‖x‖∞ + ‖b‖∞), float64's
machine epsilon): what a float64 factorization's solve attains, 3e-17 to 1.8e-16 on the 13
Newton systems of the 33³ Gaussian pair."""

ACCEPTED_BACKWARD_ERROR = 1e-14
"""A refinement that stagnates above BACKWARD_ERROR is kept if its backward error is below
this; else the matrix is factorized in float64. Stagnation is only looked for below it: the
largest residual entry of conjugate gradients does not shrink at every iteration."""

MAX_ITERATIONS = 30
"""The refinement's limit where `solves_per_factorization` allows fewer (3D grids below
45³): on small grids a factorization costs more solves than its flops say (at 33³ about 28:
2.4 s against 0.085 s)."""

MIXED_PRECISION_INTENSITY = 1000.0
"""The flops per factor entry (`FrontStructure.flops`, `factor_entries`) from which
`choose_precision` picks mixed precision. A float32
factorization saves about 1e-11 s per flop (80 against 45 GFlop/s on one core here) and each
refinement iteration beyond the first costs a solve, about 1.4e-9 s per factor entry: with
the 4 to 7 iterations of the 33³ Newton systems, mixed precision pays above about 600 to
900 flops per entry. Measured: the 33³ Gaussian pair (1300 flops per entry) 20 % faster, the
2D cascade up to 1025² (680) no faster and 0.5 GiB larger (docs/performance.md, "Three
dimensions")."""


FLOPS_PER_ENTRY_PER_SOLVE = 80.0
"""A float64 factorization costs about as many solves with a factor as its flops per factor
entry divided by this. At 65³ (4679 flops per entry, 58 solves by this rule) a float64
factorization takes about 91 s, a float32 one with its refinement about 65 s, a solve 1.25 s
with a float32 factor and 1.65 s with a float64 one: 55 to 73 solves."""


def solves_per_factorization(structure: FrontStructure) -> int:
    """How many solves with a factor (iterations of conjugate gradients) cost about as much
    as a float64 factorization of the grid's matrices: the most a refinement, or a solve with
    an earlier step's factor, may take before a new factorization is the cheaper way."""
    return int(structure.flops / max(structure.factor_entries, 1) / FLOPS_PER_ENTRY_PER_SOLVE)


def refinement_limit(structure: FrontStructure) -> int:
    """The iterations a float32 factor's refinement may take: as many as a float64
    factorization costs (`solves_per_factorization`), at least MAX_ITERATIONS."""
    return max(MAX_ITERATIONS, solves_per_factorization(structure))


def choose_precision(structure: FrontStructure) -> str:
    """ "mixed" where the dense work per factor entry makes float32 pay for its refinement,
    else "double"."""
    intensity = structure.flops / max(structure.factor_entries, 1)
    return "mixed" if intensity >= MIXED_PRECISION_INTENSITY else "double"


class IterativeSolve(NamedTuple):
    """What `conjugate_gradients` returns: the solution, the iterations taken, its backward
    error recomputed from A x − rhs, and whether it is accepted: a backward error of at most
    ACCEPTED_BACKWARD_ERROR, or the forcing term's relative residual reached."""

    solution: np.ndarray
    iterations: int
    backward_error: float
    converged: bool


def _iterations_left(start, now, goal, iterations):
    """The further iterations that a quantity falling from `start` to `now` in `iterations`
    would take to reach `goal` at its mean rate so far (inf when it does not fall)."""
    rate = (now / start) ** (1.0 / iterations)
    if not rate < 1.0:
        return np.inf
    return max(np.log(goal / now) / np.log(rate), 0.0)


def conjugate_gradients(
    multiply, precondition, rhs, matrix_norm, max_iterations, forcing=None
) -> IterativeSolve:
    """Preconditioned conjugate gradients for A x = rhs from x = 0, to float64's accuracy
    or to a Newton step's forcing term.

    multiply(p) = A p and precondition(r) = M r ≈ A⁻¹ r for a symmetric positive definite A
    with ‖A‖∞ = matrix_norm, rhs (N,). Stops once the recursively updated residual r gives a
    backward error ‖r‖∞ / (‖A‖∞ ‖x‖∞ + ‖rhs‖∞) ≤ BACKWARD_ERROR; after max_iterations; when
    it is not finite; or when, already below ACCEPTED_BACKWARD_ERROR, it has not improved
    for two iterations (its roundoff floor); or when, from a third of max_iterations on, its
    mean reduction per iteration so far would need more than max_iterations in all to reach
    BACKWARD_ERROR, or the forcing term's residual when one is given (the caller's
    factorization is then the cheaper way; earlier iterations can be slower than later ones).

    `forcing` makes the solve inexact, for a Newton step whose rhs is the gradient g:
    forcing(gᵀMg) is the relative residual η the step needs (gᵀMg estimates the Newton
    decrement gᵀA⁻¹g), and the iterations also stop once rᵀMr ≤ η² gᵀMg, the residual's
    size in the norm of A⁻¹ as M measures it. η = 0, or a gᵀMg that is not finite and
    positive (a preconditioner that is not positive definite), asks for float64's accuracy.
    """
    x = np.zeros_like(rhs)
    rhs_norm = np.abs(rhs).max(initial=0.0)
    if rhs_norm == 0.0:
        return IterativeSolve(x, 0, 0.0, True)

    def backward_error(residual):
        return np.abs(residual).max() / (matrix_norm * np.abs(x).max() + rhs_norm)

    residual = rhs.copy()
    z = precondition(residual)
    direction = z.copy()
    rz = residual @ z
    initial_energy = rz
    eta = forcing(initial_energy) if forcing is not None and 0.0 < initial_energy < np.inf else 0.0
    target_energy = eta**2 * initial_energy if eta > 0.0 else 0.0
    if not target_energy > 0.0:  # also NaN, and an η² gᵀMg that underflows
        target_energy = None
    best, stalled, iterations, first, reached = np.inf, 0, 0, None, False
    while iterations < max_iterations:
        iterations += 1
        product = multiply(direction)
        step = rz / (direction @ product)
        x += step * direction
        residual -= step * product
        error = backward_error(residual)
        if error <= BACKWARD_ERROR or not np.isfinite(error):
            break
        if target_energy is not None:  # the next preconditioned residual, needed now
            z = precondition(residual)
            next_rz = residual @ z
            if 0.0 <= next_rz <= target_energy:
                reached = True
                break
        first = error if first is None else first
        if iterations >= max(max_iterations // 3, 2) and error > ACCEPTED_BACKWARD_ERROR:
            left = _iterations_left(first, error, BACKWARD_ERROR, iterations - 1)
            if target_energy is not None and next_rz > 0.0:
                left = min(
                    left, _iterations_left(initial_energy, next_rz, target_energy, iterations)
                )
            if iterations + left > max_iterations:
                break
        stalled = stalled + 1 if error >= best and best <= ACCEPTED_BACKWARD_ERROR else 0
        best = min(best, error)
        if stalled >= 2:
            break
        if target_energy is None:
            z = precondition(residual)
            next_rz = residual @ z
        rz, previous = next_rz, rz
        direction = z + (rz / previous) * direction
    error = float(backward_error(multiply(x) - rhs))
    return IterativeSolve(x, iterations, error, reached or error <= ACCEPTED_BACKWARD_ERROR)


def one_rhs(rhs, size: int) -> np.ndarray:
    """rhs as a float64 vector (size,); a ValueError naming the shape otherwise."""
    if np.ndim(rhs) != 1 or np.shape(rhs)[0] != size:
        raise ValueError(f"rhs must have shape ({size},), got {np.shape(rhs)}")
    return np.asarray(rhs, dtype=float)


def grid_conjugate_gradients(
    values, shape, reach, precondition, rhs, max_iterations, norm=None, forcing=None
):
    """`conjugate_gradients` for the grid matrix of stencil values (N, K) (`gridflow.stencils`;
    its ‖A‖∞ computed unless given as `norm`) and a right-hand side (N,)."""
    if norm is None:
        norm = stencils.infinity_norm(values)
    return conjugate_gradients(
        lambda p: stencils.multiply(values, p, shape, reach),
        precondition,
        one_rhs(rhs, values.shape[0]),
        norm,
        max_iterations,
        forcing,
    )


class MixedPrecisionSolver:
    """Solves with a grid matrix's float32 factor, refined to float64 accuracy (or to a Newton
    step's forcing term).

    `values` are the matrix's stencil values (float64; `gridflow.stencils`), kept for the
    products of the refinement. The float32 factorization runs at construction: a
    numpy.linalg.LinAlgError (not positive definite in float32) falls back to float64 at
    once. A solve whose refinement does not reach ACCEPTED_BACKWARD_ERROR within the
    iterations that a float64 factorization costs (`max_iterations`, `refinement_limit`)
    factorizes the matrix in float64,
    and that factor serves this and every later solve: the one state that changes. Either
    float64 factorization raises LinAlgError when the matrix is not positive definite in
    float64 either (`GaugedFactorization` then turns to SuperLU). `reuse` as in
    `cholesky.cholesky`.
    """

    def __init__(self, values, shape, reach, reuse=None):
        self.values, self.shape, self.reach = values, tuple(shape), reach
        self.norm = stencils.infinity_norm(values)
        self.iterations = []  # per solve: refinement iterations, or 0 for a float64 solve
        self.max_iterations = refinement_limit(front_structure(self.shape, reach))
        try:
            self.factor = cholesky.cholesky(values, shape, reach, reuse, dtype=np.float32)
        except np.linalg.LinAlgError:
            self.factor = cholesky.cholesky(values, shape, reach, reuse)

    @property
    def precision(self) -> str:
        """ "mixed" while the float32 factor serves, "double" after a fallback."""
        factor = self.factor
        return "mixed" if factor is not None and factor.diagonal.dtype == np.float32 else "double"

    def solve(self, rhs: np.ndarray, forcing=None) -> np.ndarray:
        """A⁻¹ rhs for rhs (N,), with a backward error of at most ACCEPTED_BACKWARD_ERROR (as
        a rule BACKWARD_ERROR, a float64 factorization's), or to the relative residual of a
        Newton step's `forcing` term (`conjugate_gradients`)."""
        rhs = one_rhs(rhs, self.values.shape[0])
        if self.precision == "mixed":
            refined = grid_conjugate_gradients(
                self.values,
                self.shape,
                self.reach,
                self.factor.solve,
                rhs,
                self.max_iterations,
                self.norm,
                forcing,
            )
            if refined.converged:
                self.iterations.append(refined.iterations)
                return refined.solution
            self.factor = None  # its memory is freed before the float64 factor's is taken
            self.factor = cholesky.cholesky(self.values, self.shape, self.reach)
        self.iterations.append(0)
        return self.factor.solve(rhs)
