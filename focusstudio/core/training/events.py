"""What a training run reports: its progress events, how it ended, its pause switch and its error."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from focusstudio.core.errors import FocusStudioError


class TrainingError(FocusStudioError):
    """Training cannot continue (diverged loss, unusable checkpoint...)."""


class PauseToken:
    """Thread-safe pause switch, checked by the trainer between steps."""

    def __init__(self) -> None:
        self._paused = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()
        self._running.set()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def wait_until_resumed(self, timeout_s: float) -> bool:
        return self._running.wait(timeout_s)


@dataclass(frozen=True)
class TrainEvent:
    """One progress report of a training run.

    ``phase``: prepare, train, validate, checkpoint, export, paused, resumed, done, cancelled.
    ``step`` counts completed optimisation steps; ``losses`` are those of the latest step; ``val``
    is set on validate events (and carried on the following ones until the next validation).
    """

    phase: str
    step: int
    total_steps: int
    losses: dict[str, float]
    lr: float
    val: dict[str, float] | None
    eta_s: float | None
    seconds_per_step: float | None
    message: str = ""
    path: str | None = None

    @property
    def fraction(self) -> float:
        return self.step / self.total_steps if self.total_steps else 0.0


@dataclass(frozen=True)
class TrainResult:
    """How a run ended: ``completed`` or ``cancelled``, with the files it left."""

    status: str
    step: int
    total_steps: int
    checkpoint: Path | None
    weights: Path | None
    manifest_entry: dict[str, Any] | None
    best_metric: float | None
    validation: dict[str, float] | None
