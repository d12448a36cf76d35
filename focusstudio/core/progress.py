"""Cancellation and progress reporting shared by the CLI and the GUI.

Long work in the core is a plain generator that yields :class:`ProgressEvent` objects and
checks a :class:`CancelToken` between steps; the generator's return value is the result.

Some steps are long without yielding (a network's forward pass, an ECC registration, a
morphology pass per label) and sit deep below functions that take no token. They call
:func:`check_cancelled`, which checks the token of the enclosing :func:`cancel_scope`:
:func:`scoped` enters that scope around each step of a generator only while the step runs, so
the scope never leaks to other work of the same thread while the generator is suspended.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class Cancelled(Exception):
    """Raised inside a worker when its :class:`CancelToken` was cancelled."""


class CancelToken:
    """Thread-safe cancellation flag; ``raise_if_cancelled`` is called between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()


class _Scopes(threading.local):
    def __init__(self) -> None:
        self.tokens: list[CancelToken] = []


_scopes = _Scopes()


@contextmanager
def cancel_scope(token: CancelToken | None) -> Iterator[None]:
    """Make ``token`` the one :func:`check_cancelled` checks in this thread (None: no change)."""
    if token is None:
        yield
        return
    tokens = _scopes.tokens
    tokens.append(token)
    try:
        yield
    finally:
        tokens.pop()


def check_cancelled() -> None:
    """Raise :class:`Cancelled` when the token of the innermost :func:`cancel_scope` is set."""
    tokens = _scopes.tokens
    if tokens:
        tokens[-1].raise_if_cancelled()


def scoped(gen: Generator[ProgressEvent, None, T], token: CancelToken | None) -> Generator[ProgressEvent, None, T]:
    """``gen`` with ``token`` in scope while each of its steps runs (see :func:`cancel_scope`)."""
    while True:
        with cancel_scope(token):
            try:
                event = next(gen)
            except StopIteration as stop:
                return stop.value
        yield event


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a long job: ``fraction`` in [0, 1] of the whole job, a stage name."""

    stage: str
    fraction: float
    message: str = ""


class ProgressRange:
    """Maps the local progress of a sub-task onto a sub-range [start, end] of the whole job."""

    def __init__(self, start: float = 0.0, end: float = 1.0) -> None:
        self.start = start
        self.end = end

    def event(self, stage: str, local_fraction: float, message: str = "") -> ProgressEvent:
        local = min(max(local_fraction, 0.0), 1.0)
        return ProgressEvent(stage, self.start + (self.end - self.start) * local, message)

    def sub(self, local_start: float, local_end: float) -> ProgressRange:
        span = self.end - self.start
        return ProgressRange(self.start + span * local_start, self.start + span * local_end)

    def relay(self, gen: Generator[ProgressEvent, None, T]) -> Generator[ProgressEvent, None, T]:
        """``gen``'s events with their fractions mapped onto this range; returns ``gen``'s result
        (a fusion inside a batch stack's or a window job's own progress)."""
        while True:
            try:
                event = next(gen)
            except StopIteration as stop:
                return stop.value
            yield self.event(event.stage, event.fraction, event.message)


ProgressGen = Generator[ProgressEvent, None, T]


class ProgressLine:
    """A progress bar on one line of stderr, rewritten in place (only when stderr is a terminal):
    ``[######......]  42.0% text``, cut and padded to ``line_width``. Used by ``fuse`` and ``batch``."""

    def __init__(self, enabled: bool, bar_width: int = 30, line_width: int = 70) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.bar_width = bar_width
        self.line_width = line_width
        self._last = ""

    def show(self, fraction: float, text: str) -> None:
        if not self.enabled:
            return
        filled = round(fraction * self.bar_width)
        line = f"\r[{'#' * filled}{'.' * (self.bar_width - filled)}] {fraction * 100:5.1f}% {text}"[:self.line_width]
        if line != self._last:
            sys.stderr.write(line.ljust(self.line_width))
            sys.stderr.flush()
            self._last = line

    def clear(self) -> None:
        if self.enabled and self._last:
            sys.stderr.write("\r" + " " * (self.line_width + 1) + "\r")
            sys.stderr.flush()
            self._last = ""


def run_to_completion(
    gen: Generator[ProgressEvent, None, T],
    on_progress: Callable[[ProgressEvent], None] | None = None,
) -> T:
    """Drive a progress generator to its end and return its result."""
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(event)
