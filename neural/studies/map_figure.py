"""A learned map drawn over its source and target (d = 2).

Three panels: samples x of ϱ0 coloured by their position (red grows with the first
coordinate's rank, green with the second's); their images T(x) in the same colours over
samples of γ, so that where each part of ϱ0 goes can be read off; the images of a regular
grid over the samples' range, which show how the map stretches and bends space.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from gridflow.checks import as_points
from neural.model import NetworkMap

__all__ = ["map_figure"]

GRID_LINES = 15
"""Grid lines per axis in the third panel."""


def _position_colours(x: np.ndarray) -> np.ndarray:
    """RGB colours (n, 3) of points (n, 2): red and green by the ranks of the coordinates."""
    ranks = np.argsort(np.argsort(x, axis=0), axis=0) / max(x.shape[0] - 1, 1)
    blue = 1.0 - ranks.mean(axis=1)
    return 0.1 + 0.8 * np.column_stack([ranks, blue])


def map_figure(model: NetworkMap, x, y=None) -> Figure:
    """The three panels of the module docstring.

    Parameters
    ----------
    model : NetworkMap
        A map in d = 2.
    x : array_like
        Samples of ϱ0, (n, 2).
    y : array_like, optional
        Samples of γ, (m, 2), drawn in grey behind the images.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if model.dim != 2:
        raise ValueError(f"the map figure is drawn in d = 2, the map is in d = {model.dim}")
    x = as_points(x, "x", dim=2, min_points=2)
    images = model(x)
    colours = _position_colours(x)
    figure = Figure(figsize=(13.5, 4.6), layout="constrained")
    source_axes, image_axes, grid_axes = figure.subplots(1, 3)
    style = {"s": 3, "linewidths": 0}
    source_axes.scatter(x[:, 0], x[:, 1], c=colours, **style)
    source_axes.set_title("samples x of ϱ0, coloured by position")
    if y is not None:
        y = as_points(y, "y", dim=2)
        for axes in (image_axes, grid_axes):
            axes.scatter(y[:, 0], y[:, 1], c="0.82", **style, label="samples of γ")
    image_axes.scatter(images[:, 0], images[:, 1], c=colours, **style)
    image_axes.set_title("their images T(x), over samples of γ")
    lower, upper = np.quantile(x, 0.005, axis=0), np.quantile(x, 0.995, axis=0)
    ticks = [np.linspace(lower[k], upper[k], GRID_LINES) for k in range(2)]
    fine = [np.linspace(lower[k], upper[k], 200) for k in range(2)]
    for axis in range(2):
        for value in ticks[axis]:
            line = np.empty((fine[1 - axis].size, 2))
            line[:, axis], line[:, 1 - axis] = value, fine[1 - axis]
            for axes, points in ((source_axes, line), (grid_axes, model(line))):
                axes.plot(points[:, 0], points[:, 1], color="0.3", linewidth=0.5, alpha=0.6)
    grid_axes.set_title("the grid of the first panel, mapped by T")
    for axes in (source_axes, image_axes, grid_axes):
        axes.set_aspect("equal", adjustable="datalim")
    return figure
