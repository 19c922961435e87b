"""Finite-difference operators of the discretization, for d = 1 and d = 2.

The discretization is docs/mathematics.md, 'The grid discretization'.

The potential φ lives at the grid nodes. The map T = D_h φ lives at the cell centers
(the midpoints in d = 1), and the discrete Hessian H_h φ at the interior nodes.

d = 1:   T_i = (φ_{i+1} - φ_i) / h,        (H_h φ)_j = (T_j - T_{j-1}) / h.

d = 2:   with δ the forward difference and μ the average of two neighbours along an axis,
    T = (D_1 φ, D_2 φ),  D_1 = δ ⊗ μ,  D_2 = μ ⊗ δ   (the gradient of the bilinear
    interpolant of φ at each cell center), and the Hessian at an interior node is the
    same stencil applied to T over the four cells around the node:
    H_h φ = [[a, b], [b, c]],  a = (δ ⊗ μ) T_1,  c = (μ ⊗ δ) T_2,
    b = ½ ((μ ⊗ δ) T_1 + (δ ⊗ μ) T_2)     (both halves are equal when T = D_h φ).

So H_h = B_h D_h factors through the map: the discrete Hessian is a function of T, and
so is F_h. The kernel of D_h is the constants in d = 1; in d = 2 it also holds the
checkerboard mode (-1)^{i+j}, which the averages annihilate. B_h annihilates the
checkerboard too, so H_h does, and φ ↦ D_h φ is a bijection from potentials modulo
ker D_h onto its range: fixing φ at one node of each colour (`gauge_nodes`) fixes the
potential. In d = 1, D_h is onto; in d = 2 its range is the discrete gradient fields,
and the weighted projection onto it is the discrete Helmholtz projection.

Layouts: maps (n, d) flattened in C order (component fastest); Hessians (m, s) with
s = 1 in d = 1 and the entries (a, b, c) in d = 2, flattened in C order.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

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
    """(δ ⊗ μ, μ ⊗ δ) on a 2D array of the given shape (d = 2), or (δ,) in d = 1."""
    if len(shape) == 1:
        return (difference(shape[0], spacing[0]),)
    (n0, n1), (h0, h1) = shape, spacing
    return (
        sparse.kron(difference(n0, h0), average(n1), format="csr"),
        sparse.kron(average(n0), difference(n1, h1), format="csr"),
    )


def map_window(spacing: tuple[float, float]) -> np.ndarray:
    """D_h at one cell (d = 2): T's components from φ at the cell's corners, (2, 2, 2) as
    [component, a, b] for the corner (i + a, j + b) of cell (i, j)."""
    first, second = _component_operators((2, 2), spacing)
    return np.stack([first.toarray().reshape(2, 2), second.toarray().reshape(2, 2)])


def hessian_window(spacing: tuple[float, float]) -> np.ndarray:
    """H_h = B_h D_h at one interior node (d = 2): the entries (a, b, c) from φ at the 3 × 3
    nodes around it, (3, 3, 3) as [entry, a, b] for the node (i - 1 + a, j - 1 + b)."""
    to_cells = _component_operators((3, 3), spacing)  # 3 × 3 nodes -> 2 × 2 cells
    to_node = _component_operators((2, 2), spacing)  # 2 × 2 cells -> the node
    (a, b_first), (b_second, c) = (
        [(along @ component).toarray().reshape(3, 3) for along in to_node] for component in to_cells
    )
    return np.stack([a, 0.5 * (b_first + b_second), c])


def gradient_operator(grid: Grid) -> sparse.csr_matrix:
    """D_h: φ at the N nodes -> T at the n cell centers, shape (n d, N)."""
    return _interleave(list(_component_operators(grid.shape, grid.spacing)))


def map_hessian_operator(grid: Grid) -> sparse.csr_matrix:
    """B_h: T (n d,) -> the symmetrized discrete Jacobian at the interior nodes (m s,)."""
    components = _component_operators(map_shape(grid), grid.spacing)
    if grid.dim == 1:
        return components[0]
    along_first, along_second = components
    n = along_first.shape[1]
    zero = sparse.csr_matrix((along_first.shape[0], n))

    def acting_on(first, second):  # first T_1 + second T_2, for T stored interleaved
        blocked = sparse.hstack([first, second], format="csr")
        return blocked[:, np.arange(2 * n).reshape(2, n).T.ravel()]

    return _interleave(
        [
            acting_on(along_first, zero),
            acting_on(0.5 * along_second, 0.5 * along_first),
            acting_on(zero, along_second),
        ]
    )


def hessian_operator(grid: Grid) -> sparse.csr_matrix:
    """H_h = B_h D_h: φ at the nodes -> the discrete Hessian at the interior nodes (m s, N)."""
    return (map_hessian_operator(grid) @ gradient_operator(grid)).tocsr()


def block_diagonal(blocks: np.ndarray) -> sparse.csr_matrix:
    """The sparse block-diagonal matrix of k square blocks (k, s, s)."""
    k, s, _ = blocks.shape
    return sparse.bsr_matrix((blocks, np.arange(k), np.arange(k + 1)), shape=(k * s, k * s)).tocsr()


def kernel_basis(grid: Grid) -> np.ndarray:
    """A basis of ker D_h (rows): the constants, and the checkerboard mode in d = 2."""
    ones = np.ones(grid.shape)
    if grid.dim == 1:
        return ones.ravel()[None]
    i, j = np.indices(grid.shape)
    return np.stack([ones.ravel(), ((-1.0) ** (i + j)).ravel()])


def gauge_nodes(grid: Grid, anchor: int = 0) -> np.ndarray:
    """Flat indices of the nodes where φ is set to 0: one per basis vector of ker D_h.

    The node `anchor` (flat index; default the first node) in d = 1; in d = 2 also its
    neighbour along the last axis (the other checkerboard colour), or the one before it
    when the anchor ends its row. `Problem.gauge_nodes` anchors the gauge where ϱ0 is
    largest, which keeps the systems solved in the gauge well conditioned.
    """
    if not 0 <= anchor < int(np.prod(grid.shape)):
        raise ValueError(f"anchor must be a node index in [0, {np.prod(grid.shape)}), got {anchor}")
    if grid.dim == 1:
        return np.array([anchor])
    last = grid.shape[-1]
    neighbour = anchor + 1 if (anchor + 1) % last else anchor - 1
    return np.array([anchor, neighbour])


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
