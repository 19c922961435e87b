"""The error budget of Remark 3.11 (neural.errorbudget)."""

import numpy as np
import pytest

from neural.errorbudget import budget_figure, error_budget, format_budget, make_problem


def test_gaussian_problem_matches_the_dimension_study():
    problem = make_problem("gaussian3")
    x = problem.source.sample(np.random.default_rng(0), 5)
    y = problem.true_map(x)
    assert y.shape == (5, 3)
    # T* pushes ϱ0 to γ: the pushed covariance is γ's
    big = problem.source.sample(np.random.default_rng(1), 200_000)
    np.testing.assert_allclose(np.cov(problem.true_map(big).T), problem.target_cov, atol=0.02)


def test_bad_problems_are_refused():
    with pytest.raises(ValueError, match="ground-truth map"):
        make_problem("mixture")
    with pytest.raises(ValueError, match="unknown problem"):
        make_problem("banana")
    with pytest.raises(ValueError, match="unknown cause"):
        error_budget([make_problem("gaussian2")], causes=["magic"])


def test_budget_rows_order_the_causes_on_a_gaussian_pair(tmp_path):
    """With the quadratic part, fitting T* directly is the floor the KL runs approach;
    the score-free KL beats the score estimate at the same budget."""
    rows = error_budget([make_problem("gaussian2")], widths=[(6, 6)], quadratic=[True],
                        steps=300, batches=[300], inner_steps=20, n_eval=4000)  # fmt: skip
    by_cause = {r.cause: r for r in rows}
    assert set(by_cause) == {"fit", "logdet", "score", "implicit K'=20", "implicit K'=200"}
    assert all(r.status == "ok" and np.isfinite(r.uvp) for r in rows)
    assert by_cause["fit"].uvp < 0.05
    assert by_cause["logdet"].uvp < by_cause["score"].uvp
    assert by_cause["logdet"].kl < by_cause["score"].kl
    text = format_budget(rows)
    assert "implicit K'=200" in text and "gaussian2" in text
    budget_figure(rows).savefig(tmp_path / "b.png")
    assert (tmp_path / "b.png").stat().st_size > 10_000


def test_command_refuses_bad_input_before_any_run(tmp_path, capsys):
    from neural.__main__ import main

    for argv in (
        ["errorbudget", "--problems", "mixture", "--ground-truth", str(tmp_path / "no.npz")],
        ["errorbudget", "--problems", "gaussian2", "--steps", "0"],
        ["errorbudget", "--problems", "gaussian2", "--causes", "magic"],
        ["errorbudget", "--problems", "gaussian2", "--out", str(tmp_path / "a" / "b")],
    ):
        with pytest.raises(SystemExit) as exit_:
            main([*argv, "--out", str(tmp_path / "out")] if "--out" not in argv else argv)
        assert exit_.value.code == 2
        assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
