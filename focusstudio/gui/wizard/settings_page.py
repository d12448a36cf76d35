"""The training wizard's Settings page: run length, batch, crop, learning rate, device, seed, checkpoints
(fields generated from the TrainSpec) and a measured time per step."""

from __future__ import annotations

import datetime as _dt
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QPushButton, QScrollArea, QVBoxLayout, QWizard, QWizardPage

from focusstudio.core.errors import FocusStudioError
from focusstudio.core.progress import ProgressEvent
from focusstudio.core.training.assessment import StepTimeEstimate, measure_step_time
from focusstudio.core.training.catalog import build_train_config, steps_for, training_params
from focusstudio.core.training.trainer import TrainConfig
from focusstudio.gui.param_form import ParamForm
from focusstudio.gui.wizard.common import (
    ESTIMATE_DEBOUNCE_MS,
    TRAINED_FILE,
    describe_setting,
    format_duration,
    note_label,
    top_aligned,
    wizard_of,
)
from focusstudio.gui.workers import JobRunner

#: Settings whose change makes the measured time per step stale.
TIMING_KEYS = ("batch_size", "crop", "resize", "device", "val_samples")


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
        self.steps_label = note_label("", "stepsLabel")
        self.error_label = note_label("", "settingsError")
        self.error_label.setStyleSheet("color: #c0392b;")
        self.estimate_label = note_label("", "estimateLabel")
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
        self.run_label = note_label("", "runFolder")

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(top_aligned(self.form))
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
        choices = wizard_of(self).choices
        key = (choices.method, choices.finetune_from is not None)
        if key != self._form_key:
            self._form_key = key
            self.form.set_params(training_params(choices.method, finetune=choices.finetune_from is not None))
            device = wizard_of(self).default_device
            if device in self.form.params.get("device").choices:
                self.form.set_values({"device": device})
        self._estimate = None
        self._timing_values = {}
        self._on_values(self.form.values())
        self.run_label.setText(f"Checkpoints and the trained weights go to a new folder in {wizard_of(self).runs_root}")

    def train_items(self) -> int:
        report = wizard_of(self).choices.report
        return report.train_items if report is not None else 1

    def build_config(self, run_dir: Path | None = None) -> TrainConfig:
        choices = wizard_of(self).choices
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
            report = wizard_of(self).choices.report
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
        wizard = wizard_of(self)
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
