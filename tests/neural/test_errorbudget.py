"""The error budget of Remark 3.11 (neural.studies.errorbudget)."""

import numpy as np
import pytest

from neural.studies.errorbudget import budget_figure, error_budget, format_budget, make_problem


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
    with pytest.raises(ValueError, match=r"unknown problem 'banana' \(--problems\)"):
        make_problem("banana")
    with pytest.raises(
        ValueError,
        match=r"the dimension D of the problem 'gaussian0' \(--problems gaussianD.*positive",
    ):
        make_problem("gaussian0")
    with pytest.raises(TypeError, match=r"name \(--problems\) must be a str, got None"):
        make_problem(None)
    with pytest.raises(ValueError, match="unknown cause"):
        error_budget([make_problem("gaussian2")], causes=["magic"])
    with pytest.raises(ValueError, match="unknown init"):
        error_budget([make_problem("gaussian2")], inits=["zeros"])


def test_budget_rows_order_the_causes_on_a_gaussian_pair(tmp_path):
    """With the quadratic part, fitting T* directly is the floor the KL runs approach;
    the score-free KL beats the score estimate at the same budget."""
    rows = error_budget([make_problem("gaussian2")], widths=[(6, 6)], quadratic=[True],
                        steps=300, batches=[300], inner_steps=20, n_eval=4000,
                        fit_samples=2000)  # fmt: skip
    by_cause = {r.cause: r for r in rows}
    assert set(by_cause) == {
        "fit", "logdet", "score", "implicit K'=20", "implicit K'=200", "fit+logdet"
    }  # fmt: skip
    assert by_cause["fit"].batch == 2000 and by_cause["fit+logdet"].batch == 300
    assert all(r.status == "ok" and np.isfinite(r.uvp) for r in rows)
    assert by_cause["fit"].uvp < 0.05
    assert by_cause["fit+logdet"].uvp < by_cause["score"].uvp
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
        ["errorbudget", "--problems", "gaussian2", "--inits", "zeros"],
        ["errorbudget", "--problems", "gaussian2", "--inits", "torch", "--quadratic", "both"],
        ["errorbudget", "--problems", "gaussian2", "--seed", "-1"],
        ["errorbudget", "--problems", "gaussian2", "--out", str(tmp_path / "a" / "b")],
    ):
        with pytest.raises(SystemExit) as exit_:
            main([*argv, "--out", str(tmp_path / "out")] if "--out" not in argv else argv)
        assert exit_.value.code == 2
        assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_command_names_the_option_of_a_bad_problem_or_width(tmp_path, capsys):
    """--problems gaussian0 named only 'dimension'; --widths 20,x named --hidden."""
    from neural.__main__ import main

    out = ["--out", str(tmp_path / "out")]
    for option, argv in (
        ("--problems", ["errorbudget", "--problems", "gaussian0", *out]),
        ("--widths", ["errorbudget", "--problems", "gaussian2", "--widths", "20,x", *out]),
        ("--widths", ["errorbudget", "--problems", "gaussian2", "--widths", "0", *out]),
    ):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert "error:" in lines[-1] and option in lines[-1], lines[-1]
        assert "--hidden" not in lines[-1]
    assert not (tmp_path / "out").exists()


def test_fit_to_map_recovers_a_realizable_map_and_respects_the_constraints():
    """T* = ∇φ_θ* of the same architecture: from a perturbed θ*, L-BFGS-B drives the residual
    to roundoff level, and the fitted θ is admissible (Wz_l, w >= 0)."""
    from gridflow import Gaussian
    from neural import ICNN
    from neural.studies.errorbudget import fit_to_map

    truth = ICNN(2, (5, 5), np.random.default_rng(0), quadratic=True)
    start = ICNN.from_architecture(
        truth.architecture,
        truth.architecture.project(truth.params + 0.05 * np.random.default_rng(1).standard_normal(
            truth.num_params)),
    )  # fmt: skip
    source = Gaussian.standard(2)
    x = source.sample(np.random.default_rng(2), 2000)
    initial = np.mean((start.map(x) - truth.map(x)) ** 2)
    fit = fit_to_map(start, source, truth.map, steps=300, samples=1000,
                     rng=np.random.default_rng(3))  # fmt: skip
    assert initial > 1e-4
    # measured: ~1e-11 relative; with each gradient entry scaled by 1 ± 20 %, 4e-9
    assert fit.mean_squared_residual < 1e-9 * initial
    assert truth.architecture.is_admissible(fit.params)
    held_out = source.sample(np.random.default_rng(4), 5000)
    fitted = ICNN.from_architecture(truth.architecture, fit.params)
    assert np.max(np.abs(fitted.map(held_out) - truth.map(held_out))) < 1e-4


def test_fit_to_map_refuses_bad_sizes():
    from gridflow import Gaussian
    from neural import ICNN
    from neural.studies.errorbudget import fit_to_map

    net = ICNN(2, (3,), np.random.default_rng(0))
    for steps, samples in ((0, 10), (5, 0)):
        with pytest.raises(ValueError):
            fit_to_map(net, Gaussian.standard(2), lambda x: x, steps, samples,
                       np.random.default_rng(0))  # fmt: skip


def test_the_figure_of_a_budget_whose_runs_all_diverged():
    """Every UVP NaN: the panel says so instead of failing to log-scale nothing."""
    from neural.studies.errorbudget import BudgetRun, budget_figure

    nan = float("nan")
    rows = [BudgetRun("gaussian2", "implicit K'=50", (8,), False, 100, 200, nan, nan, nan, nan,
                      nan, 1.0, status="diverged: test")]  # fmt: skip
    figure = budget_figure(rows)
    texts = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert "no finite UVP: every run diverged" in texts
