"""Sparse Cholesky factorization of grid matrices: nested dissection with dense fronts.

The symmetric systems of the grid solver (the Newton matrices D_hᵀ ∇²F_h D_h in φ, the
metric D_hᵀ W D_h) couple only nodes that are at most `reach` apart along every axis
(reach 2 for the Newton matrices, whose H_hᵀ·H_h part spans a 5 × 5 stencil; 1 for the
metric). Such a matrix A = L Lᵀ is factorized in the order of a geometric nested
dissection of the grid (docs/performance.md, 'The sparse Cholesky factorization'):

- the box of nodes is cut across its longest axis by `reach` layers of nodes (the
  separator), which leaves two halves that do not couple; the halves are dissected in
  turn, down to leaves of at most `leaf` nodes per axis. This tree is the elimination
  tree: a node's front eliminates its separator (a leaf: its whole box) after both halves.
- A front is a dense matrix over the nodes it eliminates and its boundary, the nodes
  outside its box within `reach` of it: all of them lie in the separators of its
  ancestors, eliminated later. The front gathers the entries of A in the columns it
  eliminates and the Schur complements (update matrices) its two children pass up,
  eliminates its own nodes by a dense Cholesky factorization (LAPACK), and passes the
  Schur complement on its boundary to its parent (the multifrontal method).

The tree and the assembly plan depend on the grid's shape and the reach only
(`gridflow.fronts`, computed once per shape); each factorization then costs dense BLAS-3
work on fronts whose size grows like the grid's side, O(N^{3/2}) flops in d = 2, against
SuperLU's sparse LU of the same order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from scipy import sparse

from gridflow import lapack_calls, stencils
from gridflow.fronts import DEFAULT_LEAF, FrontStructure, elimination_order, front_structure

__all__ = ["DEFAULT_LEAF", "CholeskyFactor", "cholesky", "elimination_order", "front_structure"]


@njit(cache=True)
def _extend_add(update, start, positions, diagonal, d0, below, w0, stack, u0, ne, nb):
    """Adds a child's Schur complement (the lower triangle of BLAS syrk's result at
    update[start:], column-major) to its parent's front, whose nodes it meets at
    `positions`, lower triangle only (an entry whose positions come in the other order
    goes to its mirror), where `_factorize` keeps the front's pieces."""
    count = positions.size
    for j in range(count):
        for i in range(j, count):
            row, column = max(positions[i], positions[j]), min(positions[i], positions[j])
            value = update[start + j * count + i]
            if column >= ne:
                stack[u0 + (column - ne) * nb + row - ne] += value
            elif row >= ne:
                below[w0 + (row - ne) * ne + column] += value
            else:
                diagonal[d0 + column * ne + row] += value


@njit(cache=True)
def _front_pieces(f, e_offsets, b_offsets, d_offsets, w_offsets):
    """Where front f's pieces start and their sizes: (eliminated start, count, boundary
    start, count, diagonal block start, block below start)."""
    e0, b0 = e_offsets[f], b_offsets[f]
    return e0, e_offsets[f + 1] - e0, b0, b_offsets[f + 1] - b0, d_offsets[f], w_offsets[f]


@njit(cache=True)
def _minus_dot(initial, a, start, x, x_start, n):
    """initial − Σ_i a[start + i] x[x_start + i] for i < n: four interleaved sums when `a` is
    float32, else one running difference from `initial` (`_substitute`)."""
    if a.itemsize != 4:
        for i in range(n):
            initial -= a[start + i] * x[x_start + i]
        return initial
    s0 = s1 = s2 = s3 = 0.0
    i = 0
    while i + 4 <= n:
        s0 += a[start + i] * x[x_start + i]
        s1 += a[start + i + 1] * x[x_start + i + 1]
        s2 += a[start + i + 2] * x[x_start + i + 2]
        s3 += a[start + i + 3] * x[x_start + i + 3]
        i += 4
    for rest in range(i, n):
        s0 += a[start + rest] * x[x_start + rest]
    return initial - ((s0 + s1) + (s2 + s3))


@njit(cache=True)
def _substitute(
    y, eliminated, boundary, e_offsets, b_offsets, d_offsets, w_offsets, diagonal, below
):
    """y ← L⁻ᵀ L⁻¹ y in place, y (N, k): forward substitution front by front up the tree,
    then backward down it. L's blocks are column-major in `diagonal` and `below`. The sums
    of a float64 factor's solves run in one order, so that a ground truth is the same to the
    last bit from release to release; a float32 factor's, which the refinement corrects,
    in four interleaved sums (`_minus_dot`), 14 % faster at 33³: a single running sum waits
    on each addition's latency."""
    fronts = e_offsets.size - 1
    part = np.empty(y.shape[0])  # a front's eliminated nodes, at most all of them
    for c in range(y.shape[1]):
        for f in range(fronts):  # L x = y
            e0, ne, b0, nb, d0, w0 = _front_pieces(f, e_offsets, b_offsets, d_offsets, w_offsets)
            for i in range(ne):
                part[i] = y[eliminated[e0 + i], c]
            for j in range(ne):
                part[j] /= diagonal[d0 + j * ne + j]
                for i in range(j + 1, ne):
                    part[i] -= diagonal[d0 + j * ne + i] * part[j]
            for i in range(ne):
                y[eliminated[e0 + i], c] = part[i]
            for b in range(nb):
                y[boundary[b0 + b], c] += _minus_dot(0.0, below, w0 + b * ne, part, 0, ne)
        for f in range(fronts - 1, -1, -1):  # Lᵀ x = y
            e0, ne, b0, nb, d0, w0 = _front_pieces(f, e_offsets, b_offsets, d_offsets, w_offsets)
            for i in range(ne):
                part[i] = y[eliminated[e0 + i], c]
            for b in range(nb):
                known = y[boundary[b0 + b], c]
                for i in range(ne):
                    part[i] -= below[w0 + b * ne + i] * known
            for j in range(ne - 1, -1, -1):
                remainder = _minus_dot(
                    part[j], diagonal, d0 + j * ne + j + 1, part, j + 1, ne - j - 1
                )
                part[j] = remainder / diagonal[d0 + j * ne + j]
            for i in range(ne):
                y[eliminated[e0 + i], c] = part[i]


@dataclass(frozen=True)
class CholeskyFactor:
    """A = L Lᵀ: per front, L's diagonal block (lower triangular) and the block below it,
    column-major in two flat arrays (offsets in the structure), float64 or float32; the
    solves compute in float64 either way."""

    structure: FrontStructure
    diagonal: np.ndarray
    below: np.ndarray

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """A⁻¹ rhs for rhs (N,) or (N, k)."""
        rhs = np.asarray(rhs, dtype=float)
        if rhs.ndim not in (1, 2) or rhs.shape[0] != self.structure.eliminated.size:
            raise ValueError(
                f"rhs must have shape (N,) or (N, k) with N = {self.structure.eliminated.size}, "
                f"got {rhs.shape}"
            )
        y = np.array(rhs.reshape(rhs.shape[0], -1), order="C", copy=True)
        s = self.structure
        arrays = (s.eliminated, s.boundary, s.eliminated_offsets, s.boundary_offsets,
                  s.diagonal_offsets, s.below_offsets)  # fmt: skip
        _substitute(y, *arrays, self.diagonal, self.below)
        return y.reshape(rhs.shape)


@njit(cache=True)
def _factorize(values, plan, diagonal, below, stack):
    """The multifrontal factorization (see the module's docstring) of the matrix whose
    stencil values are `values` (flat) by the plan of `FrontStructure` (`_plan`), into the
    factor's flat arrays `diagonal` and `below`; the update matrices lie in `stack`. Each
    front is assembled where its pieces are factorized (column-major): its eliminated block
    in `diagonal`, the block W below it transposed in `below` (where L⁻¹ Wᵀ is kept) and the
    block C on its boundary in `stack` (where C − (L⁻¹ Wᵀ)ᵀ L⁻¹ Wᵀ waits for the parent).
    Returns 0, or LAPACK's info of the first front that is not positive definite."""
    (e_offsets, b_offsets, d_offsets, w_offsets, a_offsets, positions, entries,
     c_offsets, children, parent_positions, u_offsets) = plan  # fmt: skip
    for f in range(e_offsets.size - 1):
        _, ne, _, nb, d0, w0 = _front_pieces(f, e_offsets, b_offsets, d_offsets, w_offsets)
        u0, size = u_offsets[f], ne + nb
        diagonal[d0 : d0 + ne * ne] = 0.0
        below[w0 : w0 + ne * nb] = 0.0
        for j in range(nb):  # C's lower triangle
            stack[u0 + j * nb + j : u0 + (j + 1) * nb] = 0.0
        for a in range(a_offsets[f], a_offsets[f + 1]):
            column = positions[a] // size
            row = positions[a] - column * size
            if row >= ne:
                below[w0 + (row - ne) * ne + column] = values[entries[a]]
            else:
                diagonal[d0 + column * ne + row] = values[entries[a]]
        for c in children[c_offsets[f] : c_offsets[f + 1]]:
            child_boundary = parent_positions[b_offsets[c] : b_offsets[c + 1]]
            _extend_add(stack, u_offsets[c], child_boundary, diagonal, d0, below, w0, stack,
                        u0, ne, nb)  # fmt: skip
        info = lapack_calls.cholesky_lower(diagonal, d0, ne)
        if info != 0:
            return info
        if nb:  # not the root
            lapack_calls.solve_lower(diagonal, d0, ne, below, w0, nb)
            lapack_calls.subtract_gram(below, w0, ne, nb, stack, u0)
    return 0


def _plan(structure: FrontStructure) -> tuple:
    """The arrays of `structure` that `_factorize` reads."""
    s = structure
    return (s.eliminated_offsets, s.boundary_offsets, s.diagonal_offsets, s.below_offsets,
            s.assembly_offsets, s.assembly_positions, s.assembly_entries, s.children_offsets,
            s.children, s.parent_positions, s.update_offsets)  # fmt: skip


def cholesky(
    matrix,
    shape: tuple[int, ...],
    reach: int,
    reuse: CholeskyFactor | None = None,
    dtype=np.float64,
) -> CholeskyFactor:
    """The Cholesky factor of a symmetric positive definite matrix on the nodes of a grid of
    `shape` (flat C order) that couples nodes at most `reach` apart on every axis: a sparse
    matrix, or its (N, K) stencil values (`gridflow.stencils`).

    `reuse`: a factor of the same grid, reach and dtype that is no longer needed (the
    previous Newton step's); the new factor is written over its arrays, which saves the
    operating system clearing fresh memory for each factorization (a tenth of a second at
    513²). `dtype`: float64, or float32 for a factor computed in single precision, at twice
    the speed and half the memory, whose solves are accurate only to about 1e-7 times the
    matrix's condition number (`gridflow.refinement` refines them).

    Raises numpy.linalg.LinAlgError when a front is not positive definite (then neither
    is the matrix), ValueError when the matrix reaches farther.
    """
    structure = front_structure(tuple(shape), reach)
    nodes, width = math.prod(structure.shape), (2 * reach + 1) ** len(structure.shape)
    expected = (nodes, nodes) if sparse.issparse(matrix) else (nodes, width)
    if np.shape(matrix) != expected:
        raise ValueError(
            f"a grid matrix of {structure.shape} nodes with reach {reach} must have shape "
            f"{expected} ({'sparse' if sparse.issparse(matrix) else 'stencil values'}), "
            f"got {np.shape(matrix)}"
        )
    if sparse.issparse(matrix):
        matrix = stencils.stencil_values(matrix, structure.shape, reach)
    dtype = np.dtype(dtype)
    if dtype not in (np.float64, np.float32):
        raise ValueError(f"dtype must be float64 or float32, got {dtype}")
    values = np.ascontiguousarray(matrix, dtype=dtype).ravel()
    if reuse is not None and reuse.structure is structure and reuse.diagonal.dtype == dtype:
        diagonal, below = reuse.diagonal, reuse.below
    else:
        diagonal = np.empty(structure.diagonal_offsets[-1], dtype=dtype)
        below = np.empty(structure.below_offsets[-1], dtype=dtype)
    stack = np.empty(structure.stack_size, dtype=dtype)
    info = _factorize(values, _plan(structure), diagonal, below, stack)
    if info != 0:
        raise np.linalg.LinAlgError(
            f"the matrix is not positive definite (a front's pivot {info} is not > 0)"
        )
    return CholeskyFactor(structure, diagonal, below)
