"""The package's one threading setting: idle OpenMP workers sleep (neural/__init__.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]

_REPORT = """
import os, sys
import neural.benchmark, neural.schemes  # every kernel module, nothing run yet
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
