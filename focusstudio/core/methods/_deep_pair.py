"""The pair decision of the pairwise deep methods (MFIF-GAN, two-stream) at an analysis scale
below 1, with each frame decoded once and kept as its integer levels (issue 20: a 24 MP pair).

The same numbers as :func:`~focusstudio.core.methods.strategies.run_serial_decisions` on two
frames, whose step loads both frames as float32 (2 × 288 MB at 24 MP) and composes them with
full-size temporaries: here each frame's levels are converted once to float32 to be shrunk for the
network (one frame at a time), once band by band to grey for the lift, and band by band in the
composition ``w·A + (1 − w)·B`` (the serial step's own formula and float32 arithmetic).
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import numpy as np

from focusstudio.core.methods.analysis_scale import AnalysisScale, lift_pair
from focusstudio.core.ops.levels import unit_band
from focusstudio.core.progress import ProgressEvent, ProgressRange
from focusstudio.core.runtime import release_free_memory
from focusstudio.core.types import LEVEL_BAND_ROWS, Stack, grey_from_levels, normalise_array

__all__ = ["compose_serial_pair", "levels_pair_chain"]

#: The network's soft map of a pair of float [0, 1] frames at the analysis resolution.
SmallPredictor = Callable[[np.ndarray, np.ndarray, ProgressRange], Generator[ProgressEvent, None, np.ndarray]]


def compose_serial_pair(
    first: np.ndarray, second: np.ndarray, weight: np.ndarray, band_rows: int = LEVEL_BAND_ROWS
) -> np.ndarray:
    """``(w·A + (1 − w)·B).astype(float32)`` of the serial step, band by band, for sources that
    are integer levels or float frames (:func:`~focusstudio.core.ops.levels.unit_band`)."""
    release_free_memory()  # the network's freed heap: not under the full-size result
    out = np.empty((*weight.shape[:2], *first.shape[2:]), dtype=np.float32)
    for start in range(0, weight.shape[0], band_rows):
        rows = slice(start, start + band_rows)
        a, b = unit_band(first, rows), unit_band(second, rows)
        w = weight[rows][..., None] if a.ndim == 3 else weight[rows]
        out[rows] = (w * a + (1.0 - w) * b).astype(np.float32)
    return out


def levels_pair_chain(
    stack: Stack,
    scale: AnalysisScale,
    predict_small: SmallPredictor,
    decide: Callable[[np.ndarray], np.ndarray],
    progress: ProgressRange,
    soft: np.ndarray | None = None,
) -> Generator[ProgressEvent, None, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None] | None]:
    """(soft map, weight, fused image, index or None) of a two-frame stack whose frames decode to
    integer levels, at an active analysis ``scale``; None when they do not (the caller runs the
    serial strategy). ``soft``: the cached full-resolution soft map (no network run)."""
    if len(stack) != 2 or not scale.active:
        return None
    levels = [stack.load_levels(0), stack.load_levels(1)]
    if levels[0] is None or levels[1] is None:
        return None
    if soft is None:
        # one float32 frame at a time, only to be shrunk for the network
        first_small = scale.shrink(normalise_array(levels[0]))
        second_small = scale.shrink(normalise_array(levels[1]))
        # the levels are not held through the network (its tiles fill the memory budget: 24 MP
        # pair, +144 MB at the peak); decoded once more for the lift and the composition
        del levels
        small = yield from predict_small(first_small, second_small, progress)
        del first_small, second_small
        levels = [stack.load_levels(0), stack.load_levels(1)]
        assert levels[0] is not None and levels[1] is not None
        soft = lift_pair(small, grey_from_levels(levels[0]), grey_from_levels(levels[1]))
    weight = decide(soft).astype(np.float32, copy=False)
    # as run_serial_decisions: a hard selection of frame 0 (w = 1) or frame 1 (w = 0)
    index = np.where(weight > 0.5, 0, 1).astype(np.int32) if np.all((weight == 0.0) | (weight == 1.0)) else None
    fused = compose_serial_pair(levels[0], levels[1], weight)
    yield progress.event("fuse", 1.0, "fused frame 2 of 2")
    return soft, weight, fused, index
