"""The report's figure rules: axis labels, a legend entry per line, readable ticks, captions."""

import numpy as np
import pytest

from validation.plotting import (
    figure_file,
    figure_problems,
    figure_records,
    pyplot,
    readable_log_ticks,
)

SPACINGS = np.array([0.12, 0.06, 0.03, 0.015])  # under one decade: matplotlib labels minor ticks


def _labelled(plt):
    figure, axis = plt.subplots(figsize=(5.5, 4))
    axis.loglog(SPACINGS, SPACINGS**2, "o-", label="error")
    axis.set_xlabel("$h$")
    axis.set_ylabel("error")
    axis.legend()
    return figure, axis


def test_a_short_log_range_has_overlapping_labels_until_the_ticks_are_tidied():
    with pyplot() as plt:
        figure, axis = _labelled(plt)
        figure.tight_layout()
        assert any("x tick labels overlap" in p for p in figure_problems(figure))
        readable_log_ticks(axis)
        assert figure_problems(figure) == []


def test_missing_labels_and_legend_entries_are_reported():
    with pyplot() as plt:
        figure, axis = plt.subplots()
        axis.plot([0, 1], [0, 1])
        axis.plot([0, 1], [1, 0], label="named")
        problems = figure_problems(figure)
    assert any("no x label" in p for p in problems)
    assert any("no y label" in p for p in problems)
    assert sum("has no legend entry" in p for p in problems) == 2  # no legend at all


def test_figure_file_refuses_a_broken_figure_and_an_empty_caption(tmp_path):
    with pyplot() as plt:
        figure, axis = plt.subplots()
        axis.plot([0, 1], [0, 1], label="line")
        with pytest.raises(ValueError, match="no x label"):
            figure_file(figure, tmp_path, "broken.png", "a caption")
        figure, axis = _labelled(plt)
        readable_log_ticks(axis)
        with pytest.raises(ValueError, match="caption"):
            figure_file(figure, tmp_path, "good.png", " ")
        record = figure_file(figure, tmp_path, "good.png", "Error against h.")
    assert not (tmp_path / "broken.png").exists()
    assert (tmp_path / "good.png").stat().st_size > 1000
    assert record == {"figures": ["good.png"], "captions": {"good.png": "Error against h."}}


def test_records_merge_in_order():
    first = {"figures": ["a.png"], "captions": {"a.png": "A"}}
    second = {"figures": ["b.png"], "captions": {"b.png": "B"}}
    assert figure_records(first, second) == {
        "figures": ["a.png", "b.png"],
        "captions": {"a.png": "A", "b.png": "B"},
    }
