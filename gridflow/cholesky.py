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
(`FrontStructure`, cached); each factorization then costs dense BLAS-3 work on fronts
whose size grows like the grid's side, O(N^{3/2}) flops in d = 2, against SuperLU's
sparse LU of the same order.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from scipy import sparse
from scipy.linalg import blas, lapack

from gridflow import stencils

DEFAULT_LEAF = 8
"""Leaves of the dissection hold at most this many nodes per axis. On sides of 2^k + 1 nodes
leaves of 8 to 13 give the same tree; 16 and 24 were up to 2.4 times slower at 257² and 513²
(denser leaf fronts), and a larger factor."""


@dataclass(frozen=True)
class Front:
    """One node of the elimination tree and its assembly plan (global node indices)."""

    eliminated: np.ndarray
    boundary: np.ndarray
    children: tuple[int, ...]
    assembly_positions: np.ndarray
    """Flat column-major positions in the front's lower triangle that receive entries of A
    (the columns of the eliminated nodes)."""
    assembly_entries: np.ndarray
    """Flat indices into the stencil array (`stencil_values`) of those entries."""
    child_positions: tuple[np.ndarray, ...]
    """For each child, the positions of the child's boundary among this front's nodes."""


@dataclass(frozen=True)
class FrontStructure:
    """The fronts of a grid's nested dissection in postorder (children before parents), and
    the same index sets concatenated, with the offsets of each front's piece (for the numba
    substitutions and the factor's flat storage: its diagonal blocks e², its blocks below
    e × u, column-major)."""

    shape: tuple[int, ...]
    reach: int
    fronts: tuple[Front, ...]
    eliminated: np.ndarray
    boundary: np.ndarray
    eliminated_offsets: np.ndarray
    boundary_offsets: np.ndarray
    diagonal_offsets: np.ndarray
    below_offsets: np.ndarray
    largest_front: int


def _box_nodes(shape, box) -> np.ndarray:
    """Flat indices of the nodes in `box` (a (start, stop) range per axis)."""
    strides = np.cumprod((1, *shape[:0:-1]))[::-1]  # C order: the last axis fastest
    index = np.zeros((1,) * len(shape), dtype=np.int64)
    for axis, ((start, stop), stride) in enumerate(zip(box, strides, strict=True)):
        along = np.arange(start, stop) * stride
        index = index + along.reshape([-1 if k == axis else 1 for k in range(len(shape))])
    return index.ravel()


def _dissect(shape, reach: int, leaf: int):
    """The tree's boxes in postorder: (box, eliminated box, indices of the children)."""
    nodes = []

    def visit(box) -> int:
        extents = [stop - start for start, stop in box]
        axis = int(np.argmax(extents))
        if extents[axis] <= max(leaf, 2 * reach + 1):
            nodes.append((box, box, ()))
            return len(nodes) - 1
        start, stop = box[axis]
        cut = start + (extents[axis] - reach) // 2

        def along(first, last):
            return tuple((first, last) if k == axis else box[k] for k in range(len(box)))

        children = (visit(along(start, cut)), visit(along(cut + reach, stop)))
        nodes.append((box, along(cut, cut + reach), children))
        return len(nodes) - 1

    visit(tuple((0, n) for n in shape))
    return nodes


def elimination_order(shape: tuple[int, ...], reach: int, leaf: int = DEFAULT_LEAF) -> np.ndarray:
    """The nodes (flat indices) in the order the fronts eliminate them: a permutation."""
    return np.concatenate(
        [_box_nodes(shape, eliminated) for _, eliminated, _ in _dissect(shape, reach, leaf)]
    )


@functools.lru_cache(maxsize=8)
def front_structure(shape: tuple[int, ...], reach: int, leaf: int = DEFAULT_LEAF) -> FrontStructure:
    """The elimination tree of `shape`'s grid for matrices of the given reach, with the
    assembly plan of every front (computed once per shape: the factorizations reuse it)."""
    shape = tuple(int(n) for n in shape)
    offsets = stencils.stencil_offsets(len(shape), reach)
    stencil_size = offsets.shape[0]
    local = np.full(math.prod(shape), -1)  # global node -> position in the current front
    fronts = []
    for box, eliminated_box, children in _dissect(shape, reach, leaf):
        eliminated = _box_nodes(shape, eliminated_box)
        grown = tuple(
            (max(0, a - reach), min(n, b + reach)) for (a, b), n in zip(box, shape, strict=True)
        )
        around = _box_nodes(shape, grown)
        inside = np.zeros([b - a for a, b in grown], dtype=bool)  # over the grown box
        inside[tuple(slice(a - g, b - g) for (a, b), (g, _) in zip(box, grown, strict=True))] = True
        boundary = around[~inside.ravel()]
        members = np.concatenate([eliminated, boundary])
        local[members] = np.arange(members.size)
        # the entries A[e, e + offset] of the eliminated columns whose row is in the front
        coordinates = np.stack(np.unravel_index(eliminated, shape), axis=1)
        neighbours = coordinates[:, None, :] + offsets[None, :, :]
        in_grid = np.all((neighbours >= 0) & (neighbours < np.array(shape)), axis=2)
        column, k = np.nonzero(in_grid)
        row = local[np.ravel_multi_index(neighbours[column, k].T, shape)]
        # the lower triangle only; rows < 0 are in the box's halves, eliminated before
        kept = row >= column
        row, k, column = row[kept], k[kept], column[kept]
        child_positions = tuple(local[fronts[c].boundary] for c in children)
        if any(np.any(positions < 0) for positions in child_positions):
            raise AssertionError("a child's boundary leaves its parent's front")
        fronts.append(
            Front(
                eliminated=eliminated,
                boundary=boundary,
                children=children,
                assembly_positions=column * members.size + row,
                assembly_entries=eliminated[column] * stencil_size + k,
                child_positions=child_positions,
            )
        )
        local[members] = -1
    eliminated_sizes = np.array([front.eliminated.size for front in fronts])
    boundary_sizes = np.array([front.boundary.size for front in fronts])

    def offsets(sizes):
        return np.concatenate([[0], np.cumsum(sizes)])

    return FrontStructure(
        shape,
        reach,
        tuple(fronts),
        eliminated=np.concatenate([front.eliminated for front in fronts]),
        boundary=np.concatenate([front.boundary for front in fronts]),
        eliminated_offsets=offsets(eliminated_sizes),
        boundary_offsets=offsets(boundary_sizes),
        diagonal_offsets=offsets(eliminated_sizes**2),
        below_offsets=offsets(eliminated_sizes * boundary_sizes),
        largest_front=int((eliminated_sizes + boundary_sizes).max()),
    )


@njit(cache=True)
def _extend_add(dense, positions, update):
    """dense[positions, positions] += update, lower triangles only: a child's Schur
    complement (BLAS syrk's lower triangle, column-major) into its parent's front (lower,
    column-major). An entry whose positions come in the other order goes to its mirror."""
    size = positions.size
    for j in range(size):
        column = positions[j]
        for i in range(j, size):
            row = positions[i]
            if row >= column:
                dense[row, column] += update[i, j]
            else:
                dense[column, row] += update[i, j]


@njit(cache=True)
def _front_pieces(f, e_offsets, b_offsets, d_offsets, w_offsets):
    """Where front f's pieces start and their sizes: (eliminated start, count, boundary
    start, count, diagonal block start, block below start)."""
    e0, b0 = e_offsets[f], b_offsets[f]
    return e0, e_offsets[f + 1] - e0, b0, b_offsets[f + 1] - b0, d_offsets[f], w_offsets[f]


@njit(cache=True)
def _substitute(
    y, eliminated, boundary, e_offsets, b_offsets, d_offsets, w_offsets, diagonal, below
):
    """y ← L⁻ᵀ L⁻¹ y in place, y (N, k): forward substitution front by front up the tree,
    then backward down it. L's blocks are column-major in `diagonal` and `below`."""
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
                total = 0.0
                for i in range(ne):
                    total += below[w0 + b * ne + i] * part[i]
                y[boundary[b0 + b], c] -= total
        for f in range(fronts - 1, -1, -1):  # Lᵀ x = y
            e0, ne, b0, nb, d0, w0 = _front_pieces(f, e_offsets, b_offsets, d_offsets, w_offsets)
            for i in range(ne):
                part[i] = y[eliminated[e0 + i], c]
            for b in range(nb):
                known = y[boundary[b0 + b], c]
                for i in range(ne):
                    part[i] -= below[w0 + b * ne + i] * known
            for j in range(ne - 1, -1, -1):
                total = part[j]
                for i in range(j + 1, ne):
                    total -= diagonal[d0 + j * ne + i] * part[i]
                part[j] = total / diagonal[d0 + j * ne + j]
            for i in range(ne):
                y[eliminated[e0 + i], c] = part[i]


@dataclass(frozen=True)
class CholeskyFactor:
    """A = L Lᵀ: per front, L's diagonal block (lower triangular) and the block below it,
    column-major in two flat arrays (offsets in the structure)."""

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


def cholesky(matrix, shape: tuple[int, ...], reach: int) -> CholeskyFactor:
    """The Cholesky factor of a symmetric positive definite matrix on the nodes of a grid of
    `shape` (flat C order) that couples nodes at most `reach` apart on every axis: a sparse
    matrix, or its (N, K) stencil values (`gridflow.stencils`).

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
    values = np.asarray(matrix, dtype=float).ravel()
    diagonal = np.empty(structure.diagonal_offsets[-1])
    below_all = np.empty(structure.below_offsets[-1])
    workspace = np.empty(structure.largest_front**2)  # every front's dense matrix, in turn
    updates: dict[int, np.ndarray] = {}
    for index, front in enumerate(structure.fronts):
        eliminated = front.eliminated.size
        size = eliminated + front.boundary.size
        dense = workspace[: size * size].reshape((size, size), order="F")
        dense.fill(0.0)  # the lower triangle is used throughout
        dense.reshape(-1, order="F")[front.assembly_positions] = values[front.assembly_entries]
        for child, positions in zip(front.children, front.child_positions, strict=True):
            _extend_add(dense, positions, updates.pop(child))
        # LAPACK and BLAS called directly: scipy.linalg's checks cost more than the small
        # fronts' arithmetic
        block, info = lapack.dpotrf(dense[:eliminated, :eliminated], lower=1)
        if info != 0:
            raise np.linalg.LinAlgError(
                f"the matrix is not positive definite (a front's pivot {info} is not > 0)"
            )
        below = blas.dtrsm(1.0, block, dense[eliminated:, :eliminated].T, lower=1)
        if front.boundary.size:  # the Schur complement C − WᵀW, lower triangle only
            updates[index] = blas.dsyrk(
                -1.0, below, beta=1.0, c=dense[eliminated:, eliminated:], trans=1, lower=1
            )
        start = structure.diagonal_offsets[index]
        diagonal[start : start + eliminated**2] = block.ravel(order="F")
        start = structure.below_offsets[index]
        below_all[start : start + below.size] = below.ravel(order="F")
    return CholeskyFactor(structure, diagonal, below_all)
