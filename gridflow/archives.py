"""Versioned .npz archives: written whole or not at all, read eagerly and without pickles.

Every file format of the two packages (the grid solver's map files, the neural solver's
network maps) is a .npz archive of plain numeric arrays and one JSON record, a 0-d string
array named ``metadata`` holding a ``format_version``. The functions here write such an
archive under a temporary name and rename it into place, and read one back refusing, with
the format's own error class and a message naming the file, anything that is not one:
a missing file, a foreign or damaged archive, a missing array, a record of another version,
non-finite numbers.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import tempfile

import numpy as np

from gridflow.checks import unreadable

__all__ = [
    "ARCHIVE_SUFFIX",
    "json_metadata",
    "numeric_array",
    "read_archive",
    "read_record",
    "write_archive",
]

ARCHIVE_SUFFIX = ".npz"


def write_archive(path: pathlib.Path, arrays: dict, record: dict) -> None:
    """Write ``arrays`` and the JSON ``record`` (as the array ``metadata``) to ``path``,
    under a temporary name in the same folder renamed into place, so that the file is never
    left half written. ``record`` must hold JSON values only (`json_metadata`)."""
    arrays = dict(arrays, metadata=np.array(json.dumps(record, allow_nan=False)))
    with tempfile.NamedTemporaryFile(
        dir=path.parent, suffix=ARCHIVE_SUFFIX, delete=False
    ) as handle:
        temporary = pathlib.Path(handle.name)
        try:
            np.savez(handle, **arrays)
        except BaseException:
            handle.close()
            temporary.unlink()
            raise
    os.replace(temporary, path)


def json_metadata(metadata, reserved: tuple[str, ...], writer: str) -> dict:
    """``metadata`` as a dict of JSON values, refusing the ``reserved`` keys (which
    ``writer`` writes itself).

    numpy scalars become the Python number, bool or str they hold, numpy arrays and tuples
    lists; NaN and infinity are refused (ValueError), as is anything else JSON cannot hold
    (TypeError).
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    clashes = sorted(key for key in metadata if key in reserved)
    if clashes:
        raise ValueError(
            f"metadata keys {clashes} are written by {writer} itself (reserved: "
            f"{sorted(reserved)}); give these entries other names"
        )
    return _json_value(metadata, "metadata")


def _json_value(value, where: str):
    """``value`` as a JSON value (see `json_metadata`), refused naming ``where``."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufU":
            raise TypeError(f"{where} is a numpy array of dtype {value.dtype}, not JSON")
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value}: JSON has no NaN or infinity; store e.g. None")
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"{where} has the key {key!r}: JSON keys must be strings")
        return {key: _json_value(item, f"{where}[{key!r}]") for key, item in value.items()}
    raise TypeError(
        f"{where} has type {type(value).__name__}, which JSON cannot hold; convert it to a "
        f"str, number, bool, None, list or dict"
    )


def read_archive(path: pathlib.Path, names: tuple[str, ...], error: type, kind: str) -> dict:
    """The arrays ``names`` (and ``metadata``) of the .npz archive at ``path``, read eagerly
    and without pickles; anything else raises ``error`` naming the file and ``kind`` (what
    the file should be, e.g. "a map file written by gridflow.save_map")."""
    problem = unreadable(path)
    if problem:
        suggestion = path.with_name(path.name + ARCHIVE_SUFFIX)
        hint = f"; did you mean {str(suggestion)!r}?" if suggestion.is_file() else ""
        raise error(f"{path}: the file {problem}{hint}")
    names = (*names, "metadata")
    try:
        handle = open(path, "rb")  # numpy leaves its own handle open on damaged zips
    except OSError as caught:
        raise error(f"{path}: the file cannot be read ({caught.strerror})") from None
    with handle:
        try:
            data = np.load(handle, allow_pickle=False)
        except Exception as caught:  # anything numpy's readers raise on foreign or damaged bytes
            reason = "not a zip archive" if "pickle" in str(caught) else type(caught).__name__
            raise error(f"{path} is not {kind} ({reason})") from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise error(f"{path} holds a single numpy array (.npy format), not {kind} (.npz)")
        with data:
            missing = sorted(set(names) - set(data.files))
            if missing:
                raise error(
                    f"{path} is not {kind}: it lacks the arrays {missing} "
                    f"(has {sorted(data.files)})"
                )
            try:
                return {name: data[name] for name in names}
            except Exception as caught:  # truncated or corrupted members fail when read
                raise error(
                    f"{path} is damaged (truncated or corrupted): reading it failed with "
                    f"{type(caught).__name__}"
                ) from None


def read_record(path: pathlib.Path, arrays: dict, version: int, error: type, reader: str) -> dict:
    """The JSON record ``arrays['metadata']`` (a 0-d string array), whose ``format_version``
    must be ``version`` (the one ``reader`` reads), else ``error``."""
    value = arrays["metadata"]
    if value.ndim != 0 or value.dtype.kind != "U":
        raise error(f"{path}: metadata must be a JSON string, got {value.dtype} array")
    try:
        record = json.loads(str(value))
    except ValueError:
        raise error(f"{path}: metadata is not valid JSON") from None
    if not isinstance(record, dict):
        raise error(f"{path}: metadata must be a JSON object")
    key = "format_version"
    if record.get(key) != version:
        raise error(
            f"{path} has format version {record.get(key)!r}, {reader} reads version {version}"
        )
    return record


def numeric_array(
    path, arrays: dict, name: str, ndim: int, error: type, integer: bool = False
) -> np.ndarray:
    """arrays[name] as finite float64 (or int64) with ``ndim`` axes, else ``error``."""
    value = arrays[name]
    kinds = "iu" if integer else "fiu"
    if value.dtype.kind not in kinds or value.ndim != ndim:
        wanted = "integers" if integer else "real numbers"
        raise error(
            f"{path}: {name} must be an array of {wanted} with {ndim} axes, got "
            f"{value.dtype} with shape {value.shape}"
        )
    if integer:
        return value.astype(np.int64)
    value = value.astype(np.float64)
    if not np.all(np.isfinite(value)):
        raise error(f"{path}: {name} holds NaN or infinite values (a damaged file)")
    return value
