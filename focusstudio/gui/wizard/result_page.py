"""The training wizard's Result page: new versus starting weights on the validation set, a before/after
fusion, and saving the weights under a name."""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWizardPage,
)

from focusstudio.core.errors import FocusStudioError
from focusstudio.core.progress import CancelToken
from focusstudio.core.training.assessment import BeforeAfter, WeightsComparison, before_after_fusion, compare_weights
from focusstudio.core.training.manifest import read_manifest
from focusstudio.core.training.trainer import TrainConfig
from focusstudio.core.weights import install_user_weights, resolve_weights
from focusstudio.gui.training_jobs import image_strip
from focusstudio.gui.wizard.common import FolderField, note_label, to_pixmap, wizard_of
from focusstudio.gui.workers import JobRunner


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
        self.status_label = note_label("", "resultStatus")
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("weightsName")
        self.save_button = QPushButton("Save weights")
        self.save_button.setObjectName("saveWeightsButton")
        self.save_button.clicked.connect(lambda: self.save())
        self.saved_label = note_label("", "savedLabel")
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
        config = wizard_of(self).choices.run_config
        assert config is not None
        return config

    def _weights(self) -> Path:
        result = wizard_of(self).choices.result
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
        wizard = wizard_of(self)
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
