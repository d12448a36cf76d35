"""The window's method panel and alignment panel: their widgets, built and laid out (the window wires them).

The method panel: the method list, its description, the weights chooser, the parameter form,
presets, the result slot to fuse into, and Fuse/Cancel. The alignment panel: when to register the
frames before fusing, the declared registration settings, a loaded registration (with Clear), and a
summary and per-frame table of the last registration.
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from focusstudio.core.align import ALIGN_BY_DEFAULT_FROM, ALIGN_PARAMS
from focusstudio.core.workspace import SLOTS
from focusstudio.gui.param_form import ParamForm
from focusstudio.gui.weights_panel import WeightsChooser

#: The "Align frames" choices: (key, label).
ALIGN_MODES = (("auto", f"Auto ({ALIGN_BY_DEFAULT_FROM} or more frames)"), ("on", "Always"), ("off", "Never"))
#: The columns of the last registration's per-frame table.
FRAME_COLUMNS = ("Frame", "Status", "Shift x", "Shift y", "Rotation °", "Scale", "Check")


def scrolled(widget: QWidget) -> QScrollArea:
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setWidget(widget)
    scroll.setFrameShape(QScrollArea.Shape.NoFrame)
    return scroll


class MethodPanel(QWidget):
    """Method, parameters, presets, the target slot and the Fuse/Cancel buttons."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.method_combo = QComboBox()
        self.method_combo.setObjectName("methodCombo")
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.param_form = ParamForm()
        form_scroll = scrolled(self.param_form)

        self.preset_combo = QComboBox()
        self.preset_combo.setObjectName("presetCombo")
        self.preset_combo.setToolTip("Named parameter sets saved for this method")
        self.save_preset_button = QPushButton("Save…")
        self.save_preset_button.setToolTip("Save the current parameters as a named preset of this method")
        self.delete_preset_button = QPushButton("Delete")
        presets_row = QHBoxLayout()
        presets_row.addWidget(QLabel("Preset"))
        presets_row.addWidget(self.preset_combo, 1)
        presets_row.addWidget(self.save_preset_button)
        presets_row.addWidget(self.delete_preset_button)

        self.slot_buttons = QButtonGroup(self)
        slot_row = QHBoxLayout()
        slot_row.addWidget(QLabel("Fuse into"))
        for slot in SLOTS:
            button = QRadioButton(f"Result {slot}")
            button.setObjectName(f"slot{slot}")
            button.setToolTip("Fuse with two methods into A and B to compare them")
            self.slot_buttons.addButton(button)
            slot_row.addWidget(button)
            if slot == "A":
                button.setChecked(True)
        slot_row.addStretch(1)
        self.fuse_button = QPushButton("Fuse")
        self.fuse_button.setObjectName("fuseButton")
        self.fuse_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelButton")
        buttons = QHBoxLayout()
        buttons.addWidget(self.fuse_button, 1)
        buttons.addWidget(self.cancel_button)

        layout.addWidget(QLabel("Method"))
        layout.addWidget(self.method_combo)
        layout.addWidget(self.description)
        self.weights_chooser = WeightsChooser()
        layout.addWidget(self.weights_chooser)
        layout.addWidget(form_scroll, 1)
        layout.addLayout(presets_row)
        layout.addLayout(slot_row)
        layout.addLayout(buttons)


class AlignmentPanel(QWidget):
    """Registration of the frames before fusion: when, and with the declared settings."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.mode = QComboBox()
        self.mode.setObjectName("alignMode")
        for key, text in ALIGN_MODES:
            self.mode.addItem(text, key)
        self.mode.setToolTip(
            "Register every frame to the reference before fusing (handheld stacks, focus breathing, stage "
            f"drift). Auto aligns stacks of {ALIGN_BY_DEFAULT_FROM} or more frames, as the command line does."
        )
        mode_row = QHBoxLayout()
        mode_row.addWidget(QLabel("Align frames"))
        mode_row.addWidget(self.mode, 1)
        self.summary = QLabel("No alignment yet")
        self.summary.setObjectName("alignSummary")
        self.summary.setWordWrap(True)
        self.form = ParamForm(ALIGN_PARAMS, group_titles={"analysis": "Registration", "post": "Result"})
        # A loaded registration (File → Load alignment…): named, with a way back to estimating.
        self.loaded = QLabel()
        self.loaded.setObjectName("alignLoaded")
        self.loaded.setWordWrap(True)
        self.clear_loaded = QPushButton("Clear")
        self.clear_loaded.setToolTip("Register the frames again instead of applying the loaded registration")
        loaded_row = QHBoxLayout()
        loaded_row.addWidget(self.loaded, 1)
        loaded_row.addWidget(self.clear_loaded)
        self.loaded_row = QWidget()
        self.loaded_row.setLayout(loaded_row)
        self.loaded_row.setVisible(False)
        self.frames = QTableWidget(0, len(FRAME_COLUMNS))
        self.frames.setObjectName("alignFrames")
        self.frames.setHorizontalHeaderLabels(list(FRAME_COLUMNS))
        self.frames.verticalHeader().setVisible(False)
        self.frames.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.frames.setVisible(False)
        # Two frames in turn, aligned or as loaded (focusstudio.gui.flicker); on after an aligned fusion.
        self.flicker_button = QPushButton("Flicker two frames…")
        self.flicker_button.setObjectName("alignFlicker")
        self.flicker_button.setToolTip("Show two frames in turn, aligned and as loaded, with how well they overlap "
                                       "(the selected row's frame against the reference)")
        self.flicker_button.setEnabled(False)
        layout.addLayout(mode_row)
        layout.addWidget(self.loaded_row)
        layout.addWidget(self.summary)
        layout.addWidget(self.frames, 1)
        layout.addWidget(self.flicker_button)
        layout.addWidget(scrolled(self.form), 1)
