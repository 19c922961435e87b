"""Command line: `python -m gridflow groundtruth ...` builds a ground-truth OT map file.

    python -m gridflow groundtruth --source paper-mixture --nodes 129 --out truth.npz

The map and its error estimate are `gridflow.groundtruth.build_ground_truth`'s, saved with
`save_map`.

Every argument, the box's cut of the source mass and the output file's folder are checked
before anything is solved; a bad one ends with `error: …` and exit status 2. An existing
--out file is replaced only with --overwrite. The file is written whole or not at all: Ctrl-C
ends the command with one line `interrupted: …` (the file written, or not changed) and
exit status 130.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from gridflow._compile_notice import silence as silence_compile_notice
from gridflow.checks import open_unit_interval, output_file, positive_float
from gridflow.cli import (
    ArgumentParser,
    OutputFile,
    argument_type,
    exit_with,
    fail,
    number,
    one_line_warnings,
    run_interruptible,
)
from gridflow.functionals import OutsideConeError
from gridflow.groundtruth import (
    DEFAULT_BOX,
    MAP_SUFFIX,
    MAX_FLOORED_MASS,
    MAX_RELATIVE_ERROR,
    MIN_NODES,
    SOURCE_NAMES,
    TARGET_NAMES,
    accuracy_problems,
    build_ground_truth,
    check_nodes,
    floor_problems,
    ground_truth_problems,
    load_map,
    read_source,
    save_map,
)
from gridflow.memory import format_bytes, peak_resident_memory
from gridflow.solvers import SolverError

DEFAULT_DENSITY_FLOOR = 1e-6
"""The floor of the source density relative to its maximum, unless --density-floor."""


def _source_box(bounds):
    """--source-box XMIN XMAX [YMIN YMAX] as GridDensity's box ((lower...), (upper...))."""
    if bounds is None:
        return None
    if len(bounds) not in (2, 4):
        raise ValueError(f"--source-box takes XMIN XMAX or XMIN XMAX YMIN YMAX, got {bounds}")
    return tuple(bounds[0::2]), tuple(bounds[1::2])


def _read_source(name: str, source_box):
    """The source of --source (with --source-box for a density file); ValueError naming the
    file for anything that reading it can raise (an empty file, an array of strings...)."""
    if source_box is not None and pathlib.Path(name).suffix.lower() not in (".npy", ".npz"):
        raise ValueError(
            f"--source-box is the box of a density file (.npy or .npz), and --source {name!r} "
            "is not one: drop --source-box (use --box for the grid's box)"
        )
    try:
        return read_source(name, _source_box(source_box))
    except (ValueError, TypeError, EOFError, OSError) as error:
        message = str(error)
        if name not in message:
            message = f"--source {name!r}: {message}"
        raise ValueError(message) from error


def parser() -> argparse.ArgumentParser:
    main_parser = ArgumentParser(prog="python -m gridflow", description=__doc__.split("\n")[0])
    commands = main_parser.add_subparsers(dest="command", required=True)
    ground = commands.add_parser(
        "groundtruth",
        help="build and save a ground-truth OT map (d = 1, 2 or 3)",
        description="Build a ground-truth OT map (the discrete minimizer of F_h) of any source "
        "and target, and save it with its estimated error and the problem it solves. Grids "
        "coarser than the source's features (e.g. --nodes below 65 for paper-mixture) give "
        "large error estimates, stated in the output.",
    )
    ground.add_argument(
        "--source",
        default="paper-mixture",
        help=f"the source ϱ0: {' or '.join(sorted(SOURCE_NAMES))}, or a Gaussian mixture file "
        '(JSON: {"means": [[...]], "covs": [[[...]]], "weights": [...]}); its dimension, 1, '
        "2 or 3, is the problem's (default paper-mixture)",
    )
    ground.add_argument(
        "--source-box",
        type=float,
        nargs="+",
        metavar="BOUND",
        default=None,
        help="the box a density file (.npy) covers: XMIN XMAX in d = 1, XMIN XMAX YMIN YMAX "
        "in d = 2 (a .npz may store it as 'box'); densities on grids are for d = 1, 2",
    )
    ground.add_argument(
        "--target",
        default="standard",
        help=f"the target γ: {' or '.join(sorted(TARGET_NAMES))} (N(0, I)), or a Gaussian file "
        '(JSON: {"mean": [...], "cov": [[...]]}) (default standard)',
    )
    ground.add_argument(
        "--nodes",
        type=argument_type(check_nodes),
        default=129,
        help=f"nodes per axis, odd and >= {MIN_NODES} (default 129)",
    )
    ground.add_argument(
        "--box",
        type=argument_type(number(positive_float), "box"),
        default=None,
        help="half-width of the box [-BOX, BOX]^d; it must hold all but 1e-6 of the source's "
        "and the target's mass (default: the density's own box for a density file, else "
        f"{DEFAULT_BOX:g})",
    )
    ground.add_argument(
        "--density-floor",
        type=argument_type(number(open_unit_interval), "density floor"),
        default=DEFAULT_DENSITY_FLOOR,
        help="floor of the source density relative to its maximum, in (0, 1) (default "
        f"{DEFAULT_DENSITY_FLOOR:g})",
    )
    ground.add_argument(
        "--out",
        type=argument_type(output_file, "output file", MAP_SUFFIX),
        default="ground_truth.npz",
        help="the map file to write, ending in .npz, in an existing writable folder; an "
        "existing file is replaced only with --overwrite (default ground_truth.npz)",
    )
    ground.add_argument(
        "--overwrite", action="store_true", help="replace the --out file if it exists"
    )
    ground.add_argument(
        "--force",
        action="store_true",
        help="write a ground truth that cannot grade anything (its density floor replaces "
        f"more than {MAX_FLOORED_MASS:g} of the source, or its estimated error exceeds "
        f"{MAX_RELATIVE_ERROR:.0%}% of the map's spread), with the reasons in its metadata "
        "('warnings'), which the neural studies refuse",
    )
    ground.add_argument(
        "--quiet",
        action="store_true",
        help="print the result line only: no progress bars, no compile notice",
    )
    return main_parser


def main(argv=None) -> int:
    main_parser = parser()
    args = main_parser.parse_args(argv)
    if args.quiet:
        silence_compile_notice()
    try:
        source = _read_source(args.source, args.source_box)
        problems = ground_truth_problems(
            source, args.target, args.nodes, args.box, args.density_floor
        )
        out = OutputFile(args.out, "--out", args.overwrite)
    except ValueError as error:
        main_parser.error(str(error))
    refusals = floor_problems(problems[-1])
    if refusals and not args.force:
        main_parser.error(f"{refusals[0]}; or --force to write it anyway, marked")
    return run_interruptible(lambda: _build(main_parser, args, problems, out, refusals), out.kept)


def _build(main_parser, args, problems, out: OutputFile, refusals: list[str]) -> int:
    """Solve, save the map to ``out`` (whole or not at all) and print the result line."""
    try:
        fine, metadata = build_ground_truth(
            problems[-1].source,
            problems[-1].target,
            args.nodes,
            (problems[-1].grid.lower, problems[-1].grid.upper),
            args.density_floor,
            progress=not args.quiet,
        )
    except SolverError as error:
        fail(main_parser, error)
    except OutsideConeError as error:  # Newton's method stepped out of K_h
        fail(
            main_parser,
            f"the solve failed: {error}; a larger --density-floor (default "
            f"{DEFAULT_DENSITY_FLOOR:g}) or more --nodes make the problem easier",
        )
    refusals += accuracy_problems(metadata)
    if refusals and not args.force:
        fail(main_parser, f"the ground truth is not written: {refusals[0]}; or --force")
    if refusals:
        metadata["warnings"] = refusals
    try:
        with out.staged() as staged:
            save_map(staged, fine, metadata)
    except (ValueError, OSError) as error:  # the folder went away during the solve
        fail(main_parser, error)
    loaded = load_map(args.out)
    sys.stderr.flush()  # the progress bars (closed by now) end before the result line
    print(
        f"wrote {args.out}: {args.source} -> {problems[-1].target.name} on "
        f"{loaded.grid.shape} nodes, "
        f"F_h = {loaded.metadata['energy']:.6f}, estimated L2(rho0) error "
        f"{metadata['error_estimate']:.2e} (difference to the {metadata['coarser_shape']} "
        f"grid {metadata['difference_to_coarser']:.2e}), {metadata['seconds']:.1f} s, peak "
        f"memory {format_bytes(peak_resident_memory())}"
        + "".join(f"\nWARNING (recorded in the file): {reason}" for reason in refusals)
    )
    return 0


if __name__ == "__main__":
    one_line_warnings("python -m gridflow")
    exit_with(main())
