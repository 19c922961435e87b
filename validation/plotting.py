"""Matplotlib without a display, and one way to save the report's figures."""

from __future__ import annotations

import contextlib
import pathlib


@contextlib.contextmanager
def pyplot():
    """pyplot on the Agg backend; figures left open are closed on exit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        yield plt
    finally:
        plt.close("all")


def figure_file(figure, outdir: pathlib.Path, name: str) -> str:
    """Save `figure` as outdir/name (PNG) and return the name."""
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(outdir / name, dpi=110)
    return name
