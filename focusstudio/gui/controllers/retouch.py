"""The retouch tool in the window: one retouch model per result slot, wired to the viewer, the
Retouch dock, the Edit menu, the status bar, live updates and export (issue 16).

The painting itself is :class:`focusstudio.gui.retouch.RetouchController` over the main image pane;
this controller decides what it paints on. Each fusion gives its slot a fresh
:class:`~focusstudio.core.retouch.RetouchModel` over the frames the result was fused from (aligned
when the fusion aligned them); a result of the same frames fused again (a live post-processing
update, or Fuse with the same registration) gets the slot's strokes replayed on it instead. The tool
paints only while the main pane shows a result; on a source frame its tiles are taken off the pane.
Decoding a frame to paint from and measuring the stack's sharpness (for the Alt-click pick) run on
background runners: at 24 MP either would freeze the window for seconds. After a new result they
wait until it has been still for ``SETTLE_MS`` and no live-tuning change is pending: right after a
fusion the user is more likely to drag a post-processing control than to paint, and that first
preview must not share the CPU with them.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtWidgets import QDockWidget, QMenu, QMenuBar

from focusstudio.core.progress import CancelToken, ProgressEvent
from focusstudio.core.retouch import RetouchModel, SharpnessProbe, retouch_section
from focusstudio.gui.retouch import RetouchController
from focusstudio.gui.retouch_panel import RetouchPanel
from focusstudio.gui.side_panels import scrolled
from focusstudio.gui.view_state import parse_layer
from focusstudio.gui.workers import JobRunner

if TYPE_CHECKING:
    from focusstudio.core.types import FusionResult, Stack
    from focusstudio.gui.jobs import FusionOutcome
    from focusstudio.gui.main_window import MainWindow

#: How long the tool's messages stay in the status bar.
MESSAGE_MS = 6000
#: A new result must have been still this long before the tool's background work starts.
SETTLE_MS = 600


@dataclass
class SlotRetouch:
    """The retouch model of one result slot, the result it paints over, and the stack's sharpness
    (None until measured in the background)."""

    outcome: FusionOutcome
    model: RetouchModel
    probe: SharpnessProbe | None = None


def probe_job(stack: Stack, cancel: CancelToken) -> Generator[ProgressEvent, None, tuple[Stack, SharpnessProbe]]:
    """Measure the block sharpness of every frame of ``stack`` (cancellable between frames)."""

    def load_grey(index: int) -> Any:
        cancel.raise_if_cancelled()
        return stack.load(index, grey=True)

    yield ProgressEvent("retouch", 0.0, "measuring sharpness")
    probe = SharpnessProbe(load_grey, len(stack), stack.shape)
    probe.measure()
    return stack, probe


def prepare_job(model: RetouchModel, frame: int,
                cancel: CancelToken) -> Generator[ProgressEvent, None, tuple[RetouchModel, int]]:
    """Decode frame ``frame`` into ``model``'s frame cache."""
    cancel.raise_if_cancelled()
    yield ProgressEvent("retouch", 0.0, f"loading frame {frame + 1}")
    model.prepare_frame(frame)
    return model, frame


def same_frames(old: FusionOutcome, new: FusionOutcome) -> bool:
    """Whether ``new`` was fused from exactly the frames (and registration) ``old`` was: then the
    strokes painted on ``old`` mean the same pixels on ``new``."""
    if new.request.live:
        return True  # a live update post-processes the same (aligned) frames again
    if old.request.stack_key != new.request.stack_key:
        return False
    if old.alignment is None and new.alignment is None:
        return True
    return old.fused_stack is new.fused_stack  # the same registration, reused


class RetouchTool(QObject):
    """Owns the retouch controller and panel, and one :class:`SlotRetouch` per result slot."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.workspace = window.workspace
        self.controller = RetouchController(window.viewer.main, self)
        self.controller.prepare = self._prepare_in_background
        self.panel = RetouchPanel(self.controller)
        self.panel.setObjectName("retouchPanel")
        self.slots: dict[str, SlotRetouch] = {}
        #: The slot whose model the controller paints on now (None: the pane shows no result).
        self.shown_slot: str | None = None
        self.probe_runner = JobRunner("retouch-probe", self)
        self.probe_runner.succeeded.connect(lambda _job, value: self._on_probe(*value))
        self.probe_runner.failed.connect(lambda _job, message: self._probe_failed(message))
        self.probe_runner.cancelled.connect(lambda _job: self._next_probe())
        self._probe_queue: list[Stack] = []
        self.frame_runner = JobRunner("retouch-frames", self)
        self.frame_runner.succeeded.connect(lambda _job, value: self._on_prepared(*value))
        self.frame_runner.failed.connect(lambda _job, message: self._message(message))
        #: Background work held until the result has settled (see the module's note).
        self.settle_timer = QTimer(self)
        self.settle_timer.setSingleShot(True)
        self.settle_timer.setInterval(SETTLE_MS)
        self.settle_timer.timeout.connect(self._start_settled_work)
        self._prepare_when_settled = False

        controller = self.controller
        controller.message.connect(self._message)
        # Painting changes the slot's result: it counts as not exported again.
        controller.historyChanged.connect(self._touched)
        for action in (controller.undo_action, controller.redo_action):
            # The Edit menu's shortcuts work wherever the focus is in the window, not only in the pane.
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            window.addAction(action)
        events = self.workspace.events
        events.result_changed.connect(self._on_result)
        events.results_cleared.connect(self._on_cleared)
        window.state.changed.connect(self._on_view_changed)
        self._sync_shown()

    @property
    def runners(self) -> tuple[JobRunner, ...]:
        return (self.probe_runner, self.frame_runner)

    # ------------------------------------------------------------------ window parts
    def build_dock(self) -> QDockWidget:
        """The Retouch dock, a tab beside the Method dock."""
        window = self.window
        # Scrolled like the Method panel: its rows must not raise the window's minimum height
        # (on a 1366×768 screen the window has to fit in ~708 px).
        dock = window._dock("Retouch", "retouchDock", scrolled(self.panel), Qt.DockWidgetArea.RightDockWidgetArea)
        window.tabifyDockWidget(window.method_dock, dock)
        window.method_dock.raise_()
        return dock

    def build_menu(self, menu_bar: QMenuBar) -> QMenu:
        edit = menu_bar.addMenu("&Edit")
        edit.addAction(self.controller.undo_action)
        edit.addAction(self.controller.redo_action)
        return edit

    def _message(self, text: str) -> None:
        self.window.statusBar().showMessage(text, MESSAGE_MS)

    # ------------------------------------------------------------------ results
    def _on_result(self, slot: str) -> None:
        outcome = self.workspace.results.get(slot)
        if outcome is None:
            return
        old = self.slots.get(slot)
        stack = outcome.fused_stack
        entry: SlotRetouch | None = None
        if old is not None and old.model.strokes and same_frames(old.outcome, outcome):
            if old.model.painting:
                old.model.end_stroke()
            try:
                entry = SlotRetouch(outcome, old.model.rebased(outcome.result.image), old.probe)
            except ValueError as error:  # another crop: the strokes no longer fit
                self._message(f"Retouch strokes not carried over: {error}")
            else:
                count = len(entry.model.strokes)
                self._message(f"{count} retouch stroke{'s' if count != 1 else ''} re-applied to the new result")
        if entry is None:
            try:
                model = RetouchModel.from_result(outcome.result, stack)
            except ValueError as error:
                self.slots.pop(slot, None)
                self._message(f"This result cannot be retouched: {error}")
                self._sync_shown(force=True)
                return
            probe = old.probe if old is not None and old.outcome.fused_stack is stack else None
            entry = SlotRetouch(outcome, model, probe or self._known_probe(stack))
        self.slots[slot] = entry
        if entry.probe is None and not any(queued is stack for queued in self._probe_queue):
            self._probe_queue.append(stack)  # measured once the result has settled
        self._sync_shown(force=True, settle=True)

    def _on_cleared(self) -> None:
        self.settle_timer.stop()
        self._prepare_when_settled = False
        self.slots.clear()
        self._probe_queue.clear()
        self.probe_runner.cancel()
        self.frame_runner.cancel()
        self._sync_shown(force=True)

    def _on_view_changed(self, aspect: str) -> None:
        if aspect == "base":
            self._sync_shown()

    def _shown_result_slot(self) -> str | None:
        kind, which = parse_layer(self.window.state.base)
        return str(which) if kind == "result" and str(which) in self.slots else None

    def _sync_shown(self, force: bool = False, settle: bool = False) -> None:
        """Bind the controller to the model of the result the pane shows, or to nothing; ``settle``:
        a new result, whose frame is decoded once it has settled."""
        slot = self._shown_result_slot()
        if slot == self.shown_slot and not force:
            return
        controller = self.controller
        entry = self.slots.get(slot) if slot is not None else None
        if entry is None:
            self.panel.mode.setChecked(False)  # → controller.set_active(False)
            controller.set_model(None)  # also takes the retouched tiles off a source frame
        elif controller.model is not entry.model:
            controller.set_model(entry.model, entry.outcome.result, entry.probe)
            self.panel.set_frames(entry.model.names)
            if controller.frame is not None and settle:
                self._prepare_when_settled = True
            elif controller.frame is not None:
                controller.prepare_frame(controller.frame)
        self.shown_slot = slot
        self.panel.setEnabled(entry is not None)
        if settle:
            self.settle_timer.start()

    def _touched(self) -> None:
        slot = self.shown_slot
        if slot is not None and self.controller.model is not None and self.controller.model.strokes:
            self.workspace.exported.pop(slot, None)

    # ------------------------------------------------------------------ export
    def for_export(self, outcome: FusionOutcome) -> tuple[FusionResult, dict[str, Any] | None]:
        """The result to write for ``outcome`` (retouched when strokes were painted on it) and the
        sidecar's retouch section (None when nothing is painted)."""
        for entry in self.slots.values():
            if entry.outcome is outcome and entry.model.strokes:
                if entry.model.painting:
                    entry.model.end_stroke()
                return entry.model.retouched_result(outcome.result), retouch_section(entry.model)
        return outcome.result, None

    # ------------------------------------------------------------------ background work
    def _start_settled_work(self) -> None:
        """The result has been still for a while: measure the sharpness, decode the frame to paint
        from (later still while a live-tuning change waits for its result)."""
        if self.window.fusion.pending_full:
            self.settle_timer.start()
            return
        if not self.probe_runner.busy:
            self._next_probe()
        controller = self.controller
        if self._prepare_when_settled and controller.model is not None and controller.frame is not None:
            controller.prepare_frame(controller.frame)
        self._prepare_when_settled = False

    def _known_probe(self, stack: Stack) -> SharpnessProbe | None:
        for entry in self.slots.values():
            if entry.probe is not None and entry.outcome.fused_stack is stack:
                return entry.probe
        return None

    def _next_probe(self) -> None:
        # Only stacks some slot still paints on are worth measuring.
        wanted = [entry.outcome.fused_stack for entry in self.slots.values() if entry.probe is None]
        while self._probe_queue:
            stack = self._probe_queue.pop(0)
            if any(stack is other for other in wanted):
                self.probe_runner.start(partial(probe_job, stack))
                return

    def _on_probe(self, stack: Stack, probe: SharpnessProbe) -> None:
        for entry in self.slots.values():
            if entry.outcome.fused_stack is stack and entry.probe is None:
                entry.probe = probe
                if self.controller.model is entry.model:
                    self.controller.probe = probe
        self._next_probe()

    def _probe_failed(self, message: str) -> None:
        self._message(f"Could not measure the frames' sharpness for the Alt-click pick: {message}")
        self._next_probe()

    def _prepare_in_background(self, frame: int) -> None:
        model = self.controller.model
        if model is None or model.frames.loaded(frame):
            return
        self._message(f"Loading {_frame_name(model, frame)} to paint from…")
        self.frame_runner.start(partial(prepare_job, model, frame))

    def _on_prepared(self, model: RetouchModel, frame: int) -> None:
        if self.controller.model is model and self.controller.frame == frame:
            self._message(f"{_frame_name(model, frame)} ready to paint from")


def _frame_name(model: RetouchModel, frame: int) -> str:
    """"frame 26 (frame_25.jpg)": the number the Retouch panel shows, and the file."""
    name = model.names[frame] if frame < len(model.names) else ""
    return f"frame {frame + 1} ({name})" if name else f"frame {frame + 1}"
