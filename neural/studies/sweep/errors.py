"""The sweep's errors: refused before any seed ran, a locked output folder, Ctrl-C."""

from __future__ import annotations

from pathlib import Path

__all__ = ["SweepInterrupted", "SweepLockedError", "SweepSetupError"]


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
