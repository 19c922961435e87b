"""Ctrl-C during numba's compilation or cache loading is delivered when it ends.

numba loads a cached kernel (and compiles one) through LLVM, which calls back into Python
(llvmlite's object-cache callbacks). A KeyboardInterrupt raised inside such a callback
cannot propagate through the C++ frames: it is printed as "Exception ignored on calling
ctypes callback function" and LLVM goes on with a missing buffer, which crashed the process
with SIGSEGV (or left it hung) in about 1 run in 7 of the flow check's Ctrl-C test on a
fresh install. Every compilation and cache load runs under numba's global compiler lock,
which announces itself through numba's event API ("numba:compiler_lock"); the listener
below holds SIGINT back from the lock's first acquisition to its last release, in the main
thread, and then hands it to the handler that was in place (a KeyboardInterrupt raised in
Python code, where the commands' Ctrl-C handling takes it).

A compiled kernel that returns arrays calls back into Python too, outside the lock: boxing
each array unpickles its Python type through numba's ``serialize._numba_unpickle``, which
memoizes by (address, hash) with ``try: memo[key] except KeyError``. Ctrl-C landing on the
first return of a kernel raises KeyboardInterrupt inside that callback; when the kernel
returns a tuple of arrays, numba's tuple boxing does not check for the failed item and
boxes the next one, whose memo lookup misses, raises KeyError, catches it, and so clears
the KeyboardInterrupt: the kernel returned a tuple holding NULL with no exception set, and
unpacking it crashed the process with SIGSEGV (about 1 run in 8 of the flow check's Ctrl-C
test on a warm cache, at ``hessian_pass``'s first call). ``_unpickle`` below is the same
memo without the KeyError, so the KeyboardInterrupt stays set and the call surfaces as a
SystemError whose context is the KeyboardInterrupt (``gridflow.cli.is_interrupt``), as on
any later return. Its code replaces the function's own, which numba's C side holds from
its first call on.
"""

from __future__ import annotations

import signal
import threading

from numba.core import event, serialize


class InterruptsAfterCompiling(event.Listener):
    """Holds SIGINT back while the main thread holds numba's compiler lock.

    A Ctrl-C becomes a KeyboardInterrupt at the main thread's next call or function entry,
    which can be one inside ``on_start`` or ``on_end``; each of their steps leaves the
    listener as before the event or as after it. The outermost ``on_start`` swaps the
    handler before it counts the lock: ``signal.signal`` hands a SIGINT already received to
    the old handler before it changes anything, and holds any later one once it returns, so
    a KeyboardInterrupt there leaves nothing counted (numba then neither takes the lock nor
    ends the event). Counting first left the count at 1 and the handler not swapped, and
    SIGINT was not held again in that process. A Ctrl-C held when another becomes a
    KeyboardInterrupt just after ``on_end`` gave the handler back is dropped at the next
    outermost ``on_start``: that KeyboardInterrupt stands for both, and the next release
    delivered the held one again, after the command had handled the first. Blocking SIGINT
    with ``signal.pthread_sigmask`` instead would not hold one that CPython's C handler has
    already taken, nor one another thread takes: the Python handler raises those.
    """

    def __init__(self):
        self.depth = 0
        self.previous = None
        self.received = False

    def _hold(self, signum, frame):
        self.received = True

    def on_start(self, ev):
        if threading.current_thread() is not threading.main_thread():
            return
        if self.depth == 0:
            self.received = False
            self.previous = signal.signal(signal.SIGINT, self._hold)
        self.depth += 1

    def on_end(self, ev):
        if threading.current_thread() is not threading.main_thread() or self.depth == 0:
            return
        self.depth -= 1
        if self.depth:
            return
        previous, self.previous = self.previous, None
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
        if self.received:
            self.received = False
            if callable(previous):
                previous(signal.SIGINT, None)  # default_int_handler raises KeyboardInterrupt


LISTENER = InterruptsAfterCompiling()
event.register("numba:compiler_lock", LISTENER)


def _unpickle(address, bytedata, hashed):
    """numba's ``serialize._numba_unpickle`` without raising and catching a KeyError, which
    cleared an exception pending from the previous item of a tuple being boxed. Runs as
    that function's code, so its names are numba.core.serialize's."""
    key = (address, hashed)
    obj = _unpickled_memo.get(key)  # noqa: F821
    if obj is None:
        obj = _unpickled_memo[key] = cloudpickle.loads(bytedata)  # noqa: F821
    return obj


if hasattr(serialize, "_unpickled_memo") and hasattr(serialize, "cloudpickle"):
    serialize._numba_unpickle.__code__ = _unpickle.__code__
