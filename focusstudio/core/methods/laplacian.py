"""Laplacian-pyramid fusion (Burt & Adelson style), N frames at once, streamed.

Every frame is decomposed into a Laplacian pyramid (``cv2.pyrDown``/``pyrUp``). At each detail
level and pixel the coefficient with the largest magnitude *of the grey pyramid* is selected, and
that frame's coefficients are taken for all colour channels, so colours are never mixed across
frames. The base (coarsest Gaussian level) is the average of the frames. The fused image is the
reconstruction of the fused pyramid.

Streaming: one frame's pyramid at a time; the running state is the best |detail| per level, the
selected coefficients, the per-level source index and the base sum — O(levels) full-size-equivalent
arrays, independent of N. Ties keep the earlier frame.

Optional consistency: a window-majority filter of every level's index map. The filtered selection
needs coefficients of frames that did not win, so it costs a second streaming pass over the frames
(only when consistency is on).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from focusstudio.core.methods._classical import load_checked
from focusstudio.core.methods.base import Analysis, FusionMethod, RunContext
from focusstudio.core.methods.registry import register
from focusstudio.core.ops.box import box_sum_np
from focusstudio.core.ops.pyramid import laplacian_pyramid, reconstruct
from focusstudio.core.params import ParamSet, ParamSpec
from focusstudio.core.progress import ProgressGen
from focusstudio.core.types import FusionMap, FusionResult, Stack, to_grey

#: Auto depth: stop when the coarsest level would be narrower than this many pixels.
AUTO_COARSEST_SIZE = 16
MAX_AUTO_LEVELS = 8


def auto_levels(height: int, width: int) -> int:
    """Number of detail levels that leaves a coarsest level of about 16–32 pixels."""
    return int(min(max(math.floor(math.log2(min(height, width) / AUTO_COARSEST_SIZE)), 1), MAX_AUTO_LEVELS))


def max_levels(height: int, width: int) -> int:
    """Most levels for which the coarsest level is still at least 2 pixels wide."""
    return max(math.floor(math.log2(min(height, width) / 2)), 1)


def majority_filter(index: np.ndarray, radius: int) -> np.ndarray:
    """Each pixel takes the most frequent label in its (2r+1)² window (ties keep its own label).

    One label's window counts at a time, so memory does not grow with the number of labels.
    """
    labels = np.unique(index)
    if radius <= 0 or labels.size <= 1:
        return index.copy()
    best_count = np.full(index.shape, -1.0)
    result = index.copy()
    for label in labels:
        count = box_sum_np((index == label).astype(np.float32), radius)
        # A tie goes to the pixel's own label whichever order the labels come in.
        better = (count > best_count) | ((count == best_count) & (index == label))
        result[better] = label
        best_count[better] = count[better]
    return result


@register
class LaplacianPyramidFusion(FusionMethod):
    name = "laplacian"
    title = "Laplacian pyramid (classical)"
    description = (
        "Laplacian-pyramid fusion: per level the detail coefficient with the largest magnitude (grey), "
        "copied for all colour channels from the same frame; averaged base; N frames at once."
    )
    family = "classical"
    params = ParamSet(
        (
            ParamSpec("levels", "int", 0, "Number of pyramid detail levels (0 = automatic from the image "
                      "size; too many for the image is reduced).", minimum=0, maximum=16, stage="analysis"),
            ParamSpec("use_consistency", "bool", True, "Window-majority filter of the per-level source "
                      "selection (costs a second pass over the frames).", stage="post", title="Consistency"),
            ParamSpec("consistency_radius", "int", 2, "Radius of the majority window (2r+1)².",
                      minimum=1, maximum=32, stage="post"),
        )
    )
    map_names: ClassVar[tuple[str, ...]] = ("index_raw", "index", "decision")

    def _levels(self, stack: Stack, params: dict[str, Any], context: RunContext) -> int:
        height, width = stack.shape
        most = max_levels(height, width)
        requested = params["levels"] or auto_levels(height, width)
        if requested > most:
            context.notes.append(f"laplacian: {requested} levels is too many for {width}×{height}; used {most}")
        return min(requested, most)

    # ------------------------------------------------------------------------------ analysis
    def analyze(self, stack: Stack, params: dict[str, Any], context: RunContext) -> ProgressGen[Analysis]:
        count = len(stack)
        levels = self._levels(stack, params, context)
        best: list[np.ndarray] = []
        index: list[np.ndarray] = []
        fused: list[np.ndarray] = []
        base_sum: np.ndarray | None = None
        for i in range(count):
            context.cancel.raise_if_cancelled()
            details, base = laplacian_pyramid(load_checked(stack, i), levels)
            magnitudes = [np.abs(to_grey(detail)) for detail in details]
            if i == 0:
                best = magnitudes
                index = [np.zeros(m.shape, dtype=np.int32) for m in magnitudes]
                fused = [detail.copy() for detail in details]
                base_sum = base.astype(np.float64)
            else:
                assert base_sum is not None
                for level, magnitude in enumerate(magnitudes):
                    wins = magnitude > best[level]  # strict: ties keep the earlier frame
                    best[level][wins] = magnitude[wins]
                    index[level][wins] = i
                    fused[level][wins] = details[level][wins]
                base_sum += base
            yield context.progress.event("analysis", (i + 1) / count, f"pyramid {i + 1}/{count}")
        assert base_sum is not None
        return Analysis(
            self.name,
            self.analysis_params(params),
            data={"index": index, "fused": fused, "base": (base_sum / count).astype(np.float32), "levels": levels},
        )

    # ------------------------------------------------------------------------------ finish
    def finish(
        self, analysis: Analysis, stack: Stack, params: dict[str, Any], context: RunContext
    ) -> ProgressGen[FusionResult]:
        count = len(stack)
        index_raw: list[np.ndarray] = analysis.data["index"]
        fused: list[np.ndarray] = analysis.data["fused"]
        base: np.ndarray = analysis.data["base"]
        levels: int = analysis.data["levels"]
        index = index_raw
        if params["use_consistency"]:
            index = [majority_filter(level, params["consistency_radius"]) for level in index_raw]
            yield context.progress.event("consistency", 0.1, "majority filter")
            if any(not np.array_equal(a, b) for a, b in zip(index, index_raw)):
                # Second pass: take each level's coefficients from the frame the filtered map names.
                fused = [np.empty_like(level) for level in fused]
                for i in range(count):
                    context.cancel.raise_if_cancelled()
                    masks = [level == i for level in index]
                    if any(mask.any() for mask in masks):
                        details, _ = laplacian_pyramid(load_checked(stack, i), levels)
                        for detail, mask, target in zip(details, masks, fused):
                            target[mask] = detail[mask]
                    yield context.progress.event("compose", 0.1 + 0.8 * (i + 1) / count, f"frame {i + 1}/{count}")
        context.cancel.raise_if_cancelled()
        image = np.clip(reconstruct(fused, base), 0.0, 1.0).astype(np.float32)
        maps = {
            "index_raw": FusionMap("index_raw", "index", index_raw[0], "Source of the finest detail level"),
            "index": FusionMap("index", "index", index[0], "Source of the finest detail level after consistency"),
        }
        if count == 2:
            maps["decision"] = FusionMap(
                "decision", "decision", (index[0] == 0).astype(np.float32), "1 = finest detail from frame 1"
            )
        yield context.progress.event("compose", 1.0, "done")
        return self.make_result(image, stack, params, maps, analysis)
