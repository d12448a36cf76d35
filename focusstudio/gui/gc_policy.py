"""Python's cyclic garbage collection runs on the GUI thread only, once the window has background jobs.

An automatic collection runs in whichever thread happens to allocate when a threshold is crossed.
When that is a worker (a fusion or a training step building a network) and the garbage holds
Qt objects of the main thread (event loops, timers, signal relays that sit in reference cycles),
their C++ destructors run in the worker while the main thread is inside Qt, and the two threads
can deadlock: CI hung for the rest of its 90 minutes with the training wizard's worker stopped in
torch's ``Module.__init__`` and the main thread in ``QEventLoop.quit``. pyqtgraph's
``GarbageCollector`` turns automatic collection off and collects on a main-thread timer instead,
with the interpreter's own thresholds, so memory behaves as before.
"""

from __future__ import annotations

import gc
import threading

#: How often the main thread looks at the collector's counts (pyqtgraph's default is 1 s; a
#: worker allocating fast would leave cycles waiting that long).
CHECK_INTERVAL_S = 0.25

_collector: object | None = None


def collect_on_main_thread() -> None:
    """Turn automatic collection off and collect on a main-thread timer (idempotent)."""
    global _collector
    if _collector is not None:
        return
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("the garbage collector's timer must be installed on the GUI thread")
    from pyqtgraph.util.garbage_collector import GarbageCollector

    _collector = GarbageCollector(interval=CHECK_INTERVAL_S)


def restore_automatic_collection() -> None:
    """Stop the timer and turn automatic collection back on (tests, and an app that ends)."""
    global _collector
    if _collector is None:
        return
    _collector.timer.stop()  # type: ignore[attr-defined]
    _collector = None
    gc.enable()
    gc.collect()


def collecting_on_main_thread() -> bool:
    return _collector is not None and not gc.isenabled()
