"""The training wizard itself: its five pages, the state they share, and closing it safely while training runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QMessageBox, QWidget, QWizard

from focusstudio.core.training.catalog import trainable_methods
from focusstudio.core.training.trainer import default_runs_root
from focusstudio.gui.wizard.common import PAGE_METHOD, WizardChoices
from focusstudio.gui.wizard.data_page import DataPage
from focusstudio.gui.wizard.method_page import MethodPage
from focusstudio.gui.wizard.result_page import ResultPage
from focusstudio.gui.wizard.settings_page import SettingsPage
from focusstudio.gui.wizard.train_page import TrainPage


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
