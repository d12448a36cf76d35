"""The Batch dialog (Fusion → Batch…): fuse many stacks with the same core function as
``focusstudio batch``.

Choose ROOT (a folder of stack folders, a CSV/JSON manifest, or a name pattern such as
``scans/pos{P}_z{Z}.tif``), the output folder and template, the method and its settings, and
alignment; Scan lists the stacks in the queue, Start runs :func:`focusstudio.core.batch.run_batch`
in a :class:`~focusstudio.gui.workers.JobRunner`, each row showing its stack's status (queued,
running, done, skipped, failed with its reason). Cancel stops at the next check (finished stacks
stay; a re-run skips them); Open Result opens the selected stack's image.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from focusstudio.core.batch import (
    DEFAULT_TEMPLATE,
    BatchReport,
    BatchSettings,
    StackDone,
    StackSpec,
    StackStarted,
    discover_stacks,
    run_batch,
)
from focusstudio.core.errors import FocusStudioError
from focusstudio.core.progress import CancelToken, ProgressEvent
from focusstudio.gui.param_form import ParamForm
from focusstudio.gui.workers import JobRunner

__all__ = ["COLUMNS", "BatchDialog", "open_batch_dialog"]

COLUMNS = ("Stack", "Status", "Time", "Output / reason")
_ALIGN_CHOICES = (("Automatic (3 or more frames)", None), ("Align every stack", True), ("Do not align", False))


def _open_with_system(path: Path) -> None:
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


class BatchDialog(QDialog):
    """Non-modal: the window stays usable while a batch runs."""

    def __init__(self, parent: QWidget | None = None, default_device: str = "auto",
                 open_result: Callable[[Path], None] = _open_with_system) -> None:
        super().__init__(parent)
        self.setWindowTitle("Batch fusion")
        self.resize(820, 620)
        self._device = default_device
        self._open_result = open_result
        self._specs: list[StackSpec] = []
        self._outputs: dict[int, str] = {}
        self.report: BatchReport | None = None
        self.runner = JobRunner("batch", self)
        self.runner.progressed.connect(self._on_progress)
        self.runner.succeeded.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)
        self.runner.busyChanged.connect(self._on_busy)
        self._build()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        from focusstudio.core.methods.registry import get_method, list_methods

        form = QFormLayout()
        self.root_edit = QLineEdit()
        self.root_edit.setPlaceholderText("folder of stack folders, manifest .csv/.json, or scans/pos{P}_z{Z}.tif")
        root_row = QHBoxLayout()
        root_row.addWidget(self.root_edit)
        folder_button = QPushButton("Folder…")
        folder_button.clicked.connect(self._choose_root_folder)
        manifest_button = QPushButton("Manifest…")
        manifest_button.clicked.connect(self._choose_manifest)
        root_row.addWidget(folder_button)
        root_row.addWidget(manifest_button)
        form.addRow("Stacks (ROOT)", root_row)
        self.output_edit = QLineEdit()
        output_row = QHBoxLayout()
        output_row.addWidget(self.output_edit)
        output_button = QPushButton("Folder…")
        output_button.clicked.connect(self._choose_output)
        output_row.addWidget(output_button)
        form.addRow("Output folder", output_row)
        self.template_edit = QLineEdit(DEFAULT_TEMPLATE)
        self.template_edit.setToolTip("Output file name: {stack}, {method}, {index}; .tif, .png or .jpg")
        form.addRow("Output names", self.template_edit)
        self.method_combo = QComboBox()
        for name in list_methods():
            method = get_method(name)
            available, _reason = method.availability()
            if available:
                self.method_combo.addItem(method.title, name)
        self.method_combo.currentIndexChanged.connect(self._on_method_changed)
        form.addRow("Method", self.method_combo)
        self.align_combo = QComboBox()
        for label, value in _ALIGN_CHOICES:
            self.align_combo.addItem(label, value)
        form.addRow("Alignment", self.align_combo)
        self.alignment_edit = QLineEdit()
        self.alignment_edit.setPlaceholderText("optional: a saved registration (alignment.json) for every stack")
        form.addRow("Saved alignment", self.alignment_edit)
        self.workers_spin = QSpinBox()
        self.workers_spin.setRange(1, max(os.cpu_count() or 1, 1))
        self.workers_spin.setToolTip("Stacks fused at once, each in its own process (memory budget split)")
        form.addRow("Workers", self.workers_spin)
        self.force_check = QCheckBox("Replace existing results")
        form.addRow("", self.force_check)
        self.param_form = ParamForm(show_reset=True)
        self._on_method_changed()

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.itemDoubleClicked.connect(lambda _item: self.open_selected())
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status_label = QLabel("Choose the stacks and an output folder, then Scan or Start.")
        self.status_label.setWordWrap(True)

        buttons = QHBoxLayout()
        self.scan_button = QPushButton("Scan")
        self.scan_button.clicked.connect(self.scan)
        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.runner.cancel)
        self.open_button = QPushButton("Open Result")
        self.open_button.clicked.connect(self.open_selected)
        close_button = QPushButton("Close")
        close_button.clicked.connect(self.close)
        for button in (self.scan_button, self.start_button, self.cancel_button, self.open_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(close_button)

        top = QHBoxLayout()
        top.addLayout(form, 3)
        top.addWidget(self.param_form, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.status_label)
        layout.addLayout(buttons)
        self._update_buttons()

    def _on_method_changed(self) -> None:
        from focusstudio.core.methods.registry import get_method

        name = self.method_combo.currentData()
        if name is not None:
            self.param_form.set_params(get_method(name).params)

    def _choose_root_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of stack folders", self.root_edit.text())
        if folder:
            self.root_edit.setText(folder)

    def _choose_manifest(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Batch manifest", self.root_edit.text(),
                                              "Manifests (*.csv *.json)")
        if path:
            self.root_edit.setText(path)

    def _choose_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", self.output_edit.text())
        if folder:
            self.output_edit.setText(folder)

    # ------------------------------------------------------------------ queue
    def scan(self) -> bool:
        """List ROOT's stacks in the queue; False (and the reason shown) when ROOT names none."""
        try:
            self._specs = discover_stacks(self.root_edit.text().strip())
        except FocusStudioError as error:
            self._specs = []
            self.table.setRowCount(0)
            self.status_label.setText(str(error))
            return False
        self._outputs.clear()
        self.table.setRowCount(len(self._specs))
        for row, spec in enumerate(self._specs):
            self._set_row(row, spec.name, "waiting", "", "")
        self.status_label.setText(f"{len(self._specs)} stacks")
        self._update_buttons()
        return True

    def _set_row(self, row: int, *cells: str | None) -> None:
        for column, text in enumerate(cells):
            if text is None:
                continue
            item = self.table.item(row, column)
            if item is None:
                item = QTableWidgetItem()
                self.table.setItem(row, column, item)
            item.setText(text)
            if column == 3:
                item.setToolTip(text)

    def row_status(self, row: int) -> str:
        item = self.table.item(row, 1)
        return item.text() if item is not None else ""

    def settings(self) -> BatchSettings:
        """The batch's settings from the form (FocusStudioError for a missing output folder)."""
        output = self.output_edit.text().strip()
        if not output:
            raise FocusStudioError("choose an output folder")
        alignment = self.alignment_edit.text().strip()
        return BatchSettings(
            output_dir=Path(output),
            method=str(self.method_combo.currentData()),
            params=self.param_form.values(),
            align=self.align_combo.currentData(),
            alignment_file=Path(alignment) if alignment else None,
            template=self.template_edit.text().strip() or DEFAULT_TEMPLATE,
            device=self._device,
            force=self.force_check.isChecked(),
        )

    def start(self) -> None:
        if self.runner.busy or not self.scan():
            return
        try:
            settings = self.settings()
        except FocusStudioError as error:
            self.status_label.setText(str(error))
            return
        specs, workers, root = list(self._specs), self.workers_spin.value(), self.root_edit.text().strip()
        self.report = None
        self.progress.setValue(0)

        def job(token: CancelToken) -> Any:
            return run_batch(specs, settings, workers=workers, cancel=token, root=root)

        self.runner.start(job)

    def open_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows and rows[0].row() in self._outputs:
            self._open_result(Path(self._outputs[rows[0].row()]))

    # ------------------------------------------------------------------ runner callbacks
    def _on_progress(self, event: ProgressEvent) -> None:
        self.progress.setValue(round(event.fraction * 1000))
        if isinstance(event, StackStarted):
            self._set_row(event.position, None, "queued" if event.message.endswith("queued") else "running")
        elif isinstance(event, StackDone) and event.outcome is not None:
            outcome = event.outcome
            detail = outcome.reason if outcome.status == "failed" else (outcome.output or "")
            self._set_row(event.position, None, outcome.status, f"{outcome.seconds:.1f} s", detail)
            if outcome.status in ("done", "skipped") and outcome.output:
                self._outputs[event.position] = outcome.output
            self._update_buttons()
        else:
            self.status_label.setText(event.message)

    def _on_finished(self, _job: int, report: object) -> None:
        if isinstance(report, BatchReport):
            self.report = report
            self.status_label.setText(report.summary())
        self.progress.setValue(1000)

    def _on_failed(self, _job: int, message: str) -> None:
        self.status_label.setText(message)

    def _on_cancelled(self, _job: int) -> None:
        for row in range(self.table.rowCount()):
            if self.row_status(row) in ("running", "queued", "waiting"):
                self._set_row(row, None, "cancelled")
        self.status_label.setText("Cancelled: finished stacks are kept, and Start again skips them.")

    def _on_busy(self, busy: bool) -> None:
        self._update_buttons()

    def _update_buttons(self) -> None:
        busy = self.runner.busy
        self.start_button.setEnabled(not busy)
        self.scan_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        self.open_button.setEnabled(bool(rows) and rows[0].row() in self._outputs)

    def closeEvent(self, event: Any) -> None:
        if self.runner.busy:
            self.runner.shutdown()
        super().closeEvent(event)


def open_batch_dialog(parent: QWidget | None, default_device: str = "auto",
                      existing: BatchDialog | None = None) -> BatchDialog:
    """Show the Batch dialog (the existing one when it is open or running), non-modal."""
    if existing is not None and (existing.isVisible() or existing.runner.busy):
        existing.show()
        existing.raise_()
        return existing
    dialog = BatchDialog(parent, default_device)
    dialog.show()
    return dialog
