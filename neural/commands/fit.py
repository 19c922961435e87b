"""``python -m neural fit``: learn a map from a data file and save it (``neural.model.fitting``)."""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

from gridflow.checks import open_unit_interval, output_file, positive_float
from gridflow.cli import (
    USAGE_ERROR,
    OutputFile,
    argument_type,
    fail,
    integer,
    number,
    run_interruptible,
    widths,
)
from gridflow.groundtruth.problems import TARGET_NAMES, read_target
from gridflow.measures import EmpiricalSource
from neural.errors import DivergenceError
from neural.model.fitting import FitSettings, check_data, fit
from neural.network import ICNNArchitecture

__all__ = ["add_parser", "run"]

DEFAULTS = FitSettings()


def add_parser(commands) -> argparse.ArgumentParser:
    """The ``fit`` subcommand's parser."""
    parser = commands.add_parser(
        "fit",
        help="learn a map from a data file (samples of ϱ0) to γ, and save it",
        description="Learn T = ∇φ_θ (an ICNN) pushing the law of the data to the target γ, "
        "from the samples alone (the score-free KL gradient), holding out a fraction of the "
        "rows to keep the θ of smallest held-out negative log-likelihood; save it as a "
        "network map file (neural.load reads it).",
    )
    parser.set_defaults(parser=parser)
    parser.add_argument(
        "--data", required=True, metavar="FILE",
        help="samples of ϱ0, N rows of d numbers: .npy, .npz (one array), .csv or .txt",
    )  # fmt: skip
    parser.add_argument(
        "--target", default="standard", metavar="TARGET",
        help=f"the target γ: {' or '.join(sorted(TARGET_NAMES))} (standard: N(0, I)), or a "
        "Gaussian file (JSON: {\"mean\": [...], \"cov\": [[...]]}) (default standard)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=argument_type(output_file, "--out", ".npz"), default="map.npz",
        help="the map file to write, ending in .npz; an existing file is replaced only with "
        "--overwrite (default map.npz)",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace the --out file")
    parser.add_argument(
        "--hidden", type=argument_type(widths, "--hidden"), default=DEFAULTS.hidden,
        help=f"hidden widths of the ICNN (default {','.join(map(str, DEFAULTS.hidden))})",
    )  # fmt: skip
    parser.add_argument(
        "--steps", type=argument_type(integer, "--steps", 1), default=DEFAULTS.steps,
        help=f"Adam steps (default {DEFAULTS.steps})",
    )  # fmt: skip
    parser.add_argument(
        "--batch-size", type=argument_type(integer, "--batch-size", 2),
        default=DEFAULTS.batch_size, help=f"rows per step (default {DEFAULTS.batch_size})",
    )  # fmt: skip
    parser.add_argument(
        "--learning-rate", type=argument_type(number(positive_float), "--learning-rate"),
        default=DEFAULTS.learning_rate,
        help=f"Adam's initial learning rate, cosine-decayed (default {DEFAULTS.learning_rate})",
    )  # fmt: skip
    parser.add_argument(
        "--held-out", type=argument_type(number(open_unit_interval), "--held-out"),
        default=DEFAULTS.held_out,
        help=f"fraction of the rows held out, in (0, 1) (default {DEFAULTS.held_out})",
    )  # fmt: skip
    parser.add_argument(
        "--seed", type=argument_type(integer, "--seed", 0), default=0,
        help="seed of the split, θ0 and the minibatches (default 0)",
    )  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run(args) -> int:
    """Read and check everything, then train and write (``OutputFile``: whole or not at all).
    Ctrl-C while the data are read ends as during the training: one line, status 130."""
    return run_interruptible(lambda: _checked_run(args), lambda error: "nothing was written")


def _checked_run(args) -> int:
    try:
        data = EmpiricalSource.from_file(args.data)
        check_data(data)
        target = read_target(args.target, data.dim)
        settings = FitSettings(
            hidden=args.hidden,
            steps=args.steps,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            held_out=args.held_out,
        )
        data.held_out_size(settings.held_out)
        ICNNArchitecture(data.dim, settings.hidden, quadratic=True)  # fits in memory
        out = OutputFile(args.out, "--out", args.overwrite)
    except (ValueError, TypeError) as error:
        fail(args.parser, error, USAGE_ERROR)
    return run_interruptible(lambda: _train(args, data, target, settings, out), out.kept)


def _train(args, data, target, settings, out: OutputFile) -> int:
    count, dim = data.samples.shape
    print(f"data: {count} rows in d = {dim} from {args.data}; target {target.name}")
    try:
        result = fit(
            data, target, settings, rng=np.random.default_rng(args.seed),
            progress=not args.no_progress,
        )  # fmt: skip
    except (DivergenceError, ValueError) as error:
        fail(args.parser, error)
    model = result.map
    training = dict(model.training, data=str(args.data), seed=args.seed)
    with out.staged() as staged:
        replace(model, training=training).save(staged)
    print(
        f"wrote {out.path}: held-out NLL {result.held_out_nll:.4f} nats on "
        f"{result.held_out_rows.shape[0]} rows (the Gaussian fit's: {result.gaussian_nll:.4f}), "
        f"best at step {result.best_step} of {settings.steps}, {result.seconds:.1f} s"
    )
    return 0
