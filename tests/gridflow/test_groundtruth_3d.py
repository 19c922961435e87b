"""Ground truths in d = 3 from `python -m gridflow groundtruth`: the dimension read from a
mixture file, the grid cascade of 3D, the file's map evaluated at points (n, 3) and equal to
the discrete minimizer it stores."""

import json

import numpy as np
import pytest

from gridflow import load_map
from gridflow.__main__ import main
from gridflow.groundtruth import CASCADE_COARSEST, grid_cascade

SOURCE = {
    "means": [[0.2, -0.1, 0.1]],
    "covs": [[[0.6, 0.2, 0.1], [0.2, 0.5, -0.1], [0.1, -0.1, 0.7]]],
    "weights": [1.0],
}
TARGET = {"mean": [0.0, 0.3, -0.2], "cov": [[1.0, 0.3, 0.0], [0.3, 0.8, 0.2], [0.0, 0.2, 1.2]]}


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    folder = tmp_path_factory.mktemp("truth3d")
    (folder / "source.json").write_text(json.dumps(SOURCE))
    (folder / "target.json").write_text(json.dumps(TARGET))
    out = folder / "truth.npz"
    argv = ["groundtruth", "--source", str(folder / "source.json"), "--target",
            str(folder / "target.json"), "--nodes", "17", "--box", "6", "--force", "--quiet",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    return load_map(out)


def test_the_3d_cascade_starts_newton_from_17_nodes():
    assert CASCADE_COARSEST[3] == 17
    assert grid_cascade(65, 3) == [17, 33, 65]
    assert grid_cascade(65, 2) == [33, 65]


def test_a_3d_ground_truth_records_its_problem_and_estimate(truth):
    assert truth.grid.shape == (17, 17, 17) and truth.dim == 3
    assert truth.metadata["coarser_shape"] == [9, 9, 9]
    assert truth.metadata["source"]["means"] == SOURCE["means"]
    assert np.isfinite(truth.metadata["error_estimate"]) and truth.metadata["error_estimate"] > 0


def test_a_3d_ground_truth_evaluates_at_points_and_interpolates_its_map(truth):
    np.testing.assert_allclose(truth(truth.points), truth.map, atol=1e-12)
    x = np.random.default_rng(0).uniform(-2, 2, size=(50, 3))
    values = truth(x)
    assert values.shape == (50, 3) and np.all(np.isfinite(values))
    assert truth.potential(x).shape == (50,)
    with pytest.raises(ValueError):
        truth(x[:, :2])
