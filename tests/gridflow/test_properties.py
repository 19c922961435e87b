"""Property tests of input validation: random shapes, NaN/inf and extreme values.

Every call either returns a finite answer or raises the package's own error (ValueError,
TypeError, or their subclasses such as GridCutsSourceError and MapFileError); never a
NaN result, an OverflowError, or an error from deep inside numpy or scipy.
"""

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gridflow import (
    GaussianMixture,
    Grid,
    LogConcaveTarget,
    MapFileError,
    Problem,
    examples,
    load_map,
    minimize,
    save_map,
)

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")  # overflow is not an answer

SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
EXTREME = st.sampled_from([0.0, -0.0, 1e-320, -1e-320, 1e-300, 1e300, -1e300, 1.7e308, -1.7e308])
NUMBERS = st.one_of(ANY_FLOAT, EXTREME, st.floats(-10, 10))
SHAPE_ENTRIES = st.one_of(
    st.integers(-3, 40), st.floats(-2, 40), st.sampled_from([None, "8", True, 2**70])
)
PACKAGE_ERRORS = (ValueError, TypeError)


def _sequence(elements, max_size=3):
    return st.lists(elements, min_size=0, max_size=max_size)


def _finite(*values):
    return all(np.all(np.isfinite(np.asarray(v, dtype=float))) for v in values)


@SETTINGS
@given(lower=_sequence(NUMBERS), upper=_sequence(NUMBERS), shape=_sequence(SHAPE_ENTRIES))
def test_grid_is_valid_or_refused(lower, upper, shape):
    try:
        grid = Grid(lower, upper, shape)
    except PACKAGE_ERRORS:
        return
    assert grid.dim in (1, 2)
    assert _finite(grid.lower, grid.upper, grid.spacing)
    assert all(s > 0 for s in grid.spacing)


@SETTINGS
@given(
    data=st.data(),
    dim=st.integers(1, 2),
)
def test_grid_of_consistent_lengths_is_valid_or_refused(data, dim):
    lower = data.draw(st.lists(NUMBERS, min_size=dim, max_size=dim))
    upper = data.draw(st.lists(NUMBERS, min_size=dim, max_size=dim))
    shape = data.draw(st.lists(SHAPE_ENTRIES, min_size=dim, max_size=dim))
    try:
        grid = Grid(lower, upper, shape)
    except PACKAGE_ERRORS:
        return
    assert _finite(grid.lower, grid.upper, grid.spacing)
    assert all(s > 0 for s in grid.spacing)


def test_grid_whose_width_overflows_is_refused():
    with pytest.raises(ValueError, match="width must be finite"):
        Grid([-1.7e308], [1.7e308], [5])


@pytest.mark.parametrize(
    ("lower", "error", "match"),
    [
        (None, TypeError, "lower must be an array of real numbers, got None"),
        ("ab", TypeError, "lower must be an array of real numbers, got str"),
        ([[-1.0]], ValueError, r"lower must be a sequence of numbers, one per dimension"),
    ],
)
def test_grid_corner_of_the_wrong_kind_is_refused_naming_it(lower, error, match):
    with pytest.raises(error, match=match):
        Grid(lower=lower, upper=[1.0], shape=[5])


SMALL_GRID = Grid([-6.0], [6.0], [30])
SMALL_GRID_2D = Grid([-5.0, -5.0], [5.0, 5.0], [9, 9])


@SETTINGS
@given(
    scale=NUMBERS,
    floor=NUMBERS,
    max_cut=NUMBERS,
    dim=st.sampled_from([1, 2]),
    poison=st.sampled_from([None, np.nan, np.inf, -1.0]),
)
def test_problem_is_valid_or_refused(scale, floor, max_cut, dim, poison):
    grid = SMALL_GRID if dim == 1 else SMALL_GRID_2D
    target = LogConcaveTarget.gaussian(np.zeros(dim), np.eye(dim))

    def density(points):
        values = scale * np.exp(-0.5 * np.sum(points**2, axis=1))
        if poison is not None:
            values[len(values) // 2] = poison
        return values

    try:
        problem = Problem(grid, density, target, max_cut_mass=max_cut, density_floor=floor)
    except PACKAGE_ERRORS:
        return
    assert _finite(problem.weights, problem.hessian_weights, problem.log_source)
    assert problem.weights.sum() == pytest.approx(1.0)


@SETTINGS
@given(
    mean=hnp.arrays(np.float64, st.integers(0, 3), elements=NUMBERS),
    cov=hnp.arrays(
        np.float64, hnp.array_shapes(min_dims=0, max_dims=3, max_side=3), elements=NUMBERS
    ),
)
def test_gaussian_target_is_valid_or_refused(mean, cov):
    try:
        target = LogConcaveTarget.gaussian(mean, cov)
    except PACKAGE_ERRORS:
        return
    assert _finite(target.log_normalizer, target.lam, target.mean, target.cov)
    assert target.lam > 0


@SETTINGS
@given(curvature=NUMBERS, slope=NUMBERS, lam=NUMBERS)
def test_user_target_is_valid_or_refused(curvature, slope, lam):
    """V(y) = curvature y²/2 + slope |y| (integrable iff curvature > 0, or = 0 and slope > 0)."""

    def V(points):
        y = np.asarray(points)[:, 0]
        with np.errstate(all="ignore"):
            return curvature * y**2 / 2 + slope * np.abs(y)

    try:
        target = LogConcaveTarget(V=V, grad_V=None, lam=lam)
    except PACKAGE_ERRORS:
        return
    assert np.isfinite(target.log_normalizer)


@pytest.fixture(scope="module")
def saved_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("map") / "map.npz"
    save_map(path, minimize(examples.problem_1d(12)))
    return path.read_bytes()


@SETTINGS
@given(
    cut=st.integers(0, 10_000),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
    tail=st.binary(max_size=64),
)
def test_damaged_map_file_loads_or_raises_map_file_error(saved_bytes, tmp_path, cut, flips, tail):
    data = bytearray(saved_bytes[: max(cut, 1)] if cut < len(saved_bytes) else saved_bytes)
    for position, value in flips:
        data[position % len(data)] = value
    path = tmp_path / "damaged.npz"
    path.write_bytes(bytes(data) + tail)
    try:
        loaded = load_map(path)
    except MapFileError as error:
        assert str(path) in str(error)
        return
    assert _finite(loaded.map, loaded.points, loaded.weights, loaded.nodal_potential)


@SETTINGS
@given(
    arrays=st.dictionaries(
        st.sampled_from(["lower", "upper", "shape", "points", "weights", "map", "potential"]),
        hnp.arrays(
            st.sampled_from([np.float64, np.int64, np.bool_, np.complex128]),
            hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
        ),
    )
)
def test_map_file_with_replaced_arrays_loads_or_raises_map_file_error(
    saved_bytes, tmp_path, arrays
):
    with np.load(io.BytesIO(saved_bytes)) as data:
        contents = {name: data[name] for name in data.files}
    contents.update(arrays)
    path = tmp_path / "replaced.npz"
    np.savez(path, **contents)
    try:
        loaded = load_map(path)
    except MapFileError:
        return
    assert _finite(loaded.map, loaded.weights)


@SETTINGS
@given(
    weights=hnp.arrays(np.float64, st.integers(0, 3), elements=NUMBERS),
    means=hnp.arrays(
        np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=3), elements=NUMBERS
    ),
    sd=NUMBERS,
)
def test_gaussian_mixture_is_valid_or_refused(weights, means, sd):
    try:
        mixture = GaussianMixture(means, sd * np.ones((max(weights.size, 1), 1, 1)), weights)
    except PACKAGE_ERRORS:
        return
    assert _finite(mixture.weights, mixture.means, mixture.covs)
    assert np.isfinite(mixture.mass_outside([-6.0] * mixture.dim, [6.0] * mixture.dim))
