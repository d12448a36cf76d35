"""The training wizard's first page: which method, from which weights, or an interrupted run to resume."""

from __future__ import annotations

import datetime as _dt
import html
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWizard,
    QWizardPage,
)

from focusstudio.core.errors import FocusStudioError
from focusstudio.core.training.catalog import TrainableMethod
from focusstudio.core.training.trainer import list_runs
from focusstudio.core.weights import list_installed_weights
from focusstudio.gui.wizard.common import PAGE_DATA, PAGE_TRAIN, note_label, wizard_of

STATUS_WORDS = {"cancelled": "cancelled", "paused": "paused", "running": "interrupted", "completed": "completed"}


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
        self.details = note_label(object_name="methodDetails")
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
        self.weights_note = note_label()
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
        self.runs_note = note_label()
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
            runs = [run for run in list_runs(wizard_of(self).runs_root) if run["status"] != "completed"]
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
        choices = wizard_of(self).choices
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
