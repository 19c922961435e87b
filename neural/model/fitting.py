"""Learning a network map from data alone: the score-free recipe with a held-out split.

Given samples of ϱ0 only (no density), ``fit`` minimizes KL(T_θ#ϱ0 | γ) = KL(ϱ0 | p_θ) by
Adam on the score-free gradient (``neural.training.kl``), which needs samples and ∇V only:

1. a random fraction of the rows is held out; the map is centered at the training rows'
   mean c, and offset by the target's mean m when it is Gaussian (``NetworkMap``:
   T(x) = ∇φ_θ(x − c) + m; the network learns the map between the centered laws);
2. θ0 is sample-anchored (every hidden unit bends at a training row, the output weights
   w = 0), so T_θ0 is the quadratic part alone; with a Gaussian target its matrix
   L Lᵀ + α I (α the convexity floor) starts at the OT map A0 between the Gaussian fit
   N(0, Σ̂) of the centered rows (sample covariance) and γ's covariance
   (``gridflow.gaussian.ot_map``): training starts from the best affine map;
3. Adam with a cosine-decayed learning rate on minibatches drawn with replacement from the
   training rows;
4. every ``evaluate_every`` steps the held-out negative log-likelihood −mean log p_θ is
   measured and the θ with the smallest one is kept (early stopping: with finite data the
   training objective keeps decreasing after the held-out one has turned). When that is
   θ0, the Gaussian start, no network did better than the Gaussian fit, and the map is the
   Gaussian fit's OT map estimated on all the rows (the held-out ones too).

The held-out NLL minus the entropy of ϱ0 is KL(ϱ0 | p_θ) = KL(T_θ#ϱ0 | γ)
(``neural.model.network_map``), the quantity that grades the map without a ground truth.
"""

from __future__ import annotations

import pathlib
import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from tqdm.auto import tqdm

from gridflow import gaussian
from gridflow.checks import (
    flag,
    open_unit_interval,
    positive_float,
    positive_int,
    require_generator,
)
from gridflow.measures import EmpiricalSource, Gaussian, LogConcaveTarget, as_target
from neural.model.network_map import NetworkMap
from neural.network import ICNN
from neural.training import make_method, run_method
from neural.training.methods import check_step_record

__all__ = ["FitResult", "FitSettings", "fit"]


MIN_HELD_OUT_ROWS_PER_DIM = 10
"""Fewer held-out or training rows than this many per dimension make `fit` warn
(``FewRowsWarning``)."""


class FewRowsWarning(RuntimeWarning):
    """A map fitted to so few rows that its held-out selection is noise."""


@dataclass(frozen=True)
class FitSettings:
    """The recipe of ``fit`` (module docstring); the defaults are measured in docs/neural.md.

    Attributes
    ----------
    hidden : tuple of int
        Widths of the ICNN's hidden layers (it has the quadratic part).
    anchors : int
        Training rows the hidden units bend at (θ0).
    steps : int
        Adam steps.
    batch_size : int
        Rows per step, drawn with replacement.
    learning_rate : float
        Adam's initial learning rate, decayed to 0 by a cosine over the steps.
    held_out : float
        Fraction of the rows held out, in (0, 1).
    evaluate_every : int
        Steps between two held-out evaluations (and the progress bar's updates).
    gaussian_start : bool
        Start from the Gaussian fit's OT map (Gaussian targets; module docstring).
    convexity_floor : float
        c in [0, 1): ∇²φ_θ ⪰ c λ0 I everywhere, with λ0 the smallest eigenvalue of the
        Gaussian fit's OT matrix (a fixed strongly convex part, ``ICNN``'s
        strong_convexity), so that T_θ is onto and ``inverse`` and ``sample`` are defined
        everywhere (docs/neural.md, 'Maps from data').
    """

    hidden: tuple[int, ...] = (16, 16)
    anchors: int = 32
    steps: int = 6000
    batch_size: int = 500
    learning_rate: float = 0.01
    held_out: float = 0.15
    evaluate_every: int = 50
    gaussian_start: bool = True
    convexity_floor: float = 0.003

    def __post_init__(self):
        hidden = self.hidden
        if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
            hidden = (hidden,)
        if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
            raise TypeError(
                f"hidden must be a width or a sequence of widths, e.g. (16, 16), got {hidden!r}"
            )
        object.__setattr__(self, "hidden", tuple(positive_int(w, "hidden width") for w in hidden))
        if not self.hidden:
            raise ValueError("hidden must give at least one width")
        for name in ("anchors", "steps", "batch_size", "evaluate_every"):
            object.__setattr__(self, name, positive_int(getattr(self, name), name))
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be at least 2, got {self.batch_size}")
        check_step_record(self.steps)
        object.__setattr__(
            self, "learning_rate", positive_float(self.learning_rate, "learning_rate")
        )
        object.__setattr__(self, "held_out", open_unit_interval(self.held_out, "held_out"))
        floor = positive_float(self.convexity_floor, "convexity_floor", allow_zero=True)
        if floor >= 1.0:
            raise ValueError(f"convexity_floor must be in [0, 1), got {floor}")
        object.__setattr__(self, "convexity_floor", floor)
        if not isinstance(self.gaussian_start, (bool, np.bool_)):
            raise TypeError(f"gaussian_start must be a bool, got {self.gaussian_start!r}")


@dataclass(frozen=True, eq=False)
class FitResult:
    """What ``fit`` learned and measured.

    Attributes
    ----------
    map : NetworkMap
        The map with the smallest held-out NLL (refitted on all the rows when it is the
        Gaussian start); its ``training`` record holds the settings, the data's size and
        these figures.
    held_out_rows : numpy.ndarray
        The held-out rows (m, d).
    held_out_nll : float
        −mean log p_θ over them, in nats, at the kept θ: the criterion of the choice. After
        a refit (the Gaussian start won) it is the train-rows Gaussian fit's, and the map
        returned is fitted on these rows too, so they are no longer held out from it.
    best_step : int
        The step of the kept θ (0: θ0).
    gaussian_nll : float
        The held-out NLL of the Gaussian fit N(mean, covariance) of the training rows: the
        baseline a map must beat to have learned more than the first two moments.
    history : numpy.ndarray
        (evaluations, 2): step and held-out NLL at every evaluation.
    seconds : float
        Wall time of the training.
    """

    map: NetworkMap
    held_out_rows: np.ndarray
    held_out_nll: float
    best_step: int
    gaussian_nll: float
    history: np.ndarray
    seconds: float


MAX_MAGNITUDE = 1e100
"""Data beyond this are refused: the model density's terms (‖T(x)‖², log det) overflow."""


def _covariance(samples: np.ndarray) -> np.ndarray:
    """The rows' covariance (d, d); ValueError when it is singular (no density exists)."""
    constant = np.flatnonzero(np.ptp(samples, axis=0) == 0.0)
    if constant.size:
        raise ValueError(
            f"the data's column(s) {constant.tolist()} take a single value (or all rows are "
            "the same): such data have no density and no transport map; drop those columns"
        )
    covariance = np.atleast_2d(np.cov(samples, rowvar=False))
    scale = np.sqrt(np.diag(covariance))
    correlation = covariance / np.outer(scale, scale)
    if np.linalg.eigvalsh(correlation)[0] <= 1e-12:
        raise ValueError(
            "the data's columns are linearly dependent (the rows lie in a lower-dimensional "
            "subspace): such data have no density and no transport map; drop the dependent "
            "columns"
        )
    eigenvalues = np.linalg.eigvalsh(covariance)
    if eigenvalues[0] <= covariance.shape[0] * np.finfo(float).eps * eigenvalues[-1]:
        small, large = int(np.argmin(scale)), int(np.argmax(scale))
        raise ValueError(
            f"the data's columns differ so much in scale (column {small} varies by "
            f"{scale[small]:.1e}, column {large} by {scale[large]:.1e}) that their covariance "
            "is singular to working precision: rescale the columns (divide each by its "
            "standard deviation) and scale the map back"
        )
    return covariance


MIN_DISTINCT_SHARE = 0.5
"""Data whose distinct rows are fewer than this share of all rows lie on a lattice (counts,
coarsely rounded or categorical values): samples of a law with a density repeat no row."""


def check_data(source: EmpiricalSource) -> None:
    """ValueError, saying what to change, for rows that ``fit`` cannot learn from: values
    beyond ``MAX_MAGNITUDE`` or so small that their spread underflows (rescale them),
    constant or linearly dependent columns (drop them), and rows that repeat (fewer distinct
    rows than ``MIN_DISTINCT_SHARE`` of them: no density, and a held-out likelihood that
    grows without bound as the model concentrates on the repeated values)."""
    largest = float(np.abs(source.samples).max())
    if largest > MAX_MAGNITUDE:
        raise ValueError(
            f"the data reach {largest:.1e}, beyond {MAX_MAGNITUDE:.0e}: rescale them (the model "
            "density would overflow)"
        )
    spread = float(np.ptp(source.samples, axis=0).max())
    if 0.0 < spread < 1.0 / MAX_MAGNITUDE:
        raise ValueError(
            f"the data spread over {spread:.1e} only, below {1 / MAX_MAGNITUDE:.0e}: rescale "
            "them (their covariance underflows)"
        )
    _covariance(source.samples)
    count = source.samples.shape[0]
    distinct = np.unique(source.samples, axis=0).shape[0]
    if distinct < MIN_DISTINCT_SHARE * count:
        raise ValueError(
            f"the data hold {distinct} distinct rows among {count}: values on a lattice "
            "(counts, rounded or categorical data) have no density to fit; add noise of the "
            "lattice's spacing to them (dequantize), or give continuous data"
        )


def _gaussian_fit_matrix(centered: np.ndarray, target_cov: np.ndarray) -> np.ndarray:
    """The OT matrix A0 from N(0, cov(centered)) to N(0, target_cov) (``gaussian.ot_map``)."""
    covariance = _covariance(centered)
    zero = np.zeros(covariance.shape[0])
    return gaussian.ot_map(Gaussian(zero, covariance), Gaussian(zero, target_cov)).matrix


def _with_quadratic(network: ICNN, matrix: np.ndarray) -> ICNN:
    """``network`` with L Lᵀ + α I = ``matrix`` (α its strong convexity): L the Cholesky
    factor of matrix − α I. α was set from the training rows' fit; the refit on all the rows
    can have a smallest eigenvalue below it (convexity_floor near 1: a LinAlgError at
    0.999), and then L Lᵀ + α I is the nearest matrix with eigenvalues ≥ α: L the symmetric
    square root of matrix − α I with its negative eigenvalues clipped at 0."""
    alpha = network.architecture.strong_convexity
    theta = np.array(network.params)
    remainder = matrix - alpha * np.eye(network.dim)
    try:
        factor = np.linalg.cholesky(remainder)
    except np.linalg.LinAlgError:
        eigenvalues, vectors = np.linalg.eigh(remainder)
        factor = (vectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ vectors.T
    network.architecture.quadratic_factor(theta)[...] = factor
    return network.with_params(theta)


def _start(centered: EmpiricalSource, target: LogConcaveTarget, settings: FitSettings, rng):
    """θ0 (module docstring) and whether it is the Gaussian start."""
    scale_cov = target.cov if target.is_gaussian else np.eye(centered.dim)
    matrix = _gaussian_fit_matrix(centered.samples, scale_cov)
    alpha = settings.convexity_floor * float(np.linalg.eigvalsh(matrix)[0])
    network = ICNN(
        centered.dim,
        settings.hidden,
        rng=rng,
        quadratic=True,
        strong_convexity=alpha,
        anchors=centered.sample(rng, settings.anchors),
    )
    if settings.gaussian_start and target.is_gaussian:
        return _with_quadratic(network, matrix), True
    return network, False


def fit(
    data,
    target=None,
    settings: FitSettings | None = None,
    *,
    rng: np.random.Generator,
    progress: bool = False,
) -> FitResult:
    """Learn T_θ = ∇φ_θ pushing the data's law to γ, from the samples alone (module docstring).

    Parameters
    ----------
    data : array_like or gridflow.EmpiricalSource
        Samples of ϱ0, (N, d).
    target : gridflow.LogConcaveTarget or gridflow.Gaussian, optional
        γ; default N(0, I_d).
    settings : FitSettings, optional
        The recipe; default ``FitSettings()``.
    rng : numpy.random.Generator
        Draws the split, θ0 and the minibatches.
    progress : bool, default False
        Show a progress bar with the held-out NLL.

    Returns
    -------
    FitResult
        The map and what was measured.

    Raises
    ------
    ValueError
        For data of the wrong shape, non-finite, with too few rows or a singular covariance,
        and a target of another dimension.
    DivergenceError
        If the training diverges (the message names the step).
    """
    rng = require_generator(rng)
    progress = flag(progress, "progress")
    if isinstance(data, (str, pathlib.Path)):
        raise TypeError(
            f"data must be samples (N, d) or an EmpiricalSource, got the path {str(data)!r}: "
            "read a data file with gridflow.EmpiricalSource.from_file"
        )
    if not isinstance(data, EmpiricalSource):
        try:
            data = EmpiricalSource(data)
        except (TypeError, ValueError) as error:
            raise type(error)(f"data: {error}") from None
    source = data
    check_data(source)
    settings = FitSettings() if settings is None else settings
    if not isinstance(settings, FitSettings):
        raise TypeError(f"settings must be a FitSettings, got {type(settings).__name__}")
    dim = source.dim
    target = LogConcaveTarget.standard_gaussian(dim) if target is None else as_target(target)
    if target.dim != dim:
        raise ValueError(f"the target has d = {target.dim}, the data d = {dim}")
    train, held_out = source.split(settings.held_out, rng)
    rows = held_out.shape[0]
    if rows < MIN_HELD_OUT_ROWS_PER_DIM * dim:
        warnings.warn(
            f"the map is chosen on {rows} held-out rows (fewer than "
            f"{MIN_HELD_OUT_ROWS_PER_DIM} per dimension): its held-out NLL cannot tell the "
            f"steps apart; give more rows (or a larger held_out share)",
            FewRowsWarning,
            stacklevel=2,
        )
    trained_on = train.samples.shape[0]
    if trained_on < MIN_HELD_OUT_ROWS_PER_DIM * dim:
        warnings.warn(
            f"the map is trained on {trained_on} rows (fewer than {MIN_HELD_OUT_ROWS_PER_DIM} "
            f"per dimension), {rows} being held out: give a smaller held_out share (or more "
            "rows)",
            FewRowsWarning,
            stacklevel=2,
        )
    offset = target.mean if target.is_gaussian else np.zeros(dim)
    centered_target = (
        LogConcaveTarget.gaussian(np.zeros(dim), target.cov) if target.is_gaussian else target
    )
    center = train.samples.mean(axis=0)
    centered = EmpiricalSource(train.samples - center)
    network, gaussian_start = _start(centered, target, settings, rng)
    config = make_method(
        "adam",
        kl="logdet",
        steps=settings.steps,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        cosine_decay=True,
    )

    def held_out_nll(theta) -> float:
        model = NetworkMap(network.with_params(theta), target, center=center, offset=offset)
        return model.negative_log_likelihood(held_out)

    history = [(0, held_out_nll(network.params))]
    best = [history[0][1], 0, np.array(network.params)]
    bar = tqdm(total=settings.steps, desc="fit", disable=not progress, leave=False)

    def evaluate(step, theta):
        if step % settings.evaluate_every and step != settings.steps:
            return
        nll = held_out_nll(theta)
        history.append((step, nll))
        if nll < best[0]:
            best[:] = [nll, step, np.array(theta)]
        bar.update(step - bar.n)
        bar.set_postfix_str(f"held-out NLL {nll:.4f} (best {best[0]:.4f} at step {best[1]})")

    start = time.perf_counter()
    with bar:
        run_method(config, network, centered, centered_target, rng, callback=evaluate)
    seconds = time.perf_counter() - start
    nll, step, theta = best
    fitted = Gaussian(center, np.atleast_2d(np.cov(train.samples, rowvar=False)))
    gaussian_nll = float(-np.mean(fitted.log_density(held_out)))
    network = network.with_params(theta)
    refit = gaussian_start and step == 0
    if refit:  # the Gaussian fit won: estimated again on all the rows
        center = source.samples.mean(axis=0)
        matrix = _gaussian_fit_matrix(source.samples - center, target.cov)
        network = _with_quadratic(network, matrix)
    training = {
        "method": "fit",
        "settings": asdict(settings),
        "rows": int(source.samples.shape[0]),
        "held_out_rows": int(held_out.shape[0]),
        "held_out_nll": nll,
        "best_step": step,
        "gaussian_nll": gaussian_nll,
        "refit_on_all_rows": refit,
        "seconds": seconds,
    }
    model = NetworkMap(network, target, training, center, offset)
    return FitResult(model, held_out, nll, step, gaussian_nll, np.array(history), seconds)
