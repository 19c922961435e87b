"""EmpiricalSource: data files and the held-out split."""

import numpy as np
import pytest

from gridflow import EmpiricalSource

DATA = np.random.default_rng(0).standard_normal((200, 3))


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv", ".txt", ".NPY", ".NPZ", ".CSV"])
def test_reads_every_data_format_exactly(tmp_path, suffix):
    """In any case of the suffix: DATA.NPY is a .npy file."""
    path = tmp_path / f"data{suffix}"
    with open(path, "wb") as file:  # np.save(path) would append .npy to data.NPY
        if suffix.lower() == ".npy":
            np.save(file, DATA)
        elif suffix.lower() == ".npz":
            np.savez(file, samples=DATA)
        else:
            delimiter = "," if suffix.lower() == ".csv" else " "
            np.savetxt(file, DATA, delimiter=delimiter, fmt="%.17g")
    assert np.array_equal(EmpiricalSource.from_file(path).samples, DATA)


@pytest.mark.parametrize(
    ("name", "write", "message"),
    [
        ("data.json", lambda p: p.write_text("[]"), r"must end in \.npy"),
        ("missing.npy", None, "does not exist"),
        ("empty.npy", lambda p: p.write_bytes(b""), "cannot be read"),
        ("two.npz", lambda p: np.savez(p, a=DATA, b=DATA), "exactly one array"),
        ("words.csv", lambda p: p.write_text("a,b\n1,2\n"), "not a table of numbers"),
        ("vector.npy", lambda p: np.save(p, DATA[:, 0]), "2-D array"),
        ("nan.npy", lambda p: np.save(p, np.where(DATA > 2, np.nan, DATA)), "NaN"),
        ("wide.npy", lambda p: np.save(p, DATA.T), "pass samples.T"),
        ("objects.npy", lambda p: np.save(p, np.array([{}, {}]), allow_pickle=True), "read"),
        ("empty.csv", lambda p: p.write_text(""), "holds no rows"),
        ("one line.txt", lambda p: p.write_text(" ".join(["1.5"] * 50)), "one sample per row"),
        ("flags.npy", lambda p: np.save(p, DATA > 0), "booleans"),
    ],
)
def test_refuses_bad_data_files_naming_them(tmp_path, name, write, message):
    path = tmp_path / name
    if write is not None:
        write(path)
    with pytest.raises(ValueError, match=message) as caught:
        EmpiricalSource.from_file(path)
    assert name in str(caught.value)


def test_split_is_a_partition_of_the_rows():
    source = EmpiricalSource(DATA)
    train, held_out = source.split(0.15, np.random.default_rng(1))
    assert held_out.shape == (30, 3) and train.samples.shape == (170, 3)
    rows = np.concatenate([train.samples, held_out])
    assert np.array_equal(np.sort(rows, axis=0), np.sort(DATA, axis=0))
    assert len({tuple(row) for row in rows}) == 200


def test_split_keeps_a_row_on_each_side_and_checks_the_fraction():
    source = EmpiricalSource(DATA[:5, :1])
    assert source.split(0.01, np.random.default_rng(0))[1].shape == (1, 1)
    assert source.split(0.99, np.random.default_rng(0))[0].samples.shape == (2, 1)
    with pytest.raises(ValueError, match="leave none to hold out"):
        EmpiricalSource(DATA[:3, :2]).split(0.5, np.random.default_rng(0))
    for fraction in (0.0, 1.0, -0.5, np.nan):
        with pytest.raises(ValueError, match="held_out"):
            source.split(fraction, np.random.default_rng(0))


def test_a_path_of_the_wrong_kind_is_a_type_error():
    with pytest.raises(TypeError, match="path"):
        EmpiricalSource.from_file(None)
