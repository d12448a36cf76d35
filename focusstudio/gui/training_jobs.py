"""Background work of the training wizard, as Qt-free generators (like :mod:`focusstudio.gui.jobs`).

A :class:`~focusstudio.gui.workers.JobRunner` forwards :class:`ProgressEvent` objects only, so
training events travel inside :class:`TrainProgress` (a ProgressEvent carrying the trainer's
:class:`TrainEvent`). Training has its own cancel token: cancelling it lets the trainer write a
checkpoint and return normally, which the runner's own (abrupt) cancel would not.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from focusstudio.core.progress import CancelToken, ProgressEvent
from focusstudio.core.training.inspection import PreviewSample
from focusstudio.core.training.trainer import PauseToken, TrainConfig, TrainEvent, TrainResult, resume, train
from focusstudio.gui.jobs import to_display

#: Columns of the preview grid, in order; a sample without a pair shows only its sharp photo.
PREVIEW_COLUMNS = ("a", "b", "mask", "sharp")
PREVIEW_TITLES = {"a": "Source A", "b": "Source B", "mask": "Mask (A sharp)", "sharp": "Sharp photo"}
GRID_GAP = 4


@dataclass(frozen=True)
class TrainProgress(ProgressEvent):
    """A training event wrapped for the job runner (``event`` is None only for the start event)."""

    event: TrainEvent | None = None


def train_job(
    config: TrainConfig | None,
    checkpoint: str | Path | None,
    overrides: dict[str, Any] | None,
    training_cancel: CancelToken,
    pause: PauseToken,
    job_token: CancelToken,
) -> Generator[ProgressEvent, None, TrainResult]:
    """Train ``config`` from the start, or resume ``checkpoint`` (with ``overrides``, e.g. more
    steps); returns the trainer's result.

    ``training_cancel`` is the wizard's Cancel: the trainer checkpoints and returns "cancelled".
    The runner's ``job_token`` (the window closing) is forwarded to it for the same clean stop.
    """
    if checkpoint is not None:
        generator = resume(checkpoint, cancel=training_cancel, pause=pause, overrides=overrides)
    else:
        assert config is not None
        generator = train(config.method, config, cancel=training_cancel, pause=pause)
    yield TrainProgress("preparing", 0.0, "loading the data")
    while True:
        if job_token.cancelled:
            training_cancel.cancel()
        try:
            event = next(generator)
        except StopIteration as stop:
            return stop.value
        yield TrainProgress(event.phase, event.fraction, event.message, event)


# ---------------------------------------------------------------------------------- images
def _tile(array: np.ndarray | None, side: int) -> np.ndarray:
    """uint8 RGB side×side tile of a float [0, 1] image (grey, colour or mask), letterboxed."""
    canvas = np.full((side, side, 3), 40, np.uint8)
    if array is None:
        return canvas
    import cv2

    image = to_display(np.asarray(array, dtype=np.float32))
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    height, width = image.shape[:2]
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # Nearest for enlarging (tiny crops stay crisp), area for shrinking.
    interpolation = cv2.INTER_NEAREST if scale >= 1 else cv2.INTER_AREA
    image = cv2.resize(image, size, interpolation=interpolation)
    top, left = (side - size[1]) // 2, (side - size[0]) // 2
    canvas[top : top + size[1], left : left + size[0]] = image
    return canvas


def preview_columns(samples: Sequence[PreviewSample]) -> list[str]:
    """The preview columns that at least one sample has."""
    return [key for key in PREVIEW_COLUMNS if any(getattr(s, key) is not None for s in samples)]


def preview_grid(samples: Sequence[PreviewSample], side: int = 128) -> np.ndarray:
    """One uint8 RGB image: a row per sample, a column per :func:`preview_columns` entry."""
    columns = preview_columns(samples)
    rows = []
    for sample in samples:
        tiles = [_tile(getattr(sample, key), side) for key in columns]
        gap = np.full((side, GRID_GAP, 3), 255, np.uint8)
        rows.append(np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=1))
    if not rows:
        return np.full((side, side, 3), 40, np.uint8)
    gap_row = np.full((GRID_GAP, rows[0].shape[1], 3), 255, np.uint8)
    return np.ascontiguousarray(np.concatenate([part for row in rows for part in (row, gap_row)][:-1], axis=0))


def image_strip(images: Sequence[np.ndarray | None], side: int = 200) -> np.ndarray:
    """uint8 RGB tiles side by side (None → an empty tile), for the before/after view."""
    tiles = [_tile(image, side) for image in images]
    gap = np.full((side, GRID_GAP, 3), 255, np.uint8)
    return np.ascontiguousarray(np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=1))
