"""The package's one threading setting: idle OpenMP workers sleep (neural/__init__.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]

_REPORT = """
import os, sys
import neural.studies.sweep, neural.training  # every kernel module, nothing run yet
maps = open("/proc/self/maps").read() if os.path.exists("/proc/self/maps") else ""
print(os.environ.get("OMP_WAIT_POLICY"), "libgomp" in maps)
"""


def _report(**env):
    environment = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    environment.update(env, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-c", _REPORT], env=environment, capture_output=True, text=True,
        timeout=300, check=True,
    )  # fmt: skip
    policy, loaded = done.stdout.split()
    return policy, loaded == "True"


def test_importing_neural_makes_idle_workers_sleep_before_openmp_starts():
    policy, loaded = _report()
    assert policy == "PASSIVE"
    if not os.path.exists("/proc/self/maps"):
        pytest.skip("no /proc/self/maps: cannot see whether libgomp is loaded")
    assert not loaded  # libgomp reads the variable when it loads: it must not be loaded yet


def test_a_wait_policy_set_by_the_user_is_kept():
    assert _report(OMP_WAIT_POLICY="ACTIVE")[0] == "ACTIVE"


_TRAIN = """
import numpy as np
from gridflow import LogConcaveTarget
from neural import ICNN, make_method, run_method
from gridflow.examples import paper_mixture
rng = np.random.default_rng(0)
for name in ("implicit", "explicit", "euclidean", "adam"):
    algorithm2 = name in ("implicit", "explicit")
    short = {"outer_steps": 1, "inner_steps": 2} if algorithm2 else {"steps": 2}
    config = make_method(name, **short)
    target = LogConcaveTarget.standard_gaussian(2)
    run_method(config, ICNN(2, (20, 20), rng), paper_mixture(), target, rng)
print("libgomp" in open("/proc/self/maps").read())
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc/self/maps")
def test_training_at_the_papers_batch_runs_no_parallel_kernel():
    """With batches of 100 every kernel of the four methods is serial, so a second thread
    cannot slow them down: OpenMP is never started (libgomp loads at the first parallel
    kernel)."""
    environment = {k: v for k, v in os.environ.items() if k != "NUMBA_NUM_THREADS"}
    environment.update(PYTHONPATH=str(REPO), NUMBA_NUM_THREADS="2")
    done = subprocess.run(
        [sys.executable, "-c", _TRAIN], env=environment, capture_output=True, text=True,
        timeout=600, check=True,
    )  # fmt: skip
    assert done.stdout.split()[-1] == "False"
