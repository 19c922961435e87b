"""python -m neural fit and evaluate: a map file from a data file, measured against a ground
truth and data; user errors are one `error:` line with status 2 before any training."""

import json
import re

import numpy as np
import pytest

import neural.__main__ as neural_cli
import neural.commands.evaluate as evaluate_command
import neural.model.fitting
from gridflow import Gaussian, save_map
from gridflow.groundtruth import build_ground_truth
from neural import load
from neural.errors import DivergenceError
from neural.studies.evaluation import evaluate_map

SOURCE = Gaussian([0.3, -0.2], [[1.2, 0.3], [0.3, 0.7]])
QUICK = ["--steps", "60", "--hidden", "4", "--batch-size", "100", "--no-progress"]


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "data.npy", SOURCE.sample(rng, 1500))
    np.savetxt(tmp_path / "test.csv", SOURCE.sample(rng, 300), delimiter=",")
    np.save(tmp_path / "data3.npy", rng.standard_normal((500, 3)))
    (tmp_path / "target.json").write_text(json.dumps({"mean": [0.0, 0.0], "cov": [[2, 0], [0, 1]]}))
    (tmp_path / "old.npz").write_text("old")
    np.save(tmp_path / "repeated.npy", np.tile(SOURCE.sample(rng, 1), (100, 1)))
    np.save(tmp_path / "huge.npy", 1e200 * SOURCE.sample(rng, 100))
    np.save(tmp_path / "dependent.npy", np.outer(rng.standard_normal(100), [1.0, 2.0]))
    far = SOURCE.sample(rng, 50)
    far[7] = [1e160, 0.0]
    np.save(tmp_path / "far.npy", far)
    return tmp_path


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("fit was called before the arguments were checked")

    monkeypatch.setattr(neural.model.fitting, "run_method", refuse)


def test_fit_writes_a_map_that_loads(files, capsys):
    out = files / "map.npz"
    argv = ["fit", "--data", str(files / "data.npy"), "--out", str(out), "--seed", "3", *QUICK]
    assert neural_cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert re.search(r"wrote .*map\.npz: held-out NLL \d\.\d{4} nats on 225 rows", printed)
    assert "the Gaussian fit's" in printed
    model = load(out)
    assert model.training["seed"] == 3 and model.training["data"].endswith("data.npy")
    assert model.training["settings"]["steps"] == 60
    assert model.target.spec == {"kind": "gaussian", "mean": [0.0, 0.0],
                                 "cov": [[1.0, 0.0], [0.0, 1.0]]}  # fmt: skip
    # the same command again gives the same map, to the bit
    again = files / "again.npz"
    assert neural_cli.main([*argv[:4], str(again), *argv[5:]]) == 0
    x = SOURCE.sample(np.random.default_rng(1), 50)
    assert np.array_equal(load(again)(x), model(x))


def test_fit_to_a_target_file(files):
    out = files / "map.npz"
    argv = ["fit", "--data", str(files / "data.npy"), "--target", str(files / "target.json"),
            "--out", str(out), *QUICK]  # fmt: skip
    assert neural_cli.main(argv) == 0
    np.testing.assert_array_equal(load(out).target.cov, [[2.0, 0.0], [0.0, 1.0]])


FIT_ERRORS = {
    "no data": ([], "required: --data"),
    "missing data": (["--data", "{tmp}/missing.npy"], "does not exist"),
    "data of another kind": (["--data", "{tmp}/target.json"], r"must end in \.npy"),
    "target of another dimension": (
        ["--data", "{tmp}/data3.npy", "--target", "{tmp}/target.json"],
        "dimension 2",
    ),
    "unknown target": (["--data", "{tmp}/data.npy", "--target", "cauchy"], "target must be"),
    "out exists": (["--data", "{tmp}/data.npy", "--out", "{tmp}/old.npz"], "--overwrite"),
    "out not npz": (["--data", "{tmp}/data.npy", "--out", "{tmp}/map.pt"], r"end in \.npz"),
    "held out 1": (["--data", "{tmp}/data.npy", "--held-out", "1"], r"\(0, 1\)"),
    "held out text": (["--data", "{tmp}/data.npy", "--held-out", "some"], "number"),
    "steps 0": (["--data", "{tmp}/data.npy", "--steps", "0"], ">= 1"),
    "batch 1": (["--data", "{tmp}/data.npy", "--batch-size", "1"], ">= 2"),
    "hidden": (["--data", "{tmp}/data.npy", "--hidden", "4,x"], "widths like"),
    "rate": (["--data", "{tmp}/data.npy", "--learning-rate", "-1"], "> 0"),
    "repeated rows": (["--data", "{tmp}/repeated.npy"], "take a single value"),
    "huge values": (["--data", "{tmp}/huge.npy"], "rescale"),
    "dependent columns": (["--data", "{tmp}/dependent.npy"], "linearly dependent"),
}


@pytest.mark.parametrize("case", FIT_ERRORS)
def test_fit_user_errors(case, files, no_training, exit_status_and_error):
    arguments, expected = FIT_ERRORS[case]
    out = [] if "--out" in arguments else ["--out", str(files / "map.npz")]  # given once
    argv = ["fit", *out, *[a.format(tmp=files) for a in arguments]]
    status, line = exit_status_and_error(neural_cli.main, argv)
    assert status == 2
    assert re.search(expected, line), line
    assert not (files / "map.npz").exists()


@pytest.fixture
def fitted(files):
    argv = ["fit", "--data", str(files / "data.npy"), "--out", str(files / "map.npz"), *QUICK]
    assert neural_cli.main(argv) == 0
    (files / "source.json").write_text(json.dumps(
        {"means": [SOURCE.mean.tolist()], "covs": [SOURCE.cov.tolist()], "weights": [1.0]}
    ))  # fmt: skip
    fine, metadata = build_ground_truth(files / "source.json", "standard", 17, 7.0, 1e-6,
                                        progress=False)  # fmt: skip
    save_map(files / "truth.npz", fine, metadata)
    fine, metadata = build_ground_truth(files / "source.json", "logcosh", 17, 7.0, 1e-6,
                                        progress=False)  # fmt: skip
    save_map(files / "logcosh.npz", fine, metadata)
    return files


def test_evaluate_prints_every_figure_and_draws(fitted, capsys):
    capsys.readouterr()
    argv = ["evaluate", str(fitted / "map.npz"), "--ground-truth", str(fitted / "truth.npz"),
            "--data", str(fitted / "test.csv"), "--n-eval", "2000", "--figure",
            str(fitted / "map.png")]  # fmt: skip
    assert neural_cli.main(argv) == 0
    printed = capsys.readouterr().out
    for expected in (r"L² \d\.\d{3}e[-+]\d\d, UVP \d+\.\d{4} %", r"KL\(T#ϱ0 \| γ\) = ",
                     "data \\(300 rows\\)", "energy distance", "figure: "):  # fmt: skip
        assert re.search(expected, printed), (expected, printed)
    assert (fitted / "map.png").stat().st_size > 10000


def test_evaluate_says_when_the_data_is_the_maps_training_file(fitted, capsys):
    """The map's training record names its data file: evaluating on it is not held-out."""
    for data, noted in (("data.npy", True), ("test.csv", False)):
        capsys.readouterr()
        argv = ["evaluate", str(fitted / "map.npz"), "--data", str(fitted / data)]
        assert neural_cli.main(argv) == 0
        assert ("is the file this map was fitted to" in capsys.readouterr().out) is noted


EVALUATE_ERRORS = {
    "nothing to compare": ([], "give --ground-truth and/or --data"),
    "missing map": (["--data", "{tmp}/test.csv", "--map", "{tmp}/missing.npz"], "does not exist"),
    "a ground truth as the map": (
        ["--data", "{tmp}/test.csv", "--map", "{tmp}/truth.npz"],
        "not a network map file",
    ),
    "a ground truth of another target": (["--ground-truth", "{tmp}/logcosh.npz"], "different"),
    "data of another dimension": (["--data", "{tmp}/data3.npy"], "2 columns"),
    "figure not a png": (["--data", "{tmp}/test.csv", "--figure", "{tmp}/old.npz"], r"\.png"),
    "n-eval 49": (["--data", "{tmp}/test.csv", "--n-eval", "49"], ">= 50"),
    "a row far beyond the data": (["--data", "{tmp}/far.npy"], "underflows to 0 at 1 of the 50"),
}


@pytest.mark.parametrize("case", EVALUATE_ERRORS)
def test_evaluate_user_errors(case, fitted, exit_status_and_error):
    arguments, expected = EVALUATE_ERRORS[case]
    arguments = [a.format(tmp=fitted) for a in arguments]
    map_file = str(fitted / "map.npz")
    if "--map" in arguments:
        at = arguments.index("--map")
        map_file = arguments[at + 1]
        del arguments[at : at + 2]
    status, line = exit_status_and_error(neural_cli.main, ["evaluate", map_file, *arguments])
    assert status == 2
    assert re.search(expected, line), line


def test_evaluate_reports_a_hessian_that_is_not_positive_definite_in_one_line(
    fitted, monkeypatch, exit_status_and_error
):
    def diverge(*args, **kwargs):
        raise DivergenceError("the Hessian ∇²φ_θ is not positive definite at 3 of 300 points")

    monkeypatch.setattr(evaluate_command, "evaluate_map", diverge)
    argv = ["evaluate", str(fitted / "map.npz"), "--data", str(fitted / "test.csv")]
    status, line = exit_status_and_error(neural_cli.main, argv)
    assert status == 1 and "not positive definite" in line


def test_evaluate_map_takes_a_read_ground_truth(fitted):
    with pytest.raises(TypeError, match="read_ground_truth"):
        evaluate_map(load(fitted / "map.npz"), ground_truth=str(fitted / "truth.npz"),
                     rng=np.random.default_rng(0))  # fmt: skip
