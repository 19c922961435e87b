"""First contact: compiling gridflow's numba kernels is announced once, and only when it happens."""

import os
import pathlib
import subprocess
import sys

from gridflow._compile_notice import MESSAGE

ROOT = pathlib.Path(__file__).parents[2]
SCRIPT = """
from gridflow import examples, kl_energy, kl_gradient
for problem in (examples.problem_1d(20), examples.problem_2d(9)):
    kl_energy(problem, problem.identity())
    kl_gradient(problem, problem.identity())
"""


def _stderr_with_cache(cache):
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "NUMBA_CACHE_DIR": str(cache),
        "NUMBA_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=True,
    )
    return result.stderr


def test_cold_cache_announces_compilation_once_and_warm_cache_says_nothing(tmp_path):
    cold = _stderr_with_cache(tmp_path)
    assert cold.count(MESSAGE) == 1, cold
    warm = _stderr_with_cache(tmp_path)
    assert MESSAGE not in warm, warm
