"""Silent wrong answers refused at construction: non-integrable targets, mass off the grid."""

import numpy as np
import pytest
from scipy import stats

from gridflow import (
    CallableSource,
    EmpiricalSource,
    Grid,
    GridCutsSourceError,
    LogConcaveTarget,
    Problem,
)


def _first(points):
    return np.asarray(points)[:, 0]


NOT_INTEGRABLE = {
    "V = 0 (d = 1)": (lambda y: np.zeros(len(y)), 1),
    "V linear (d = 1)": (_first, 1),
    "V = 0 (d = 2)": (lambda y: np.zeros(len(y)), 2),
    "V flat along an axis (d = 2)": (lambda y: 0.5 * _first(y) ** 2, 2),
    "V linear (d = 2)": (lambda y: np.asarray(y) @ np.array([1.0, 2.0]), 2),
}


@pytest.mark.parametrize("case", NOT_INTEGRABLE)
def test_target_whose_exp_minus_v_is_not_integrable_is_refused(case):
    V, dim = NOT_INTEGRABLE[case]
    with pytest.raises(ValueError, match="not integrable"):
        LogConcaveTarget(V=V, grad_V=None, lam=0.0, dim=dim)


def test_target_not_integrable_but_growing_is_refused_by_the_quadrature():
    """exp(-V) = 1/(1 + |y|) passes the growth probe but its integral diverges."""
    with pytest.raises(ValueError, match="integrable"):
        LogConcaveTarget(V=lambda y: np.log1p(np.abs(_first(y))), grad_V=None, lam=0.0)


def test_explicit_log_normalizer_does_not_bypass_the_growth_check():
    with pytest.raises(ValueError, match="not integrable"):
        LogConcaveTarget(V=lambda y: np.zeros(len(y)), grad_V=None, lam=0.0, log_normalizer=0.0)


def test_integrable_targets_keep_their_normalizer():
    laplace = LogConcaveTarget(V=lambda y: np.abs(_first(y)), grad_V=None, lam=0.0)
    assert laplace.log_normalizer == pytest.approx(np.log(2.0), rel=1e-10)
    standard = LogConcaveTarget(
        V=lambda y: 0.5 * np.sum(np.asarray(y) ** 2, axis=1), grad_V=None, lam=1.0, dim=2
    )
    assert standard.log_normalizer == pytest.approx(np.log(2 * np.pi), rel=1e-8)


def _two_bumps(points):
    """½ N(0, 1) + ½ N(40, 0.5²) in d = 1: half the mass far outside [-6, 6]."""
    x = _first(points)
    return 0.5 * stats.norm.pdf(x) + 0.5 * stats.norm.pdf(x, 40.0, 0.5)


GRID = Grid([-6.0], [6.0], [101])
TARGET = LogConcaveTarget.gaussian([0.0], [[1.0]])


def test_default_cut_check_sees_only_three_times_the_box():
    """The documented limitation: mass beyond 3× the box is not seen without `support`."""
    source = CallableSource(_two_bumps, 1)
    assert source.mass_outside(GRID.lower, GRID.upper) < 1e-6
    np.testing.assert_allclose(source.checked_box(GRID.lower, GRID.upper), [[-18.0], [18.0]])


def test_declared_support_makes_the_cut_check_see_far_mass():
    source = CallableSource(_two_bumps, 1, support=([-50.0], [50.0]))
    assert source.mass_outside(GRID.lower, GRID.upper) == pytest.approx(0.5, abs=1e-3)
    with pytest.raises(GridCutsSourceError, match="declared support"):
        Problem(GRID, source=source, target=TARGET)


def test_cut_error_says_what_was_checked():
    narrow = Grid([-2.0], [2.0], [41])
    with pytest.raises(GridCutsSourceError, match=r"3× the grid box.*support="):
        Problem(narrow, source=lambda x: stats.norm.pdf(_first(x)), target=TARGET)


def test_default_cut_check_is_unchanged_and_matches_the_exact_mass():
    source = CallableSource(lambda x: stats.norm.pdf(_first(x)), 1)
    exact = 2 * stats.norm.sf(2.5)
    assert source.mass_outside([-2.5], [2.5]) == pytest.approx(exact, rel=1e-4)


@pytest.mark.parametrize(
    "support",
    [([0.0], [0.0]), ([1.0], [-1.0]), ([0.0, 0.0], [1.0, 1.0]), ([np.nan], [1.0])],
)
def test_bad_support_is_refused(support):
    with pytest.raises(ValueError, match="support"):
        CallableSource(_two_bumps, 1, support=support)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((np.ones(3), 2), {}, TypeError, "function must be a density callable"),
        ((_two_bumps, 0), {}, ValueError, "dim must be a positive integer"),
        ((_two_bumps, 1.5), {}, TypeError, "dim must be a positive integer"),
        ((_two_bumps, 1), {"nodes_per_axis": 1}, ValueError, "nodes_per_axis must be at least 2"),
    ],
)
def test_bad_callable_source_is_refused(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        CallableSource(*args, **kwargs)


@pytest.mark.parametrize(
    ("samples", "match"),
    [
        (np.zeros((1, 2)), "at least 2 point"),
        (np.ones((2, 100)), r"N = 2 rows \(points\) in d = 100 columns.*pass samples\.T"),
        (np.ones((3, 3)), "no more points than dimensions"),
        (np.zeros(5), r"shape \(n, d\)"),
    ],
)
def test_bad_empirical_source_is_refused(samples, match):
    with pytest.raises(ValueError, match=match):
        EmpiricalSource(samples)
