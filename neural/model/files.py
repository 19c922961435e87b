"""Network map files: an ICNN map, its target and its training record in a .npz file.

The file is a ``gridflow.archives`` archive (numpy alone reads it; no pickle): the arrays
``params`` (θ), ``center`` (c) and ``offset`` (m), float64 and stored exactly, and the JSON
record

    {"format": "neural.NetworkMap", "format_version": 1,
     "architecture": {"dim", "hidden", "quadratic", "strong_convexity"},
     "target": the target's spec (``LogConcaveTarget.from_spec`` rebuilds it),
     "training": how the map was made (free JSON)}.

A loaded map evaluates bit for bit as the saved one: θ and the architecture are the same,
and so are the kernels.
"""

from __future__ import annotations

import numpy as np

from gridflow.archives import (
    ARCHIVE_SUFFIX,
    json_metadata,
    numeric_array,
    read_archive,
    read_record,
    write_archive,
)
from gridflow.checks import as_path, output_file
from gridflow.measures import LogConcaveTarget
from neural.network.icnn import ICNN

__all__ = ["FORMAT", "FORMAT_VERSION", "NetworkFileError", "read_network_map", "write_network_map"]

FORMAT = "neural.NetworkMap"
FORMAT_VERSION = 1
_KIND = "a network map file written by NetworkMap.save"
_ARCHITECTURE_FIELDS = ("dim", "hidden", "quadratic", "strong_convexity")


class NetworkFileError(ValueError):
    """``neural.load`` cannot read the file as a network map; the message names the file and
    why."""


def write_network_map(
    path,
    network: ICNN,
    target: LogConcaveTarget,
    training: dict,
    center: np.ndarray,
    offset: np.ndarray,
) -> None:
    """Write φ_θ, γ, the training record, the center and the offset to ``path`` (.npz,
    written whole or not at all).

    Raises ValueError for a target without a spec (given by Python functions: it cannot be
    rebuilt from a file), a path not ending in .npz or in a folder that cannot be written,
    and a training record JSON cannot hold (TypeError for non-JSON values).
    """
    path = output_file(path, "path", ARCHIVE_SUFFIX)
    if target.spec is None:
        raise ValueError(
            f"the target {target.name!r} is given by Python functions and cannot be rebuilt "
            "from a file; save maps to a built-in target (LogConcaveTarget.gaussian, "
            "standard_gaussian, logcosh, gaussian_logcosh, quartic)"
        )
    architecture = network.architecture
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": {
            "dim": architecture.dim,
            "hidden": list(architecture.hidden),
            "quadratic": architecture.quadratic,
            "strong_convexity": architecture.strong_convexity,
        },
        "target": target.spec,
        "training": json_metadata(training, (), "NetworkMap.save"),
    }
    arrays = {"params": np.array(network.params), "center": np.array(center)}
    write_archive(path, arrays | {"offset": np.array(offset)}, record)


def read_network_map(path) -> tuple[ICNN, LogConcaveTarget, dict, np.ndarray, np.ndarray]:
    """(φ_θ, γ, training record, center, offset) from a file written by
    ``write_network_map``.

    Raises
    ------
    TypeError
        If `path` is not a file name.
    NetworkFileError
        If the file is missing, not a .npz archive, another kind of archive (a gridflow map
        file, say), of another format version, or damaged: an architecture, θ or target
        that does not rebuild.
    """
    path = as_path(path, "path")
    arrays = read_archive(path, ("params", "center", "offset"), NetworkFileError, _KIND)
    record = read_record(path, arrays, FORMAT_VERSION, NetworkFileError, "this neural")
    if record.get("format") != FORMAT:
        raise NetworkFileError(
            f"{path} is not {_KIND} (its format is {record.get('format')!r}, not {FORMAT!r})"
        )
    params = numeric_array(path, arrays, "params", 1, NetworkFileError)
    center = numeric_array(path, arrays, "center", 1, NetworkFileError)
    offset = numeric_array(path, arrays, "offset", 1, NetworkFileError)
    architecture = record.get("architecture")
    if not isinstance(architecture, dict) or set(architecture) != set(_ARCHITECTURE_FIELDS):
        raise NetworkFileError(
            f"{path}: the architecture must be a record of {list(_ARCHITECTURE_FIELDS)}, got "
            f"{architecture!r}"
        )
    try:
        network = ICNN(
            architecture["dim"],
            architecture["hidden"],
            params=params,
            quadratic=architecture["quadratic"],
            strong_convexity=architecture["strong_convexity"],
        )
    except (TypeError, ValueError) as error:
        raise NetworkFileError(f"{path}: the network does not rebuild: {error}") from None
    try:
        target = LogConcaveTarget.from_spec(record.get("target"))
    except ValueError as error:
        raise NetworkFileError(f"{path}: the target does not rebuild: {error}") from None
    training = record.get("training")
    if not isinstance(training, dict):
        raise NetworkFileError(f"{path}: the training record must be a JSON object")
    for name, value in (("center", center), ("offset", offset)):
        if value.shape != (network.dim,):
            raise NetworkFileError(
                f"{path}: {name} has shape {value.shape}, the network's dimension is {network.dim}"
            )
    return network, target, training, center, offset
