"""The neural studies take the problem from a ground-truth file, never from a second
description of it (issue 19, item 3)."""

import json

import numpy as np
import pytest

from gridflow import GaussianMixture, save_map
from gridflow.groundtruth import build_ground_truth, read_source, same_law
from neural.studies.errorbudget import error_budget, make_problem
from neural.studies.flowcheck import case_from_file
from neural.studies.sweep.config import check_ground_truth

MIXTURE = {"means": [[-1.0, 0.5], [1.0, -0.5]],
           "covs": [[[0.3, 0.05], [0.05, 0.4]], [[0.4, 0.0], [0.0, 0.3]]],
           "weights": [0.4, 0.6]}  # fmt: skip


def _ground_truth(tmp_path, source, target="standard", name="truth.npz"):
    fine, metadata = build_ground_truth(source, target, 9, 6.0, 1e-6, progress=False)
    save_map(tmp_path / name, fine, metadata)
    return tmp_path / name


def test_the_sweep_accepts_a_ground_truth_of_its_problem(tmp_path):
    truth = check_ground_truth(_ground_truth(tmp_path, "paper-mixture"))
    assert truth.grid.shape == (9, 9)


def test_the_sweep_refuses_a_ground_truth_of_another_mixture(tmp_path):
    (tmp_path / "mix.json").write_text(json.dumps(MIXTURE))
    path = _ground_truth(tmp_path, tmp_path / "mix.json")
    with pytest.raises(ValueError, match="source 'gaussian-mixture', the sweep's source"):
        check_ground_truth(path)


def test_the_error_budget_and_the_flow_check_rebuild_the_files_problem(tmp_path):
    (tmp_path / "mix.json").write_text(json.dumps(MIXTURE))
    path = _ground_truth(tmp_path, tmp_path / "mix.json")
    mixture = read_source(tmp_path / "mix.json")
    problem = make_problem("file", path)
    assert isinstance(problem.source, GaussianMixture) and same_law(problem.source, mixture)
    np.testing.assert_array_equal(problem.target_cov, np.eye(2))
    rows = error_budget([problem], widths=[(4,)], quadratic=[True], causes=["logdet"],
                        steps=5, n_eval=500)  # fmt: skip
    assert rows[0].problem == "truth" and np.isfinite(rows[0].uvp)
    case = case_from_file(path, nodes=17, density_floor=1e-4)
    assert same_law(case.source, mixture) and case.target.is_gaussian
    assert case.reference(0.5, 1).label.startswith("grid implicit scheme, 17² nodes")


def test_a_gaussian_pairs_file_gives_the_exact_reference(tmp_path):
    target = {"mean": [0.2, 0.0], "cov": [[1.1, 0.0], [0.0, 0.9]]}
    (tmp_path / "target.json").write_text(json.dumps(target))
    path = _ground_truth(tmp_path, "gaussian", tmp_path / "target.json")
    case = case_from_file(path)
    assert case.reference(0.5, 2).label == "exact implicit scheme (Gaussian)"
    np.testing.assert_array_equal(case.target.cov, target["cov"])


def test_the_problem_file_needs_its_file():
    with pytest.raises(ValueError, match="give the file"):
        make_problem("file")


def test_flowcheck_command_runs_the_files_problem(tmp_path, capsys):
    from neural.__main__ import main

    path = _ground_truth(tmp_path, "gaussian")
    out = tmp_path / "check"
    argv = ["flowcheck", "--ground-truth", str(path), "--size", "tiny", "--steps", "3"]
    assert main([*argv, "--tau", "0.5", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "exact implicit scheme (Gaussian)" in printed and "(truth:" in printed
    assert (out / "flowcheck.txt").is_file()


def test_flowcheck_command_refuses_a_file_that_does_not_say_its_problem(tmp_path, capsys):
    from neural.__main__ import main

    (tmp_path / "not_a_map.npz").write_bytes(b"junk")
    with pytest.raises(SystemExit) as caught:
        main(["flowcheck", "--ground-truth", str(tmp_path / "not_a_map.npz"), "--out",
              str(tmp_path / "check")])  # fmt: skip
    assert caught.value.code == 2 and not (tmp_path / "check").exists()
    assert "--ground-truth" in capsys.readouterr().err


def _forced_ground_truth(tmp_path):
    """A 9² ground truth of the paper's mixture (estimated error 46.5, the map's spread
    about 1.4), written with --force as the command does."""
    fine, metadata = build_ground_truth("paper-mixture", "standard", 9, 6.0, 1e-6, progress=False)
    from gridflow.groundtruth import accuracy_problems

    metadata["warnings"] = accuracy_problems(metadata)
    assert metadata["warnings"]
    save_map(tmp_path / "forced.npz", fine, metadata)
    return tmp_path / "forced.npz"


def test_every_study_refuses_a_ground_truth_written_with_force(tmp_path):
    path = _forced_ground_truth(tmp_path)
    for read in (check_ground_truth, lambda p: make_problem("file", p), case_from_file):
        with pytest.raises(ValueError, match="written with --force and cannot grade"):
            read(path)


def test_tables_mark_distances_the_ground_truth_does_not_resolve():
    from neural.studies.errorbudget import BudgetRun, format_budget
    from neural.studies.sweep.summary import MethodSummary, format_table

    rows = [
        BudgetRun("mine", cause, (4,), True, 100, 10, l2, 0.1, 0.0, 0.0, 0.0, 1.0, truth_error=0.01)
        for cause, l2 in (("logdet", 0.02), ("score", 0.5))
    ]
    text = format_budget(rows).splitlines()
    assert text[2].endswith("*") and not text[3].endswith("*")  # 0.02 < 3 × 0.01 <= 0.5
    assert "not resolved" in text[-1] and "0.01" in text[-1]
    row = MethodSummary(method="adam", runs=1, diverged=0, mean=0.01, std=0.0, median=0.01,
                        worst=0.01, best=0.01, seconds=1.0, paper_mean=None, paper_std=None,
                        l2_mean=0.02, uvp_mean=0.02)  # fmt: skip
    assert format_table((row,), truth_error=0.01).splitlines()[2].endswith("*")
    assert "*" not in format_table((row,), truth_error=0.001)
