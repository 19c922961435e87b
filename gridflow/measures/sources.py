"""Sources ϱ0 known by a density or by samples only, and how each solver takes a source.

The grid solver needs ``density(points) -> (n,)`` (unnormalized is fine) and
``mass_outside(lower, upper)``: ``Gaussian`` and ``GaussianMixture`` compute that mass
exactly, ``CallableSource`` wraps a user's density function and estimates it by quadrature
on a larger box (``as_source``). The neural solver needs ``sample(rng, n) -> (n, d)``:
every law here has it, ``EmpiricalSource`` draws from a data array (``as_sampler``).
"""

from __future__ import annotations

import inspect
import itertools
import pathlib
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gridflow.checks import (
    as_box,
    as_finite_array,
    as_path,
    as_points,
    open_unit_interval,
    positive_int,
    require_generator,
    sample_count,
    summable,
    unreadable,
)

__all__ = ["CallableSource", "EmpiricalSource", "as_sampler", "as_source"]

PER_AXIS_CAP = {1: 10**9, 2: 150, 3: 40}
"""The most cells per axis and piece of `CallableSource.mass_outside` by dimension: 450²
density values in d = 2, 120³ (1.7 million, a few seconds) in d = 3, where 150 per piece
made 91 million values and 8 GB."""


@dataclass(frozen=True)
class CallableSource:
    """A user density `function(points (n, d)) -> (n,)`, unnormalized, nonnegative.

    What the cut-mass check (`mass_outside`) sees: the density is integrated by the
    midpoint rule on a larger box, `nodes_per_axis` cells per axis on the grid's box and as
    many on each margin (at most 150 in d = 2, 40 in d = 3: `PER_AXIS_CAP`). The larger box
    is `support` when it is given (a box
    (lower, upper) that holds all of ϱ0's mass; the margins then reach it), else the box
    three times as wide per axis as the grid's. Mass beyond that larger box is not seen:
    a source with mass far from the grid passes the check unless `support` declares it.
    """

    function: Callable[[np.ndarray], np.ndarray]
    dim: int
    nodes_per_axis: int = 400
    support: tuple | None = None

    def __post_init__(self):
        if not callable(self.function):
            raise TypeError(
                f"function must be a density callable points (n, d) -> (n,), got "
                f"{type(self.function).__name__}"
            )
        object.__setattr__(self, "dim", positive_int(self.dim, "dim"))
        if positive_int(self.nodes_per_axis, "nodes_per_axis") < 2:
            raise ValueError(
                f"nodes_per_axis must be at least 2 (cells per axis of the mass check), "
                f"got {self.nodes_per_axis}"
            )
        if self.support is not None:
            lower, upper = (np.atleast_1d(as_finite_array(v, "support")) for v in self.support)
            if lower.shape != (self.dim,) or upper.shape != (self.dim,):
                raise ValueError(
                    f"support must be a box (lower, upper) of two length-{self.dim} sequences, "
                    f"got shapes {lower.shape} and {upper.shape}"
                )
            if np.any(lower >= upper):
                raise ValueError(f"support needs lower < upper, got {lower} and {upper}")
            object.__setattr__(self, "support", (tuple(lower), tuple(upper)))

    def density(self, points) -> np.ndarray:
        points = as_points(points, "points", self.dim)
        values = np.asarray(self.function(points), dtype=np.float64).reshape(-1)
        if values.shape != (points.shape[0],):
            raise ValueError(
                f"the source density must return one value per point, got shape {values.shape}"
            )
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError("the source density returned negative, NaN or infinite values")
        return values

    def checked_box(self, lower, upper) -> tuple[np.ndarray, np.ndarray]:
        """The box on which `mass_outside(lower, upper)` integrates the density."""
        return self._outer_box(*as_box(lower, upper, self.dim))

    def _outer_box(self, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.support is None:
            return lower - (upper - lower), upper + (upper - lower)
        return np.minimum(self.support[0], lower), np.maximum(self.support[1], upper)

    def mass_check_description(self, lower, upper) -> str:
        """What `mass_outside` checks, for error messages."""
        outer_lower, outer_upper = self.checked_box(lower, upper)
        declared = "the declared support" if self.support is not None else "3× the grid box"
        return (
            f"midpoint rule on {np.round(outer_lower, 3).tolist()}..."
            f"{np.round(outer_upper, 3).tolist()} ({declared}); mass beyond it is not seen, "
            f"declare it with CallableSource(..., support=(lower, upper))"
        )

    def mass_outside(self, lower, upper) -> float:
        """ϱ0 mass outside the box [lower, upper] relative to its mass on `checked_box`."""
        lower, upper = as_box(lower, upper, self.dim)
        outer_lower, outer_upper = self._outer_box(lower, upper)
        per_axis = min(self.nodes_per_axis, PER_AXIS_CAP.get(self.dim, 150))
        axes, widths, inside = [], [], []
        for k in range(self.dim):
            breaks = [outer_lower[k], lower[k], upper[k], outer_upper[k]]
            pieces = [
                np.linspace(a, b, per_axis + 1) for a, b in itertools.pairwise(breaks) if b > a
            ]
            edges = np.unique(np.concatenate(pieces))
            centers = 0.5 * (edges[1:] + edges[:-1])
            axes.append(centers)
            widths.append(np.diff(edges))
            inside.append((centers > lower[k]) & (centers < upper[k]))
        mesh = np.meshgrid(*axes, indexing="ij")
        cell_volume = np.prod(np.meshgrid(*widths, indexing="ij"), axis=0)
        values = self.density(np.stack([m.ravel() for m in mesh], axis=1)).reshape(mesh[0].shape)
        (masses,) = summable(values * cell_volume)
        total = masses.sum()
        if total <= 0:
            raise ValueError("the source density vanishes on and around the grid box")
        return float(max(total - masses[np.ix_(*inside)].sum(), 0.0) / total)


@dataclass(frozen=True, eq=False)
class EmpiricalSource:
    """ϱ0 known by samples only: the empirical measure of ``samples`` (N, d).

    ``sample(rng, n)`` draws n rows with replacement (uniform indices from rng). There is no
    density: the grid solver refuses it; the neural solver's score-free gradient and the
    score estimate need samples only.
    """

    samples: np.ndarray

    def __post_init__(self):
        if np.asarray(self.samples).dtype == np.bool_:
            raise TypeError(
                "samples are booleans: a map is learned from real-valued rows; convert them "
                "(samples.astype(float)) if 0 and 1 are meant as numbers"
            )
        samples = as_points(self.samples, "samples", min_points=2)
        count, dim = samples.shape
        if count <= dim:
            raise ValueError(
                f"samples has N = {count} rows (points) in d = {dim} columns: no more points "
                f"than dimensions, from which no map can be learned; if the points are the "
                f"columns, pass samples.T"
            )
        samples = np.array(samples, dtype=np.float64, copy=True)
        samples.setflags(write=False)
        object.__setattr__(self, "samples", samples)

    @property
    def dim(self) -> int:
        """Dimension d."""
        return self.samples.shape[1]

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n rows of ``samples`` drawn uniformly with replacement (n, d)."""
        rng = require_generator(rng)
        n = sample_count(n, self.dim)
        return self.samples[rng.integers(0, self.samples.shape[0], size=n)]

    def split(
        self, held_out: float, rng: np.random.Generator
    ) -> tuple[EmpiricalSource, np.ndarray]:
        """(a source over the training rows, the held-out rows (m, d)): a random fraction
        ``held_out`` in (0, 1) of the rows, drawn without replacement by ``rng``, rounded
        to at least one row and to at most what leaves d + 1 training rows."""
        rng = require_generator(rng)
        size = self.held_out_size(held_out)
        order = rng.permutation(self.samples.shape[0])
        return EmpiricalSource(self.samples[order[size:]]), self.samples[order[:size]]

    def held_out_size(self, held_out: float) -> int:
        """How many rows ``split(held_out, rng)`` holds out; ValueError when the rows cannot
        both leave d + 1 training rows and hold one out."""
        held_out = open_unit_interval(held_out, "held_out")
        count, dim = self.samples.shape
        size = min(max(round(held_out * count), 1), count - dim - 1)
        if size < 1:
            raise ValueError(
                f"{count} rows in d = {dim} leave none to hold out: the training rows must "
                f"outnumber the dimensions; give at least {dim + 2} rows"
            )
        return size

    @classmethod
    def from_file(cls, path) -> EmpiricalSource:
        """The samples in a data file: a .npy array (N, d), a .npz archive holding one
        array, or a text table (.csv, comma separated, or .txt, whitespace separated; lines
        starting with # are comments). ValueError naming the file otherwise."""
        path = as_path(path, "path")
        readers = {
            ".npy": _load_array,
            ".npz": _load_array,
            ".csv": _load_table,
            ".txt": _load_table,
        }
        if path.suffix.lower() not in readers:
            raise ValueError(
                f"data file {str(path)!r} must end in .npy, .npz, .csv or .txt (N rows of d "
                "numbers)"
            )
        problem = unreadable(path)
        if problem:
            raise ValueError(f"data file {str(path)!r} {problem}")
        samples = readers[path.suffix.lower()](path)
        if samples.ndim == 2 and samples.shape[0] == 1 and samples.shape[1] > 1:
            raise ValueError(
                f"data file {str(path)!r} holds one row of {samples.shape[1]} numbers: a data "
                "file has one sample per row (N rows of d numbers)"
            )
        try:
            return cls(samples)
        except (TypeError, ValueError) as error:
            raise ValueError(f"data file {str(path)!r}: {error}") from None


def _load_array(path: pathlib.Path) -> np.ndarray:
    """The one array of a .npy file or .npz archive, read without pickles."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:  # EOFError: an empty file
        raise ValueError(f"data file {str(path)!r} cannot be read: {error}") from None
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        if len(loaded.files) != 1:
            raise ValueError(
                f"data file {str(path)!r} must hold exactly one array, it has {loaded.files}"
            )
        try:
            return loaded[loaded.files[0]]
        except (OSError, ValueError, EOFError) as error:
            raise ValueError(f"data file {str(path)!r} cannot be read: {error}") from None


def _load_table(path: pathlib.Path) -> np.ndarray:
    """A text table of numbers, as a 2-D array."""
    delimiter = "," if path.suffix.lower() == ".csv" else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy only warns for a file without rows
            return np.loadtxt(path, delimiter=delimiter, ndmin=2, dtype=np.float64)
    except UserWarning:
        raise ValueError(f"data file {str(path)!r} holds no rows") from None
    except (OSError, ValueError) as error:
        raise ValueError(
            f"data file {str(path)!r} is not a table of numbers: {error}"
            f"{_table_hint(error, delimiter)}"
        ) from None


def _table_hint(error: Exception, delimiter: str | None) -> str:
    """What to change in a text table that numpy could not read (with ``delimiter``: ','
    for .csv, None for .txt): columns separated otherwise, or a header line."""
    failed = re.search(r"could not convert string '([^']*)'", str(error))
    cell = failed.group(1) if failed else ""
    if ";" in cell or (delimiter is None and "," in cell):
        return " (separate the columns of a .csv by commas, of a .txt by spaces)"
    if failed and "at row 0," in str(error) and re.search(r"[A-Za-z_]", cell):
        return " (start a header line with #: such lines are comments)"
    return ""


def as_source(source, dim: int):
    """The grid solver's source: an object with ``density`` and ``mass_outside``, or a
    plain density callable points (n, d) -> (n,) (wrapped in a ``CallableSource``)."""
    if hasattr(source, "density") and hasattr(source, "mass_outside"):
        if source.dim != dim:
            raise ValueError(f"source has dimension {source.dim}, the grid has {dim}")
        return source
    if isinstance(source, EmpiricalSource):
        raise TypeError(
            "the grid solver needs a source density; an EmpiricalSource has samples only"
        )
    if callable(source):
        return CallableSource(source, dim)
    raise TypeError("source must be a density callable points (n, d) -> (n,) or a source object")


def as_sampler(source) -> Callable[[np.random.Generator, int], np.ndarray]:
    """The neural solver's source: (rng, n) -> (n, d) samples of ϱ0, from an object with
    ``sample(rng, n)`` (every law of ``gridflow.measures``) or a callable (rng, n)."""
    sample = getattr(source, "sample", None)
    if callable(sample):
        return sample
    if callable(source):
        try:
            inspect.signature(source).bind(None, 1)
        except ValueError:  # no signature to read (a builtin): it is called as it is
            pass
        except TypeError:
            raise TypeError(
                "source is a callable that cannot be called as source(rng, n), which is how "
                "the neural solver draws its samples: a density x -> ϱ0(x) serves the grid "
                "solver only; pass a law with sample(rng, n) (gridflow.Gaussian, "
                "GaussianMixture, EmpiricalSource) or a sampler (rng, n) -> (n, d)"
            ) from None
        return source
    raise TypeError(
        "source must have a method sample(rng, n) -> (n, d) (e.g. gridflow.GaussianMixture, "
        f"gridflow.EmpiricalSource) or be a callable (rng, n) -> (n, d); got "
        f"{type(source).__name__}"
    )
