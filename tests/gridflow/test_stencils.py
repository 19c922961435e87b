"""Grid matrices stored by stencil (gridflow.stencils): the CSR round trip, the shifted node
arrays, and the quadratic forms assembled site by site against sparse products."""

import numpy as np
import pytest
from scipy import sparse

from gridflow import Grid, operators, stencils


@pytest.mark.parametrize(("shape", "reach"), [((7, 9), 2), ((6, 5), 1), ((5, 4, 6), 1)])
def test_csr_and_stencil_values_are_one_matrix(random_grid_matrix, shape, reach):
    matrix = random_grid_matrix(shape, reach)
    values = stencils.stencil_values(matrix, shape, reach)
    assert values.shape == (np.prod(shape), (2 * reach + 1) ** len(shape))
    back = stencils.to_csr(values, shape, reach)
    assert abs(back - matrix).max() == 0.0
    assert back.nnz >= matrix.nnz  # the full stencil pattern


def test_shifted_reads_each_neighbour_and_zero_off_the_grid():
    shape, reach = (4, 5), 2
    array = np.arange(20.0) + 1.0
    seen = stencils.shifted(array, shape, reach)
    offsets = stencils.stencil_offsets(2, reach)
    for node in range(20):
        i, j = np.unravel_index(node, shape)
        for k, (di, dj) in enumerate(offsets):
            inside = 0 <= i + di < 4 and 0 <= j + dj < 5
            expected = array[(i + di) * 5 + j + dj] if inside else 0.0
            assert seen[node, k] == expected


@pytest.mark.parametrize("which", ["map", "hessian"])
@pytest.mark.parametrize(
    ("lower", "upper", "shape"),
    [([-1.0, -2.0], [3.0, 1.5], [7, 9]), ([-1.0, -2.0, 0.0], [3.0, 1.5, 1.0], [5, 6, 4])],
)
def test_quadratic_forms_equal_the_sparse_products(which, lower, upper, shape):
    grid = Grid(lower, upper, shape)
    rng = np.random.default_rng(2)
    if which == "map":
        operator, window = operators.gradient_operator(grid), operators.map_window(grid.spacing)
        sites, outputs = operators.map_shape(grid), grid.dim
    else:
        operator = operators.hessian_operator(grid)
        window, sites = operators.hessian_window(grid.spacing), operators.hessian_shape(grid)
        outputs = grid.dim * (grid.dim + 1) // 2
    halves = rng.standard_normal((int(np.prod(sites)), outputs, outputs))
    blocks = halves @ halves.transpose(0, 2, 1)
    values = np.zeros((int(np.prod(grid.shape)), 5**grid.dim))
    stencils.add_quadratic_form(values, blocks, window, sites, grid.shape, 2)
    expected = operator.T @ operators.block_diagonal(blocks) @ operator
    assembled = stencils.to_csr(values, grid.shape, 2)
    assert abs(assembled - expected).max() <= 1e-13 * abs(expected).max()
    assert isinstance(assembled, sparse.csr_matrix)


@pytest.mark.parametrize("window", [operators.map_window, operators.hessian_window])
def test_a_window_is_computed_once_per_spacing_and_cannot_be_changed(window):
    """The windows are cached (every Newton matrix reads them): a caller writing into one
    would change every later matrix, so they are read-only."""
    first = window((0.5, 0.25))
    assert window(np.array([0.5, 0.25])) is first
    assert window((0.5, 0.5)) is not first
    with pytest.raises(ValueError, match="read-only"):
        first[0] = 0.0
    with pytest.raises(ValueError, match="spacing must be"):
        window((0.5, -1.0))


@pytest.mark.parametrize(("shape", "reach"), [((9, 7), 1), ((5, 6, 7), 2), ((12,), 2)])
def test_scaled_is_the_product_with_the_shifted_scale(shape, reach):
    """S A S in the stencil layout, bit for bit the product with `shifted`, 0 off the grid."""
    rng = np.random.default_rng(2)
    values = rng.standard_normal((int(np.prod(shape)), (2 * reach + 1) ** len(shape)))
    scale = rng.uniform(0.0, 2.0, values.shape[0])
    expected = values * (scale[:, None] * stencils.shifted(scale, shape, reach))
    np.testing.assert_array_equal(stencils.scaled(values, scale, shape, reach), expected)


@pytest.mark.parametrize(("shape", "reach"), [((12,), 1), ((7, 9), 2), ((6, 5), 1), ((5, 4, 6), 2)])
def test_the_stencil_product_is_the_sparse_product(random_grid_matrix, shape, reach):
    matrix = random_grid_matrix(shape, reach, seed=2)
    values = stencils.stencil_values(matrix, shape, reach)
    x = np.random.default_rng(3).standard_normal(matrix.shape[0])
    np.testing.assert_allclose(stencils.multiply(values, x, shape, reach), matrix @ x, atol=1e-13)
