"""The score's default ε and the sweep's evaluation refuse sizes that cannot fit in memory
at once, with the estimate."""

import time

import numpy as np
import pytest

from gridflow.memory import InsufficientMemoryError
from neural.score import self_entropic_score
from neural.score.pairs import default_eps
from neural.studies.sweep import BenchmarkConfig


def test_the_default_eps_of_too_many_samples_is_refused_at_once():
    x = np.random.default_rng(0).standard_normal((10**6, 2))
    for estimate in (self_entropic_score, default_eps):
        started = time.perf_counter()
        with pytest.raises(InsufficientMemoryError, match=r"pairwise distances.*give eps"):
            estimate(x)
        assert time.perf_counter() - started < 1.0


def test_the_sweep_refuses_an_evaluation_too_large_for_memory():
    with pytest.raises(InsufficientMemoryError, match=r"n_eval = 100000000000 .* needs about"):
        BenchmarkConfig(size="tiny", n_eval=10**11)
    assert BenchmarkConfig(size="tiny").evaluation_bytes() < 2**30
