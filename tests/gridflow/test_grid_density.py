"""GridDensity: a source given on a regular grid (issue 19, items 1 and 5)."""

import dataclasses
import json

import numpy as np
import pytest

import gridflow
from gridflow import GridCutsSourceError, GridDensity, examples

BOX_2D = ((-1.0, 0.5), (2.0, 2.5))


def _values_2d():
    """An uneven 2D density with zeros (an image with a black corner)."""
    x = np.linspace(0.0, 1.0, 9)[:, None]
    y = np.linspace(0.0, 1.0, 7)[None, :]
    values = np.exp(-8.0 * (x - 0.3) ** 2 - 5.0 * (y - 0.6) ** 2) + 0.5 * x * y
    values[:3, :2] = 0.0
    return values


def _gauss_rule(breaks_per_axis, nodes=6):
    """Tensor Gauss–Legendre points and weights on the pieces between the breaks (exact for
    the interpolant, a polynomial of degree ≤ 6 per axis between consecutive nodes)."""
    unit, unit_weights = np.polynomial.legendre.leggauss(nodes)
    axes, weights = [], []
    for breaks in breaks_per_axis:
        half = 0.5 * np.diff(breaks)[:, None]
        axes.append(((breaks[:-1, None] + breaks[1:, None]) / 2 + half * unit).ravel())
        weights.append((half * unit_weights).ravel())
    mesh = np.meshgrid(*axes, indexing="ij")
    points = np.stack([m.ravel() for m in mesh], axis=1)
    return points, np.prod(np.meshgrid(*weights, indexing="ij"), axis=0).ravel()


def _node_breaks(density, lower=None, upper=None):
    """The grid nodes of `density` on each axis, with the cuts lower/upper added."""
    breaks = []
    for k, count in enumerate(density.values.shape):
        nodes = np.linspace(density.box[0][k], density.box[1][k], count)
        if lower is not None:
            nodes = np.unique(np.clip(np.append(nodes, [lower[k], upper[k]]), lower[k], upper[k]))
        breaks.append(nodes)
    return breaks


@pytest.fixture(scope="module")
def density_2d():
    return GridDensity(_values_2d(), BOX_2D)


@pytest.fixture(scope="module")
def density_1d():
    values = np.array([0.0, 0.2, 1.5, 0.3, 0.0, 0.0, 2.0, 1.0])
    return GridDensity(values, (-2.0, 3.0))


@pytest.mark.parametrize(
    ("values", "box", "match"),
    [
        ([1.0, np.nan, 1.0], (0, 1), "values contains 1 NaN or infinite"),
        ([1.0, np.inf, 1.0], (0, 1), "values contains 1 NaN or infinite"),
        ([1.0, -0.1, 1.0], (0, 1), "values must be >= 0"),
        ([0.0, 0.0, 0.0], (0, 1), "all 0"),
        ([1.0], (0, 1), "at least 2 nodes per axis"),
        (np.ones((5, 1)), ((0, 0), (1, 1)), "at least 2 nodes per axis"),
        (np.ones((3, 3, 3)), ((0, 0, 0), (1, 1, 1)), r"shape \(n1,\) in d = 1 or \(n1, n2\)"),
        (np.ones((3, 3, 3)), ((0, 0, 0), (1, 1, 1)), "convert it to one channel"),
        (1.0, (0, 1), r"shape \(n1,\) in d = 1"),
        (np.ones((3, 3)), (0, 1), r"shape \(2, 2\)"),
        (np.ones((3, 3)), ((0, 0, 0), (1, 1, 1)), r"shape \(2, 2\)"),
        (np.ones(3), ((0, 0), (1, 1)), r"shape \(2, 1\)"),
        (np.ones((3, 3)), ((0, 1), (1, 1)), "lower < upper"),
        (np.ones(3), (1, 0), "lower < upper"),
        (np.ones(3), (0, np.nan), "box contains 1 NaN"),
        (np.ones(3), None, "box is required"),
        (np.ones(3), "ab", r"box must be \(\(lower"),
        ([[1, 2], [3]], ((0, 0), (1, 1)), "values is a ragged list"),
    ],
)
def test_refusals(values, box, match):
    with pytest.raises(ValueError, match=match):
        GridDensity(values, box)


def test_stored_arrays_are_read_only_copies(density_2d):
    values = _values_2d()
    density = GridDensity(values, BOX_2D)
    values[4, 4] = 100.0
    assert density.values[4, 4] != 100.0
    with pytest.raises(ValueError):
        density.values[0, 0] = 1.0
    assert density.dim == 2 and GridDensity([1.0, 2.0], (0, 1)).dim == 1
    assert density.box == ((-1.0, 0.5), (2.0, 2.5))


@pytest.mark.parametrize("name", ["density_1d", "density_2d"])
def test_interpolates_the_values_and_integrates_to_one(name, request):
    density = request.getfixturevalue(name)
    nodes = np.meshgrid(*_node_breaks(density), indexing="ij")
    at_nodes = density.density(np.stack([m.ravel() for m in nodes], axis=1))
    ratio = at_nodes.sum() / density.values.sum()
    np.testing.assert_allclose(at_nodes, ratio * density.values.ravel(), rtol=1e-12, atol=1e-15)
    points, weights = _gauss_rule(_node_breaks(density))
    assert weights @ density.density(points) == pytest.approx(1.0, abs=1e-13)
    assert np.all(density.density(points) >= 0.0)


def test_log_density_and_outside_the_box(density_2d):
    points = np.array([[0.0, 1.0], [1.5, 2.0], [-1.5, 1.0], [0.0, 2.6], [-1.0, 0.5]])
    values = density_2d.density(points)
    assert values[2] == values[3] == 0.0 and values[0] > 0 and values[4] == 0.0
    logs = density_2d.log_density(points)
    np.testing.assert_allclose(logs[:2], np.log(values[:2]), rtol=1e-13)
    assert np.all(logs[2:] == -np.inf)


@pytest.mark.parametrize(
    ("name", "lower", "upper"),
    [
        ("density_2d", (-0.37, 0.81), (1.23, 2.9)),
        ("density_2d", (0.11, 0.6), (0.52, 1.77)),
        ("density_1d", (-0.3,), (2.7,)),
        ("density_1d", (-5.0,), (0.1,)),
    ],
)
def test_mass_outside_against_a_direct_quadrature(name, lower, upper, request):
    density = request.getfixturevalue(name)
    inside = np.maximum(np.asarray(lower), density.box[0])
    inside_upper = np.minimum(np.asarray(upper), density.box[1])
    points, weights = _gauss_rule(_node_breaks(density, inside, inside_upper))
    expected = 1.0 - weights @ density.density(points)
    assert density.mass_outside(lower, upper) == pytest.approx(expected, abs=1e-12)
    assert 1e-3 < expected < 0.999


def test_mass_outside_of_boxes_around_and_apart(density_2d):
    assert density_2d.mass_outside((-1.0, 0.5), (2.0, 2.5)) == pytest.approx(0.0, abs=1e-14)
    assert density_2d.mass_outside((-9.0, -9.0), (9.0, 9.0)) == pytest.approx(0.0, abs=1e-14)
    assert density_2d.mass_outside((3.0, 0.0), (4.0, 1.0)) == 1.0
    assert "exact" in density_2d.mass_check_description((0, 0), (1, 1))


def test_the_grid_solver_refuses_a_box_that_cuts_the_density(density_2d):
    grid = gridflow.Grid(lower=[-1.0, 0.5], upper=[1.5, 2.5], shape=[9, 9])
    target = gridflow.LogConcaveTarget.standard_gaussian(2)
    with pytest.raises(GridCutsSourceError, match="exact integral of the interpolant"):
        gridflow.Problem(grid, density_2d, target)


def _moments(density):
    points, weights = _gauss_rule(_node_breaks(density))
    mass = weights * density.density(points)
    mean = mass @ points
    centered = points - mean
    return mean, (centered * mass[:, None]).T @ centered


@pytest.mark.parametrize("name", ["density_1d", "density_2d"])
def test_samples_have_the_interpolant_moments(name, request):
    density = request.getfixturevalue(name)
    n = 200_000
    samples = density.sample(np.random.default_rng(3), n)
    assert samples.shape == (n, density.dim)
    assert np.all(density.density(samples) > 0.0)
    mean, cov = _moments(density)
    standard_error = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(samples.mean(axis=0) - mean) < 4.5 * standard_error)
    centered = samples - mean
    products = centered[:, :, None] * centered[:, None, :]
    cov_error = products.reshape(n, -1).std(axis=0).reshape(cov.shape) / np.sqrt(n)
    assert np.all(np.abs(products.mean(axis=0) - cov) < 4.5 * cov_error)
    again = density.sample(np.random.default_rng(3), n)
    np.testing.assert_array_equal(samples, again)


def test_spec_round_trip_through_json(density_2d):
    spec = json.loads(json.dumps(density_2d.spec))
    assert spec == {"kind": "grid-density", "box": [[-1.0, 0.5], [2.0, 2.5]], "shape": [9, 7]}
    rebuilt = GridDensity.from_spec(spec, density_2d.values)
    points = np.array([[0.1, 1.1], [1.7, 0.9]])
    np.testing.assert_array_equal(rebuilt.density(points), density_2d.density(points))
    with pytest.raises(ValueError, match="kind 'grid-density'"):
        GridDensity.from_spec({**spec, "kind": "gaussian"}, density_2d.values)
    with pytest.raises(ValueError, match=r"spec lacks \['box'\]"):
        GridDensity.from_spec({"kind": "grid-density", "shape": [9, 7]}, density_2d.values)
    with pytest.raises(ValueError, match="not the values saved with this spec"):
        GridDensity.from_spec(spec, density_2d.values[:, :6])


def test_from_file(tmp_path, density_2d):
    values, box = density_2d.values, np.array(BOX_2D)
    points = np.array([[0.1, 1.1], [1.7, 0.9]])
    np.save(tmp_path / "image.npy", values)
    np.savez(tmp_path / "with_box.npz", density=values, box=box)
    np.savez(tmp_path / "no_box.npz", density=values)
    for density in (
        GridDensity.from_file(tmp_path / "image.npy", box=BOX_2D),
        GridDensity.from_file(tmp_path / "with_box.npz"),
        GridDensity.from_file(tmp_path / "with_box.npz", box=BOX_2D),
        GridDensity.from_file(str(tmp_path / "no_box.npz"), box=BOX_2D),
    ):
        np.testing.assert_array_equal(density.density(points), density_2d.density(points))
        assert density.box == density_2d.box


@pytest.mark.parametrize(
    ("arrays", "name", "box", "match"),
    [
        (None, "missing.npz", None, "does not exist"),
        ({"density": np.ones((3, 3))}, "image.txt", None, "must be a .npy or .npz"),
        ({"density": np.ones((3, 3))}, "image.npy", None, "holds no box"),
        ({"density": np.ones((3, 3))}, "image.npz", None, "holds no 'box'"),
        ({"values": np.ones((3, 3))}, "image.npz", None, "has no array 'density'"),
        ({"density": np.ones((3, 3)), "boxes": np.zeros(2)}, "a.npz", None, "unknown arrays"),
        ({"density": np.ones((3, 3)), "box": np.zeros(4)}, "a.npz", None, r"shape \(2, 2\)"),
        ({"density": -np.ones((3, 3)), "box": [[0, 0], [1, 1]]}, "a.npz", None, ">= 0"),
        (
            {"density": np.ones((3, 3)), "box": [[0, 0], [1, 1]]},
            "a.npz",
            ((0, 0), (2, 2)),
            "differs",
        ),
        ({"density": np.ones((3, 3))}, "a.npy", ((0, 0), (0, 1)), "lower < upper"),
    ],
)
def test_from_file_refusals(tmp_path, arrays, name, box, match):
    path = tmp_path / name
    if arrays is not None and name.endswith(".npz"):
        np.savez(path, **arrays)
    elif arrays is not None and name.endswith(".npy"):
        np.save(path, arrays["density"])
    elif arrays is not None:
        path.write_text("1 2 3")
    with pytest.raises(ValueError, match=match):
        GridDensity.from_file(path, box=box)


def test_from_file_refuses_an_unreadable_file(tmp_path):
    (tmp_path / "broken.npy").write_bytes(b"not a numpy file")
    with pytest.raises(ValueError, match="cannot be read"):
        GridDensity.from_file(tmp_path / "broken.npy", box=(0, 1))


def test_from_file_box_of_text_is_refused_in_one_line(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, density=np.ones((3, 3)), box=np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(ValueError, match="of numbers, got ") as error:
        GridDensity.from_file(path)
    assert "\n" not in str(error.value) and "[['a', 'b'], ['c', 'd']]" in str(error.value)


def test_values_near_the_float_range_give_the_same_density(density_2d):
    """Unnormalized values near 1e308 (or 1e-300) are scaled before the spline: no
    overflow warning, no NaN mass (found by a probe: 'leaves out nan of the source mass')."""
    points = np.array([[0.0, 1.0], [1.5, 2.0], [-0.9, 0.6]])
    for scale in (1e308 / _values_2d().max(), 1e-300):
        values = _values_2d() * scale
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            density = GridDensity(values, BOX_2D)
            assert density.mass_outside((-0.5, 1.0), (1.0, 2.0)) == pytest.approx(
                density_2d.mass_outside((-0.5, 1.0), (1.0, 2.0)), rel=1e-12
            )
        np.testing.assert_allclose(density.density(points), density_2d.density(points), rtol=1e-12)
        assert np.isfinite(density._acceptance)


def _sampled(mixture, nodes, box):
    axes = [np.linspace(box[0], box[1], nodes)] * mixture.dim
    mesh = np.meshgrid(*axes, indexing="ij")
    values = mixture.density(np.stack([m.ravel() for m in mesh], axis=1))
    return GridDensity(
        values.reshape(mesh[0].shape), ((box[0],) * mixture.dim, (box[1],) * mixture.dim)
    )


def test_1d_map_of_a_sampled_mixture_matches_the_quantile_map():
    mixture = examples.mixture_1d()
    problem = examples.problem_1d(400, source=mixture)
    exact = gridflow.quantile_map(mixture, problem.target, problem.points)
    reference = gridflow.minimize(problem).map
    error_of_mixture = problem.norm(reference - exact)
    differences = []
    for nodes in (100, 200):
        sampled = dataclasses.replace(problem, source=_sampled(mixture, nodes, examples.BOX_1D))
        discrete = gridflow.minimize(sampled).map
        assert problem.norm(discrete - exact) <= 1.05 * error_of_mixture
        differences.append(problem.norm(discrete - reference))
    # measured: 6.0e-5 for the mixture, differences 2.0e-6 and 1.2e-7 (order 4.1)
    assert differences[0] < 5e-6
    assert np.log2(differences[0] / differences[1]) > 3.5


def test_2d_map_of_a_sampled_mixture_converges_at_the_interpolation_order():
    """The density grid's nodes do not fall on the solver's points (100 and 200 nodes
    against 33): otherwise the interpolant gives the mixture's values exactly there."""
    mixture = examples.paper_mixture()
    target = gridflow.LogConcaveTarget.standard_gaussian(2)
    problem = examples.problem_2d(33, source=mixture, target=target, box=(-6.0, 6.0))
    problem = dataclasses.replace(problem, density_floor=1e-6)
    reference = gridflow.minimize(problem).map
    differences, spacings = [], []
    for nodes in (100, 200):
        sampled = dataclasses.replace(problem, source=_sampled(mixture, nodes, (-6.0, 6.0)))
        difference = sampled.norm(gridflow.minimize(sampled).map - reference)
        # the map moves by about the density's change on the grid (in L1)
        assert difference < 2.0 * np.abs(sampled.weights - problem.weights).sum()
        differences.append(difference)
        spacings.append(12.0 / (nodes - 1))
    # measured: 1.11e-4 and 4.39e-6, order 4.6 (O(h⁴) interpolation)
    order = np.log(differences[0] / differences[1]) / np.log(spacings[0] / spacings[1])
    assert differences[1] < 1e-5
    assert order > 3.5
