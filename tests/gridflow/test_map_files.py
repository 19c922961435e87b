"""save_map / load_map: the .npz suffix, paths checked before writing, damaged files refused."""

import dataclasses
import io
import json

import numpy as np
import pytest

from gridflow import MapFileError, examples, load_map, minimize, save_map


@pytest.fixture(scope="module")
def discrete_map():
    return minimize(examples.problem_1d(40))


@pytest.fixture
def saved(tmp_path, discrete_map):
    path = tmp_path / "map.npz"
    save_map(path, discrete_map, {"note": "test"})
    return path


def arrays_of(path):
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def test_round_trip(saved, discrete_map):
    loaded = load_map(saved)
    np.testing.assert_array_equal(loaded.map, discrete_map.map)
    assert loaded.metadata["note"] == "test"
    np.testing.assert_allclose(loaded(discrete_map.points), discrete_map.map, rtol=0, atol=1e-12)


def test_round_trip_accepts_a_string_path(saved):
    assert load_map(str(saved)).grid.shape == (40,)


def test_a_loaded_map_saves_again_bit_for_bit(saved, tmp_path):
    again = tmp_path / "again.npz"
    save_map(again, load_map(saved))
    first, second = arrays_of(saved), arrays_of(again)
    assert first.keys() == second.keys()
    for name, array in first.items():
        assert array.dtype == second[name].dtype
        np.testing.assert_array_equal(array, second[name], strict=True)
    save_map(again, load_map(saved), {"more": 1})
    assert load_map(again).metadata == {**load_map(saved).metadata, "more": 1}


@pytest.mark.parametrize("value", [np.zeros(3), None, {"map": 1}])
def test_save_refuses_an_object_that_is_not_a_map(tmp_path, value):
    with pytest.raises(TypeError, match=r"discrete_map must be a DiscreteMap .* or a GridMap"):
        save_map(tmp_path / "map.npz", value)


@pytest.mark.parametrize("call", [load_map, lambda p: save_map(p, None)])
def test_a_path_that_is_not_a_file_name_is_refused(call):
    with pytest.raises(TypeError, match=r"path must be a file name \(a str or pathlib.Path\), got"):
        call(None)


def test_save_refuses_a_name_without_the_npz_suffix(tmp_path, discrete_map):
    with pytest.raises(ValueError, match=r"must end in \.npz.*'.*x\.npz'"):
        save_map(tmp_path / "x", discrete_map)
    assert list(tmp_path.iterdir()) == []


def test_save_checks_the_folder_before_writing(tmp_path, discrete_map):
    with pytest.raises(ValueError, match="does not exist"):
        save_map(tmp_path / "missing" / "map.npz", discrete_map)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        save_map(tmp_path / "file" / "map.npz", discrete_map)


def test_a_map_with_nan_is_refused_before_it_can_be_saved(tmp_path, discrete_map):
    with pytest.raises(ValueError, match=r"DiscreteMap\.map contains .* NaN"):
        save_map(
            tmp_path / "map.npz",
            dataclasses.replace(discrete_map, map=np.full_like(discrete_map.map, np.nan)),
        )
    assert list(tmp_path.iterdir()) == []


def test_load_without_suffix_points_to_the_npz_file(saved):
    with pytest.raises(MapFileError, match=r"does not exist.*did you mean.*map\.npz"):
        load_map(saved.with_suffix(""))


def _write_npz(path, arrays):
    np.savez(path, **arrays)
    return path


def _damage(kind, saved, tmp_path):
    """A damaged version of `saved` (a path), of the kind named."""
    good = arrays_of(saved)
    raw = saved.read_bytes()
    target = tmp_path / f"{kind}.npz"
    if kind == "truncated":
        target.write_bytes(raw[: len(raw) // 2])
    elif kind == "truncated-tail":
        target.write_bytes(raw[:-30])
    elif kind == "random-bytes":
        target.write_bytes(np.random.default_rng(0).bytes(2000))
    elif kind == "empty":
        target.write_bytes(b"")
    elif kind == "npy":
        target = tmp_path / "array.npy"
        np.save(target, good["map"])
    elif kind == "npy-named-npz":
        buffer = io.BytesIO()
        np.save(buffer, good["map"])
        target.write_bytes(buffer.getvalue())
    elif kind == "unrelated-npz":
        _write_npz(target, {"a": np.arange(3.0)})
    elif kind == "incomplete":
        _write_npz(target, {k: v for k, v in good.items() if k != "map"})
    elif kind in ("nan-map", "inf-potential", "nan-lower"):
        name = {"nan-map": "map", "inf-potential": "potential", "nan-lower": "lower"}[kind]
        good[name] = good[name].copy()
        good[name].flat[3 % good[name].size] = np.nan if "nan" in kind else np.inf
        _write_npz(target, good)
    elif kind == "short-map":
        _write_npz(target, {**good, "map": good["map"][:-1]})
    elif kind == "string-map":
        _write_npz(target, {**good, "map": np.array(["a", "b"])})
    elif kind == "shifted-points":
        _write_npz(target, {**good, "points": good["points"] + 0.1})
    elif kind == "bad-json":
        _write_npz(target, {**good, "metadata": np.array("{not json")})
    elif kind == "wrong-version":
        _write_npz(target, {**good, "metadata": np.array(json.dumps({"format_version": 99}))})
    elif kind == "bad-shape":
        _write_npz(target, {**good, "shape": np.array([1])})
    elif kind == "folder":
        target = tmp_path / "folder.npz"
        target.mkdir()
    elif kind == "missing":
        target = tmp_path / "missing.npz"
    return target


DAMAGES = [
    "truncated",
    "truncated-tail",
    "random-bytes",
    "empty",
    "npy",
    "npy-named-npz",
    "unrelated-npz",
    "incomplete",
    "nan-map",
    "inf-potential",
    "nan-lower",
    "short-map",
    "string-map",
    "shifted-points",
    "bad-json",
    "wrong-version",
    "bad-shape",
    "folder",
    "missing",
]


@pytest.mark.parametrize("kind", DAMAGES)
def test_damaged_file_raises_one_error_naming_the_file(kind, saved, tmp_path):
    path = _damage(kind, saved, tmp_path)
    with pytest.raises(MapFileError) as caught:
        load_map(path)
    message = str(caught.value)
    assert str(path) in message
    assert "allow_pickle" not in message


def test_map_file_error_is_a_value_error():
    assert issubclass(MapFileError, ValueError)


@pytest.mark.parametrize("key", ["format_version", "energy"])
def test_save_refuses_metadata_that_overwrites_a_reserved_key(tmp_path, discrete_map, key):
    with pytest.raises(ValueError, match=rf"\['{key}'\] are written by save_map itself"):
        save_map(tmp_path / "map.npz", discrete_map, {key: 2, "note": "x"})
    assert list(tmp_path.iterdir()) == []


def test_save_converts_numpy_metadata_to_json(tmp_path, discrete_map):
    metadata = {
        "count": np.int64(3),
        "error": np.float32(0.5),
        "converged": np.bool_(True),
        "name": np.str_("mixture"),
        "box": np.array([[-6.0, -6.0], [6.0, 6.0]]),
        "shape": (33, 33),
        "nested": {"sizes": [np.int32(9), np.int32(17)]},
    }
    save_map(tmp_path / "map.npz", discrete_map, metadata)
    loaded = load_map(tmp_path / "map.npz").metadata
    assert loaded["count"] == 3 and loaded["error"] == 0.5 and loaded["converged"] is True
    assert loaded["name"] == "mixture" and loaded["box"] == [[-6.0, -6.0], [6.0, 6.0]]
    assert loaded["shape"] == [33, 33] and loaded["nested"] == {"sizes": [9, 17]}


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ({1, 2}, TypeError, r"metadata\['bad'\] has type set"),
        (object(), TypeError, r"metadata\['bad'\] has type object"),
        (b"bytes", TypeError, "has type bytes"),
        (1 + 2j, TypeError, "has type complex"),
        (np.array([1 + 1j]), TypeError, "dtype complex128"),
        (float("nan"), ValueError, "no NaN or infinity"),
        ([1.0, float("inf")], ValueError, r"metadata\['bad'\]\[1\] is inf"),
        (np.array([0.0, np.nan]), ValueError, r"\[1\] is nan"),
        ({3: "x"}, TypeError, "keys must be strings"),
    ],
)
def test_save_refuses_metadata_json_cannot_hold(tmp_path, discrete_map, value, error, message):
    with pytest.raises(error, match=message):
        save_map(tmp_path / "map.npz", discrete_map, {"bad": value})
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_metadata_that_is_not_a_dict(tmp_path, discrete_map):
    with pytest.raises(TypeError, match="metadata must be a dict, got list"):
        save_map(tmp_path / "map.npz", discrete_map, [("note", "x")])


def test_a_loaded_map_cannot_be_changed(saved):
    """A ground truth read from a file grades other maps: its arrays are read-only."""
    loaded = load_map(saved)
    for array in (loaded.map, loaded.points, loaded.weights, loaded.nodal_potential):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0.0
