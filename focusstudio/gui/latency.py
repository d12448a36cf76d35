"""Measure how long the GUI thread is blocked: a fast timer records how late it fires.

A ``QTimer`` with a 10 ms interval should fire every 10 ms; when the event loop is busy (a slow
slot, an image conversion) it fires late, and the lateness is the stall the user feels.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, Qt, QTimer


class EventLoopProbe(QObject):
    """Records the longest and typical delays of the event loop while it runs."""

    def __init__(self, interval_ms: int = 10, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.interval = interval_ms / 1000.0
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._last = 0.0
        self.stalls: list[float] = []

    @property
    def last_tick(self) -> float:
        """perf_counter() of the latest tick (read by a watchdog thread)."""
        return self._last

    def start(self) -> None:
        self.stalls.clear()
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.stalls.append(max(0.0, now - self._last - self.interval))
        self._last = now

    @property
    def longest_ms(self) -> float:
        return max(self.stalls, default=0.0) * 1000.0

    def percentile_ms(self, fraction: float) -> float:
        if not self.stalls:
            return 0.0
        ordered = sorted(self.stalls)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000.0
