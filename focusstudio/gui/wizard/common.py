"""What the training wizard's pages share: the page ids, timings, the choices made so far, small
widgets and formatting helpers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import qimage2ndarray
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from focusstudio.core.params import ParamSpec
from focusstudio.core.training.inspection import DataReport
from focusstudio.core.training.settings import TRAIN_SPEC
from focusstudio.core.training.trainer import TrainConfig, TrainResult

if TYPE_CHECKING:
    from focusstudio.gui.wizard.wizard import TrainingWizard

PAGE_METHOD, PAGE_DATA, PAGE_SETTINGS, PAGE_TRAIN, PAGE_RESULT = range(5)
#: Delays after the last edit before background work restarts (typing a path, dragging a slider).
INSPECT_DEBOUNCE_MS = 300
PREVIEW_DEBOUNCE_MS = 250
ESTIMATE_DEBOUNCE_MS = 700
#: The loss plot redraws at most this often (a fast run yields hundreds of steps per second).
PLOT_REFRESH_MS = 200
TRAINED_FILE = "trained.pt"


def format_duration(seconds: float | None) -> str:
    """"1 h 05 min", "3 min 20 s", "12 s" (or "—" when unknown)."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = max(0.0, seconds)
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def to_pixmap(image: np.ndarray) -> QPixmap:
    """uint8 RGB array → QPixmap (copied, so the array may go)."""
    return QPixmap.fromImage(qimage2ndarray.array2qimage(image).copy())


def describe_setting(spec: ParamSpec) -> str:
    """Tooltip of a training setting: its help, range and default (no fusion-specific lines)."""
    lines = [spec.help]
    if spec.kind == "choice":
        lines.append("Choices: " + ", ".join(spec.choices))
    elif spec.minimum is not None and spec.maximum is not None:
        lines.append(f"Range: {spec.minimum:g} … {spec.maximum:g}")
    lines.append(f"Default for this method: {spec.default}")
    return "\n".join(lines)


@dataclass
class WizardChoices:
    """What the pages decided so far (read by the later pages)."""

    method: str = ""
    finetune_from: str | None = None
    resume: dict[str, Any] | None = None  # a list_runs() summary
    resume_steps: int | None = None
    data_format: str = "images"
    data: str = ""
    masks: str | None = None
    synthesis: dict[str, Any] = field(default_factory=dict)
    val_fraction: float = TRAIN_SPEC.default("val_fraction")
    report: DataReport | None = None
    config: TrainConfig | None = None
    result: TrainResult | None = None

    @property
    def run_config(self) -> TrainConfig | None:
        """The config of the run being trained (a new one, or the resumed one)."""
        if self.resume is not None:
            config = TrainConfig.from_dict(self.resume["config"])
            if self.resume_steps:
                config.steps = self.resume_steps
            return config
        return self.config


class FolderField(QWidget):
    """A folder path: a line edit and a Browse… button."""

    changed = Signal(str)

    def __init__(self, caption: str, object_name: str, placeholder: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.caption = caption
        self.edit = QLineEdit()
        self.edit.setObjectName(object_name)
        self.edit.setPlaceholderText(placeholder)
        self.edit.textChanged.connect(lambda text: self.changed.emit(text.strip()))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(browse)

    def path(self) -> str:
        return self.edit.text().strip()

    def set_path(self, path: str | Path) -> None:
        self.edit.setText(str(path))

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self.caption, self.path())
        if folder:
            self.set_path(folder)


def wizard_of(page: QWizardPage) -> TrainingWizard:
    """The wizard ``page`` belongs to (imported here, not at the top: the wizard imports the pages)."""
    from focusstudio.gui.wizard.wizard import TrainingWizard

    wizard = page.wizard()
    assert isinstance(wizard, TrainingWizard)
    return wizard


def note_label(text: str = "", object_name: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if object_name:
        label.setObjectName(object_name)
    return label


def top_aligned(widget: QWidget) -> QWidget:
    """``widget`` in a container that gives spare height to a stretch below it, not to its rows."""
    container = QWidget()
    layout = QVBoxLayout(container)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(widget)
    layout.addStretch(1)
    return container
