"""Energy-distance MMD (paper eq. 1.10, the V-statistic of Fig. 2)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from neural import reference
from neural.mmd import energy_distance


def _plain(x, y):
    def mean_distance(a, b):
        return np.mean(np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1))

    return 2 * mean_distance(x, y) - mean_distance(x, x) - mean_distance(y, y)


@pytest.mark.parametrize(("n", "m", "d"), [(1, 1, 1), (7, 5, 3), (33, 64, 2), (100, 3, 5)])
def test_matches_plain_numpy(n, m, d):
    rng = np.random.default_rng(n + m + d)
    x = rng.standard_normal((n, d))
    y = rng.standard_normal((m, d)) + 0.4
    value = energy_distance(x, y)
    assert value == pytest.approx(_plain(x, y), rel=1e-12, abs=1e-12)
    assert value == pytest.approx(reference.energy_distance(x, y), rel=1e-12, abs=1e-12)
    assert value == pytest.approx(energy_distance(y, x), rel=1e-12, abs=1e-14)


def test_same_law_is_nearly_zero_and_shift_increases_it():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 2))
    y = rng.standard_normal((2000, 2))
    same = energy_distance(x, y)
    assert 0.0 <= same < 5e-3
    values = [energy_distance(x, y + np.array([shift, 0.0])) for shift in (0.1, 0.3, 1.0)]
    assert same < values[0] < values[1] < values[2]
    assert energy_distance(x, x) == pytest.approx(0.0, abs=1e-14)


def test_bad_input():
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match="y must have 2 columns"):
        energy_distance(x, np.zeros((4, 3)))
    y = np.ones((4, 2))
    y[0, 0] = np.inf
    with pytest.raises(ValueError, match="y contains 1 NaN or infinite"):
        energy_distance(x, y)
    with pytest.raises(ValueError, match=r"x must be a 2-D array"):
        energy_distance(np.zeros(4), x)
    with pytest.raises(ValueError, match="at least 1 point"):
        energy_distance(np.zeros((0, 2)), x)


# ----------------------------------------------------------------- property tests (hypothesis)

_ELEMENTS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1e-320, 1e150, -1e150, 1e154, 1e200, -1e300, 1.7e308]),
    st.floats(-5, 5),
)
_SAMPLES = hnp.arrays(
    st.sampled_from([np.float64, np.float32, np.int64, np.bool_, np.complex128]),
    hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5),
    elements=None,
)


def _points(dim):
    return hnp.arrays(np.float64, st.tuples(st.integers(0, 6), st.just(dim)), elements=_ELEMENTS)


@pytest.mark.filterwarnings("error::RuntimeWarning")
@settings(max_examples=50, deadline=None)
@given(data=st.data(), dim=st.integers(0, 3))
def test_energy_distance_is_finite_or_refused(data, dim):
    x = data.draw(_points(dim))
    y = data.draw(st.one_of(_points(dim), _SAMPLES))
    try:
        value = energy_distance(x, y)
    except (ValueError, TypeError):
        return
    assert np.isfinite(value)
    assert value >= -1e-9 * (1.0 + np.abs(x).max() + np.abs(y).max())


@settings(max_examples=50, deadline=None)
@given(x=_SAMPLES, y=_SAMPLES)
def test_energy_distance_of_arbitrary_arrays_is_finite_or_refused(x, y):
    try:
        value = energy_distance(x, y)
    except (ValueError, TypeError):
        return
    assert np.isfinite(value)


def test_energy_distance_refuses_magnitudes_whose_squares_overflow():
    x = np.array([[1e200, 0.0]])
    with pytest.raises(ValueError, match=r"x has entries of magnitude up to 1e\+200"):
        energy_distance(x, np.zeros((1, 2)))


def test_distance_to_one_sample_is_energy_distance_bit_for_bit():
    from neural.mmd import energy_distance_to

    rng = np.random.default_rng(5)
    y = rng.standard_normal((300, 2))
    to_y = energy_distance_to(y)
    for n in (1, 7, 300, 513):
        x = rng.standard_normal((n, 2)) + 0.3
        assert to_y(x) == energy_distance(x, y)
    with pytest.raises(ValueError, match="x must have 2 columns"):
        to_y(np.zeros((4, 3)))
    before = to_y(x)
    y[:] = 0.0  # the caller's array changes; the cached term is of the copy
    assert to_y(x) == before
    line = rng.standard_normal((50, 1))  # d = 1: y.T is already contiguous, still copied
    original, to_line = line.copy(), energy_distance_to(line)
    line[:] = 0.0
    z = rng.standard_normal((20, 1))
    assert to_line(z) == energy_distance(z, original)
    with pytest.raises(ValueError, match="y contains 1 NaN or infinite"):
        energy_distance_to(np.array([[0.0, np.nan], [1.0, 2.0]]))
