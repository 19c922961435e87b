"""Command-line plumbing shared by `python -m gridflow` and `python -m validation`.

User errors end as argparse's do: the usage, one line `prog: error: …`, exit status 2,
and before any long computation. The argument checks are the package's own validators
(`gridflow.checks`), wrapped by `argument_type` so that their message reaches the user.
A computation that fails for a reason the user can act on (a solver that does not
converge) ends with one `prog: error: …` line and exit status 1. Tracebacks are for bugs.

Ctrl-C ends every command with one line `interrupted: <what was kept>` on stderr and exit
status 130 (`run_interruptible`). Outputs are written whole or not at all: a report folder is
built in a hidden folder beside its target and renamed into place (`ReportFolder`), a file
under a temporary name (`OutputFile`). An output that exists is replaced only when the user
asks with --overwrite, and then whole: the figures of an earlier run do not remain.
"""

from __future__ import annotations

import _thread
import argparse
import fnmatch
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from gridflow.checks import output_folder, writable_folder

USAGE_ERROR = 2
COMPUTATION_ERROR = 1
INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT), as shells report it."""


def argument_type(check, *args):
    """An argparse `type`: check(text, *args), its ValueError/TypeError an argparse error."""

    def convert(text):
        try:
            return check(text, *args)
        except (ValueError, TypeError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = getattr(check, "__name__", "value")  # argparse names the type with it
    return convert


NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|nan)$", re.IGNORECASE)
"""A negative number as a command-line argument: decimal, exponent, -inf or -nan."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, reading ``-1e-3`` as a number (argparse takes an argument that
    starts with ``-`` for an option unless it looks like a negative number, and its pattern
    for one has no exponent, so ``--box -1e1 10`` ended with "expected one argument"), and
    refusing an option repeated where the last would win. Subcommands' parsers are of the
    same class."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = NEGATIVE_NUMBER

    def parse_known_args(self, args=None, namespace=None):
        """argparse's, refusing an option given twice whose later value would silently
        replace the earlier one (`--methods adam --methods euclidean` ran euclidean only);
        options that gather their values (DistinctValues) may repeat."""
        gathering = (DistinctValues, argparse._AppendAction, argparse._CountAction)
        seen = set()
        for text in sys.argv[1:] if args is None else args:
            if text == "--":
                break
            action = self._option_string_actions.get(text.split("=", 1)[0])
            if action is None or isinstance(action, gathering):
                continue
            if action.dest in seen:
                self.error(f"argument {'/'.join(action.option_strings)}: given more than once")
            seen.add(action.dest)
        return super().parse_known_args(args, namespace)


class DistinctValues(argparse.Action):
    """An argparse action gathering an option's values, refusing a value listed twice.

    The values of every repetition of the option are gathered (``--dims 2 --dims 3`` is
    ``--dims 2 3``; a repetition used to drop the values before it without a word), in one
    ``nargs="+"`` list or across options that take one value each. A repeated value is
    refused rather than merged, since it is more often a typo for another value than meant.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        given = getattr(namespace, self.dest)
        given = [] if given is None or given is self.default else list(given)
        new = list(values) if isinstance(values, list) else [values]
        seen = []
        for value in given + new:
            if value in seen:
                parser.error(f"argument {option_string}: {value!r} is listed more than once")
            seen.append(value)
        setattr(namespace, self.dest, seen)


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


def widths(text, name: str) -> tuple[int, ...]:
    """Comma-separated layer widths like 20,20, each >= 1, as a tuple; ValueError naming
    ``name`` otherwise."""
    try:
        values = tuple(int(w) for w in str(text).split(","))
    except ValueError:
        raise ValueError(f"{name} takes widths like 20,20, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"{name} widths must be >= 1, got {text!r}")
    return values


def named_folder(text, name: str) -> Path:
    """An argparse check of an output folder: a name that is not empty ('' would be the
    current folder), of a folder that is writable or can be created (`checks.output_folder`)."""
    if not str(text).strip():
        raise ValueError(f"{name} must name a folder, got {str(text)!r}")
    return output_folder(str(text), name)


def report_folder(text, name: str) -> Path:
    """`named_folder`, and not '.' or '..': a report replaces its whole folder."""
    if Path(str(text)).name in ("", ".", ".."):
        raise ValueError(
            f"{name} must name a folder for the report, e.g. 'report', got {str(text)!r} (the "
            "report replaces the whole folder)"
        )
    return named_folder(text, name)


def is_interrupt(error: BaseException) -> bool:
    """Whether ``error`` is, or was raised while handling, a KeyboardInterrupt (a SIGINT in
    compiled code surfaces as a SystemError whose context is the KeyboardInterrupt)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def run_interruptible(run, kept) -> int:
    """``run()``'s exit status; after Ctrl-C (`is_interrupt`) the line ``interrupted: …``
    with ``kept(error)`` (what the command kept) on stderr, and INTERRUPTED. The line starts
    after a newline, which ends a progress bar's line. A Ctrl-C that lands in a callback
    (`interrupts_lost_in_callbacks_delivered`) is not lost meanwhile."""
    try:
        with interrupts_lost_in_callbacks_delivered():
            return run()
    except BaseException as error:
        if not is_interrupt(error):
            raise
        print(f"\ninterrupted: {kept(error)}", file=sys.stderr, flush=True)
        return INTERRUPTED


@contextmanager
def interrupts_lost_in_callbacks_delivered():
    """Inside the block, a KeyboardInterrupt that Python cannot raise where it arose (in a
    weakref callback or a finalizer, where it is printed as "Exception ignored" and dropped)
    is delivered again to the main thread: without this, a Ctrl-C that lands in one (seen
    once in 40 runs of the validation command on a cold numba cache, in a weakref callback
    of importlib) is ignored and the command runs to its end. The delivery waits until the
    main thread has left ``sys.unraisablehook``: raised inside it, the KeyboardInterrupt
    would be dropped again (`_interrupt_main_outside`)."""
    previous = sys.unraisablehook

    def hook(unraisable):
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            threading.Thread(target=_interrupt_main_outside, args=(hook.__code__,)).start()
        else:
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


def _interrupt_main_outside(code) -> None:
    """SIGINT to the main thread once no frame of its stack runs ``code`` (checked under the
    GIL, so the main thread is between two bytecodes and not inside ``code``)."""
    main = threading.main_thread().ident
    while True:
        frame = sys._current_frames().get(main)
        while frame is not None and frame.f_code is not code:
            frame = frame.f_back
        if frame is None:
            _thread.interrupt_main(signal.SIGINT)
            return
        time.sleep(0.001)


def one_line_warnings(prog: str) -> None:
    """Show this process's warnings as one line ``prog: warning: …`` on stderr: a command's
    user reads what to change, not the file and source line of the code that warned."""

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        print(f"{prog}: warning: {text}", file=sys.stderr if file is None else file, flush=True)

    warnings.showwarning = show


def exit_with(status: int) -> None:
    """End a command's process with ``status``. After Ctrl-C (INTERRUPTED) a second Ctrl-C
    is ignored: it would interrupt the exit handlers (tqdm's) with a traceback after the
    ``interrupted: …`` line. Only for a ``__main__``: a caller in Python keeps its handler."""
    if status == INTERRUPTED:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(status)


@contextmanager
def deferred_interrupts():
    """Ctrl-C held back inside the block and delivered at its end: for the few renames that
    put an output in place, which must all happen or none. (Signals reach the main thread
    only; elsewhere the block runs as it is.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received and callable(previous):
        previous(signal.SIGINT, received[-1])


def _creation_mode(kind: int) -> int:
    """``kind`` (0o666 for files, 0o777 for folders) less the umask: the mode ``open`` and
    ``mkdir`` give, where ``tempfile`` gives 0o600 or 0o700."""
    umask = os.umask(0)
    os.umask(umask)
    return kind & ~umask


class OutputFile:
    """A file written whole or not at all, replacing an existing one only with ``overwrite``.

    ``staged()`` yields a temporary path beside the file (same suffix); when the block ends
    normally it is renamed onto the file, and ``written`` becomes True. An exception or
    Ctrl-C in the block removes it and leaves the file as it was. ``kept()`` says which,
    for the ``interrupted: …`` line.
    """

    def __init__(self, path, name: str, overwrite: bool):
        self.path = Path(path)
        self.existed = self.path.exists()
        self.overwrite = overwrite
        self.written = False
        if self.path.is_dir():
            raise ValueError(f"{name}: {str(self.path)!r} is a folder, not a file")
        if self.existed and not overwrite:
            raise ValueError(
                f"{name}: {str(self.path)!r} exists; give --overwrite to replace it, or another "
                "name"
            )

    @contextmanager
    def staged(self):
        descriptor, name = tempfile.mkstemp(
            prefix=f".{self.path.stem}.", suffix=self.path.suffix, dir=self.path.parent
        )
        os.close(descriptor)
        temporary = Path(name)
        try:
            yield temporary
            os.chmod(temporary, _creation_mode(0o666))
            with deferred_interrupts():
                self._put(temporary)
                self.written = True
        finally:
            temporary.unlink(missing_ok=True)

    def _put(self, temporary: Path) -> None:
        """The file renamed into place; without ``overwrite``, only if no other run put one
        there meanwhile (a hard link fails where a rename would replace)."""
        if self.overwrite:
            os.replace(temporary, self.path)
            return
        try:
            os.link(temporary, self.path)
        except FileExistsError:
            raise SystemExit(_taken(self.path)) from None
        except OSError:  # a file system without hard links
            os.replace(temporary, self.path)

    def kept(self, error=None) -> str:
        if self.written:
            return f"{self.path} was written"
        if self.existed:
            return f"{self.path} was not changed"
        return "nothing was written"


class ReportFolder:
    """A report folder written whole or not at all.

    ``owned`` are the names (glob patterns) of the files the command writes. A folder that
    exists and is not empty is refused (ValueError) unless ``overwrite``; with ``overwrite`` it is
    replaced whole, so that no figure of an earlier run remains, but only if it holds nothing
    except ``owned`` files (never a folder of the user's other files). A pattern owns files
    only in a folder that holds one of the plain names too (a report): "*.png" is not the
    pictures of a folder that holds no report.

    ``staged()`` yields a new hidden folder beside the target to write the report into; when
    the block ends normally the target (if any) is renamed aside, the new folder renamed in
    and the old one removed, Ctrl-C held back meanwhile, and ``written`` becomes True. An
    exception or Ctrl-C in the block removes the new folder and leaves the target as it was.
    """

    def __init__(self, path, name: str, owned: tuple[str, ...], overwrite: bool):
        self.path = Path(path)
        self.existed = self.path.exists()
        self.overwrite = overwrite
        self.written = False
        if not self.existed:
            return
        writable_folder(self.path.absolute().parent, f"{name} (the folder holding it)")
        entries = sorted(entry.name for entry in self.path.iterdir())
        named = [name for name in owned if not any(sign in name for sign in "*?[")]
        if named and not set(named) & set(entries):  # no report: "*.png" is nobody's figure
            owned = tuple(named)
        foreign = [
            entry
            for entry in entries
            if (self.path / entry).is_dir() or not any(fnmatch.fnmatch(entry, p) for p in owned)
        ]
        if foreign:  # refused with or without --overwrite: never suggest it here
            raise ValueError(
                f"{name}: {str(self.path)!r} holds {_listing(foreign)}, which this command does "
                "not write: give another folder (--overwrite replaces only a folder of its own "
                "reports)"
            )
        if entries and not overwrite:
            raise ValueError(
                f"{name}: {str(self.path)!r} already holds {_listing(entries)}; give --overwrite "
                "to replace it with this run's report, or another folder"
            )

    @contextmanager
    def staged(self):
        parent = self.path.absolute().parent
        stage = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".partial", dir=parent))
        try:
            yield stage
            os.chmod(stage, _creation_mode(0o777))
            with deferred_interrupts():
                self._swap(stage)
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def _swap(self, stage: Path) -> None:
        """The target replaced by ``stage``: the old one renamed aside first, removed last."""
        if not self.overwrite and self.path.is_dir() and any(self.path.iterdir()):
            raise SystemExit(_taken(self.path))  # another run's report, written meanwhile
        if not self.path.exists():
            try:
                os.rename(stage, self.path)
            except OSError:  # a folder that another run filled since the test above
                raise SystemExit(_taken(self.path)) from None
            self.written = True
            return
        old = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".old", dir=stage.parent))
        os.rename(self.path, old / "report")
        os.rename(stage, self.path)
        self.written = True
        shutil.rmtree(old, ignore_errors=True)

    def kept(self, error=None) -> str:
        if self.written:
            return f"the report in {self.path} is complete"
        if self.existed:
            return f"the report folder {self.path} was not changed"
        return "nothing was written"


def _taken(path: Path) -> str:
    """The error of a run whose output another run wrote first (exit status 1)."""
    return (
        f"error: {path} was written by another run while this one worked; it was not "
        "replaced and this run's result is not saved (give --overwrite to replace it)"
    )


def _listing(names, shown: int = 3) -> str:
    """'a, b, c and 4 more' for a message."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
