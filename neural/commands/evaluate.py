"""``python -m neural evaluate``: a saved map against a ground truth and data, with a figure
(``neural.studies.evaluation``, ``neural.studies.map_figure``)."""

from __future__ import annotations

import argparse
import os

import numpy as np

from gridflow.checks import output_file
from gridflow.cli import USAGE_ERROR, OutputFile, argument_type, fail, integer, run_interruptible
from gridflow.groundtruth import read_ground_truth
from gridflow.measures import EmpiricalSource
from neural.errors import DivergenceError
from neural.model import NetworkFileError, load
from neural.studies.evaluation import DEFAULT_EVAL_SAMPLES, evaluate_map, format_evaluation
from neural.studies.map_figure import map_figure
from neural.training.kl import MIN_EVAL_SAMPLES

__all__ = ["add_parser", "run"]

FIGURE_SAMPLES = 4000
"""Samples of ϱ0 (and of γ) drawn in the figure."""


def add_parser(commands) -> argparse.ArgumentParser:
    """The ``evaluate`` subcommand's parser."""
    parser = commands.add_parser(
        "evaluate",
        help="a saved map against a ground truth and/or data, with a figure",
        description="Measure a network map file (python -m neural fit, NetworkMap.save): "
        "against a ground-truth file (python -m gridflow groundtruth) the L² distance and "
        "UVP and, for a known source density, the exact KL; on data the negative "
        "log-likelihood; with either, the energy distance of the pushforward to γ.",
    )
    parser.set_defaults(parser=parser)
    parser.add_argument("map", metavar="MAP.npz", help="the network map file")
    parser.add_argument(
        "--ground-truth", default=None, metavar="TRUTH.npz",
        help="a ground-truth file of the same target; its source gives the samples "
        "(default none)",
    )  # fmt: skip
    parser.add_argument(
        "--data", default=None, metavar="FILE",
        help="held-out samples of ϱ0 (.npy, .npz, .csv, .txt) (default none)",
    )  # fmt: skip
    parser.add_argument(
        "--n-eval", type=argument_type(integer, "--n-eval", MIN_EVAL_SAMPLES), default=None,
        help=f"samples of the ground truth's source, at least {MIN_EVAL_SAMPLES} (default "
        f"{DEFAULT_EVAL_SAMPLES}; with --ground-truth only)",
    )  # fmt: skip
    parser.add_argument(
        "--seed", type=argument_type(integer, "--seed", 0), default=0,
        help="seed of the samples (default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--figure", type=argument_type(output_file, "--figure", ".png"), default=None,
        help="write the map over its source and target to this .png (d = 2; default none)",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace the --figure file")
    return parser


def run(args) -> int:
    """Read and check every input, then measure, print and draw. Ctrl-C while the inputs
    are read ends as during the measurement: one line, status 130."""
    return run_interruptible(lambda: _checked_run(args), lambda error: "nothing was written")


def _checked_run(args) -> int:
    if args.ground_truth is None and args.data is None:
        fail(args.parser, "give --ground-truth and/or --data: nothing to compare with", USAGE_ERROR)
    if args.n_eval is not None and args.ground_truth is None:
        fail(
            args.parser,
            "--n-eval is how many samples of the ground truth's source are drawn, and there is "
            "no --ground-truth: give one, or drop --n-eval (the --data rows are all used)",
            USAGE_ERROR,
        )
    try:
        model = load(args.map)
        truth = None if args.ground_truth is None else read_ground_truth(args.ground_truth)
        data = None if args.data is None else EmpiricalSource.from_file(args.data).samples
        figure = (
            None if args.figure is None else OutputFile(args.figure, "--figure", args.overwrite)
        )
        if figure is not None and model.dim != 2:
            raise ValueError(f"--figure is drawn in d = 2, the map is in d = {model.dim}")
    except (NetworkFileError, ValueError, TypeError) as error:
        fail(args.parser, error, USAGE_ERROR)
    kept = figure.kept if figure is not None else (lambda error: "nothing was written")
    return run_interruptible(lambda: _report(args, model, truth, data, figure), kept)


def _fitted_to(model, data_path) -> bool:
    """Whether ``data_path`` is the data file the map's training record names (``fit``)."""
    recorded = model.training.get("data")
    if not isinstance(recorded, str):
        return False
    try:
        return os.path.samefile(recorded, data_path)
    except OSError:  # the recorded file is gone or was relative to another folder
        return False


def _report(args, model, truth, data, figure: OutputFile | None) -> int:
    rng = np.random.default_rng(args.seed)
    try:
        n_eval = DEFAULT_EVAL_SAMPLES if args.n_eval is None else args.n_eval
        evaluation = evaluate_map(model, ground_truth=truth, data=data, n_eval=n_eval, rng=rng)
    except ValueError as error:
        fail(args.parser, error, USAGE_ERROR)
    except DivergenceError as error:  # ∇²φ_θ not positive definite at the samples
        fail(args.parser, error)
    print(format_evaluation(evaluation))
    if data is not None and _fitted_to(model, args.data):
        print(
            f"note: {args.data} is the file this map was fitted to: its rows are training data "
            "(the map chose its step on a held-out part of them), not held-out data"
        )
    if figure is not None:
        x = truth.source.sample(rng, FIGURE_SAMPLES) if truth is not None else data[:FIGURE_SAMPLES]
        y = model.target.sample(rng, FIGURE_SAMPLES) if model.target.is_gaussian else None
        with figure.staged() as staged:
            map_figure(model, x, y).savefig(staged, dpi=120)
        print(f"figure: {figure.path}")
    return 0
