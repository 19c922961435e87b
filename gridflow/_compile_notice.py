"""One line on stderr when gridflow's numba kernels are compiled: the first run only.

The kernels are compiled with cache=True, so a machine compiles them once (and again after
gridflow's source changes); every later process loads them from numba's cache. numba
announces each real compilation (not a cache load) through its event API
("numba:compile"); the listener below prints once per process, at the first compilation
of a gridflow kernel, so that the pause of the first run is explained, and never on a
warm cache. COLD_COMPILE_SECONDS: `python -m gridflow groundtruth --nodes 65` took 11.8 s
with an empty cache and 4.0 s with a warm one on the 2-core reference machine (0.6.0: 6.5 s
and 4.1 s; the multifrontal factorization's kernels, compiled since 0.7.0, are most of the
difference).
"""

from __future__ import annotations

import sys

from numba.core import event

COLD_COMPILE_SECONDS = 8
MESSAGE = (
    f"gridflow: compiling numba kernels, first run only, about {COLD_COMPILE_SECONDS} s in all"
)


class FirstCompileNotice(event.Listener):
    """Prints MESSAGE on stderr at the first compilation of a gridflow kernel."""

    def __init__(self):
        self.said = False

    def on_start(self, ev):
        if self.said:
            return
        function = getattr(ev.data.get("dispatcher"), "py_func", None)
        if getattr(function, "__module__", "").startswith("gridflow."):
            self.said = True
            print(MESSAGE, file=sys.stderr, flush=True)

    def on_end(self, ev):
        pass


LISTENER = FirstCompileNotice()
event.register("numba:compile", LISTENER)


def silence() -> None:
    """No notice in this process (a command's --quiet: its result line is all it prints)."""
    LISTENER.said = True
