"""Fusion runs in the window: Fuse and Cancel, live post-processing updates, and showing what came back.

A fusion is a :func:`focusstudio.gui.jobs.fusion_job` on the fusion runner (a new run cancels the
old). A change of post-processing parameters only re-runs the post-processing on the kept analysis
("live"); a change of analysis parameters waits for Fuse. A registration made for the current
frames and settings is reused from the workspace instead of aligning again.

Live tuning has two resolutions: while the user drags, each change is post-processed at once at
the viewport's resolution (:func:`focusstudio.gui.live_jobs.preview_job`, on its own runner; a
change arriving meanwhile waits for it and only the latest one runs), and drawn over the result in
place of its image; once the control has rested ``LIVE_REST_MS`` the full resolution runs in the
background, cancelled by the next change, and only that final result enters the workspace (and is
measured, exported). Metrics are held while a change is pending.

Quick draft: pressing Fuse on a stack larger than the viewport also fuses the frames shrunk to the
viewport (aligned on the shrunk frames when alignment is on) on the preview runner; the draft is
shown in place of the result within seconds and replaced when the full result arrives.
"""

from __future__ import annotations

import threading
import time
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from focusstudio.core.errors import ParameterError
from focusstudio.core.live_proxy import ProxyInputs, ShrunkFrames, proxy_shape
from focusstudio.core.progress import ProgressEvent
from focusstudio.gui.controllers.display import result_layer
from focusstudio.gui.jobs import FusionOutcome, FusionRequest, fusion_job
from focusstudio.gui.live_jobs import (
    DraftOutcome,
    DraftRequest,
    PreviewOutcome,
    PreviewRequest,
    after_draft,
    draft_job,
    preview_job,
)
from focusstudio.gui.progress_text import timing_text
from focusstudio.gui.workers import JobRunner

if TYPE_CHECKING:
    from focusstudio.gui.main_window import MainWindow

#: The full-resolution post-processing starts once the controls have rested this long.
LIVE_REST_MS = 300
#: Without a reduced-resolution preview (a small result, an analysis that cannot be shrunk), the
#: full resolution runs this long after the last change (a short debounce).
LIVE_DEBOUNCE_MS = 150


class FusionController(QObject):
    """Starts fusions and live updates, stores their results in the workspace and puts them on screen."""

    #: (slot) a quick draft of the fusion under way is on screen in place of the slot's result.
    draftShown = Signal(str)

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.workspace = window.workspace
        self.runner = JobRunner("fusion", window)
        self.runner.progressed.connect(self._on_progress)
        self.runner.succeeded.connect(lambda _job, outcome: self._on_done(outcome))
        self.runner.failed.connect(lambda _job, message: self._on_failed(message))
        self.runner.cancelled.connect(lambda _job: self._on_cancelled())
        self.preview_runner = JobRunner("preview", window)
        self.preview_runner.succeeded.connect(
            lambda _job, outcome: self._on_draft(outcome) if isinstance(outcome, DraftOutcome)
            else self._on_preview(outcome))
        self.preview_runner.failed.connect(lambda _job, message: self._on_preview_failed(message))
        self.runner.busyChanged.connect(lambda _busy: window.update_enabled())
        self.live_timer = QTimer(self)
        self.live_timer.setSingleShot(True)
        self.live_timer.setInterval(LIVE_DEBOUNCE_MS)
        self.live_timer.timeout.connect(self._run_live_update)
        self._live_requested_at = 0.0
        #: The runner's current job is a live update (Fuse may replace it; a slider may restart it).
        self.live_running = False
        self.last_live_latency_ms: float | None = None
        #: A post-processing change is waiting for its full-resolution result.
        self.pending_full = False
        #: The reduced-resolution result on screen in place of its slot's image (None: none).
        self.preview: PreviewOutcome | None = None
        #: perf_counter() of the change a preview should show next (None: none waiting).
        self._preview_wanted: float | None = None
        #: The shrunk inputs of the last preview and the (analysis, frames) they were made from:
        #: every live result of one fusion shares its analysis and frames, so one shrinking serves
        #: all the changes of a tuning session.
        self._proxy: ProxyInputs | None = None
        self._proxy_source: tuple[object, object] | None = None
        self._unreducible: object | None = None
        #: How many previews were shown (tests and the benchmark read it).
        self.previews_shown = 0
        #: The quick draft on screen while its full fusion runs (None: none), and the layer shown before it.
        self.draft: DraftOutcome | None = None
        self._before_draft: str | None = None
        self.workspace.events.results_cleared.connect(self.runner.cancel)
        self.workspace.events.results_cleared.connect(self.drop_preview)

    # ------------------------------------------------------------------ full fusion
    def fuse(self, slot: str | None = None) -> int | None:
        """Fuse the included frames with the chosen method into ``slot`` (default: the chosen slot)."""
        window, workspace = self.window, self.workspace
        stack = workspace.active_stack()
        method = workspace.method
        if stack is None or len(stack) < 2 or method is None:
            window.statusBar().showMessage("Open a stack with at least 2 included frames first", 5000)
            return None
        try:
            params = method.params.resolve(window.param_form.values())
        except ParameterError as error:
            window.on_job_failed("Invalid parameter", str(error))
            return None
        try:
            align = window.alignment_settings(len(stack))
        except ParameterError as error:
            window.on_job_failed("Invalid alignment setting", str(error))
            return None
        align, fits = window.alignments.request(stack, align)  # a loaded registration applies
        if not fits:
            return None
        saved = window.alignments.saved
        # Same frames, same settings: no need to register again.
        aligned = workspace.cached_registration(align) if align is not None else None
        if aligned is not None and not window.alignments.reusable(aligned[1]):
            aligned = None
        self.live_timer.stop()
        self.pending_full = False
        self._preview_wanted = None
        self.drop_preview()
        request = FusionRequest(
            stack=stack,
            method=method.name,
            params=params,
            device=window.app_settings.device,
            slot=slot or window.target_slot(),
            stack_key=workspace.stack_key(),
            weights=window.weights_chooser.current_reference(),
            align=align,
            aligned=aligned,
            saved=saved,
            preview_view=self.view_pixels() if self._tunable(method) else None,
            shrunk=ShrunkFrames(),
        )
        window.show_busy("Starting", 0.0)
        self.live_running = False  # a full fusion: slider moves must not cancel it
        drafted = self._start_draft(request)
        factory = partial(fusion_job, request)
        job = self.runner.start(after_draft(drafted, factory) if drafted is not None else factory)
        window.update_enabled()  # Fuse is off until it ends (a live update it replaced left it on)
        return job

    def _start_draft(self, request: FusionRequest) -> threading.Event | None:
        """A screen-resolution draft of ``request`` (only when the stack is bigger than the view);
        the event is set when it has ended (the full fusion waits for it)."""
        shape = proxy_shape(request.stack.shape, self.view_pixels())
        if shape is None or request.saved is not None:  # a draft would register the shrunk frames anew
            return None
        draft = DraftRequest(request.stack, request.method, request.params, shape, request.slot, request.device,
                             request.weights, request.align, shrunk=request.shrunk)
        done = threading.Event()
        self.preview_runner.start(partial(draft_job, draft, done=done))
        return done

    def _on_draft(self, draft: DraftOutcome) -> None:
        if not self.runner.busy or self.live_running:
            return  # the full result came first (or the run ended)
        window, slot = self.window, draft.request.slot
        self.draft = draft
        if self._before_draft is None:
            self._before_draft = window.state.base
        window.state.set_base(result_layer(slot))
        window.viewer.refresh_images()
        height, width = draft.display.shape[:2]
        window.timing_label.setText(f"Draft {width}×{height} in {draft.seconds:.1f} s; full resolution running…")
        self.draftShown.emit(slot)

    def _drop_draft(self, restore: bool) -> None:
        """Forget the draft; ``restore``: show again what was shown before it (no result came)."""
        if self.draft is None:
            return
        self.draft = None
        previous, self._before_draft = self._before_draft, None
        if restore and previous is not None and previous != self.window.state.base:
            self.window.state.set_base(previous)
        self.window.viewer.refresh_images()

    def cancel(self) -> None:
        self.live_timer.stop()
        self.runner.cancel()
        self.drop_preview()

    def _on_progress(self, event: ProgressEvent) -> None:
        if not self.live_running:  # a live update's stages would flash the progress bar
            self.window.show_busy(event.stage.capitalize(), event.fraction, event.message)

    def _on_cancelled(self) -> None:
        live = self.live_running
        self.live_running = False
        self._drop_draft(restore=True)
        self.window.hide_busy()
        if not live:  # a full-resolution update superseded by the next change: nothing to say
            self.window.statusBar().showMessage("Fusion cancelled", 4000)

    def _on_failed(self, message: str) -> None:
        self.live_running = False
        self._drop_draft(restore=True)
        self.window.on_job_failed("Fusion failed", message)

    def _on_done(self, outcome: FusionOutcome) -> None:
        """Show a finished result: the image now, the maps and panels in the next loop iteration.

        Splitting the work keeps every step on the GUI thread short (the maps of a big stack
        mean dozens of overlay rows and a histogram).
        """
        self.live_running = False
        self.window.hide_busy()
        if outcome.request.live:
            self.pending_full = False
        if self.preview is not None and self.preview.request.source.request.slot == outcome.request.slot:
            self.preview = None  # the final result replaces it
        if not outcome.request.live:
            self.draft, self._before_draft = None, None
            self.preview_runner.cancel()  # a draft still running is no use any more
            self._adopt_proxy(outcome)
        self.workspace.set_result(outcome.request.slot, outcome)
        if not outcome.request.live:
            self._show_alignment(outcome)
            self.window.alignments.show(outcome)
            self.window.flicker.set_outcome(outcome)
        self.window.display.show_result(outcome)
        self.window.device_label.setText(f"Device: {outcome.result.device}")
        QTimer.singleShot(0, partial(self._finish_result_display, outcome))

    def _show_alignment(self, outcome: FusionOutcome) -> None:
        """Remember a registration for re-use, describe it, and show the frames as it aligned them."""
        alignment, settings = outcome.alignment, outcome.request.align
        summary_label = self.window.align_summary
        if alignment is not None and settings is not None:
            self.workspace.remember_registration(outcome.request.stack_key, settings, outcome.fused_stack,
                                                 alignment)
            failed = len(alignment.failed)
            summary = (f"{len(alignment.included)} frames registered to frame "
                       f"{alignment.reference + 1} ({alignment.model}) in {alignment.seconds:.1f} s")
            if outcome.request.saved is not None:  # applied, not estimated: its time is another run's
                summary = (f"{len(alignment.included)} frames aligned to frame {alignment.reference + 1} "
                           f"({alignment.model}) with the loaded registration")
            if failed:
                summary += f"; {failed} did not register (see the tooltip)"
            if alignment.crop_box is not None and settings.get("crop", True):
                _, _, width, height = alignment.crop_box
                summary += f"; cropped to {width}×{height}"
            summary_label.setText(summary)
            summary_label.setToolTip("\n".join(alignment.describe()))
        else:
            self.workspace.forget_aligned_view()
            summary_label.setText("Last fusion: frames not aligned")
            summary_label.setToolTip("")

    def _finish_result_display(self, outcome: FusionOutcome) -> None:
        window = self.window
        slot = outcome.request.slot
        if self.workspace.results.get(slot) is not outcome:
            return  # a newer result already replaced this one
        result = outcome.result
        window.display.finish_result(outcome)
        timings = result.timings
        if outcome.request.live:
            latency = (time.perf_counter() - outcome.request.requested_at) * 1000.0
            self.last_live_latency_ms = latency
            window.timing_label.setText(
                f"Live update {latency:.0f} ms (post-processing {timings.get('finish', 0.0) * 1000:.0f} ms)")
            window.liveUpdated.emit(latency)
        else:
            window.timing_label.setText(timing_text(outcome))
            aligned = f" ({window.align_summary.text()})" if outcome.alignment is not None else ""
            window.statusBar().showMessage(f"Fused {len(result.source_names)} frames with {result.method} "
                                           f"into result {slot}{aligned}", 8000)
        window.metrics.queue(slot)
        window.update_enabled()
        window.resultReady.emit(slot)
        if not outcome.request.live:
            self.prepare_preview(outcome)
        # The user may have moved a post-processing slider while the full fusion ran.
        if not outcome.request.live:
            self.on_params_changed(window.param_form.values())

    # ------------------------------------------------------------------ live post-processing
    def on_params_changed(self, values: dict[str, Any]) -> None:
        window, workspace = self.window, self.workspace
        method = workspace.method
        if method is None:
            return
        workspace.remember_values(values)
        outcome = workspace.results.get(window.target_slot())
        if outcome is None or outcome.result.method != method.name:
            return
        try:
            resolved = method.params.resolve(values)
        except ParameterError as error:
            window.statusBar().showMessage(str(error), 5000)
            return
        if resolved == dict(outcome.result.params):
            self._stop_live()  # back to the values of the result on screen
            return
        reusable = (
            outcome.result.analysis is not None
            and workspace.is_current(outcome)
            and method.params.post_only_change(outcome.result.params, resolved)
        )
        if not reusable:
            self._stop_live()  # a preview or pending update of other values would mislead
            window.statusBar().showMessage("Analysis parameters changed: press Fuse to update the result", 6000)
            return
        if not window.app_settings.live_update:
            return
        if self.runner.busy and not self.live_running:
            return  # a full fusion is running; it re-checks the form when it finishes
        self._live_requested_at = time.perf_counter()
        self.pending_full = True
        window.metrics.hold()  # metrics never run while the result is changing
        if self.live_running:
            self.runner.cancel()  # the next change supersedes the full-resolution update under way
        previewing = self._request_preview(outcome)
        self.live_timer.setInterval(LIVE_REST_MS if previewing else LIVE_DEBOUNCE_MS)
        self.live_timer.start()  # restarted by every change: the full resolution waits for a rest

    def _stop_live(self) -> None:
        self.live_timer.stop()
        if self.live_running:
            self.runner.cancel()
        self._preview_wanted = None
        if self.preview is not None or self.pending_full:  # (not a preparation under way)
            self.drop_preview()
        if self.pending_full:
            self.pending_full = False
            self.window.metrics.queue(self.window.target_slot())  # held by the change: due again

    # ------------------------------------------------------------------ reduced-resolution previews
    def view_pixels(self) -> tuple[int, int]:
        """The device pixels (width, height) of the main image view."""
        pane = self.window.viewer.main
        ratio = pane.devicePixelRatioF()
        return round(pane.width() * ratio), round(pane.height() * ratio)

    def _request_preview(self, outcome: FusionOutcome) -> bool:
        """Preview the current values at screen resolution (now, or after the preview under way);
        False when no preview is possible (then the full resolution is the update)."""
        if outcome.result.analysis is None or outcome.result.analysis is self._unreducible:
            return False
        if proxy_shape(outcome.fused_stack.shape, self.view_pixels()) is None:
            return False
        self._preview_wanted = self._live_requested_at
        if not self.preview_runner.busy:
            self._start_preview()
        return True

    def _start_preview(self) -> None:
        window, method = self.window, self.workspace.method
        wanted, self._preview_wanted = self._preview_wanted, None
        outcome = self.workspace.results.get(window.target_slot())
        if wanted is None or method is None or outcome is None:
            return
        shape = proxy_shape(outcome.fused_stack.shape, self.view_pixels())
        try:
            params = method.params.resolve(window.param_form.values())
        except ParameterError:
            return
        if shape is None:
            return
        request = PreviewRequest(outcome, params, shape, wanted, self._cached_proxy(outcome, shape))
        self.preview_runner.start(partial(preview_job, request))

    def _cached_proxy(self, outcome: FusionOutcome, shape: tuple[int, int]) -> ProxyInputs | None:
        key = (outcome.result.analysis, outcome.fused_stack)
        proxy = self._proxy
        if proxy is None or self._proxy_source is None or proxy.stack.shape != shape:
            return None
        return proxy if all(a is b for a, b in zip(self._proxy_source, key)) else None

    @staticmethod
    def _tunable(method: Any) -> bool:
        """Whether ``method`` has post-processing parameters (live tuning can change them)."""
        return any(spec.stage == "post" for spec in method.params)

    def _adopt_proxy(self, outcome: FusionOutcome) -> None:
        """Keep the preview inputs the fusion job made with the result (or that it could not)."""
        analysis = outcome.result.analysis
        if outcome.proxy is not None:
            self._proxy, self._proxy_source = outcome.proxy, (analysis, outcome.fused_stack)
        elif outcome.preview_note.startswith("not reducible"):
            self._unreducible = analysis

    def prepare_preview(self, outcome: FusionOutcome) -> None:
        """Shrink a new result's analysis and frames in the background now, so that the first
        change of a tuning session is as quick as the next ones (the fusion job usually made
        them already; this covers a view resized since Fuse)."""
        method = self.workspace.method
        if not self.window.app_settings.live_update or outcome.result.analysis is None or method is None:
            return
        if not self._tunable(method):
            return  # nothing to tune
        shape = proxy_shape(outcome.fused_stack.shape, self.view_pixels())
        if shape is None or self._cached_proxy(outcome, shape) is not None or self.preview_runner.busy:
            return
        request = PreviewRequest(outcome, {}, shape, prepare_only=True)
        self.preview_runner.start(partial(preview_job, request))

    def _on_preview(self, preview: PreviewOutcome) -> None:
        source = preview.request.source
        if preview.proxy is not None:
            self._proxy, self._proxy_source = preview.proxy, (source.result.analysis, source.fused_stack)
        current = self.workspace.results.get(source.request.slot)
        if preview.proxy is None:
            # Post-processed at full resolution only, as before.
            self._unreducible = source.result.analysis
            self.live_timer.setInterval(LIVE_DEBOUNCE_MS)
        elif preview.display is None:
            pass  # prepared ahead of the first change
        elif current is source and self.pending_full:
            # Only while its change still waits for the full resolution (a final result may have
            # overtaken it).
            self.preview = preview
            self.previews_shown += 1
            window = self.window
            window.viewer.refresh_images()
            latency = (time.perf_counter() - preview.request.requested_at) * 1000.0
            self.last_live_latency_ms = latency
            height, width = preview.request.shape
            window.timing_label.setText(f"Preview {width}×{height}: {latency:.0f} ms "
                                        f"(post-processing {preview.finish_seconds * 1000:.0f} ms)")
            window.liveUpdated.emit(latency)
        if self._preview_wanted is not None:
            self._start_preview()

    def _on_preview_failed(self, message: str) -> None:
        # The full-resolution update still runs and reports a real failure; a preview only says it.
        self.window.statusBar().showMessage(f"Preview failed: {message}", 5000)
        if self._preview_wanted is not None:
            self._start_preview()

    def drop_preview(self) -> None:
        """Show the slot's own result again (the values went back, a fusion started, results cleared)."""
        self.preview_runner.cancel()
        if self.preview is not None:
            self.preview = None
            self.window.viewer.refresh_images()

    def preview_for(self, slot: str) -> PreviewOutcome | None:
        """The reduced-resolution preview drawn in place of ``slot``'s result, if any."""
        preview = self.preview
        if preview is None or preview.request.source.request.slot != slot:
            return None
        return preview

    def preview_image(self, slot: str) -> tuple[np.ndarray, tuple[int, int]] | None:
        """What is drawn in place of ``slot``'s result, and the full size (height, width) it stands
        for: a live-tuning preview or a quick draft; None: the result itself."""
        preview = self.preview_for(slot)
        if preview is not None and preview.display is not None:
            return preview.display, preview.request.source.result.image.shape[:2]
        draft = self.draft
        if draft is not None and draft.request.slot == slot:
            return draft.display, draft.extent
        return None

    def _run_live_update(self) -> None:
        window = self.window
        method = self.workspace.method
        if method is None:
            return
        slot = window.target_slot()
        outcome = self.workspace.results.get(slot)
        if outcome is None or outcome.result.analysis is None:
            return
        try:
            params = method.params.resolve(window.param_form.values())
        except ParameterError:
            return
        request = FusionRequest(
            stack=outcome.request.stack,
            method=outcome.request.method,
            params=params,
            device=outcome.request.device,
            slot=slot,
            analysis=outcome.result.analysis,
            weights=outcome.request.weights,
            stack_key=outcome.request.stack_key,
            requested_at=self._live_requested_at,
            live=True,
            align=outcome.request.align,
            # The analysis was made on these (aligned) frames: post-process the same ones.
            aligned=(outcome.fused_stack, outcome.alignment) if outcome.alignment is not None else None,
        )
        window.stage_label.setText("Updating…")
        self.live_running = True
        self.runner.start(partial(fusion_job, request))
        window.update_enabled()
