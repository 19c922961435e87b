"""The elimination tree of a grid's nested dissection, and the assembly plan of its fronts.

`gridflow.cholesky` factorizes a grid matrix front by front (the multifrontal method): the
box of nodes is cut across its longest axis by `reach` layers of nodes (the separator),
which leaves two halves that do not couple; the halves are dissected in turn, down to
leaves of at most `leaf` nodes per axis. A front eliminates its separator (a leaf: its
whole box) after both halves; its boundary is the nodes outside its box within `reach` of
it, all of them in the separators of its ancestors. What this module computes depends on
the grid's shape and the reach only, and is computed once per shape (`front_structure`):
which nodes each front holds, where the matrix's entries and its children's Schur
complements go in it, and where those complements wait until their parent takes them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numba import njit

from gridflow import stencils

DEFAULT_LEAF = 8
"""Leaves of the dissection hold at most this many nodes per axis. On sides of 2^k + 1 nodes
leaves of 8 to 13 give the same tree; 16 and 24 were up to 2.4 times slower at 257² and 513²
(denser leaf fronts), and a larger factor."""


@dataclass(frozen=True)
class Front:
    """One node of the elimination tree (global node indices)."""

    eliminated: np.ndarray
    boundary: np.ndarray
    children: tuple[int, ...]


@dataclass(frozen=True)
class FrontStructure:
    """The fronts of a grid's nested dissection in postorder (children before parents), and
    the same index sets concatenated, with the offsets of each front's piece (for the numba
    substitutions and the factor's flat storage: its diagonal blocks e², its blocks below
    e × u, column-major), and the assembly plan of the factorization, flat:

    - front f's entries of A: positions[a] (flat column-major positions in the front's lower
      triangle, the columns of its eliminated nodes) receive the stencil values
      entries[a] (flat indices into `stencil_values`), for a from assembly_offsets[f] to
      assembly_offsets[f + 1];
    - its children: children[children_offsets[f] : children_offsets[f + 1]];
    - parent_positions: beside `boundary`, where each boundary node sits among its
      parent front's nodes;
    - front f's Schur complement (its update matrix, u², column-major) is assembled,
      computed and kept at update_offsets[f] until its parent takes it (`_update_stack`).
    """

    shape: tuple[int, ...]
    reach: int
    fronts: tuple[Front, ...]
    eliminated: np.ndarray
    boundary: np.ndarray
    eliminated_offsets: np.ndarray
    boundary_offsets: np.ndarray
    diagonal_offsets: np.ndarray
    below_offsets: np.ndarray
    assembly_offsets: np.ndarray
    assembly_positions: np.ndarray
    assembly_entries: np.ndarray
    children_offsets: np.ndarray
    children: np.ndarray
    parent_positions: np.ndarray
    update_offsets: np.ndarray
    stack_size: int

    @property
    def factor_entries(self) -> int:
        """The numbers the factor holds: its diagonal blocks and the blocks below them."""
        return int(self.diagonal_offsets[-1] + self.below_offsets[-1])

    @property
    def flops(self) -> float:
        """The floating-point operations of one factorization: per front with e eliminated
        and b boundary nodes, e³/3 (potrf) + e² b (trsm) + e b² (syrk)."""
        e = np.diff(self.eliminated_offsets).astype(float)
        b = np.diff(self.boundary_offsets).astype(float)
        return float(np.sum(e**3 / 3 + e**2 * b + e * b**2))


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


def _tree(shape, reach: int, leaf: int):
    """The tree (`_dissect`) and its boxes as arrays (F, d, 2) of (start, stop): each front's
    box, the box it eliminates, and its box grown by `reach` (within the grid)."""
    tree = _dissect(shape, reach, leaf)
    boxes = np.array([box for box, _, _ in tree], dtype=np.int64).reshape(len(tree), -1, 2)
    eliminated = np.array([box for _, box, _ in tree], dtype=np.int64).reshape(boxes.shape)
    grown = boxes.copy()
    grown[:, :, 0] = np.maximum(boxes[:, :, 0] - reach, 0)
    grown[:, :, 1] = np.minimum(boxes[:, :, 1] + reach, np.array(shape))
    return tree, boxes, eliminated, grown


def _offsets(sizes) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])


def _strides(shape) -> np.ndarray:
    return np.cumprod((1, *shape[:0:-1]))[::-1].astype(np.int64)  # C order: the last axis fastest


def elimination_order(shape: tuple[int, ...], reach: int, leaf: int = DEFAULT_LEAF) -> np.ndarray:
    """The nodes (flat indices) in the order the fronts eliminate them: a permutation."""
    shape = tuple(int(n) for n in shape)
    _, boxes, eliminated, _ = _tree(shape, reach, leaf)
    order = np.empty(int(np.prod(shape)), dtype=np.int64)
    _box_nodes(_strides(shape), eliminated, boxes, False, order, _offsets(_box_sizes(eliminated)))
    return order


@functools.lru_cache(maxsize=8)
def front_structure(shape: tuple[int, ...], reach: int, leaf: int = DEFAULT_LEAF) -> FrontStructure:
    """The elimination tree of `shape`'s grid for matrices of the given reach, with the
    assembly plan of every front (computed once per shape: the factorizations reuse it)."""
    shape = tuple(int(n) for n in shape)
    tree, boxes, eliminated_boxes, grown = _tree(shape, reach, leaf)
    eliminated_sizes = _box_sizes(eliminated_boxes)
    boundary_sizes = _box_sizes(grown) - _box_sizes(boxes)
    e_offsets, b_offsets = _offsets(eliminated_sizes), _offsets(boundary_sizes)
    eliminated = np.empty(e_offsets[-1], dtype=np.int64)
    boundary = np.empty(b_offsets[-1], dtype=np.int64)
    strides = _strides(shape)
    _box_nodes(strides, eliminated_boxes, boxes, False, eliminated, e_offsets)
    _box_nodes(strides, grown, boxes, True, boundary, b_offsets)
    parents = np.full(len(tree), -1, dtype=np.int64)
    for index, (_, _, children) in enumerate(tree):
        parents[list(children)] = index
    a_offsets, positions, entries, parent_positions = _assembly_plan(
        np.array(shape, dtype=np.int64), stencils.stencil_offsets(len(shape), reach),
        eliminated, boundary, e_offsets, b_offsets, parents,
    )  # fmt: skip
    fronts = tuple(
        Front(
            eliminated=eliminated[e_offsets[f] : e_offsets[f + 1]],
            boundary=boundary[b_offsets[f] : b_offsets[f + 1]],
            children=children,
        )
        for f, (_, _, children) in enumerate(tree)
    )
    return FrontStructure(
        shape,
        reach,
        fronts,
        eliminated=eliminated,
        boundary=boundary,
        eliminated_offsets=e_offsets,
        boundary_offsets=b_offsets,
        diagonal_offsets=_offsets(eliminated_sizes**2),
        below_offsets=_offsets(eliminated_sizes * boundary_sizes),
        assembly_offsets=a_offsets,
        assembly_positions=positions,
        assembly_entries=entries,
        children_offsets=_offsets([len(children) for _, _, children in tree]),
        children=np.array([c for _, _, children in tree for c in children], dtype=np.int64),
        parent_positions=parent_positions,
        **_update_stack(fronts, boundary_sizes),
    )


def _update_stack(fronts, boundary_sizes) -> dict:
    """Where each front's update matrix lies (update_offsets) in an array of stack_size
    numbers: two stacks, one for the fronts at an even depth of the tree and one for those at
    an odd depth, one after the other. A front's update is assembled and computed where it
    then waits for its parent: on top of its own depth's stack, which its children (one
    level deeper, on the other stack) do not touch; in postorder the children's updates are
    the top of their stack when their parent takes them off."""
    depth = np.zeros(len(fronts), dtype=np.int64)
    for index in range(len(fronts) - 1, -1, -1):  # parents after their children
        depth[list(fronts[index].children)] = depth[index] + 1
    update_offsets = np.zeros(len(fronts), dtype=np.int64)
    stacks, tops, largest = ([], []), [0, 0], [0, 0]
    for index, front in enumerate(fronts):
        if front.children:
            below = stacks[1 - depth[index] % 2]
            if below[-len(front.children) :] != list(front.children):
                raise AssertionError("a front's children are not the top of their stack")
            del below[-len(front.children) :]
            tops[1 - depth[index] % 2] = update_offsets[front.children[0]]
        parity = depth[index] % 2
        update_offsets[index] = tops[parity]
        tops[parity] += boundary_sizes[index] ** 2
        largest[parity] = max(largest[parity], tops[parity])
        stacks[parity].append(index)
    update_offsets[depth % 2 == 1] += largest[0]  # the odd depths' stack after the even's
    return {"update_offsets": update_offsets, "stack_size": int(sum(largest))}


@njit(cache=True)
def _box_sizes(boxes):
    """The number of nodes in each box of boxes (F, d, 2)."""
    sizes = np.ones(boxes.shape[0], dtype=np.int64)
    for f in range(boxes.shape[0]):
        for axis in range(boxes.shape[1]):
            sizes[f] *= boxes[f, axis, 1] - boxes[f, axis, 0]
    return sizes


@njit(cache=True)
def _box_nodes(strides, outer, inner, without_inner, out, offsets):
    """The flat indices (C order) of the nodes in each box outer[f], or with `without_inner`
    those outside inner[f] only, into out[offsets[f] : offsets[f + 1]]."""
    dim = strides.size
    for f in range(outer.shape[0]):
        box, start = outer[f], offsets[f]
        count = 1
        for axis in range(dim):
            count *= box[axis, 1] - box[axis, 0]
        index = box[:, 0].copy()
        for _ in range(count):
            flat, inside = 0, without_inner
            for axis in range(dim):
                flat += index[axis] * strides[axis]
                inside = inside and inner[f, axis, 0] <= index[axis] < inner[f, axis, 1]
            if not inside:
                out[start] = flat
                start += 1
            axis = dim - 1  # the next node: the last axis fastest, an odometer
            index[axis] += 1
            while axis > 0 and index[axis] == box[axis, 1]:
                index[axis] = box[axis, 0]
                axis -= 1
                index[axis] += 1


@njit(cache=True)
def _local(node, f, position, front_of, e_offsets, b_offsets, boundary):
    """The node's position in front f (its eliminated nodes, then its boundary, sorted), or
    -1 when the front does not hold it."""
    q = position[node]
    if front_of[q] == f:
        return q - e_offsets[f]
    b0, b1 = b_offsets[f], b_offsets[f + 1]
    i = b0 + np.searchsorted(boundary[b0:b1], node)
    if i < b1 and boundary[i] == node:
        return e_offsets[f + 1] - e_offsets[f] + i - b0
    return -1


@njit(cache=True)
def _assembly_plan(shape, offsets, eliminated, boundary, e_offsets, b_offsets, parents):
    """The flat plan of `FrontStructure`: (assembly_offsets, assembly_positions,
    assembly_entries, parent_positions). A front receives the entries A[e, e + offset] of
    each node e it eliminates whose row comes at or after e in the elimination order (its
    lower triangle: a row before e is in the box's halves, eliminated before)."""
    nodes, width, dim = eliminated.size, offsets.shape[0], offsets.shape[1]
    fronts = e_offsets.size - 1
    front_of = np.empty(nodes, dtype=np.int64)  # by position in the elimination order
    position = np.empty(nodes, dtype=np.int64)  # by node
    for f in range(fronts):
        for p in range(e_offsets[f], e_offsets[f + 1]):
            front_of[p] = f
            position[eliminated[p]] = p
    positions = np.empty(nodes * width, dtype=np.int64)
    entries = np.empty(nodes * width, dtype=np.int64)
    a_offsets = np.zeros(fronts + 1, dtype=np.int64)
    coordinates = np.empty(dim, dtype=np.int64)
    count = 0
    for f in range(fronts):
        e0 = e_offsets[f]
        size = e_offsets[f + 1] - e0 + b_offsets[f + 1] - b_offsets[f]
        for p in range(e0, e_offsets[f + 1]):
            node = eliminated[p]
            rest = node
            for axis in range(dim - 1, -1, -1):
                coordinates[axis] = rest % shape[axis]
                rest //= shape[axis]
            for k in range(width):
                neighbour = 0
                for axis in range(dim):
                    c = coordinates[axis] + offsets[k, axis]
                    if c < 0 or c >= shape[axis]:
                        neighbour = -1
                        break
                    neighbour = neighbour * shape[axis] + c
                if neighbour < 0 or position[neighbour] < p:
                    continue
                row = _local(neighbour, f, position, front_of, e_offsets, b_offsets, boundary)
                if row < 0:
                    raise AssertionError("a node within reach is not in the front")
                positions[count] = (p - e0) * size + row
                entries[count] = node * width + k
                count += 1
        a_offsets[f + 1] = count
    parent_positions = np.empty(boundary.size, dtype=np.int64)
    for c in range(fronts):
        for i in range(b_offsets[c], b_offsets[c + 1]):
            local = _local(boundary[i], parents[c], position, front_of, e_offsets, b_offsets,
                           boundary)  # fmt: skip
            if local < 0:
                raise AssertionError("a child's boundary leaves its parent's front")
            parent_positions[i] = local
    return a_offsets, positions[:count].copy(), entries[:count].copy(), parent_positions
