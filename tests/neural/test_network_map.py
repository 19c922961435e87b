"""NetworkMap: the inverse map, the model density, samples, and the file format."""

import json
import warnings
import zipfile

import numpy as np
import pytest
from scipy import optimize

from gridflow import LogConcaveTarget, examples, minimize, save_map
from neural import ICNN, NetworkFileError, NetworkMap, load
from neural.errors import NotConvergedError
from neural.model import inverse_map
from neural.model.inverse import strong_convexity_modulus

TARGET = LogConcaveTarget.standard_gaussian(2)


def _network(dim=2, seed=0, quadratic=True, scale=0.4):
    """A network far from the identity: θ0 plus a projected perturbation."""
    rng = np.random.default_rng(seed)
    start = ICNN(
        dim, (12, 12), rng=rng, quadratic=quadratic, anchors=rng.standard_normal((24, dim))
    )
    theta = start.project(start.params + scale * rng.standard_normal(start.num_params))
    return start.with_params(theta)


def _model(**kwargs):
    return NetworkMap(_network(**kwargs), TARGET, {"method": "test", "seed": 0})


class TestInverse:
    def test_inverts_the_map_to_the_tolerance(self):
        model = _model()
        y = 1.5 * np.random.default_rng(1).standard_normal((3000, 2))
        x = model.inverse(y)
        residual = np.linalg.norm(model(x) - y, axis=1)
        assert residual.max() <= 1e-11 * max(1.0, np.linalg.norm(y, axis=1).max())

    def test_recovers_the_preimage(self):
        model = _model(seed=3)
        x = np.random.default_rng(2).standard_normal((500, 2))
        assert np.abs(model.inverse(model(x)) - x).max() < 1e-9

    def test_matches_the_conjugate_by_a_generic_minimizer(self):
        # ∇φ*(y) = argmin φ(x) − <x, y>, solved independently by BFGS
        model = _model(seed=5)
        y = np.random.default_rng(4).standard_normal((5, 2))
        expected = np.array(
            [
                optimize.minimize(
                    lambda x, b=b: model.potential(x[None])[0] - x @ b,
                    np.zeros(2),
                    jac=lambda x, b=b: model(x[None])[0] - b,
                    method="BFGS",
                    options={"gtol": 1e-12},
                ).x
                for b in y
            ]
        )
        assert np.abs(model.inverse(y) - expected).max() < 1e-7

    def test_a_tolerance_below_rounding_stops_at_the_rounding(self):
        # 1e-18 · ‖y‖ is below the rounding of ∇φ_θ: the iteration stops where x no longer
        # changes (or the residual no longer decreases), at the best x there is
        model = _model(seed=6)
        y = np.random.default_rng(8).standard_normal((500, 2))
        x = model.inverse(y, tolerance=1e-18)
        assert np.abs(model(x) - y).max() < 1e-13

    def test_d1_and_d5(self):
        for dim in (1, 5):
            network = _network(dim=dim, seed=dim)
            y = np.random.default_rng(dim).standard_normal((200, dim))
            x = inverse_map(network, y)
            assert np.abs(network(x) - y).max() < 1e-10

    def test_without_quadratic_part_warns_and_names_unreachable_points(self):
        network = _network(quadratic=False)
        assert strong_convexity_modulus(network) == 0.0
        far = np.array([[0.0, 0.0], [1e4, -1e4]])
        with pytest.warns(RuntimeWarning, match="need not be onto"):
            with pytest.raises(
                NotConvergedError, match=r"at 1 of 2 points.*\[10000\.0, -10000\.0\]"
            ):
                inverse_map(network, far)

    def test_refuses_bad_points(self):
        model = _model()
        with pytest.raises(ValueError, match="2 columns"):
            model.inverse(np.zeros((3, 3)))
        with pytest.raises(ValueError, match=r"2-D array"):
            model.inverse(np.zeros(2))
        with pytest.raises(TypeError, match="ICNN"):
            inverse_map("net", np.zeros((1, 2)))


class TestModelDensity:
    def test_is_the_change_of_variables(self):
        # log p(x) = log γ(T(x)) + log |det DT(x)|, with DT by central differences of T
        model = _model(seed=7)
        x = np.random.default_rng(6).standard_normal((20, 2))
        h = 1e-5
        jacobians = np.stack(
            [(model(x + h * e) - model(x - h * e)) / (2 * h) for e in np.eye(2)], axis=2
        )
        expected = TARGET.log_density(model(x)) + np.log(np.abs(np.linalg.det(jacobians)))
        assert np.abs(model.log_density(x) - expected).max() < 1e-7

    def test_integrates_to_one(self):
        model = _model(seed=8)
        # the box [-14, 14]² holds all but ~1.5e-6 of this heavy-tailed p_θ (measured with
        # 561 and 1121 nodes per axis, which agree to 2e-8)
        nodes = np.linspace(-14.0, 14.0, 561)
        grid = np.stack(np.meshgrid(nodes, nodes, indexing="ij"), axis=-1).reshape(-1, 2)
        mass = np.exp(model.log_density(grid)).sum() * (nodes[1] - nodes[0]) ** 2
        assert abs(mass - 1.0) < 1e-5

    def test_negative_log_likelihood_is_the_mean(self):
        model = _model()
        x = np.random.default_rng(0).standard_normal((50, 2))
        assert model.negative_log_likelihood(x) == pytest.approx(-model.log_density(x).mean())

    def test_samples_are_preimages_of_target_samples(self):
        model = _model(seed=9)
        samples = model.sample(np.random.default_rng(11), 400)
        y = np.random.default_rng(11).standard_normal((400, 2))
        assert np.abs(model(samples) - y).max() < 1e-10

    def test_sample_mean_is_the_density_mean(self):
        model = _model(seed=10)
        nodes = np.linspace(-9.0, 9.0, 301)
        grid = np.stack(np.meshgrid(nodes, nodes, indexing="ij"), axis=-1).reshape(-1, 2)
        weights = np.exp(model.log_density(grid)) * (nodes[1] - nodes[0]) ** 2
        mean = weights @ grid
        samples = model.sample(np.random.default_rng(12), 20000)
        standard_error = samples.std(axis=0) / np.sqrt(samples.shape[0])
        assert np.all(np.abs(samples.mean(axis=0) - mean) < 5 * standard_error)


class TestFiles:
    def test_round_trip_is_bit_identical(self, tmp_path):
        model = NetworkMap(
            _network(seed=2), TARGET, {"method": "test", "seed": 0}, [0.3, -0.1], [1, 2]
        )
        model.save(tmp_path / "map.npz")
        loaded = load(tmp_path / "map.npz")
        x = np.random.default_rng(0).standard_normal((300, 2))
        assert np.array_equal(loaded(x), model(x))
        assert np.array_equal(loaded.potential(x), model.potential(x))
        assert np.array_equal(loaded.log_density(x), model.log_density(x))
        assert np.array_equal(loaded.inverse(x), model.inverse(x))
        assert loaded.training == {"method": "test", "seed": 0}
        assert loaded.target.spec == TARGET.spec
        assert loaded.network.architecture == model.network.architecture
        assert np.array_equal(loaded.center, model.center)
        assert np.array_equal(loaded.offset, model.offset)

    def test_non_gaussian_target_round_trip(self, tmp_path):
        model = NetworkMap(_network(), LogConcaveTarget.logcosh(2))
        model.save(tmp_path / "map.npz")
        x = np.random.default_rng(0).standard_normal((10, 2))
        assert np.array_equal(load(tmp_path / "map.npz").log_density(x), model.log_density(x))

    def test_refuses_targets_without_spec_and_non_json_training(self, tmp_path):
        functions = LogConcaveTarget(
            lambda y: 0.5 * (y**2).sum(1), lambda y: y, dim=2, log_normalizer=np.log(2 * np.pi)
        )
        with pytest.raises(ValueError, match="Python functions"):
            NetworkMap(_network(), functions).save(tmp_path / "map.npz")
        with pytest.raises(TypeError, match="set"):
            NetworkMap(_network(), TARGET, {"seeds": {1, 2}}).save(tmp_path / "map.npz")
        with pytest.raises(ValueError, match=r"end in \.npz"):
            _model().save(tmp_path / "map")
        assert not list(tmp_path.iterdir())

    def test_refuses_foreign_and_damaged_files(self, tmp_path):
        with pytest.raises(NetworkFileError, match="does not exist"):
            load(tmp_path / "missing.npz")
        np.save(tmp_path / "array.npy", np.zeros(3))
        with pytest.raises(NetworkFileError, match="single numpy array"):
            load(tmp_path / "array.npy")
        save_map(tmp_path / "grid.npz", minimize(examples.problem_1d(33)))
        with pytest.raises(
            NetworkFileError, match=r"lacks the arrays \[.center., .offset., .params.\]"
        ):
            load(tmp_path / "grid.npz")
        (tmp_path / "text.npz").write_text("not a zip")
        with pytest.raises(NetworkFileError, match="not a network map file"):
            load(tmp_path / "text.npz")
        _model().save(tmp_path / "map.npz")
        data = (tmp_path / "map.npz").read_bytes()
        (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
        with pytest.raises(NetworkFileError):
            load(tmp_path / "cut.npz")

    def _rewrite(self, path, params=None, **record_changes):
        with np.load(path) as data:
            arrays = {name: data[name] for name in data.files}
        record = json.loads(str(arrays["metadata"]))
        record.update(record_changes)
        arrays["metadata"] = np.array(json.dumps(record))
        if params is not None:
            arrays["params"] = params
        np.savez(path, **arrays)

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({"format_version": 2}, "format version 2"),
            ({"format": "gridflow.GridMap"}, "its format is 'gridflow.GridMap'"),
            ({"architecture": {"dim": 2}}, "architecture must be a record"),
            ({"target": {"kind": "cauchy"}}, "target does not rebuild"),
            ({"training": [1]}, "training record"),
        ],
    )
    def test_refuses_a_tampered_record(self, tmp_path, changes, message):
        path = tmp_path / "map.npz"
        _model().save(path)
        self._rewrite(path, **changes)
        with pytest.raises(NetworkFileError, match=message):
            load(path)

    def test_refuses_tampered_parameters(self, tmp_path):
        path = tmp_path / "map.npz"
        model = _model()
        model.save(path)
        self._rewrite(path, params=model.network.params[:-1])
        with pytest.raises(NetworkFileError, match=r"does not rebuild.*flat vector"):
            load(path)
        negative = np.array(model.network.params)
        negative[model.network.architecture.constrained_mask] = -1.0
        self._rewrite(path, params=negative)
        with pytest.raises(NetworkFileError, match="constraints"):
            load(path)
        nan = np.array(model.network.params)
        nan[0] = np.nan
        self._rewrite(path, params=nan)
        with pytest.raises(NetworkFileError, match="NaN"):
            load(path)

    def test_is_a_plain_numpy_archive(self, tmp_path):
        path = tmp_path / "map.npz"
        _model().save(path)
        with zipfile.ZipFile(path) as archive:
            assert sorted(archive.namelist()) == [
                "center.npy",
                "metadata.npy",
                "offset.npy",
                "params.npy",
            ]
        with np.load(path, allow_pickle=False) as data:
            assert json.loads(str(data["metadata"]))["format"] == "neural.NetworkMap"


def test_a_center_and_an_offset_shift_every_function():
    network, center, offset = _network(seed=4), np.array([3.0, -1.0]), np.array([0.5, 2.0])
    plain = NetworkMap(network, TARGET)
    shifted = NetworkMap(network, TARGET, center=center, offset=offset)
    x = np.random.default_rng(3).standard_normal((50, 2))
    assert np.array_equal(shifted(x), plain(x - center) + offset)
    assert np.array_equal(shifted.potential(x), plain.potential(x - center) + x @ offset)
    expected = TARGET.log_density(plain(x - center) + offset) + (
        plain.log_density(x - center) - TARGET.log_density(plain(x - center))
    )
    np.testing.assert_allclose(shifted.log_density(x), expected, rtol=0, atol=1e-12)
    y = np.random.default_rng(4).standard_normal((50, 2))
    assert np.array_equal(shifted.inverse(y), plain.inverse(y - offset) + center)
    # the potential's gradient is the map, offset included (central differences)
    h = 1e-6
    gradient = np.stack(
        [
            (shifted.potential(x + h * e) - shifted.potential(x - h * e)) / (2 * h)
            for e in np.eye(2)
        ],
        axis=1,
    )
    np.testing.assert_allclose(gradient, shifted(x), rtol=0, atol=1e-6)
    for name in ("center", "offset"):
        with pytest.raises(ValueError, match=name):
            NetworkMap(network, TARGET, **{name: [1.0]})
        with pytest.raises(ValueError, match=name):
            NetworkMap(network, TARGET, **{name: [np.nan, 0.0]})


def test_a_centered_and_offset_model_is_a_density_with_its_samples():
    model = NetworkMap(_network(seed=8), TARGET, center=[2.0, -1.0], offset=[0.5, 1.5])
    nodes = np.linspace(-16.0, 16.0, 641)
    grid = np.stack(np.meshgrid(nodes, nodes, indexing="ij"), axis=-1).reshape(-1, 2)
    weights = np.exp(model.log_density(grid)) * (nodes[1] - nodes[0]) ** 2
    assert abs(weights.sum() - 1.0) < 1e-5
    samples = model.sample(np.random.default_rng(12), 20000)
    standard_error = samples.std(axis=0) / np.sqrt(samples.shape[0])
    assert np.all(np.abs(samples.mean(axis=0) - weights @ grid) < 5 * standard_error)


def test_a_collapsed_quadratic_part_warns_like_none():
    network = _network(seed=1)
    theta = np.array(network.params)
    network.architecture.quadratic_factor(theta)[...] = np.diag([1.0, 1e-7])
    with pytest.warns(RuntimeWarning, match="need not be onto"):
        inverse_map(network.with_params(theta), np.zeros((1, 2)))


def test_network_map_checks_its_parts():
    with pytest.raises(TypeError, match="ICNN"):
        NetworkMap("net", TARGET)
    with pytest.raises(ValueError, match="d = 3"):
        NetworkMap(_network(), LogConcaveTarget.standard_gaussian(3))
    with pytest.raises(TypeError, match="dict"):
        NetworkMap(_network(), TARGET, training=[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert NetworkMap(_network(), TARGET).training == {}
