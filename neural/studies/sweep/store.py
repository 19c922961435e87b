"""The results store of a sweep: results.jsonl, config.json, the folder's lock, resumes.

``results.jsonl`` holds one JSON line per finished seed, appended and flushed as soon as the
seed finishes, by the parent process only; a line cut by a kill is dropped by the next
sweep. ``config.json`` holds the run's configuration and the code version
(``code_version``): a rerun with another configuration is refused, one with another code
version too unless forced. A sweep holds an flock on its folder (``locked``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import warnings
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from gridflow.checks import writable_folder
from neural.studies.sweep.config import BenchmarkConfig
from neural.studies.sweep.errors import SweepLockedError, SweepSetupError

__all__ = [
    "CONFIG_FILE",
    "RESULTS_FILE",
    "append_record",
    "code_version",
    "create_directory",
    "drop_cut_line",
    "locked",
    "prepare_directory",
    "read_results",
]

CHECKOUT = Path(__file__).resolve().parents[3]
"""The folder that holds the package ``neural`` (a checkout's root)."""

RESULTS_FILE = "results.jsonl"
CONFIG_FILE = "config.json"
LOCK_FILE = ".lock"
CODE_KEYS = ("code", "forced_resumes")
"""Keys of config.json that record the code, not the configuration."""


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


@contextmanager
def locked(out: Path):
    """Hold an exclusive lock on ``out`` for the duration of a sweep (POSIX ``flock``):
    a second sweep on the same directory is refused (``SweepLockedError``) instead of
    interleaving writes."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        yield
        return
    try:
        handle = open(out / LOCK_FILE, "w")
    except OSError as error:
        raise SweepSetupError(f"cannot create the lock file in {out} ({_reason(error)})") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SweepLockedError(
                f"another sweep is writing into {out}; wait for it to finish or stop it "
                "(Ctrl-C), or pass another output folder"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pyproject_version() -> str | None:
    """The version in the checkout's pyproject.toml ([project] table), or None."""
    try:
        text = (CHECKOUT / "pyproject.toml").read_text()
    except OSError:
        return None
    project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.MULTILINE | re.DOTALL)
    version = project and re.search(r'^version\s*=\s*"([^"]+)"', project[1], re.MULTILINE)
    return version[1] if version else None


def _git_commit(folder: Path) -> str | None:
    """``git rev-parse HEAD`` in ``folder``; None when it is not a checkout or git is absent."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def code_version() -> dict:
    """{"version": the package version (``importlib.metadata``, else the checkout's
    pyproject.toml), "commit": the git commit of the package's folder, or None}."""
    try:
        version = metadata.version("monge-flows")
    except metadata.PackageNotFoundError:
        version = _pyproject_version()
    return {"version": version, "commit": _git_commit(CHECKOUT / "neural")}


def file_sha256(path) -> str:
    """The SHA-256 of a file's bytes, as hex (a ground truth's identity across resumes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _differences(stored, wanted, prefix: str = "") -> list[str]:
    """'key (stored a, requested b)' for every leaf where two JSON objects differ."""
    lines = []
    for key in sorted(set(stored) | set(wanted)):
        a, b = stored.get(key, "absent"), wanted.get(key, "absent")
        if isinstance(a, dict) and isinstance(b, dict):
            lines += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            lines.append(f"{prefix}{key} (stored {a!r}, requested {b!r})")
    return lines


def _write_json(path: Path, record: dict) -> None:
    """Write ``record`` to ``path`` atomically (a temporary file, then a rename)."""
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(partial, path)


def create_directory(out: Path) -> None:
    """Create ``out`` (with its parents); SweepSetupError if it cannot be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        writable_folder(out, "output folder")
    except (OSError, ValueError) as error:
        reason = _reason(error) if isinstance(error, OSError) else str(error)
        raise SweepSetupError(f"cannot write the sweep into {out}: {reason}") from None


def prepare_directory(out: Path, config: BenchmarkConfig, force_resume: bool = False) -> None:
    """Check (or write) config.json in ``out`` (a locked sweep only): the configuration, the
    ground truth's content hash and the code version (``code_version``). Refuses
    (``SweepSetupError``) results without a configuration, another configuration (a ground
    truth replaced under the same name is one), and results of another code version unless
    ``force_resume`` (then recorded under "forced_resumes")."""
    path = out / CONFIG_FILE
    wanted = json.loads(json.dumps(config.to_json()))
    if config.ground_truth is not None:  # the file's content, not only its name
        wanted["ground_truth_sha256"] = file_sha256(config.ground_truth)
    code = code_version()
    if not path.exists():
        if (out / RESULTS_FILE).exists():
            raise SweepSetupError(
                f"{out} holds {RESULTS_FILE} but no {CONFIG_FILE}: cannot tell which "
                "configuration produced those results; pass another output folder"
            )
        _write_json(path, {**wanted, "code": code})
        return
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SweepSetupError(
            f"{path} cannot be read ({error}); pass another output folder"
        ) from None
    differences = _differences({k: v for k, v in stored.items() if k not in CODE_KEYS}, wanted)
    if differences:
        raise SweepSetupError(
            f"{out} holds results of a different configuration ({path}): "
            f"{'; '.join(differences)}. Pass another output folder, or the same options as "
            "before to resume"
        )
    if stored.get("code") != code:
        if not force_resume:
            recorded = stored.get("code") or "no code version (an older sweep)"
            raise SweepSetupError(
                f"{out} holds results of code {recorded}, this is code {code}: a resume would "
                "mix results of two code versions; pass another output folder, or "
                "--force-resume (force_resume=True) to resume anyway"
            )
        _write_json(path, {**stored, "forced_resumes": [*stored.get("forced_resumes", []), code]})


RECORD_KEYS = frozenset({"seed", "mmd_initial", "mmd_identity", "mmd_floor", "methods"})
"""The keys of every seed's record (``run_seed``), which the table and references read."""


def _results_path(path) -> Path:
    path = Path(path)
    return path / RESULTS_FILE if path.is_dir() else path


def _complete_lines(path: Path) -> bytes:
    """The file's bytes up to its last newline (a line cut by a kill is not a record)."""
    data = path.read_bytes() if path.exists() else b""
    return data[: data.rfind(b"\n") + 1]


def drop_cut_line(path: Path) -> None:
    """Truncate a results file to its complete lines (inside a locked sweep only)."""
    if not path.exists():
        return
    complete = _complete_lines(path)
    if len(complete) < path.stat().st_size:
        warnings.warn(
            f"{path}: dropping an incomplete last line (a run was interrupted while writing)",
            RuntimeWarning,
            stacklevel=3,
        )
        with open(path, "r+b") as handle:
            handle.truncate(len(complete))


def read_results(path) -> dict[int, dict]:
    """Seed -> record from a results.jsonl (or its directory), read only; a cut last line
    (a run killed while writing) is ignored here and removed by the next sweep."""
    path = _results_path(path)
    data = _complete_lines(path)
    records = {}
    for number, line in enumerate(data.decode().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number} is not a JSON record ({error})") from None
        missing = RECORD_KEYS - set(record) if isinstance(record, dict) else RECORD_KEYS
        if missing or not isinstance(record["methods"], dict) or type(record["seed"]) is not int:
            raise ValueError(
                f"{path}:{number} is not a sweep record (one has the keys "
                f"{sorted(RECORD_KEYS)}, an integer seed and a dict of methods); pass another "
                "output folder or remove that line"
            )
        seed = record["seed"]
        if seed in records:
            raise ValueError(f"{path}:{number}: seed {seed} appears twice")
        records[seed] = record
    return records


def append_record(path: Path, record: dict) -> None:
    """Append ``record`` to a results file as one JSON line, on disk before it returns."""
    line = json.dumps(record, allow_nan=False) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
