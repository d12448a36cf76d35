"""What the status bar says about a running job and a finished fusion: stage, percentage, time left, total time.

A percentage alone does not tell a photographer whether to wait or to get a coffee; the estimate
of the time left is the elapsed time scaled by what remains, said only once the job has run long
enough for the rate to mean something. A finished fusion's time includes its alignment (a 41 s
run was once shown as "sf: 7.62 s").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from focusstudio.gui.jobs import FusionOutcome

#: No estimate before this much of the job and this much time have passed (the first events of a
#: job, reading headers or a model, say little about the rate of the rest).
ETA_MIN_FRACTION = 0.05
ETA_MIN_SECONDS = 1.0


def format_seconds(seconds: float) -> str:
    """"0.4 s", "12 s", "3 min 05 s"."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


class ProgressClock:
    """Times one job from its first progress event; a bar that goes back or a :meth:`reset` starts a new job."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._started: float | None = None
        self._last = 0.0

    def reset(self) -> None:
        self._started = None
        self._last = 0.0

    def remaining(self, fraction: float) -> float | None:
        """Seconds left at ``fraction`` done (None: too early to say)."""
        now = self._clock()
        if self._started is None or fraction + 1e-6 < self._last:
            self._started = now
        self._last = fraction
        elapsed = now - self._started
        if fraction < ETA_MIN_FRACTION or elapsed < ETA_MIN_SECONDS or fraction >= 1.0:
            return None
        return elapsed * (1.0 - fraction) / fraction

    def text(self, stage: str, fraction: float, message: str = "") -> str:
        """"Fusing: spatial frequency 2/6 — 43 % · about 12 s left"."""
        left = self.remaining(fraction)
        head = f"{stage}: {message}" if message else stage
        tail = f"{100 * min(max(fraction, 0.0), 1.0):.0f} %"
        if left is not None:
            tail += f" · about {format_seconds(left)} left"
        return f"{head} — {tail}"


def timing_text(outcome: FusionOutcome) -> str:
    """The status bar's time of a finished fusion: the whole run, and the alignment and fusion in it."""
    result = outcome.result
    fusion = result.timings.get("total", outcome.worker_seconds)
    total = max(outcome.worker_seconds, fusion)
    parts = []
    if outcome.alignment is not None:
        if outcome.request.aligned is not None:
            parts.append("alignment re-used")
        else:
            parts.append(f"alignment {format_seconds(outcome.alignment.seconds)}")
    parts.append(f"fusion {format_seconds(fusion)}")
    return f"{result.method}: {format_seconds(total)} in all ({', '.join(parts)})"
