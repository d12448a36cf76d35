"""The training wizard's Data page: the folder, the synthesis recipe with a live preview, the checks and the split."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from focusstudio.core.training.catalog import synthesis_overrides, synthesis_params
from focusstudio.core.training.inspection import DataReport, inspect_training_data, preview_samples
from focusstudio.core.training.settings import TRAIN_SPEC
from focusstudio.gui.param_form import ParamForm
from focusstudio.gui.training_jobs import PREVIEW_TITLES, preview_columns, preview_grid
from focusstudio.gui.wizard.common import (
    INSPECT_DEBOUNCE_MS,
    PREVIEW_DEBOUNCE_MS,
    FolderField,
    describe_setting,
    note_label,
    to_pixmap,
    wizard_of,
)
from focusstudio.gui.workers import JobRunner

PREVIEW_COUNT = 4
PREVIEW_TILE = 120


def get_synthesis_mode(method: str) -> str:
    """How ``method`` composes its training pairs with the default settings ("none": auto-encoders)."""
    from focusstudio.core.training.recipe import get_recipe
    from focusstudio.core.training.trainer import make_config

    return get_recipe(method).synthesis(make_config(method, ".")).mode


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
        self.summary_label = note_label("", "dataSummary")
        self.problems_list = QListWidget()
        self.problems_list.setObjectName("dataProblems")
        self.problems_list.setMaximumHeight(96)
        # Its own spin box (not a ParamForm: it sits beside the split it changes), set up from the spec.
        share = TRAIN_SPEC["val_fraction"].param_spec()
        self.val_spin = QDoubleSpinBox()
        self.val_spin.setObjectName("valFraction")
        self.val_spin.setRange(float(share.minimum or 0.0), float(share.maximum or 1.0))
        self.val_spin.setSingleStep(share.step or 0.05)
        self.val_spin.setDecimals(2)
        self.val_spin.setValue(share.default)
        self.val_spin.setToolTip(share.help[:1].upper() + share.help[1:])
        self.split_label = QLabel()
        split_row = QHBoxLayout()
        split_row.addWidget(QLabel(share.label))
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
        method = wizard_of(self).choices.method
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
        choices = wizard_of(self).choices
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
