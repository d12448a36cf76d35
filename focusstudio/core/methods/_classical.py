"""Helpers shared by the classical methods: checked frame loading and per-frame progress while
composing."""

from __future__ import annotations

from collections.abc import Callable, Generator

import numpy as np

from focusstudio.core.errors import InputError
from focusstudio.core.methods.base import RunContext
from focusstudio.core.ops.compose import iter_compose_index, iter_compose_weights
from focusstudio.core.ops.pyramid import SelectionBlend
from focusstudio.core.progress import ProgressGen
from focusstudio.core.types import Stack

__all__ = [
    "compose_pyramid_steps", "compose_selected_steps", "compose_weighted_steps", "load_checked", "selected_labels",
]


def load_checked(stack: Stack, index: int, grey: bool = False) -> np.ndarray:
    """Frame ``index`` as float32, with a clear error when its size differs from the stack's."""
    frame = stack.load(index, grey=grey)
    if frame.shape[:2] != stack.shape:
        info = stack.frames[index]
        raise InputError(
            f"frame size {frame.shape[1]}×{frame.shape[0]} differs from the stack's "
            f"{stack.shape[1]}×{stack.shape[0]}",
            info.path or info.name,
        )
    return frame


def compose_selected_steps(
    stack: Stack, index: np.ndarray, context: RunContext, start: float, end: float, stage: str = "compose"
) -> ProgressGen[np.ndarray]:
    """:func:`compose_index` (hard selection) with a progress event per frame over [start, end]."""
    return (yield from _per_frame_progress(iter_compose_index(stack, index, context.cancel), len(stack), context,
                                           start, end, stage))


def compose_pyramid_steps(
    stack: Stack, index: np.ndarray, context: RunContext, start: float, end: float, stage: str = "compose"
) -> ProgressGen[np.ndarray]:
    """Multi-scale composition of the frames an index map selects (:class:`SelectionBlend`:
    :class:`~focusstudio.core.ops.pyramid.PyramidBlend` with one-hot weights, in row bands; frames
    no pixel selects are skipped), a progress event per frame. Memory: the result and a third of
    it, plus one decoded frame at a time."""
    blend = SelectionBlend(index)
    present = selected_labels(index, len(stack))
    for position, frame in enumerate(present):
        context.cancel.raise_if_cancelled()
        blend.add(load_checked(stack, frame), frame)
        fraction = start + (end - start) * (position + 1) / len(present)
        yield context.progress.event(stage, fraction, f"pyramid blend, frame {frame + 1}")
    fused = blend.result()
    np.clip(fused, 0.0, 1.0, out=fused)
    return fused


def selected_labels(index: np.ndarray, count: int) -> list[int]:
    """The labels 0 … count−1 that some pixel of ``index`` holds, in order (a bincount: np.unique
    sorts the whole map, ~1 s at 24 MP)."""
    counts = np.zeros(count, dtype=np.int64)
    rows = max(2**20 // max(index.shape[1], 1), 1)  # bands: bincount casts to int64
    for start in range(0, index.shape[0], rows):
        counts += np.bincount(index[start:start + rows].ravel(), minlength=count)[:count]
    return [int(label) for label in np.flatnonzero(counts)]


def compose_weighted_steps(
    stack: Stack,
    weight_of: Callable[[int], np.ndarray],
    context: RunContext,
    start: float,
    end: float,
    stage: str = "compose",
) -> ProgressGen[np.ndarray]:
    """:func:`compose_weights` (renormalised) with a progress event per frame over [start, end];
    ``weight_of(i)`` is called once per frame, in order."""
    steps = iter_compose_weights(stack, weight_of, normalize=True, cancel=context.cancel)
    return (yield from _per_frame_progress(steps, len(stack), context, start, end, stage))


def _per_frame_progress(
    steps: Generator[int, None, np.ndarray], count: int, context: RunContext, start: float, end: float, stage: str
) -> ProgressGen[np.ndarray]:
    """Turn a composer's "frame i done" yields into progress events over [start, end]."""
    while True:
        try:
            i = next(steps)
        except StopIteration as stop:
            return stop.value
        yield context.progress.event(stage, start + (end - start) * (i + 1) / count, f"frame {i + 1}/{count}")
