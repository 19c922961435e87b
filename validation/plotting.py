"""Matplotlib without a display, and one way to save the report's figures.

Every figure goes through `figure_file`, which refuses (ValueError) a figure that breaks
the report's rules, checked by `figure_problems`: each axes has an x and a y label, each
drawn line has an entry in its axes' legend, and no two tick labels of an axis overlap.
Each figure carries a caption, which the report prints under it.
"""

from __future__ import annotations

import contextlib
import itertools
import pathlib

import numpy as np


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


def readable_log_ticks(axis, which: str = "both", max_decades: float = 3.0) -> None:
    """On log axes spanning fewer than `max_decades` decades, label 1, 2, 5 × 10^k only.

    matplotlib labels minor ticks of short log ranges (e.g. 3×10⁻², 4×10⁻²), and those
    labels collide; longer ranges keep matplotlib's decade labels.
    """
    from matplotlib import ticker

    for name in ("x", "y") if which == "both" else (which,):
        scale_axis = axis.xaxis if name == "x" else axis.yaxis
        low, high = sorted(axis.get_xlim() if name == "x" else axis.get_ylim())
        if scale_axis.get_scale() != "log" or low <= 0 or np.log10(high / low) >= max_decades:
            continue
        scale_axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        scale_axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        scale_axis.set_minor_formatter(ticker.NullFormatter())


def figure_problems(figure) -> list[str]:
    """What breaks the report's rules in `figure` (empty when none): missing axis labels,
    lines without a legend entry, overlapping tick labels (after drawing)."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    problems = []
    for index, axis in enumerate(figure.axes):
        where = f"axes {index} ({axis.get_title() or 'untitled'})"
        for name, label in (("x", axis.get_xlabel()), ("y", axis.get_ylabel())):
            if not label.strip():
                problems.append(f"{where}: no {name} label")
        legend = axis.get_legend()
        entries = {text.get_text() for text in legend.get_texts()} if legend else set()
        for line in axis.get_lines():
            if line.get_label().startswith("_") or line.get_label() not in entries:
                problems.append(f"{where}: a line ({line.get_label()!r}) has no legend entry")
        frame = axis.get_window_extent(renderer)
        for name in ("x", "y"):
            labels = getattr(axis, f"get_{name}ticklabels")(which="both")
            boxes = [
                box
                for box in (label.get_window_extent(renderer) for label in labels if _drawn(label))
                if _within(box, frame, name)
            ]
            for first, second in itertools.combinations(boxes, 2):
                if first.overlaps(second):
                    problems.append(f"{where}: {name} tick labels overlap")
                    break
    return problems


def _drawn(label) -> bool:
    return label.get_visible() and bool(label.get_text())


def _within(box, frame, name: str) -> bool:
    """Whether a tick label's center lies along the axes' extent (ticks outside the view
    limits keep labels that are not drawn)."""
    if name == "x":
        return frame.x0 - 1 <= 0.5 * (box.x0 + box.x1) <= frame.x1 + 1
    return frame.y0 - 1 <= 0.5 * (box.y0 + box.y1) <= frame.y1 + 1


def figure_file(figure, outdir: pathlib.Path, name: str, caption: str) -> dict:
    """Save `figure` as outdir/name (PNG); return its report record.

    The record {"figures": [name], "captions": {name: caption}} goes into a check's
    details (merge several with `figure_records`). Raises ValueError when
    `figure_problems` finds anything, or the caption is empty.
    """
    if not caption.strip():
        raise ValueError(f"figure {name}: give it a caption")
    figure.tight_layout()
    problems = figure_problems(figure)
    if problems:
        raise ValueError(f"figure {name} breaks the report's rules: " + "; ".join(problems))
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    figure.savefig(outdir / name, dpi=110)
    return {"figures": [name], "captions": {name: caption}}


def convergence_figure(spacings, errors, title: str, outdir, name: str, caption: str) -> dict:
    """Log-log plot of a discrete map's L²(ϱ0) error against the grid spacing, with a
    slope-2 guide, saved by `figure_file` (whose record it returns)."""
    spacings, errors = np.asarray(spacings, float), np.asarray(errors, float)
    label = r"$\|T_h^* - T^*\|_{L^2(\varrho_0)}$"
    with pyplot() as plt:
        figure, axis = plt.subplots(figsize=(5.5, 4))
        axis.loglog(spacings, errors, "o-", label=label)
        guide = errors[0] * (spacings / spacings[0]) ** 2
        axis.loglog(spacings, guide, ":", label=r"slope 2: $\propto h^2$")
        axis.set(xlabel="grid spacing $h$", ylabel=label, title=title)
        axis.legend()
        readable_log_ticks(axis)
        return figure_file(figure, outdir, name, caption)


GUIDE_OFFSET = 10.0
"""A slope guide is drawn this factor below the fitted curve: on it, it would be hidden."""


def slope_guide(axis, times, fit, rate: float, label: str):
    """Draw and return a dotted line decaying like exp(−rate t) on a semilog `axis`.

    It runs over all of `times`, GUIDE_OFFSET below the fitted line exp(intercept − fit.rate t)
    at the start of the fit window (`fit`, a ``gridflow.rates.RateFit``): parallel to a curve
    that decays at `rate`, and visibly flatter or steeper than one that does not.
    """
    times = np.asarray(times, dtype=np.float64)
    anchor = np.exp(fit.intercept - fit.rate * fit.time_start) / GUIDE_OFFSET
    values = anchor * np.exp(-rate * (times - fit.time_start))
    (line,) = axis.semilogy(times, values, ":", color="k", lw=1.6, label=label)
    return line


def figure_records(*records: dict) -> dict:
    """Several `figure_file` records as one, figures in order."""
    return {
        "figures": [name for record in records for name in record["figures"]],
        "captions": {k: v for record in records for k, v in record["captions"].items()},
    }
