"""Energy-distance MMD (paper eq. 1.10, the V-statistic of Fig. 2)."""

import numpy as np
import pytest

from neural import _reference as reference
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
