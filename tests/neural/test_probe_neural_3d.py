"""Answers to a probe of the neural commands with 3D (and mismatched) inputs (issue 22): each
silent answer, traceback, unclear message or hang it found, now refused, warned about or
bounded."""

import json

import numpy as np
import pytest

from gridflow import LogConcaveTarget, save_map
from gridflow.checks import as_points
from gridflow.examples import mixture_3d
from gridflow.groundtruth import build_ground_truth, read_ground_truth
from gridflow.measures.target_checks import MONOTONE_CHECK_POINTS, check_monotone_gradient
from neural.model.fitting import FewRowsWarning, FitSettings, fit
from neural.studies.errorbudget import make_problem
from neural.studies.evaluation import evaluate_map
from neural.studies.flowcheck import MAX_NODES_3D, case_from_file, grid_case


def test_a_one_component_mixture_file_gets_the_exact_gaussian_reference(tmp_path):
    """The command writes a Gaussian source as a one-component mixture file."""
    (tmp_path / "g.json").write_text(
        json.dumps({"means": [[0.3, -0.2]], "covs": [[[0.6, 0.25], [0.25, 0.4]]], "weights": [1.0]})
    )
    fine, metadata = build_ground_truth(
        tmp_path / "g.json", "standard", 9, 6.0, 1e-6, progress=False
    )
    save_map(tmp_path / "truth.npz", fine, metadata)
    case = case_from_file(tmp_path / "truth.npz")
    assert case.reference(0.5, 2).label == "exact implicit scheme (Gaussian)"
    np.testing.assert_array_equal(case.source.mean, [0.3, -0.2])


def test_a_3d_grid_reference_that_floors_the_source_or_takes_hours_is_refused():
    target = LogConcaveTarget.standard_gaussian(3)
    with pytest.raises(ValueError, match=r"floors 0\.0[0-9]+ of the source's mass"):
        grid_case("m3", mixture_3d(), target, nodes=33, box=6.0, density_floor=1e-4)
    with pytest.raises(ValueError, match="takes hours"):
        grid_case("m3", mixture_3d(), target, nodes=MAX_NODES_3D + 32, box=6.0)


def test_the_error_budget_says_how_to_use_a_file_of_another_problem(tmp_path):
    fine, metadata = build_ground_truth("gaussian", "standard", 9, 6.0, 1e-6, progress=False)
    save_map(tmp_path / "truth.npz", fine, metadata)
    with pytest.raises(ValueError, match="use --problems file"):
        make_problem("mixture", tmp_path / "truth.npz")


def test_the_monotone_check_reads_a_bounded_subsample_and_still_sees_a_bad_gradient():
    rng = np.random.default_rng(0)
    points = rng.standard_normal((5 * MONOTONE_CHECK_POINTS, 3))
    seen = []

    def concave(y):  # ∇V of V = -|y|²/2: decreasing
        seen.append(len(y))
        return -y

    with pytest.raises(ValueError, match="not monotone"):
        check_monotone_gradient(concave, points)
    assert seen == [MONOTONE_CHECK_POINTS]


def test_boolean_points_are_refused():
    with pytest.raises(TypeError, match="booleans"):
        as_points(np.array([[True, False, True]]), "x", 3)


def test_fit_warns_when_too_few_rows_are_held_out():
    data = np.random.default_rng(1).standard_normal((40, 3))  # 6 held-out rows for d = 3
    with pytest.warns(FewRowsWarning, match="held-out rows"):
        fit(
            data,
            settings=FitSettings(hidden=(4,), anchors=4, steps=2, evaluate_every=1),
            rng=np.random.default_rng(0),
        )


def test_evaluate_refuses_a_map_fitted_to_data_far_from_the_truths_source(tmp_path):
    fine, metadata = build_ground_truth("gaussian", "standard", 9, 6.0, 1e-6, progress=False)
    save_map(tmp_path / "truth.npz", fine, metadata)
    data = 50.0 + np.random.default_rng(2).standard_normal((400, 2))
    model = fit(
        data,
        settings=FitSettings(hidden=(4,), anchors=4, steps=2, evaluate_every=1),
        rng=np.random.default_rng(0),
    ).map
    with pytest.raises(ValueError, match="spreads from the mean of the ground truth's source"):
        evaluate_map(model, ground_truth=read_ground_truth(tmp_path / "truth.npz"),
                     n_eval=2000, rng=np.random.default_rng(0))  # fmt: skip
