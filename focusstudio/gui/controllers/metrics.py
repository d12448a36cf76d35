"""The no-reference metrics of results A and B: when to compute them, in the background, into the metrics panel.

Metrics start once a result has been still for a moment (they would slow live updates), one slot
at a time, in a thread of their own at the lowest CPU priority; above a size limit they wait for
"Compute now" (they need every source frame in memory). While a post-processing change is being
tuned they are held (:meth:`MetricsController.hold`): the running computation is cancelled and
the slot measured again once its final result arrives. Maps measured with the metrics (the
``lost_blocks`` of sharpness recall) join the result's overlays (:meth:`DisplayController.add_measured_maps`).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer

from focusstudio.gui.jobs import MetricsOutcome, metrics_job
from focusstudio.gui.live_jobs import at_low_priority
from focusstudio.gui.metrics_panel import METRIC_KEYS
from focusstudio.gui.workers import JobRunner

if TYPE_CHECKING:
    from focusstudio.gui.main_window import MainWindow

#: Metrics wait until the result has been still this long (they would slow live updates).
METRICS_DELAY_MS = 600
#: Metrics are computed automatically only up to this many megapixels summed over the frames.
AUTO_METRICS_MAX_MEGAPIXELS = 40.0


class MetricsController(QObject):
    """Queues the slots whose metrics are due and computes them one after the other."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.workspace = window.workspace
        self.runner = JobRunner("metrics", window)
        self.runner.succeeded.connect(lambda _job, outcome: self._on_done(outcome))
        self.runner.failed.connect(lambda _job, message: self._on_failed(message))
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(METRICS_DELAY_MS)
        self.timer.timeout.connect(self._start_next)
        self._queue: list[str] = []
        #: The slot being measured now (None: none), and the result measured.
        self.running_slot: str | None = None
        self._measured: object = None
        #: How many metrics computations were started (tests read it).
        self.started_count = 0
        self.workspace.events.results_cleared.connect(self._on_results_cleared)

    def queue(self, slot: str) -> None:
        """A result was shown in ``slot``: measure it once it has been still (small stacks only)."""
        panel = self.window.metrics_panel
        if not panel.auto.isChecked():
            return
        outcome = self.workspace.results[slot]
        stack = outcome.request.stack
        megapixels = len(stack) * stack.shape[0] * stack.shape[1] / 1e6
        if megapixels > AUTO_METRICS_MAX_MEGAPIXELS:
            # The metrics need every source frame in memory and minutes of CPU on a big stack.
            panel.clear_slot(slot)
            panel.status.setText(
                f"Large stack ({megapixels:.0f} MP over all frames): press Compute now for the metrics.")
            return
        if slot not in self._queue:
            self._queue.append(slot)
        panel.set_pending(slot, outcome.result.method)
        self.timer.start()

    def hold(self) -> None:
        """A result is about to change (a control is being dragged): stop measuring it. The final
        result queues its slot again (:meth:`queue`); nothing is measured in between."""
        self.timer.stop()
        if self.runner.busy:
            slot = self.running_slot
            self.runner.cancel()
            self.running_slot = None
            if slot is not None and slot not in self._queue and slot != self.window.target_slot():
                self._queue.insert(0, slot)  # another slot's metrics: still valid, measured later
        target = self.window.target_slot()
        if target in self._queue:
            self._queue.remove(target)

    def compute_now(self) -> None:
        results = self.workspace.results
        for slot in results:
            if slot not in self._queue:
                self._queue.append(slot)
            self.window.metrics_panel.set_pending(slot, results[slot].result.method)
        self._start_next()

    def _start_next(self) -> None:
        if self.runner.busy or not self._queue:
            return
        if self.window.fusion.pending_full:
            return  # a result is being tuned: its final version queues the metrics again
        slot = self._queue.pop(0)
        outcome = self.workspace.results.get(slot)
        if outcome is None:
            self._start_next()
            return
        self.running_slot = slot
        self._measured = outcome
        self.started_count += 1
        self.runner.start(at_low_priority(partial(
            metrics_job, slot, outcome.result.method, outcome.result.image, outcome.fused_stack,
            METRIC_KEYS,
        ), "focusstudio-metrics"))

    def _on_done(self, outcome: MetricsOutcome) -> None:
        self.running_slot = None
        measured, self._measured = self._measured, None
        if outcome.maps and self.workspace.results.get(outcome.slot) is measured:
            self.window.display.add_measured_maps(outcome.slot, measured, outcome.maps, outcome.levels)
        self.window.metrics_panel.set_values(outcome.slot, outcome.label, outcome.values)
        self.window.metricsReady.emit(outcome.slot)
        self._start_next()

    def _on_failed(self, message: str) -> None:
        self.running_slot = self._measured = None
        self.window.metrics_panel.set_error(message)
        self._start_next()

    def _on_results_cleared(self) -> None:
        self.runner.cancel()
        self._queue.clear()
        self.window.metrics_panel.clear_all()
