"""SIGTERM and SIGHUP clean up like Ctrl+C: the signals become an exception in the main thread.

Python turns SIGINT into KeyboardInterrupt, so every ``try/finally`` and ``except BaseException``
clean-up (temporary files, a run's published outputs) runs on Ctrl+C; but SIGTERM (``kill``, a
service manager, a CI timeout) and SIGHUP (a closed terminal) kill the process outright and leave
``.part`` files behind. :func:`exit_on_signals` makes all three raise :class:`Terminated`, a
KeyboardInterrupt. :func:`signals_held_back` delays that exception while a short critical section
(publishing outputs, undoing them) runs, so it is never cut in half.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterable, Iterator
from types import FrameType
from typing import Any


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM, SIGHUP or SIGINT.

    A subclass of KeyboardInterrupt, so every clean-up written for Ctrl+C runs for these too.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        try:
            self.signame = signal.Signals(signum).name
        except ValueError:
            self.signame = f"signal {signum}"
        super().__init__(self.signame)


_held_back = 0
_pending: list[int] = []


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    if _held_back:
        _pending.append(signum)  # raised when the commit or clean-up in progress has finished
        return
    raise Terminated(signum)


def signal_pending() -> bool:
    """Whether a signal arrived inside the current :func:`signals_held_back` block."""
    return bool(_pending)


@contextlib.contextmanager
def signals_held_back() -> Iterator[None]:
    """Run a publication or a clean-up to its end; a signal that arrives meanwhile is raised after."""
    global _held_back
    _held_back += 1
    try:
        yield
    finally:
        _held_back -= 1
        if not _held_back and _pending:
            signum = _pending[0]
            _pending.clear()
            raise Terminated(signum)


@contextlib.contextmanager
def exit_on_signals(signums: Iterable[int] | None = None) -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP (where they exist) into :class:`Terminated` for the block.

    Only the main thread can install handlers; elsewhere (the window's workers) this does nothing.
    """
    wanted = list(signums) if signums is not None else [
        getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
    ]
    previous: dict[int, Any] = {}
    for signum in wanted:
        with contextlib.suppress(ValueError, OSError):  # not the main thread / not settable
            previous[signum] = signal.signal(signum, _raise_terminated)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
