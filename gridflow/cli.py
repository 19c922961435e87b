"""Command-line plumbing shared by `python -m gridflow` and `python -m validation`.

User errors end as argparse's do: the usage, one line `prog: error: …`, exit status 2,
and before any long computation. The argument checks are the package's own validators
(`gridflow.checks`), wrapped by `argument_type` so that their message reaches the user.
A computation that fails for a reason the user can act on (a solver that does not
converge) ends with one `prog: error: …` line and exit status 1. Tracebacks are for bugs.
"""

from __future__ import annotations

import argparse

USAGE_ERROR = 2
COMPUTATION_ERROR = 1


def argument_type(check, *args):
    """An argparse `type`: check(text, *args), its ValueError/TypeError an argparse error."""

    def convert(text):
        try:
            return check(text, *args)
        except (ValueError, TypeError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = getattr(check, "__name__", "value")  # argparse names the type with it
    return convert


def fail(parser: argparse.ArgumentParser, message: str, status: int = COMPUTATION_ERROR):
    """Print `prog: error: message` (one line, no usage) on stderr and exit with `status`."""
    parser.exit(status, f"{parser.prog}: error: {' '.join(str(message).split())}\n")


def integer(text, name: str, minimum: int, odd: bool = False) -> int:
    """`text` as an integer >= minimum (and odd if asked): a command-line count."""
    try:
        value = int(str(text), 10)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {text!r}") from None
    if value < minimum or (odd and value % 2 == 0):
        kind = "an odd integer" if odd else "an integer"
        raise ValueError(f"{name} must be {kind} >= {minimum}, got {value}")
    return value


def number(check):
    """A check of numbers (``gridflow.checks``) as a check of command-line text: the text is
    parsed as a float first, and text that is not a number is refused by name."""

    def parse(text, name: str, *args):
        try:
            value = float(str(text))
        except ValueError:
            raise ValueError(f"{name} must be a number, got {text!r}") from None
        return check(value, name, *args)

    parse.__name__ = getattr(check, "__name__", "number")
    return parse
