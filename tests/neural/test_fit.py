"""Learning a map from data alone (neural.model.fitting) and evaluating it
(neural.studies.evaluation, neural.studies.map_figure)."""

import json
import warnings

import numpy as np
import pytest

from gridflow import EmpiricalSource, Gaussian, LogConcaveTarget, gaussian, map_distance, save_map
from gridflow.groundtruth import build_ground_truth, read_ground_truth
from neural import ICNN, NetworkMap, load
from neural.model.fitting import FitSettings, fit
from neural.model.inverse import strong_convexity_modulus
from neural.studies.evaluation import evaluate_map, format_evaluation
from neural.studies.map_figure import map_figure

SOURCE = Gaussian([0.5, -1.0], [[1.5, 0.4], [0.4, 0.6]])
SMALL = FitSettings(hidden=(6, 6), anchors=8, steps=200, batch_size=200, evaluate_every=20)


def _data(n=3000, seed=0):
    return SOURCE.sample(np.random.default_rng(seed), n)


@pytest.fixture(scope="module")
def fitted():
    return fit(_data(), settings=SMALL, rng=np.random.default_rng(1))


def test_the_start_is_the_gaussian_fit(fitted):
    # T_θ0(x) = A0 (x − c) with A0 the OT map N(0, Σ̂) → N(0, I) pushes N(c, Σ̂) to γ exactly:
    # p_θ0 is the Gaussian fit, and so are their held-out NLLs
    step, nll = fitted.history[0]
    assert step == 0
    assert nll == pytest.approx(fitted.gaussian_nll, abs=1e-10)


def test_when_the_gaussian_start_wins_it_is_refitted_on_all_rows():
    # steps of 0.5 from the Gaussian fit only make it worse on the held-out rows
    data = _data()
    settings = FitSettings(hidden=(6, 6), anchors=8, steps=10, batch_size=50,
                           learning_rate=0.5, evaluate_every=1)  # fmt: skip
    result = fit(data, settings=settings, rng=np.random.default_rng(2))
    assert result.best_step == 0 and result.map.training["refit_on_all_rows"]
    # the criterion of the choice: the train-rows Gaussian fit's held-out NLL
    assert result.held_out_nll == pytest.approx(result.gaussian_nll, abs=1e-10)
    fitted = Gaussian(data.mean(axis=0), np.cov(data, rowvar=False))
    exact = gaussian.ot_map(fitted, Gaussian(np.zeros(2), np.eye(2)))
    x = _data(100, seed=4)
    np.testing.assert_allclose(result.map(x), exact(x), rtol=0, atol=1e-12)
    assert not fit(data, settings=SMALL, rng=np.random.default_rng(1)).map.training[
        "refit_on_all_rows"
    ]


def test_keeps_the_best_held_out_theta(fitted):
    assert fitted.held_out_nll == fitted.history[:, 1].min()
    assert fitted.best_step == fitted.history[np.argmin(fitted.history[:, 1]), 0]
    assert fitted.map.negative_log_likelihood(fitted.held_out_rows) == pytest.approx(
        fitted.held_out_nll, abs=1e-12
    )
    assert fitted.map.training["best_step"] == fitted.best_step
    assert fitted.history[-1, 0] == SMALL.steps
    assert fitted.held_out_rows.shape == (450, 2)


def test_learns_the_gaussian_map(fitted):
    exact = gaussian.ot_map(SOURCE, Gaussian(np.zeros(2), np.eye(2)))
    x = SOURCE.sample(np.random.default_rng(5), 5000)
    distance = map_distance(fitted.map, exact, x, np.eye(2))
    # the Gaussian fit of 2550 rows alone is this close (the moments' sampling error)
    assert distance.uvp < 0.5


def test_the_convexity_floor_makes_the_map_onto(fitted):
    # ∇²φ_θ ⪰ c λ0 I with λ0 the Gaussian fit's smallest slope: the inverse is defined
    # everywhere, far tails of γ included, and without the warning of a map that need not be
    # onto
    recorded = fitted.map.training["settings"]
    assert recorded["convexity_floor"] == FitSettings().convexity_floor > 0
    alpha = fitted.map.network.architecture.strong_convexity
    floor = FitSettings().convexity_floor * np.linalg.eigvalsh(np.linalg.inv(SOURCE.cov))[0] ** 0.5
    assert alpha == pytest.approx(floor, rel=0.1)  # c λ0, λ0 from the sample covariance
    assert strong_convexity_modulus(fitted.map.network) >= alpha
    far = np.array([[40.0, -40.0], [-1e3, 5.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = fitted.map.inverse(far)
    assert np.abs(fitted.map(x) - far).max() <= 1e-11 * 1e3


def test_is_reproducible_and_takes_a_source(fitted):
    again = fit(_data(), settings=SMALL, rng=np.random.default_rng(1))
    assert np.array_equal(again.map.network.params, fitted.map.network.params)
    same = fit(EmpiricalSource(_data()), settings=SMALL, rng=np.random.default_rng(1))
    assert np.array_equal(same.map.network.params, fitted.map.network.params)


def test_a_gaussian_target_s_mean_is_the_map_s_offset():
    # T = ∇φ_θ(x − c) + m: the network learns the centered problem, the map lands on γ
    target = LogConcaveTarget.gaussian([3.0, -1.0], [[1.0, 0.2], [0.2, 0.5]])
    data = _data()
    result = fit(data, target, settings=SMALL, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(result.map.offset, [3.0, -1.0])
    exact = gaussian.ot_map(SOURCE, Gaussian(target.mean, target.cov))
    x = SOURCE.sample(np.random.default_rng(5), 5000)
    assert map_distance(result.map, exact, x, target).uvp < 0.5
    np.testing.assert_allclose(result.map(x).mean(axis=0), [3.0, -1.0], atol=0.05)


def test_refuses_unusable_data_and_settings():
    rng = np.random.default_rng(0)
    flat = np.column_stack([_data()[:, 0], 2 * _data()[:, 0]])
    with pytest.raises(ValueError, match="linearly dependent"):
        fit(flat, settings=SMALL, rng=rng)
    same = np.tile(_data()[:1], (50, 1))
    with pytest.raises(ValueError, match=r"column\(s\) \[0, 1\] take a single value"):
        fit(same, settings=SMALL, rng=rng)
    with pytest.raises(ValueError, match="rescale"):
        fit(1e150 * _data(), settings=SMALL, rng=rng)
    with pytest.raises(ValueError, match="rescale"):
        fit(1e-170 * _data(), settings=SMALL, rng=rng)
    with pytest.raises(TypeError, match=r"EmpiricalSource\.from_file"):
        fit("data.npy", settings=SMALL, rng=rng)
    with pytest.raises(ValueError, match=r"^data: "):
        fit(_data()[:, 0], settings=SMALL, rng=rng)
    with pytest.raises(ValueError, match="d = 3"):
        fit(_data(), LogConcaveTarget.standard_gaussian(3), settings=SMALL, rng=rng)
    with pytest.raises(TypeError, match="FitSettings"):
        fit(_data(), settings={"steps": 3}, rng=rng)
    for field, value in [("steps", 0), ("held_out", 1.0), ("batch_size", 1), ("hidden", ())]:
        with pytest.raises(ValueError):
            FitSettings(**{field: value})


@pytest.fixture(scope="module")
def truth_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("truth")
    (folder / "source.json").write_text(
        json.dumps({"means": [SOURCE.mean.tolist()], "covs": [SOURCE.cov.tolist()],
                    "weights": [1.0]})
    )  # fmt: skip
    fine, metadata = build_ground_truth(folder / "source.json", "standard", 17, 7.0, 1e-6,
                                        progress=False)  # fmt: skip
    save_map(folder / "truth.npz", fine, metadata)
    return folder / "truth.npz"


def test_evaluation_against_a_ground_truth_and_data(fitted, truth_file):
    truth = read_ground_truth(truth_file)
    test = _data(2000, seed=9)
    evaluation = evaluate_map(
        fitted.map, ground_truth=truth, data=test, n_eval=3000, rng=np.random.default_rng(0)
    )
    x = truth.source.sample(np.random.default_rng(0), 3000)
    inside = np.all((x >= -7.0) & (x <= 7.0), axis=1)
    expected = map_distance(fitted.map, truth.map, x[inside], np.eye(2))
    assert evaluation.l2 == pytest.approx(expected.l2, rel=1e-12)
    assert evaluation.uvp == pytest.approx(expected.uvp, rel=1e-12)
    assert evaluation.truth_error == truth.error
    # KL = E[log ϱ0 − log p_θ] ≥ 0 up to its standard error, and the NLL is the data's
    assert evaluation.kl > -3 * evaluation.kl_standard_error
    assert evaluation.nll == pytest.approx(fitted.map.negative_log_likelihood(test))
    assert 0 <= evaluation.energy < 10 * evaluation.energy_floor + 1e-3
    text = format_evaluation(evaluation)
    assert "UVP" in text and "KL(T#ϱ0 | γ)" in text and "2000 rows" in text


def test_evaluation_refuses_another_problem_and_nothing_to_compare(fitted, truth_file):
    other = NetworkMap(fitted.map.network, LogConcaveTarget.logcosh(2))
    with pytest.raises(ValueError, match="different problems"):
        evaluate_map(
            other, ground_truth=read_ground_truth(truth_file), rng=np.random.default_rng(0)
        )
    with pytest.raises(ValueError, match="nothing to compare"):
        evaluate_map(fitted.map, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="2 columns"):
        evaluate_map(fitted.map, data=np.zeros((5, 3)), rng=np.random.default_rng(0))


def test_the_figure_draws_three_panels(fitted, tmp_path):
    figure = map_figure(fitted.map, _data(500), LogConcaveTarget.standard_gaussian(2).sample(
        np.random.default_rng(0), 500))  # fmt: skip
    assert len(figure.axes) == 3
    # the images of the first panel's points are the second panel's
    images = figure.axes[1].collections[-1].get_offsets()
    assert np.array_equal(np.asarray(images), fitted.map(_data(500)))
    figure.savefig(tmp_path / "map.png")
    assert (tmp_path / "map.png").stat().st_size > 10000
    network = ICNN(1, (3,), rng=np.random.default_rng(0), quadratic=True)
    one = NetworkMap(network, LogConcaveTarget.standard_gaussian(1))
    with pytest.raises(ValueError, match="d = 2"):
        map_figure(one, np.zeros((3, 1)))


def test_a_saved_fit_loads_bit_for_bit(fitted, tmp_path):
    fitted.map.save(tmp_path / "map.npz")
    loaded = load(tmp_path / "map.npz")
    x = _data(100, seed=3)
    assert np.array_equal(loaded.log_density(x), fitted.map.log_density(x))
    assert loaded.training["settings"]["hidden"] == [6, 6]
