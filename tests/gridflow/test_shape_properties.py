"""Property tests of the shape checks: maps, points and references are never broadcast.

For every public function that takes maps, points or references, random wrong shapes
(a vector (n,) for a column (n, 1), the (n, n) of a broadcast subtraction, transposed, wrong
n, wrong d, no points at all, extra axes) are refused with ValueError or TypeError, and the
right shapes are accepted.
"""

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridflow import (
    AffineMap,
    DiscreteMap,
    Gaussian,
    GridMap,
    Trajectory,
    examples,
    kl_energy,
    kl_gradient,
    map_distance,
    minimize,
    operators,
    project_onto_cone,
    project_onto_tangent_cone,
    quantile_map,
    save_map,
    solve,
)
from gridflow.gaussian import map_error, velocity
from gridflow.grid import Grid
from gridflow.problem import Problem
from gridflow.warm_start import coarse_to_fine_start

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
REFUSED = (ValueError, TypeError)

PROBLEM_1D = examples.problem_1d(12)
PROBLEM_2D = Problem(  # a grid of 9 × 7 nodes: its transpose has another shape
    Grid([-5.0, -5.0], [5.0, 5.0], [9, 7]),
    source=examples.gaussian_source_2d(),
    target=Gaussian([0.0, 0.0], np.eye(2)),
)
PROBLEMS = st.sampled_from([PROBLEM_1D, PROBLEM_2D])
OT_1D = minimize(PROBLEM_1D)
TRAJECTORY_1D = solve(PROBLEM_1D, steps=2)
TRAJECTORY_2D = solve(examples.problem_2d(9), steps=1)


def values(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


def near_identity(problem, data):
    """A map strictly inside K_h: the identity scaled by a random factor in [0.5, 2]."""
    return data.draw(st.floats(0.5, 2.0)) * problem.identity()


# --- Problem.norm, Problem.inner: exactly (n, d), even in d = 1 ------------------------


@SETTINGS
@given(problem=PROBLEMS, data=st.data())
def test_norm_and_inner_refuse_every_other_shape(wrong_shapes, problem, data):
    shape = data.draw(wrong_shapes(problem.points.shape))
    right = values(problem.points.shape)
    with pytest.raises(REFUSED):
        problem.norm(values(shape))
    with pytest.raises(REFUSED):
        problem.inner(values(shape), right)
    with pytest.raises(REFUSED):
        problem.inner(right, values(shape))


@SETTINGS
@given(problem=PROBLEMS, seed=st.integers(0, 100))
def test_norm_and_inner_accept_the_shape_of_points(problem, seed):
    u, v = values(problem.points.shape, seed), values(problem.points.shape, seed + 1)
    assert problem.norm(u) ** 2 == pytest.approx(problem.inner(u, u))
    assert abs(problem.inner(u, v)) <= problem.norm(u) * problem.norm(v) * (1 + 1e-12)


def test_norm_of_a_broadcast_difference_is_refused_with_the_fix():
    """The README's 1D example with `exact.ravel()`: (n, 1) - (n,) is (n, n)."""
    exact = quantile_map(PROBLEM_1D.source, PROBLEM_1D.target, PROBLEM_1D.points)
    with pytest.raises(ValueError, match=r"subtracting a vector .* keep both of shape"):
        PROBLEM_1D.norm(OT_1D.map - exact.ravel())
    with pytest.raises(ValueError, match=r"pass a column of shape \(\d+, 1\)"):
        PROBLEM_1D.norm((OT_1D.map - exact).ravel())
    assert PROBLEM_1D.norm(OT_1D.map - exact) < 0.2  # 12 nodes: a coarse grid


# --- Trajectory.errors -----------------------------------------------------------------


@SETTINGS
@given(trajectory=st.sampled_from([TRAJECTORY_1D, TRAJECTORY_2D]), data=st.data())
def test_trajectory_errors_refuse_a_reference_of_another_shape(wrong_shapes, trajectory, data):
    shape = data.draw(wrong_shapes(trajectory.points.shape))
    with pytest.raises(REFUSED, match="reference"):
        trajectory.errors(values(shape))


@SETTINGS
@given(trajectory=st.sampled_from([TRAJECTORY_1D, TRAJECTORY_2D]), seed=st.integers(0, 100))
def test_trajectory_errors_accept_a_reference_of_the_shape_of_points(trajectory, seed):
    errors = trajectory.errors(values(trajectory.points.shape, seed))
    assert errors.shape == trajectory.times.shape and np.all(np.isfinite(errors))


@SETTINGS
@given(data=st.data())
def test_trajectory_and_discrete_map_refuse_inconsistent_fields(wrong_shapes, data):
    n, d = TRAJECTORY_1D.points.shape
    shape = data.draw(wrong_shapes((n, d)))
    fields = {f: getattr(TRAJECTORY_1D, f) for f in Trajectory.__dataclass_fields__}
    with pytest.raises(REFUSED):
        Trajectory(**{**fields, "maps": values((len(TRAJECTORY_1D.times), *shape))})
    with pytest.raises(REFUSED):
        Trajectory(**{**fields, "energy": TRAJECTORY_1D.energy[:-1]})
    ot = {f: getattr(OT_1D, f) for f in DiscreteMap.__dataclass_fields__}
    with pytest.raises(REFUSED):
        DiscreteMap(**{**ot, "map": values(shape)})
    with pytest.raises(REFUSED):
        DiscreteMap(**{**ot, "potential": OT_1D.potential[:-1]})
    with pytest.raises(REFUSED, match="cell centers"):  # consistent, but not its grid's
        DiscreteMap(**{**ot, **{f: ot[f][:-1] for f in ("points", "weights", "map")}})
    assert DiscreteMap(**ot).map is OT_1D.map


@SETTINGS
@given(data=st.data())
def test_coarse_to_fine_start_refuses_a_coarser_map_of_another_shape(wrong_shapes, data):
    grid = Grid(PROBLEM_2D.grid.lower, PROBLEM_2D.grid.upper, [5, 5])
    points = operators.map_points(grid)
    shape = data.draw(wrong_shapes(points.shape))
    fields = {"grid": grid, "points": points, "weights": np.full(16, 1 / 16), "map": points}
    with pytest.raises(REFUSED, match=r"coarser|DiscreteMap"):  # duck-typed, or a DiscreteMap
        coarse_to_fine_start(PROBLEM_2D, SimpleNamespace(**{**fields, "map": values(shape)}))
    with pytest.raises(REFUSED, match=r"DiscreteMap\.map"):
        DiscreteMap(**{**fields, "map": values(shape)}, potential=np.zeros(25), energy=0.0)
    coarser = DiscreteMap(**fields, potential=0.5 * (grid.nodes**2).sum(1), energy=0.0)
    start = coarse_to_fine_start(PROBLEM_2D, coarser)  # the identity: its potential
    np.testing.assert_allclose(PROBLEM_2D.map_of(start), PROBLEM_2D.points, atol=1e-9)


# --- maps at the evaluation points: kl_energy, kl_gradient, the cone projections -------


@SETTINGS
@given(problem=PROBLEMS, data=st.data())
def test_functionals_and_projections_refuse_maps_of_another_shape(wrong_shapes, problem, data):
    shape = data.draw(wrong_shapes(problem.points.shape))
    T = near_identity(problem, data)
    wrong = values(shape)
    for call in (
        lambda: kl_energy(problem, wrong),
        lambda: kl_gradient(problem, wrong),
        lambda: project_onto_cone(problem, wrong),
        lambda: project_onto_tangent_cone(problem, T, wrong),
        lambda: project_onto_tangent_cone(problem, wrong, T),
    ):
        with pytest.raises(REFUSED):
            call()


@SETTINGS
@given(problem=PROBLEMS, data=st.data())
def test_functionals_and_projections_accept_maps_of_the_shape_of_points(problem, data):
    T = near_identity(problem, data)
    v = values(problem.points.shape, data.draw(st.integers(0, 100)))
    assert np.isfinite(kl_energy(problem, T))
    assert kl_gradient(problem, T).shape == problem.points.shape
    assert project_onto_cone(problem, v).shape == problem.points.shape
    assert project_onto_tangent_cone(problem, T, v).shape == problem.points.shape
    if problem.dim == 1:  # a vector (n,) is refused: T - step * gradient would broadcast
        with pytest.raises(ValueError, match=r"pass a column of shape"):
            kl_energy(problem, T[:, 0])


# --- potentials at the grid nodes: Problem.map_of --------------------------------------


@SETTINGS
@given(problem=PROBLEMS, data=st.data())
def test_map_of_takes_a_potential_flat_or_on_the_grid_only(problem, data):
    size = int(np.prod(problem.grid.shape))
    wrong = data.draw(
        st.sampled_from(
            [(size, 1), (1, size), (size - 1,), (size + 1,), (0,), problem.grid.shape[::-1]]
        ).filter(lambda s: s not in ((size,), problem.grid.shape))
    )
    with pytest.raises(REFUSED, match="potential"):
        problem.map_of(np.zeros(wrong))
    potential = problem.identity_potential()
    flat, on_grid = problem.map_of(potential), problem.map_of(potential.reshape(problem.grid.shape))
    np.testing.assert_array_equal(flat, on_grid)
    np.testing.assert_allclose(flat, problem.points, atol=1e-12)


# --- points: quantile_map, AffineMap, GridMap --------------------------------------------


def point_shapes(dim, wrong):
    """(shape, is_wrong): points (k, dim) for random k >= 1, or a wrong shape."""
    k = st.integers(1, 6)
    right = k.map(lambda k: (k, dim))
    if not wrong:
        return right
    return st.one_of(
        st.sampled_from([(0, dim), (3, dim + 1), (3, dim, 1), (dim + 2, 3), ()]),
        st.integers(dim + 1, 6).map(lambda k: (dim, k)),  # transposed
        k.map(lambda k: (k,)),  # a vector: (n, 1) out, T(x) - x would broadcast to (n, n)
    )


GRID_MAP_1D = GridMap.from_discrete_map(OT_1D)
AFFINE = {1: AffineMap([[2.0]], [1.0]), 2: AffineMap([[2.0, 0.5], [0.5, 1.0]], [0.0, 1.0])}


@SETTINGS
@given(dim=st.sampled_from([1, 2]), data=st.data())
def test_point_maps_refuse_points_of_another_dimension_or_rank(dim, data):
    x = 0.1 * values(data.draw(point_shapes(dim, wrong=True)))
    calls = [AFFINE[dim], AFFINE[dim].potential]
    if dim == 1:
        calls += [
            GRID_MAP_1D,
            GRID_MAP_1D.potential,
            lambda x: quantile_map(PROBLEM_1D.source, PROBLEM_1D.target, x),
        ]
    for call in calls:
        with pytest.raises(REFUSED):
            call(x)


@SETTINGS
@given(dim=st.sampled_from([1, 2]), data=st.data())
def test_point_maps_accept_points_of_their_dimension(dim, data):
    x = 0.1 * values(data.draw(point_shapes(dim, wrong=False)))
    assert AFFINE[dim](x).shape == x.shape
    if dim == 1:
        exact = quantile_map(PROBLEM_1D.source, PROBLEM_1D.target, x)
        assert exact.shape == x.shape == GRID_MAP_1D(x).shape
        # d = 1 too: points are a column (k, 1); a vector of k numbers is refused
        with pytest.raises(ValueError, match=r"in d = 1 pass x\[:, None\]"):
            quantile_map(PROBLEM_1D.source, PROBLEM_1D.target, x[:, 0])


@SETTINGS
@given(data=st.data())
def test_grid_map_refuses_fields_that_do_not_fit_its_grid(wrong_shapes, data):
    n, d = OT_1D.points.shape
    field = data.draw(st.sampled_from(["points", "map", "weights", "nodal_potential"]))
    right = {
        "grid": OT_1D.grid,
        "points": OT_1D.points,
        "map": OT_1D.map,
        "weights": OT_1D.weights,
        "nodal_potential": OT_1D.potential.reshape(OT_1D.grid.shape),
        "metadata": {},
    }
    wrong_shape = data.draw(
        wrong_shapes((n, d)) if field in ("points", "map") else st.sampled_from([(n - 1,), (n, 1)])
    )
    with pytest.raises(REFUSED):
        GridMap(**{**right, field: values(wrong_shape)})
    assert GridMap(**right)(OT_1D.points).shape == (n, d)


# --- map_distance ----------------------------------------------------------------------


@SETTINGS
@given(dim=st.sampled_from([1, 2]), data=st.data())
def test_map_distance_refuses_samples_and_map_values_of_another_shape(wrong_shapes, dim, data):
    shape = data.draw(point_shapes(dim, wrong=True))
    identity = AffineMap.identity(dim)
    with pytest.raises(REFUSED):
        map_distance(AFFINE[dim], identity, values(shape), np.eye(dim))
    x = values(data.draw(point_shapes(dim, wrong=False)))
    returned = data.draw(wrong_shapes(x.shape))
    with pytest.raises(REFUSED, match="trained_map"):
        map_distance(lambda x: values(returned), identity, x, np.eye(dim))
    assert map_distance(AFFINE[dim], identity, x, np.eye(dim)).n == x.shape[0]


# --- the Gaussian closed forms: map_error, velocity -------------------------------------


@SETTINGS
@given(dim=st.sampled_from([1, 2]), data=st.data())
def test_gaussian_map_error_and_velocity_check_the_affine_shapes(wrong_shapes, dim, data):
    source, target = Gaussian(np.zeros(dim), np.eye(dim)), Gaussian(np.ones(dim), 2 * np.eye(dim))
    matrix, offset = 1.5 * np.eye(dim), np.zeros(dim)
    for function in (map_error, velocity):
        wrong_matrix = data.draw(wrong_shapes((dim, dim)))
        with pytest.raises(REFUSED, match="matrix"):
            function(source, target, values(wrong_matrix), offset)
        wrong_offset = data.draw(
            st.sampled_from([(), (dim, 1), (1, dim), (dim + 1,), (0,)]).filter(
                lambda s: s != (dim,)
            )
        )
        with pytest.raises(REFUSED, match="offset"):
            function(source, target, matrix, values(wrong_offset))
    assert np.isfinite(map_error(source, target, matrix, offset))
    assert velocity(source, target, matrix, offset)[0].shape == (dim, dim)


# --- save_map ----------------------------------------------------------------------------


@SETTINGS
@given(data=st.data())
def test_save_map_refuses_a_map_whose_arrays_do_not_fit_its_grid(
    wrong_shapes, tmp_path_factory, data
):
    n, d = OT_1D.points.shape
    field = data.draw(st.sampled_from(["points", "map", "weights", "potential"]))
    wrong_shape = data.draw(
        wrong_shapes((n, d))
        if field in ("points", "map")
        else st.sampled_from([(n - 1,), (n, 1), (1, n), (0,)])
    )
    right = {f: getattr(OT_1D, f) for f in DiscreteMap.__dataclass_fields__}
    broken = SimpleNamespace(**{**right, field: values(wrong_shape)})
    path = tmp_path_factory.mktemp("shapes") / "map.npz"
    with pytest.raises(REFUSED, match=field):
        save_map(path, broken)
    assert not path.exists()
    save_map(path, SimpleNamespace(**right))
    assert path.is_file()
