"""Evaluation sizes the estimators cannot use, and options that list a value twice, are
refused before any work: one `error: …` line naming the option, exit status 2. The library
functions behind the commands refuse the same sizes with a ValueError."""

import numpy as np
import pytest

import neural.__main__ as neural_cli
import validation.__main__ as validation_cli
from neural.studies.dimensions import dimension_study
from neural.studies.errorbudget import error_budget
from neural.studies.flowcheck import MIN_STEPS, flow_check
from neural.studies.sweep import BenchmarkConfig
from neural.training.kl import MIN_EVAL_SAMPLES


def refused(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1
    return errors[0]


@pytest.mark.parametrize(
    "argv, option, value",
    [
        (["dimensions", "--dims", "2", "8", "2"], "--dims", "2"),
        (["flowcheck", "--cases", "gaussian2d", "mixture", "gaussian2d"], "--cases", "gaussian2d"),
        (["errorbudget", "--problems", "gaussian2", "gaussian2"], "--problems", "gaussian2"),
        (["errorbudget", "--causes", "fit", "score", "fit"], "--causes", "fit"),
    ],
)
def test_a_value_listed_twice_is_refused(argv, option, value, capsys):
    line = refused(neural_cli.main, argv, capsys)
    assert option in line and value in line and "more than once" in line


def test_a_suite_named_twice_with_repeated_only_is_refused(tmp_path, capsys):
    argv = ["--out", str(tmp_path / "report"), "--only", "gaussian", "--only", "gaussian"]
    line = refused(validation_cli.main, argv, capsys)
    assert "--only" in line and "'gaussian'" in line and "more than once" in line
    assert not (tmp_path / "report").exists()


def test_distinct_repeated_only_options_are_still_accepted():
    arguments, _ = validation_cli.parse_arguments(["--only", "gaussian", "--only", "grid1d"])
    assert arguments.only == ["gaussian", "grid1d"]


@pytest.mark.parametrize("command", ["benchmark", "dimensions", "errorbudget"])
def test_n_eval_below_what_the_estimators_need_is_refused(command, capsys):
    line = refused(neural_cli.main, [command, "--n-eval", str(MIN_EVAL_SAMPLES - 1)], capsys)
    assert "--n-eval" in line and f">= {MIN_EVAL_SAMPLES}" in line


def test_flowcheck_steps_below_the_rate_fit_are_refused(capsys):
    line = refused(neural_cli.main, ["flowcheck", "--steps", str(MIN_STEPS - 1)], capsys)
    assert "--steps" in line and f">= {MIN_STEPS}" in line


def test_the_library_refuses_the_same_sizes_before_running():
    with pytest.raises(ValueError, match="n_eval must be at least 50"):
        dimension_study(dims=[2], methods=["euclidean"], n_eval=1)
    with pytest.raises(ValueError, match="n_eval must be at least 50"):
        BenchmarkConfig(n_eval=1)
    with pytest.raises(ValueError, match="n_eval must be at least 50"):
        error_budget(problems=[], n_eval=1)
    with pytest.raises(ValueError, match="steps must be at least 2"):
        flow_check("gaussian2d", steps=1, rng=np.random.default_rng(0))
