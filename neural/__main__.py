"""Command line of the neural solver.

    python -m neural benchmark [--seeds 100] [--methods implicit,explicit,euclidean,adam]
                               [--size paper|small|tiny] [--workers 2] [--backend loky]
                               [--out DIR] [--ground-truth MAP.npz]
                               [--init normal|torch|anchored]
                               [--kl-reduction mean|sum] [--authors-code]
                               [--implicit-start identity|network]
                               [--explicit-start identity|network]
    python -m neural dimensions [--dims 2 8 32] [--methods ...] [--size small] [--out FILE]
    python -m neural flowcheck [--cases gaussian2d mixture gaussian8] [--tau 0.25]
                               [--steps 10] [--size quick|full] [--out DIR]
    python -m neural errorbudget [--problems mixture gaussian2 gaussian8 gaussian32]
                                 [--ground-truth truth.npz] [--widths 20,20 64,64]
                                 [--inits normal anchored] [--out DIR]
    python -m neural fit --data data.npy [--target gauss.json] [--out map.npz]
    python -m neural evaluate map.npz [--ground-truth truth.npz] [--data test.npy]
                                      [--figure map.png]

``benchmark`` runs the paper's Fig. 2 sweep (``neural.studies.sweep.run_benchmark``):
resumable (rerun with the same --out to continue; --force-resume across code versions),
parallel over seeds, prints the table next to the paper's numbers and writes
DIR/{results.jsonl, config.json, table.txt, fig2.png}; a run of fewer seeds than the folder
holds says so. ``dimensions`` runs the Gaussian → Gaussian study. ``flowcheck``
compares the neural schemes step by step with the reference schemes
(``neural.studies.flowcheck``) and writes DIR/{flowcheck.txt, flowcheck.png}. ``errorbudget``
measures Remark 3.11's causes against exact maps (``neural.studies.errorbudget``). ``fit``
learns a map from a data file and saves it, ``evaluate`` measures a saved map
(``neural.commands``).

Outputs are written whole or not at all (``gridflow.cli``): the report folders of
``flowcheck`` and ``errorbudget`` are built beside their target and renamed into place, and
one that holds an earlier report is replaced (whole: no stale figure remains) only with
--overwrite; so is the --out file of ``dimensions``. Ctrl-C ends every command with one line
``interrupted: …`` saying what was kept (the seeds in results.jsonl, an unchanged folder, the
error budget's rows measured so far) and exit status 130.

A user error (a bad argument, a ground truth of another problem, an output folder that
cannot be written or is locked by a running sweep) ends with one line ``… error: …`` and
exit status 2 before any training (``gridflow.cli``). Tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from gridflow.checks import output_file, positive_float
from gridflow.cli import (
    USAGE_ERROR,
    ArgumentParser,
    DistinctValues,
    OutputFile,
    ReportFolder,
    argument_type,
    exit_with,
    fail,
    integer,
    named_folder,
    number,
    one_line_warnings,
    report_folder,
    run_interruptible,
    widths,
)
from neural.commands import evaluate as evaluate_command
from neural.commands import fit as fit_command
from neural.network.initialization import INITS
from neural.studies.dimensions import (
    check_dimension_memory,
    dimension_study,
    format_dimension_table,
    write_dimension_rows,
)
from neural.studies.errorbudget import (
    CAUSES,
    budget_figure,
    check_evaluation_memory,
    check_ground_truth_use,
    check_options,
    check_run_lengths,
    error_budget,
    format_budget,
    make_problem,
)
from neural.studies.evaluation import DEFAULT_EVAL_SAMPLES
from neural.studies.flowcheck import (
    CASES,
    MAX_STEPS,
    MAX_TAU,
    MIN_STEPS,
    MIN_TAU,
    SETTINGS,
    case_from_file,
    check_steps,
    check_tau,
    flow_check,
    flowcheck_figure,
    format_flowcheck,
)
from neural.studies.sweep import (
    BACKENDS,
    SIZES,
    BenchmarkConfig,
    SweepInterrupted,
    SweepSetupError,
    check_backend,
    format_references,
    format_table,
    run_benchmark,
)
from neural.studies.sweep.parallel import check_workers
from neural.studies.sweep.store import RESULTS_FILE, read_results
from neural.training import METHODS
from neural.training.gradients import KL_REDUCTIONS
from neural.training.kl import MIN_EVAL_SAMPLES
from neural.training.methods import STARTS

FLOWCHECK_FILES = ("flowcheck.txt", "flowcheck.png")
ERRORBUDGET_FILES = ("errorbudget.txt", "errorbudget.jsonl", "errorbudget.png")
OVERWRITE_HELP = (
    "replace an existing --out (whole: nothing of the earlier run remains; default: refuse)"
)
HELP_TEXTS = {
    "dimensions": {
        "--dims": "dimensions d of the Gaussian pairs (default 2 8 32)",
        "--n-eval": f"samples per side of the MMD, at least {MIN_EVAL_SAMPLES} (default 2000)",
    },
    "errorbudget": {
        "--problems": "'mixture' (the paper's; needs --ground-truth), 'file' (the problem "
        "that --ground-truth records; a Gaussian target) and/or gaussianD (the dimension "
        "study's pair; default mixture gaussian2 gaussian8 gaussian32)",
        "--causes": f"the causes to measure (default all: {' '.join(CAUSES)})",
        "--n-eval": "samples of the evaluation: L² error, UVP, KL and MMD, at least "
        f"{MIN_EVAL_SAMPLES} (default {DEFAULT_EVAL_SAMPLES})",
    },
}
"""Help of the options whose argument lines carry no help text of their own."""


def _methods(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in METHODS]
    if unknown or not names:
        what = f"unknown method(s) {unknown}" if unknown else f"no method in {text!r}"
        raise argparse.ArgumentTypeError(
            f"{what}; choose from {', '.join(METHODS)} (comma separated)"
        )
    return names


def _flow_steps(text, name: str) -> int:
    """--steps of the flow check: an integer from MIN_STEPS to MAX_STEPS."""
    return check_steps(integer(text, name, MIN_STEPS), name)


def _count(name: str, minimum: int = 1):
    """An argparse type: an integer >= minimum, the message naming ``name``."""
    return argument_type(integer, name, minimum)


_hidden = argument_type(widths, "--hidden")
_widths = argument_type(widths, "--widths")


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m neural", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    backend = argument_type(check_backend)
    backend_help = f"joblib backend: {', '.join(BACKENDS)} (default loky)"
    bench = commands.add_parser("benchmark", help="the paper's Fig. 2 seed sweep")
    bench.set_defaults(parser=bench)
    bench.add_argument(
        "--seeds", type=_count("seeds"), default=100, help="number of seeds (default 100)"
    )
    bench.add_argument(
        "--first-seed", type=_count("first seed", 0), default=0, help="first seed (default 0)"
    )
    bench.add_argument(
        "--methods", type=_methods, default=tuple(METHODS), help="comma-separated (default all)"
    )
    bench.add_argument("--size", choices=tuple(SIZES), default="paper", help="default paper")
    bench.add_argument(
        "--workers", type=_count("workers"), default=1, help="parallel workers (default 1)"
    )
    bench.add_argument("--backend", type=backend, default="loky", help=backend_help)
    bench.add_argument(
        "--numba-threads", type=_count("numba threads"), default=None, help="per worker"
    )
    bench.add_argument(
        "--out",
        type=argument_type(named_folder, "output folder"),
        default="neural_benchmark",
        help="output folder, created if its parent exists; one of the same configuration is "
        "resumed (default neural_benchmark)",
    )
    bench.add_argument(
        "--force-resume",
        action="store_true",
        help="resume results written by another code version (recorded in config.json)",
    )
    bench.add_argument("--ground-truth", default=None, help="T* file from gridflow.save_map")
    bench.add_argument("--hidden", type=_hidden, default=(20, 20), help="widths (default 20,20)")
    # None = not given: the default, or the --authors-code preset (which refuses them)
    bench.add_argument("--init", choices=INITS, default=None, help="θ0 scheme (default normal)")
    bench.add_argument("--kl-reduction", choices=KL_REDUCTIONS, default=None, help="default mean")
    for scheme in ("implicit", "explicit"):
        bench.add_argument(
            f"--{scheme}-start",
            choices=STARTS,
            default=None,
            help=f"map the first {scheme} step moves from: identity (T̂_0 = id, eqs. 3.1, 3.2; "
            "default) or network (T_θ0)",
        )
    bench.add_argument(
        "--authors-code",
        action="store_true",
        help="the authors' code's choices: --init torch --kl-reduction sum "
        "--implicit-start network",
    )
    bench.add_argument(
        "--n-eval", type=_count("n-eval", MIN_EVAL_SAMPLES), default=None,
        help=f"MMD samples per side, at least {MIN_EVAL_SAMPLES}",
    )  # fmt: skip
    bench.add_argument("--no-progress", action="store_true")

    dims = commands.add_parser("dimensions", help="Gaussian -> Gaussian in several dimensions")
    dims.set_defaults(parser=dims)
    dims.add_argument(
        "--dims", type=_count("dims"), nargs="+", action=DistinctValues, default=[2, 8, 32]
    )
    dims.add_argument(
        "--methods", type=_methods, default=tuple(METHODS),
        help=f"comma-separated methods (default all: {','.join(METHODS)})",
    )  # fmt: skip
    dims.add_argument(
        "--size", choices=tuple(SIZES), default="small",
        help="training budget of every method, as in benchmark (default %(default)s)",
    )  # fmt: skip
    dims.add_argument(
        "--seed", type=_count("seed", 0), default=0,
        help="seed of the problems, θ0, batches and evaluation (default %(default)s)",
    )  # fmt: skip
    dims.add_argument(
        "--hidden", type=_hidden, default=(20, 20), help="hidden widths (default 20,20)"
    )
    dims.add_argument(
        "--init", choices=INITS, default="normal", help="θ0 scheme (default %(default)s)"
    )
    dims.add_argument("--n-eval", type=_count("n-eval", MIN_EVAL_SAMPLES), default=2000)
    dims.add_argument(
        "--workers", type=_count("workers"), default=1,
        help="parallel workers (default %(default)s)",
    )  # fmt: skip
    dims.add_argument("--backend", type=backend, default="loky", help=backend_help)
    dims.add_argument(
        "--out",
        type=argument_type(output_file, "output file", ".json"),
        default=None,
        help="optional JSON file for the rows (ending in .json, in an existing folder); an "
        "existing file is replaced only with --overwrite (default: the table only)",
    )
    dims.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)

    flow = commands.add_parser(
        "flowcheck", help="neural schemes against the reference schemes, step by step"
    )
    flow.add_argument(
        "--cases", nargs="+", choices=CASES, default=None, action=DistinctValues,
        help=f"built-in cases (default all: {', '.join(CASES)}; none with --ground-truth)",
    )  # fmt: skip
    flow.add_argument(
        "--ground-truth", default=None, metavar="MAP.npz",
        help="also check the problem this ground-truth file records (gridflow.save_map; "
        "default none)",
    )  # fmt: skip
    flow.add_argument(
        "--tau", type=argument_type(number(check_tau), "--tau"), default=0.25,
        help=f"step τ of both schemes, {MIN_TAU:g} to {MAX_TAU:g} (default 0.25)",
    )  # fmt: skip
    flow.add_argument(
        "--steps", type=argument_type(_flow_steps, "--steps"), default=10,
        help=f"number of outer steps K, {MIN_STEPS} to {MAX_STEPS} (default %(default)s)",
    )  # fmt: skip
    flow.add_argument(
        "--size", choices=tuple(SETTINGS), default="quick",
        help="network, inner solves, samples and grid of the check (default %(default)s)",
    )  # fmt: skip
    flow.add_argument(
        "--out", type=argument_type(report_folder, "--out"), default="flowcheck",
        help="output folder, created if its parent exists; one that holds an earlier "
        "report is replaced only with --overwrite (default ./flowcheck)",
    )  # fmt: skip
    flow.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)

    budget = commands.add_parser("errorbudget", help="Remark 3.11's three causes, measured")
    budget.add_argument(
        "--problems", nargs="+", default=["mixture", "gaussian2", "gaussian8", "gaussian32"],
        action=DistinctValues,
        help="'mixture' (the paper's; needs --ground-truth), 'file' (the problem that "
        "--ground-truth records) and/or gaussianD (the dimension study's pair)",
    )  # fmt: skip
    budget.add_argument(
        "--ground-truth", default=None,
        help="the mixture's T*, a file of python -m gridflow groundtruth (checked first; "
        "default none)",
    )  # fmt: skip
    budget.add_argument(
        "--widths", type=_widths, nargs="+", default=[(20, 20), (64, 64)],
        action=DistinctValues,
        help="hidden widths of the ICNNs, one network per item (default 20,20 64,64)",
    )  # fmt: skip
    budget.add_argument(
        "--causes", nargs="+", choices=list(CAUSES), default=list(CAUSES),
        action=DistinctValues,
    )  # fmt: skip
    budget.add_argument(
        "--inits", nargs="+", choices=list(INITS), default=["normal"], action=DistinctValues,
        help="θ0 schemes (neural.network.initialization; default normal)",
    )  # fmt: skip
    budget.add_argument(
        "--quadratic", choices=["with", "without", "both"], default="both",
        help="ICNNs with the quadratic part ½xᵀ(LLᵀ)x, without it, or both (default %(default)s)",
    )  # fmt: skip
    budget.add_argument(
        "--batches", type=_count("--batches", 2), nargs="+", default=[1000],
        action=DistinctValues,
        help="batch sizes n of the KL runs (default 1000)",
    )  # fmt: skip
    budget.add_argument(
        "--steps", type=_count("--steps"), default=2000,
        help="optimizer steps of each run (default %(default)s)",
    )  # fmt: skip
    budget.add_argument(
        "--learning-rate", type=argument_type(number(positive_float), "--learning-rate"),
        default=0.01, help="Adam's learning rate of the KL runs (default 0.01)",
    )  # fmt: skip
    budget.add_argument(
        "--inner-steps", type=_count("--inner-steps"), default=100,
        help="K' of the implicit runs, which also run 10 K' (default %(default)s)",
    )  # fmt: skip
    budget.add_argument("--n-eval", type=_count("--n-eval", MIN_EVAL_SAMPLES),
                        default=DEFAULT_EVAL_SAMPLES)  # fmt: skip
    budget.add_argument(
        "--seed", type=_count("--seed", 0), default=0,
        help="θ0, data and evaluation streams (default 0)",
    )  # fmt: skip
    budget.add_argument(
        "--out", type=argument_type(report_folder, "--out"), default="errorbudget",
        help="output folder, created if its parent exists; one that holds an earlier "
        "report is replaced only with --overwrite (default ./errorbudget). The rows measured "
        "so far are kept in OUT-partial.jsonl beside it until the report is written",
    )  # fmt: skip
    budget.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    fit_command.add_parser(commands)
    evaluate_command.add_parser(commands)
    for name, texts in HELP_TEXTS.items():
        _add_help(commands.choices[name], texts)
    return parser


def _add_help(parser: argparse.ArgumentParser, texts: dict[str, str]) -> None:
    """Give the options named in ``texts`` their help where their argument line gives none
    or one without the default."""
    for action in parser._actions:
        for option in action.option_strings:
            if option in texts and "default" not in (action.help or ""):
                action.help = texts[option]


def _benchmark(args) -> int:
    given = {
        "init": args.init,
        "kl_reduction": args.kl_reduction,
        "implicit_start": args.implicit_start,
        "explicit_start": args.explicit_start,
    }
    choices = {key: value for key, value in given.items() if value is not None}
    if args.authors_code and choices:
        flags = ", ".join("--" + key.replace("_", "-") for key in choices)
        fail(args.parser, f"--authors-code sets {flags} itself; give either, not both", USAGE_ERROR)
    common = {
        "methods": args.methods,
        "size": args.size,
        "hidden": args.hidden,
        "n_eval": args.n_eval,
        "ground_truth": args.ground_truth,
    }
    try:  # a ground truth of another problem, a damaged or missing map file
        if args.authors_code:
            config = BenchmarkConfig.authors_code(**common)
        else:
            config = BenchmarkConfig(**common, **choices)
    except ValueError as error:
        fail(args.parser, error, USAGE_ERROR)
    try:  # the seeds to resume: a damaged line is refused before any seed runs
        read_results(args.out)
    except (ValueError, OSError) as error:
        fail(args.parser, error, USAGE_ERROR)
    seeds = range(args.first_seed, args.first_seed + args.seeds)

    def kept(error) -> str:  # SweepInterrupted counts the seeds; else before or after them
        if isinstance(error, SweepInterrupted):
            return str(error)
        return (
            f"the seeds that finished are in {args.out / RESULTS_FILE}; rerun the same command "
            "to resume (and to write the table and figure)"
        )

    return run_interruptible(lambda: _sweep(args, config, seeds), kept)


def _sweep(args, config, seeds) -> int:
    """The sweep of ``_benchmark``, its table and references printed."""
    start = time.perf_counter()
    try:
        results = run_benchmark(
            seeds,
            config,
            args.out,
            workers=args.workers,
            backend=args.backend,
            numba_threads=args.numba_threads,
            progress=not args.no_progress,
            force_resume=args.force_resume,
        )
    except SweepSetupError as error:  # refused before any seed ran
        fail(args.parser, error, USAGE_ERROR)
    wall = time.perf_counter() - start
    print(
        f"{len(results.records)} seeds ({len(results.ran)} run now, {len(results.skipped)} "
        f"resumed from {results.directory}), wall time {wall:.1f} s"
    )
    print(format_table(results.summary, results.config.truth_error()))
    print(format_references(results.records))
    if results.figure is not None:
        print(f"figure: {results.figure}")
    stored = len(read_results(results.directory))
    if stored > len(results.records):
        print(
            f"note: table.txt and fig2.png now summarize {len(results.records)} of the {stored} "
            f"seeds in {results.directory / RESULTS_FILE}, the ones asked for (give --first-seed "
            "and --seeds covering them all to summarize all)"
        )
    return 0


def _dimensions(args) -> int:
    try:
        check_workers(args.workers, args.backend)
        check_dimension_memory(args.dims, args.hidden, args.n_eval, args.workers)
        out = None if args.out is None else OutputFile(args.out, "--out", args.overwrite)
    except ValueError as error:
        fail(args.parser, error, USAGE_ERROR)
    return run_interruptible(
        lambda: _dimension_rows(args, out),
        lambda error: "no rows were written" if out is None else out.kept(),
    )


def _dimension_rows(args, out: OutputFile | None) -> int:
    """The dimension study of ``_dimensions``, its table printed and its rows written to
    ``out`` (if given)."""
    rows = dimension_study(
        args.dims,
        args.methods,
        size=args.size,
        seed=args.seed,
        hidden=args.hidden,
        init=args.init,
        n_eval=args.n_eval,
        workers=args.workers,
        backend=args.backend,
        progress=True,
    )
    print(format_dimension_table(rows))
    if out is not None:
        with out.staged() as staged:
            write_dimension_rows(rows, staged)
        print(f"rows: {out.path}")
    return 0


def _flowcheck(args, parser) -> int:
    cases = args.cases if args.cases is not None else [] if args.ground_truth else list(CASES)
    if args.ground_truth:
        settings = SETTINGS[args.size]
        try:  # a damaged file, or one that does not record its problem
            case = case_from_file(
                args.ground_truth, nodes=settings["nodes"], density_floor=settings["density_floor"]
            )
        except (ValueError, TypeError, KeyError) as error:
            parser.error(f"--ground-truth: {error}")
        cases = [*cases, case]
    try:
        folder = ReportFolder(args.out, "--out", FLOWCHECK_FILES, args.overwrite)
    except ValueError as error:
        parser.error(str(error))
    return run_interruptible(lambda: _flowcheck_report(args, cases, folder), folder.kept)


def _flowcheck_report(args, cases, folder: ReportFolder) -> int:
    """The flow checks of ``_flowcheck``, printed and written into ``folder``."""
    checks = []
    for case in cases:
        start = time.perf_counter()
        name = case if isinstance(case, str) else case.name
        print(f"checking {name} ({args.size}) ...", file=sys.stderr, flush=True)
        check = flow_check(case, tau=args.tau, steps=args.steps, size=args.size)
        checks.append(check)
        print(format_flowcheck(check))
        print(f"({name}: {time.perf_counter() - start:.1f} s)\n", flush=True)
    with folder.staged() as staged:
        text = "\n\n".join(format_flowcheck(c) for c in checks) + "\n"
        (staged / "flowcheck.txt").write_text(text)
        flowcheck_figure(checks).savefig(staged / "flowcheck.png", dpi=120)
    print(f"wrote {folder.path / 'flowcheck.txt'} and {folder.path / 'flowcheck.png'}")
    return 0


def _errorbudget(args, parser) -> int:
    quadratic = {"with": (True,), "without": (False,), "both": (False, True)}[args.quadratic]
    try:
        check_options(args.causes, args.inits, quadratic)
        check_run_lengths(args.steps, args.inner_steps)
        check_ground_truth_use(args.problems, args.ground_truth)
        problems = [make_problem(name, args.ground_truth) for name in args.problems]
        check_evaluation_memory(problems, args.n_eval)
        folder = ReportFolder(args.out, "--out", ERRORBUDGET_FILES, args.overwrite)
        partial = OutputFile(
            args.out.parent / f"{args.out.name}-partial.jsonl", "--out's rows file", args.overwrite
        )
    except (ValueError, OSError) as error:
        parser.error(str(error))
    partial.path.write_text("")

    def kept(error) -> str:  # the rows measured so far stay beside the unchanged folder
        count = len(partial.path.read_text().splitlines()) if partial.path.exists() else 0
        if folder.written or count == 0:
            partial.path.unlink(missing_ok=True)
            return folder.kept()
        report = "the report folder was not changed" if folder.existed else "no report was written"
        runs = "1 finished run" if count == 1 else f"{count} finished runs"
        return f"{report}; the rows of {runs} are in {partial.path}"

    return run_interruptible(
        lambda: _errorbudget_report(args, problems, quadratic, folder, partial.path), kept
    )


def _errorbudget_report(args, problems, quadratic, folder: ReportFolder, partial: Path) -> int:
    """The error budget of ``_errorbudget``: each run's row appended to ``partial`` as it
    finishes (so that a long study keeps what it measured), the report written into
    ``folder``, which then takes ``partial`` as its errorbudget.jsonl."""

    def save(row):
        with partial.open("a") as handle:
            handle.write(json.dumps(asdict(row)) + "\n")

    rows = error_budget(
        problems, widths=args.widths, causes=args.causes, inits=args.inits, batches=args.batches,
        quadratic=quadratic,
        steps=args.steps, learning_rate=args.learning_rate, inner_steps=args.inner_steps,
        n_eval=args.n_eval, seed=args.seed, progress=True, on_row=save,
    )  # fmt: skip
    text = format_budget(rows)
    print(text)
    with folder.staged() as staged:
        (staged / "errorbudget.txt").write_text(text + "\n")
        budget_figure(rows).savefig(staged / "errorbudget.png", dpi=120)
        shutil.copyfile(partial, staged / "errorbudget.jsonl")
    partial.unlink()
    print(f"wrote {folder.path}/errorbudget.txt, errorbudget.jsonl and errorbudget.png")
    return 0


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    studies = {"errorbudget": _errorbudget, "flowcheck": _flowcheck}  # they check with parser
    if args.command in studies:
        return studies[args.command](args, parser)
    if args.command == "benchmark":
        return _benchmark(args)
    if args.command == "fit":
        return fit_command.run(args)
    if args.command == "evaluate":
        return evaluate_command.run(args)
    return _dimensions(args)


if __name__ == "__main__":
    one_line_warnings("python -m neural")
    exit_with(main())
