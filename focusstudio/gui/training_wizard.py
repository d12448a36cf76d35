"""The training wizard: train a deep method on the user's own images, from the window.

A thin GUI over the same trainer as ``focusstudio train`` (:mod:`focusstudio.core.training`):
every page collects choices, every long step (checking the data, synthesizing the preview,
timing a few steps, training, evaluating, fusing the before/after sample) runs as a core
generator in a :class:`~focusstudio.gui.workers.JobRunner`, so the window never blocks.

Pages: Method (or resume an interrupted run) → Data → Settings → Train → Result. Each page's
``isComplete`` is what enables Next, so bad input cannot get past a page.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
import qimage2ndarray
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from focusstudio.core.device import resolve_device
from focusstudio.core.errors import FocusStudioError
from focusstudio.core.params import ParamSpec
from focusstudio.core.progress import CancelToken, ProgressEvent
from focusstudio.core.training.assessment import (
    BeforeAfter,
    StepTimeEstimate,
    WeightsComparison,
    before_after_fusion,
    compare_weights,
    measure_step_time,
)
from focusstudio.core.training.catalog import (
    TrainableMethod,
    build_train_config,
    steps_for,
    synthesis_overrides,
    synthesis_params,
    trainable_methods,
    training_params,
)
from focusstudio.core.training.inspection import DataReport, inspect_training_data, preview_samples
from focusstudio.core.training.manifest import read_manifest
from focusstudio.core.training.trainer import (
    PauseToken,
    TrainConfig,
    TrainEvent,
    TrainResult,
    default_runs_root,
    list_runs,
)
from focusstudio.core.weights import install_user_weights, list_installed_weights, resolve_weights
from focusstudio.gui.param_form import ParamForm
from focusstudio.gui.training_jobs import (
    PREVIEW_TITLES,
    TrainProgress,
    image_strip,
    preview_columns,
    preview_grid,
    train_job,
)
from focusstudio.gui.workers import JobRunner

PAGE_METHOD, PAGE_DATA, PAGE_SETTINGS, PAGE_TRAIN, PAGE_RESULT = range(5)
#: Delays after the last edit before background work restarts (typing a path, dragging a slider).
INSPECT_DEBOUNCE_MS = 300
PREVIEW_DEBOUNCE_MS = 250
ESTIMATE_DEBOUNCE_MS = 700
#: The loss plot redraws at most this often (a fast run yields hundreds of steps per second).
PLOT_REFRESH_MS = 200
PREVIEW_COUNT = 4
PREVIEW_TILE = 120
#: Settings whose change makes the measured time per step stale.
TIMING_KEYS = ("batch_size", "crop", "resize", "device", "val_samples")
TRAINED_FILE = "trained.pt"
STATUS_WORDS = {"cancelled": "cancelled", "paused": "paused", "running": "interrupted", "completed": "completed"}


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
    val_fraction: float = 0.1
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


def _wizard(page: QWizardPage) -> TrainingWizard:
    wizard = page.wizard()
    assert isinstance(wizard, TrainingWizard)
    return wizard


def _note(text: str = "", object_name: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if object_name:
        label.setObjectName(object_name)
    return label


def _top_aligned(widget: QWidget) -> QWidget:
    """``widget`` in a container that gives spare height to a stretch below it, not to its rows."""
    container = QWidget()
    layout = QVBoxLayout(container)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(widget)
    layout.addStretch(1)
    return container


# =========================================================================================== Method
class MethodPage(QWizardPage):
    """Which method, from which weights; or an interrupted run to resume."""

    def __init__(self, methods: list[TrainableMethod]) -> None:
        super().__init__()
        self.setTitle("Method")
        self.setSubTitle("Choose what to train and where to start from, or resume an interrupted run.")
        self.methods = {m.name: m for m in methods}
        self.new_radio = QRadioButton("Train a method on your images")
        self.new_radio.setObjectName("newRunRadio")
        self.resume_radio = QRadioButton("Resume an interrupted run")
        self.resume_radio.setObjectName("resumeRadio")
        modes = QButtonGroup(self)
        modes.addButton(self.new_radio)
        modes.addButton(self.resume_radio)
        self.new_radio.setChecked(True)

        self.method_list = QListWidget()
        self.method_list.setObjectName("methodList")
        for method in methods:
            item = QListWidgetItem(f"{method.title}  ({method.name})")
            item.setData(Qt.ItemDataRole.UserRole, method.name)
            self.method_list.addItem(item)
        self.method_list.setMaximumHeight(120)
        self.details = _note(object_name="methodDetails")
        self.details.setTextFormat(Qt.TextFormat.RichText)
        self.scratch_radio = QRadioButton("From scratch (random initialisation)")
        self.scratch_radio.setObjectName("scratchRadio")
        self.finetune_radio = QRadioButton("Fine-tune existing weights:")
        self.finetune_radio.setObjectName("finetuneRadio")
        starts = QButtonGroup(self)
        starts.addButton(self.scratch_radio)
        starts.addButton(self.finetune_radio)
        self.weights_combo = QComboBox()
        self.weights_combo.setObjectName("baseWeightsCombo")
        self.weights_note = _note()
        start_row = QHBoxLayout()
        start_row.addWidget(self.finetune_radio)
        start_row.addWidget(self.weights_combo, 1)

        self.runs_list = QListWidget()
        self.runs_list.setObjectName("runsList")
        self.runs_list.setMaximumHeight(110)
        self.resume_steps = QSpinBox()
        self.resume_steps.setObjectName("resumeSteps")
        self.resume_steps.setRange(1, 100_000_000)
        self.resume_steps.setToolTip("Total steps of the resumed run (raise it to train longer)")
        steps_row = QHBoxLayout()
        steps_row.addWidget(QLabel("Train until step"))
        steps_row.addWidget(self.resume_steps)
        steps_row.addStretch(1)

        new_box = QGroupBox()
        new_layout = QVBoxLayout(new_box)
        new_layout.addWidget(self.method_list)
        new_layout.addWidget(self.details)
        new_layout.addWidget(self.scratch_radio)
        new_layout.addLayout(start_row)
        new_layout.addWidget(self.weights_note)
        new_layout.addStretch(1)
        resume_box = QGroupBox()
        resume_layout = QVBoxLayout(resume_box)
        resume_layout.addWidget(self.runs_list)
        resume_layout.addLayout(steps_row)
        self.runs_note = _note()
        resume_layout.addWidget(self.runs_note)
        resume_layout.addStretch(1)
        self.new_box, self.resume_box = new_box, resume_box

        layout = QVBoxLayout(self)
        layout.addWidget(self.new_radio)
        layout.addWidget(new_box, 1)
        layout.addWidget(self.resume_radio)
        layout.addWidget(resume_box)

        self._scratch_chosen: set[str] = set()
        self.scratch_radio.clicked.connect(lambda: self._scratch_chosen.add(self.selected_method() or ""))
        self.finetune_radio.clicked.connect(lambda: self._scratch_chosen.discard(self.selected_method() or ""))
        self.method_list.currentItemChanged.connect(lambda *_: self._on_method())
        self.weights_combo.currentIndexChanged.connect(lambda *_: self.completeChanged.emit())
        self.runs_list.currentItemChanged.connect(lambda *_: self._on_run())
        for button in (self.new_radio, self.resume_radio, self.scratch_radio, self.finetune_radio):
            button.toggled.connect(lambda *_: self._on_mode())
        self.method_list.setCurrentRow(0)

    # ------------------------------------------------------------------ state
    def initializePage(self) -> None:
        self.refresh_runs()
        self._on_method()
        self._on_mode()

    def refresh_runs(self) -> None:
        self.runs_list.clear()
        try:
            runs = [run for run in list_runs(_wizard(self).runs_root) if run["status"] != "completed"]
        except FocusStudioError:
            runs = []
        for run in runs:
            when = _dt.datetime.fromtimestamp(run["modified"]).strftime("%Y-%m-%d %H:%M")
            status = STATUS_WORDS.get(run["status"], run["status"])
            item = QListWidgetItem(f"{run['method']} — step {run['step']} of {run['total_steps']} ({status}, {when})")
            item.setToolTip(run["checkpoint"])
            item.setData(Qt.ItemDataRole.UserRole, run)
            self.runs_list.addItem(item)
        self.runs_note.setText("" if runs else "No interrupted runs.")
        self.resume_radio.setEnabled(bool(runs))
        if runs:
            self.runs_list.setCurrentRow(0)
        elif self.resume_radio.isChecked():
            self.new_radio.setChecked(True)

    def selected_method(self) -> str | None:
        item = self.method_list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def select_method(self, name: str) -> None:
        for row in range(self.method_list.count()):
            if self.method_list.item(row).data(Qt.ItemDataRole.UserRole) == name:
                self.method_list.setCurrentRow(row)
                return
        raise FocusStudioError(f"{name!r} is not trainable; trainable: {', '.join(self.methods)}")

    def selected_run(self) -> dict[str, Any] | None:
        item = self.runs_list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def resuming(self) -> bool:
        return self.resume_radio.isChecked()

    def _on_method(self) -> None:
        name = self.selected_method()
        if name is None:
            return
        method = self.methods[name]
        self.details.setText(
            f"<p>{html.escape(method.description)}</p><p><b>Data:</b> {html.escape(method.data_needs)}</p>"
            f"<p><b>Validation metric:</b> {method.primary_metric} "
            f"({'higher' if method.higher_is_better else 'lower'} is better)</p>"
        )
        installed = list_installed_weights(name)
        self.weights_combo.clear()
        for weights in installed:
            self.weights_combo.addItem(weights.label, weights.name)
            self.weights_combo.setItemData(self.weights_combo.count() - 1, weights.summary,
                                           Qt.ItemDataRole.ToolTipRole)
        self.finetune_radio.setEnabled(bool(installed))
        if installed:
            self.weights_note.setText("Fine-tuning adapts these weights to your images: fewer steps and a lower "
                                      "learning rate are suggested.")
            (self.scratch_radio if name in self._scratch_chosen else self.finetune_radio).setChecked(True)
        else:
            self.weights_note.setText(f"No {name} weights are installed yet: this run starts from scratch.")
            self.scratch_radio.setChecked(True)
        self.completeChanged.emit()

    def _on_run(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.resume_steps.setMinimum(max(1, int(run["step"]) + 1))
            self.resume_steps.setValue(max(int(run["total_steps"]), int(run["step"]) + 1))
        self.completeChanged.emit()

    def _on_mode(self) -> None:
        resuming = self.resuming()
        self.new_box.setEnabled(not resuming)
        self.resume_box.setEnabled(resuming)
        self.weights_combo.setEnabled(self.finetune_radio.isChecked())
        # Resuming goes straight to training: there is no way back from it.
        self.setCommitPage(resuming)
        self.setButtonText(QWizard.WizardButton.CommitButton, "Resume training")
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        if self.resuming():
            return self.selected_run() is not None
        if self.selected_method() is None:
            return False
        return self.scratch_radio.isChecked() or (self.finetune_radio.isChecked() and self.weights_combo.count() > 0)

    def validatePage(self) -> bool:
        choices = _wizard(self).choices
        if self.resuming():
            run = self.selected_run()
            assert run is not None
            choices.resume = run
            choices.resume_steps = self.resume_steps.value()
            choices.method = run["method"]
            return True
        choices.resume = None
        choices.method = self.selected_method() or ""
        choices.finetune_from = self.weights_combo.currentData() if self.finetune_radio.isChecked() else None
        return True

    def nextId(self) -> int:
        return PAGE_TRAIN if self.resuming() else PAGE_DATA


# =========================================================================================== Data
class DataPage(QWizardPage):
    """The training folder, the synthesis recipe with a live preview, the checks and the split."""

    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Data")
        self.setSubTitle("Point to your images. They are checked before training; the preview shows the "
                         "training pairs exactly as they will be generated.")
        self._method = ""
        self._report: DataReport | None = None
        self._report_key: tuple[Any, ...] | None = None
        self._pending_key: tuple[Any, ...] | None = None
        self._preview_seed = 1
        self.last_preview: list[Any] = []
        self.inspect_runner = JobRunner("training-data", self)
        self.preview_runner = JobRunner("training-preview", self)
        self.inspect_runner.succeeded.connect(lambda _job, report: self._on_report(report))
        self.inspect_runner.failed.connect(lambda _job, message: self._on_report_failed(message))
        self.inspect_runner.busyChanged.connect(lambda _busy: self.completeChanged.emit())
        self.preview_runner.succeeded.connect(lambda _job, samples: self._on_preview(samples))
        self.preview_runner.failed.connect(lambda _job, message: self._on_preview_failed(message))

        self.photos_radio = QRadioButton("Sharp photos: pairs are synthesized from them")
        self.photos_radio.setObjectName("photosRadio")
        self.pairs_radio = QRadioButton("Real registered pairs with a ground truth (<scene>/1.*, 2.*, gt.*, mask.*)")
        self.pairs_radio.setObjectName("pairsRadio")
        formats = QButtonGroup(self)
        formats.addButton(self.photos_radio)
        formats.addButton(self.pairs_radio)
        self.photos_radio.setChecked(True)
        self.data_field = FolderField("Folder of training images", "dataFolder",
                                      "folder of sharp photos (or a corpus with images/ and masks/)")
        self.masks_field = FolderField("Folder of focus masks", "masksFolder",
                                       "optional: masks with the photos' file names (white = in focus in A)")
        self.masks_label = QLabel("Masks")
        folders = QFormLayout()
        folders.addRow("Images", self.data_field)
        folders.addRow(self.masks_label, self.masks_field)

        self.synthesis_box = QGroupBox("Synthesis recipe")
        self.synthesis_form = ParamForm(group_titles={"analysis": "Pairs", "post": "Augmentations"},
                                        describe=describe_setting)
        self.synthesis_form.setObjectName("synthesisForm")
        synthesis_layout = QVBoxLayout(self.synthesis_box)
        synthesis_layout.addWidget(self.synthesis_form)
        synthesis_layout.addStretch(1)

        preview_box = QGroupBox("Preview of generated training samples")
        self.preview_titles = QLabel()
        self.preview_titles.setObjectName("previewTitles")
        self.preview_label = QLabel("Choose a folder to see generated pairs.")
        self.preview_label.setObjectName("previewGrid")
        self.preview_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.preview_label.setMinimumHeight(PREVIEW_TILE)
        reshuffle = QPushButton("Other samples")
        reshuffle.setToolTip("Draw other random samples with the same recipe")
        reshuffle.clicked.connect(self._reshuffle)
        preview_layout = QVBoxLayout(preview_box)
        preview_layout.addWidget(self.preview_titles)
        preview_layout.addWidget(self.preview_label, 1)
        preview_layout.addWidget(reshuffle, 0, Qt.AlignmentFlag.AlignLeft)

        check_box = QGroupBox("What the folder holds")
        self.summary_label = _note("", "dataSummary")
        self.problems_list = QListWidget()
        self.problems_list.setObjectName("dataProblems")
        self.problems_list.setMaximumHeight(96)
        self.val_spin = QDoubleSpinBox()
        self.val_spin.setObjectName("valFraction")
        self.val_spin.setRange(0.0, 0.5)
        self.val_spin.setSingleStep(0.05)
        self.val_spin.setDecimals(2)
        self.val_spin.setValue(0.1)
        self.val_spin.setToolTip("Share of the images held out for validation (never trained on)")
        self.split_label = QLabel()
        split_row = QHBoxLayout()
        split_row.addWidget(QLabel("Validation share"))
        split_row.addWidget(self.val_spin)
        split_row.addWidget(self.split_label, 1)
        check_layout = QVBoxLayout(check_box)
        check_layout.addWidget(self.summary_label)
        check_layout.addWidget(self.problems_list)
        check_layout.addLayout(split_row)

        left = QVBoxLayout()
        left.addWidget(self.photos_radio)
        left.addWidget(self.pairs_radio)
        left.addLayout(folders)
        left.addWidget(check_box)
        left.addWidget(self.synthesis_box, 1)
        right = QVBoxLayout()
        right.addWidget(preview_box, 1)
        layout = QHBoxLayout(self)
        left_widget = QWidget()
        left_widget.setLayout(left)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(left_widget)
        layout.addWidget(scroll, 5)
        layout.addLayout(right, 4)

        self._inspect_timer = self._timer(INSPECT_DEBOUNCE_MS, self.inspect_now)
        self._preview_timer = self._timer(PREVIEW_DEBOUNCE_MS, self.preview_now)
        self.data_field.changed.connect(lambda _text: self._inputs_changed())
        self.masks_field.changed.connect(lambda _text: self._inputs_changed())
        self.pairs_radio.toggled.connect(lambda _on: self._inputs_changed())
        self.synthesis_form.valuesChanged.connect(lambda _values: self._preview_timer.start())
        self.val_spin.valueChanged.connect(lambda _value: self._show_report())

    def _timer(self, interval: int, slot: Callable[[], None]) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.setInterval(interval)
        timer.timeout.connect(slot)
        return timer

    # ------------------------------------------------------------------ inputs
    def initializePage(self) -> None:
        method = _wizard(self).choices.method
        if method != self._method:
            self._method = method
            self.synthesis_form.set_params(synthesis_params(method))
            self._report_key = None
        self._inputs_changed()

    def data_format(self) -> str:
        return "pairs" if self.pairs_radio.isChecked() else "images"

    def _key(self) -> tuple[Any, ...]:
        masks = self.masks_field.path() if self.data_format() == "images" else ""
        return (self._method, self.data_format(), self.data_field.path(), masks)

    def _inputs_changed(self) -> None:
        pairs = self.data_format() == "pairs"
        self.masks_field.setVisible(not pairs)
        self.masks_label.setVisible(not pairs)
        self.synthesis_box.setVisible(not pairs)
        if self._key() != self._report_key:
            self._report = None
            self._show_report()
            self._inspect_timer.start()
        self._preview_timer.start()
        self.completeChanged.emit()

    def _reshuffle(self) -> None:
        self._preview_seed += 1
        self.preview_now()

    # ------------------------------------------------------------------ checks
    def inspect_now(self) -> None:
        self._inspect_timer.stop()
        key = self._key()
        method, data_format, folder, masks = key
        if not folder:
            self.inspect_runner.cancel()
            self._report_key = None
            self.summary_label.setText("Choose the folder of training images.")
            self.completeChanged.emit()
            return
        defaults = self._defaults()
        val_fraction = self.val_spin.value()  # read here: the job runs in another thread
        self._pending_key = key
        self.summary_label.setText("Checking the images…")
        self.inspect_runner.start(lambda token: inspect_training_data(
            method, folder, masks or None, data_format, val_fraction, 1, defaults.crop, defaults.resize,
            cancel=token))

    def _defaults(self) -> Any:
        from focusstudio.core.training.recipe import get_recipe

        return get_recipe(self._method).defaults()

    def _on_report(self, report: DataReport) -> None:
        self._report = report
        self._report_key = self._pending_key
        self._show_report()
        self.completeChanged.emit()

    def _on_report_failed(self, message: str) -> None:
        self._report = None
        self._report_key = None
        self.summary_label.setText(f"Cannot check the folder: {message}")
        self.completeChanged.emit()

    def current_report(self) -> DataReport | None:
        if self._report is None or self._report_key != self._key():
            return None
        return self._report.with_split(self.val_spin.value())

    def _show_report(self) -> None:
        report = self.current_report()
        self.problems_list.clear()
        if report is None:
            self.split_label.setText("")
            if self.data_field.path():
                self.summary_label.setText("Checking the images…")
            return
        self.summary_label.setText(report.summary())
        for problem in report.problems:
            item = QListWidgetItem(("✖ " if problem.severity == "error" else "⚠ ") + str(problem))
            item.setToolTip(problem.path)
            item.setForeground(Qt.GlobalColor.red if problem.severity == "error" else Qt.GlobalColor.darkYellow)
            self.problems_list.addItem(item)
        if not report.problems:
            self.problems_list.addItem(QListWidgetItem("✔ No problems found"))
        self.split_label.setText(f"{report.train_items} for training, {report.val_items} for validation")
        self.completeChanged.emit()

    # ------------------------------------------------------------------ preview
    def preview_now(self) -> None:
        self._preview_timer.stop()
        method, data_format, folder, masks = self._key()
        if not folder or not Path(folder).is_dir():
            self.preview_runner.cancel()
            self.preview_label.setPixmap(QPixmap())
            self.preview_label.setText("Choose a folder to see generated pairs.")
            self.preview_titles.setText("")
            return
        defaults = self._defaults()
        overrides = synthesis_overrides(self.synthesis_form.values()) if data_format == "images" else {}
        seed = self._preview_seed
        self.preview_runner.start(lambda token: preview_samples(
            method, folder, masks or None, data_format, overrides, defaults.resize, defaults.crop, seed,
            PREVIEW_COUNT, cancel=token))

    def _on_preview(self, samples: list[Any]) -> None:
        self.last_preview = samples
        grid = preview_grid(samples, PREVIEW_TILE)
        self.preview_label.setText("")
        self.preview_label.setPixmap(to_pixmap(grid))
        columns = preview_columns(samples)
        width = PREVIEW_TILE + 4
        cells = "".join(f"<td width='{width}' align='center'><b>{PREVIEW_TITLES[key]}</b></td>" for key in columns)
        self.preview_titles.setText(f"<table cellspacing='0' cellpadding='0'><tr>{cells}</tr></table>")
        if self._method and get_synthesis_mode(self._method) == "none" and self.data_format() == "images":
            self.preview_titles.setText(self.preview_titles.text() + "<i>This method trains on the sharp photos "
                                        "themselves; the pairs shown are its validation pairs.</i>")

    def _on_preview_failed(self, message: str) -> None:
        self.preview_label.setPixmap(QPixmap())
        self.preview_label.setText(f"No preview: {message}")

    # ------------------------------------------------------------------ wizard protocol
    def isComplete(self) -> bool:
        report = self.current_report()
        return report is not None and report.usable and not self.inspect_runner.busy

    def validatePage(self) -> bool:
        report = self.current_report()
        if report is None or not report.usable:
            return False
        choices = _wizard(self).choices
        choices.data_format = self.data_format()
        choices.data = self.data_field.path()
        choices.masks = (self.masks_field.path() or None) if choices.data_format == "images" else None
        choices.synthesis = synthesis_overrides(self.synthesis_form.values()) if choices.data_format == "images" else {}
        choices.val_fraction = self.val_spin.value()
        choices.report = report
        return True

    def stop(self) -> None:
        self._inspect_timer.stop()
        self._preview_timer.stop()
        self.inspect_runner.cancel()
        self.preview_runner.cancel()


#: Metrics worth plotting when a recipe's primary metric is its loss (already in the loss plot).
INFORMATIVE_METRICS = ("accuracy", "dm_accuracy", "dice", "ssim", "psnr", "psnr_hard", "qabf")


def plotted_metric(primary: str, values: dict[str, float]) -> str:
    """The validation metric of the right-hand plot."""
    if primary != "loss":
        return primary
    return next((key for key in INFORMATIVE_METRICS if key in values), primary)


def get_synthesis_mode(method: str) -> str:
    from focusstudio.core.training.recipe import get_recipe
    from focusstudio.core.training.trainer import make_config

    return get_recipe(method).synthesis(make_config(method, ".")).mode


# =========================================================================================== Settings
class SettingsPage(QWizardPage):
    """Run length, batch, crop, learning rate, device, seed, checkpoints; a measured time per step."""

    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Settings")
        self.setSubTitle("Defaults are the method's own (shorter and gentler when fine-tuning). The time per "
                         "step is measured on a few real steps in the background.")
        self.setCommitPage(True)
        self.setButtonText(QWizard.WizardButton.CommitButton, "Start training")
        self._form_key: tuple[Any, ...] | None = None
        self._config_error: str | None = "not checked yet"
        self._estimate: StepTimeEstimate | None = None
        self._timing_values: dict[str, Any] = {}
        self.form = ParamForm(group_titles={"analysis": "Training", "post": "Machine, validation and checkpoints"},
                              describe=describe_setting)
        self.form.setObjectName("settingsForm")
        self.form.valuesChanged.connect(self._on_values)
        self.steps_label = _note("", "stepsLabel")
        self.error_label = _note("", "settingsError")
        self.error_label.setStyleSheet("color: #c0392b;")
        self.estimate_label = _note("", "estimateLabel")
        self.measure_button = QPushButton("Measure again")
        self.measure_button.clicked.connect(self.measure_now)
        self.estimate_runner = JobRunner("training-estimate", self)
        self.estimate_runner.succeeded.connect(lambda _job, estimate: self._on_estimate(estimate))
        self.estimate_runner.failed.connect(lambda _job, message: self._on_estimate_failed(message))
        self.estimate_runner.progressed.connect(self._on_estimate_progress)
        self._estimate_timer = QTimer(self)
        self._estimate_timer.setSingleShot(True)
        self._estimate_timer.setInterval(ESTIMATE_DEBOUNCE_MS)
        self._estimate_timer.timeout.connect(self.measure_now)
        self.run_label = _note("", "runFolder")

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(_top_aligned(self.form))
        estimate_box = QGroupBox("Time")
        estimate_layout = QVBoxLayout(estimate_box)
        estimate_layout.addWidget(self.estimate_label)
        estimate_layout.addWidget(self.measure_button, 0, Qt.AlignmentFlag.AlignLeft)
        side = QVBoxLayout()
        side.addWidget(self.steps_label)
        side.addWidget(estimate_box)
        side.addWidget(self.error_label)
        side.addStretch(1)
        side.addWidget(self.run_label)
        layout = QHBoxLayout(self)
        layout.addWidget(scroll, 3)
        layout.addLayout(side, 2)

    def initializePage(self) -> None:
        choices = _wizard(self).choices
        key = (choices.method, choices.finetune_from is not None)
        if key != self._form_key:
            self._form_key = key
            self.form.set_params(training_params(choices.method, finetune=choices.finetune_from is not None))
            device = _wizard(self).default_device
            if device in self.form.params.get("device").choices:
                self.form.set_values({"device": device})
        self._estimate = None
        self._timing_values = {}
        self._on_values(self.form.values())
        self.run_label.setText(f"Checkpoints and the trained weights go to a new folder in {_wizard(self).runs_root}")

    def train_items(self) -> int:
        report = _wizard(self).choices.report
        return report.train_items if report is not None else 1

    def build_config(self, run_dir: Path | None = None) -> TrainConfig:
        choices = _wizard(self).choices
        return build_train_config(
            choices.method, choices.data, self.form.values(), self.train_items(), masks=choices.masks,
            data_format=choices.data_format, synthesis=choices.synthesis, val_fraction=choices.val_fraction,
            init_weights=choices.finetune_from, run_dir=run_dir,
            out=run_dir / TRAINED_FILE if run_dir is not None else None,
        )

    def _on_values(self, values: dict[str, Any]) -> None:
        items = self.train_items()
        batch = int(values["batch_size"])
        steps = steps_for(float(values["length"]), str(values["length_unit"]), items, batch)
        epochs = steps * batch / max(items, 1)
        self.steps_label.setText(f"<b>{steps:,} steps</b> = {epochs:.3g} epochs over {items} training item"
                                 f"{'' if items == 1 else 's'} (batch {batch})")
        try:
            config = self.build_config()
            report = _wizard(self).choices.report
            if config.data_format == "pairs" and report is not None and report.smallest is not None \
                    and min(report.smallest) < config.crop:
                raise FocusStudioError(f"the crop {config.crop} is larger than the smallest scene "
                                       f"({report.smallest[0]}×{report.smallest[1]})")
            self._config_error = None
            self.error_label.setText("")
        except FocusStudioError as error:
            self._config_error = str(error)
            self.error_label.setText(f"Cannot train with these settings: {error}")
        timing = {key: values[key] for key in TIMING_KEYS}
        if self._config_error is None and timing != self._timing_values:
            self._estimate_timer.start()
        self._show_estimate()
        self.completeChanged.emit()

    # ------------------------------------------------------------------ timing
    def measure_now(self) -> None:
        self._estimate_timer.stop()
        if self._config_error is not None:
            return
        config = self.build_config()
        self._timing_values = {key: self.form.values()[key] for key in TIMING_KEYS}
        self._estimate = None
        self.estimate_label.setText("Measuring a few training steps…")
        self.estimate_runner.start(lambda token: measure_step_time(config, cancel=token))

    def _on_estimate_progress(self, event: ProgressEvent) -> None:
        self.estimate_label.setText(f"Measuring a few training steps… ({event.message})")

    def _on_estimate(self, estimate: StepTimeEstimate) -> None:
        self._estimate = estimate
        self._show_estimate()

    def _on_estimate_failed(self, message: str) -> None:
        self.estimate_label.setText(f"Could not time a step: {message}")

    def _show_estimate(self) -> None:
        estimate = self._estimate
        if estimate is None:
            return
        try:
            config = self.build_config()
        except FocusStudioError:
            return
        scaled = replace(estimate, total_steps=config.steps, val_every=config.val_every,
                         validates=config.val_fraction > 0)
        self.estimate_label.setText(
            f"<b>{estimate.seconds_per_step:.3g} s per step</b> on {estimate.device} (median of "
            f"{estimate.steps_measured} measured steps), {estimate.validation_seconds:.2g} s per validation.<br>"
            f"The whole run: about <b>{format_duration(scaled.total_seconds)}</b>."
        )
        self.estimate_label.setObjectName("estimateLabel")

    @property
    def estimate(self) -> StepTimeEstimate | None:
        return self._estimate

    # ------------------------------------------------------------------ wizard protocol
    def isComplete(self) -> bool:
        return self._config_error is None

    def validatePage(self) -> bool:
        wizard = _wizard(self)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = wizard.runs_root / f"{wizard.choices.method}-{stamp}"
        suffix = 1
        while run_dir.exists():
            suffix += 1
            run_dir = wizard.runs_root / f"{wizard.choices.method}-{stamp}-{suffix}"
        try:
            wizard.choices.config = self.build_config(run_dir)
        except FocusStudioError as error:
            self.error_label.setText(f"Cannot train with these settings: {error}")
            return False
        self.stop()
        return True

    def stop(self) -> None:
        self._estimate_timer.stop()
        self.estimate_runner.cancel()


# =========================================================================================== Train
class TrainPage(QWizardPage):
    """The run: live losses and validation metric, step, ETA, device, pause/resume, cancel."""

    #: (TrainResult) the run ended (completed or cancelled).
    runFinished = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Train")
        self.setSubTitle("Training runs in the background. Checkpoints are written regularly: cancelling or "
                         "closing loses at most one checkpoint interval, and the run can be resumed later.")
        self.runner = JobRunner("training", self)
        self.runner.progressed.connect(self._on_progress)
        self.runner.succeeded.connect(lambda _job, result: self._on_finished(result))
        self.runner.failed.connect(lambda _job, message: self._on_failed(message))
        self.runner.busyChanged.connect(lambda _busy: self._update_buttons())
        self._cancel = CancelToken()
        self._pause = PauseToken()
        self.result: TrainResult | None = None
        self.last_checkpoint: str | None = None
        self.last_event: TrainEvent | None = None
        self.primary_metric = "loss"
        self.plotted_metric: str | None = None
        self.steps: list[float] = []
        self.losses: list[float] = []
        self.val_steps: list[float] = []
        self.val_losses: list[float] = []
        self.val_metric: list[float] = []
        self._dirty = False

        self.status_label = _note("", "trainStatus")
        self.step_label = QLabel("Step —")
        self.step_label.setObjectName("stepLabel")
        self.eta_label = QLabel("ETA —")
        self.eta_label.setObjectName("etaLabel")
        self.device_label = QLabel("Device —")
        self.device_label.setObjectName("deviceLabel")
        self.lr_label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        info = QGridLayout()
        info.addWidget(self.step_label, 0, 0)
        info.addWidget(self.eta_label, 0, 1)
        info.addWidget(self.device_label, 0, 2)
        info.addWidget(self.lr_label, 0, 3)

        pg.setConfigOptions(antialias=True)
        self.loss_plot = pg.PlotWidget(title="Loss")
        self.loss_plot.setObjectName("lossPlot")
        self.loss_plot.setBackground("w")
        self.loss_plot.addLegend(offset=(-10, 10))
        self.loss_plot.setLabel("bottom", "step")
        self.loss_plot.showGrid(x=True, y=True, alpha=0.25)
        self.train_curve = self.loss_plot.plot(pen=pg.mkPen("#2c7fb8", width=1.5), name="training")
        self.val_curve = self.loss_plot.plot(pen=pg.mkPen("#d95f0e", width=2), symbol="o", symbolSize=6,
                                             symbolBrush="#d95f0e", name="validation")
        self.metric_plot = pg.PlotWidget(title="Validation metric")
        self.metric_plot.setObjectName("metricPlot")
        self.metric_plot.setBackground("w")
        self.metric_plot.setLabel("bottom", "step")
        self.metric_plot.showGrid(x=True, y=True, alpha=0.25)
        self.metric_curve = self.metric_plot.plot(pen=pg.mkPen("#31a354", width=2), symbol="o", symbolSize=6,
                                                  symbolBrush="#31a354")
        self.metric_plot.setXLink(self.loss_plot)

        self.pause_button = QPushButton("Pause")
        self.pause_button.setObjectName("pauseButton")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.cancel_button = QPushButton("Cancel training")
        self.cancel_button.setObjectName("cancelTrainingButton")
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setObjectName("resumeTrainingButton")
        self.resume_button.clicked.connect(self.resume_run)
        buttons = QHBoxLayout()
        buttons.addWidget(self.pause_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.resume_button)
        buttons.addStretch(1)

        plots = QHBoxLayout()
        plots.addWidget(self.loss_plot, 3)
        plots.addWidget(self.metric_plot, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(info)
        layout.addWidget(self.progress)
        layout.addLayout(plots, 1)
        layout.addWidget(self.status_label)
        layout.addLayout(buttons)
        self._plot_timer = QTimer(self)
        self._plot_timer.setInterval(PLOT_REFRESH_MS)
        self._plot_timer.timeout.connect(self._refresh_plots)
        self._update_buttons()

    # ------------------------------------------------------------------ running
    def initializePage(self) -> None:
        choices = _wizard(self).choices
        config = choices.run_config
        assert config is not None
        from focusstudio.core.training.recipe import get_recipe

        self.primary_metric = get_recipe(config.method).primary_metric
        self.plotted_metric = None
        self.metric_plot.setTitle("Validation metric")
        self.result = None
        self.steps.clear()
        self.losses.clear()
        self.val_steps.clear()
        self.val_losses.clear()
        self.val_metric.clear()
        self._refresh_plots()
        if choices.resume is not None:
            self.last_checkpoint = choices.resume["checkpoint"]
            self._start(None, self.last_checkpoint)
        else:
            assert choices.config is not None
            self.last_checkpoint = None
            self._start(choices.config, None)

    def _start(self, config: TrainConfig | None, checkpoint: str | None) -> None:
        self._cancel = CancelToken()
        self._pause = PauseToken()
        self.result = None
        choices = _wizard(self).choices
        run_config = choices.run_config
        if run_config is not None:
            try:
                self.device_label.setText(f"Device {resolve_device(run_config.device)}")
            except FocusStudioError as error:
                self.device_label.setText(f"Device: {error}")
        overrides: dict[str, Any] | None = None
        if checkpoint is not None and run_config is not None:
            overrides = {"steps": run_config.steps}
            if not run_config.out:
                # A run started without an output (e.g. from the CLI): export next to its checkpoint.
                overrides["out"] = str(Path(checkpoint).parent / TRAINED_FILE)
        self.status_label.setText("Preparing the data and the network…")
        self.runner.start(partial(train_job, config, checkpoint, overrides, self._cancel, self._pause))
        self._plot_timer.start()
        self.completeChanged.emit()

    @property
    def running(self) -> bool:
        return self.runner.busy

    def toggle_pause(self) -> None:
        if not self.running:
            return
        if self._pause.paused:
            self._pause.resume()
            self.pause_button.setText("Pause")
            self.status_label.setText("Training…")
        else:
            self._pause.pause()
            self.pause_button.setText("Continue")
            self.status_label.setText("Pausing after this step (a checkpoint is written)…")

    def cancel(self) -> None:
        if not self.running:
            return
        self._cancel.cancel()
        self._pause.resume()  # a paused trainer must wake up to see the cancel
        self.status_label.setText("Stopping after this step and writing a checkpoint…")
        self._update_buttons()

    def resume_run(self) -> None:
        if self.running or self.last_checkpoint is None:
            return
        self._start(None, self.last_checkpoint)

    def stop_for_close(self) -> None:
        """Cancel the run cleanly (checkpoint) because the wizard closes."""
        self.cancel()

    # ------------------------------------------------------------------ events
    def _on_progress(self, progress: ProgressEvent) -> None:
        if not isinstance(progress, TrainProgress) or progress.event is None:
            return
        event = progress.event
        self.last_event = event
        if event.phase == "train":
            self.steps.append(float(event.step))
            self.losses.append(float(event.losses.get("loss", math.nan)))
            self._dirty = True
        elif event.phase == "validate" and event.val is not None:
            if self.plotted_metric is None:
                self.plotted_metric = plotted_metric(self.primary_metric, event.val)
                self.metric_plot.setTitle(f"Validation {self.plotted_metric}")
            self.val_steps.append(float(event.step))
            self.val_losses.append(float(event.val.get("loss", math.nan)))
            self.val_metric.append(float(event.val.get(self.plotted_metric, math.nan)))
            self._dirty = True
        elif event.phase in ("checkpoint", "paused", "cancelled") and event.path:
            self.last_checkpoint = event.path
        self.step_label.setText(f"Step {event.step:,} of {event.total_steps:,}")
        self.progress.setValue(round(1000 * event.fraction))
        if event.eta_s is not None:
            self.eta_label.setText(f"ETA {format_duration(event.eta_s)}")
        if event.seconds_per_step:
            self.lr_label.setText(f"lr {event.lr:.3g} · {event.seconds_per_step:.3g} s/step")
        messages = {
            "prepare": event.message, "train": "Training…", "validate": "Validated" + (
                f" ({event.message})" if event.message else ""),
            "checkpoint": f"Checkpoint written at step {event.step}", "paused": "Paused (checkpoint written)",
            "resumed": "Training…", "export": "Exporting the weights…", "done": "Training finished",
        }
        if event.phase in messages and not self._cancel.cancelled:
            self.status_label.setText(messages[event.phase])

    def _refresh_plots(self) -> None:
        if not self._dirty and self.steps:
            return
        self._dirty = False
        self.train_curve.setData(np.asarray(self.steps, float), np.asarray(self.losses, float))
        self.val_curve.setData(np.asarray(self.val_steps, float), np.asarray(self.val_losses, float))
        self.metric_curve.setData(np.asarray(self.val_steps, float), np.asarray(self.val_metric, float))

    def _on_finished(self, result: TrainResult) -> None:
        self.result = result
        self._plot_timer.stop()
        self.eta_label.setText("ETA —")
        self._dirty = True
        self._refresh_plots()
        _wizard(self).choices.result = result
        if result.checkpoint is not None:
            self.last_checkpoint = str(result.checkpoint)
        if result.status == "completed":
            self.status_label.setText(f"Training finished at step {result.step}. Next: compare the new weights with "
                                      "the starting ones and save them.")
        else:
            self.status_label.setText(
                f"Cancelled at step {result.step}. The checkpoint {result.checkpoint} keeps the run: resume it "
                "here, or later from the first page of this wizard (or with focusstudio train --resume).")
        self._update_buttons()
        self.completeChanged.emit()
        self.runFinished.emit(result)

    def _on_failed(self, message: str) -> None:
        self._plot_timer.stop()
        self.eta_label.setText("ETA —")
        tail = f" The last checkpoint ({self.last_checkpoint}) can be resumed." if self.last_checkpoint else ""
        self.status_label.setText(f"Training failed: {message}.{tail}")
        self._update_buttons()
        self.runFinished.emit(None)

    def _update_buttons(self) -> None:
        running = self.runner.busy
        self.pause_button.setEnabled(running and not self._cancel.cancelled)
        self.cancel_button.setEnabled(running and not self._cancel.cancelled)
        finished = self.result is not None and self.result.status == "completed"
        self.resume_button.setVisible(not running and not finished and self.last_checkpoint is not None)
        if not running:
            self.pause_button.setText("Pause")

    def isComplete(self) -> bool:
        return self.result is not None and self.result.status == "completed" and self.result.weights is not None


# =========================================================================================== Result
class ResultPage(QWizardPage):
    """New vs starting weights on the validation split (and a test folder), a before/after fusion,
    and saving the weights under a name."""

    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Result")
        self.setSubTitle("How the new weights compare with the ones training started from; save them under a "
                         "name to use them in the window and with --weights NAME.")
        self.runner = JobRunner("training-result", self)
        self.runner.succeeded.connect(lambda _job, outcome: self._on_outcome(outcome))
        self.runner.failed.connect(lambda _job, message: self._on_failed(message))
        self.runner.progressed.connect(lambda event: self.status_label.setText(
            f"{event.stage.capitalize()}… {event.message}"))
        self.comparison: WeightsComparison | None = None
        self.before_after: BeforeAfter | None = None
        self.saved_name: str | None = None
        self._queue: list[Callable[[CancelToken], Any]] = []

        self.table = QTableWidget(0, 5)
        self.table.setObjectName("metricsTable")
        self.table.setHorizontalHeaderLabels(["Metric", "Evaluated on", "Starting weights", "New weights", "Change"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.test_field = FolderField("Folder of test images", "testFolder",
                                      "optional: another folder to evaluate on (same kind of data)")
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.setObjectName("evaluateTestButton")
        self.evaluate_button.clicked.connect(self.evaluate_test_folder)
        test_row = QHBoxLayout()
        test_row.addWidget(QLabel("Test folder"))
        test_row.addWidget(self.test_field, 1)
        test_row.addWidget(self.evaluate_button)
        self.before_after_titles = QLabel()
        self.before_after_label = QLabel()
        self.before_after_label.setObjectName("beforeAfter")
        self.before_after_label.setMinimumHeight(160)
        self.status_label = _note("", "resultStatus")
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("weightsName")
        self.save_button = QPushButton("Save weights")
        self.save_button.setObjectName("saveWeightsButton")
        self.save_button.clicked.connect(lambda: self.save())
        self.saved_label = _note("", "savedLabel")
        save_row = QHBoxLayout()
        save_row.addWidget(QLabel("Name"))
        save_row.addWidget(self.name_edit, 1)
        save_row.addWidget(self.save_button)

        metrics_box = QGroupBox("Validation metrics")
        metrics_layout = QVBoxLayout(metrics_box)
        metrics_layout.addWidget(self.table, 1)
        metrics_layout.addLayout(test_row)
        fusion_box = QGroupBox("Before / after on a validation sample")
        fusion_layout = QVBoxLayout(fusion_box)
        fusion_layout.addWidget(self.before_after_titles)
        fusion_layout.addWidget(self.before_after_label, 1)
        save_box = QGroupBox("Save")
        save_layout = QVBoxLayout(save_box)
        save_layout.addLayout(save_row)
        save_layout.addWidget(self.saved_label)
        layout = QVBoxLayout(self)
        layout.addWidget(metrics_box, 3)
        layout.addWidget(fusion_box, 2)
        layout.addWidget(self.status_label)
        layout.addWidget(save_box)

    def _config(self) -> TrainConfig:
        config = _wizard(self).choices.run_config
        assert config is not None
        return config

    def _weights(self) -> Path:
        result = _wizard(self).choices.result
        assert result is not None and result.weights is not None
        return Path(result.weights)

    def base_weights(self) -> str | None:
        return self._config().init_weights

    def initializePage(self) -> None:
        config = self._config()
        self.comparison = None
        self.before_after = None
        self.saved_name = None
        self.table.setRowCount(0)
        self.saved_label.setText("")
        self.save_button.setEnabled(True)
        data_name = Path(config.data).name or "data"
        self.name_edit.setText(f"{config.method}-{data_name}-{_dt.date.today():%Y%m%d}")
        new, base = self._weights(), self.base_weights()
        fusion_base = base if base is not None else self._default_weights(config.method)
        self._queue = [
            lambda token: compare_weights(config, new, base, cancel=token),
            lambda token: before_after_fusion(config, new, fusion_base, cancel=token),
        ] if config.val_fraction > 0 else [lambda token: before_after_fusion(config, new, fusion_base, cancel=token)]
        self._next_job()

    @staticmethod
    def _default_weights(method: str) -> str | None:
        try:
            return str(resolve_weights(method).path)
        except FocusStudioError:
            return None

    def _next_job(self) -> None:
        if self._queue:
            self.runner.start(self._queue.pop(0))
        else:
            self.status_label.setText("")

    def evaluate_test_folder(self) -> None:
        folder = self.test_field.path()
        if not folder:
            return
        config = replace(self._config(), val_fraction=0.0)
        new, base = self._weights(), self.base_weights()
        self._queue.append(lambda token: compare_weights(config, new, base, test_folder=folder, cancel=token))
        if not self.runner.busy:
            self._next_job()

    def _on_outcome(self, outcome: object) -> None:
        if isinstance(outcome, WeightsComparison):
            self._show_comparison(outcome)
        elif isinstance(outcome, BeforeAfter):
            self._show_before_after(outcome)
        self._next_job()

    def _on_failed(self, message: str) -> None:
        self.status_label.setText(f"Evaluation failed: {message}")
        self._next_job()

    def _show_comparison(self, comparison: WeightsComparison) -> None:
        if self.comparison is None:
            self.comparison = comparison
        else:
            self.comparison.results.update(comparison.results)
        primary = comparison.primary_metric
        self.table.setHorizontalHeaderLabels(
            ["Metric", "Evaluated on", f"Starting ({comparison.base_label})", "New weights", "Change"])
        for description, (base, new) in comparison.results.items():
            names = [name for name in [primary, *sorted(key for key in new if key != primary)] if name in new]
            for number, name in enumerate(names):
                row = self.table.rowCount()
                self.table.insertRow(row)
                before = base.get(name, math.nan)
                after = new[name]
                cells = [name + (" ★" if name == primary else ""), description if number == 0 else "",
                         f"{before:.4g}", f"{after:.4g}", f"{after - before:+.3g}"]
                for column, text in enumerate(cells):
                    item = QTableWidgetItem(text)
                    item.setToolTip(description)
                    if name == primary and column == 4:
                        improved = comparison.improved(description)
                        if improved is not None:
                            item.setForeground(Qt.GlobalColor.darkGreen if improved else Qt.GlobalColor.red)
                    self.table.setItem(row, column, item)

    def _show_before_after(self, pair: BeforeAfter) -> None:
        self.before_after = pair
        images = [pair.a, pair.b, pair.before, pair.after, pair.truth]
        titles = ["Source A", "Source B", f"Before ({pair.before_label})", "After (new weights)", "Ground truth"]
        if pair.before is None:
            titles[2] = "Before: no starting weights"
        side = 150
        self.before_after_label.setPixmap(to_pixmap(image_strip(images, side)))
        cells = "".join(f"<td width='{side + 4}' align='center'><b>{title}</b></td>" for title in titles)
        self.before_after_titles.setText(f"<table cellspacing='0' cellpadding='0'><tr>{cells}</tr></table>")

    # ------------------------------------------------------------------ saving
    def save(self, name: str | None = None) -> bool:
        wizard = _wizard(self)
        config = self._config()
        chosen = (name if name is not None else self.name_edit.text()).strip()
        weights = self._weights()
        manifest = Path(config.manifest) if config.manifest else weights.parent / "manifest.json"
        try:
            entries = read_manifest(manifest)["weights"]
        except FocusStudioError:
            entries = {}  # the weights themselves are what matters; their history is a bonus
        entry = dict(entries.get(weights.name) or entries.get(str(weights.resolve())) or {})
        if self.comparison is not None:
            entry["evaluation"] = {
                "baseline": self.comparison.base_label,
                "results": {description: {"start": base, "new": new}
                            for description, (base, new) in self.comparison.results.items()},
            }
        try:
            installed = install_user_weights(weights, chosen, config.method, entry)
        except FocusStudioError as error:
            self.saved_label.setText(f"<span style='color:#c0392b'>Not saved: {error}</span>")
            return False
        self.saved_name = installed.name
        self.saved_label.setText(
            f"Saved as <b>{installed.name}</b> ({installed.path}). Choose it in the window's Weights list, or use "
            f"<tt>focusstudio fuse … --method {config.method} --weights \"{installed.name}\"</tt>.")
        self.save_button.setEnabled(False)
        wizard.weightsInstalled.emit(config.method, installed.name)
        return True


# =========================================================================================== Wizard
class TrainingWizard(QWizard):
    """Tools → Train a model…: the five pages and the state they share."""

    #: (method, weights name) weights were saved and registered.
    weightsInstalled = Signal(str, str)

    def __init__(self, parent: QWidget | None = None, default_device: str = "auto",
                 runs_root: str | Path | None = None, method: str | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("trainingWizard")
        self.setWindowTitle("Train a model")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.setOption(QWizard.WizardOption.HaveFinishButtonOnEarlyPages, False)
        self.default_device = default_device
        self.runs_root = Path(runs_root) if runs_root is not None else default_runs_root()
        self.choices = WizardChoices()
        self._closing = False
        #: Asks whether to stop a running training when the wizard closes (replaceable in tests).
        self.confirm_stop: Callable[[], bool] = self._ask_stop
        self.method_page = MethodPage(trainable_methods())
        self.data_page = DataPage()
        self.settings_page = SettingsPage()
        self.train_page = TrainPage()
        self.result_page = ResultPage()
        for page_id, page in enumerate((self.method_page, self.data_page, self.settings_page, self.train_page,
                                        self.result_page)):
            self.setPage(page_id, page)
        self.setStartId(PAGE_METHOD)
        self.train_page.runFinished.connect(lambda _result: self._close_if_stopping())
        if method is not None:
            self.method_page.select_method(method)
        self.resize(1100, 760)

    # ------------------------------------------------------------------ closing
    def _ask_stop(self) -> bool:
        answer = QMessageBox.question(
            self, "Stop training?",
            "Training is running. Stop it now? A checkpoint is written first, and the run can be resumed "
            "from the first page of this wizard.")
        return answer == QMessageBox.StandardButton.Yes

    def busy(self) -> bool:
        runners = (self.data_page.inspect_runner, self.data_page.preview_runner, self.settings_page.estimate_runner,
                   self.train_page.runner, self.result_page.runner)
        return any(runner.busy for runner in runners)

    def reject(self) -> None:
        if self.train_page.running:
            if self._closing or not self.confirm_stop():
                return
            self._closing = True
            self.train_page.stop_for_close()
            self.setEnabled(False)
            return  # closes when the trainer has written its checkpoint (runFinished)
        self._stop_background()
        super().reject()

    def accept(self) -> None:
        self._stop_background()
        super().accept()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.train_page.running:
            event.ignore()
            self.reject()
            return
        self._stop_background()
        super().closeEvent(event)

    def _close_if_stopping(self) -> None:
        if self._closing:
            self._closing = False
            self.setEnabled(True)
            self._stop_background()
            super().reject()

    def _stop_background(self) -> None:
        self.data_page.stop()
        self.settings_page.stop()
        self.result_page.runner.cancel()

    def shutdown(self, timeout_ms: int = 10_000) -> None:
        """Stop everything and wait (the application is quitting): training checkpoints first."""
        self.train_page.cancel()
        self._stop_background()
        for runner in (self.data_page.inspect_runner, self.data_page.preview_runner,
                       self.settings_page.estimate_runner, self.result_page.runner):
            runner.shutdown(timeout_ms)
        # The trainer finishes its step and writes the checkpoint before the pool drains.
        from PySide6.QtCore import QThreadPool

        QThreadPool.globalInstance().waitForDone(timeout_ms)


def open_training_wizard(parent: QWidget | None, default_device: str, on_installed: Callable[[str, str], None],
                         existing: TrainingWizard | None = None) -> TrainingWizard:
    """Show the wizard (the existing one if it is still open or training), non-modal."""
    if existing is not None and (existing.isVisible() or existing.busy()):
        existing.show()
        existing.raise_()
        existing.activateWindow()
        return existing
    wizard = TrainingWizard(parent, default_device=default_device)
    wizard.weightsInstalled.connect(on_installed)
    wizard.show()
    return wizard


__all__ = ["TrainingWizard", "WizardChoices", "format_duration", "open_training_wizard"]

