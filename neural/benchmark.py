"""The paper's seed sweep (Fig. 2).

Fig. 2 (paper §3.4.2): source ϱ0 = the 4-mode mixture (``samplers.paper_mixture``),
target γ = N(0, I_2), ICNN with two hidden layers of 20 (m = 541), methods
(a) implicit, (b) explicit (Algorithm 2), (c) Euclidean GD, (d) Adam (Algorithm 1) with
the paper's hyperparameters (``neural.training``), metric: energy-distance MMD
(V-statistic without ½, ``neural.mmd.energy_distance``) between T_θ#ϱ0 and γ with
n_eval = 10 000 samples per side, over 100 seeds.

Seeds. Seed s gives ``numpy.random.SeedSequence(s).spawn(3)`` = (init, data, eval):
θ0 from ``init``; every method draws its batches from a fresh Generator on ``data``
(so all methods share θ0 and the data stream, as in the paper); the evaluation samples
(source, target, and a second target sample for the MMD noise floor) come from ``eval``.
A seed's results do not depend on the other seeds, the worker, or the order of runs.

Resumable runs. ``run_benchmark`` writes into a directory: ``config.json`` (the run's
configuration and the code version, ``code_version``: a rerun with another configuration
is refused, one with another code version too unless ``force_resume``) and
``results.jsonl`` (one JSON line per finished seed, appended and flushed as soon as the
seed finishes, by the parent process only). A rerun skips the seeds already in the file,
so a killed run loses at most the seeds in flight; a line cut by the kill is dropped on
the next run. A sweep holds an flock on its directory (a second one is refused), and
Ctrl-C ends it with ``SweepInterrupted`` saying how many seeds the file keeps.

Ground truth. With ``ground_truth=PATH.npz`` the sweep also reports ‖T_θ − T*‖ in
L²(ϱ0) and the L²-UVP (``gridflow.map_distance``) against
``gridflow.load_map(PATH)``. The file is checked before any training
(``check_ground_truth``): dimension 2, the source and target its metadata record
(``GROUND_TRUTH_SOURCE``, ``GROUND_TRUTH_TARGET``), and a box that holds every seed's
evaluation samples. Every record also holds the exact KL of each trained map
(``neural.training.kl.exact_kl``, the mixture's density being known) with its standard error.

The dimension study (Gaussian pairs, ``neural.dimensions``) and the flow check
(``neural.flowcheck``) are modules of their own.
"""

from __future__ import annotations

import json
import os
import signal
import time
import warnings
from collections.abc import Iterable, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from gridflow import LogConcaveTarget
from gridflow.checks import positive_int
from gridflow.maps import map_distance
from neural.errors import DivergenceError
from neural.mmd import energy_distance_to
from neural.network import ICNNArchitecture
from neural.network.initialization import INITS, initial_network, torch_default_init
from neural.score import count_nonconvergence
from neural.training.gradients import check_kl_reduction
from neural.training.kl import exact_kl
from neural.training.methods import METHODS, STARTS, EuclideanAdam, EuclideanGD, MethodConfig
from neural.training.run import run_method

__all__ = [
    "BACKENDS",
    "GROUND_TRUTH_SOURCE",
    "GROUND_TRUTH_TARGET",
    "INITS",
    "PAPER_RESULTS",
    "SIZES",
    "BenchmarkConfig",
    "BenchmarkResults",
    "MethodSummary",
    "SweepInterrupted",
    "SweepLockedError",
    "SweepSetupError",
    "check_backend",
    "check_ground_truth",
    "code_version",
    "format_references",
    "format_table",
    "histogram_figure",
    "initial_network",
    "method_configs",
    "parallel_map",
    "read_results",
    "run_benchmark",
    "run_seed",
    "summarize",
    "torch_default_init",
]

PAPER_RESULTS: dict[str, tuple[float, float]] = {
    "implicit": (0.0241, 0.0179),
    "explicit": (0.0194, 0.0098),
    "euclidean": (0.1213, 0.1138),
    "adam": (0.0291, 0.0156),
}
"""MMD mean and std over 100 seeds reported in the paper's Fig. 2."""

SIZES: dict[str, dict] = {
    # the paper's settings (§3.4.2 (iii), DESIGN §4)
    "paper": {"factor": 1.0, "n_eval": 10_000, "batch_size": 100},
    # 1/5 of the steps (Algorithm 2 keeps K = 10 outer steps, K' = 20), n_eval = 2000
    "small": {"factor": 0.2, "n_eval": 2_000, "batch_size": 100},
    # a few steps, for tests and notebooks at small size
    "tiny": {
        "steps": {"implicit": (2, 2), "explicit": (2, 2), "euclidean": 4, "adam": 4},
        "n_eval": 200,
        "batch_size": 30,
    },
}
"""Size presets: step counts and evaluation sample size."""

BACKENDS = ("loky", "threading", "dask", "sequential")
"""joblib backends of the sweeps: loky (processes), threading, dask (dask.distributed),
sequential (in process, for debugging)."""

GROUND_TRUTH_SOURCE = "paper-mixture"
GROUND_TRUTH_TARGET = "N(0, I)"
"""The source and target a ground-truth file of the Fig. 2 sweep must record in its metadata
(as written by ``python -m gridflow groundtruth --source paper-mixture``)."""


class SweepSetupError(ValueError):
    """A sweep refused before any seed ran: its output folder, its ground truth or a
    resume that does not fit; the message names what differs and the fix."""


class SweepLockedError(SweepSetupError, RuntimeError):
    """Another sweep holds the lock of the output folder."""


class SweepInterrupted(KeyboardInterrupt):
    """A sweep stopped by Ctrl-C (SIGINT); ``kept`` of its ``total`` seeds are in ``path``."""

    def __init__(self, kept: int, total: int, path: Path | None):
        self.kept, self.total, self.path = kept, total, path
        if path is None:
            message = f"{kept} of {total} seeds had finished; nothing was kept (no output folder)"
        else:
            message = f"{kept} of {total} seeds are in {path}; rerun the same command to resume"
        super().__init__(message)


def check_backend(backend: str) -> str:
    """``backend`` if it is one of ``BACKENDS`` (and, for dask, dask.distributed imports)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "dask":
        try:
            import dask.distributed  # noqa: F401
        except ImportError:
            raise ValueError(
                "backend 'dask' needs dask.distributed: pip install 'monge-flows[dask]' "
                "(or 'dask[distributed]'), or choose another backend"
            ) from None
    return backend


def check_ground_truth(path):
    """The map in ``path`` (``gridflow.load_map``) if it is one of the Fig. 2 problem.

    Refuses (ValueError naming the file and what differs) a file that is missing or damaged
    (``gridflow.MapFileError``), of another dimension than 2, or whose metadata do not
    record the sweep's source (``GROUND_TRUTH_SOURCE``) and target (``GROUND_TRUTH_TARGET``):
    a map of another problem would give meaningless map errors. Whether its box covers the
    evaluation samples depends on the seeds (``run_benchmark`` checks it before training).
    """
    from gridflow import MapFileError, load_map

    try:
        true_map = load_map(path)
    except MapFileError as error:
        raise MapFileError(f"ground truth: {error}") from None
    fix = f"build it with: python -m gridflow groundtruth --source {GROUND_TRUTH_SOURCE}"
    if true_map.grid.dim != 2:
        raise ValueError(
            f"ground truth {path}: a map in dimension {true_map.grid.dim}, the sweep is in "
            f"dimension 2; {fix}"
        )
    for key, wanted in (("source", GROUND_TRUTH_SOURCE), ("target", GROUND_TRUTH_TARGET)):
        recorded = true_map.metadata.get(key)
        if recorded != wanted:
            what = "records no " + key if recorded is None else f"is a map with {key} {recorded!r}"
            raise ValueError(f"ground truth {path} {what}, the sweep's {key} is {wanted!r}; {fix}")
    return true_map


def _check_covers(true_map, path, x_eval: np.ndarray, seed: int) -> None:
    """SweepSetupError if evaluation samples of ``seed`` lie outside the ground truth's box."""
    lower, upper = np.array(true_map.grid.lower), np.array(true_map.grid.upper)
    outside = int(np.count_nonzero(np.any((x_eval < lower) | (x_eval > upper), axis=1)))
    if outside:
        raise SweepSetupError(
            f"ground truth {path}: {outside} of the {len(x_eval)} evaluation samples of seed "
            f"{seed} lie outside its box {true_map.grid.lower}..{true_map.grid.upper}; build "
            f"it with a larger --box"
        )


def method_configs(size: str = "paper", methods: Sequence[str] | None = None, **overrides):
    """{name: configuration} of ``methods`` (default all four) at ``size`` (``SIZES``).

    ``overrides`` are passed to every configuration that has the field (e.g.
    ``kl_reduction='sum'``, ``score_eps=0.1``).
    """
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose from {', '.join(SIZES)}")
    methods = tuple(METHODS) if methods is None else tuple(methods)
    if not methods:
        raise ValueError("methods must name at least one method")
    spec = SIZES[size]
    configs = {}
    for name in methods:
        if name not in METHODS:
            raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
        cls = METHODS[name]
        base = cls()
        kwargs = {"batch_size": spec["batch_size"]}
        if "steps" in spec:
            steps = spec["steps"][name]
            if issubclass(cls, (EuclideanGD, EuclideanAdam)):
                kwargs["steps"] = steps
            else:
                kwargs["outer_steps"], kwargs["inner_steps"] = steps
        elif issubclass(cls, (EuclideanGD, EuclideanAdam)):
            kwargs["steps"] = max(1, round(base.steps * spec["factor"]))
        else:
            kwargs["inner_steps"] = max(1, round(base.inner_steps * spec["factor"]))
        field_names = set(cls.__dataclass_fields__)
        kwargs.update({key: value for key, value in overrides.items() if key in field_names})
        configs[name] = cls(**kwargs)
    unused = set(overrides) - {
        key for name in methods for key in METHODS[name].__dataclass_fields__
    }
    if unused:
        raise TypeError(f"no method among {methods} has the option(s) {sorted(unused)}")
    return configs


# ---------------------------------------------------------------------------
# One seed
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchmarkConfig:
    """What a sweep runs; stored as config.json next to the results.

    methods       method names (``neural.training.METHODS``)
    size          ``SIZES`` key: paper | small | tiny
    hidden        ICNN hidden widths
    init          θ0 scheme (``INITS``)
    kl_reduction  'mean' (eq. 3.7, the paper's text) or 'sum' (the authors' public code)
                  for the KL θ-gradient of methods (a), (c), (d)
    implicit_start, explicit_start  'identity' (T̂_0 = id, eqs. 3.1, 3.2; default) or
                  'network' (T_θ0): the map the first outer step of each Algorithm 2
                  scheme moves from (``neural.training`` docstring)
    n_eval        samples per side for the MMD (default: the size's)
    ground_truth  optional path of a ``gridflow.save_map`` file (T* for map errors) of
                  the sweep's problem, checked on construction (``check_ground_truth``)
    """

    methods: tuple[str, ...] = tuple(METHODS)
    size: str = "paper"
    hidden: tuple[int, ...] = (20, 20)
    init: str = "normal"
    kl_reduction: str = "mean"
    implicit_start: str = "identity"
    explicit_start: str = "identity"
    n_eval: int | None = None
    ground_truth: str | None = None

    @classmethod
    def authors_code(cls, **kwargs) -> BenchmarkConfig:
        """The choices of the authors' public code where the paper's text is silent or differs:
        PyTorch initialization, summed KL gradient, first implicit step from T_θ0."""
        defaults = {"init": "torch", "kl_reduction": "sum", "implicit_start": "network"}
        return cls(**{**defaults, **kwargs})

    def __post_init__(self):
        methods = tuple(self.methods)
        if isinstance(self.methods, str):
            methods = tuple(m.strip() for m in self.methods.split(",") if m.strip())
        object.__setattr__(self, "methods", methods)
        object.__setattr__(self, "hidden", ICNNArchitecture(1, tuple(self.hidden)).hidden)
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; choose from {', '.join(INITS)}")
        if len(set(methods)) != len(methods):
            raise ValueError(f"methods must not repeat, got {methods}")
        check_kl_reduction(self.kl_reduction)
        for name in ("implicit_start", "explicit_start"):
            if getattr(self, name) not in STARTS:
                raise ValueError(f"{name} must be one of {STARTS}, got {getattr(self, name)!r}")
        self.method_configs()  # validates methods and size
        if self.n_eval is None:
            object.__setattr__(self, "n_eval", SIZES[self.size]["n_eval"])
        object.__setattr__(self, "n_eval", positive_int(self.n_eval, "n_eval"))
        if self.ground_truth is not None:
            object.__setattr__(self, "ground_truth", str(self.ground_truth))
            check_ground_truth(self.ground_truth)

    def method_configs(self) -> dict[str, MethodConfig]:
        """{name: configuration} at this size (``kl_reduction`` set where it applies)."""
        overrides = {}
        if self.kl_reduction != "mean" and any(
            "kl_reduction" in METHODS[m].__dataclass_fields__ for m in self.methods if m in METHODS
        ):
            overrides["kl_reduction"] = self.kl_reduction
        configs = method_configs(self.size, self.methods, **overrides)
        for name, start in (("implicit", self.implicit_start), ("explicit", self.explicit_start)):
            if name in configs:
                configs[name] = replace(configs[name], start=start)
        return configs

    def to_json(self) -> dict:
        """The configuration, with every method's resolved hyperparameters."""
        record = asdict(self)
        record["methods"] = list(self.methods)
        record["hidden"] = list(self.hidden)
        record["method_configs"] = {
            name: {"class": type(config).__name__, **asdict(config)}
            for name, config in self.method_configs().items()
        }
        return record


def _seed_sequences(seed: int):
    """(init, data, eval) streams of ``seed`` (module docstring)."""
    return np.random.SeedSequence(seed).spawn(3)


def _eval_samples(seed_sequence, n_eval, source, dim):
    rng = np.random.default_rng(seed_sequence)
    x_eval = source.sample(rng, n_eval)
    y_eval = rng.standard_normal((n_eval, dim))
    y_floor = rng.standard_normal((n_eval, dim))
    return x_eval, y_eval, y_floor


def run_seed(seed: int, config: BenchmarkConfig) -> dict:
    """Run every method of ``config`` for one seed; a JSON-ready record.

    {"seed", "mmd_initial" (T_θ0), "mmd_identity" (ϱ0 itself), "mmd_floor" (two
    independent target samples), "methods": {name: {"status": "ok" | "diverged",
    "mmd", "seconds", "error", "score_warnings" (Sinkhorn runs that stopped at max_iter),
    and "l2", "uvp" with a ground truth}}}
    """
    from gridflow.examples import paper_mixture

    seed = _seed(seed)
    source = paper_mixture()
    dim = source.dim
    target = LogConcaveTarget.standard_gaussian(dim)
    init_seq, data_seq, eval_seq = _seed_sequences(seed)
    net0 = initial_network(
        dim, config.hidden, np.random.default_rng(init_seq), config.init, source=source
    )
    x_eval, y_eval, y_floor = _eval_samples(eval_seq, config.n_eval, source, dim)
    true_map = None
    if config.ground_truth is not None:
        true_map = check_ground_truth(config.ground_truth)
        _check_covers(true_map, config.ground_truth, x_eval, seed)
    mmd_to_target = energy_distance_to(y_eval)
    record = {
        "seed": seed,
        "mmd_initial": mmd_to_target(net0.map(x_eval)),
        "mmd_identity": mmd_to_target(x_eval),
        "mmd_floor": mmd_to_target(y_floor),
        "methods": {},
    }
    for name, method in config.method_configs().items():
        start = time.perf_counter()
        entry = {"status": "ok", "mmd": None, "error": None}
        try:
            # counted per thread (a context variable), not with the process-wide
            # warnings.catch_warnings: seeds may train side by side in threads
            with count_nonconvergence() as nonconverged:
                try:
                    result = run_method(
                        method, net0, source, target, np.random.default_rng(data_seq)
                    )
                finally:
                    entry["score_warnings"] = nonconverged.runs
            pushed = result.map(x_eval)
            entry["mmd"] = mmd_to_target(pushed)
            entry["kl"], entry["kl_error"] = _exact_kl(result, source, target, x_eval)
            if true_map is not None:
                error = map_distance(lambda _x, p=pushed: p, true_map, x_eval, np.eye(dim))
                entry["l2"], entry["uvp"] = error.l2, error.uvp
        except DivergenceError as error:
            entry["status"], entry["error"] = "diverged", str(error)
        entry["seconds"] = time.perf_counter() - start
        record["methods"][name] = entry
    return record


def _exact_kl(result, source, target, x_eval) -> tuple[float | None, float | None]:
    """The exact KL of a trained map and its standard error (``neural.training.kl.exact_kl``), or
    (None, None) where its Hessian is singular at an evaluation sample (KL = +∞)."""
    try:
        estimate = exact_kl(result.architecture, result.params, source, target, x_eval)
    except DivergenceError:
        return None, None
    return estimate.value, estimate.standard_error


@contextmanager
def _numba_threads(count: int | None):
    """numba's thread count set to ``count`` (capped at the pool size) inside, restored after."""
    import numba

    previous = numba.get_num_threads()
    if count is not None:
        numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def _seed_job(seed: int, config: BenchmarkConfig, numba_threads: int | None) -> dict:
    with _numba_threads(numba_threads):
        return run_seed(seed, config)


# ---------------------------------------------------------------------------
# The resumable sweep
# ---------------------------------------------------------------------------


RESULTS_FILE = "results.jsonl"
CONFIG_FILE = "config.json"


LOCK_FILE = ".lock"
CODE_KEYS = ("code", "forced_resumes")
"""Keys of config.json that record the code, not the configuration."""


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


@contextmanager
def _locked(out: Path):
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
    import re

    try:
        text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    except OSError:
        return None
    project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.MULTILINE | re.DOTALL)
    version = project and re.search(r'^version\s*=\s*"([^"]+)"', project[1], re.MULTILINE)
    return version[1] if version else None


def _git_commit(folder: Path) -> str | None:
    """``git rev-parse HEAD`` in ``folder``; None when it is not a checkout or git is absent."""
    import subprocess

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
    from importlib import metadata

    try:
        version = metadata.version("monge-flows")
    except metadata.PackageNotFoundError:
        version = _pyproject_version()
    return {"version": version, "commit": _git_commit(Path(__file__).resolve().parent)}


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


def _create_directory(out: Path) -> None:
    """Create ``out`` (with its parents); SweepSetupError if it cannot be written."""
    from gridflow.checks import writable_folder

    try:
        out.mkdir(parents=True, exist_ok=True)
        writable_folder(out, "output folder")
    except (OSError, ValueError) as error:
        reason = _reason(error) if isinstance(error, OSError) else str(error)
        raise SweepSetupError(f"cannot write the sweep into {out}: {reason}") from None


def _prepare_directory(out: Path, config: BenchmarkConfig, force_resume: bool = False) -> None:
    """Check (or write) config.json in ``out`` (a locked sweep only): the configuration and
    the code version (``code_version``). Refuses (``SweepSetupError``) results without a
    configuration, another configuration, and results of another code version unless
    ``force_resume`` (then recorded under "forced_resumes")."""
    path = out / CONFIG_FILE
    wanted = json.loads(json.dumps(config.to_json()))
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


def _results_path(path) -> Path:
    path = Path(path)
    return path / RESULTS_FILE if path.is_dir() else path


def _complete_lines(path: Path) -> bytes:
    """The file's bytes up to its last newline (a line cut by a kill is not a record)."""
    data = path.read_bytes() if path.exists() else b""
    return data[: data.rfind(b"\n") + 1]


def _drop_cut_line(path: Path) -> None:
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
        seed = int(record["seed"])
        if seed in records:
            raise ValueError(f"{path}:{number}: seed {seed} appears twice")
        records[seed] = record
    return records


def _append(path: Path, record: dict) -> None:
    line = json.dumps(record, allow_nan=False) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


@dataclass(frozen=True)
class MethodSummary:
    """MMD statistics of one method over the finished seeds (std with ddof = 0)."""

    method: str
    runs: int
    diverged: int
    mean: float
    std: float
    median: float
    worst: float
    best: float
    seconds: float
    paper_mean: float | None
    paper_std: float | None
    l2_mean: float | None = None
    uvp_mean: float | None = None
    kl_mean: float | None = None
    kl_infinite: int = 0


@dataclass(frozen=True)
class BenchmarkResults:
    """A sweep's records (seed -> record), its summary and the files written."""

    config: BenchmarkConfig
    records: dict[int, dict]
    summary: tuple[MethodSummary, ...]
    ran: tuple[int, ...]
    skipped: tuple[int, ...]
    seconds: float
    directory: Path | None = None
    figure: Path | None = field(default=None)

    def mmd(self, method: str) -> np.ndarray:
        """MMD of ``method`` over the finished seeds (seed order; NaN for diverged runs)."""
        return _mmd_values(self.records, method)


def _mmd_values(records: dict[int, dict], method: str) -> np.ndarray:
    values = []
    for seed in sorted(records):
        entry = records[seed]["methods"].get(method)
        if entry is not None:
            values.append(np.nan if entry["mmd"] is None else entry["mmd"])
    return np.array(values, dtype=np.float64)


def summarize(records: dict[int, dict], methods: Iterable[str]) -> tuple[MethodSummary, ...]:
    """Mean, std, median, worst, best MMD per method (diverged runs counted, not averaged)."""
    summary = []
    for method in methods:
        entries = [r["methods"][method] for r in records.values() if method in r["methods"]]
        values = np.array([e["mmd"] for e in entries if e["mmd"] is not None], dtype=np.float64)
        l2s = [e["l2"] for e in entries if e.get("l2") is not None]
        uvps = [e["uvp"] for e in entries if e.get("uvp") is not None]
        kls = [e["kl"] for e in entries if e.get("kl") is not None]
        stats = (
            (values.mean(), values.std(), np.median(values), values.max(), values.min())
            if values.size
            else (np.nan,) * 5
        )
        paper = PAPER_RESULTS.get(method, (None, None))
        summary.append(
            MethodSummary(
                method=method,
                runs=len(entries),
                diverged=sum(e["status"] != "ok" for e in entries),
                mean=float(stats[0]),
                std=float(stats[1]),
                median=float(stats[2]),
                worst=float(stats[3]),
                best=float(stats[4]),
                seconds=float(np.mean([e["seconds"] for e in entries])) if entries else np.nan,
                paper_mean=paper[0],
                paper_std=paper[1],
                l2_mean=float(np.mean(l2s)) if l2s else None,
                uvp_mean=float(np.mean(uvps)) if uvps else None,
                kl_mean=float(np.mean(kls)) if kls else None,
                kl_infinite=sum(
                    e["status"] == "ok" and "kl" in e and e["kl"] is None for e in entries
                ),
            )
        )
    return tuple(summary)


def format_table(summary: Sequence[MethodSummary]) -> str:
    """Plain-text table: MMD (mean ± std, median, worst), diverged runs, s/seed vs the
    paper's MMD; the mean exact KL of the trained maps (``neural.training.kl``; its count of maps with
    a singular Hessian, KL = ∞, in brackets when there are any); with a ground truth, the
    mean L²(ϱ0) error and L²-UVP (%)."""
    with_uvp = any(row.uvp_mean is not None for row in summary)
    with_kl = any(row.kl_mean is not None for row in summary)
    header = (
        f"{'method':<10} {'runs':>5} {'div.':>4} {'mean':>8} {'std':>8} {'median':>8} "
        f"{'worst':>8} {'s/seed':>7}   {'paper mean ± std':>17}"
    )
    if with_kl:
        header += f" {'KL':>8}"
    if with_uvp:
        header += f" {'L2 err':>8} {'UVP %':>8}"
    lines = [header, "-" * len(header)]
    for row in summary:
        paper = f"{row.paper_mean:.4f} ± {row.paper_std:.4f}" if row.paper_mean is not None else "-"
        line = (
            f"{row.method:<10} {row.runs:>5} {row.diverged:>4} {row.mean:>8.4f} {row.std:>8.4f} "
            f"{row.median:>8.4f} {row.worst:>8.4f} {row.seconds:>7.2f}   {paper:>17}"
        )
        if with_kl:
            kl = f"{row.kl_mean:.4f}" if row.kl_mean is not None else "-"
            line += f" {kl:>8}" + (f" [{row.kl_infinite} ∞]" if row.kl_infinite else "")
        if with_uvp:
            for value in (row.l2_mean, row.uvp_mean):
                line += f" {value:>8.4f}" if value is not None else f" {'-':>8}"
        lines.append(line)
    return "\n".join(lines)


def format_references(records: dict[int, dict]) -> str:
    """Mean MMD of the reference pairs of every seed: two independent target samples (the
    estimator's noise floor at n_eval), ϱ0 itself, and T_θ0#ϱ0."""
    parts = []
    for key, label in (
        ("mmd_floor", "noise floor (γ vs γ)"),
        ("mmd_identity", "ϱ0 vs γ"),
        ("mmd_initial", "T_θ0#ϱ0 vs γ"),
    ):
        values = [record[key] for record in records.values()]
        parts.append(f"{label} {np.mean(values):.4f}" if values else f"{label} -")
    return "reference MMD means: " + ", ".join(parts)


LABELS = {name: cls.label for name, cls in METHODS.items()}


def histogram_figure(
    records: dict[int, dict],
    methods: Sequence[str],
    clip: float = 0.13,
    size: str | None = None,
):
    """Fig. 2: one MMD histogram per method, with our mean and the paper's as lines.

    Values above ``clip`` are counted in an overflow bar right of the axis break, labelled
    "> clip" (the means and stds in the legend are of the unclipped values; diverged runs
    are counted in the legend). ``size`` (the ``SIZES`` preset) goes into the title with
    the number of seeds. Returns a ``matplotlib.figure.Figure`` (no pyplot state; save it
    with ``savefig``).
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    methods = list(methods)
    figure = Figure(figsize=(9.0, 1.9 * len(methods) + 0.7), layout="constrained")
    axes = figure.subplots(len(methods), 1, sharex=True, squeeze=False)[:, 0]
    bins = np.linspace(0.0, clip, 53)
    width = bins[1] - bins[0]
    overflow = (clip + width, clip + 4 * width)  # the overflow bar, after a gap

    def position(value):  # where a mean is drawn: beyond the clip, on the overflow bar
        return value if value <= clip else 0.5 * sum(overflow)

    for ax, method in zip(axes, methods, strict=True):
        values = _mmd_values(records, method)
        finite = values[np.isfinite(values)]
        ax.hist(
            finite[finite <= clip],
            bins=bins,
            color="tab:blue",
            alpha=0.75,
            label="ours: seeds per bin",
        )
        ax.axvline(clip + 0.5 * width, color="0.5", lw=0.8, ls=":")  # the axis break
        above = int(np.count_nonzero(finite > clip))
        ax.bar(
            overflow[0],
            above,
            width=overflow[1] - overflow[0],
            align="edge",
            color="tab:orange",
            hatch="//",
            edgecolor="k",
            linewidth=0.5,
            label=f"MMD > {clip:g}: {above} seeds",
        )
        if finite.size:
            diverged = int(np.count_nonzero(~np.isfinite(values)))
            label = f"ours, mean ± std: {finite.mean():.4f} ± {finite.std():.4f}"
            label += f" ({diverged} diverged)" if diverged else ""
            ax.axvline(position(finite.mean()), color="k", lw=1.2, label=label)
        if method in PAPER_RESULTS:
            mean, std = PAPER_RESULTS[method]
            ax.axvline(
                position(mean),
                color="tab:red",
                ls="--",
                lw=1.2,
                label=f"paper, mean ± std: {mean} ± {std}",
            )
        ax.set_xlim(0.0, overflow[1] + width)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False)
        ax.set_title(f"{LABELS.get(method, method)}  ({finite.size} seeds)", fontsize=9)
        ax.set_ylabel("seeds")
    ticks = [t for t in axes[-1].get_xticks() if 0.0 <= t <= clip - 0.5 * width]
    axes[-1].set_xticks([*ticks, 0.5 * sum(overflow)], [f"{t:g}" for t in ticks] + [f"> {clip:g}"])
    axes[-1].set_xlabel(
        r"MMD: energy distance $\mathcal{E}(T_\theta\#\varrho_0,\ \gamma)$, "
        r"$\gamma = \mathcal{N}(0, I_2)$"
    )
    seeds = len(records)
    run = f", size '{size}'" if size is not None else ""
    figure.suptitle(f"Fig. 2 sweep: MMD to the target over {seeds} seeds{run}", fontsize=10)
    return figure


@contextmanager
def parallel_map(function, jobs, workers: int = 1, backend: str = "loky", ordered: bool = True):
    """An iterator over ``function(*job)`` for every job, run by ``workers`` joblib workers.

    In process when workers == 1 (except with dask); ``ordered=False`` yields results as
    they finish. With backend 'dask' the current ``dask.distributed`` client serves if
    there is one; otherwise a local cluster (``workers`` processes, one thread each) is
    started for the block and closed, with its client, when the block ends.
    """
    backend = check_backend(backend)
    workers = positive_int(workers, "workers")
    jobs = list(jobs)
    if workers == 1 and backend != "dask":
        yield (function(*job) for job in jobs)
        return
    import joblib

    with ExitStack() as stack:
        if backend == "dask":
            _enter_dask_client(stack, workers)
        options = {"initializer": _ignore_interrupts} if backend == "loky" else {}
        stack.enter_context(joblib.parallel_config(backend=backend, n_jobs=workers, **options))
        parallel = joblib.Parallel(return_as="generator" if ordered else "generator_unordered")
        results = parallel(joblib.delayed(function)(*job) for job in jobs)
        try:
            yield results
        finally:
            results.close()  # stops the jobs not started yet before the backend goes away


def _ignore_interrupts() -> None:
    """A loky worker's initializer: Ctrl-C reaches the whole process group, and only the
    parent handles it (it stops the sweep and ends the workers). A worker interrupted in
    loky's own code between two seeds printed loky's traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _enter_dask_client(stack: ExitStack, workers: int) -> None:
    """Use the current dask client, or start a local cluster and its client on ``stack``."""
    from dask.distributed import Client, LocalCluster, get_client

    try:
        get_client()
        return
    except ValueError:  # no client: start one, closed with the stack
        pass
    cluster = stack.enter_context(
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
    )
    stack.enter_context(Client(cluster))


def _seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seeds must be nonnegative integers, got {seed!r}")
    return int(seed)


def _interrupted(error: BaseException) -> bool:
    """Whether ``error`` is, or was raised while handling, a KeyboardInterrupt (a SIGINT in
    compiled code surfaces as a SystemError whose context is the KeyboardInterrupt)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def _check_ground_truth_covers(config: BenchmarkConfig, seeds) -> None:
    """SweepSetupError before any training if a seed's evaluation samples leave T*'s box."""
    if config.ground_truth is None:
        return
    from gridflow.examples import paper_mixture

    true_map = check_ground_truth(config.ground_truth)
    source = paper_mixture()
    for seed in seeds:
        x_eval = _eval_samples(_seed_sequences(seed)[2], config.n_eval, source, source.dim)[0]
        _check_covers(true_map, config.ground_truth, x_eval, seed)


def run_benchmark(
    seeds: Iterable[int],
    config: BenchmarkConfig | None = None,
    out=None,
    *,
    workers: int = 1,
    backend: str = "loky",
    numba_threads: int | None = None,
    progress: bool = True,
    figure: bool = True,
    force_resume: bool = False,
) -> BenchmarkResults:
    """Run ``config`` for ``seeds`` in parallel, resumably (module docstring).

    out            output directory (results.jsonl, config.json, table.txt, fig2.png);
                   None keeps everything in memory (no resume)
    workers        joblib workers (processes with loky)
    backend        ``BACKENDS``: loky (default), threading, sequential, or 'dask' (needs
                   dask.distributed; without a client a local cluster is started and closed)
    numba_threads  numba threads per worker (default: cores // workers, at least 1)
    progress       tqdm progress bar
    figure         write fig2.png (Fig. 2 histograms) into ``out``
    force_resume   resume results written by another code version (config.json "code")

    Before any seed runs, refuses with ``SweepSetupError``: a ground truth whose box
    does not hold the evaluation samples, an output folder that cannot be written, one
    holding another configuration or code version, or one locked by a running sweep
    (``SweepLockedError``). Ctrl-C raises ``SweepInterrupted`` (how many seeds are kept).
    """
    config = BenchmarkConfig() if config is None else config
    if not isinstance(config, BenchmarkConfig):
        raise TypeError(f"config must be a BenchmarkConfig, got {type(config).__name__}")
    seeds = list(dict.fromkeys(_seed(s) for s in seeds))
    if not seeds:
        raise ValueError("seeds must be a nonempty list of nonnegative integers, got []")
    workers = positive_int(workers, "workers")
    backend = check_backend(backend)
    if numba_threads is None:
        numba_threads = max(1, (os.cpu_count() or 1) // workers)
    numba_threads = positive_int(numba_threads, "numba_threads")
    _check_ground_truth_covers(config, seeds)
    run = (workers, backend, numba_threads, progress, figure)
    if out is None:
        return _sweep(seeds, config, None, {}, *run)
    directory = Path(out)
    _create_directory(directory)
    with _locked(directory):
        _prepare_directory(directory, config, force_resume)
        _drop_cut_line(directory / RESULTS_FILE)
        return _sweep(seeds, config, directory, read_results(directory), *run)


def _sweep(seeds, config, directory, done, workers, backend, numba_threads, progress, figure):
    """The seeds not in ``done``, appended to ``directory`` as they finish (run_benchmark)."""
    todo = [s for s in seeds if s not in done]
    skipped = tuple(s for s in seeds if s in done)
    records = dict(done)
    start = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(seeds), initial=len(skipped), desc="seeds", unit="seed")
    ran = []
    jobs = [(seed, config, numba_threads) for seed in todo]
    try:
        with parallel_map(_seed_job, jobs, workers, backend, ordered=False) as results:
            for record in results:
                if directory is not None:
                    _append(directory / RESULTS_FILE, record)
                records[record["seed"]] = record
                ran.append(record["seed"])
                if bar is not None:
                    bar.set_postfix_str(_postfix(record))
                    bar.update(1)
    except BaseException as error:
        if not _interrupted(error):
            raise
        path = None if directory is None else directory / RESULTS_FILE
        # the file is the truth: a Ctrl-C during _append's fsync keeps a line not yet counted
        kept_records = records if path is None else read_results(path)
        kept = sum(seed in kept_records for seed in seeds)
        raise SweepInterrupted(kept, len(seeds), path) from None
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - start
    selected = {s: records[s] for s in seeds}
    summary = summarize(selected, config.methods)
    figure_path = None
    if directory is not None:
        text = format_table(summary) + "\n" + format_references(selected) + "\n"
        (directory / "table.txt").write_text(text)
        if figure:
            figure_path = directory / "fig2.png"
            histogram_figure(selected, config.methods, size=config.size).savefig(
                figure_path, dpi=120
            )
    return BenchmarkResults(
        config=config,
        records=selected,
        summary=summary,
        ran=tuple(ran),
        skipped=skipped,
        seconds=elapsed,
        directory=directory,
        figure=figure_path,
    )


def _postfix(record: dict) -> str:
    """The progress bar's text: each method's MMD of the seed just finished."""
    return " ".join(
        f"{name}={entry['mmd']:.3f}" if entry["mmd"] is not None else f"{name}=div"
        for name, entry in record["methods"].items()
    )
