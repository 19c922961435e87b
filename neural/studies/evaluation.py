"""Evaluating a network map: against a ground truth, on data, and by its pushforward.

``evaluate_map`` measures what can be measured from what is given:

- with a ground truth (``gridflow.groundtruth.read_ground_truth``, a file that records its
  problem): the L² distance to T* on samples of the file's source and, for a Gaussian
  target, the L²-UVP (``gridflow.map_distance``), marked when it is not several times T*'s
  own error (``gridflow.groundtruth.resolved``); and, where the source density is known,
  KL(T_θ#ϱ0 | γ) = E_ϱ0[log ϱ0 − log p_θ] by Monte Carlo (``neural.model.network_map``);
- with data (held-out samples of ϱ0): the negative log-likelihood −mean log p_θ;
- with either, for a target that can be sampled: the energy distance (eq. 1.10) between the
  pushforward T_θ(x) and as many samples of γ, beside the energy distance between two
  independent samples of γ of that size (the floor a perfect map would show), each the mean
  over ``ENERGY_DRAWS`` draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridflow.checks import as_points, require_generator
from gridflow.groundtruth import RESOLUTION_FACTOR, GroundTruth, resolved
from gridflow.groundtruth.problems import same_law
from gridflow.maps import map_distance
from gridflow.memory import check_memory
from neural.mmd import energy_distance
from neural.model import NetworkMap
from neural.training.kl import MIN_EVAL_SAMPLES, check_eval_size

__all__ = ["DEFAULT_EVAL_SAMPLES", "Evaluation", "evaluate_map", "format_evaluation"]

DEFAULT_EVAL_SAMPLES = 20000
"""Samples of the ground truth's source an evaluation draws unless told otherwise."""
MIN_PAIRS = 2
"""The fewest rows of data (or source samples in the box) a standard error takes."""
MAX_ENERGY_SAMPLES = 4000
"""Samples per side of the energy distance (its cost is quadratic in the number)."""
ENERGY_DRAWS = 5
"""Draws the energy distances are averaged over (disjoint chunks of the samples of ϱ0 when
there are enough, fresh samples of γ): one draw fluctuates by a factor of 2 or more."""


@dataclass(frozen=True)
class Evaluation:
    """The figures of ``evaluate_map``; None where the inputs do not allow one.

    Attributes
    ----------
    l2, uvp : float or None
        ‖T_θ − T*‖ in L²(ϱ0) and the L²-UVP in % (Gaussian targets).
    truth_error : float or None
        T*'s own estimated error in L²(ϱ0).
    resolved : bool or None
        Whether ``l2`` is at least ``RESOLUTION_FACTOR`` times ``truth_error``.
    kl, kl_standard_error : float or None
        KL(T_θ#ϱ0 | γ) by Monte Carlo over the source's samples, with its standard error.
    nll, nll_standard_error : float or None
        −mean log p_θ over the data, in nats.
    energy, energy_floor : float or None
        Energy distance between T_θ(x) and samples of γ; between two samples of γ.
    samples, data_rows : int
        Samples of the source (0 without a ground truth); rows of data (0 without).
    """

    l2: float | None = None
    uvp: float | None = None
    truth_error: float | None = None
    resolved: bool | None = None
    kl: float | None = None
    kl_standard_error: float | None = None
    nll: float | None = None
    nll_standard_error: float | None = None
    energy: float | None = None
    energy_floor: float | None = None
    samples: int = 0
    data_rows: int = 0


def _mean_and_error(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(values.size))


def _check_truth(model: NetworkMap, truth: GroundTruth) -> None:
    """ValueError unless T* solves the problem of the map: the same target and dimension
    (``evaluate_map`` keeps the samples inside T*'s box)."""
    if truth.map.dim != model.dim:
        raise ValueError(f"the ground truth is in d = {truth.map.dim}, the map in d = {model.dim}")
    if not same_law(truth.target, model.target):
        raise ValueError(
            f"the ground truth maps to {truth.target.name}, the network to {model.target.name}: "
            "they solve different problems"
        )


CENTER_SPREADS = 3.0
"""A map fitted to data whose mean lies farther than this many spreads of the ground truth's
source from that source's mean was fitted to another problem (``_check_center``)."""


def _check_center(model: NetworkMap, x: np.ndarray) -> None:
    """ValueError when the map's center (the mean of the data it was fitted to) is far from
    the mean of the ground truth's source samples x, in units of their spread (the root mean
    squared distance to their mean): the map and T* solve different problems. A source of
    another shape with a nearby mean is not seen here."""
    if model.center is None:
        return
    mean = x.mean(axis=0)
    spread = float(np.sqrt(np.mean(np.sum((x - mean) ** 2, axis=1))))
    distance = float(np.linalg.norm(model.center - mean))
    if not distance <= CENTER_SPREADS * spread:
        raise ValueError(
            f"the map was fitted to data centered at {np.round(model.center, 3).tolist()}, "
            f"{distance / spread:.3g} spreads from the mean of the ground truth's source "
            f"({np.round(mean, 3).tolist()}, spread {spread:.3g}): they solve different problems"
        )


def evaluate_map(
    model: NetworkMap,
    *,
    ground_truth: GroundTruth | None = None,
    data=None,
    n_eval: int = DEFAULT_EVAL_SAMPLES,
    rng: np.random.Generator,
) -> Evaluation:
    """The figures of the module docstring for ``model``.

    Parameters
    ----------
    model : NetworkMap
        The map.
    ground_truth : gridflow.groundtruth.GroundTruth, optional
        T* and the problem it solves (same target as the map).
    data : array_like, optional
        Held-out samples of ϱ0, (m, d).
    n_eval : int, default 20000
        Samples of the ground truth's source.
    rng : numpy.random.Generator
        Draws the source's and the target's samples.

    Raises
    ------
    ValueError
        Without a ground truth and data, for a ground truth of another problem, data of
        another dimension, or samples outside T*'s grid.
    """
    if not isinstance(model, NetworkMap):
        raise TypeError(f"model must be a NetworkMap, got {type(model).__name__}")
    if ground_truth is not None and not isinstance(ground_truth, GroundTruth):
        raise TypeError(
            "ground_truth must be a GroundTruth (gridflow.groundtruth.read_ground_truth(path)), "
            f"got {type(ground_truth).__name__}"
        )
    rng = require_generator(rng)
    if ground_truth is None and data is None:
        raise ValueError("give a ground truth or data (or both): there is nothing to compare with")
    figures = {}
    pushed_from = None
    if ground_truth is not None:
        _check_truth(model, ground_truth)
        n_eval = check_eval_size(n_eval)
        check_memory(
            8 * n_eval * (2 * model.dim**2 + 4 * model.dim + 4),  # samples, images, Hessians
            f"an evaluation on n_eval = {n_eval} samples in d = {model.dim}",
            "choose a smaller n_eval",
        )
        x = ground_truth.source.sample(rng, n_eval)
        lower, upper = np.array(ground_truth.map.grid.lower), np.array(ground_truth.map.grid.upper)
        x = x[np.all((x >= lower) & (x <= upper), axis=1)]  # the file's box holds all but 1e-6
        if x.shape[0] < MIN_PAIRS:
            raise ValueError("the source's samples lie outside the ground truth's box")
        _check_center(model, x)
        variance = model.target if model.target.is_gaussian else 1.0  # no UVP otherwise
        distance = map_distance(model, ground_truth.map, x, variance)
        error = ground_truth.error
        figures.update(
            l2=distance.l2,
            uvp=distance.uvp if model.target.is_gaussian else None,
            truth_error=error,
            resolved=resolved(distance.l2, error),
            samples=x.shape[0],
        )
        if callable(getattr(ground_truth.source, "log_density", None)):
            terms = ground_truth.source.log_density(x) - model.log_density(x)
            figures["kl"], figures["kl_standard_error"] = _mean_and_error(terms)
        pushed_from = x
    if data is not None:
        data = as_points(data, "data", dim=model.dim, min_points=MIN_PAIRS)
        log_density = model.log_density(data)
        underflow = np.flatnonzero(~np.isfinite(log_density))
        if underflow.size:
            raise ValueError(
                f"the model density underflows to 0 at {underflow.size} of the {data.shape[0]} "
                f"rows of data (e.g. row {underflow[0]}, largest entry "
                f"{np.abs(data[underflow[0]]).max():.1e}): rows that far from the map's data "
                "have no likelihood; remove them"
            )
        figures["nll"], figures["nll_standard_error"] = _mean_and_error(-log_density)
        figures["data_rows"] = data.shape[0]
        pushed_from = data if pushed_from is None else pushed_from
    if model.target.is_gaussian:
        n = min(MAX_ENERGY_SAMPLES, pushed_from.shape[0] // ENERGY_DRAWS) or pushed_from.shape[0]
        chunks = [pushed_from[k * n : (k + 1) * n] for k in range(ENERGY_DRAWS)]
        chunks = [chunk for chunk in chunks if chunk.shape[0] == n]  # too few rows: reused
        draws = [model.target.sample(rng, n) for _ in range(2 * ENERGY_DRAWS)]
        figures["energy"] = float(
            np.mean([energy_distance(model(chunks[k % len(chunks)]), draws[2 * k])
                     for k in range(ENERGY_DRAWS)])
        )  # fmt: skip
        figures["energy_floor"] = float(
            np.mean([energy_distance(draws[2 * k], draws[2 * k + 1]) for k in range(ENERGY_DRAWS)])
        )
    return Evaluation(**figures)


def format_evaluation(evaluation: Evaluation) -> str:
    """The figures of an ``Evaluation`` as lines of text."""
    lines = []
    if evaluation.l2 is not None:
        uvp = "" if evaluation.uvp is None else f", UVP {evaluation.uvp:.4f} %"
        mark = (
            ""
            if evaluation.resolved
            else (
                f"  (not resolved: below {RESOLUTION_FACTOR:g}× the ground truth's own error; the "
                "distance is the ground truth's as much as the map's)"
            )
        )
        lines.append(
            f"against the ground truth ({evaluation.samples} samples of its source): "
            f"L² {evaluation.l2:.3e}{uvp}; ground truth's own error {evaluation.truth_error:.1e}"
            f"{mark}"
        )
    if evaluation.kl is not None:
        lines.append(
            f"KL(T#ϱ0 | γ) = {evaluation.kl:.5f} ± {evaluation.kl_standard_error:.1g} nats "
            "(the source density is known: no entropy to estimate)"
        )
    if evaluation.nll is not None:
        rough = (
            f" (from fewer than {MIN_EVAL_SAMPLES} rows the error bar is itself uncertain by "
            f"about {1 / np.sqrt(2 * evaluation.data_rows):.0%})"
            if evaluation.data_rows < MIN_EVAL_SAMPLES
            else ""
        )
        lines.append(
            f"negative log-likelihood of the data ({evaluation.data_rows} rows): "
            f"{evaluation.nll:.5f} ± {evaluation.nll_standard_error:.1g} nats{rough}"
        )
    if evaluation.energy is not None:
        lines.append(
            f"energy distance of T(x) to γ: {evaluation.energy:.2e} (two samples of γ of the "
            f"same size: {evaluation.energy_floor:.2e})"
        )
    return "\n".join(lines)
