"""The neural schemes against the reference schemes (neural.studies.flowcheck, #10 item 5)."""

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gridflow import gaussian
from neural.studies.flowcheck import flow_check, flowcheck_figure, format_flowcheck, make_case

REPO = Path(__file__).parents[2]


def test_gaussian_case_against_the_exact_implicit_scheme():
    size = {"hidden": (16, 16), "inner_steps": 200, "batch_size": 500, "n_eval": 20000}
    check = flow_check("gaussian2d", tau=0.25, steps=6, size=size,
                       variants=[("implicit", "logdet")])  # fmt: skip
    case = make_case("gaussian2d")
    exact = gaussian.implicit_scheme(
        gaussian.Gaussian(case.source.mean, case.source.cov),
        gaussian.Gaussian(np.zeros(2), np.eye(2)),
        0.25,
        6,
    )
    np.testing.assert_allclose(check.reference.kl, exact.kl, rtol=1e-12)
    (run,) = check.neural
    assert run.distance[0] == 0.0  # both start at the identity
    assert abs(run.kl[0] - exact.kl[0]) < 4 * run.kl_error[0]  # (★) at T = id
    assert check.fit_steps.size >= 3 and check.fit_steps[0] == 0
    # Thm 2.13 (iii): the reference decays at least at 2λ; the score-free implicit scheme
    # with Adam inner steps tracks it (the validation report's rate check)
    assert check.reference_rate > check.two_lambda == 2.0
    assert abs(check.rates[run.label] / check.reference_rate - 1.0) < 0.25
    assert np.max(run.distance) < 0.02


def test_mixture_reference_is_the_grid_scheme(tmp_path):
    variants = [("implicit", "logdet"), ("explicit", "score")]
    check = flow_check("mixture", tau=0.25, steps=2, size="tiny", variants=variants)
    assert check.reference.label.startswith("grid implicit scheme, 33² nodes")
    assert np.all(np.diff(check.reference.kl) < 0)  # Thm 2.13 (i) for the grid scheme
    for run in check.neural:
        assert run.kl.shape == run.distance.shape == (3,)
        assert np.all(np.isfinite(run.kl)) and np.all(run.distance[1:] > 0)
    text = format_flowcheck(check)
    assert "[1]  implicit, logdet" in text and "[2]  explicit, score" in text
    # a KL below its Monte Carlo error from step 1 on (e.g. τ = 1e6): no rate, and why
    rates = dict.fromkeys(check.rates, np.nan)
    unfitted = replace(check, fit_steps=np.array([0]), reference_rate=np.nan, rates=rates)
    text = format_flowcheck(unfitted)
    assert "not fitted" in text and "this run has 1 (steps: 0)" in text
    assert "more steps, a smaller τ, or a larger size" in text and "nan" not in text
    figure = flowcheck_figure([check])
    figure.savefig(tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 10_000


def test_flowcheck_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown case"):
        make_case("banana")
    with pytest.raises(ValueError, match="size"):
        flow_check("gaussian2d", size="huge")
    with pytest.raises(ValueError, match="tau"):
        flow_check("gaussian2d", tau=-1.0)
    with pytest.raises(ValueError, match=r"size\['init'\] must be one of normal, torch, anchored"):
        flow_check("gaussian2d", size={"init": "bogus"})  # before the reference runs


def test_flowcheck_command(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "neural", "flowcheck", "--cases", "gaussian2d", "--steps", "2",
         "--size", "tiny", "--out", str(tmp_path / "out")],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={"PYTHONPATH": str(REPO), "NUMBA_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "case gaussian2d" in result.stdout
    assert (tmp_path / "out" / "flowcheck.png").exists()
    bad = subprocess.run(
        [sys.executable, "-m", "neural", "flowcheck", "--steps", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert bad.returncode == 2 and "error: argument --steps" in bad.stderr
