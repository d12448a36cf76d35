"""Garbage cycles are freed on the GUI thread only, however much a background job allocates."""

from __future__ import annotations

import gc
import threading
from collections.abc import Generator
from typing import Any

from focusstudio.core.progress import CancelToken, ProgressEvent
from focusstudio.gui.gc_policy import collecting_on_main_thread
from focusstudio.gui.workers import JobRunner

#: Enough container allocations to cross the youngest generation's threshold many times over.
ALLOCATIONS = 50 * gc.get_threshold()[0]


class _Cycle:
    """A self-referencing object that records the thread its finaliser ran in."""

    def __init__(self, record: list[str]) -> None:
        self.me = self
        self.record = record

    def __del__(self) -> None:
        self.record.append(threading.current_thread().name)


def _allocating_job(_token: CancelToken) -> Generator[ProgressEvent, None, Any]:
    kept: list[list[int]] = []
    for index in range(ALLOCATIONS):
        kept.append([index])  # tracked containers: each one counts towards a collection
        if index % 4096 == 0:
            kept.clear()
    return len(kept)
    yield  # a generator, as every job is


def test_cycles_made_on_the_gui_thread_are_freed_there_while_a_job_allocates(qtbot: Any) -> None:
    runner = JobRunner("allocating")
    assert collecting_on_main_thread() and not gc.isenabled()
    finalised_in: list[str] = []
    for _ in range(20):
        _Cycle(finalised_in)  # garbage at once, freed only by a collection
    done: list[object] = []
    runner.succeeded.connect(lambda _job, value: done.append(value))
    runner.start(_allocating_job)
    qtbot.waitUntil(lambda: bool(done), timeout=60_000)
    assert finalised_in == [] or set(finalised_in) == {threading.main_thread().name}
    # Once the main thread has allocated past the threshold, its timer frees them at its next check.
    ballast = [[index] for index in range(2 * gc.get_threshold()[0])]
    qtbot.waitUntil(lambda: len(finalised_in) == 20, timeout=10_000)
    assert set(finalised_in) == {threading.main_thread().name} and len(ballast) > 0

