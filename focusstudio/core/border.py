"""The border of an aligned stack kept at full size, where not every frame has real pixels.

Alignment without a crop (``--no-crop``) warps each frame onto the reference and fills what the
frame did not see with its replicated edge pixels. No method may take those: a smeared edge often
looks "sharp" to a focus measure. The methods themselves only see frames; this stage runs after
any of them and, wherever ``stack.valid_mask`` is False (some frame does not cover the pixel),
replaces the result with the pixel of the sharpest frame *among those that cover it*:

* sharpness is the mean squared gradient over the frame's covered pixels in a (2r+1)² window
  (a mean, not a sum, so a frame is not penalised for the window part it does not cover);
* the chosen frame's own pixels are copied (hard selection, like the frame borders of ``sf``);
* index and pair decision/weight maps are updated to tell the same story, and a ``valid_area``
  map shows where the method's own result was kept.

The reference frame covers every pixel, so every pixel has at least one candidate. Frames are
streamed (two passes, one frame in memory at a time), so memory does not grow with N.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from focusstudio.core.methods.base import RunContext
from focusstudio.core.ops.spatial_frequency import squared_differences_np
from focusstudio.core.progress import ProgressGen
from focusstudio.core.types import FusionMap, FusionResult, Stack

#: Window radius of the border sharpness measure (``sf``'s default SF radius).
BORDER_RADIUS = 5


def _energy_mask(covered: np.ndarray) -> np.ndarray:
    """Where a left/up squared difference involves covered pixels only (never the first row or
    column: their difference is against the zero padding, the strongest "edge" of all)."""
    mask = covered.copy()
    mask[:, 1:] &= covered[:, :-1]
    mask[1:, :] &= covered[:-1, :]
    mask[:, 0] = False
    mask[0, :] = False
    return mask


def covered_sharpness(grey: np.ndarray, covered: np.ndarray | None, radius: int = BORDER_RADIUS) -> np.ndarray:
    """Mean squared gradient over the covered pixels of each (2r+1)² window (float64, 0 where the
    window has none)."""
    energy = squared_differences_np(grey)
    size = (2 * radius + 1, 2 * radius + 1)
    mask = _energy_mask(np.ones(grey.shape[:2], dtype=bool) if covered is None else covered)
    energy[~mask] = 0.0
    sums = cv2.boxFilter(energy, -1, size, normalize=False, borderType=cv2.BORDER_CONSTANT)
    counts = cv2.boxFilter(mask.astype(np.float64), -1, size, normalize=False, borderType=cv2.BORDER_CONSTANT)
    return np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0.5)


def complete_partial_coverage(
    result: FusionResult, stack: Stack, context: RunContext
) -> ProgressGen[FusionResult]:
    """``result`` with the partially covered border taken from covering frames only (see the
    module docstring); unchanged when every frame covers every pixel."""
    if stack.valid_mask is None:
        return result
    band = ~np.asarray(stack.valid_mask, dtype=bool)
    if not band.any():
        return result
    count = len(stack)
    coverages = [stack.coverage(index) for index in range(count)]
    if all(covered is None for covered in coverages):
        return result  # no frame says what it covers: nothing better to choose than the method did
    best = np.full(band.shape, -1.0)
    chosen = np.full(band.shape, -1, dtype=np.int32)
    for index in range(count):
        context.cancel.raise_if_cancelled()
        yield context.progress.event("border", index / (2 * count), f"border: measuring frame {index + 1}/{count}")
        covered = coverages[index]
        sharpness = covered_sharpness(stack.load(index, grey=True).astype(np.float64), covered)
        candidate = band if covered is None else band & covered
        better = candidate & (sharpness > best)
        best[better] = sharpness[better]
        chosen[better] = index
    # The reference covers everything; a pixel nobody covers (a broken transform) keeps the result.
    selected = chosen >= 0
    image = np.array(result.image, dtype=np.float32, copy=True)
    for index in range(count):
        context.cancel.raise_if_cancelled()
        yield context.progress.event("border", 0.5 + index / (2 * count), "border: composing")
        where = selected & (chosen == index)
        if where.any():
            frame = stack.load(index)
            image[where] = frame[where] if frame.ndim == image.ndim else frame[where][..., None]
    maps = dict(result.maps)
    for name, fusion_map in result.maps.items():
        data = fusion_map.data
        if data.shape != band.shape or fusion_map.frame is not None:
            continue
        if fusion_map.kind == "index":
            updated = data.copy()
            updated[selected] = chosen[selected].astype(data.dtype)
            maps[name] = replace(fusion_map, data=updated)
        elif fusion_map.kind in ("decision", "weight") and count == 2 and name != "valid_area":
            updated = data.copy()
            updated[selected] = (chosen[selected] == 0).astype(data.dtype)
            maps[name] = replace(fusion_map, data=updated)
    maps["valid_area"] = FusionMap(
        "valid_area", "mask", (~band).astype(np.float32),
        "1 = every aligned frame covers the pixel (the method's result); 0 = the sharpest covering frame",
    )
    note = (
        f"{int(selected.sum())} border pixels not covered by every aligned frame were taken from the "
        "sharpest frame that covers them"
    )
    return replace(result, image=image, maps=maps, notes=(*result.notes, note))
