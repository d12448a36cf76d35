"""The training wizard's Train page: the running training with its loss and validation plots, pause, cancel."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWizardPage

from focusstudio.core.device import resolve_device
from focusstudio.core.errors import FocusStudioError
from focusstudio.core.progress import CancelToken, ProgressEvent
from focusstudio.core.training.trainer import PauseToken, TrainConfig, TrainEvent, TrainResult
from focusstudio.gui.training_jobs import TrainProgress, train_job
from focusstudio.gui.wizard.common import (
    PLOT_REFRESH_MS,
    TRAINED_FILE,
    format_duration,
    note_label,
    wizard_of,
)
from focusstudio.gui.workers import JobRunner

#: Metrics worth plotting when a recipe's primary metric is its loss (already in the loss plot).
INFORMATIVE_METRICS = ("accuracy", "dm_accuracy", "dice", "ssim", "psnr", "psnr_hard", "qabf")


def plotted_metric(primary: str, values: dict[str, float]) -> str:
    """The validation metric of the right-hand plot."""
    if primary != "loss":
        return primary
    return next((key for key in INFORMATIVE_METRICS if key in values), primary)


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

        self.status_label = note_label("", "trainStatus")
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
        choices = wizard_of(self).choices
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
        choices = wizard_of(self).choices
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
        wizard_of(self).choices.result = result
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
