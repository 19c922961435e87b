"""The 2D finite-difference operators against independent stencils and exact polynomials.

φ lives at the grid nodes, T = D_h φ at the cell centers (the gradient of the bilinear
interpolant), H_h = B_h D_h at the interior nodes with entries (a, b, c). The boxes are
non-square and not centered, with different spacings along the two axes, so that a
swapped axis or spacing cannot go unnoticed.
"""

import numpy as np
import pytest
from scipy import linalg

from gridflow import (
    Gaussian,
    Grid,
    LogConcaveTarget,
    Problem,
    functionals,
    operators,
    potentials,
)
from gridflow.potentials import GaugedFactorization, helmholtz_projection, metric

ROUNDOFF = 1e-12  # relative: these operators are exact on the polynomials used below
SHAPES = [(4, 5), (6, 6), (7, 4), (8, 9)]  # even and odd node counts per axis


def skewed_grid(shape=(9, 7)):
    """A non-square box, not symmetric about 0, with h0 = 5/8 ≠ h1 = 5/12 (shape (9, 7))."""
    return Grid(lower=[-2.0, -1.0], upper=[3.0, 1.5], shape=list(shape))


def quadratic(points, A, c, constant=0.0):
    """½ xᵀAx + c·x + constant: gradient x A + c (A symmetric), Hessian A."""
    return 0.5 * np.einsum("ni,ij,nj->n", points, A, points) + points @ c + constant


def stencil_gradient(grid, phi):
    """D_h φ by hand: differences along one axis averaged over the two edges of the cell."""
    (h0, h1), f = grid.spacing, phi.reshape(grid.shape)
    first = (f[1:, :-1] - f[:-1, :-1] + f[1:, 1:] - f[:-1, 1:]) / (2 * h0)
    second = (f[:-1, 1:] - f[:-1, :-1] + f[1:, 1:] - f[1:, :-1]) / (2 * h1)
    return np.stack([first.ravel(), second.ravel()], axis=1)


def stencil_hessian(grid, phi):
    """H_h φ by hand at the interior nodes: the 9-point stencils, columns (a, b, c).

    a: second differences along axis 0 averaged across axis 1 with weights (¼, ½, ¼);
    c: the same with the axes swapped; b: the centered mixed difference.
    """
    (h0, h1), f = grid.spacing, phi.reshape(grid.shape)
    second_0 = (f[2:] - 2 * f[1:-1] + f[:-2]) / h0**2  # (n0 - 2, n1)
    second_1 = (f[:, 2:] - 2 * f[:, 1:-1] + f[:, :-2]) / h1**2  # (n0, n1 - 2)
    a = 0.25 * second_0[:, :-2] + 0.5 * second_0[:, 1:-1] + 0.25 * second_0[:, 2:]
    c = 0.25 * second_1[:-2] + 0.5 * second_1[1:-1] + 0.25 * second_1[2:]
    b = (f[2:, 2:] - f[2:, :-2] - f[:-2, 2:] + f[:-2, :-2]) / (4 * h0 * h1)
    return np.stack([a.ravel(), b.ravel(), c.ravel()], axis=1)


def test_operator_shapes():
    grid = skewed_grid()
    cells, interior = 8 * 6, 7 * 5
    assert operators.gradient_operator(grid).shape == (2 * cells, 63)
    assert operators.map_hessian_operator(grid).shape == (3 * interior, 2 * cells)
    assert operators.hessian_operator(grid).shape == (3 * interior, 63)
    assert operators.map_points(grid).shape == (cells, 2)
    assert operators.hessian_points(grid).shape == (interior, 2)


def test_map_points_are_the_cell_centers():
    grid = skewed_grid()
    corners = grid.nodes.reshape(*grid.shape, 2)
    centers = 0.25 * (corners[1:, 1:] + corners[:-1, 1:] + corners[1:, :-1] + corners[:-1, :-1])
    np.testing.assert_allclose(operators.map_points(grid), centers.reshape(-1, 2), atol=1e-15)
    interior = corners[1:-1, 1:-1].reshape(-1, 2)
    np.testing.assert_array_equal(operators.hessian_points(grid), interior)


def test_gradient_is_exact_on_quadratics_at_the_cell_centers():
    """T = A x + c exactly: the bilinear interpolant's gradient at a center is exact for
    every quadratic, including the cross term x1 x2."""
    grid = skewed_grid()
    A, c = np.array([[1.3, -0.4], [-0.4, 0.7]]), np.array([0.2, -0.5])
    T = operators.gradient_operator(grid) @ quadratic(grid.nodes, A, c, 1.7)
    points = operators.map_points(grid)
    np.testing.assert_allclose(T.reshape(-1, 2), points @ A + c, rtol=0, atol=ROUNDOFF)


def test_hessian_is_exact_on_quadratics():
    grid = skewed_grid()
    A = np.array([[1.3, -0.4], [-0.4, 0.7]])
    H = operators.hessian_operator(grid) @ quadratic(grid.nodes, A, np.array([0.2, -0.5]), 3.0)
    expected = np.broadcast_to([A[0, 0], A[0, 1], A[1, 1]], (35, 3))
    np.testing.assert_allclose(H.reshape(-1, 3), expected, rtol=0, atol=ROUNDOFF)


@pytest.mark.parametrize("shape", SHAPES)
def test_operators_equal_the_hand_written_stencils(shape):
    grid = Grid([-1.0, 0.5], [2.0, 3.0], list(shape))
    phi = np.random.default_rng(0).standard_normal(grid.nodes.shape[0])
    D, H = operators.gradient_operator(grid), operators.hessian_operator(grid)
    np.testing.assert_allclose((D @ phi).reshape(-1, 2), stencil_gradient(grid, phi), atol=1e-12)
    np.testing.assert_allclose((H @ phi).reshape(-1, 3), stencil_hessian(grid, phi), atol=1e-11)


def test_hessian_factors_through_the_map():
    """H_h = B_h D_h, with B_h symmetrizing the discrete Jacobian of T (both halves of b
    agree on gradient fields, so B_h D_h is the stencil Hessian)."""
    grid = skewed_grid()
    D, B = operators.gradient_operator(grid), operators.map_hessian_operator(grid)
    H = operators.hessian_operator(grid)
    assert abs(B @ D - H).max() <= 1e-12 * abs(H).max()
    phi = np.random.default_rng(1).standard_normal(grid.nodes.shape[0])
    np.testing.assert_allclose(B @ (D @ phi), stencil_hessian(grid, phi).ravel(), atol=1e-11)


def test_hessian_is_second_order_accurate_on_a_smooth_function():
    def errors(grid):
        x = grid.nodes
        phi = np.sin(x[:, 0]) * np.cos(0.5 * x[:, 1])
        points = operators.hessian_points(grid)
        s, c = np.sin(points[:, 0]), np.cos(0.5 * points[:, 1])
        cs, sn = np.cos(points[:, 0]), np.sin(0.5 * points[:, 1])
        exact = np.stack([-s * c, -0.5 * cs * sn, -0.25 * s * c], axis=1)
        return np.abs((operators.hessian_operator(grid) @ phi).reshape(-1, 3) - exact).max()

    coarse = skewed_grid((17, 13))
    ratio = errors(coarse) / errors(coarse.refined())
    assert ratio == pytest.approx(4.0, rel=0.1)  # h² consistency (measured 3.96)


@pytest.mark.parametrize("shape", SHAPES)
def test_kernel_of_the_gradient_is_constants_and_checkerboard(shape):
    grid = Grid([-1.0, 0.5], [2.0, 3.0], list(shape))
    D = operators.gradient_operator(grid).toarray()
    nodes = D.shape[1]
    assert np.linalg.matrix_rank(D) == nodes - 2
    basis = operators.kernel_basis(grid).toarray()
    i, j = np.indices(grid.shape)
    np.testing.assert_array_equal(basis[1], ((-1.0) ** (i + j)).ravel())
    kernel = linalg.null_space(D)  # orthonormal, computed independently by an SVD
    assert kernel.shape[1] == 2
    residual = basis.T - kernel @ (kernel.T @ basis.T)  # basis ⊂ span(kernel), dims equal
    assert np.abs(residual).max() < 1e-12
    assert np.abs(D @ basis.T).max() == 0.0


@pytest.mark.parametrize("shape", SHAPES)
def test_hessian_annihilates_the_kernel_of_the_gradient(shape):
    grid = Grid([-1.0, 0.5], [2.0, 3.0], list(shape))
    H = operators.hessian_operator(grid)
    assert np.abs(H @ operators.kernel_basis(grid).T.toarray()).max() < 1e-12
    # and affine functions, which are not in ker D_h: H_h sees only second derivatives
    x = grid.nodes
    assert np.abs(H @ (0.3 + x @ [1.5, -2.0])).max() < 1e-12
    assert np.abs(operators.gradient_operator(grid) @ x[:, 0]).max() > 0.5


def test_gauge_nodes_pin_the_kernel():
    grid = Grid([-1.0, 0.5], [2.0, 3.0], [6, 5])
    D = operators.gradient_operator(grid).toarray()
    gauge = operators.gauge_nodes(grid)
    np.testing.assert_array_equal(gauge, [0, 1])
    # one node of each checkerboard colour: the kernel restricted to the gauge is invertible
    assert abs(np.linalg.det(operators.kernel_basis(grid).toarray()[:, gauge])) == pytest.approx(
        2.0
    )
    free = np.setdiff1d(np.arange(D.shape[1]), gauge)
    assert np.linalg.matrix_rank(D[:, free]) == free.size
    # two nodes of the same colour would not do: the checkerboard survives
    same_colour = np.setdiff1d(np.arange(D.shape[1]), [0, 2])
    assert np.linalg.matrix_rank(D[:, same_colour]) == same_colour.size - 1


@pytest.fixture(scope="module")
def small_problem():
    grid = Grid([-4.0, -3.5], [4.5, 3.0], [10, 9])
    source = Gaussian([0.2, -0.1], [[0.6, 0.25], [0.25, 0.4]])
    return Problem(grid, source, LogConcaveTarget.gaussian([0.0, 0.0], np.eye(2)))


def test_reduced_metric_is_nonsingular(small_problem):
    """D_hᵀ W D_h is singular on all nodes (rank N - 2), definite on the free ones."""
    M = metric(small_problem).toarray()
    nodes = M.shape[0]
    # scale to unit diagonal as GaugedFactorization does: the weights span 1e-12..1
    scale = 1 / np.sqrt(np.diag(M))
    scaled = scale[:, None] * M * scale[None, :]
    eigenvalues = np.linalg.eigvalsh(scaled)
    assert np.sum(eigenvalues < 1e-13) == 2

    def smallest_reduced_eigenvalue(gauge):
        free = np.setdiff1d(np.arange(nodes), gauge)
        return np.linalg.eigvalsh(scaled[np.ix_(free, free)]).min()

    # measured 0.19 with the gauge at the largest weight, 4.0e-8 at the first two nodes
    # (in the tail, where w is ~1e-12 of its maximum); 2e-16 for the full matrix's nulls
    assert smallest_reduced_eigenvalue(small_problem.gauge_nodes) > 0.1
    assert smallest_reduced_eigenvalue(operators.gauge_nodes(small_problem.grid)) < 1e-6
    rhs = np.random.default_rng(2).standard_normal(nodes)
    rhs -= (
        operators.kernel_basis(small_problem.grid).T.toarray()
        @ np.linalg.lstsq(operators.kernel_basis(small_problem.grid).T.toarray(), rhs, rcond=None)[
            0
        ]
    )  # a right-hand side orthogonal to ker D_h, like D_hᵀ W v
    solution = GaugedFactorization(small_problem, metric(small_problem)).solve(rhs)
    np.testing.assert_array_equal(solution[small_problem.gauge_nodes], 0.0)
    np.testing.assert_allclose(M @ solution, rhs, atol=1e-9 * np.abs(rhs).max())


def test_problem_gauge_sits_at_the_largest_weight(small_problem):
    """One node of each checkerboard colour, the first where the Hessian weight m is largest."""
    grid = small_problem.grid
    gauge = small_problem.gauge_nodes
    assert abs(np.linalg.det(operators.kernel_basis(grid).toarray()[:, gauge])) == pytest.approx(
        2.0
    )
    interior = np.unravel_index(gauge[0], grid.shape)
    flat = np.ravel_multi_index(tuple(k - 1 for k in interior), operators.hessian_shape(grid))
    assert small_problem.hessian_weights[flat] == small_problem.hessian_weights.max()
    # an anchor that ends its row takes the node before it as the other colour
    np.testing.assert_array_equal(operators.gauge_nodes(grid, grid.shape[1] - 1), [8, 7])
    with pytest.raises(ValueError, match="anchor must be a node index"):
        operators.gauge_nodes(grid, grid.nodes.shape[0])


def test_helmholtz_projection_recovers_a_potential_up_to_the_kernel(small_problem):
    grid = small_problem.grid
    phi = np.random.default_rng(3).standard_normal(grid.nodes.shape[0])
    T = small_problem.map_of(phi)
    p, projected = helmholtz_projection(small_problem, T)
    np.testing.assert_allclose(projected, T, atol=1e-10)
    np.testing.assert_array_equal(p[small_problem.gauge_nodes], 0.0)
    basis = operators.kernel_basis(grid).T.toarray()
    difference = phi - p
    coefficients = np.linalg.lstsq(basis, difference, rcond=None)[0]
    np.testing.assert_allclose(basis @ coefficients, difference, atol=1e-9)


def test_identity_potential_gives_the_identity_map(small_problem):
    np.testing.assert_allclose(
        small_problem.map_of(small_problem.identity_potential()),
        small_problem.points,
        atol=1e-13,
    )


@pytest.mark.parametrize("shape", [(10, 9), (33, 33), (40, 17)])
def test_nested_dissection_is_a_permutation_that_separates(shape):
    """Every node once; each separator cuts its block into halves two or more nodes apart."""
    order = potentials.nested_dissection(shape)
    np.testing.assert_array_equal(np.sort(order), np.arange(np.prod(shape)))
    # the first node of the order lies in the first leaf, the last in the top separator
    rows, columns = np.unravel_index(order, shape)
    axis, length = (0, shape[0]) if shape[0] >= shape[1] else (1, shape[1])
    top = (rows, columns)[axis][-2 * shape[1 - axis] :]
    np.testing.assert_array_equal(np.unique(top), [(length - 2) // 2, (length - 2) // 2 + 1])


@pytest.mark.parametrize("method", potentials.FACTORIZATIONS)
def test_gauged_factorizations_agree_with_a_dense_solve(small_problem, method):
    """The Newton matrix D_hᵀ ∇²F_h D_h at a non-trivial map, by every method."""
    problem = small_problem
    phi = problem.identity_potential() + 0.05 * np.cos(problem.grid.nodes).sum(1)
    G = problem.gradient_operator
    matrix = (G.T @ functionals.kl_hessian(problem, problem.map_of(phi)) @ G).tocsr()
    rhs = G.T @ np.random.default_rng(4).standard_normal(G.shape[0])
    free = potentials.free_nodes(problem)
    dense = np.zeros(matrix.shape[0])
    dense[free] = np.linalg.solve(matrix.toarray()[np.ix_(free, free)], rhs[free])
    solution = potentials.GaugedFactorization(problem, matrix, method).solve(rhs)
    np.testing.assert_array_equal(solution[problem.gauge_nodes], 0.0)
    np.testing.assert_allclose(solution, dense, rtol=0, atol=1e-9 * np.abs(dense).max())


def test_gauged_factorization_refuses_an_unknown_method(small_problem):
    with pytest.raises(ValueError, match="method must be one of"):
        potentials.GaugedFactorization(small_problem, metric(small_problem), "amd")
