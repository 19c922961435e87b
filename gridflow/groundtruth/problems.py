"""The problem a ground truth solves, written so that a reader can rebuild it.

A source or a target comes from a built-in name, a file, or an object of the shared
vocabulary (``gridflow.measures``); a map file records both as *specifications*: JSON-able
dicts from which ``source_from_spec`` and ``target_from_spec`` rebuild the same laws, so
that whoever grades a map against the file (``neural``'s studies) takes the problem from
the file instead of being told it again.

Files a user writes:

- a Gaussian mixture source, JSON: ``{"means": [[...], ...], "covs": [[[...]]], "weights": [...]}``
- a Gaussian target, JSON: ``{"mean": [...], "cov": [[...]]}``, or any built-in target as
  its specification (``LogConcaveTarget.spec``), e.g. ``{"kind": "gaussian_logcosh",
  "mean": [...], "cov": [[...]], "weight": 1.0}``
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from gridflow import examples
from gridflow.checks import unreadable
from gridflow.measures import (
    Gaussian,
    GaussianMixture,
    GridDensity,
    LogConcaveTarget,
    as_target,
)
from gridflow.measures.grid_density import SPEC_KIND as GRID_DENSITY_KIND

__all__ = [
    "SOURCE_NAMES",
    "TARGET_NAMES",
    "problem_of",
    "read_source",
    "read_target",
    "same_law",
    "source_from_spec",
    "source_spec",
    "target_from_spec",
    "target_spec",
]

SOURCE_NAMES = {"paper-mixture": examples.paper_mixture, "gaussian": examples.gaussian_source_2d}
"""Built-in sources: the paper's 4-mode mixture, and the 2D Gaussian of the README's tour."""

TARGET_NAMES = {"standard": LogConcaveTarget.standard_gaussian, "logcosh": LogConcaveTarget.logcosh}
"""Built-in targets, each a function of the dimension: 'standard' is N(0, I); 'logcosh' is
γ ∝ exp(−½‖y‖² − Σ log cosh y_i), non-Gaussian with λ = 1."""

_LEGACY = {"N(0, I)": "standard"}
"""Target names recorded by map files of version 0.1 (their sources are built-in names)."""


def _distinct_keys(pairs) -> dict:
    """A JSON object whose keys are distinct (json keeps the last of a repeated key)."""
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"the keys {repeated} appear more than once")
    return dict(pairs)


def _read_json(path: pathlib.Path, what: str, keys: tuple[str, ...], exact: bool = False) -> dict:
    problem = unreadable(path)
    if problem:
        raise ValueError(f"{what} file {str(path)!r} {problem}")
    try:
        record = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_distinct_keys)
    except OSError as error:
        raise ValueError(f"{what} file {str(path)!r}: {error.strerror or error}") from None
    except ValueError as error:
        raise ValueError(f"{what} file {str(path)!r} is not valid JSON: {error}") from None
    if not isinstance(record, dict):
        raise ValueError(f"{what} file {str(path)!r} must hold a JSON object with keys {keys}")
    missing = [key for key in keys if key not in record]
    if missing:
        raise ValueError(
            f"{what} file {str(path)!r} lacks the keys {missing}; it must hold {list(keys)}"
        )
    unknown = sorted(set(record) - set(keys)) if exact else []
    if unknown:
        raise ValueError(
            f"{what} file {str(path)!r} has unknown keys {unknown}; it holds exactly "
            f"{list(keys)} (a misspelled key would be ignored otherwise)"
        )
    return record


def _law(build, path, what: str, *arguments):
    """``build(*arguments)``, its ValueError/TypeError naming the file."""
    try:
        return build(*arguments)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{what} file {str(path)!r}: {error}") from None


def read_source(source, box=None):
    """The source named by ``source``: a built-in name (``SOURCE_NAMES``), a Gaussian
    mixture's JSON file, a density on a grid (.npy with ``box``, or .npz holding ``density``
    and optionally ``box``: ``GridDensity.from_file``), or an object of ``gridflow.measures``
    (returned as it is)."""
    if not isinstance(source, (str, pathlib.Path)):
        return source
    if str(source) in SOURCE_NAMES:
        return SOURCE_NAMES[str(source)]()
    path = pathlib.Path(source)
    if path.suffix.lower() == ".json":
        record = _read_json(path, "source", ("means", "covs", "weights"), exact=True)
        fields = (record["means"], record["covs"], record["weights"])
        return _law(GaussianMixture, path, "source", *fields)
    if path.suffix.lower() in (".npy", ".npz"):
        return GridDensity.from_file(path, box)
    raise ValueError(
        f"source must be one of {sorted(SOURCE_NAMES)}, a mixture file ending in .json or a "
        f"density file ending in .npy or .npz, got {str(source)!r}"
    )


def read_target(target, dim: int) -> LogConcaveTarget:
    """The target named by ``target`` in dimension ``dim``: a built-in name
    (``TARGET_NAMES``), a Gaussian's JSON file, or a target or Gaussian object."""
    if not isinstance(target, (str, pathlib.Path)):
        target = as_target(target)
    elif str(target) in TARGET_NAMES:
        target = TARGET_NAMES[str(target)](dim)
    elif pathlib.Path(target).suffix.lower() == ".json":
        path = pathlib.Path(target)
        record = _read_json(path, "target", ())
        if "kind" in record:  # any built-in target, as its specification
            target = _law(LogConcaveTarget.from_spec, path, "target", record)
        else:
            record = _read_json(path, "target", ("mean", "cov"), exact=True)
            target = _law(LogConcaveTarget.gaussian, path, "target", record["mean"], record["cov"])
    else:
        raise ValueError(
            f"target must be one of {sorted(TARGET_NAMES)} or a Gaussian file ending in .json, "
            f"got {str(target)!r}"
        )
    if target.dim != dim:
        raise ValueError(f"the target has dimension {target.dim}, the source {dim}")
    return target


def source_spec(source) -> dict:
    """The JSON-able specification of a source, from which ``source_from_spec`` rebuilds it;
    ``{"kind": "unrecorded", ...}`` for a source given as a Python function."""
    if isinstance(source, Gaussian):
        return {"kind": "gaussian", "mean": source.mean.tolist(), "cov": source.cov.tolist()}
    if isinstance(source, GaussianMixture):
        return {
            "kind": "gaussian-mixture",
            "means": source.means.tolist(),
            "covs": source.covs.tolist(),
            "weights": source.weights.tolist(),
        }
    if isinstance(source, GridDensity):
        return {**source.spec, "values": source.values.tolist()}
    return {"kind": "unrecorded", "type": type(source).__name__, "dim": int(source.dim)}


def target_spec(target) -> dict:
    """The JSON-able specification of a target (``LogConcaveTarget.spec``), or
    ``{"kind": "unrecorded", ...}`` for one given by Python functions."""
    target = as_target(target)
    if target.spec is not None:
        return dict(target.spec)
    return {"kind": "unrecorded", "name": target.name, "dim": target.dim}


def source_from_spec(spec):
    """The source that ``source_spec`` (or a built-in name of version 0.1 files) describes."""
    if isinstance(spec, str):
        if spec in SOURCE_NAMES:
            return SOURCE_NAMES[spec]()
        raise ValueError(f"unknown source name {spec!r}; known: {sorted(SOURCE_NAMES)}")
    kind = spec.get("kind") if isinstance(spec, dict) else None
    if kind == "gaussian":
        return Gaussian(spec["mean"], spec["cov"])
    if kind == "gaussian-mixture":
        return GaussianMixture(spec["means"], spec["covs"], spec["weights"])
    if kind == GRID_DENSITY_KIND:
        return GridDensity.from_spec(spec, np.asarray(spec["values"], dtype=np.float64))
    if kind == "unrecorded":
        raise ValueError(
            f"the source ({spec.get('type')}) was given as Python code and is not recorded; "
            f"rebuild it and pass it explicitly"
        )
    raise ValueError(f"unknown source specification {spec!r}")


def target_from_spec(spec, dim: int) -> LogConcaveTarget:
    """The target that ``target_spec`` (or a target name of version 0.1 files) describes."""
    if isinstance(spec, str):
        name = _LEGACY.get(spec, spec)
        if name in TARGET_NAMES:
            return TARGET_NAMES[name](dim)
        raise ValueError(f"unknown target name {spec!r}; known: {sorted(TARGET_NAMES)}")
    if isinstance(spec, dict) and spec.get("kind") == "unrecorded":
        raise ValueError(
            f"the target ({spec.get('name')}) was given as Python code and is not recorded; "
            f"rebuild it and pass it explicitly"
        )
    target = LogConcaveTarget.from_spec(spec)
    if target.dim != dim:
        raise ValueError(f"the target's specification is in d = {target.dim}, not d = {dim}")
    return target


def problem_of(metadata: dict, dim: int):
    """(source, target) recorded in a map file's metadata (``load_map(path).metadata``)."""
    for key in ("source", "target"):
        if key not in metadata:
            raise ValueError(
                f"the map file records no {key}: it cannot say which problem it solves"
            )
    source, target = source_from_spec(metadata["source"]), target_from_spec(metadata["target"], dim)
    if source.dim != dim or target.dim != dim:
        raise ValueError(
            f"the map file's problem is in d = {source.dim} (its target in d = {target.dim}), "
            f"not d = {dim}"
        )
    return source, target


def same_law(first, second) -> bool:
    """Whether two sources (or targets) have the same specification, to the last bit."""
    spec = source_spec if not isinstance(first, LogConcaveTarget) else target_spec
    return spec(first) == spec(second) and spec(first).get("kind") != "unrecorded"
