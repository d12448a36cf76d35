"""Work-arounds for bugs in the Qt binding, each detected by behaviour rather than by version.

PySide6 6.12.0 on Python ≤ 3.11: ``SignalInstance.emit()`` returns ``True`` without taking a new
reference, so every signal emitted from Python (ours, pyqtgraph's, superqt's workers) removes
one reference from the ``True`` singleton. After a few hundred emissions its count reaches zero
and the interpreter aborts ("Fatal Python error: bool_dealloc: deallocating True or False"),
at the latest when it exits. Python 3.12 made ``True`` immortal, which hides the bug there.
"""

from __future__ import annotations

import ctypes
import sys

#: References added to True/False when the bug is present: far more than a session can emit.
_EXTRA_REFERENCES = 1 << 40


def emit_drops_bool_references() -> bool:
    """True when emitting a signal from Python loses a reference to ``True``."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    emissions = 16
    before = sys.getrefcount(True)
    for _ in range(emissions):
        probe.ping.emit()
    lost = before - sys.getrefcount(True)
    # Give the references back at once: the probe itself must not bring the count closer to zero.
    _add_references(True, max(lost, 0))
    return lost >= emissions


def _add_references(singleton: bool, count: int) -> None:
    if count > 0:
        # ob_refcnt is the first field of every CPython object (non-debug builds, ≤ 3.11 here).
        ctypes.c_ssize_t.from_address(id(singleton)).value += count


def protect_bool_singletons() -> bool:
    """Make True/False effectively immortal when the binding under-counts them; returns whether it did."""
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False  # immortal already (PEP 683), or not CPython's object layout
    if not emit_drops_bool_references():
        return False
    for singleton in (True, False):
        _add_references(singleton, _EXTRA_REFERENCES)
    return True
