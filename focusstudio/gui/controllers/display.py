"""What the viewer shows: results and source frames as layers, their titles, wipe/side-by-side, the cursor read-out.

Source frames are decoded for the screen in the background (one at a time, the last few kept); a
frame is shown as the last aligned fusion registered it (the workspace's frame view), so a wipe
between a frame and the result lines up. While a stack opens, its frames are shown as they are
decoded (the first at once, then the one the user selects in the list): the view is never empty
until the last frame is in, and nothing is decoded twice for it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject

from focusstudio.core.io.tolerant import FRAME_CACHE_BUDGET
from focusstudio.core.types import FusionMap
from focusstudio.gui.jobs import FrameDisplay, FusionOutcome, array_display_job, frame_display_job
from focusstudio.gui.map_legend import telling_map
from focusstudio.gui.view_state import RESULT_A, RESULT_B, frame_key, parse_layer
from focusstudio.gui.workers import JobRunner

if TYPE_CHECKING:
    from focusstudio.gui.main_window import MainWindow

#: Decoded source frames kept for display.
FRAME_CACHE_SIZE = 6


def result_layer(slot: str) -> str:
    """The layer key of result ``slot``."""
    return RESULT_A if slot == "A" else RESULT_B


class DisplayController(QObject):
    """Supplies the viewer's layers and keeps the view controls (show, wipe, side by side) in step."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.workspace = window.workspace
        self.state = window.state
        self.frame_runner = JobRunner("frames", window)
        self.frame_runner.succeeded.connect(lambda _job, frame: self._on_frame_loaded(frame))
        self.frame_runner.failed.connect(lambda _job, message: self._on_frame_failed(message))
        self._frames: OrderedDict[int, FrameDisplay] = OrderedDict()
        self._frame_queue: list[int] = []
        #: The source frame "Before/After" returns to, and the result it goes back to.
        self._before_layer = frame_key(0)
        self._after_layer = RESULT_A
        #: A result is being put on screen: its maps are synced once, at the end (finish_result).
        self._showing_result = False
        #: The stack being opened: its frames' names and, while they fit the frame cache's budget,
        #: the frames as decoded (position → float image); None when no opening is shown.
        self._opening: dict[int, np.ndarray] | None = None
        self._opening_names: list[str] = []
        #: Tags the frames made for the screen from an opening (never a workspace frame view).
        self._opening_view = 0
        #: What the view showed before the opening (shown again when the opening brings nothing).
        self._base_before_opening = RESULT_A
        #: Maps measured after a result (the metrics' lost_blocks), by slot: (the result, maps, levels).
        self._measured: dict[str, tuple[FusionOutcome, dict[str, FusionMap], dict[str, tuple[float, float]]]] = {}
        #: (opening tag, workspace frame view): frames made for the last opening that became the
        #: workspace's stack are frames of that view (one still being made when it opened is kept).
        self._adopted = (0, -1)
        events = self.workspace.events
        events.frame_view_changed.connect(self._drop_frames)
        events.results_cleared.connect(self._on_results_cleared)

    # ------------------------------------------------------------------ layers for the viewer
    def result_for_layer(self, key: str) -> FusionOutcome | None:
        kind, which = parse_layer(key)
        return self.workspace.results.get(str(which)) if kind == "result" else None

    def layer_image(self, key: str) -> np.ndarray | None:
        kind, which = parse_layer(key)
        if kind == "result":
            preview = self.window.fusion.preview_image(str(which))  # live tuning, quick draft
            if preview is not None:
                return preview[0]
            outcome = self.workspace.results.get(str(which))
            return outcome.display if outcome is not None else None
        frame = self._frame_image(int(which))
        return frame.display if frame is not None else None

    def layer_extent(self, key: str) -> tuple[int, int] | None:
        """The full size a layer's image stands for when it is a screen-resolution preview (else None)."""
        kind, which = parse_layer(key)
        preview = self.window.fusion.preview_image(str(which)) if kind == "result" else None
        return preview[1] if preview is not None else None

    def layer_title(self, key: str) -> str:
        kind, which = parse_layer(key)
        if kind == "result":
            outcome = self.workspace.results.get(str(which))
            if outcome is None:
                return f"Result {which}"
            stale = "" if self.workspace.is_current(outcome) else " · previous frame selection"
            return f"Result {which}: {outcome.result.method}{stale}"
        index = int(which)
        if self._opening is not None:
            names = self._opening_names
            return f"Frame {index + 1}: {names[index]}" if index < len(names) else f"Frame {index + 1}"
        stack = self.workspace.stack
        if stack is None or index >= len(stack):
            return f"Frame {index + 1}"
        return f"Frame {index + 1}: {stack.frames[index].name}"

    def _origin(self, key: str, image: np.ndarray) -> tuple[int, int] | None:
        """Where layer ``key``'s pixel (0, 0) lies on the loaded frames (an aligned, cropped result
        starts at its crop box), or None when that is not known."""
        stack = self.workspace.stack
        shape = image.shape[:2]
        outcome = self.result_for_layer(key)
        if outcome is not None and outcome.alignment is not None and outcome.alignment.crop_box is not None:
            x, y, width, height = outcome.alignment.crop_box
            if shape == (height, width):
                return (x, y)
        if stack is not None and shape == stack.shape:
            return (0, 0)
        return None

    def wipe_placement(self, base: str, other: str) -> tuple[float, float, float, float] | str:
        """Where layer ``other`` lies over layer ``base`` when their sizes differ (the wipe and Compare
        A | B of a cropped and an uncropped result: the common area), or why that is unknown."""
        base_image, other_image = self.layer_image(base), self.layer_image(other)
        if base_image is None or other_image is None:
            return "the image is not ready"
        base_origin, other_origin = self._origin(base, base_image), self._origin(other, other_image)
        (base_h, base_w), (other_h, other_w) = base_image.shape[:2], other_image.shape[:2]
        if base_origin is not None and other_origin is not None:
            return (float(other_origin[0] - base_origin[0]), float(other_origin[1] - base_origin[1]),
                    float(other_w), float(other_h))
        if abs(other_w / other_h - base_w / base_h) < 0.01:  # the same view at another resolution
            return (0.0, 0.0, float(base_w), float(base_h))
        return (f"it is {other_w}×{other_h} and {self.layer_title(base)} {base_w}×{base_h}, and how they "
                "overlap is unknown (fuse both with the same alignment settings)")

    def shown_outcome(self) -> FusionOutcome | None:
        """The result whose maps are overlaid: the base result, else the target slot's."""
        results = self.workspace.results
        outcome = self.result_for_layer(self.state.base)
        return outcome or results.get(self.window.target_slot()) or next(iter(results.values()), None)

    def maps_of(self, outcome: FusionOutcome) -> tuple[dict[str, FusionMap], dict[str, tuple[float, float]]]:
        """A result's maps and their levels: the method's, and those measured after it (while it is
        its slot's result), e.g. the lost blocks of the sharpness recall."""
        maps, levels = dict(outcome.result.maps), dict(outcome.levels)
        measured = self._measured.get(outcome.request.slot)
        if measured is not None and measured[0] is outcome:
            maps.update(measured[1])
            levels.update(measured[2])
        return maps, levels

    def add_measured_maps(self, slot: str, outcome: FusionOutcome, maps: dict[str, FusionMap],
                          levels: dict[str, tuple[float, float]]) -> None:
        """The metrics of ``outcome`` brought maps: they become overlays of that result."""
        self._measured[slot] = (outcome, dict(maps), dict(levels))
        if self.shown_outcome() is outcome and self.state.base == result_layer(slot):
            self.state.sync_maps(*self.maps_of(outcome))
            self.window.viewer.refresh_overlays()

    def shown_maps(self) -> dict[str, FusionMap]:
        outcome = self.shown_outcome()
        return self.maps_of(outcome)[0] if outcome is not None else {}

    def map_description(self, name: str) -> str:
        fusion_map = self.shown_maps().get(name)
        return fusion_map.description if fusion_map is not None else ""

    def histogram_took_lut(self, name: str) -> None:
        self.window.viewer.forget_overlay_lut(name)
        self.window.viewer.refresh_overlays()

    # ------------------------------------------------------------------ source frames
    def _frame_image(self, index: int) -> FrameDisplay | None:
        frame = self._frames.get(index)
        if frame is not None:
            self._frames.move_to_end(index)
            return frame
        if self._opening is not None:
            if index in self._opening:
                self._request_frame(index)
        elif self.workspace.frame_source(index) is not None:
            self._request_frame(index)
        return None

    def _current_view(self) -> int:
        """The tag frames made for the screen now must carry (an opening's, else the workspace's)."""
        return self._opening_view if self._opening is not None else self.workspace.frame_view

    def _request_frame(self, index: int) -> None:
        if index in self._frame_queue:
            return
        self._frame_queue.append(index)
        if not self.frame_runner.busy:
            self._start_next_frame()

    def _start_next_frame(self) -> None:
        if not self._frame_queue:
            return
        index = self._frame_queue[0]
        if self._opening is not None:
            image = self._opening.get(index)
            if image is None:  # not kept (over the budget) or from an opening that ended
                self._frame_queue.pop(0)
                self._start_next_frame()
                return
            # Decoded by the load already: only made 8-bit for the screen, in the background.
            self.frame_runner.start(partial(array_display_job, image, index, view=self._opening_view))
            return
        source = self.workspace.frame_source(index)
        if source is None:  # no longer a frame of the stack
            self._frame_queue.pop(0)
            self._start_next_frame()
            return
        stack, position = source
        self.frame_runner.start(
            partial(frame_display_job, stack, position, index=index, view=self.workspace.frame_view)
        )

    def _on_frame_loaded(self, frame: FrameDisplay) -> None:
        if frame.view == self._adopted[0] and self._adopted[1] == self.workspace.frame_view:
            frame = replace(frame, view=self._adopted[1])  # made while its stack opened: the same pixels
        if frame.view != self._current_view():
            # Made for a view that changed meanwhile; the queue holds only what was asked since.
            self._start_next_frame()
            return
        if self._frame_queue and self._frame_queue[0] == frame.index:
            self._frame_queue.pop(0)
        self._frames[frame.index] = frame
        while len(self._frames) > FRAME_CACHE_SIZE:
            self._frames.popitem(last=False)
        self.window.viewer.refresh()
        self._start_next_frame()

    def _on_frame_failed(self, message: str) -> None:
        if self._frame_queue:
            self._frame_queue.pop(0)
        self.window.statusBar().showMessage(message, 8000)
        self._start_next_frame()

    def _drop_frames(self) -> None:
        """The frames as shown changed (new stack, another registration): make them again (not
        those of a stack being opened: they are its frames as decoded, see :meth:`end_opening`)."""
        if self._opening is not None:
            return
        self._frames.clear()
        self._frame_queue.clear()

    def show_frame(self, index: int) -> None:
        self._before_layer = frame_key(index)
        self.state.set_base(frame_key(index))
        self.sync_view_controls("base")

    # ------------------------------------------------------------------ a stack being opened
    @property
    def opening(self) -> bool:
        """Frames of a stack being opened are shown (its list is streaming)."""
        return self._opening is not None

    def show_decoded(self, position: int, name: str, image: np.ndarray | None) -> None:
        """Frame ``position`` of the stack being opened was decoded: the view shows the first one
        at once (and any other the user selects) instead of staying empty until the last is in."""
        if position == 0 or self._opening is None:
            if self._opening is None:
                self._base_before_opening = self.state.base
            self._opening, self._opening_names = {}, []
            self._opening_view -= 1  # a tag no frame of an earlier opening or of the workspace has
            self._frames.clear()  # the frames of the stack shown until now
            self._frame_queue.clear()
        self._opening_names[position:] = [name]
        if image is not None:
            kept = sum(frame.nbytes for frame in self._opening.values())
            if kept + image.nbytes > FRAME_CACHE_BUDGET:
                # A big stack: the load does not keep its frames either; keep the first and the
                # latest, never the whole stack a second time.
                for old in [key for key in self._opening if key != 0]:
                    del self._opening[old]
            self._opening[position] = image
        if position == 0:
            # Only the frame shown is drawn, and the toolbar's layer lists are filled when a frame
            # is looked at (a redraw or relayout per decoded frame would compete with the decoding).
            self.refresh_layer_combos()
            self._before_layer = frame_key(0)
            self.state.set_base(frame_key(0))
            self.window.viewer.refresh()

    def end_opening(self, opened: bool) -> int | None:
        """The opening ended. ``opened``: its stack is now the workspace's (set just before), and
        the frames made for the screen are its frames as loaded: kept, not made again. Otherwise
        the view returns to what it showed before. Returns the frame the user was looking at."""
        if self._opening is None:
            return None
        kind, which = parse_layer(self.state.base)
        looked_at = int(which) if kind == "frame" else None
        made = [frame for frame in self._frames.values() if frame.view == self._opening_view]
        self._opening, self._opening_names = None, []
        self._frames.clear()
        self._frame_queue.clear()
        stack = self.workspace.stack
        if opened and stack is not None:
            self._adopted = (self._opening_view, self.workspace.frame_view)
            for frame in made:
                if frame.index < len(stack):
                    self._frames[frame.index] = replace(frame, view=self.workspace.frame_view)
        else:
            self.state.set_base(self._base_before_opening)
            looked_at = None
        return looked_at

    # ------------------------------------------------------------------ stacks and results
    def show_new_stack(self, looked_at: int | None = None) -> None:
        """The stack list was filled: show its first included frame unless a result is shown
        (``looked_at``: the frame the user chose while the stack was opening, shown instead)."""
        if not self.workspace.results:
            active = self.workspace.active_indices
            first = active[0] if active else 0
            if looked_at is not None and self.workspace.frame_source(looked_at) is not None:
                first = looked_at
            shown = self.window.viewer.main.image_shape
            self.state.set_base(frame_key(first))
            self._before_layer = frame_key(first)
        else:
            shown = None
        self.refresh_layer_combos()
        self.window.viewer.refresh()
        stack = self.workspace.stack
        # A frame of this stack already on screen (shown while it opened): the user may have zoomed.
        if stack is None or shown != stack.shape:
            self.window.viewer.fit()

    def show_result(self, outcome: FusionOutcome) -> None:
        """Put a finished result's image on screen (its maps follow in :meth:`finish_result`)."""
        self._showing_result = True
        try:
            if not self.state.base.startswith("result:") or not outcome.request.live:
                self.state.set_base(result_layer(outcome.request.slot))
            self.refresh_layer_combos()
            self.window.viewer.refresh_images()
        finally:
            self._showing_result = False

    def finish_result(self, outcome: FusionOutcome) -> None:
        """The result's maps as overlays (when its slot is the one shown)."""
        if self.state.base == result_layer(outcome.request.slot):
            self.state.sync_maps(*self.maps_of(outcome))
            self._show_telling_map(outcome)
        self.window.viewer.refresh_overlays()

    def _show_telling_map(self, outcome: FusionOutcome) -> None:
        """After a fusion, overlay the map that says where the result came from (unless the user
        already chose which maps to see: a live update or a second fusion keeps that choice)."""
        state = self.state
        if outcome.request.live or state.visibility_chosen or state.visible_overlays():
            return
        name = telling_map(outcome.result.maps, len(outcome.result.source_names))
        if name is not None and name in state.overlays:
            state.show_only(name)

    def frame_names(self) -> list[str]:
        """The names of the frames the shown result was fused from, in its order (the legend's rows)."""
        outcome = self.shown_outcome()
        return list(outcome.result.source_names) if outcome is not None else []

    def _on_results_cleared(self) -> None:
        self._measured.clear()
        self.state.sync_maps({})
        self.state.set_wipe(False)

    # ------------------------------------------------------------------ view controls
    def layer_choices(self) -> list[tuple[str, str]]:
        results = self.workspace.results
        if self._opening is not None:  # the frames of the stack being opened, so far
            return [(self.layer_title(frame_key(i)), frame_key(i)) for i in range(len(self._opening_names))]
        choices = [(self.layer_title(key), key) for key in (RESULT_A, RESULT_B) if key[-1] in results]
        stack = self.workspace.stack
        if stack is not None:
            choices += [(self.layer_title(frame_key(i)), frame_key(i)) for i in range(len(stack))]
        return choices

    def refresh_layer_combos(self) -> None:
        choices = self.layer_choices()
        window = self.window
        for combo in (window.show_combo, window.wipe_combo, window.side_combo):
            current = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            for title, key in choices:
                combo.addItem(title, key)
            combo.blockSignals(False)
            if current is not None and combo.findData(current) >= 0:
                combo.setCurrentIndex(combo.findData(current))
        self.sync_view_controls("base")

    def sync_view_controls(self, aspect: str) -> None:
        window, state = self.window, self.state
        pairs = ((window.show_combo, state.base), (window.wipe_combo, state.wipe_layer),
                 (window.side_combo, state.side_layer))
        for combo, key in pairs:
            index = combo.findData(key)
            if index >= 0 and index != combo.currentIndex():
                combo.blockSignals(True)
                combo.setCurrentIndex(index)
                combo.blockSignals(False)
        for check, on in ((window.wipe_check, state.wipe_enabled), (window.side_check, state.side_by_side)):
            check.blockSignals(True)
            check.setChecked(on)
            check.blockSignals(False)
        if aspect == "base" and not self._showing_result:
            outcome = self.result_for_layer(state.base)
            if outcome is not None:
                state.sync_maps(*self.maps_of(outcome))

    def toggle_before_after(self) -> None:
        """Switch the base between the shown result and the last source frame looked at."""
        state = self.state
        if state.base.startswith("result:"):
            self._after_layer = state.base
            state.set_base(self._before_layer)
        else:
            self._before_layer = state.base
            after = self._after_layer
            if self.result_for_layer(after) is None:
                after = RESULT_A if "A" in self.workspace.results else RESULT_B
            if self.result_for_layer(after) is not None:
                state.set_base(after)
        self.sync_view_controls("base")

    def toggle_wipe(self) -> None:
        other = self.window.wipe_combo.currentData() or self._before_layer
        if other == self.state.base:
            other = self._before_layer if self.state.base.startswith("result:") else RESULT_A
        self.state.set_wipe(not self.state.wipe_enabled, other)
        if self.window.viewer.wipe_problem:
            self.window.statusBar().showMessage(self.window.viewer.wipe_problem, 8000)

    def compare_results(self) -> None:
        if "A" in self.workspace.results and "B" in self.workspace.results:
            self.state.set_base(RESULT_A)
            self.state.set_wipe(True, RESULT_B)
            if self.window.viewer.wipe_problem:
                self.window.statusBar().showMessage(self.window.viewer.wipe_problem, 8000)
        else:
            self.window.statusBar().showMessage("Fuse into result A and result B first (choose 'Fuse into')", 5000)

    # ------------------------------------------------------------------ cursor
    def on_cursor_moved(self, position: tuple[int, int] | None) -> None:
        self.window.cursor_label.setText(self.cursor_readout(*position) if position is not None else "")

    def cursor_readout(self, row: int, col: int) -> str:
        """Pixel position, the shown value, every map's value and the frame the pixel came from."""
        parts = [f"x {col}  y {row}"]
        kind, which = parse_layer(self.state.base)
        results = self.workspace.results
        pixel: np.ndarray | None = None
        if kind == "result" and str(which) in results:
            pixel = results[str(which)].result.image[row, col]
        elif kind == "frame" and int(which) in self._frames:
            pixel = self._frames[int(which)].image[row, col]
        if pixel is not None:
            values = np.atleast_1d(pixel)
            parts.append("value " + "/".join(f"{v:.3f}" for v in values))
        outcome = self.shown_outcome()
        if outcome is None:
            return "   ".join(parts)
        height, width = outcome.result.image.shape[:2]
        names = outcome.result.source_names
        origin = ""
        for name, fusion_map in self.maps_of(outcome)[0].items():
            data = fusion_map.data
            # Maps may be smaller than the image (computed at a lower resolution).
            map_row = min(data.shape[0] - 1, row * data.shape[0] // height)
            map_col = min(data.shape[1] - 1, col * data.shape[1] // width)
            value = data[map_row, map_col]
            if fusion_map.kind == "index":
                frame = int(value)
                parts.append(f"{name} {frame + 1}")  # 1-based, as the list numbers frames
                if not origin and 0 <= frame < len(names):
                    origin = f"from frame {frame + 1} ({names[frame]})"
            else:
                parts.append(f"{name} {float(value):.3g}")
                if fusion_map.kind == "decision" and not origin and len(names) == 2:
                    weight = float(value)
                    frame = 0 if weight >= 0.5 else 1
                    origin = f"from frame {frame + 1} ({names[frame]}, weight {max(weight, 1 - weight):.2f})"
        if origin:
            parts.append(origin)
        return "   ".join(parts)
