"""Ground truths of the user's own problem: sources and targets from files, and map files
that record their problem so that a reader rebuilds it (issue 19)."""

import json

import numpy as np
import pytest

from gridflow import Gaussian, GaussianMixture, LogConcaveTarget, gaussian, load_map
from gridflow.groundtruth import (
    build_ground_truth,
    problem_of,
    read_source,
    read_target,
    same_law,
    source_from_spec,
    source_spec,
    target_from_spec,
    target_spec,
)

MIXTURE = {"means": [[-1.0, 0.5], [1.0, -0.5]],
           "covs": [[[0.3, 0.05], [0.05, 0.4]], [[0.4, 0.0], [0.0, 0.3]]],
           "weights": [0.4, 0.6]}  # fmt: skip
GAUSSIAN = {"mean": [0.2, -0.1], "cov": [[1.2, 0.2], [0.2, 0.8]]}


def _write(path, record):
    path.write_text(json.dumps(record))
    return path


def test_a_mixture_file_and_a_gaussian_file_are_read_exactly(tmp_path):
    source = read_source(_write(tmp_path / "mix.json", MIXTURE))
    assert isinstance(source, GaussianMixture)
    np.testing.assert_array_equal(source.means, MIXTURE["means"])
    target = read_target(_write(tmp_path / "gauss.json", GAUSSIAN), 2)
    np.testing.assert_array_equal(target.mean, GAUSSIAN["mean"])
    np.testing.assert_array_equal(target.cov, GAUSSIAN["cov"])


def test_file_suffixes_are_read_in_any_case(tmp_path):
    """A source or target file named X.JSON, X.NPY or X.NPZ is read as its lower-case kind."""
    assert isinstance(read_source(_write(tmp_path / "MIX.JSON", MIXTURE)), GaussianMixture)
    target = read_target(_write(tmp_path / "GAUSS.Json", GAUSSIAN), 2)
    np.testing.assert_array_equal(target.cov, GAUSSIAN["cov"])
    density = np.ones((5, 5))
    with open(tmp_path / "DENSITY.NPY", "wb") as file:  # np.save would append .npy
        np.save(file, density)
    source = read_source(tmp_path / "DENSITY.NPY", ((-1.0, -1.0), (1.0, 1.0)))
    np.testing.assert_array_equal(source.values, density)
    with open(tmp_path / "DENSITY.NPZ", "wb") as file:
        np.savez(file, density=density, box=[[-1.0, -1.0], [1.0, 1.0]])
    np.testing.assert_array_equal(read_source(tmp_path / "DENSITY.NPZ").values, density)
    with pytest.raises(ValueError, match=r"DENSITY\.NPY.*holds no box"):
        read_source(tmp_path / "DENSITY.NPY")


BAD_FILES = {
    "not JSON": ("{means: 1", "not valid JSON"),
    "missing key": (
        json.dumps({"means": [[0.0]], "covs": [[[1.0]]]}), r"lacks the keys \['weights'\]"
    ),
    "wrong shapes": (json.dumps({**MIXTURE, "weights": [1.0]}), "weights must have shape"),
    "not SPD": (
        json.dumps({**MIXTURE, "covs": [[[1.0, 2.0], [2.0, 1.0]]] * 2}), "positive definite"
    ),
    "weights": (json.dumps({**MIXTURE, "weights": [0.5, 0.6]}), "sum to 1"),
    "a list": ("[1, 2]", "JSON object"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_source_file_is_one_clear_error_naming_the_file(case, tmp_path):
    text, message = BAD_FILES[case]
    path = tmp_path / "mix.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as caught:
        read_source(path)
    assert str(path) in str(caught.value)


def test_bad_targets_are_refused(tmp_path):
    with pytest.raises(ValueError, match="lacks the keys"):
        read_target(_write(tmp_path / "t.json", {"mean": [0.0, 0.0]}), 2)
    with pytest.raises(ValueError, match="dimension 1, the source 2"):
        read_target(_write(tmp_path / "t.json", {"mean": [0.0], "cov": [[1.0]]}), 2)
    with pytest.raises(ValueError, match=r"ending in \.json"):
        read_target("uniform", 2)


def test_specifications_rebuild_the_same_laws():
    for law in (Gaussian([0.5, 1.0], [[1.0, 0.3], [0.3, 2.0]]), GaussianMixture(**MIXTURE)):
        rebuilt = source_from_spec(json.loads(json.dumps(source_spec(law))))
        assert type(rebuilt) is type(law) and same_law(rebuilt, law)
    target = LogConcaveTarget.gaussian(GAUSSIAN["mean"], GAUSSIAN["cov"])
    rebuilt = target_from_spec(json.loads(json.dumps(target_spec(target))), 2)
    assert same_law(rebuilt, target) and rebuilt.lam == target.lam
    python_target = LogConcaveTarget(V=lambda y: 0.5 * np.sum(y**2, axis=1), grad_V=lambda y: y)
    with pytest.raises(ValueError, match="not recorded"):
        target_from_spec(target_spec(python_target), 1)


def test_a_ground_truth_records_its_problem_and_matches_the_closed_form(tmp_path):
    """Gaussian source and target given as files: the map file rebuilds the problem, and the
    map agrees with the closed form at the discretization's order."""
    source_file = _write(tmp_path / "source.json", {"means": [[0.3, -0.2]],
                         "covs": [[[0.6, 0.25], [0.25, 0.4]]], "weights": [1.0]})  # fmt: skip
    target_file = _write(tmp_path / "target.json", GAUSSIAN)
    fine, metadata = build_ground_truth(source_file, target_file, 33, 6.0, 1e-6, progress=False)
    from gridflow import save_map

    save_map(tmp_path / "truth.npz", fine, metadata)
    truth = load_map(tmp_path / "truth.npz")
    source, target = problem_of(truth.metadata, truth.dim)
    assert same_law(source, read_source(source_file))
    assert same_law(target, read_target(target_file, 2))
    law = Gaussian(source.means[0], source.covs[0])
    exact = gaussian.ot_map(law, Gaussian(target.mean, target.cov))
    x = law.sample(np.random.default_rng(0), 20000)
    error = np.sqrt(np.mean(np.sum((truth(x) - exact(x)) ** 2, axis=1)))
    # measured 0.163, 0.031, 7.1e-3, 3.0e-3 at 17², 33², 65², 129² (docs/groundtruth.md)
    assert error < 0.035
    assert 0.5 < metadata["error_estimate"] / error < 2.0  # the two-grid estimate: 0.044


def test_a_non_gaussian_target_by_name_or_by_its_specification(tmp_path):
    by_name = read_target("logcosh", 2)
    assert not by_name.is_gaussian and by_name.lam == 1.0
    spec = LogConcaveTarget.gaussian_logcosh([0.1, 0.0], [[1.0, 0.0], [0.0, 0.5]]).spec
    by_file = read_target(_write(tmp_path / "t.json", spec), 2)
    assert same_law(by_file, LogConcaveTarget.from_spec(spec))
    with pytest.raises(ValueError, match=str(tmp_path / "t.json")):
        read_target(_write(tmp_path / "t.json", {"kind": "uniform"}), 2)
    _, metadata = build_ground_truth("gaussian", "logcosh", 9, 6.0, 1e-6, progress=False)
    assert metadata["target"] == {"kind": "logcosh", "dim": 2}
