"""Answers to the fifth list of a user's bad or unusual inputs (issue 22), and to the
leftovers the fourth list's note named: each now answered, refused by name or warned about."""

import json
import os
import warnings

import numpy as np
import pytest

import gridflow.__main__ as gridflow_cli
import neural.__main__ as neural_cli
import validation.__main__ as validation_cli
from gridflow import (
    AffineMap,
    EmpiricalSource,
    Gaussian,
    GaussianMixture,
    Grid,
    GridDensity,
    GridMap,
    LogConcaveTarget,
    Problem,
    examples,
    gaussian,
    load_map,
    map_distance,
    minimize,
    save_map,
)
from gridflow.checks import output_file, unreadable
from gridflow.cli import NEGATIVE_NUMBER, OutputFile, ReportFolder
from gridflow.groundtruth import (
    MapFileError,
    accuracy_problems,
    check_usable,
    read_source,
    truth_error,
)
from neural import ICNN, make_method, run_method
from neural.model import FitSettings, fit
from neural.score import self_entropic_score
from neural.training.run import DeadUnitsWarning


@pytest.mark.parametrize("text", ["-1", "-1.", "-.5", "-1e-300", "-2.5E+3", "-1e1", "-inf", "-NaN"])
def test_negative_numbers_with_exponents_are_arguments(text):
    assert NEGATIVE_NUMBER.match(text)


@pytest.mark.parametrize("text", ["-e1", "-1e", "--box", "-", "-1e-3x", "-infinity"])
def test_options_are_not_numbers(text):
    assert not NEGATIVE_NUMBER.match(text)


def test_source_box_reads_negative_exponents():
    # argparse's own pattern has no exponent: "-1e-3" was an unknown option
    args = gridflow_cli.parser().parse_args(
        ["groundtruth", "--source", "d.npy", "--source-box", "-1e-3", "1", "-2.5E+0", "2"]
    )
    assert [float(v) for v in args.source_box] == [-1e-3, 1.0, -2.5, 2.0]


def test_negative_exponent_reaches_the_value_check(capsys):
    with pytest.raises(SystemExit) as ended:
        neural_cli.main(["flowcheck", "--tau", "-1e-3"])
    assert ended.value.code == 2
    assert "--tau must be a finite number > 0, got -0.001" in capsys.readouterr().err


@pytest.fixture(scope="module")
def solved():
    problem = examples.problem_2d(11)
    return minimize(problem)


def _grid_map(solved, **changes):
    fields = dict(
        grid=solved.grid,
        points=solved.points,
        map=solved.map,
        nodal_potential=np.reshape(solved.potential, solved.grid.shape),
        weights=solved.weights,
        metadata={},
    )
    return GridMap(**{**fields, **changes})


def test_grid_map_refuses_rows_out_of_grid_order(solved):
    # reversed rows were interpolated as if in C order: T(0.3, -0.7) came out negated
    order = np.arange(solved.points.shape[0])[::-1]
    with pytest.raises(ValueError, match="cell centers in C order"):
        _grid_map(solved, points=solved.points[order], map=solved.map[order],
                  weights=solved.weights[order])  # fmt: skip


@pytest.mark.parametrize("move", ["shift", "random"])
def test_grid_map_refuses_points_that_are_not_cell_centers(solved, move):
    points = solved.points + 0.01 if move == "shift" else (
        np.random.default_rng(0).uniform(-5, 5, solved.points.shape))  # fmt: skip
    with pytest.raises(ValueError, match="cell centers"):
        _grid_map(solved, points=points)


def test_grid_map_keeps_its_own_copies(solved):
    grid_map = GridMap.from_discrete_map(solved)
    point = np.array([[1.0, 1.0]])
    before = grid_map(point)
    changed = solved.map.copy()
    changed_map = type(solved)(solved.grid, solved.points, solved.weights, changed,
                               solved.potential, solved.energy)  # fmt: skip
    shared = GridMap.from_discrete_map(changed_map)
    changed[:] = 0.0
    np.testing.assert_array_equal(shared(point), before)
    assert not grid_map.map.flags.writeable


def test_grid_map_refuses_a_nan_potential(solved):
    potential = np.reshape(solved.potential, solved.grid.shape).copy()
    potential[0, 0] = np.nan
    with pytest.raises(ValueError, match="nodal_potential contains 1 NaN"):
        _grid_map(solved, nodal_potential=potential)


def test_grid_map_refuses_negative_weights(solved):
    with pytest.raises(ValueError, match="non-negative"):
        _grid_map(solved, weights=-solved.weights)


@pytest.mark.parametrize("metadata", [None, "meta"])
def test_grid_map_metadata_is_a_dict(solved, metadata):
    with pytest.raises(TypeError, match="metadata must be a dict"):
        _grid_map(solved, metadata=metadata)


@pytest.mark.parametrize("grid", ["x", None])
def test_discrete_map_refuses_a_grid_of_another_kind(solved, grid):
    with pytest.raises(TypeError, match=r"grid must be a gridflow\.Grid"):
        type(solved)(grid, solved.points, solved.weights, solved.map, solved.potential, 0.0)


def test_discrete_map_energy_is_a_number(solved):
    with pytest.raises(TypeError, match="energy"):
        type(solved)(solved.grid, solved.points, solved.weights, solved.map, solved.potential,
                     "low")  # fmt: skip


@pytest.mark.parametrize(
    ("cov", "field", "message"),
    [
        ([[1.0, 0.5], [0.0, 1.0]], [[0.0, 1.0], [0.0, 0.0]], "source_cov must be symmetric"),
        (np.eye(2), [[np.nan, 1.0], [0.0, 0.0]], "field_matrix contains 1 NaN"),
        ([[np.nan, 0.0], [0.0, 1.0]], np.eye(2), "source_cov contains 1 NaN"),
        (np.eye(2), np.eye(3), r"field_matrix must have shape \(2, 2\)"),
    ],
)
def test_gaussian_helmholtz_projection_checks_its_matrices(cov, field, message):
    # an asymmetric covariance gave an answer that depended on its transpose; NaN gave NaN
    with pytest.raises(ValueError, match=message):
        gaussian.helmholtz_projection(cov, field)


def test_gaussian_helmholtz_projection_refuses_text():
    with pytest.raises(TypeError, match="source_cov must be an array of real numbers"):
        gaussian.helmholtz_projection("a", "b")


LAW_1D = Gaussian([0.0], [[4.0]])


@pytest.mark.parametrize(
    "x", [None, [None, 1.0], "0.5", ["abc"], np.array([True, False]), np.array([1 + 1j])]
)
@pytest.mark.parametrize("function", ["cdf", "sf"])
def test_cdf_and_sf_take_numbers_only(x, function):
    # None and [None, 1] gave NaN, booleans 0 and 1, '0.5' the value at 0.5
    with pytest.raises(TypeError, match="x must be"):
        getattr(LAW_1D, function)(x)


def test_a_mixture_cdf_takes_numbers_only():
    mixture = GaussianMixture([[-1.0], [1.0]], [[[1.0]], [[1.0]]], [0.5, 0.5])
    with pytest.raises(TypeError, match="x must be"):
        mixture.cdf(None)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Grid(np.ma.masked_array([-1.0, -5.0], mask=[0, 1]), [1.0, 1.0], [5, 5]),
        lambda: Gaussian(np.ma.masked_array([0.0, 1e9], mask=[0, 1]), np.eye(2)),
        lambda: LAW_1D.cdf(np.ma.masked_array([0.0, 1e9], mask=[0, 1])),
        lambda: Gaussian([0.0, 0.0], np.eye(2)).log_density(
            np.ma.masked_array([[0.0, 0.0], [50.0, 50.0]], mask=[[0, 0], [1, 1]])
        ),
    ],
)
def test_masked_arrays_are_refused(build):
    # the mask was dropped: the masked entries counted as values
    with pytest.raises(TypeError, match="masked array"):
        build()


@pytest.mark.parametrize(
    "build",
    [
        lambda: Gaussian([True, False], np.eye(2)),
        lambda: Grid([False], [True], [5]),
    ],
)
def test_booleans_are_not_numbers(build):
    with pytest.raises(TypeError, match="got booleans"):
        build()


def test_map_distance_gives_each_map_its_own_copy():
    def shifting(x):
        x += 1.0  # a map that writes into its argument
        return x

    distance = map_distance(shifting, AffineMap.identity(2), np.zeros((3, 2)), 2.0)
    assert distance.l2 == pytest.approx(np.sqrt(2.0), rel=1e-15)


def test_fit_progress_is_a_flag():
    with pytest.raises(TypeError, match="progress must be True or False"):
        fit(np.random.default_rng(0).standard_normal((200, 2)), rng=np.random.default_rng(0),
            progress="no")  # fmt: skip


def test_fit_names_columns_of_very_different_scales():
    # the Gaussian start's "cov must be positive definite" named a cov the user never gave
    rng = np.random.default_rng(0)
    data = rng.standard_normal((200, 2)) * [1.0, 1e-9]
    with pytest.raises(ValueError, match=r"column 1 varies by 1\.0e-09.*rescale the columns"):
        fit(data, rng=rng, settings=FitSettings(hidden=(4,), anchors=4, steps=2))


@pytest.mark.parametrize("value", ["yes", 1])
def test_self_entropic_score_return_info_is_a_flag(value):
    x = np.random.default_rng(0).standard_normal((20, 2))
    with pytest.raises(TypeError, match="return_info must be True or False"):
        self_entropic_score(x, return_info=value)


def test_a_density_callable_is_no_neural_source():
    # TypeError "<lambda>() takes 1 positional argument but 2 were given" from the batch draw
    network = ICNN(2, (4,), rng=np.random.default_rng(1), quadratic=True)
    with pytest.raises(TypeError, match=r"cannot be called as source\(rng, n\)"):
        run_method(make_method("adam", steps=2, batch_size=50), network,
                   lambda x: np.exp(-np.sum(x**2, axis=1)),
                   LogConcaveTarget.standard_gaussian(2), np.random.default_rng(0))  # fmt: skip


@pytest.mark.parametrize("dim", [1, 2])
def test_a_box_whose_squares_overflow_is_refused(dim):
    # minimize then failed on "T contains 128 NaN" (2D) or "not strictly inside K_h" (1D)
    with pytest.raises(ValueError, match=r"\|x\|² overflows"):
        Problem(Grid([-1e300] * dim, [1e300] * dim, [9] * dim), Gaussian(np.zeros(dim),
                np.eye(dim)), LogConcaveTarget.standard_gaussian(dim))  # fmt: skip


# ------------------------------------------------------------------ the commands' findings


def test_a_file_name_too_long_is_an_argument_error(tmp_path):
    # OSError "File name too long" came out of argparse's type check as a traceback
    with pytest.raises(ValueError, match="File name too long"):
        output_file(tmp_path / ("a" * 300 + ".npz"), "--out", ".npz")


@pytest.mark.parametrize(
    "read",
    [
        lambda path: EmpiricalSource.from_file(path.with_suffix(".csv")),
        lambda path: read_source(str(path.with_suffix(".json"))),
        lambda path: GridDensity.from_file(path.with_suffix(".npy"), box=((0, 0), (1, 1))),
        lambda path: load_map(path.with_suffix(".npz")),
    ],
)
def test_a_named_pipe_is_refused_before_it_is_opened(tmp_path, read):
    # reading a pipe waited forever for a writer
    for suffix in (".csv", ".json", ".npy", ".npz"):
        os.mkfifo(tmp_path / f"pipe{suffix}")
    with pytest.raises(ValueError, match="not a regular file"):
        read(tmp_path / "pipe")


def test_unreadable_names_each_reason(tmp_path):
    (tmp_path / "file.txt").write_text("1 2\n")
    assert unreadable(tmp_path / "file.txt") is None
    assert unreadable(tmp_path / "missing.txt") == "does not exist"
    assert unreadable(tmp_path) == "is a folder"


def test_an_output_file_that_is_a_folder_is_refused_with_overwrite(tmp_path):
    # errorbudget's rows file as a folder: IsADirectoryError when it was emptied
    (tmp_path / "eb-partial.jsonl").mkdir()
    with pytest.raises(ValueError, match="is a folder, not a file"):
        OutputFile(tmp_path / "eb-partial.jsonl", "--out's rows file", True)


@pytest.mark.parametrize(
    ("metadata", "recorded"),
    [
        ({}, "records no error_estimate"),
        ({"error_estimate": float("nan")}, "records error_estimate nan"),
        ({"error_estimate": -1.0}, "records error_estimate -1.0"),
        ({"error_estimate": "small"}, "records error_estimate 'small'"),
        ({"error_estimate": True}, "records error_estimate True"),
    ],
)
def test_a_ground_truth_needs_a_finite_error_estimate(metadata, recorded):
    # without one, every distance was graded against NaN: "not resolved" or unmarked
    with pytest.raises(ValueError, match=recorded):
        check_usable(metadata, "truth.npz")


def test_a_ground_truth_with_an_estimate_is_usable():
    check_usable({"error_estimate": 1e-3}, "truth.npz")


def test_overwrite_keeps_the_pictures_of_a_folder_without_a_report(tmp_path):
    # validation --overwrite deleted holiday.png: "*.png" counted it as the report's figure
    (tmp_path / "holiday.png").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"holds holiday\.png, which this command does not write"):
        ReportFolder(tmp_path, "output folder", ("report.json", "report.md", "*.png"), True)


def test_overwrite_replaces_a_report_with_its_figures(tmp_path):
    for name in ("report.json", "report.md", "flow.png"):
        (tmp_path / name).write_text("old")
    folder = ReportFolder(tmp_path, "output folder", ("report.json", "report.md", "*.png"), True)
    with folder.staged() as staged:
        (staged / "report.json").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_a_file_another_run_wrote_meanwhile_is_not_replaced(tmp_path):
    # two runs with the same --out both printed "wrote": the second replaced the first
    target = OutputFile(tmp_path / "map.npz", "--out", False)
    (tmp_path / "map.npz").write_text("the other run's")
    with pytest.raises(SystemExit, match="written by another run"), target.staged() as staged:
        staged.write_text("this run's")
    assert (tmp_path / "map.npz").read_text() == "the other run's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.npz"]


def test_a_report_another_run_wrote_meanwhile_is_not_replaced(tmp_path):
    folder = ReportFolder(tmp_path / "report", "--out", ("flowcheck.txt",), False)
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "flowcheck.txt").write_text("the other run's")
    with pytest.raises(SystemExit, match="written by another run"), folder.staged() as staged:
        (staged / "flowcheck.txt").write_text("this run's")
    assert (tmp_path / "report" / "flowcheck.txt").read_text() == "the other run's"


@pytest.mark.parametrize(
    ("argv", "field", "expected"),
    [
        (["dimensions", "--dims", "2", "--dims", "3"], "dims", [2, 3]),
        (["dimensions"], "dims", [2, 8, 32]),
        (["flowcheck", "--cases", "gaussian2d", "--cases", "gaussian8"], "cases",
         ["gaussian2d", "gaussian8"]),
    ],
)  # fmt: skip
def test_a_repeated_list_option_adds_to_the_list(argv, field, expected):
    # the second --dims dropped the first list without a word
    assert getattr(neural_cli._parser().parse_args(argv), field) == expected


def test_validation_only_still_gathers_its_repetitions():
    arguments = validation_cli.parse_arguments(["--only", "gaussian", "--only", "grid1d"])[0]
    assert arguments.only == ["gaussian", "grid1d"]


def test_a_json_file_with_a_repeated_key_is_refused(tmp_path):
    # json keeps the last "weights" without a word
    path = tmp_path / "mixture.json"
    path.write_text('{"means": [[0, 0]], "covs": [[[1, 0], [0, 1]]], "weights": [1], '
                    '"weights": [2]}')  # fmt: skip
    with pytest.raises(ValueError, match=r"the keys \['weights'\] appear more than once"):
        read_source(str(path))


# ------------------------------------------------------------------ the sixth list's findings


def test_accuracy_problems_names_a_recorded_estimate_that_is_no_number():
    # TypeError "unsupported operand type(s) for /: 'str' and 'float'"
    with pytest.raises(ValueError, match="records error_estimate 'small'"):
        accuracy_problems({"error_estimate": "small", "map_spread": 1.0})
    with pytest.raises(ValueError, match=r"records map_spread 0\.0"):
        accuracy_problems({"error_estimate": 0.1, "map_spread": 0.0})


def test_a_tau_just_above_the_limit_is_printed_in_full(capsys):
    # "must be at most 1e+06, got 1e+06" read as a contradiction
    with pytest.raises(SystemExit):
        neural_cli.main(["flowcheck", "--tau", "1.0000001e6"])
    assert "got 1000000.1" in capsys.readouterr().err


@pytest.mark.parametrize("change", ["swap the map's columns", "negate the potential"])
def test_a_map_file_whose_map_is_not_its_potentials_gradient_is_refused(tmp_path, solved, change):
    save_map(tmp_path / "map.npz", solved)
    arrays = dict(np.load(tmp_path / "map.npz"))
    if change == "swap the map's columns":
        arrays["map"] = arrays["map"][:, ::-1].copy()
    else:
        arrays["potential"] = -arrays["potential"]
    np.savez(tmp_path / "changed.npz", **arrays)
    assert load_map(tmp_path / "map.npz").dim == 2
    with pytest.raises(MapFileError, match="not the discrete gradient D_h φ"):
        load_map(tmp_path / "changed.npz")


# ---------------------------------------------------------------- the seventh list's findings


def test_minimize_in_1d_refuses_a_coarser_map_of_another_problem(solved):
    # it was ignored without a word (d = 1 solves exactly and reads no start)
    problem = Problem(Grid([-6.0], [6.0], [33]), Gaussian([0.5], [[0.49]]),
                      LogConcaveTarget.gaussian([1.0], [[4.0]]))  # fmt: skip
    with pytest.raises(ValueError, match="coarser must be the map of a grid"):
        minimize(problem, coarser=solved)


def test_a_resumed_sweep_refuses_a_record_without_a_method(tmp_path, capsys):
    # a seed record edited to "methods": {} counted as done: the table read "0 runs, nan"
    argv = ["benchmark", "--no-progress", "--size", "tiny", "--methods", "adam", "--n-eval",
            "50", "--seeds", "1", "--out", str(tmp_path / "bm")]  # fmt: skip
    assert neural_cli.main(argv) == 0
    results = tmp_path / "bm" / "results.jsonl"
    record = json.loads(results.read_text())
    record["methods"] = {}
    results.write_text(json.dumps(record) + "\n")
    with pytest.raises(SystemExit) as ended:
        neural_cli.main(argv)
    assert ended.value.code == 2
    assert "the record of seed 0 holds no results of adam" in capsys.readouterr().err


def test_training_that_clips_every_output_weight_warns():
    # all four w ended at 0 and T_θ(x) = 2.68 x was returned without a word (L² error 0.36)
    source, target = Gaussian([0.5], [[0.49]]), LogConcaveTarget.gaussian([1.0], [[4.0]])
    method = make_method("adam", kl="logdet", steps=400, batch_size=400, learning_rate=0.02,
                         cosine_decay=True)  # fmt: skip
    network = ICNN(1, (4,), rng=np.random.default_rng(1), quadratic=True)
    with pytest.warns(DeadUnitsWarning, match="quadratic part alone"):
        result = run_method(method, network, source, target, np.random.default_rng(0))
    assert not result.network.views()["w"].any()


def test_training_that_keeps_output_weights_does_not_warn():
    source, target = Gaussian([0.5], [[0.49]]), LogConcaveTarget.gaussian([1.0], [[4.0]])
    network = ICNN(1, (4,), rng=np.random.default_rng(2), quadratic=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeadUnitsWarning)
        result = run_method(make_method("adam", kl="logdet", steps=50, batch_size=100), network,
                            source, target, np.random.default_rng(0))  # fmt: skip
    assert result.network.views()["w"].any()


# ----------------------------------------------------------------- the eighth list's findings


def test_fit_takes_a_convexity_floor_near_one():
    # LinAlgError "Matrix is not positive definite": the refit on all rows had a smallest
    # eigenvalue below the floor set from the training rows
    factor = np.linalg.cholesky([[0.597, 0.233], [0.233, 0.376]])
    data = np.random.default_rng(6).standard_normal((2000, 2)) @ factor.T + [0.3, -0.24]
    settings = FitSettings(hidden=(4,), steps=5, evaluate_every=5, convexity_floor=0.999)
    result = fit(data, None, settings, rng=np.random.default_rng(0))
    assert result.map.training["refit_on_all_rows"]
    quadratic = result.map.network.architecture.quadratic_matrix(result.map.network.params)
    alpha = result.map.network.architecture.strong_convexity
    assert np.linalg.eigvalsh(quadratic)[0] >= alpha * (1 - 1e-12)


@pytest.mark.parametrize(
    "argv",
    [
        ["benchmark", "--methods", "adam", "--methods", "euclidean"],
        ["fit", "--hidden", "4", "--hidden", "8"],
        ["evaluate", "m.npz", "--data", "a.npy", "--data", "b.npy"],
    ],
)
def test_an_option_whose_last_value_would_win_is_refused_twice(argv, capsys):
    # --methods adam --methods euclidean ran euclidean only
    with pytest.raises(SystemExit) as ended:
        neural_cli._parser().parse_args(argv)
    assert ended.value.code == 2
    assert "given more than once" in capsys.readouterr().err


def test_source_box_given_twice_is_refused(capsys):
    with pytest.raises(SystemExit):
        gridflow_cli.parser().parse_args(
            ["groundtruth", "--source-box", "-2", "2", "--source-box", "-4", "4"]
        )
    assert "argument --source-box: given more than once" in capsys.readouterr().err


def test_save_map_refuses_a_map_that_is_not_the_potentials_gradient(tmp_path, solved):
    # load_map then refused the file it wrote, saying it "was changed after it was written"
    changed = type(solved)(solved.grid, solved.points, solved.weights, 1.01 * solved.map,
                           solved.potential, solved.energy)  # fmt: skip
    with pytest.raises(ValueError, match="not the discrete gradient D_h φ"):
        save_map(tmp_path / "map.npz", changed)
    assert not (tmp_path / "map.npz").exists()


@pytest.mark.parametrize(("estimate", "message"), [(-1.0, "-1.0"), ("big", "'big'")])
def test_truth_error_checks_the_recorded_estimate(solved, estimate, message):
    # -1.0 came back as T*'s error; 'big' gave "could not convert string to float"
    grid_map = _grid_map(solved, metadata={"error_estimate": estimate})
    with pytest.raises(ValueError, match=f"records error_estimate {message}"):
        truth_error(grid_map)


def test_a_warnings_string_is_shown_whole():
    with pytest.raises(ValueError, match="cannot grade a map: edited"):
        check_usable({"warnings": "edited", "error_estimate": 0.1}, "truth.npz")
