"""The retouch panel: the controls of the retouch tool (source frame, brush, before/after, mask, history).

A plain widget over a :class:`~focusstudio.gui.retouch.RetouchController`; the window docks it
beside the viewer and calls :meth:`RetouchPanel.set_frames` when a stack is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from focusstudio.gui.retouch import RetouchController

ERASER_LABEL = "Eraser (the method's result)"
MODE_OFF_LABEL = "Retouch mode"
MODE_ON_LABEL = "Retouch mode: ON (left button paints)"


def _percent_slider(value: float) -> QSlider:
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(0, 100)
    slider.setValue(round(value * 100))
    return slider


class RetouchPanel(QWidget):
    """Controls bound to ``controller``; every change goes straight to it."""

    def __init__(self, controller: RetouchController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.mode = QPushButton(MODE_OFF_LABEL)
        self.mode.setCheckable(True)
        self.mode.setToolTip("Paint source frames over the result with the left button "
                             "(wheel zooms, middle button pans)")
        self.source = QComboBox()
        self.source.setToolTip("The frame to paint from; Alt-click on the image picks the sharpest frame "
                               "there, Alt+Shift-click the frame the method chose")
        self.size = QSpinBox()
        self.size.setRange(1, 5000)
        self.size.setSuffix(" px")
        self.size.setValue(round(controller.brush.size))
        self.hardness = _percent_slider(controller.brush.hardness)
        self.opacity = _percent_slider(controller.brush.opacity)
        self.match = QCheckBox("Match brightness to the surroundings")
        self.match.setChecked(controller.match)
        self.before = QCheckBox("Show before (the method's result)")
        self.mask = QCheckBox("Show the painted mask")
        self.undo = QToolButton()
        self.undo.setDefaultAction(controller.undo_action)
        self.redo = QToolButton()
        self.redo.setDefaultAction(controller.redo_action)
        self.hint = QLabel("Alt-click: paint from the sharpest frame there")
        self.hint.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Paint from", self.source)
        form.addRow("Brush size", self.size)
        form.addRow("Hardness", self.hardness)
        form.addRow("Opacity", self.opacity)
        history = QHBoxLayout()
        history.addWidget(self.undo)
        history.addWidget(self.redo)
        history.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.mode)
        layout.addLayout(form)
        for widget in (self.match, self.before, self.mask):
            layout.addWidget(widget)
        layout.addLayout(history)
        layout.addWidget(self.hint)
        layout.addStretch(1)

        self.mode.toggled.connect(controller.set_active)
        # A checked push button looks nearly the same as an unchecked one in several styles: say it.
        self.mode.toggled.connect(lambda on: self.mode.setText(MODE_ON_LABEL if on else MODE_OFF_LABEL))
        self.source.currentIndexChanged.connect(self._on_source)
        self.size.valueChanged.connect(lambda value: controller.set_brush(size=value))
        self.hardness.valueChanged.connect(lambda value: controller.set_brush(hardness=value / 100))
        self.opacity.valueChanged.connect(lambda value: controller.set_brush(opacity=value / 100))
        self.match.toggled.connect(controller.set_match)
        self.before.toggled.connect(controller.show_before)
        self.mask.toggled.connect(controller.show_mask)
        controller.frameChanged.connect(self._show_frame)
        controller.message.connect(self.hint.setText)

    def set_frames(self, names: Sequence[str]) -> None:
        """The stack's frames (then the eraser) as the sources to paint from."""
        self.source.blockSignals(True)
        self.source.clear()
        for index, name in enumerate(names):
            self.source.addItem(f"{index + 1}: {name}", index)
        self.source.addItem(ERASER_LABEL, None)
        self.source.blockSignals(False)
        self._show_frame(self.controller.frame)

    def _on_source(self, position: int) -> None:
        if position >= 0:
            self.controller.set_frame(self.source.itemData(position))

    def _show_frame(self, frame: int | None) -> None:
        position = self.source.findData(frame) if frame is not None else self.source.count() - 1
        if position >= 0 and position != self.source.currentIndex():
            self.source.blockSignals(True)
            self.source.setCurrentIndex(position)
            self.source.blockSignals(False)
