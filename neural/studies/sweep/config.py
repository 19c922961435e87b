"""What a Fig. 2 sweep runs: the size presets, the methods' configurations and the ground truth.

The paper's settings (§3.4.2 (iii)): ICNN with two hidden layers of 20, the four methods
with the hyperparameters of ``neural.training``, n_eval = 10 000 evaluation samples per
side; ``SIZES`` scales the step counts down for quicker runs. A ground-truth map T* of the
sweep's problem (``gridflow.load_map``) is checked here before any training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from gridflow import MapFileError, load_map
from gridflow.groundtruth import (
    check_usable,
    read_source,
    read_target,
    same_law,
    source_from_spec,
    target_from_spec,
    truth_error,
)
from gridflow.memory import check_memory
from neural.network import ICNNArchitecture
from neural.network.initialization import INITS
from neural.studies.sweep.errors import SweepSetupError
from neural.training import METHODS
from neural.training.gradients import check_kl_reduction
from neural.training.kl import check_eval_size
from neural.training.methods import STARTS, EuclideanAdam, EuclideanGD, MethodConfig

__all__ = [
    "GROUND_TRUTH_SOURCE",
    "GROUND_TRUTH_TARGET",
    "SIZES",
    "BenchmarkConfig",
    "check_covers",
    "check_ground_truth",
    "method_configs",
]

SIZES: dict[str, dict] = {
    # the paper's settings (§3.4.2 (iii))
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

GROUND_TRUTH_SOURCE = "paper-mixture"
GROUND_TRUTH_TARGET = "standard"
"""The source and target of the Fig. 2 sweep (``gridflow.groundtruth.SOURCE_NAMES``,
``TARGET_NAMES``): a ground-truth file must record this problem in its metadata (as written
by ``python -m gridflow groundtruth --source paper-mixture``)."""


def _recorded(value) -> str:
    """A law recorded in a map file, for messages: its name, or its specification's kind."""
    return repr(value) if isinstance(value, str) else repr(value.get("kind", value))


def check_ground_truth(path):
    """The map in ``path`` (``gridflow.load_map``) if it is one of the Fig. 2 problem.

    Refuses (ValueError naming the file and what differs) a file that is missing or damaged
    (``gridflow.MapFileError``), of another dimension than 2, or whose metadata do not
    record the sweep's source and target (``GROUND_TRUTH_SOURCE``, ``GROUND_TRUTH_TARGET``;
    the file's problem is rebuilt from its metadata and compared to the last bit): a map of
    another problem would give meaningless map errors. Whether its box covers the evaluation
    samples depends on the seeds (``run_benchmark`` checks it before training).
    """
    try:
        true_map = load_map(path)
    except MapFileError as error:
        raise MapFileError(f"ground truth: {error}") from None
    fix = f"build it with: python -m gridflow groundtruth --source {GROUND_TRUTH_SOURCE}"
    check_usable(true_map.metadata, path)
    if true_map.grid.dim != 2:
        raise ValueError(
            f"ground truth {path}: a map in dimension {true_map.grid.dim}, the sweep is in "
            f"dimension 2; {fix}"
        )
    wanted = {
        "source": read_source(GROUND_TRUTH_SOURCE),
        "target": read_target(GROUND_TRUTH_TARGET, 2),
    }
    for key, law in wanted.items():
        recorded = true_map.metadata.get(key)
        if recorded is None:
            raise ValueError(f"ground truth {path} records no {key}; {fix}")
        try:
            rebuilt = (source_from_spec(recorded) if key == "source"
                       else target_from_spec(recorded, 2))  # fmt: skip
        except (ValueError, TypeError, KeyError):
            rebuilt = None
        if rebuilt is None or not same_law(rebuilt, law):
            raise ValueError(
                f"ground truth {path} is a map with {key} {_recorded(recorded)}, the sweep's "
                f"{key} is {GROUND_TRUTH_SOURCE if key == 'source' else 'N(0, I)'!r}; {fix}"
            )
    return true_map


def check_covers(true_map, path, x_eval: np.ndarray, seed: int) -> None:
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


EVALUATION_DIM = 2
"""The dimension of the sweep's problem (the paper's mixture → N(0, I₂))."""


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
        object.__setattr__(self, "n_eval", check_eval_size(self.n_eval))
        if self.ground_truth is not None:
            object.__setattr__(self, "ground_truth", str(self.ground_truth))
            check_ground_truth(self.ground_truth)
        check_memory(
            self.evaluation_bytes(),
            f"the evaluation of a seed on n_eval = {self.n_eval} samples per side",
            "choose a smaller n_eval",
        )

    def evaluation_bytes(self) -> float:
        """An estimate of the memory a seed's evaluation takes, from its sizes: the three
        samples of ``seed.eval_samples`` and the maps of x_eval (θ0, the identity, one per
        method), n_eval × d each, and the ICNN's passes over x_eval (about four arrays of
        n_eval × width per hidden layer, each with its d derivatives), in float64."""
        dim = EVALUATION_DIM
        per_sample = dim * (3 + 2 + len(self.methods)) + 4 * sum(self.hidden) * (1 + dim)
        return 8.0 * self.n_eval * per_sample

    def truth_error(self) -> float:
        """The ground truth's own estimated error in L²(ϱ0) (0 without a ground truth)."""
        return 0.0 if self.ground_truth is None else truth_error(load_map(self.ground_truth))

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
