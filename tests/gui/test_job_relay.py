"""A job's queued signals that arrive after its runner (and window) were deleted are dropped."""

from __future__ import annotations

import threading
from collections.abc import Generator

import shiboken6
from PySide6.QtCore import QObject, QThreadPool
from pytestqt.qtbot import QtBot

from focusstudio.core.progress import CancelToken, ProgressEvent
from focusstudio.gui.workers import JobRunner


def test_signals_of_a_job_whose_runner_was_deleted_are_dropped(qtbot: QtBot) -> None:
    owner = QObject()  # stands for a window closed while its job reports
    runner = JobRunner("orphaned", owner)
    done = threading.Event()

    def job(cancel: CancelToken) -> Generator[ProgressEvent, None, int]:
        for step in range(5):
            yield ProgressEvent("work", step / 5, "")
        done.set()
        return 1

    runner.start(job)
    assert done.wait(10) and QThreadPool.globalInstance().waitForDone(5000)
    shiboken6.delete(owner)  # the window goes before its job's queued events are delivered
    assert not shiboken6.isValid(runner)
    errors: list[BaseException] = []
    with qtbot.captureExceptions() as caught:
        qtbot.wait(100)  # the queued yields and return reach the relay now
    errors.extend(error for _type, error, _tb in caught)
    assert not errors
