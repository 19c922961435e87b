"""Sizes that cannot fit in memory are refused at once, before any allocation, with the
estimate (gridflow.memory)."""

import time

import numpy as np
import pytest

import gridflow.__main__ as gridflow_cli
import gridflow.groundtruth.build
import gridflow.memory
from gridflow import Grid, LogConcaveTarget
from gridflow.measures import GaussianMixture
from gridflow.memory import (
    InsufficientMemoryError,
    available_memory,
    check_memory,
    format_bytes,
    peak_resident_memory,
)
from gridflow.problem import Problem


def test_available_memory_is_read_and_has_a_fallback(monkeypatch, tmp_path):
    assert available_memory() > 0
    monkeypatch.setattr(gridflow.memory, "MEMINFO", str(tmp_path / "missing"))
    fallback = available_memory()
    assert fallback is None or fallback > 0


def test_peak_resident_memory_sees_an_allocation_and_has_a_fallback(monkeypatch, tmp_path):
    before = peak_resident_memory()
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    assert peak_resident_memory() >= max(before, block.nbytes)  # bytes, not KiB
    del block
    monkeypatch.setattr(gridflow.memory, "PROCESS_STATUS", str(tmp_path / "missing"))
    assert peak_resident_memory() > 2**20  # ru_maxrss: this process holds more than 1 MiB


def test_check_memory_states_the_estimate():
    check_memory(1e3, "a small thing", available=2**20)
    with pytest.raises(InsufficientMemoryError, match=r"needs about 2 GiB.*1 MiB available: less"):
        check_memory(2 * 2**30, "a big thing", "less", available=2**20)
    assert issubclass(InsufficientMemoryError, ValueError)
    assert issubclass(InsufficientMemoryError, MemoryError)
    assert format_bytes(512) == "512 B" and format_bytes(3 * 2**40) == "3 TiB"


@pytest.mark.parametrize("shape", [(10**6, 10**6), (10**12,)])
def test_a_grid_problem_too_large_for_memory_is_refused_at_once(shape):
    dim = len(shape)
    source = GaussianMixture(np.zeros((1, dim)), np.eye(dim)[None], np.ones(1))
    started = time.perf_counter()
    with pytest.raises(InsufficientMemoryError, match=r"nodes needs about .* of memory"):
        Problem(Grid((-6.0,) * dim, (6.0,) * dim, shape), source,
                LogConcaveTarget.standard_gaussian(dim))  # fmt: skip
    assert time.perf_counter() - started < 1.0


def test_groundtruth_refuses_a_grid_too_large_for_memory(tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("minimize was called")

    monkeypatch.setattr(gridflow.groundtruth.build, "minimize", refuse)
    started = time.perf_counter()
    with pytest.raises(SystemExit) as caught:
        gridflow_cli.main(["groundtruth", "--nodes", "100001", "--out", str(tmp_path / "m.npz")])
    assert caught.value.code == 2
    assert time.perf_counter() - started < 2.0
    err = capsys.readouterr().err
    assert "error: a grid problem of 100001 × 100001" in err and "needs about" in err
    assert not (tmp_path / "m.npz").exists()


def test_the_3d_estimate_grows_like_the_multifrontal_factor(monkeypatch):
    """N × 48 KB up to 65³ (42 KB measured there), times (N / 65³)^{1/3} beyond: a 97³
    problem is refused on a machine with 24 GiB free (estimate 51 GB)."""
    from gridflow.problem import solver_bytes

    def grid(nodes):
        return Grid([-1.0] * 3, [1.0] * 3, [nodes] * 3)

    assert solver_bytes(grid(65)) == 65**3 * 49152
    assert solver_bytes(grid(33)) == 33**3 * 49152
    ratio = solver_bytes(grid(129)) / (129**3 * 49152)
    assert ratio == pytest.approx((129**3 / 65**3) ** (1 / 3))
    monkeypatch.setattr(gridflow.memory, "available_memory", lambda: 24 * 2**30)
    with pytest.raises(InsufficientMemoryError, match="97 × 97 × 97"):
        Problem(grid(97), GaussianMixture(np.zeros((1, 3)), [np.eye(3)], [1.0]),
                LogConcaveTarget.standard_gaussian(3))  # fmt: skip
