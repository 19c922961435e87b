"""Tensor grids on a box of R^d (d = 1, 2, 3): the nodes where the discrete potential lives."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gridflow.checks import as_float_array
from gridflow.memory import check_memory

SUPPORTED_DIMENSIONS = (1, 2, 3)


def _corner(value, name: str) -> tuple[float, ...]:
    """A corner of the box as a tuple of floats: a number (d = 1) or one number per axis."""
    array = as_float_array(value, name)
    if array.ndim > 1:
        raise ValueError(
            f"{name} must be a sequence of numbers, one per dimension, got shape {array.shape}"
        )
    return tuple(float(v) for v in np.atleast_1d(array))


@dataclass(frozen=True)
class Grid:
    """Uniform grid of `shape` nodes on the box [lower, upper] (both ends are nodes).

    Parameters
    ----------
    lower : sequence of float
        The box's lower corner, one finite entry per dimension.
    upper : sequence of float
        The box's upper corner, finite and > `lower` in every dimension.
    shape : sequence of int
        Nodes per axis, integers >= 4. The dimension (the length of the three) is 1, 2 or 3.

    Raises
    ------
    TypeError
        If `lower` or `upper` is not numbers.
    ValueError
        If the three lengths differ, the dimension is not 1, 2 or 3, `lower` or `upper` is not
        finite or `lower` >= `upper` somewhere, `shape` holds a non-integer or a value < 4,
        or the spacing is not finite and > 0 (the box's width overflows).

    Examples
    --------
    >>> Grid(lower=[-6.0], upper=[6.0], shape=[401]).spacing
    (0.03,)
    """

    lower: tuple[float, ...]
    upper: tuple[float, ...]
    shape: tuple[int, ...]

    def __post_init__(self):
        lower = _corner(self.lower, "lower")
        upper = _corner(self.upper, "upper")
        shape = tuple(np.atleast_1d(self.shape).tolist())
        if not (len(lower) == len(upper) == len(shape)):
            raise ValueError(
                f"lower, upper and shape must have one entry per dimension, got "
                f"{len(lower)}, {len(upper)}, {len(shape)}"
            )
        if len(shape) not in SUPPORTED_DIMENSIONS:
            raise ValueError(f"the grid dimension must be 1, 2 or 3, got {len(shape)}")
        if not all(np.isfinite(lower + upper)):
            raise ValueError("lower and upper must be finite")
        if any(lo >= up for lo, up in zip(lower, upper, strict=True)):
            raise ValueError(f"lower must be < upper in every dimension, got {lower} and {upper}")
        if any(not isinstance(n, int) or n < 4 for n in shape):
            raise ValueError(f"shape must hold integers >= 4 (nodes per axis), got {shape}")
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)
        object.__setattr__(self, "shape", shape)
        if not all(np.isfinite(h) and h > 0 for h in self.spacing):
            raise ValueError(
                f"the box {lower}..{upper} with {shape} nodes has spacing {self.spacing}: "
                f"its width must be finite (no overflow) and its spacing > 0"
            )

    @property
    def dim(self) -> int:
        return len(self.shape)

    @property
    def spacing(self) -> tuple[float, ...]:
        return tuple(
            (up - lo) / (n - 1)
            for lo, up, n in zip(self.lower, self.upper, self.shape, strict=True)
        )

    def axis(self, k: int) -> np.ndarray:
        """Node coordinates along axis k."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < self.dim:
            raise ValueError(f"the axis k must be an integer from 0 to {self.dim - 1}, got {k!r}")
        return np.linspace(self.lower[k], self.upper[k], self.shape[k])

    @property
    def nodes(self) -> np.ndarray:
        """All nodes as an (N, d) array, the last axis varying fastest."""
        count = math.prod(self.shape)
        check_memory(
            3 * 8 * count * self.dim,  # the meshgrid's axes and the stacked copy
            f"the nodes of a grid of {' × '.join(map(str, self.shape))} = {count:.3g} nodes",
            "choose fewer nodes",
        )
        mesh = np.meshgrid(*(self.axis(k) for k in range(self.dim)), indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=1)

    def refined(self, factor: int = 2) -> Grid:
        """The grid whose spacing is divided by `factor`, an integer >= 1 (nested nodes)."""
        if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
            raise ValueError(f"factor must be an integer >= 1, got {factor!r}")
        return Grid(self.lower, self.upper, tuple(factor * (n - 1) + 1 for n in self.shape))
