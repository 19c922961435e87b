"""numba building blocks of neural._kernels: exp, log1p, block bounds, fixed-order sums."""

import decimal
import math

import numpy as np
import pytest
from numba import njit

from neural._kernels import (
    JIT,
    block_bounds,
    exp_nonpositive,
    log1p_unit,
    squared_distances,
    sum4,
)

_CONTEXT = decimal.Context(prec=40)


def _exact_exp(v):
    """exp(v) rounded to the nearest float64 (40 significant digits, then one rounding)."""
    return float(_CONTEXT.exp(decimal.Decimal(v)))


def _exact_log1p(e):
    """log(1 + e) rounded to float64; the precision keeps 40 digits of e in 1 + e."""
    digits = 40 + (max(0, -math.floor(math.log10(e))) if e > 0.0 else 0)
    context = decimal.Context(prec=digits)
    return float(context.ln(context.add(1, decimal.Decimal(e))))


@njit(**JIT)
def _exp_all(values):
    out = np.empty_like(values)
    for i in range(values.size):  # the vectorized loop the kernels use
        out[i] = exp_nonpositive(values[i])
    return out


@njit(**JIT)
def _log1p_all(values):
    out = np.empty_like(values)
    for i in range(values.size):
        out[i] = log1p_unit(values[i])
    return out


def _ulps(actual, exact):
    return np.abs(actual - exact) / np.spacing(np.abs(exact))


def test_exp_within_one_ulp_of_the_correctly_rounded_value():
    rng = np.random.default_rng(0)
    magnitudes = np.exp(rng.uniform(-30.0, np.log(708.0), 5000))  # 1e-13 .. 708
    values = np.concatenate([-magnitudes, [0.0, -0.0, -708.0, -1e-300, -np.log(2) / 2]])
    exact = np.array([_exact_exp(v) for v in values])
    assert np.max(_ulps(_exp_all(values), exact)) <= 1.0
    assert _exp_all(np.array([0.0]))[0] == 1.0


def test_exp_below_the_floor_is_zero():
    # exp(v) < 3.3e-308 for v < -708: returned as 0 (documented), never garbage
    out = _exp_all(np.array([-708.5, -745.2, -1e4, -np.inf]))
    np.testing.assert_array_equal(out, 0.0)


def test_log1p_within_one_ulp_of_the_correctly_rounded_value():
    rng = np.random.default_rng(1)
    threshold = math.sqrt(2.0) - 1.0
    values = np.concatenate(
        [
            rng.uniform(0.0, 1.0, 5000),
            np.exp(rng.uniform(-700.0, 0.0, 2000)),  # tiny e: relative accuracy
            [1.0, 0.5, threshold, np.nextafter(threshold, 0.0), np.nextafter(threshold, 1.0)],
            [5e-324, 1e-300, 1e-17],
        ]
    )
    exact = np.array([_exact_log1p(v) for v in values])
    assert np.max(_ulps(_log1p_all(values), exact)) <= 1.0
    assert _log1p_all(np.array([0.0]))[0] == 0.0


@pytest.mark.parametrize(
    ("count", "block", "multiple"),
    [(1, 64, 4), (100, 64, 4), (65, 64, 4), (1000, 64, 4), (257, 32, 1), (7, 2, 1)],
)
def test_block_bounds_cover_the_range_in_whole_lanes(count, block, multiple):
    bounds = block_bounds(count, block, multiple)
    assert bounds[0] == 0 and bounds[-1] == count
    lengths = np.diff(bounds)
    assert np.all(lengths > 0) and np.all(lengths <= block)
    assert bounds.size - 1 == -(-count // block)
    assert np.all(bounds[:-1] % multiple == 0)


def test_sum4_is_the_documented_fixed_order_sum():
    values = np.random.default_rng(2).standard_normal(103) * 10.0 ** np.arange(103) % 7
    s = [0.0, 0.0, 0.0, 0.0]
    for j in range(100):
        s[j % 4] += values[j]
    for j in range(100, 103):
        s[0] += values[j]
    assert sum4(values, 103) == (s[0] + s[1]) + (s[2] + s[3])
    assert sum4(values, 0) == 0.0


def test_squared_distances():
    rng = np.random.default_rng(3)
    others = rng.standard_normal((9, 3))
    point = rng.standard_normal(3)
    out = np.empty(5)
    squared_distances(point, np.ascontiguousarray(others.T), 2, 7, out)
    np.testing.assert_allclose(out, np.sum((others[2:7] - point) ** 2, axis=1), rtol=1e-15)
