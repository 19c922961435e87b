"""Sizes that cannot fit in memory, refused before anything is allocated.

An estimate of the bytes a computation needs (from its sizes) is held against the memory
the machine has available now: ``MemAvailable`` of /proc/meminfo (Linux), else the free
physical pages that ``os.sysconf`` reports, else no check (the estimate cannot be judged).
A size above it raises ``InsufficientMemoryError`` (a ``ValueError``, so that the command
lines answer with one ``error:`` line, and a ``MemoryError``) stating the estimate, instead
of an allocation that fails later, swaps the machine or is killed.
"""

from __future__ import annotations

import os
import resource

MEMINFO = "/proc/meminfo"
PROCESS_STATUS = "/proc/self/status"


class InsufficientMemoryError(ValueError, MemoryError):
    """A computation's estimated memory exceeds the memory available."""


def _kibibytes_field(path: str, key: str) -> int | None:
    """The bytes of a "key: value kB" line of a /proc file, or None when it cannot be read."""
    try:
        with open(path, encoding="ascii") as lines:
            for line in lines:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def available_memory() -> int | None:
    """The bytes of memory available to a new allocation now, or None when unknown."""
    available = _kibibytes_field(MEMINFO, "MemAvailable")
    if available is not None:
        return available
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def peak_resident_memory() -> int:
    """The peak resident memory of this process in bytes: VmHWM of /proc/self/status
    (Linux), else ru_maxrss. VmHWM first, because Linux keeps ru_maxrss across exec: a
    spawned worker would report its parent's peak when that is larger."""
    peak = _kibibytes_field(PROCESS_STATUS, "VmHWM")
    if peak is not None:
        return peak
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def format_bytes(count: float) -> str:
    """1.5 GiB, 12 TiB, ...: a byte count for a message."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if count < 1024 or unit == "PiB":
            return f"{count:.3g} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def check_memory(estimate: float, what: str, hint: str = "", available: int | None = None):
    """Refuse ``what`` (InsufficientMemoryError) when its ``estimate`` in bytes exceeds the
    ``available`` memory (default: ``available_memory()``); ``hint`` says what to change."""
    available = available_memory() if available is None else available
    if available is None or estimate <= available:
        return
    raise InsufficientMemoryError(
        f"{what} needs about {format_bytes(estimate)} of memory, more than the "
        f"{format_bytes(available)} available" + (f": {hint}" if hint else "")
    )
