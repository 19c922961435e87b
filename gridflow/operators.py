"""Finite-difference operators of the discretization, for d = 1, 2 and 3.

The discretization is docs/mathematics.md, 'The grid discretization'.

The potential φ lives at the grid nodes. The map T = D_h φ lives at the cell centers
(the midpoints in d = 1), and the discrete Hessian H_h φ at the interior nodes.

d = 1:   T_i = (φ_{i+1} - φ_i) / h,        (H_h φ)_j = (T_j - T_{j-1}) / h.

d ≥ 2:   with δ the forward difference and μ the average of two neighbours along an axis,
    T = (D_1 φ, .., D_d φ),  D_k = μ ⊗ .. ⊗ δ ⊗ .. ⊗ μ (δ on axis k): the gradient of the
    multilinear interpolant of φ at each cell center (D_1 = δ ⊗ μ, D_2 = μ ⊗ δ in d = 2).
    The Hessian at an interior node is the same stencil applied to T over the 2^d cells
    around the node, symmetrized: (H_h φ)_{pq} = ½ (D_q T_p + D_p T_q) (both halves are
    equal when T = D_h φ); in d = 2, H_h φ = [[a, b], [b, c]].

So H_h = B_h D_h factors through the map: the discrete Hessian is a function of T, and
so is F_h. The kernel of D_h is the constants in d = 1; in d ≥ 2 it also holds the
alternating modes that the averages annihilate (`kernel_basis`: the checkerboard (-1)^{i+j}
in d = 2; in d = 3 a checkerboard of two axes times any profile along the third). B_h
annihilates them too, so H_h does, and φ ↦ D_h φ is a bijection from potentials modulo
ker D_h onto its range: fixing φ at one node per mode (`gauge_nodes`) fixes the potential.
In d = 1, D_h is onto; in d ≥ 2 its range is the discrete gradient fields, and the weighted
projection onto it is the discrete Helmholtz projection.

Layouts: maps (n, d) flattened in C order (component fastest); Hessians (m, s) with the
s = d(d + 1)/2 entries of the upper triangle row by row (`hessian_entries`: s = 1 in d = 1,
(a, b, c) in d = 2), flattened in C order.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
from scipy import sparse

from gridflow.checks import check_map_on_points, require_instance
from gridflow.grid import Grid


def difference(size: int, spacing: float) -> sparse.csr_matrix:
    """The (size - 1, size) forward difference (u_{i+1} - u_i) / spacing."""
    ones = np.ones(size - 1) / spacing
    return sparse.diags([-ones, ones], [0, 1], shape=(size - 1, size), format="csr")


def average(size: int) -> sparse.csr_matrix:
    """The (size - 1, size) average (u_{i+1} + u_i) / 2."""
    halves = np.full(size - 1, 0.5)
    return sparse.diags([halves, halves], [0, 1], shape=(size - 1, size), format="csr")


def map_points(grid: Grid) -> np.ndarray:
    """Evaluation points of the map: the cell centers, (n, d) (midpoints in d = 1)."""
    centers = [0.5 * (grid.axis(k)[1:] + grid.axis(k)[:-1]) for k in range(grid.dim)]
    mesh = np.meshgrid(*centers, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def check_cell_map(grid, points, weights, values, owner: str) -> None:
    """That ``grid`` is a Grid, ``points`` its cell centers in the layout of `map_points`
    (C order), ``weights`` (n,) non-negative cell masses and ``values`` (n, d) (unless None)
    finite; TypeError or ValueError naming the field of ``owner``. Values listed at other
    points, or in another order, would be read as if they were at these."""
    require_instance(grid, Grid, f"{owner}.grid")
    cells = map_points(grid)
    check_map_on_points(points, weights, values, owner, cells.shape)
    points = np.asarray(points, dtype=float)
    scale = max(float(np.max(np.abs(cells))), 1.0)
    misplaced = np.flatnonzero(np.any(np.abs(points - cells) > 1e-9 * scale, axis=1))
    if misplaced.size:
        row = int(misplaced[0])
        raise ValueError(
            f"{owner}.points must be the grid's cell centers in C order "
            f"(gridflow.operators.map_points(grid)); {misplaced.size} rows are not, e.g. row "
            f"{row} is {points[row].tolist()}, the cell center {cells[row].tolist()}"
        )
    if np.any(np.asarray(weights, dtype=float) < 0):
        raise ValueError(f"{owner}.weights must be non-negative cell masses")


def hessian_points(grid: Grid) -> np.ndarray:
    """Evaluation points of the discrete Hessian: the interior nodes, (m, d)."""
    mesh = np.meshgrid(*(grid.axis(k)[1:-1] for k in range(grid.dim)), indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def map_shape(grid: Grid) -> tuple[int, ...]:
    """The cell grid: the map's values as an array of shape map_shape + (d,)."""
    return tuple(n - 1 for n in grid.shape)


def hessian_shape(grid: Grid) -> tuple[int, ...]:
    """The interior-node grid where the Hessian is evaluated."""
    return tuple(n - 2 for n in grid.shape)


def _interleave(blocks: list[sparse.spmatrix]) -> sparse.csr_matrix:
    """Stack operators so that their outputs interleave: row r * len(blocks) + k = blocks[k][r]."""
    stacked = sparse.vstack(blocks, format="csr")
    rows = blocks[0].shape[0]
    order = np.arange(rows * len(blocks)).reshape(len(blocks), rows).T.ravel()
    return stacked[order]


def _component_operators(shape: tuple[int, ...], spacing: tuple[float, ...]):
    """The d operators D_k = μ ⊗ .. ⊗ δ ⊗ .. ⊗ μ (δ on axis k, μ on the others) on an array
    of the given shape: D_k φ is the k-th partial derivative of the multilinear interpolant
    of φ at the cell centers ((δ,) in d = 1; (δ ⊗ μ, μ ⊗ δ) in d = 2)."""
    dim = len(shape)
    return tuple(
        functools.reduce(
            lambda left, right: sparse.kron(left, right, format="csr"),
            [
                difference(n, h) if axis == k else average(n)
                for axis, (n, h) in enumerate(zip(shape, spacing, strict=True))
            ],
        )
        for k in range(dim)
    )


def hessian_entries(dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The (row, column) of the s = d(d + 1)/2 entries of a symmetric matrix in the Hessian
    layout: the upper triangle row by row ((a, b, c) = (X00, X01, X11) in d = 2)."""
    return np.triu_indices(dim)


def _spacing(spacing) -> tuple[float, ...]:
    """A grid's spacing: one finite number > 0 per axis, 1 to 3 axes."""
    array = np.asarray(spacing, dtype=float) if np.ndim(spacing) == 1 else None
    if array is None or not 1 <= array.size <= 3 or not np.all(np.isfinite(array) & (array > 0)):
        raise ValueError(
            f"spacing must be 1 to 3 finite numbers > 0 (grid.spacing), got {spacing!r}"
        )
    return tuple(array.tolist())


def map_window(spacing: tuple[float, ...]) -> np.ndarray:
    """D_h at one cell: T's components from φ at the cell's 2^d corners, (d, 2, .., 2) as
    [component, a, b, ..] for the corner (i + a, j + b, ..) of cell (i, j, ..). Read-only:
    computed once per spacing (every Newton matrix reads it)."""
    return _map_window(_spacing(spacing))


def hessian_window(spacing: tuple[float, ...]) -> np.ndarray:
    """H_h = B_h D_h at one interior node: its s entries (`hessian_entries`) from φ at the
    3^d nodes around it, (s, 3, .., 3) as [entry, a, b, ..] for the node (i - 1 + a, ..).
    Read-only: computed once per spacing."""
    return _hessian_window(_spacing(spacing))


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@functools.lru_cache(maxsize=16)
def _map_window(spacing: tuple[float, ...]) -> np.ndarray:
    corners = (2,) * len(spacing)
    return _read_only(
        np.stack(
            [
                component.toarray().reshape(corners)
                for component in _component_operators(corners, spacing)
            ]
        )
    )


@functools.lru_cache(maxsize=16)
def _hessian_window(spacing: tuple[float, ...]) -> np.ndarray:
    dim = len(spacing)
    to_cells = _component_operators((3,) * dim, spacing)  # 3^d nodes -> 2^d cells
    to_node = _component_operators((2,) * dim, spacing)  # 2^d cells -> the node
    return _read_only(
        np.stack(
            [
                0.5
                * (to_node[q] @ to_cells[p] + to_node[p] @ to_cells[q])
                .toarray()
                .reshape((3,) * dim)
                for p, q in zip(*hessian_entries(dim), strict=True)
            ]
        )
    )


def gradient_operator(grid: Grid) -> sparse.csr_matrix:
    """D_h: φ at the N nodes -> T at the n cell centers, shape (n d, N)."""
    return _interleave(list(_component_operators(grid.shape, grid.spacing)))


def map_hessian_operator(grid: Grid) -> sparse.csr_matrix:
    """B_h: T (n d,) -> the symmetrized discrete Jacobian at the interior nodes (m s,).

    The entry (p, q) is ½ (D_q T_p + D_p T_q), D_k the operators of `gradient_operator` on
    the cell grid (cells -> interior nodes), in the order of `hessian_entries`.
    """
    components = _component_operators(map_shape(grid), grid.spacing)
    dim, cells = grid.dim, components[0].shape[1]
    interleaved = np.arange(dim * cells).reshape(dim, cells).T.ravel()

    def acting_on(terms):  # Σ_k terms[k] T_k, for T stored interleaved
        blocks = [terms.get(k, sparse.csr_matrix(components[0].shape)) for k in range(dim)]
        return sparse.hstack(blocks, format="csr")[:, interleaved]

    return _interleave(
        [
            acting_on({p: components[p]})
            if p == q
            else acting_on({p: 0.5 * components[q], q: 0.5 * components[p]})
            for p, q in zip(*hessian_entries(dim), strict=True)
        ]
    )


def hessian_operator(grid: Grid, map_hessian=None, gradient=None) -> sparse.csr_matrix:
    """H_h = B_h D_h: φ at the nodes -> the discrete Hessian at the interior nodes (m s, N).

    `map_hessian` and `gradient`: B_h and D_h of the grid when they are at hand
    (`map_hessian_operator`, `gradient_operator`; building them takes most of the time).
    """
    if map_hessian is None:
        map_hessian = map_hessian_operator(grid)
    if gradient is None:
        gradient = gradient_operator(grid)
    return (map_hessian @ gradient).tocsr()


def block_diagonal(blocks: np.ndarray) -> sparse.csr_matrix:
    """The sparse block-diagonal matrix of k square blocks (k, s, s)."""
    k, s, _ = blocks.shape
    return sparse.bsr_matrix((blocks, np.arange(k), np.arange(k + 1)), shape=(k * s, k * s)).tocsr()


def kernel_basis(grid: Grid) -> sparse.csr_matrix:
    """A basis of ker D_h, as the rows of a sparse (K, N) matrix.

    D_k averages along every axis but k, and the average annihilates (-1)^i along its axis:
    D_h φ = 0 when every D_k averages an alternating factor away.

    - d = 1: the constants (K = 1).
    - d = 2: the constants and the checkerboard (-1)^{i+j} (K = 2).
    - d = 3: the constants and the alternating planes: (-1)^{j+k} on the plane i = t, for
      every t, and likewise (-1)^{i+k} on j = t and (-1)^{i+j} on k = t — any profile along
      the third axis times a checkerboard of the other two. The three families each sum,
      with signs (-1)^t, to (-1)^{i+j+k}: the planes j = last and k = last are left out, and
      K = 1 + n_0 + n_1 + n_2 - 2 (17 on 5 × 6 × 7 nodes, 194 on 65³).
    """
    indices = np.indices(grid.shape).reshape(grid.dim, -1)
    nodes = np.arange(indices.shape[1])
    rows, columns, values = [np.zeros_like(nodes)], [nodes], [np.ones(nodes.size)]
    count = 1
    if grid.dim == 2:
        rows.append(np.ones_like(nodes))
        columns.append(nodes)
        values.append((-1.0) ** indices.sum(axis=0))
        count = 2
    if grid.dim == 3:
        for axis in range(3):
            planes = grid.shape[axis] - (axis > 0)  # the last plane of axes 1, 2 is dependent
            kept = indices[axis] < planes
            rows.append(count + indices[axis][kept])
            columns.append(nodes[kept])
            values.append((-1.0) ** (indices.sum(axis=0) - indices[axis])[kept])
            count += planes
    return sparse.csr_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))),
        shape=(count, nodes.size),
    )


def gauge_nodes(grid: Grid, anchor: int = 0) -> np.ndarray:
    """Flat indices of the nodes where φ is set to 0: one per basis vector of ker D_h, where
    the basis restricted to them is invertible.

    Taken greedily, in order, among the corners of the cell of 2^d nodes at the node
    `anchor` (flat index; default the first node; stepping forward along each axis, backward
    at its last node), then the grid lines through those corners: the anchor in d = 1; in
    d = 2 also its neighbour along the last axis (the other checkerboard colour); in d = 3 the
    lines through the anchor's cell meet every alternating plane. `Problem.gauge_nodes`
    anchors the gauge where ϱ0 is largest, which keeps the systems solved in the gauge well
    conditioned.
    """
    if isinstance(anchor, bool) or not isinstance(anchor, (int, np.integer)):
        raise TypeError(f"anchor must be a node index (an integer), got {anchor!r}")
    if not 0 <= anchor < int(np.prod(grid.shape)):
        raise ValueError(f"anchor must be a node index in [0, {np.prod(grid.shape)}), got {anchor}")
    start = np.array(np.unravel_index(anchor, grid.shape))
    step = np.where(start + 1 < np.array(grid.shape), 1, -1)
    corners = [start + step * np.array(c) for c in itertools.product((0, 1), repeat=grid.dim)]
    lines = [
        np.where(np.arange(grid.dim) == axis, t, corner)
        for axis in range(grid.dim)
        for corner in corners
        for t in range(grid.shape[axis])
    ]
    candidates = np.ravel_multi_index(np.array(corners + lines).T, grid.shape)
    basis = kernel_basis(grid)
    columns = basis[:, candidates].toarray()
    chosen, orthonormal = [], np.zeros((basis.shape[0], 0))
    for node, column in zip(candidates, columns.T, strict=True):
        residual = column - orthonormal @ (orthonormal.T @ column)
        if np.linalg.norm(residual) > 1e-8 * np.linalg.norm(column):
            chosen.append(int(node))
            orthonormal = np.column_stack([orthonormal, residual / np.linalg.norm(residual)])
        if len(chosen) == basis.shape[0]:
            return np.array(chosen)
    raise AssertionError("the lines through a cell always pin ker D_h")  # pragma: no cover


def potential_from_map(grid: Grid, T: np.ndarray) -> np.ndarray:
    """The potential φ with D_h φ = T, in the gauge φ(0) = 0 (d = 1).

    φ is first accumulated from the left end, then shifted so that its piecewise-linear
    interpolant vanishes at x = 0 (or at the node nearest 0 when 0 is outside the box).
    """
    if grid.dim != 1:
        raise NotImplementedError("potential_from_map accumulates increments: d = 1 only")
    h = grid.spacing[0]
    phi = np.concatenate([[0.0], np.cumsum(h * np.asarray(T).reshape(-1))])
    nodes = grid.axis(0)
    return phi - np.interp(np.clip(0.0, nodes[0], nodes[-1]), nodes, phi)
