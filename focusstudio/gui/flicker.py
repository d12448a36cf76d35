"""The Alignment tab's flicker check: two frames shown in turn, as aligned or as loaded, with how well they overlap.

A misregistration is easiest to see as motion: flicking between two frames that the registration
aligned, everything should stand still except the focus; flicking between the same two frames as
loaded shows what the registration removed. Beside it the numbers of
:func:`focusstudio.core.align_check.check_pair` (correlation and mean difference, before and after).

The frames come from the workspace (as loaded, and as the last aligned fusion registered them);
they are made ready for the screen in the background and the dialog only swaps pixmaps.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import cv2
import numpy as np
import qimage2ndarray
from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from focusstudio.core.align_check import PairCheck, check_pair, most_moved
from focusstudio.core.progress import CancelToken, ProgressEvent
from focusstudio.core.types import Stack
from focusstudio.gui.jobs import to_display
from focusstudio.gui.workers import JobRunner

if TYPE_CHECKING:
    from focusstudio.gui.jobs import FusionOutcome
    from focusstudio.gui.main_window import MainWindow

#: How long each frame stays on screen (two swaps a second: slow enough to compare, quick enough
#: that motion reads as motion).
FLICKER_MS = 500
#: The frames are prepared at most this many pixels on their longer side (the dialog fits the screen).
DISPLAY_EDGE = 1200


@dataclass(frozen=True, eq=False)
class FlickerFrames:
    """Two frames ready to flick: as loaded and as aligned (uint8), and the overlap check."""

    first: int  # loaded-stack indices
    second: int
    loaded: tuple[np.ndarray, np.ndarray]
    aligned: tuple[np.ndarray, np.ndarray]
    check: PairCheck


def _for_screen(image: np.ndarray) -> np.ndarray:
    scale = min(1.0, DISPLAY_EDGE / max(image.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(to_display(image))


def flicker_job(loaded: Stack, aligned: Stack, first: tuple[int, int], second: tuple[int, int],
                cancel: CancelToken) -> Generator[ProgressEvent, None, FlickerFrames]:
    """The two frames (index in ``loaded``, position in ``aligned``) for the screen, and their check."""
    yield ProgressEvent("flicker", 0.0, "reading the frames")
    frames = []
    for stack, index in ((loaded, first[0]), (loaded, second[0]), (aligned, first[1]), (aligned, second[1])):
        cancel.raise_if_cancelled()
        frames.append(_for_screen(stack.load(index)))
    cancel.raise_if_cancelled()
    check = check_pair(loaded, aligned, first, second)
    return FlickerFrames(first[0], second[0], (frames[0], frames[1]), (frames[2], frames[3]), check)


class FlickerDialog(QDialog):
    """Two frames shown in turn; the user picks the frames and aligned / as loaded."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("flickerDialog")
        self.setWindowTitle("Alignment flicker")
        self.first = QComboBox()
        self.first.setObjectName("flickerFirst")
        self.second = QComboBox()
        self.second.setObjectName("flickerSecond")
        self.aligned = QCheckBox("Aligned")
        self.aligned.setObjectName("flickerAligned")
        self.aligned.setChecked(True)
        self.aligned.setToolTip("Untick to flick between the same two frames as loaded (what the alignment removed)")
        self.pause = QPushButton("Pause")
        self.pause.setCheckable(True)
        row = QHBoxLayout()
        for widget in (QLabel("Frame"), self.first, QLabel("and"), self.second, self.aligned, self.pause):
            row.addWidget(widget)
        row.addStretch(1)
        self.image = QLabel("Preparing the frames…")
        self.image.setObjectName("flickerImage")
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.image.setMinimumSize(320, 240)
        self.caption = QLabel()
        self.caption.setObjectName("flickerCaption")
        self.check = QLabel()
        self.check.setObjectName("flickerCheck")
        self.check.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.image, 1)
        layout.addWidget(self.caption)
        layout.addWidget(self.check)


class FlickerController(QObject):
    """Opens the flicker dialog for the last aligned fusion and keeps its two frames alternating."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.workspace = window.workspace
        self.runner = JobRunner("flicker", window)
        self.runner.succeeded.connect(lambda _job, frames: self._on_frames(frames))
        self.runner.failed.connect(lambda _job, message: self._on_failed(message))
        self.dialog: FlickerDialog | None = None
        self.frames: FlickerFrames | None = None
        #: Which of the two frames is on screen (0 or 1).
        self.showing = 0
        self.timer = QTimer(self)
        self.timer.setInterval(FLICKER_MS)
        self.timer.timeout.connect(self._swap)
        #: The reference and the weakest-registered frame of the last alignment (loaded indices).
        self._default_pair: tuple[int, int] | None = None
        self.workspace.events.frame_view_changed.connect(self._on_view_changed)

    # ------------------------------------------------------------------ what can be flicked
    def available(self) -> bool:
        """An aligned fusion registered at least two frames (its registration is the frame view)."""
        view = self.workspace.aligned_view
        return view is not None and len(view[1]) >= 2

    def set_outcome(self, outcome: FusionOutcome) -> None:
        """A full fusion came back: its reference and the frame its registration moved most become
        the default pair (as ``fuse --align-check`` compares them)."""
        alignment = outcome.alignment
        self._default_pair = None
        selection = list(outcome.request.stack_key[1]) if len(outcome.request.stack_key) > 1 else []
        if alignment is not None and selection and alignment.reference < len(selection):
            other = most_moved(alignment)
            if other is not None and other < len(selection):
                self._default_pair = (selection[alignment.reference], selection[other])
        self.window.alignment_panel.flicker_button.setEnabled(self.available())

    def _on_view_changed(self) -> None:
        self.window.alignment_panel.flicker_button.setEnabled(self.available())
        if self.dialog is not None and self.dialog.isVisible():
            if self.available():
                self._fill_choices()
                self._request()
            else:
                self.dialog.close()

    # ------------------------------------------------------------------ the dialog
    def open(self, second: int | None = None) -> FlickerDialog | None:
        """Show the flicker dialog (``second``: a loaded frame index to compare with the reference)."""
        if not self.available():
            self.window.statusBar().showMessage("Fuse with alignment on first: the flicker compares aligned frames",
                                                5000)
            return None
        if self.dialog is None:
            self.dialog = FlickerDialog(self.window)
            self.dialog.first.currentIndexChanged.connect(lambda _i: self._request())
            self.dialog.second.currentIndexChanged.connect(lambda _i: self._request())
            self.dialog.aligned.toggled.connect(lambda _on: self._show())
            self.dialog.pause.toggled.connect(self._on_pause)
            self.dialog.finished.connect(lambda _code: self.timer.stop())
            screen = self.window.screen().availableGeometry()
            self.dialog.resize(min(900, screen.width() - 40), min(720, screen.height() - 60))
        self._fill_choices(second)
        self.dialog.show()
        self.dialog.raise_()
        self._request()
        if not self.dialog.pause.isChecked():
            self.timer.start()
        return self.dialog

    def _fill_choices(self, second: int | None = None) -> None:
        dialog, view, stack = self.dialog, self.workspace.aligned_view, self.workspace.stack
        assert dialog is not None and view is not None and stack is not None
        indices = sorted(view[1])
        first_index, second_index = self._default_pair or (indices[0], indices[-1])
        if second is not None and second in view[1] and second != first_index:
            second_index = second
        for combo, chosen in ((dialog.first, first_index), (dialog.second, second_index)):
            combo.blockSignals(True)
            combo.clear()
            for index in indices:
                combo.addItem(f"{index + 1}: {stack.frames[index].name}", index)
            combo.setCurrentIndex(max(0, combo.findData(chosen)))
            combo.blockSignals(False)

    def _request(self) -> None:
        dialog, view, stack = self.dialog, self.workspace.aligned_view, self.workspace.stack
        if dialog is None or view is None or stack is None:
            return
        first, second = dialog.first.currentData(), dialog.second.currentData()
        if first is None or second is None or first not in view[1] or second not in view[1]:
            return
        self.runner.start(partial(flicker_job, stack, view[0], (first, view[1][first]), (second, view[1][second])))

    def _on_frames(self, frames: FlickerFrames) -> None:
        self.frames = frames
        self.showing = 0
        if self.dialog is not None:
            self.dialog.check.setText(f"Overlap of {frames.check.describe()} (grey, low-passed, on the common "
                                      "area; identical frames: correlation 1, difference 0)")
        self._show()

    def _on_failed(self, message: str) -> None:
        if self.dialog is not None:
            self.dialog.image.setText(f"The frames could not be read: {message}")

    def _on_pause(self, paused: bool) -> None:
        if paused:
            self.timer.stop()
        else:
            self.timer.start()

    def _swap(self) -> None:
        if self.frames is None:
            return
        self.showing = 1 - self.showing
        self._show()

    def _show(self) -> None:
        dialog, frames = self.dialog, self.frames
        if dialog is None or frames is None:
            return
        aligned = dialog.aligned.isChecked()
        pair = frames.aligned if aligned else frames.loaded
        index = (frames.first, frames.second)[self.showing]
        image = pair[self.showing]
        pixmap = QPixmap.fromImage(qimage2ndarray.array2qimage(image))
        size = dialog.image.size()
        dialog.image.setPixmap(pixmap.scaled(size, Qt.AspectRatioMode.KeepAspectRatio,
                                             Qt.TransformationMode.SmoothTransformation))
        stack = self.workspace.stack
        name = stack.frames[index].name if stack is not None and index < len(stack) else ""
        dialog.caption.setText(f"Frame {index + 1}: {name} — {'aligned' if aligned else 'as loaded'}")
