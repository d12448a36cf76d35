"""Analysis at a working resolution: the deep decision-map methods run their network on the frames
shrunk to an analysis scale and bring the decision back to full resolution along the edges of the
full-resolution frames; the method's post-processing and the composition then run at full
resolution on the original pixels (issue 20).

The one mechanism every such method uses:

1. :func:`analysis_scale_for` resolves the ``analysis_scale`` setting
   (:data:`focusstudio.core.ops.params.ANALYSIS_SCALE`) for a stack: a number is the scale, "auto"
   shrinks the long side to the method's ``analysis_long_side`` (the size at which its network
   sees images like its training data, chosen by ``benchmarks/bench_analysis_scale.py``), never
   enlarging. Scale 1 means no resampling anywhere: the full-resolution path, unchanged.
2. :meth:`AnalysisScale.shrink` gives the network its input (area averaging, OpenCV).
3. The decision the network stage produces is brought back with
   :mod:`focusstudio.core.ops.upsample`, guided by the full-resolution frames:
   :func:`lift_pair` for a pair's soft or binary decision (guide: the grey frames composed with
   the decision's bilinear enlargement, so the guide holds the sharp frame's edges where the
   decision switches), :func:`lift_index` for an N-frame index map (guide: the grey frames
   selected by the index's nearest enlargement).
4. The method's post-processing (thresholds, morphology, small-region removal, guided filters)
   runs at full resolution with its radii in full-resolution pixels: a setting means the same at
   every analysis scale. Explanation maps of the network stage (activities, per-scale
   differences) stay at the analysis resolution; the window stretches them over the image.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from focusstudio.core.ops.upsample import enlarge, shrink, upsample_binary, upsample_index, upsample_soft
from focusstudio.core.progress import CancelToken
from focusstudio.core.types import LEVEL_BAND_ROWS, Stack, grey_from_levels, to_grey

__all__ = [
    "DEFAULT_LONG_SIDE",
    "AnalysisScale",
    "analysis_scale_for",
    "lift_index",
    "lift_pair",
    "pair_greys",
    "pair_levels",
    "resolve_analysis_scale",
]

#: "auto" for a method that declares no ``analysis_long_side`` of its own.
DEFAULT_LONG_SIDE = 1024
#: The analysis image is never smaller than this along its short side (a network needs context).
MIN_SHORT_SIDE = 32


@dataclass(frozen=True)
class AnalysisScale:
    """The resolved analysis scale of one run: full and analysis shapes (height, width)."""

    scale: float
    full_shape: tuple[int, int]
    shape: tuple[int, int]

    @property
    def active(self) -> bool:
        """True when the network runs below full resolution."""
        return self.shape != self.full_shape

    def shrink(self, image: np.ndarray) -> np.ndarray:
        """``image`` at the analysis resolution (itself when the scale is 1)."""
        return shrink(image, self.shape) if self.active else image


def resolve_analysis_scale(setting: Any, full_shape: tuple[int, int], long_side: int) -> AnalysisScale:
    """The analysis scale of a ``full_shape`` image for a validated setting ("auto" or a number in
    (0, 1]); "auto" shrinks the long side to ``long_side`` pixels (scale ≤ 1)."""
    height, width = full_shape
    scale = min(1.0, long_side / max(height, width)) if setting == "auto" else float(setting)
    # a short side below MIN_SHORT_SIDE would leave the network no context: stop there
    scale = min(1.0, max(scale, MIN_SHORT_SIDE / max(1, min(height, width))))
    shape = (max(1, round(height * scale)), max(1, round(width * scale))) if scale < 1.0 else full_shape
    return AnalysisScale(scale, full_shape, shape)


def analysis_scale_for(method: object, params: Mapping[str, Any], full_shape: tuple[int, int]) -> AnalysisScale:
    """The analysis scale of a run of ``method`` (its ``analysis_long_side`` for "auto")."""
    long_side = int(getattr(method, "analysis_long_side", DEFAULT_LONG_SIDE))
    return resolve_analysis_scale(params.get("analysis_scale", 1.0), full_shape, long_side)


def lift_pair(decision: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """A pair's low-resolution decision (weight of ``first``; bool → a bool decision, float → a
    soft map in [0, 1]) at the size of the full-resolution frames ``first``/``second`` (grey or
    colour, [0, 1]), following the edges of the frame each side of the decision takes."""
    shape = first.shape[:2]
    if decision.shape == shape:
        return decision
    weight = enlarge(decision.astype(np.float32), shape)
    # guide = B + w·(A − B) in grey: the sharp frame's edge is where the decision switches; in
    # bands of rows (the same float32 operations per pixel), so no full-size temporaries
    grey_first, grey_second = to_grey(first), to_grey(second)
    guide = np.empty(shape, dtype=np.float32)
    for start in range(0, shape[0], LEVEL_BAND_ROWS):
        rows = slice(start, start + LEVEL_BAND_ROWS)
        difference = grey_first[rows] - grey_second[rows]
        difference *= weight[rows]
        np.add(grey_second[rows], difference, out=guide[rows])
    del weight, grey_first, grey_second
    if decision.dtype == np.bool_:
        return upsample_binary(decision, guide)
    return upsample_soft(decision, guide)


def pair_levels(stack: Stack, scale: AnalysisScale) -> tuple[np.ndarray, np.ndarray] | None:
    """Frames 0 and 1 of a pair as integer levels (:meth:`Stack.load_levels`), decoded once for
    the whole run at an active ``scale`` (their greys for the network and the lift, the guide and
    the composition at full resolution: a 24 MP JPEG decode is ~0.3 CPU-s); None at scale 1,
    where they do not decode to levels, or where their size is not the stack's (the callers' own
    loading then reports it)."""
    if not scale.active or len(stack) < 2:
        return None
    first = stack.load_levels(0)
    second = stack.load_levels(1) if first is not None else None
    if first is None or second is None or first.shape[:2] != stack.shape or second.shape[:2] != stack.shape:
        return None
    return first, second


def pair_greys(levels: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The full-resolution greys of :func:`pair_levels` (exactly ``grey_frame``'s values)."""
    return grey_from_levels(levels[0]), grey_from_levels(levels[1])


def lift_index(index: np.ndarray, stack: Stack, cancel: CancelToken | None = None) -> np.ndarray:
    """An N-frame low-resolution index map at the stack's size, following the edges of the frames
    it selects (guide: each pixel's selected grey frame, one frame loaded at a time)."""
    shape = stack.shape
    if index.shape == shape:
        return index
    nearest = _nearest(index, shape)
    guide = np.zeros(shape, dtype=np.float32)
    labels = [int(v) for v in np.unique(index)]
    for label in labels:
        if cancel is not None:
            cancel.raise_if_cancelled()
        where = nearest == label
        guide[where] = to_grey(stack.load(label))[where]
    del nearest
    check = cancel.raise_if_cancelled if cancel is not None else None
    return upsample_index(index, guide, labels, cancel=check)


def _nearest(index: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(index.astype(np.int32), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
