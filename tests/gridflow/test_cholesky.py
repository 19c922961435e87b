"""The multifrontal Cholesky factorization of grid matrices (gridflow.cholesky), against dense
LAPACK solves, in d = 1, 2, 3 and for stencil reaches 1 and 2."""

import numpy as np
import pytest
from scipy import sparse

from gridflow import cholesky
from gridflow.cholesky import elimination_order, front_structure

SHAPES = [(40,), (9, 13), (30, 17), (7, 6, 9), (11, 11, 11)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reach", [1, 2])
def test_solves_agree_with_a_dense_solve(random_grid_matrix, shape, reach):
    matrix = random_grid_matrix(shape, reach)
    rhs = np.random.default_rng(1).standard_normal((matrix.shape[0], 2))
    expected = np.linalg.solve(matrix.toarray(), rhs)
    factor = cholesky.cholesky(matrix, shape, reach)
    np.testing.assert_allclose(factor.solve(rhs), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(factor.solve(rhs[:, 0]), expected[:, 0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reach", [1, 2])
def test_the_fronts_eliminate_every_node_once_and_their_boundaries_later(shape, reach):
    structure = front_structure(shape, reach, leaf=4)
    order = np.concatenate([front.eliminated for front in structure.fronts])
    np.testing.assert_array_equal(np.sort(order), np.arange(np.prod(shape)))
    np.testing.assert_array_equal(order, elimination_order(shape, reach, leaf=4))
    when = np.empty(order.size, dtype=int)
    when[order] = np.arange(order.size)
    for front in structure.fronts:
        if front.boundary.size:
            assert when[front.boundary].min() > when[front.eliminated].max()
    assert structure.fronts[-1].boundary.size == 0  # the root


def test_the_factor_is_the_dense_cholesky_factor(random_grid_matrix):
    """L Lᵀ = A: the product of the factor with the identity's columns, solved back."""
    shape, reach = (12, 10), 2
    matrix = random_grid_matrix(shape, reach, seed=3)
    factor = cholesky.cholesky(matrix, shape, reach)
    inverse = factor.solve(np.eye(matrix.shape[0]))
    np.testing.assert_allclose(inverse @ matrix.toarray(), np.eye(matrix.shape[0]), atol=1e-12)


def test_an_indefinite_matrix_is_refused(random_grid_matrix):
    shape = (15, 14)
    message = r"^the matrix is not positive definite \(a front's pivot \d+ is not > 0\)$"
    with pytest.raises(np.linalg.LinAlgError, match=message):
        cholesky.cholesky(random_grid_matrix(shape, 2, definite=False), shape, 2)


def test_a_matrix_reaching_farther_than_its_stencil_is_refused(random_grid_matrix):
    shape = (10, 10)
    matrix = random_grid_matrix(shape, 2)
    with pytest.raises(ValueError, match="more than 1 apart"):
        cholesky.cholesky(matrix, shape, 1)
    wrapped = sparse.lil_matrix(sparse.eye(100))
    wrapped[9, 10] = wrapped[10, 9] = 0.1  # flat neighbours, but a row apart on the grid
    with pytest.raises(ValueError, match="more than 1 apart"):
        cholesky.cholesky(wrapped.tocsr(), shape, 1)


def test_a_new_pattern_is_not_read_with_the_last_one(random_grid_matrix):
    """The stencil positions of the last pattern are reused only for the same pattern: a
    matrix with one entry fewer (an exact zero dropped) is read afresh."""
    shape = (9, 9)
    full = random_grid_matrix(shape, 1, seed=5)
    cholesky.cholesky(full, shape, 1)
    dropped = full.tolil()
    dropped[3, 4] = dropped[4, 3] = 0.0
    dropped = dropped.tocsr()
    dropped.eliminate_zeros()
    rhs = np.arange(81.0)
    np.testing.assert_allclose(
        cholesky.cholesky(dropped, shape, 1).solve(rhs),
        np.linalg.solve(dropped.toarray(), rhs),
        atol=1e-12,
    )


def test_wrong_sizes_are_refused_by_name(random_grid_matrix):
    shape = (9, 11)
    matrix = random_grid_matrix(shape, 2)
    with pytest.raises(ValueError, match=r"must have shape \(99, 99\)"):
        cholesky.cholesky(matrix[:98, :98], shape, 2)
    with pytest.raises(ValueError, match=r"must have shape \(99, 25\)"):
        cholesky.cholesky(matrix.toarray(), shape, 2)
    factor = cholesky.cholesky(matrix, shape, 2)
    with pytest.raises(ValueError, match=r"rhs must have shape \(N,\)"):
        factor.solve(np.ones(100))


@pytest.mark.parametrize(("shape", "reach"), [((13, 11), 2), ((30, 17), 1), ((7, 6, 9), 2)])
def test_the_blocks_are_those_of_the_dense_factor_in_elimination_order(
    random_grid_matrix, shape, reach
):
    """Each front's diagonal block and the block below it are the entries of the dense
    Cholesky factor of P A Pᵀ (P: the elimination order) in its rows and columns."""
    matrix = random_grid_matrix(shape, reach, seed=4)
    factor = cholesky.cholesky(matrix, shape, reach)
    structure = factor.structure
    order = structure.eliminated
    position = np.empty(order.size, dtype=int)
    position[order] = np.arange(order.size)
    dense = np.linalg.cholesky(matrix.toarray()[np.ix_(order, order)])
    for f, front in enumerate(structure.fronts):
        columns, rows = position[front.eliminated], position[front.boundary]
        e, b = columns.size, rows.size
        start = structure.diagonal_offsets[f]
        block = factor.diagonal[start : start + e * e].reshape((e, e), order="F")
        np.testing.assert_allclose(np.tril(block), dense[np.ix_(columns, columns)], atol=1e-12)
        start = structure.below_offsets[f]
        below = factor.below[start : start + e * b].reshape((e, b), order="F")
        np.testing.assert_allclose(below.T, dense[np.ix_(rows, columns)], atol=1e-12)
        others = np.setdiff1d(np.arange(columns.max() + 1, order.size), rows)
        np.testing.assert_array_equal(dense[np.ix_(others, columns)], 0.0)


def test_a_factor_written_over_a_reused_one_is_the_same(random_grid_matrix):
    """`reuse`: the new factor takes the old one's arrays and equals a fresh factorization;
    a factor of another grid is not reused."""
    shape = (13, 11)
    first, second = (random_grid_matrix(shape, 2, seed=seed) for seed in (6, 7))
    old = cholesky.cholesky(first, shape, 2)
    fresh = cholesky.cholesky(second, shape, 2)
    reused = cholesky.cholesky(second, shape, 2, reuse=old)
    assert np.shares_memory(reused.below, old.below)
    np.testing.assert_array_equal(reused.diagonal, fresh.diagonal)
    np.testing.assert_array_equal(reused.below, fresh.below)
    other = cholesky.cholesky(random_grid_matrix((9, 9), 2), (9, 9), 2, reuse=fresh)
    assert not np.shares_memory(other.below, fresh.below)
