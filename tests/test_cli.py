"""The command lines: a user error is one `error: …` line and exit status 2, before any work;
Ctrl-C is one `interrupted: …` line and exit status 130, and no partial output."""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest

import gridflow.__main__ as gridflow_cli
import gridflow.groundtruth.build
import gridflow.memory
import neural.__main__ as neural_cli
import validation.__main__ as validation_cli
from gridflow import SolverError, load_map
from gridflow.cli import ReportFolder, deferred_interrupts
from gridflow.groundtruth import problem_of


@pytest.fixture
def no_solving(monkeypatch):
    """Fail the test if the ground-truth CLI starts solving."""

    def refuse(*args, **kwargs):
        raise AssertionError("minimize was called before the arguments were checked")

    monkeypatch.setattr(gridflow.groundtruth.build, "minimize", refuse)


GROUNDTRUTH_ERRORS = {
    "nodes too small": (["--nodes", "7"], "odd integer >= 9"),
    "nodes even": (["--nodes", "32"], "odd integer >= 9"),
    "nodes not an integer": (["--nodes", "33.0"], "must be an integer"),
    "nodes text": (["--nodes", "many"], "must be an integer"),
    "box negative": (["--box", "-6"], "box must be a finite number > 0"),
    "box infinite": (["--box", "inf"], "box must be a finite number > 0"),
    "box text": (["--box", "wide"], "box must be a number"),
    "box cuts the source": (["--box", "2"], "leaves out"),
    "floor zero": (["--density-floor", "0"], r"density floor must be in \(0, 1\)"),
    "floor one": (["--density-floor", "1"], r"density floor must be in \(0, 1\)"),
    "floor text": (["--density-floor", "tiny"], "must be a number"),
    "unknown source": (["--source", "uniform"], "source must be one of"),
    "wrong suffix": (["--out", "{tmp}/map.npy"], r"must end in \.npz"),
    "no suffix": (["--out", "{tmp}/map"], r"must end in \.npz"),
    "missing folder": (["--out", "{tmp}/missing/map.npz"], "does not exist"),
    "out empty": (["--out", ""], "must be a file name ending in .npz"),
    "out exists": (["--out", "{tmp}/file"], "must end in"),
    "map exists": (["--out", "{tmp}/old.npz"], "exists; give --overwrite to replace it"),
    "folder is a file": (["--out", "{tmp}/file/map.npz"], "is a file, not a folder"),
    "unwritable folder": (["--out", "/proc/map.npz"], "cannot write"),
}


@pytest.mark.parametrize("case", GROUNDTRUTH_ERRORS)
def test_groundtruth_user_errors(case, tmp_path, capsys, no_solving, exit_status_and_error):
    arguments, expected = GROUNDTRUTH_ERRORS[case]
    (tmp_path / "file").write_text("")
    (tmp_path / "old.npz").write_text("old")
    argv = ["groundtruth", "--quiet"]
    argv += [] if "--out" in arguments else ["--out", str(tmp_path / "map.npz")]  # given once
    argv += [a.format(tmp=tmp_path) for a in arguments]
    status, line = exit_status_and_error(gridflow_cli.main, argv, capsys)
    assert status == 2
    assert line.startswith("python -m gridflow") and "error: " in line
    assert re.search(expected, line), line
    assert not (tmp_path / "map.npz").exists()


def test_groundtruth_help_states_the_minimum_nodes(capsys):
    with pytest.raises(SystemExit):
        gridflow_cli.main(["groundtruth", "--help"])
    printed = " ".join(capsys.readouterr().out.split())
    assert ">= 9" in printed
    assert "default: the density's own box for a density file, else 6" in printed


def test_groundtruth_solver_failure_is_one_line_with_status_1(
    tmp_path, capsys, monkeypatch, exit_status_and_error
):
    def fail(*args, **kwargs):
        raise SolverError("minimize: the continuation failed; a larger density_floor helps")

    monkeypatch.setattr(gridflow.groundtruth.build, "minimize", fail)
    argv = ["groundtruth", "--quiet", "--nodes", "9", "--out", str(tmp_path / "m.npz")]
    status, line = exit_status_and_error(gridflow_cli.main, argv, capsys)
    assert status == 1
    assert "continuation failed" in line


def test_groundtruth_on_a_coarse_grid_writes_a_loadable_map(
    tmp_path, capsys, exit_status_and_error
):
    """--nodes 17 solves the 9² and 17² problems (17² failed before #11). Its estimated
    error, 6.5, is most of the map's spread: the file is written only with --force, and
    says so in its metadata."""
    out = tmp_path / "truth.npz"
    argv = ["groundtruth", "--quiet", "--nodes", "17", "--out", str(out)]
    status, line = exit_status_and_error(gridflow_cli.main, argv, capsys)
    assert status == 1 and "not written" in line and "more --nodes" in line
    assert not out.exists()
    assert gridflow_cli.main([*argv, "--force"]) == 0
    loaded = load_map(out)
    assert loaded.grid.shape == (17, 17)
    assert loaded.metadata["coarser_shape"] == [9, 9]
    assert "does not resolve" in loaded.metadata["warnings"][0]
    printed = capsys.readouterr().out
    assert "wrote" in printed and "WARNING" in printed


def test_groundtruth_refuses_a_floor_that_replaces_the_source(
    tmp_path, capsys, no_solving, exit_status_and_error
):
    """--box 1000: the density floor replaced the whole source (floored mass 1.0); the file
    graded an untrained network at UVP 0.0064 % before."""
    argv = ["groundtruth", "--quiet", "--nodes", "33", "--box", "1000", "--out",
            str(tmp_path / "map.npz")]  # fmt: skip
    status, line = exit_status_and_error(gridflow_cli.main, argv, capsys)
    assert status == 2 and "density floor replaces" in line and "--force" in line


PROBLEM_FILE_ERRORS = {
    "source file missing": (["--source", "{tmp}/missing.json"], "does not exist|No such file"),
    "source not JSON": (["--source", "{tmp}/garbage.json"], "not valid JSON"),
    "source lacks a key": (["--source", "{tmp}/no_weights.json"], r"lacks the keys \['weights'\]"),
    "source cov not SPD": (["--source", "{tmp}/not_spd.json"], "positive definite"),
    "source of another kind": (["--source", "{tmp}/mix.txt"], "ending in .json"),
    "density without its box": (["--source", "{tmp}/density.npy"], "box"),
    "density negative": (["--source", "{tmp}/negative.npy", "--source-box", "-6", "6", "-6", "6"],
                         "negative"),
    "density box cut": (["--source", "{tmp}/density.npy", "--source-box", "-6", "6", "-6", "6",
                         "--box", "1"], "leaves out"),
    "source box count": (["--source", "{tmp}/density.npy", "--source-box", "-6", "6", "1"],
                         "XMIN XMAX"),
    "density empty": (["--source", "{tmp}/empty.npy", "--source-box", "-5", "5", "-5", "5"],
                      "empty.npy.*cannot be read"),
    "density of strings": (["--source", "{tmp}/strings.npy", "--source-box", "-5", "5", "-5", "5"],
                           "strings.npy.*real numbers"),
    "source box of a named source": (["--source", "gaussian", "--source-box", "-5", "5", "-5", "5"],
                                     "--source-box is the box of a density file"),
    "upper-case suffix read": (["--source", "{tmp}/DENSITY.NPY", "--source-box", "-6", "6", "-6",
                               "6", "--box", "1"], "box .* leaves out"),
    "own box cuts the target": (["--source", "{tmp}/density.npy", "--source-box", "-1", "1", "-1",
                                 "1"], "the source density's own, as no --box is given"),
    "target lacks a key": (["--target", "{tmp}/no_cov.json"], r"lacks the keys \['cov'\]"),
    "target dimension": (["--target", "{tmp}/target_1d.json"], "dimension 1, the source 2"),
    "target cut by the box": (["--target", "{tmp}/far_target.json"], "target's mass"),
}  # fmt: skip


def _problem_files(tmp_path):
    mix = {"means": [[-1.0, 0.0], [1.0, 0.0]], "covs": [[[0.3, 0.0], [0.0, 0.3]]] * 2,
           "weights": [0.5, 0.5]}  # fmt: skip
    files = {
        "garbage.json": "{means: [",
        "no_weights.json": json.dumps({k: mix[k] for k in ("means", "covs")}),
        "not_spd.json": json.dumps({**mix, "covs": [[[1.0, 2.0], [2.0, 1.0]]] * 2}),
        "mix.txt": json.dumps(mix),
        "no_cov.json": json.dumps({"mean": [0.0, 0.0]}),
        "target_1d.json": json.dumps({"mean": [0.0], "cov": [[1.0]]}),
        "far_target.json": json.dumps({"mean": [5.5, 0.0], "cov": [[1.0, 0.0], [0.0, 1.0]]}),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    x = np.linspace(-6, 6, 41)
    density = np.exp(-0.5 * (x[:, None] ** 2 + x[None, :] ** 2))
    np.save(tmp_path / "density.npy", density)
    np.save(tmp_path / "negative.npy", density - 0.5)
    with open(tmp_path / "DENSITY.NPY", "wb") as file:  # np.save would append .npy
        np.save(file, density)
    (tmp_path / "empty.npy").write_bytes(b"")
    np.save(tmp_path / "strings.npy", ["a", "b"])


@pytest.mark.parametrize("case", PROBLEM_FILE_ERRORS)
def test_groundtruth_problem_file_errors(case, tmp_path, capsys, no_solving, exit_status_and_error):
    """Every bad source or target file is one error line naming it, exit 2, before solving."""
    _problem_files(tmp_path)
    arguments, expected = PROBLEM_FILE_ERRORS[case]
    argv = ["groundtruth", "--quiet", "--nodes", "9", "--out", str(tmp_path / "map.npz")]
    argv += [a.format(tmp=tmp_path) for a in arguments]
    status, line = exit_status_and_error(gridflow_cli.main, argv, capsys)
    assert status == 2 and re.search(expected, line), line
    assert not (tmp_path / "map.npz").exists()


def test_groundtruth_of_a_density_file_records_its_problem(tmp_path, capsys):
    _problem_files(tmp_path)
    target_2d = {"mean": [0.5, 0.0], "cov": [[1.0, 0.0], [0.0, 1.2]]}
    (tmp_path / "target_2d.json").write_text(json.dumps(target_2d))
    out = tmp_path / "truth.npz"
    argv = ["groundtruth", "--quiet", "--nodes", "17", "--out", str(out),
            "--source", str(tmp_path / "density.npy"), "--source-box", "-6", "6", "-6", "6",
            "--target", str(tmp_path / "target_2d.json")]  # fmt: skip
    assert gridflow_cli.main(argv) == 0
    truth = load_map(out)
    source, target = problem_of(truth.metadata, 2)
    np.testing.assert_array_equal(source.values, np.load(tmp_path / "density.npy"))
    np.testing.assert_array_equal(target.cov, target_2d["cov"])
    assert truth.grid.lower == (-6.0, -6.0)  # the density's own box
    assert "wrote" in capsys.readouterr().out


VALIDATION_ERRORS = {
    "size": (["--size", "huge"], "invalid choice"),
    "only": (["--only", "grid3d"], "invalid choice"),
    "missing parent": (["--out", "{tmp}/a/b"], "does not exist"),
    "out is a file": (["--out", "{tmp}/file"], "is a file, not a folder"),
    "unwritable": (["--out", "/proc/report"], "cannot write"),
    "out empty": (["--out", ""], "must name a folder"),
    "out current folder": (["--out", "."], "must name a folder"),
    "earlier report": (["--out", "{tmp}/report"], "already holds report.json; give --overwrite"),
    "foreign files": (["--out", "{tmp}/report", "--overwrite"], "holds notes.txt, which this"),
    "foreign files without --overwrite": (
        ["--out", "{tmp}/report"],
        "holds notes.txt, which this command does not write: give another folder",
    ),
}


@pytest.mark.parametrize("case", VALIDATION_ERRORS)
def test_validation_user_errors(case, tmp_path, capsys, monkeypatch, exit_status_and_error):
    monkeypatch.setattr(validation_cli, "SUITES", {})  # any suite run would fail with KeyError
    (tmp_path / "file").write_text("")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "report.json").write_text("{}")
    if case.startswith("foreign files"):
        (tmp_path / "report" / "notes.txt").write_text("mine")
    arguments, expected = VALIDATION_ERRORS[case]
    argv = [a.format(tmp=tmp_path) for a in arguments]
    status, line = exit_status_and_error(validation_cli.main, argv, capsys)
    assert status == 2
    assert line.startswith("python -m validation: error: ")
    assert re.search(expected, line), line
    assert not (tmp_path / "a").exists()


def test_validation_creates_a_new_folder_in_an_existing_parent(tmp_path, monkeypatch):
    no_checks = types.SimpleNamespace(run=lambda size, outdir: [])
    monkeypatch.setattr(validation_cli, "SUITES", {"gaussian": no_checks})
    assert validation_cli.main(["--out", str(tmp_path / "report"), "--only", "gaussian"]) == 0
    assert (tmp_path / "report" / "report.md").is_file()


def test_user_error_through_the_real_command_line_has_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "gridflow", "groundtruth", "--nodes", "8"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(pathlib.Path(__file__).parents[1])},
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "python -m gridflow groundtruth: error: argument --nodes: nodes must be an odd "
        "integer >= 9, got 8"
    )
    assert "Traceback" not in result.stderr


def test_benchmark_refuses_a_before_that_is_no_checkout(tmp_path, capsys, exit_status_and_error):
    import validation.benchmark_neural as benchmark_neural

    argv = ["--goals-only", "--before", str(tmp_path)]
    status, line = exit_status_and_error(benchmark_neural.main, argv, capsys)
    assert status == 2
    assert "not a checkout of this project" in line


def test_benchmark_reads_the_seconds_of_another_checkout(monkeypatch, tmp_path):
    """--before times each checkout in a subprocess and parses speed_neural's line."""
    import validation.benchmark_neural as benchmark_neural

    seen = []

    def run(command, env, **kwargs):
        seen.append(env["PYTHONPATH"])
        seconds = "8.00" if env["PYTHONPATH"] == str(tmp_path) else "2.00"
        line = f"one seed, 4 methods, paper settings, 1 thread: {seconds} s CPU\n"
        return types.SimpleNamespace(returncode=0, stdout=line, stderr="")

    monkeypatch.setattr(benchmark_neural.subprocess, "run", run)
    monkeypatch.chdir(tmp_path.parent)  # a relative checkout: the subprocess gets it absolute
    rows = benchmark_neural.seed_rows(quick=True, before=pathlib.Path(tmp_path.name))
    assert seen[0] == str(tmp_path) and len(seen) == 2
    assert rows[0][1] == "0.250"
    assert rows[1][1] == "1.38 s" and rows[1][4] is True  # 5.5 s x 0.25
    assert rows[2][1] == "20.8x" and rows[2][4] is True
    failing = types.SimpleNamespace(returncode=1, stdout="", stderr="ImportError: no neural")
    monkeypatch.setattr(benchmark_neural.subprocess, "run", lambda *a, **k: failing)
    with pytest.raises(RuntimeError, match="ImportError"):
        benchmark_neural.checkout_seed_seconds(tmp_path)


@pytest.mark.parametrize(
    "argv",
    [
        ["dimensions", "--size", "tiny", "--dims", "2", "100000", "--methods", "adam"],
        ["errorbudget", "--problems", "gaussian100000", "--out", "{tmp}/budget"],
    ],
)
def test_a_gaussian_problem_too_large_for_memory_is_refused_up_front(
    argv, tmp_path, capsys, monkeypatch, exit_status_and_error
):
    """d = 100000 needs 8 matrices of 74.5 GiB: refused with the estimate before numpy's
    allocation error, and before d = 2 runs."""
    monkeypatch.setattr(gridflow.memory, "available_memory", lambda: 16 * 2**30)
    argv = [a.format(tmp=tmp_path) for a in argv]
    status, line = exit_status_and_error(neural_cli.main, argv, capsys)
    assert status == 2 and "the Gaussian problem in d = 100000 needs about" in line, line
    assert "GiB of memory" in line and "smaller dimension" in line
    assert not (tmp_path / "budget").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["benchmark", "--out", ""],
        ["flowcheck", "--out", ""],
        ["errorbudget", "--out", ""],
        ["flowcheck", "--out", ".."],
        ["dimensions", "--out", ""],
    ],
)
def test_neural_commands_refuse_an_empty_out(argv, capsys, exit_status_and_error):
    status, line = exit_status_and_error(neural_cli.main, argv, capsys)
    assert status == 2
    assert re.search("must (name a folder|be a file name)", line), line


def test_existing_outputs_are_replaced_only_with_overwrite(tmp_path, capsys, exit_status_and_error):
    """dimensions' rows file and flowcheck's folder: refused before any work without --overwrite."""
    rows = tmp_path / "rows.json"
    rows.write_text("[]")
    argv = ["dimensions", "--dims", "2", "--out", str(rows)]
    status, line = exit_status_and_error(neural_cli.main, argv, capsys)
    assert status == 2 and "exists; give --overwrite" in line
    (tmp_path / "fc").mkdir()
    (tmp_path / "fc" / "flowcheck.png").write_text("an earlier figure")
    argv = ["flowcheck", "--out", str(tmp_path / "fc")]
    status, line = exit_status_and_error(neural_cli.main, argv, capsys)
    assert status == 2 and "already holds flowcheck.png; give --overwrite" in line
    assert rows.read_text() == "[]" and len(list(tmp_path.iterdir())) == 2


def test_a_rewritten_report_keeps_no_stale_figure(tmp_path, monkeypatch):
    def run(size, outdir):
        (outdir / "new.png").write_bytes(b"png")
        return []

    monkeypatch.setattr(validation_cli, "SUITES", {"gaussian": types.SimpleNamespace(run=run)})
    report = tmp_path / "report"
    report.mkdir()
    (report / "old.png").write_bytes(b"an earlier run's figure")
    (report / "report.md").write_text("earlier")
    assert validation_cli.main(["--out", str(report), "--overwrite"]) == 0
    assert sorted(p.name for p in report.iterdir()) == ["new.png", "report.json", "report.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no staging folder left


def test_a_failed_report_leaves_the_folder_as_it_was(tmp_path):
    report = tmp_path / "report"
    report.mkdir()
    (report / "old.png").write_bytes(b"old")
    folder = ReportFolder(report, "--out", ("*.png",), overwrite=True)
    with pytest.raises(RuntimeError), folder.staged() as staged:
        (staged / "new.png").write_bytes(b"new")
        raise RuntimeError("a bug half way")
    assert [p.name for p in tmp_path.iterdir()] == ["report"]
    assert [p.name for p in report.iterdir()] == ["old.png"]
    assert folder.kept() == f"the report folder {report} was not changed"


@pytest.fixture
def python_sigint_handler():
    """Python's own SIGINT handler for the test: a process started in the background by a
    non-interactive shell (`bash .ci/run &`) inherits SIGINT ignored, and Python then keeps
    it ignored, so Ctrl-C would never become a KeyboardInterrupt."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_during_the_renames_is_delivered_after_them(python_sigint_handler):
    done = []
    with pytest.raises(KeyboardInterrupt), deferred_interrupts():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        done.append("renamed")
    assert done == ["renamed"]


REPO = pathlib.Path(__file__).parents[1]
INTERRUPTS = {
    # command, what shows that it computes, the files it must keep, its interrupted line
    "groundtruth": (
        ["gridflow", "groundtruth", "--out", "truth.npz", "--overwrite"],
        "grids",
        {"truth.npz": "an earlier map"},
        "truth.npz was not changed",
    ),
    "validation": (
        ["validation", "--only", "grid1d", "--out", "report", "--overwrite"],
        "running grid1d checks",
        {"report/report.md": "an earlier report", "report/fig.png": "an earlier figure"},
        "the report folder report was not changed",
    ),
    "flowcheck": (
        ["neural", "flowcheck", "--cases", "gaussian2d", "--out", "fc"],
        "checking gaussian2d",
        {},
        "nothing was written",
    ),
    "errorbudget": (  # K' = 200 keeps its row (0.6 s), K' = 2000 (5 s) is interrupted
        ["neural", "errorbudget", "--problems", "gaussian2", "--widths", "6,6", "--causes",
         "implicit", "--quadratic", "without", "--inner-steps", "200", "--n-eval", "2000",
         "--out", "eb"],
        "eb-partial.jsonl",
        {},
        "no report was written; the rows of 1 finished run are in eb-partial.jsonl",
    ),
    "dimensions": (
        ["neural", "dimensions", "--dims", "8", "--size", "small", "--out", "rows.json"],
        "runs:",
        {},
        "nothing was written",
    ),
    "fit": (
        ["neural", "fit", "--data", "data.csv", "--steps", "100000", "--out", "map.npz",
         "--overwrite"],
        "data: 400 rows",
        {"data.csv": "\n".join(f"{np.sin(k):.6f},{np.cos(3 * k):.6f}" for k in range(400)),
         "map.npz": "an earlier map"},
        "map.npz was not changed",
    ),
}  # fmt: skip


def _nonempty(path: pathlib.Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


@pytest.mark.parametrize("name", INTERRUPTS)
def test_ctrl_c_exits_130_with_one_line_and_no_partial_output(name, tmp_path):
    """SIGINT to the command's process group (Ctrl-C in a terminal) while it computes."""
    command, marker, files, expected = INTERRUPTS[name]
    work = tmp_path / "work"
    work.mkdir()
    for path, text in files.items():
        (work / path).parent.mkdir(exist_ok=True)
        (work / path).write_text(text)
    log = tmp_path / "output.txt"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1", PYTHONPATH=str(REPO))
    with log.open("w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", *command],
            cwd=work,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's foreground job
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + 60
        while not (marker in log.read_text() or _nonempty(work / marker)):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        time.sleep(0.3)  # inside the computation
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output = log.read_text()
    assert process.returncode == 130, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    lines = [line for line in output.splitlines() if "interrupt" in line.lower()]
    assert lines == [f"interrupted: {expected}"], output
    kept = {str(p.relative_to(work)) for p in work.rglob("*") if p.is_file()}
    partial = {"eb-partial.jsonl"} if name == "errorbudget" else set()
    assert kept == set(files) | partial
    for path, text in files.items():
        assert (work / path).read_text() == text


def test_a_second_ctrl_c_after_the_interrupted_line_is_ignored():
    """The exit handlers (tqdm's) run after the ``interrupted:`` line; a second SIGINT then
    (a terminal's repeated Ctrl-C) must not print a traceback."""
    code = (
        "import atexit, os, signal, time\n"
        "from gridflow.cli import INTERRUPTED, exit_with\n"
        "atexit.register(lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(0.2)))\n"
        "exit_with(INTERRUPTED)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr and "KeyboardInterrupt" not in result.stderr


def test_ctrl_c_at_a_kernels_first_return_of_arrays_stays_an_interrupt():
    """Boxing a kernel's arrays calls back into Python (numba unpickles their type); a
    KeyboardInterrupt there at the first return of a tuple of arrays was cleared by the
    next item's memo miss, leaving a NULL in the tuple: SIGSEGV on unpacking it."""
    code = (
        "import signal\n"
        "import numpy as np\n"
        "from numba import njit\n"
        "from gridflow.cli import is_interrupt\n"
        "@njit\n"
        "def busy(n):\n"
        "    a = np.zeros(n)\n"
        "    for k in range(300_000_000):\n"
        "        a[k % n] += 1.0\n"
        "    return a, a.copy()\n"
        "busy.compile('(int64,)')\n"
        "signal.signal(signal.SIGALRM, signal.default_int_handler)\n"
        "signal.setitimer(signal.ITIMER_REAL, 0.05)  # lands while the kernel runs\n"
        "try:\n"
        "    a, b = busy(3)\n"
        "except BaseException as error:\n"
        "    print('interrupted' if is_interrupt(error) else repr(error))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (0, "interrupted\n"), result.stderr


def test_ctrl_c_while_numba_holds_its_compiler_lock_waits_for_its_release(python_sigint_handler):
    """A KeyboardInterrupt inside numba's cache loading crashed the process (LLVM calls back
    into Python); gridflow holds SIGINT back until numba releases its compiler lock."""
    from numba.core.compiler_lock import global_compiler_lock

    reached = []
    with pytest.raises(KeyboardInterrupt):
        with global_compiler_lock:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs here: it must not raise
            reached.append("end of the locked block")
    assert reached == ["end of the locked block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


class _SigintAtCall:
    """A module (``signal`` or ``threading``) whose functions raise SIGINT just before or
    just after their ``at``-th call, counted over all modules sharing ``calls``. CPython
    runs Python signal handlers at calls and function entries, so these are the points at
    which a real Ctrl-C becomes a KeyboardInterrupt inside the interrupt guard."""

    def __init__(self, module, calls, at, after):
        self._module, self._calls, self._at, self._after = module, calls, at, after

    def __getattr__(self, name):
        value = getattr(self._module, name)
        if not callable(value) or isinstance(value, type):
            return value

        def call(*args):
            self._calls.append(name)
            here = len(self._calls) - 1 == self._at
            if here and not self._after:
                signal.raise_signal(signal.SIGINT)
            result = value(*args)
            if here and self._after:
                signal.raise_signal(signal.SIGINT)
            return result

        return call


@pytest.mark.parametrize("held", [False, True], ids=["one Ctrl-C", "and one held"])
def test_ctrl_c_at_any_point_of_the_guard_leaves_it_consistent(
    python_sigint_handler, monkeypatch, held
):
    """A Ctrl-C landing inside the guard's own start and end of numba's compiler lock, at
    each call there, ends as at most one KeyboardInterrupt per Ctrl-C, never a late one,
    and leaves the guard holding SIGINT at the next lock and Python's handler after it. A
    KeyboardInterrupt between counting the lock and swapping the handler left the count at
    1 and SIGINT never held again; one just after the handler came back left a held
    Ctrl-C that the next lock's release delivered once more."""
    import threading

    from gridflow import _interrupt_guard

    def compile_nested(guard, body=lambda: None):
        """numba's lock taken twice, nested, as its compiler does: the start event before
        the lock (no end event if it raises), the end event after its release."""
        for _ in range(2):
            guard.on_start(None)
        try:
            body()
        finally:
            for _ in range(2):
                guard.on_end(None)

    def held_ctrl_c():
        signal.raise_signal(signal.SIGINT)

    at = 0
    while True:
        calls = []
        guard = _interrupt_guard.InterruptsAfterCompiling()
        for name, module in (("signal", signal), ("threading", threading)):
            injected = _SigintAtCall(module, calls, at // 2, after=at % 2)
            monkeypatch.setattr(_interrupt_guard, name, injected)
        interrupted = False
        try:
            compile_nested(guard, held_ctrl_c if held else lambda: None)
        except KeyboardInterrupt:
            interrupted = True
        monkeypatch.undo()
        if len(calls) <= at // 2:
            break
        assert interrupted, (at, calls)
        assert (guard.depth, guard.previous) == (0, None), (at, calls)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, (at, calls)
        try:
            compile_nested(guard)
        except KeyboardInterrupt:
            pytest.fail(f"a Ctrl-C delivered again at the next lock ({at}, {calls})")
        with pytest.raises(KeyboardInterrupt):
            compile_nested(guard, held_ctrl_c)  # held, delivered once at the end
        at += 1
    assert at > 10


def test_a_ctrl_c_lost_in_a_weakref_callback_is_delivered_again(python_sigint_handler):
    """Python prints a KeyboardInterrupt raised in a weakref callback as "Exception ignored"
    and drops it; inside `interrupts_lost_in_callbacks_delivered` it reaches the main thread
    at its next bytecode, and outside the hook is Python's again."""
    import weakref

    from gridflow.cli import interrupts_lost_in_callbacks_delivered

    class Owner:
        pass

    def callback(reference):
        raise KeyboardInterrupt

    default_hook = sys.unraisablehook
    reached = []
    with pytest.raises(KeyboardInterrupt), interrupts_lost_in_callbacks_delivered():
        owner = Owner()
        reference = weakref.ref(owner, callback)
        del owner
        for _ in range(1000):
            time.sleep(0.001)
        reached.append("after a thousand sleeps")
    assert reference() is None and reached == []
    assert sys.unraisablehook is default_hook
