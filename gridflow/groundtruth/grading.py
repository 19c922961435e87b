"""How far a ground truth can grade a map: a distance to T* means something only when it is
several times the ground truth's own error.

A map file records its two-grid error estimate (``error_estimate``) and, when it was
written with ``--force``, why it cannot grade anything (``warnings``). Whoever grades a map
against it refuses the second kind and marks distances below RESOLUTION_FACTOR times the
first: such a distance measures T*'s error as much as the map's.
"""

from __future__ import annotations

import math

__all__ = ["RESOLUTION_FACTOR", "check_usable", "resolved", "truth_error"]

RESOLUTION_FACTOR = 3.0
"""A distance to T* is resolved when it is at least this many times T*'s own error."""


def check_usable(metadata: dict, path) -> None:
    """ValueError when the map file at ``path`` was written with ``--force`` past a refusal
    (its metadata's ``warnings``): it cannot grade a map."""
    warnings = metadata.get("warnings")
    if warnings:
        raise ValueError(
            f"ground truth {path} was written with --force and cannot grade a map: {warnings[0]}"
        )


def truth_error(true_map) -> float:
    """T*'s own error in L²(ϱ0): a ground-truth file's estimate, 0 for an exact map (an
    ``AffineMap`` or any map without metadata), NaN for a file that records none."""
    metadata = getattr(true_map, "metadata", None)
    if metadata is None:
        return 0.0
    value = metadata.get("error_estimate")
    return float(value) if value is not None else math.nan


def resolved(distance: float, error: float) -> bool:
    """Whether a distance to T* is at least RESOLUTION_FACTOR times T*'s error (a NaN
    error, unknown, resolves nothing; a NaN distance, a failed run, is not marked)."""
    if math.isnan(distance):
        return True
    return distance >= RESOLUTION_FACTOR * error
