"""Silent wrong answers found by a fresh probe of bad inputs (issue 22), each now refused or
warned about; the commands' cases are one `error:` line each."""

import json
import re
import warnings

import numpy as np
import pytest

import gridflow.__main__ as gridflow_cli
import neural.__main__ as neural_cli
from gridflow import (
    Gaussian,
    Grid,
    LogConcaveTarget,
    Problem,
    examples,
    gaussian,
    map_distance,
    minimize,
    solve,
)
from gridflow.examples import paper_mixture
from gridflow.problem import FlooredSourceWarning
from neural import ICNN, make_method, run_method

X = np.random.default_rng(0).standard_normal((10, 2))


def test_map_distance_refuses_complex_maps_and_a_matrix_that_is_no_covariance():
    with pytest.raises(TypeError, match=r"trained_map\(source_samples\).*complex"):
        map_distance(lambda x: x + 1j, lambda x: x, X, 1.0)
    with pytest.raises(ValueError, match="target_cov must be positive definite"):
        map_distance(lambda x: x, lambda x: x, X, [[1.0, 5.0], [5.0, 1.0]])


@pytest.mark.parametrize(
    ("target_cov", "match"),
    [
        (True, "target_cov must be a number .* got booleans: True"),
        ([[True, False], [False, True]], "target_cov must be a number .* got booleans"),
        ("2", "target_cov must be an array of real numbers, got str"),
        ("abc", "target_cov must be an array of real numbers, got str"),
    ],
)
def test_map_distance_takes_no_bool_nor_text_for_the_target_covariance(target_cov, match):
    """True was taken for the variance 1 and '2' for 2 (probe P72-P74)."""
    with pytest.raises(TypeError, match=match):
        map_distance(lambda x: x, lambda x: 2 * x, X, target_cov)


@pytest.mark.parametrize(
    ("target", "match"),
    [
        (LogConcaveTarget.logcosh(2), "closed forms hold between Gaussians only"),
        (LogConcaveTarget.gaussian([0.0, 0.0], np.eye(2)), r"pass Gaussian\(target\.mean"),
        (None, "None"),
    ],
)
def test_the_gaussian_closed_forms_refuse_another_kind_of_target(target, match):
    """A wrong kind of object is a TypeError, not the ValueError of a bad value (probe P95)."""
    with pytest.raises(TypeError, match=r"target must be a gridflow\.Gaussian, got .*" + match):
        gaussian.ot_map(Gaussian([0.0, 0.0], np.eye(2)), target)


@pytest.mark.parametrize(
    ("box", "error"),
    [((-5, 5, 7), ValueError), ((-5,), ValueError), (5.0, TypeError), (5, TypeError)],
)
def test_example_problems_take_a_box_of_two_numbers(box, error):
    for build in (examples.problem_1d, examples.problem_2d):
        with pytest.raises(error, match="box must be a pair"):
            build(17, box=box)


@pytest.mark.parametrize("name", ["max_cut_mass", "density_floor"])
@pytest.mark.parametrize("value", ["0.1", None, True])
def test_problem_fractions_that_are_no_numbers_are_a_type_error(name, value):
    grid = Grid([-6.0], [6.0], [17])
    target = LogConcaveTarget.gaussian([0.0], [[1.0]])
    with pytest.raises(TypeError, match=f"{name} must be a real number, got {value!r}"):
        Problem(grid, examples.mixture_1d(), target, **{name: value})


@pytest.mark.parametrize(
    ("run", "match"),
    [
        (lambda p: minimize(p, progress="yes"), "progress must be True or False, got 'yes'"),
        (lambda p: solve(p, steps=1, progress=1), "progress must be True or False, got 1"),
        (lambda p: solve(p, tau=True, steps=2), "tau must be a real number, got True"),
        (lambda p: solve(p, tau="0.5", steps=2), "tau must be a real number, got '0.5'"),
        (lambda p: solve(p, tau=0.5, steps=True), "steps must be an integer >= 1, got True"),
    ],
)
def test_a_bool_is_no_step_and_only_a_bool_is_a_progress_flag(run, match):
    """float(True) and `not 'yes'` took these silently (probe P60, P63)."""
    with pytest.raises(TypeError, match=re.escape(match)):
        run(examples.problem_1d(33))


def test_a_problem_whose_floor_replaces_the_source_warns():
    with pytest.warns(FlooredSourceWarning, match="replaces 1 of the source's mass"):
        examples.problem_1d(17, source=Gaussian([0.0], [[1e-300]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        minimize(examples.problem_2d(17))  # its density-floor continuation does not warn


def test_minimize_checks_the_coarser_map():
    with pytest.raises(TypeError, match=r"coarser must be a gridflow\.DiscreteMap"):
        minimize(examples.problem_2d(9), coarser=5)


def test_a_target_left_at_the_default_dimension_is_refused_in_2d():
    target = LogConcaveTarget(lambda y: 0.5 * np.sum(y**2, axis=1), lambda y: y)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="the target has d = 1"):
        run_method(make_method("adam", steps=1), ICNN(2, (4,), rng=rng), paper_mixture(),
                   target, rng)  # fmt: skip


@pytest.mark.parametrize(
    ("name", "record", "message"),
    [
        ("target.json", {"mean": [0, 0], "cov": [[1, 0], [0, 1]], "covariance": [[2, 0], [0, 2]]},
         r"unknown keys \['covariance'\]"),
        ("mix.json", {"means": [[0, 0]], "covs": [[[1, 0], [0, 1]]], "weights": [1], "box": 3},
         r"unknown keys \['box'\]"),
    ],
)  # fmt: skip
def test_problem_files_with_unknown_keys_are_refused(
    name, record, message, tmp_path, exit_status_and_error
):
    (tmp_path / name).write_text(json.dumps(record))
    option = "--target" if name == "target.json" else "--source"
    argv = ["groundtruth", "--quiet", "--nodes", "9", "--out", str(tmp_path / "map.npz"),
            option, str(tmp_path / name)]  # fmt: skip
    status, line = exit_status_and_error(gridflow_cli.main, argv)
    assert status == 2 and re.search(message, line), line


def test_a_ground_truth_whose_images_miss_the_target_is_not_written(
    tmp_path, exit_status_and_error
):
    # N(0, 1e-300 I): the solver's scale cannot reach it; the two-grid estimate (1e-17) did
    # not see it, the spread of the images (1e-14 against 1e-150) does
    (tmp_path / "tiny.json").write_text(
        json.dumps({"mean": [0, 0], "cov": [[1e-300, 0], [0, 1e-300]]})
    )
    argv = ["groundtruth", "--quiet", "--source", "gaussian", "--nodes", "17", "--target",
            str(tmp_path / "tiny.json"), "--out", str(tmp_path / "map.npz")]  # fmt: skip
    status, line = exit_status_and_error(gridflow_cli.main, argv)
    assert status == 1 and "where the target spreads over 1.41e-150" in line
    assert not (tmp_path / "map.npz").exists()


def test_the_flow_check_refuses_a_step_that_overflows(exit_status_and_error):
    argv = ["flowcheck", "--tau", "1e308", "--size", "tiny", "--cases", "gaussian2d"]
    status, line = exit_status_and_error(neural_cli.main, argv)
    assert status == 2 and "--tau must be at most 1e+06" in line
