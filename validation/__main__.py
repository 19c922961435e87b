"""`python -m validation`: measure the paper's statements and write the report.

Prints a table (statement, setting, measured, theoretical, verdict) and writes it as
report.json and report.md beside the PNG figures in the output folder. Exits with
status 1 when any check fails, so that it serves as a regression check, and with status 2
(`error: …`, before any check runs) on a bad argument or an output folder that cannot be
written or holds an earlier report (replaced only with --overwrite).

The report folder is written whole or not at all (`gridflow.cli.ReportFolder`): built beside
the target and renamed into place, so that a rewritten report keeps no figure of an earlier
run. Ctrl-C ends the command with one line `interrupted: …` (the report folder was not
changed, or nothing was written) and exit status 130.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time

from gridflow.cli import (
    ArgumentParser,
    DistinctValues,
    ReportFolder,
    argument_type,
    exit_with,
    one_line_warnings,
    report_folder,
    run_interruptible,
)
from validation import gaussian_checks, grid1d_checks, grid2d_checks, grid3d_checks, neural_checks

SUITES = {
    "gaussian": gaussian_checks,
    "grid1d": grid1d_checks,
    "grid2d": grid2d_checks,
    "grid3d": grid3d_checks,
    "neural": neural_checks,
}
COLUMNS = ("statement", "setting", "measured", "theoretical", "verdict")
REPORT_FILES = ("report.json", "report.md", "*.png")
"""What the report folder holds (--overwrite replaces only a folder of these)."""


def parse_arguments(argv):
    """The arguments, and the checked report folder (exit 2 on a bad one)."""
    parser = ArgumentParser(prog="python -m validation", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out",
        type=argument_type(report_folder, "output folder"),
        default="validation-report",
        help="output folder, created if its parent exists; one that holds an earlier report "
        "is replaced whole only with --overwrite (default: ./validation-report)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the report in --out (only report.json, report.md and figures)",
    )
    parser.add_argument(
        "--size",
        choices=("quick", "full"),
        default="quick",
        help="quick (default, 2 to 3 minutes on 2 cores) or full (larger grids, d = 50, the 3D "
        "map at 65³: about half an hour)",
    )
    parser.add_argument(
        "--only",
        choices=tuple(SUITES),
        action=DistinctValues,
        help="run only this suite (repeatable)",
    )
    arguments = parser.parse_args(argv)
    try:
        folder = ReportFolder(arguments.out, "output folder", REPORT_FILES, arguments.overwrite)
    except ValueError as error:
        parser.error(str(error))
    return arguments, folder


def table(rows) -> str:
    widths = [max([len(col), *(len(str(r[col])) for r in rows)]) for col in COLUMNS]

    def line(values):
        return (
            "| " + " | ".join(str(v).ljust(w) for v, w in zip(values, widths, strict=True)) + " |"
        )

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(COLUMNS), rule, *(line([r[c] for c in COLUMNS]) for r in rows)])


def main(argv=None) -> int:
    arguments, folder = parse_arguments(argv)
    return run_interruptible(lambda: _report(arguments, folder), folder.kept)


def _report(arguments, folder: ReportFolder) -> int:
    """Run the suites, print the table and write the report into ``folder``."""
    with folder.staged() as outdir:
        failed, figures = _write_report(arguments, outdir)
    print(
        f"report written to {folder.path}/report.md, report.json and {figures} figures",
        file=sys.stderr,
    )
    return 1 if failed else 0


def _write_report(arguments, outdir) -> tuple[int, int]:
    """The suites' checks and figures, the report written into ``outdir`` (the staged
    folder that becomes the report folder): the numbers of failed checks and of figures."""
    rows, figures, captions, timings = [], [], {}, {}
    for name in arguments.only or SUITES:
        start = time.perf_counter()
        print(f"running {name} checks ({arguments.size}) ...", file=sys.stderr, flush=True)
        for check in SUITES[name].run(arguments.size, outdir):
            rows.append({"suite": name, **dataclasses.asdict(check)})
            figures += [f for f in check.details.get("figures", []) if f not in figures]
            captions.update(check.details.get("captions", {}))
        timings[name] = round(time.perf_counter() - start, 2)
    failed = sum(r["verdict"] == "fail" for r in rows)
    summary = (
        f"{len(rows)} checks: {sum(r['verdict'] == 'pass' for r in rows)} pass, "
        f"{failed} fail, {sum(r['verdict'] == 'n/a' for r in rows)} n/a"
    )
    text = table(rows)
    print(text)
    print(summary)
    (outdir / "report.json").write_text(
        json.dumps(
            {"size": arguments.size, "seconds": timings, "summary": summary, "checks": rows},
            indent=2,
            default=float,
        )
    )
    markdown = [f"# Validation report ({arguments.size})", "", summary, "", text, ""]
    for number, name in enumerate(figures, start=1):
        caption = captions.get(name, "")
        markdown += [f"![Figure {number}: {name}]({name})", "", f"*Figure {number}.* {caption}", ""]
    (outdir / "report.md").write_text("\n".join(markdown) + "\n")
    return failed, len(figures)


if __name__ == "__main__":
    one_line_warnings("python -m validation")
    exit_with(main())
