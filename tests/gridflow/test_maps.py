"""The map family (affine, grid maps) and the distance of two maps in L²(ϱ0)."""

import numpy as np
import pytest

from gridflow import (
    AffineMap,
    GridMap,
    examples,
    gaussian,
    load_map,
    map_distance,
    minimize,
    save_map,
)


@pytest.fixture(scope="module")
def gaussian_pair():
    m0, s0 = np.array([0.5, -1.0]), np.array([[0.6, 0.25], [0.25, 0.4]])
    m1, s1 = np.array([-0.2, 0.3]), np.array([[1.5, -0.3], [-0.3, 0.7]])
    g0, g1 = gaussian.Gaussian(m0, s0), gaussian.Gaussian(m1, s1)
    A, b = gaussian.ot_map(g0, g1)
    x = g0.sample(np.random.default_rng(0), 200_000)
    return g0, g1, A, b, x


def test_map_distance_is_zero_for_the_closed_form_map(gaussian_pair):
    _, g1, A, b, x = gaussian_pair

    def true_map(points):
        return points @ A.T + b

    error = map_distance(true_map, true_map, x, g1.cov)
    assert error.l2 == 0.0 and error.uvp == 0.0 and error.n == len(x)
    shift = np.array([0.3, -0.4])
    shifted = map_distance(lambda p: true_map(p) + shift, true_map, x, g1.cov)
    assert shifted.l2 == pytest.approx(0.5, rel=1e-12)
    assert shifted.uvp == pytest.approx(100 * 0.25 / np.trace(g1.cov), rel=1e-12)


def test_map_distance_of_the_identity_matches_the_gaussian_closed_form(gaussian_pair):
    g0, g1, A, b, x = gaussian_pair
    error = map_distance(lambda p: p, lambda p: p @ A.T + b, x, g1.cov)
    exact = gaussian.map_error(g0, g1, np.eye(2), np.zeros(2))  # squared, closed form
    assert error.l2_squared == pytest.approx(exact, rel=0.02)  # Monte Carlo, n = 2e5
    assert error.uvp == pytest.approx(100 * exact / np.trace(g1.cov), rel=0.02)


def test_map_distance_rejects_bad_input(gaussian_pair):
    _, g1, _, _, x = gaussian_pair

    def identity(p):
        return p

    with pytest.raises(ValueError, match="target_cov"):
        map_distance(identity, identity, x[:10], np.eye(3))
    with pytest.raises(ValueError, match="target_cov must be positive definite"):
        map_distance(identity, identity, x[:10], np.zeros((2, 2)))
    with pytest.raises(ValueError, match="trained_map must return shape"):
        map_distance(lambda p: p[:, :1], identity, x[:10], g1.cov)
    with pytest.raises(TypeError, match="callables"):
        map_distance(None, identity, x[:10], g1.cov)
    with pytest.raises(ValueError, match="trained_map returned NaN or inf at 10 of 10 points"):
        map_distance(lambda p: p * np.nan, identity, x[:10], g1.cov)
    with pytest.raises(ValueError, match="true_map returned NaN or inf at 1 of 10 points"):
        map_distance(identity, lambda p: np.where(p == p[0], np.inf, p), x[:10], g1.cov)


def test_affine_map_evaluates_unpacks_and_has_its_potential(gaussian_pair):
    g0, g1, A, b, x = gaussian_pair
    T = gaussian.ot_map(g0, g1)
    assert isinstance(T, AffineMap) and T.dim == 2
    np.testing.assert_array_equal(T(x[:5]), x[:5] @ A.T + b)
    step = 1e-6
    points = x[:3]
    for k in range(2):  # ∇φ = T by central differences
        shift = np.zeros(2)
        shift[k] = step
        slope = (T.potential(points + shift) - T.potential(points - shift)) / (2 * step)
        np.testing.assert_allclose(slope, T(points)[:, k], rtol=1e-7, atol=1e-8)
    np.testing.assert_array_equal(AffineMap.identity(2)(x[:4]), x[:4])


def test_affine_map_refuses_bad_input():
    with pytest.raises(ValueError, match="square"):
        AffineMap(np.ones((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="offset must have shape"):
        AffineMap(np.eye(2), np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        AffineMap(np.eye(2) * np.nan, np.zeros(2))
    with pytest.raises(ValueError, match="2 columns"):
        AffineMap.identity(2)(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="symmetric"):
        AffineMap(np.array([[1.0, 1.0], [0.0, 1.0]]), np.zeros(2)).potential(np.zeros((1, 2)))


@pytest.mark.parametrize(
    ("dim", "error"), [(2.0, TypeError), (True, TypeError), ("2", TypeError), (-1, ValueError)]
)
def test_affine_identity_refuses_a_dimension_that_is_not_a_positive_integer(dim, error):
    with pytest.raises(error, match="dim must be a positive integer, got"):
        AffineMap.identity(dim)


def test_grid_map_interpolates_the_discrete_map_and_refuses_points_outside():
    problem = examples.problem_1d(41)
    ot = minimize(problem)
    T = GridMap.from_discrete_map(ot)
    np.testing.assert_allclose(T(problem.points), ot.map, rtol=0, atol=1e-12)
    middle = 0.5 * (problem.points[10:11] + problem.points[11:12])
    np.testing.assert_allclose(T(middle), 0.5 * (ot.map[10:11] + ot.map[11:12]), atol=1e-12)
    with pytest.raises(ValueError, match="outside the map's box"):
        T(np.array([[7.0]]))


def test_map_distance_takes_the_variance_of_a_gaussian_target(gaussian_pair):
    g0, g1, _, _, x = gaussian_pair
    T = gaussian.ot_map(g0, g1)
    by_matrix = map_distance(lambda p: p, T, x, g1.cov)
    by_law = map_distance(lambda p: p, T, x, g1)
    assert by_matrix == by_law


def test_grid_map_potential_interpolates_the_nodal_potential():
    problem = examples.problem_2d(17)
    ot = minimize(problem)
    T = GridMap.from_discrete_map(ot)
    nodes = problem.grid.nodes
    np.testing.assert_allclose(T.potential(nodes), ot.potential.reshape(-1), rtol=0, atol=1e-12)
    x = problem.points[::7]  # at cell centers, T = D_h φ is the gradient of φ's interpolant
    step = 1e-6
    slopes = [
        (T.potential(x + step * e) - T.potential(x - step * e)) / (2 * step) for e in np.eye(2)
    ]
    np.testing.assert_allclose(np.stack(slopes, axis=1), T(x), rtol=0, atol=1e-7)
    trajectory_map = GridMap(T.grid, T.points, T.map, None, T.weights, {})
    with pytest.raises(ValueError, match="no potential"):
        trajectory_map.potential(x)


def test_maps_in_d_1_refuse_a_vector_whose_answer_would_broadcast(tmp_path):
    """A vector (n,) gave (n, 1), and T(x) - x silently (n, n): points are (n, 1) in d = 1."""
    saved = tmp_path / "map.npz"
    save_map(saved, minimize(examples.problem_1d(20)))
    for T in (AffineMap(np.eye(1), np.zeros(1)), load_map(saved)):
        with pytest.raises(ValueError, match=r"in d = 1 pass x\[:, None\]"):
            T(np.zeros(5))
        assert T(np.zeros((5, 1))).shape == (5, 1)
