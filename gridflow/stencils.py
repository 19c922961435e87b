"""Symmetric grid matrices stored by stencil: values[i, k] = A[i, i + offset k].

The matrices of the grid solver couple only nodes at most `reach` apart along every axis
(docs/performance.md, 'The sparse Cholesky factorization'). Stored as an (N, K) array
over the K = (2 reach + 1)^d offsets of `stencil_offsets`, they are assembled without
sparse matrix products (`add_quadratic_form`: the quadratic forms Dᵀ P D of the
Newton matrices, from their local blocks) and read by the multifrontal factorization
(`gridflow.cholesky`) without index searches. `to_csr` gives the same matrix as a scipy
CSR matrix with the full stencil pattern.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit
from scipy import sparse


def stencil_offsets(dim: int, reach: int) -> np.ndarray:
    """The offsets of the (2 reach + 1)^dim stencil, (K, dim), the last axis fastest."""
    axes = [np.arange(-reach, reach + 1)] * dim
    return np.stack([m.ravel() for m in np.meshgrid(*axes, indexing="ij")], axis=1)


def _neighbour_indices(shape: tuple[int, ...], reach: int) -> np.ndarray:
    """[i, k] = the flat index of node i + offset k, or -1 off the grid, (N, K)."""
    nodes = np.stack(np.unravel_index(np.arange(math.prod(shape)), shape), axis=1)
    neighbours = nodes[:, None, :] + stencil_offsets(len(shape), reach)[None]
    inside = np.all((neighbours >= 0) & (neighbours < np.array(shape)), axis=2)
    flat = np.ravel_multi_index(
        np.where(inside[..., None], neighbours, 0).transpose(2, 0, 1), shape
    )
    return np.where(inside, flat, -1)


@functools.lru_cache(maxsize=8)
def csr_pattern(shape: tuple[int, ...], reach: int):
    """(indptr, indices, entries) of the full stencil pattern: the CSR matrix whose row i
    holds every node within `reach` of node i, columns sorted, and the flat indices into
    the (N, K) stencil array of its entries."""
    neighbours = _neighbour_indices(shape, reach)  # sorted along k: the last axis fastest
    inside = neighbours >= 0
    indptr = np.concatenate([[0], np.cumsum(inside.sum(axis=1))])
    entries = np.flatnonzero(inside.ravel())
    for array in (indptr, entries):
        array.setflags(write=False)
    indices = neighbours.ravel()[entries]
    indices.setflags(write=False)
    return indptr, indices, entries


def to_csr(values: np.ndarray, shape: tuple[int, ...], reach: int) -> sparse.csr_matrix:
    """The stencil matrix (N, K) as a CSR matrix with the full stencil pattern."""
    indptr, indices, entries = csr_pattern(tuple(shape), reach)
    size = math.prod(shape)
    return sparse.csr_matrix((values.ravel()[entries], indices.copy(), indptr.copy()), (size, size))


def shifted(array: np.ndarray, shape: tuple[int, ...], reach: int) -> np.ndarray:
    """[i, k] = array[i + offset k] (0 off the grid), (N, K): a node array seen from each
    node's stencil, for scaling the stencil matrix by diagonal matrices."""
    padded = np.pad(np.reshape(array, shape), reach)
    windows = [
        padded[
            tuple(slice(reach + o, reach + o + n) for o, n in zip(offset, shape, strict=True))
        ].ravel()
        for offset in stencil_offsets(len(shape), reach)
    ]
    return np.stack(windows, axis=1)


def scaled(values: np.ndarray, scale: np.ndarray, shape: tuple[int, ...], reach: int) -> np.ndarray:
    """S A S for S = diag(scale) and A's stencil values (N, K), a new array: [i, k] =
    values[i, k] · (scale[i] · scale[i + offset k]), 0 off the grid (`shifted`'s product,
    without its (N, K) temporaries)."""
    arguments = _kernel_arguments(values, scale, shape, reach)
    result = np.empty_like(arguments[0])  # numpy's allocation: huge pages, where numba's
    _scaled(result, *arguments)  # (malloc) would fault in 4 KiB pages (docs/performance.md)
    return result


def _kernel_arguments(values, node_array, shape, reach) -> tuple:
    """The stencil values and a node array as contiguous float64 arrays, the shape and the
    stencil's offsets: what the kernels that walk a stencil by node take."""
    return (
        np.ascontiguousarray(values, dtype=float),
        np.ascontiguousarray(node_array, dtype=float),
        np.array(shape, dtype=np.int64),
        stencil_offsets(len(shape), reach),
    )


@njit(cache=True)
def _unravel(i, shape, coordinates):
    """coordinates ← node i's grid coordinates (C order)."""
    for axis in range(shape.size - 1, -1, -1):
        coordinates[axis] = i % shape[axis]
        i //= shape[axis]


@njit(cache=True)
def _neighbour(coordinates, offset, shape):
    """The flat index of the node at coordinates + offset, or -1 off the grid."""
    neighbour = 0
    for axis in range(shape.size):
        c = coordinates[axis] + offset[axis]
        if c < 0 or c >= shape[axis]:
            return -1
        neighbour = neighbour * shape[axis] + c
    return neighbour


@njit(cache=True)
def _flat_offsets(shape, offsets):
    """The offsets as differences of flat indices (C order), and the stencil's reach."""
    flat = np.zeros(offsets.shape[0], dtype=np.int64)
    for k in range(offsets.shape[0]):
        for axis in range(shape.size):
            flat[k] = flat[k] * shape[axis] + offsets[k, axis]
    return flat, np.abs(offsets).max()


@njit(cache=True)
def _stencil_neighbours(i, shape, offsets, flat, reach, coordinates, out):
    """out[k] ← the flat index of node i + offset k, or -1 off the grid: i + flat[k] for a
    node at least `reach` from every side, else checked axis by axis."""
    _unravel(i, shape, coordinates)
    inside = True
    for axis in range(shape.size):
        inside = inside and reach <= coordinates[axis] < shape[axis] - reach
    for k in range(offsets.shape[0]):
        out[k] = i + flat[k] if inside else _neighbour(coordinates, offsets[k], shape)


@njit(cache=True)
def _scaled(result, values, scale, shape, offsets):
    coordinates = np.empty(shape.size, dtype=np.int64)
    neighbours = np.empty(offsets.shape[0], dtype=np.int64)
    flat, reach = _flat_offsets(shape, offsets)
    for i in range(values.shape[0]):
        _stencil_neighbours(i, shape, offsets, flat, reach, coordinates, neighbours)
        for k in range(offsets.shape[0]):
            other = scale[neighbours[k]] if neighbours[k] >= 0 else 0.0
            result[i, k] = values[i, k] * (scale[i] * other)


def infinity_norm(values: np.ndarray) -> float:
    """‖A‖∞, the largest absolute row sum, of the matrix of stencil values (N, K)."""
    return float(np.abs(values).sum(axis=1).max())


def multiply(values: np.ndarray, x: np.ndarray, shape: tuple[int, ...], reach: int) -> np.ndarray:
    """A x for A's stencil values (N, K) and x (N,), without a sparse matrix."""
    return _multiply(*_kernel_arguments(values, x, shape, reach))


@njit(cache=True)
def _multiply(values, x, shape, offsets):
    result = np.empty(values.shape[0])
    coordinates = np.empty(shape.size, dtype=np.int64)
    neighbours = np.empty(offsets.shape[0], dtype=np.int64)
    flat, reach = _flat_offsets(shape, offsets)
    for i in range(values.shape[0]):
        _stencil_neighbours(i, shape, offsets, flat, reach, coordinates, neighbours)
        total = 0.0
        for k in range(offsets.shape[0]):
            if neighbours[k] >= 0:
                total += values[i, k] * x[neighbours[k]]
        result[i] = total
    return result


def _stencil_positions(indptr, indices, shape, reach) -> np.ndarray:
    """For a CSR pattern on the grid's nodes, each entry's flat index in the (N, K) stencil
    array: row * K + the index of its offset among `stencil_offsets`."""
    rows = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    width = 2 * reach + 1
    code = np.zeros(rows.size, dtype=np.int64)
    stride = 1
    for axis in reversed(range(len(shape))):  # the offset along each axis, from the flat index
        offset = (indices // stride) % shape[axis] - (rows // stride) % shape[axis]
        if offset.size and np.abs(offset).max() > reach:
            raise ValueError(f"the matrix couples grid nodes more than {reach} apart")
        code += (offset + reach) * width ** (len(shape) - 1 - axis)
        stride *= shape[axis]
    return rows * width ** len(shape) + code


_last_pattern: list = []  # [(indptr, indices, shape, reach), positions]: one pattern kept


def stencil_values(matrix: sparse.spmatrix, shape: tuple[int, ...], reach: int) -> np.ndarray:
    """The matrix as (N, K) values: [i, k] = A[i, i + offset k] (0 off the grid).

    The positions of the full stencil pattern (`to_csr`'s) are known; those of another
    CSR pattern are kept for the next call: comparing a pattern costs less than reading it.
    Raises ValueError when the matrix couples nodes more than `reach` apart on some axis.
    """
    canonical = sparse.csr_matrix(matrix)
    canonical.sum_duplicates()
    key = (canonical.indptr, canonical.indices, tuple(shape), reach)
    indptr, indices, entries = csr_pattern(tuple(shape), reach)
    if _same_pattern((indptr, indices, *key[2:]), key):  # the Newton matrices' pattern
        positions = entries
    elif _last_pattern and _same_pattern(_last_pattern[0], key):
        positions = _last_pattern[1]
    else:
        positions = _stencil_positions(canonical.indptr, canonical.indices, shape, reach)
        _last_pattern[:] = [(key[0].copy(), key[1].copy(), *key[2:]), positions]
    values = np.zeros((math.prod(shape), (2 * reach + 1) ** len(shape)))
    values.ravel()[positions] = canonical.data
    return values


def _same_pattern(kept, key) -> bool:
    return (
        kept[2:] == key[2:] and np.array_equal(kept[0], key[0]) and np.array_equal(kept[1], key[1])
    )


def add_quadratic_form(values, blocks, coefficients, sites_shape, nodes_shape, reach):
    """values += the stencil of Σ_sites (C φ_site)ᵀ blocks[site] (C φ_site), in place.

    A site p of the `sites_shape` grid (the cells, or the interior nodes) reads φ on the
    window of nodes p + a, a < w along every axis, through the local operator coefficients
    (s, w, .., w): its outputs are Σ_a coefficients[r, a] φ(p + a), r < s (T's components at
    a cell, H_h's entries at a node). blocks (sites, s, s) holds each site's symmetric
    weight. This is Dᵀ blockdiag(blocks) D for the operator D, without forming D: the Newton
    matrices' two parts, D_hᵀ P D_h and H_hᵀ κ H_h, in any dimension.
    """
    dim, width = len(nodes_shape), coefficients.shape[1]
    outputs, sites_count = coefficients.shape[0], math.prod(sites_shape)
    if coefficients.shape != (outputs, *(width,) * dim) or len(sites_shape) != dim:
        raise ValueError(
            f"coefficients must be (s, w, ..., w) with {dim} window axes and sites_shape "
            f"{dim} numbers, got {coefficients.shape} and {tuple(sites_shape)}"
        )
    if any(n + width - 1 > m for n, m in zip(sites_shape, nodes_shape, strict=True)):
        raise ValueError(
            f"windows of {width} nodes at the sites {tuple(sites_shape)} leave the grid of "
            f"{tuple(nodes_shape)} nodes"
        )
    if blocks.shape != (sites_count, outputs, outputs):
        raise ValueError(f"blocks must be {(sites_count, outputs, outputs)}, got {blocks.shape}")
    if values.shape != (math.prod(nodes_shape), (2 * reach + 1) ** dim) or width - 1 > reach:
        raise ValueError(
            f"values must be {(math.prod(nodes_shape), (2 * reach + 1) ** dim)} with a reach "
            f"of at least {width - 1}, got {values.shape} and reach {reach}"
        )
    corners = np.stack(np.unravel_index(np.arange(width**dim), (width,) * dim), axis=1)
    strides = np.cumprod((1, *nodes_shape[:0:-1]))[::-1]
    sites = np.stack(np.unravel_index(np.arange(math.prod(sites_shape)), sites_shape), axis=1)
    pair_offsets = corners[None, :, :] - corners[:, None, :] + reach  # [a, a2]: a2 - a
    pair_stencil = np.ravel_multi_index(pair_offsets.transpose(2, 0, 1), (2 * reach + 1,) * dim)
    _add_quadratic_form(
        values,
        blocks,
        np.ascontiguousarray(coefficients.reshape(coefficients.shape[0], -1)),
        sites @ strides,
        corners @ strides,
        pair_stencil,
    )


@njit(cache=True)
def _add_quadratic_form(values, blocks, coefficients, site_base, corner_offset, pair_stencil):
    """The loop of `add_quadratic_form`, on flat windows: site i's corner a is the node
    site_base[i] + corner_offset[a], and the pair (a, a2) the stencil entry pair_stencil[a, a2]."""
    outputs, corners = coefficients.shape
    weighted = np.empty((outputs, corners))
    for site in range(site_base.shape[0]):
        block = blocks[site]
        for r in range(outputs):  # weighted = block · coefficients
            for a in range(corners):
                total = 0.0
                for t in range(outputs):
                    total += block[r, t] * coefficients[t, a]
                weighted[r, a] = total
        for a in range(corners):
            row = site_base[site] + corner_offset[a]
            for a2 in range(corners):
                total = 0.0
                for r in range(outputs):
                    total += coefficients[r, a] * weighted[r, a2]
                values[row, pair_stencil[a, a2]] += total
