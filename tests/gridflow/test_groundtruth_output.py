"""`python -m gridflow groundtruth` prints its result line on a line of its own: the
progress bars (stderr) are closed before it, and with --quiet it is all that is printed,
even when numba compiles the kernels (a cold cache)."""

import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _run(tmp_path, *flags):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NUMBA_NUM_THREADS": "1",
           "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}  # fmt: skip
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "gridflow", "groundtruth", "--nodes", "17", "--force",
            "--out", str(tmp_path / "truth.npz"), "--overwrite", *flags]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def test_the_result_line_follows_closed_progress_bars(tmp_path):
    done = _run(tmp_path)
    assert done.stdout.startswith("wrote ") and "\r" not in done.stdout
    assert re.search(r", peak memory \d[\d.]* (MiB|GiB)\n", done.stdout)
    assert "grids: 100%" in done.stderr
    assert done.stderr.endswith("\n")  # the last bar ended its line before the result


def test_quiet_prints_the_result_line_only(tmp_path):
    done = _run(tmp_path, "--quiet")
    assert done.stderr == ""
    assert done.stdout.startswith("wrote ") and "\r" not in done.stdout
