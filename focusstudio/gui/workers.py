"""Background jobs: one core generator at a time per runner, in Qt's thread pool.

A :class:`JobRunner` wraps a generator of :class:`~focusstudio.core.progress.ProgressEvent` (the
core's convention for long work) in superqt's ``GeneratorWorker``. Starting a job cancels the
previous one (its :class:`CancelToken` is set, so it stops at its next check) and everything the
stale job still emits is ignored. Workers only compute: they hand back frozen dataclasses and
never touch a widget; the runner's signals are delivered on the main thread.
"""

from __future__ import annotations

import itertools
import logging
import time
import traceback
from collections.abc import Callable, Generator
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QThreadPool, Signal, Slot
from superqt.utils import GeneratorWorker

from focusstudio.core.errors import FocusStudioError
from focusstudio.core.progress import Cancelled, CancelToken, ProgressEvent, scoped
from focusstudio.gui.gc_policy import collect_on_main_thread

log = logging.getLogger(__name__)

JobFactory = Callable[[CancelToken], Generator[ProgressEvent, None, Any]]

#: Enough pool threads for a fusion, a metrics job, a file job and one cancelled job still
#: winding down; Qt's default is the core count, which is 2 on small machines.
MIN_POOL_THREADS = 4


def ensure_pool_capacity() -> None:
    pool = QThreadPool.globalInstance()
    if pool.maxThreadCount() < MIN_POOL_THREADS:
        pool.setMaxThreadCount(MIN_POOL_THREADS)


class JobError(Exception):
    """Carries an exception out of a worker.

    superqt treats a ``RuntimeError`` leaving a worker as "the worker was deleted" and drops it
    without emitting ``errored`` or ``finished``; wrapping every failure keeps errors visible.
    """

    def __init__(self, error: BaseException, details: str) -> None:
        super().__init__(str(error))
        self.error = error
        self.details = details


def _guarded(factory: JobFactory, token: CancelToken) -> Generator[ProgressEvent, None, Any]:
    try:
        # The token in scope: core code below functions that take no token can still stop early.
        return (yield from scoped(factory(token), token))
    except Cancelled:
        raise
    except Exception as error:  # every failure must reach the main thread as a message
        raise JobError(error, traceback.format_exc()) from error


def describe_error(error: BaseException) -> str:
    """One line for the user: the core's own message for input errors, else type and text."""
    if isinstance(error, JobError):
        error = error.error
    if isinstance(error, FocusStudioError):
        return str(error)
    if isinstance(error, MemoryError):
        return "out of memory; try a smaller stack or the CPU with a memory limit"
    return f"{type(error).__name__}: {error}"


class _Relay(QObject):
    """Receives one worker's signals on the main thread (a QObject slot, so the connection is
    queued to the thread this object lives in) and forwards them tagged with the job id."""

    def __init__(self, runner: JobRunner, job_id: int) -> None:
        super().__init__()
        self._runner = runner
        self._job_id = job_id

    @Slot(object)
    def yielded(self, event: object) -> None:
        if not shiboken6.isValid(self._runner):
            return  # queued before its window was deleted (a job ending as the window closes)
        self._runner._on_yielded(self._job_id, event)

    @Slot(object)
    def returned(self, value: object) -> None:
        if not shiboken6.isValid(self._runner):
            return  # queued before its window was deleted (a job ending as the window closes)
        self._runner._on_returned(self._job_id, value)

    @Slot(object)
    def errored(self, error: object) -> None:
        if not shiboken6.isValid(self._runner):
            return  # queued before its window was deleted (a job ending as the window closes)
        self._runner._on_errored(self._job_id, error)

    @Slot()
    def finished(self) -> None:
        self._runner._live.pop(self._job_id, None)


class JobRunner(QObject):
    """Runs at most one job; a new job supersedes (cancels) the running one."""

    #: (job id) a job was started.
    started = Signal(int)
    #: (ProgressEvent) progress of the current job.
    progressed = Signal(object)
    #: (job id, value) the current job's return value.
    succeeded = Signal(int, object)
    #: (job id, message) the current job failed.
    failed = Signal(int, str)
    #: (job id) the current job was cancelled by :meth:`cancel`.
    cancelled = Signal(int)
    #: True while a job is current.
    busyChanged = Signal(bool)

    _ids = itertools.count(1)

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        ensure_pool_capacity()
        # Before any worker exists: a collection inside a worker can deadlock with the GUI thread.
        collect_on_main_thread()
        self._current_id: int | None = None
        self._current_token: CancelToken | None = None
        self._current_worker: GeneratorWorker | None = None
        self._started_at = 0.0
        # Workers still running (the current one and superseded ones winding down); kept here so
        # they are not garbage-collected while the pool runs them.
        self._live: dict[int, tuple[GeneratorWorker, _Relay]] = {}

    # ------------------------------------------------------------------ state
    @property
    def busy(self) -> bool:
        return self._current_id is not None

    @property
    def current_job(self) -> int | None:
        return self._current_id

    @property
    def live_workers(self) -> int:
        """Workers not yet finished, including cancelled ones that have not reached a check."""
        return len(self._live)

    def elapsed(self) -> float:
        return time.perf_counter() - self._started_at if self.busy else 0.0

    # ------------------------------------------------------------------ control
    def start(self, factory: JobFactory) -> int:
        """Run ``factory(token)`` (a progress generator) in the pool; returns the job id."""
        was_busy = self.busy
        self._stop_current()
        job_id = next(self._ids)
        token = CancelToken()
        worker = GeneratorWorker(_guarded, factory, token)
        relay = _Relay(self, job_id)
        worker.yielded.connect(relay.yielded)
        worker.returned.connect(relay.returned)
        worker.errored.connect(relay.errored)
        worker.finished.connect(relay.finished)
        self._live[job_id] = (worker, relay)
        self._current_id, self._current_token, self._current_worker = job_id, token, worker
        self._started_at = time.perf_counter()
        worker.start()
        self.started.emit(job_id)
        if not was_busy:
            self.busyChanged.emit(True)
        return job_id

    def cancel(self) -> None:
        """Cancel the current job at once: the UI is told now, the worker stops at its next check."""
        job_id = self._current_id
        if job_id is None:
            return
        self._stop_current()
        self.cancelled.emit(job_id)
        self.busyChanged.emit(False)

    def stop_all(self) -> None:
        """Cancel the current job and ask every live worker to stop, without waiting."""
        if self._current_id is not None:
            self._stop_current()
            self.busyChanged.emit(False)
        for worker, _relay in list(self._live.values()):
            worker.quit()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel everything and wait for the pool (used when the window closes)."""
        if self._current_id is not None:
            self._stop_current()
            self.busyChanged.emit(False)
        for worker, _relay in list(self._live.values()):
            worker.quit()
        done = QThreadPool.globalInstance().waitForDone(timeout_ms)
        if not done:
            log.warning("%s: background work did not stop within %d ms", self.objectName(), timeout_ms)
        return bool(done)

    def _stop_current(self) -> None:
        if self._current_token is not None:
            self._current_token.cancel()
        if self._current_worker is not None:
            # Also stop between yields, for generators that yield without checking the token.
            self._current_worker.quit()
        self._current_id = self._current_token = self._current_worker = None

    # ------------------------------------------------------------------ worker callbacks
    def _on_yielded(self, job_id: int, event: object) -> None:
        if job_id == self._current_id and isinstance(event, ProgressEvent):
            self.progressed.emit(event)

    def _finish(self, job_id: int) -> bool:
        if job_id != self._current_id:
            return False  # a superseded or cancelled job: its outcome no longer matters
        self._current_id = self._current_token = self._current_worker = None
        self.busyChanged.emit(False)
        return True

    def _on_returned(self, job_id: int, value: object) -> None:
        if self._finish(job_id):
            self.succeeded.emit(job_id, value)

    def _on_errored(self, job_id: int, error: object) -> None:
        if isinstance(error, Cancelled):
            if self._finish(job_id):
                self.cancelled.emit(job_id)
            return
        if isinstance(error, JobError):
            log.error("%s job %d failed:\n%s", self.objectName(), job_id, error.details)
        if self._finish(job_id):
            exception = error if isinstance(error, BaseException) else RuntimeError(str(error))
            self.failed.emit(job_id, describe_error(exception))
