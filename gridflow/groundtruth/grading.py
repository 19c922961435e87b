"""How far a ground truth can grade a map: a distance to T* means something only when it is
several times the ground truth's own error.

A map file records its two-grid error estimate (``error_estimate``) and, when it was
written with ``--force``, why it cannot grade anything (``warnings``). Whoever grades a map
against it refuses the second kind and marks distances below RESOLUTION_FACTOR times the
first: such a distance measures T*'s error as much as the map's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gridflow.checks import recorded_number
from gridflow.groundtruth.files import MapFileError, load_map
from gridflow.groundtruth.problems import problem_of
from gridflow.maps import GridMap
from gridflow.measures import LogConcaveTarget

__all__ = [
    "RESOLUTION_FACTOR",
    "GroundTruth",
    "check_usable",
    "read_ground_truth",
    "resolved",
    "truth_error",
]

RESOLUTION_FACTOR = 3.0
"""A distance to T* is resolved when it is at least this many times T*'s own error."""


def check_usable(metadata: dict, path) -> None:
    """ValueError when the map file at ``path`` cannot grade a map: written with ``--force``
    past a refusal (its metadata's ``warnings``), or without a finite error estimate ≥ 0
    (a file edited by hand, or not written by the ground-truth command): every distance to
    it is judged against that estimate."""
    warnings = metadata.get("warnings")
    if warnings:
        first = warnings[0] if isinstance(warnings, list) else warnings
        raise ValueError(
            f"ground truth {path} was written with --force and cannot grade a map: {first}"
        )
    recorded_number(
        metadata, "error_estimate", f"ground truth {path}",
        "grading needs its two-grid error estimate (files of `python -m gridflow groundtruth` "
        "record it)",
    )  # fmt: skip


def truth_error(true_map) -> float:
    """T*'s own error in L²(ϱ0): a ground-truth file's estimate, 0 for an exact map (an
    ``AffineMap`` or any map without metadata), NaN for a file that records none."""
    if not callable(true_map):
        raise TypeError(
            f"true_map must be a map (a GridMap from load_map, or an AffineMap), got "
            f"{type(true_map).__name__}"
        )
    metadata = getattr(true_map, "metadata", None)
    if metadata is None:
        return 0.0
    if metadata.get("error_estimate") is None:
        return math.nan
    return recorded_number(metadata, "error_estimate", "true_map", "its error estimate")


def resolved(distance: float, error: float) -> bool:
    """Whether a distance to T* is at least RESOLUTION_FACTOR times T*'s error (a NaN
    error, unknown, resolves nothing; a NaN distance, a failed run, is not marked)."""
    if math.isnan(distance):
        return True
    return distance >= RESOLUTION_FACTOR * error


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """A ground-truth file read for grading: T*, the problem it solves, its own error."""

    map: GridMap
    source: object
    target: LogConcaveTarget

    @property
    def error(self) -> float:
        """T*'s estimated error in L²(ϱ0) (``truth_error``)."""
        return truth_error(self.map)


def read_ground_truth(path) -> GroundTruth:
    """The ground truth in ``path`` with the problem its metadata record (``problem_of``).

    Refuses, naming the file: a missing or damaged file (``MapFileError``), one written with
    --force past a refusal (``check_usable``) and one that does not record its problem
    (ValueError).
    """
    try:
        true_map = load_map(path)
    except MapFileError as error:
        raise MapFileError(f"ground truth: {error}") from None
    check_usable(true_map.metadata, path)  # its message names the file
    try:
        source, target = problem_of(true_map.metadata, true_map.dim)
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"ground truth {path}: {error}") from None
    return GroundTruth(true_map, source, target)
