"""Linear algebra in the potential φ: the gauge, the metric D_hᵀ W D_h, Helmholtz projection.

A map T = D_h φ determines φ up to ker D_h (constants; in d = 2 also the checkerboard
mode). Setting φ to 0 at `Problem.gauge_nodes` removes that freedom, and every
symmetric system in φ below is solved on the remaining nodes. Since the right-hand sides
are gradients of functions of D_h φ, they are orthogonal to ker D_h, and the reduced
solution solves the full singular system.

The metric of the schemes, ‖D_h p‖²_w = pᵀ (D_hᵀ W D_h) p, makes the weighted projection
onto discrete gradient fields (the Helmholtz projection of (cons.gf) when no convexity
constraint is active) one sparse solve: (D_hᵀ W D_h) p = D_hᵀ W v.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import sparse
from scipy.sparse import linalg as sparse_linalg

from gridflow import cholesky, operators, refinement, stencils
from gridflow.fast_diagonalization import solve_gradient_normal_equations
from gridflow.problem import Problem


def free_nodes(problem: Problem) -> np.ndarray:
    """Flat indices of the nodes whose potential is unknown (all but the gauge nodes)."""
    return np.setdiff1d(np.arange(problem.gradient_operator.shape[1]), problem.gauge_nodes)


def weight_blocks(problem: Problem, blocks: np.ndarray) -> sparse.csr_matrix:
    """D_hᵀ blockdiag(blocks) D_h for blocks (n, d, d): a quadratic form on maps, in φ."""
    G = problem.gradient_operator
    return (G.T @ operators.block_diagonal(blocks) @ G).tocsr()


def metric(problem: Problem) -> sparse.csr_matrix:
    """D_hᵀ W D_h: the weighted norm ‖D_h p‖²_w as a quadratic form in p."""
    identity = np.broadcast_to(np.eye(problem.dim), (problem.size, problem.dim, problem.dim))
    return weight_blocks(problem, problem.weights[:, None, None] * identity)


def metric_factorization(problem: Problem) -> GaugedFactorization:
    """The factorization of D_hᵀ W D_h in the gauge, computed once per problem.

    The metric's stencil reaches one node, so its nested dissection cuts one layer.
    """
    cached = problem.derived.get("metric_factorization")
    if cached is None:
        cached = GaugedFactorization(problem, metric(problem), reach=1)
        problem.derived["metric_factorization"] = cached
    return cached


def scaled_in_gauge(problem: Problem, values: np.ndarray, reach: int):
    """S A S for A's stencil values (N, K) and S = diag(scale), scale = A's diagonal to the
    power −1/2 at the free nodes and 0 at the gauge nodes, whose rows and columns become
    the identity's: a matrix with unit diagonal, positive definite when A is on the free
    nodes. Returns (the scaled values, scale); LinAlgError for a nonpositive diagonal entry
    at a free node."""
    values = np.asarray(values, dtype=float)
    center = values.shape[1] // 2  # the offset 0: the diagonal
    keep = np.ones(values.shape[0])
    keep[problem.gauge_nodes] = 0.0
    if not np.all(values[keep > 0, center] > 0):
        raise np.linalg.LinAlgError("the reduced matrix has a nonpositive diagonal entry")
    scale = keep / np.sqrt(np.where(keep > 0, values[:, center], 1.0))
    scaled = stencils.scaled(values, scale, problem.grid.shape, reach)
    scaled[problem.gauge_nodes, center] = 1.0
    return scaled, scale


FACTORIZATIONS = ("multifrontal", "nested-dissection", "mmd")
PRECISIONS = ("double", "mixed", "auto")


@functools.lru_cache(maxsize=16)
def nested_dissection(shape: tuple[int, ...], reach: int = 2, leaf: int = 8) -> np.ndarray:
    """A fill-reducing elimination order of the nodes of a grid (flat indices, a permutation).

    Geometric nested dissection: the node block is cut across its longer axis by `reach`
    lines of nodes (the separator), the two halves are ordered recursively, the separator
    last; blocks of at most `leaf` nodes per axis are kept in natural order. With `reach`
    at least the stencil's reach (2 for the Newton matrix D_hᵀ ∇²F D_h, whose H_hᵀ·H_h part
    couples nodes two apart; 1 for the metric), the halves do not couple, and the Cholesky
    factor of a 2D grid matrix has O(N log N) entries. In d = 1 the natural order has no fill.
    """
    if len(shape) == 1:
        return np.arange(shape[0])
    order = cholesky.elimination_order(tuple(shape), reach, leaf)
    order.setflags(write=False)
    return order


class GaugedFactorization:
    """A factorization of a symmetric matrix in φ restricted to the free nodes.

    The matrix is scaled symmetrically to unit diagonal first: the quadrature weights span
    many orders of magnitude between the bulk of ϱ0 and the box's edges. The scaled matrix
    is SPD and is factorized without pivoting by `method`:

    - "multifrontal" (default; SuperLU's "nested-dissection" when a pivot is not positive,
      a matrix singular to roundoff): the Cholesky factorization of `gridflow.cholesky`, nested
      dissection with dense fronts, on the whole grid with the gauge nodes' rows and columns
      replaced by the identity's (which leaves the free nodes' system as it is); `reach` is
      the matrix's stencil reach (2 for the Newton matrices, 1 for the metric);
    - "nested-dissection": SuperLU's LU in the order of `nested_dissection`;
    - "mmd": SuperLU's LU in its minimum degree order on AᵀA + A.

    The two SuperLU methods are the references the multifrontal one is tested and
    benchmarked against (docs/performance.md). `matrix` is a sparse matrix or its stencil
    values (N, (2 reach + 1)^d) (`gridflow.stencils`; `proximal.newton_stencil`). `reuse`: a
    factorization of the same problem that is no longer needed, whose multifrontal factor's
    memory this one takes over (`cholesky.cholesky`); it must not be used afterwards.

    `precision` (multifrontal only; SuperLU factorizes in float64): "double", a float64
    factor; "mixed", a float32 factor whose solves are refined to float64 accuracy or to a
    Newton step's forcing term (`gridflow.refinement`, twice as fast to factorize where the
    dense work dominates, each solve a few times dearer); "auto", the one
    `refinement.choose_precision` picks for the grid's dense work.
    """

    def __init__(
        self,
        problem: Problem,
        matrix: sparse.spmatrix | np.ndarray,
        method: str = "multifrontal",
        reach: int = 2,
        reuse: GaugedFactorization | None = None,
        precision: str = "double",
    ):
        if method not in FACTORIZATIONS:
            raise ValueError(f"method must be one of {FACTORIZATIONS}, got {method!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.size = matrix.shape[0]
        self._factor = None  # the multifrontal factor, when it is the one solving
        self._refined = None  # the mixed-precision solver, when it is the one solving
        self.chosen_precision = "double"  # "mixed" when a float32 factorization was tried
        if method == "multifrontal":
            reused = reuse.multifrontal_factor() if reuse is not None else None
            self._factorize_grid(problem, matrix, reach, reused, precision)
        else:
            self._factorize_reduced(problem, matrix, method, reach)

    def _factorize_grid(self, problem, matrix, reach, reuse, precision):
        shape = problem.grid.shape
        if sparse.issparse(matrix):
            matrix = stencils.stencil_values(matrix, shape, reach)
        self.free = slice(None)
        values, self.scale = scaled_in_gauge(problem, matrix, reach)
        if precision == "auto":
            precision = refinement.choose_precision(cholesky.front_structure(shape, reach))
        self.chosen_precision = precision
        try:
            if precision == "mixed":
                self._refined = refinement.MixedPrecisionSolver(values, shape, reach, reuse)
                self._problem_and_reach = (problem, reach)  # for `_superlu_after_refinement`
            else:
                self._factor = cholesky.cholesky(values, shape, reach, reuse)
                self._solve = self._factor.solve
        except np.linalg.LinAlgError:
            # singular to roundoff (a front's pivot of -1e-16 on the paper mixture at 65² with
            # density floor 1e-12): SuperLU's LU without pivoting goes on where Cholesky
            # cannot, and Newton's method still converges, as in 0.3.0
            self._factorize_reduced(problem, matrix, "nested-dissection", reach)

    @property
    def precision(self) -> str:
        """ "mixed" while a refined float32 factor solves, else "double" (also after a
        fall-back from a `chosen_precision` of "mixed")."""
        return "double" if self._refined is None else self._refined.precision

    @property
    def refinement_iterations(self) -> int:
        """The conjugate gradient iterations of the latest solve (0 for a direct one)."""
        refined = self._refined
        return refined.iterations[-1] if refined is not None and refined.iterations else 0

    def multifrontal_factor(self) -> cholesky.CholeskyFactor | None:
        """The multifrontal factor that solves (None for SuperLU's)."""
        return self._factor if self._refined is None else self._refined.factor

    def solve_nearby(
        self,
        problem: Problem,
        matrix: np.ndarray,
        rhs,
        max_iterations: int,
        reach: int = 2,
        forcing=None,
    ):
        """A⁻¹ rhs for another matrix A of the same problem and reach (stencil values; a later
        Newton step's), by conjugate gradients on A preconditioned with this factorization
        (`refinement.grid_conjugate_gradients`; in A's scaling the preconditioner is the earlier
        matrix's inverse). Returns (the solution, or None unless they reach a backward error
        of ACCEPTED_BACKWARD_ERROR, or the relative residual of a Newton step's `forcing`
        term, within max_iterations; the iterations). A SuperLU factorization is not reused:
        (None, 0)."""
        factor = self.multifrontal_factor()
        if factor is None:
            return None, 0
        shape = problem.grid.shape
        if (factor.structure.shape, factor.structure.reach) != (tuple(shape), reach):
            raise ValueError(f"this factorization is not of a reach-{reach} matrix on {shape}")
        rhs = refinement.one_rhs(rhs, self.size)
        values, scale = scaled_in_gauge(problem, matrix, reach)
        ratio = np.divide(self.scale, scale, out=np.ones_like(scale), where=scale > 0)
        nearby = refinement.grid_conjugate_gradients(
            values,
            shape,
            reach,
            lambda r: ratio * factor.solve(ratio * r),
            scale * rhs,
            max_iterations,
            forcing=forcing,
        )
        return (scale * nearby.solution if nearby.converged else None), nearby.iterations

    def _factorize_reduced(self, problem, matrix, method, reach):
        if not sparse.issparse(matrix):
            matrix = stencils.to_csr(matrix, problem.grid.shape, reach)
        order = None
        if method == "nested-dissection":
            order = nested_dissection(problem.grid.shape, reach)
            order = order[~np.isin(order, problem.gauge_nodes)]
        self.free = free_nodes(problem) if order is None else order
        reduced = matrix.tocsr()[self.free][:, self.free]
        diagonal = reduced.diagonal()
        if not np.all(diagonal > 0):
            raise np.linalg.LinAlgError("the reduced matrix has a nonpositive diagonal entry")
        self.scale = 1.0 / np.sqrt(diagonal)
        rows = np.repeat(np.arange(reduced.shape[0]), np.diff(reduced.indptr))
        reduced.data *= self.scale[rows] * self.scale[reduced.indices]
        # symmetric: its CSR arrays are those of its CSC form
        scaled = sparse.csc_matrix((reduced.data, reduced.indices, reduced.indptr), reduced.shape)
        try:
            factor = sparse_linalg.splu(  # a symmetric ordering and no pivoting: S is SPD
                scaled,
                permc_spec="MMD_AT_PLUS_A" if order is None else "NATURAL",
                diag_pivot_thresh=0.0,
                options={"SymmetricMode": True},
            )
        except RuntimeError as error:  # SuperLU: "Factor is exactly singular"
            raise np.linalg.LinAlgError(f"the reduced matrix is singular ({error})") from error
        self._solve = factor.solve

    def _solve_scaled(self, rhs, forcing):
        """The scaled matrix's solve for the free nodes' rhs, scaled back by one S: the refined
        solver's while it serves (it takes the forcing term), else the direct `_solve`."""
        rhs = self.scale * rhs
        if self._refined is not None:
            return self._refined.solve(rhs, forcing)
        return self._solve(rhs)

    def _superlu_after_refinement(self):
        """SuperLU's LU of the scaled matrix, whose float64 Cholesky factorization (the
        refinement's fall-back) found a pivot that is not positive."""
        problem, reach = self._problem_and_reach
        values, outer = self._refined.values, self.scale
        self._refined = None
        self._factorize_reduced(problem, values, "nested-dissection", reach)
        self.scale = self.scale * outer[self.free]

    def solve(self, rhs: np.ndarray, forcing=None) -> np.ndarray:
        """The solution in the gauge φ = 0 at the gauge nodes, (N,). `forcing`: a Newton
        step's forcing term, for a float32 factor's refinement (`refinement.conjugate_gradients`;
        a direct solve is exact)."""
        solution = np.zeros(self.size)
        try:
            solution[self.free] = self.scale * self._solve_scaled(rhs[self.free], forcing)
        except np.linalg.LinAlgError:
            if self._refined is None:
                raise
            self._superlu_after_refinement()
            solution[self.free] = self.scale * self._solve_scaled(rhs[self.free], forcing)
        if not np.all(np.isfinite(solution)):  # a zero pivot: the matrix is singular
            raise np.linalg.LinAlgError("the solve is not finite: the matrix is singular")
        return solution


def helmholtz_projection(problem: Problem, v, max_refinements: int = 8):
    """The weighted projection of a field v (n, d) onto discrete gradient fields.

    Returns (p, D_h p): p at the grid nodes (gauge 0 at the gauge nodes) and the field
    D_h p at the evaluation points, the minimizer of ‖D_h p - v‖_w. The normal equations are
    badly conditioned where the weights are tiny (the tails), so the solution is refined on
    its residual v - D_h p until D_h p changes by roundoff at every cell, not only in ‖·‖_w.
    """
    v = problem.as_map(v, "v")
    p = np.zeros(problem.gradient_operator.shape[1])
    field = np.zeros_like(v)
    scale = 1.0 + np.abs(v).max()
    for _ in range(max_refinements + 1):
        rhs = problem.gradient_operator.T @ (problem.weights[:, None] * (v - field)).ravel()
        correction = metric_factorization(problem).solve(rhs)
        change = problem.map_of(correction)
        p, field = p + correction, field + change
        if np.abs(change).max() <= 1e-13 * scale:
            break
    return p, field


def least_squares_potential(problem: Problem, v) -> np.ndarray:
    """The potential p (N,) whose field D_h p is closest to v (n, d) cell by cell.

    The unweighted normal equations (D_hᵀ D_h) p = D_hᵀ v, solved by fast diagonalization
    (`gridflow.fast_diagonalization`; p without a component in ker D_h in its basis): unlike
    the L²(ϱ0) projection (`helmholtz_projection`), the tails weigh as much as the bulk.
    """
    v = problem.as_map(v, "v")
    return solve_gradient_normal_equations(problem.grid, problem.gradient_operator.T @ v.ravel())


def in_gauge(problem: Problem, potential) -> np.ndarray:
    """The representative of φ modulo ker D_h orthogonal to ker D_h (same map D_h φ).

    In d ≥ 2 this removes the alternating components (the checkerboard in d = 2), which D_h
    cannot see and a solver leaves arbitrary, and the mean (φ is defined up to a constant).
    """
    basis = operators.kernel_basis(problem.grid)
    potential = problem.as_potential(potential)
    gram = (basis @ basis.T).toarray()  # the modes overlap (1 and χ; the planes in d = 3)
    return potential - basis.T @ np.linalg.solve(gram, basis @ potential)
