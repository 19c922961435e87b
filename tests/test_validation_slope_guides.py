"""The 2λ slope guides of the flow figures: visible (a decade off the curve they are
compared with, not on it or on a bound) and as long as the curves."""

import numpy as np
import pytest

import validation.gaussian_checks
import validation.grid1d_checks
from validation.plotting import GUIDE_OFFSET, pyplot, slope_guide


def _captured(monkeypatch, module):
    figures = []

    def capture(figure, outdir, name, caption):
        figure.canvas.draw()
        figures.append((name, [(line.get_label(), *line.get_data()) for ax in figure.axes
                               for line in ax.get_lines()]))  # fmt: skip
        return {"figures": [name], "captions": {name: caption}}

    monkeypatch.setattr(module, "figure_file", capture)
    return figures


def _check_guide(lines, curve_label, rate):
    (guide,) = [(x, y) for label, x, y in lines if label.startswith("slope")]
    (curve,) = [(x, y) for label, x, y in lines if label.startswith(curve_label)]
    x, y = np.asarray(guide[0], float), np.asarray(guide[1], float)
    assert x[0] == curve[0][0] and x[-1] == curve[0][-1]  # as long as the curve
    np.testing.assert_allclose(np.diff(np.log(y)) / np.diff(x), -rate, rtol=1e-9)
    for label, _, other in lines:  # off every other line: never drawn over one
        if not label.startswith("slope"):
            assert np.median(np.abs(np.log10(y / np.asarray(other, float)))) > 0.3, label


def test_slope_guide_runs_over_all_times_a_decade_below_the_fit():
    fit = type("Fit", (), {"rate": 2.0, "intercept": 0.0, "time_start": 1.0})()
    times = np.linspace(0.0, 5.0, 11)
    with pyplot() as plt:
        _, axis = plt.subplots()
        line = slope_guide(axis, times, fit, 1.5, "slope")
        x, y = line.get_data()
    np.testing.assert_array_equal(x, times)
    assert y[2] == pytest.approx(np.exp(-2.0) / GUIDE_OFFSET)


def test_gaussian_energy_gap_guide(monkeypatch, tmp_path):
    figures = _captured(monkeypatch, validation.gaussian_checks)
    validation.gaussian_checks._checks_for(2, tmp_path)
    (lines,) = [lines for name, lines in figures if name == "gaussian_energy_gap_d2.png"]
    _, target = validation.gaussian_checks.setting(2)
    lam = validation.gaussian_checks.gaussian.lambda_convexity(target)
    _check_guide(lines, "$F(T_t)", 2.0 * lam)


def test_grid1d_flow_guide(monkeypatch, tmp_path):
    figures = _captured(monkeypatch, validation.grid1d_checks)
    validation.grid1d_checks.flow_checks(60, 60, tmp_path)
    ((_, lines),) = figures
    _check_guide(lines, "shifted mixture: fitted", 2.0)
