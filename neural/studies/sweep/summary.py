"""A sweep's results as a table and as the paper's Fig. 2, next to the paper's numbers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from gridflow.groundtruth import RESOLUTION_FACTOR, resolved
from neural.training import METHODS

__all__ = [
    "LABELS",
    "PAPER_RESULTS",
    "MethodSummary",
    "format_references",
    "format_table",
    "histogram_figure",
    "mmd_values",
    "summarize",
]

PAPER_RESULTS: dict[str, tuple[float, float]] = {
    "implicit": (0.0241, 0.0179),
    "explicit": (0.0194, 0.0098),
    "euclidean": (0.1213, 0.1138),
    "adam": (0.0291, 0.0156),
}
"""MMD mean and std over 100 seeds reported in the paper's Fig. 2."""


@dataclass(frozen=True)
class MethodSummary:
    """MMD statistics of one method over the finished seeds (std with ddof = 0)."""

    method: str
    runs: int
    diverged: int
    mean: float
    std: float
    median: float
    worst: float
    best: float
    seconds: float
    paper_mean: float | None
    paper_std: float | None
    l2_mean: float | None = None
    uvp_mean: float | None = None
    kl_mean: float | None = None
    kl_infinite: int = 0


def mmd_values(records: dict[int, dict], method: str) -> np.ndarray:
    """MMD of ``method`` over the seeds of ``records`` (seed order; NaN for diverged runs)."""
    values = []
    for seed in sorted(records):
        entry = records[seed]["methods"].get(method)
        if entry is not None:
            values.append(np.nan if entry["mmd"] is None else entry["mmd"])
    return np.array(values, dtype=np.float64)


def summarize(records: dict[int, dict], methods: Iterable[str]) -> tuple[MethodSummary, ...]:
    """Mean, std, median, worst, best MMD per method (diverged runs counted, not averaged)."""
    summary = []
    for method in methods:
        entries = [r["methods"][method] for r in records.values() if method in r["methods"]]
        values = np.array([e["mmd"] for e in entries if e["mmd"] is not None], dtype=np.float64)
        l2s = [e["l2"] for e in entries if e.get("l2") is not None]
        uvps = [e["uvp"] for e in entries if e.get("uvp") is not None]
        kls = [e["kl"] for e in entries if e.get("kl") is not None]
        stats = (
            (values.mean(), values.std(), np.median(values), values.max(), values.min())
            if values.size
            else (np.nan,) * 5
        )
        paper = PAPER_RESULTS.get(method, (None, None))
        summary.append(
            MethodSummary(
                method=method,
                runs=len(entries),
                diverged=sum(e["status"] != "ok" for e in entries),
                mean=float(stats[0]),
                std=float(stats[1]),
                median=float(stats[2]),
                worst=float(stats[3]),
                best=float(stats[4]),
                seconds=float(np.mean([e["seconds"] for e in entries])) if entries else np.nan,
                paper_mean=paper[0],
                paper_std=paper[1],
                l2_mean=float(np.mean(l2s)) if l2s else None,
                uvp_mean=float(np.mean(uvps)) if uvps else None,
                kl_mean=float(np.mean(kls)) if kls else None,
                kl_infinite=sum(
                    e["status"] == "ok" and "kl" in e and e["kl"] is None for e in entries
                ),
            )
        )
    return tuple(summary)


def format_table(summary: Sequence[MethodSummary], truth_error: float = 0.0) -> str:
    """Plain-text table: MMD (mean ± std, median, worst), diverged runs, s/seed vs the
    paper's MMD; the mean exact KL of the trained maps (``neural.training.kl``; its count of
    maps with a singular Hessian, KL = ∞, in brackets when there are any); with a ground
    truth, the mean L²(ϱ0) error and L²-UVP (%), marked * where the error is below
    ``RESOLUTION_FACTOR`` times ``truth_error``, the ground truth's own (not resolved)."""
    with_uvp = any(row.uvp_mean is not None for row in summary)
    with_kl = any(row.kl_mean is not None for row in summary)
    header = (
        f"{'method':<10} {'runs':>5} {'div.':>4} {'mean':>8} {'std':>8} {'median':>8} "
        f"{'worst':>8} {'s/seed':>7}   {'paper mean ± std':>17}"
    )
    if with_kl:
        header += f" {'KL':>8}"
    if with_uvp:
        header += f" {'L2 err':>8} {'UVP %':>8}"
    lines = [header, "-" * len(header)]
    for row in summary:
        paper = f"{row.paper_mean:.4f} ± {row.paper_std:.4f}" if row.paper_mean is not None else "-"
        line = (
            f"{row.method:<10} {row.runs:>5} {row.diverged:>4} {row.mean:>8.4f} {row.std:>8.4f} "
            f"{row.median:>8.4f} {row.worst:>8.4f} {row.seconds:>7.2f}   {paper:>17}"
        )
        if with_kl:
            kl = f"{row.kl_mean:.4f}" if row.kl_mean is not None else "-"
            line += f" {kl:>8}" + (f" [{row.kl_infinite} ∞]" if row.kl_infinite else "")
        if with_uvp:
            for value in (row.l2_mean, row.uvp_mean):
                line += f" {value:>8.4f}" if value is not None else f" {'-':>8}"
            if row.l2_mean is not None and not resolved(row.l2_mean, truth_error):
                line += " *"
        lines.append(line)
    if any(row.l2_mean is not None and not resolved(row.l2_mean, truth_error) for row in summary):
        lines.append(
            f"* below {RESOLUTION_FACTOR:g} × the ground truth's estimated error "
            f"{truth_error:.2g}: not resolved, the distance is the ground truth's as much"
        )
    return "\n".join(lines)


def format_references(records: dict[int, dict]) -> str:
    """Mean MMD of the reference pairs of every seed: two independent target samples (the
    estimator's noise floor at n_eval), ϱ0 itself, and T_θ0#ϱ0."""
    parts = []
    for key, label in (
        ("mmd_floor", "noise floor (γ vs γ)"),
        ("mmd_identity", "ϱ0 vs γ"),
        ("mmd_initial", "T_θ0#ϱ0 vs γ"),
    ):
        values = [record[key] for record in records.values()]
        parts.append(f"{label} {np.mean(values):.4f}" if values else f"{label} -")
    return "reference MMD means: " + ", ".join(parts)


LABELS = {name: cls.label for name, cls in METHODS.items()}


def histogram_figure(
    records: dict[int, dict],
    methods: Sequence[str],
    clip: float = 0.13,
    size: str | None = None,
):
    """Fig. 2: one MMD histogram per method, with our mean and the paper's as lines.

    Values above ``clip`` are counted in an overflow bar right of the axis break, labelled
    "> clip" (the means and stds in the legend are of the unclipped values; diverged runs
    are counted in the legend). A mean beyond ``clip`` is drawn on the overflow bar and
    written out beside it ("ours: mean 0.75 ▸"), so that the bar does not pass for its
    value. ``size`` (the ``SIZES`` preset) goes into the title with the number of seeds.
    Returns a ``matplotlib.figure.Figure`` (no pyplot state; save it with ``savefig``).
    """
    # start-up time: matplotlib takes about 0.3 s to import, and only the figure needs it
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    methods = list(methods)
    figure = Figure(figsize=(9.0, 1.9 * len(methods) + 0.7), layout="constrained")
    axes = figure.subplots(len(methods), 1, sharex=True, squeeze=False)[:, 0]
    bins = np.linspace(0.0, clip, 53)
    width = bins[1] - bins[0]
    overflow = (clip + width, clip + 4 * width)  # the overflow bar, after a gap

    def position(value):  # where a mean is drawn: beyond the clip, on the overflow bar
        return value if value <= clip else 0.5 * sum(overflow)

    def mark_beyond(ax, value, color, height, who):  # its value, left of the overflow bar
        if value > clip:
            ax.text(
                overflow[0] - 0.5 * width, height, f"{who} mean {value:.3g} ▸", color=color,
                ha="right", va="center", fontsize=8, fontweight="bold",
                transform=ax.get_xaxis_transform(),
                bbox={"facecolor": "white", "edgecolor": color, "lw": 0.6, "pad": 1.5},
            )  # fmt: skip

    for ax, method in zip(axes, methods, strict=True):
        values = mmd_values(records, method)
        finite = values[np.isfinite(values)]
        ax.hist(
            finite[finite <= clip],
            bins=bins,
            color="tab:blue",
            alpha=0.75,
            label="ours: seeds per bin",
        )
        ax.axvline(clip + 0.5 * width, color="0.5", lw=0.8, ls=":")  # the axis break
        above = int(np.count_nonzero(finite > clip))
        ax.bar(
            overflow[0],
            above,
            width=overflow[1] - overflow[0],
            align="edge",
            color="tab:orange",
            hatch="//",
            edgecolor="k",
            linewidth=0.5,
            label=f"MMD > {clip:g}: {above} seeds",
        )
        if finite.size:
            diverged = int(np.count_nonzero(~np.isfinite(values)))
            label = f"ours, mean ± std: {finite.mean():.4f} ± {finite.std():.4f}"
            label += f" ({diverged} diverged)" if diverged else ""
            ax.axvline(position(finite.mean()), color="k", lw=1.2, label=label)
            mark_beyond(ax, finite.mean(), "k", 0.82, "ours:")
        if method in PAPER_RESULTS:
            mean, std = PAPER_RESULTS[method]
            ax.axvline(
                position(mean),
                color="tab:red",
                ls="--",
                lw=1.2,
                label=f"paper, mean ± std: {mean} ± {std}",
            )
            mark_beyond(ax, mean, "tab:red", 0.6, "paper:")
        ax.set_xlim(0.0, overflow[1] + width)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False)
        ax.set_title(f"{LABELS.get(method, method)}  ({finite.size} seeds)", fontsize=9)
        ax.set_ylabel("seeds")
    ticks = [t for t in axes[-1].get_xticks() if 0.0 <= t <= clip - 0.5 * width]
    axes[-1].set_xticks([*ticks, 0.5 * sum(overflow)], [f"{t:g}" for t in ticks] + [f"> {clip:g}"])
    axes[-1].set_xlabel(
        r"MMD: energy distance $\mathcal{E}(T_\theta\#\varrho_0,\ \gamma)$, "
        r"$\gamma = \mathcal{N}(0, I_2)$"
    )
    seeds = len(records)
    run = f", size '{size}'" if size is not None else ""
    figure.suptitle(f"Fig. 2 sweep: MMD to the target over {seeds} seeds{run}", fontsize=10)
    return figure
