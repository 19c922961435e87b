"""One line on stderr when gridflow's numba kernels are compiled: the first run only.

The kernels are compiled with cache=True, so a machine compiles them once (and again after
gridflow's source changes); every later process loads them from numba's cache. numba
announces each real compilation (not a cache load) through its event API
("numba:compile"); the listener below prints once per process, at the first compilation
of a gridflow kernel, so that the pause of the first run is explained, and never on a
warm cache. COLD_COMPILE_SECONDS: a cold compile of all of gridflow's kernels measured
2.3 s on the 2-core reference machine.
"""

from __future__ import annotations

import sys

from numba.core import event

COLD_COMPILE_SECONDS = 3
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
