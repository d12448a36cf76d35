"""Laplacian pyramids and multi-scale composition of a fused image from per-frame weights.

:class:`PyramidBlend` is enfuse's "hard-mask" blending driven by our decision: each frame's
Laplacian pyramid is weighted, level by level, by the Gaussian pyramid of that frame's weight
(a one-hot selection map, or a soft weight). Detail is taken where the decision says, at every
scale, while a switch of frame is spread over a width that grows with the scale — so two frames
of slightly different brightness meet without a visible edge in flat or bokeh areas, and fine
detail is not averaged away as a wide spatial blend of the weights would do.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

#: The coarsest level of an automatic pyramid is at least this many pixels on its shorter side.
BLEND_COARSEST_SIZE = 8


def blend_levels(height: int, width: int) -> int:
    """Detail levels of a blend pyramid: down to a coarsest level of ~8–16 px (at least 1)."""
    return max(math.floor(math.log2(max(min(height, width), 1) / BLEND_COARSEST_SIZE)), 1)


def laplacian_pyramid(image: np.ndarray, levels: int) -> tuple[list[np.ndarray], np.ndarray]:
    """(detail levels finest first, base): image = reconstruct(details, base) up to float error."""
    details: list[np.ndarray] = []
    current = image.astype(np.float32, copy=False)
    for _ in range(levels):
        smaller = cv2.pyrDown(current)
        expanded = cv2.pyrUp(smaller, dstsize=(current.shape[1], current.shape[0]))
        details.append(current - expanded.reshape(current.shape))
        current = smaller.reshape(smaller.shape[:2] + current.shape[2:])
    return details, current


def gaussian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """[image, pyrDown(image), …]: ``levels + 1`` arrays, the sizes of :func:`laplacian_pyramid`'s."""
    out = [image.astype(np.float32, copy=False)]
    for _ in range(levels):
        smaller = cv2.pyrDown(out[-1])
        out.append(smaller.reshape(smaller.shape[:2] + out[-1].shape[2:]))
    return out


def reconstruct(details: list[np.ndarray], base: np.ndarray) -> np.ndarray:
    """Inverse of :func:`laplacian_pyramid`."""
    current = base
    for detail in reversed(details):
        expanded = cv2.pyrUp(current, dstsize=(detail.shape[1], detail.shape[0]))
        current = expanded.reshape(detail.shape) + detail
    return current


def _level_shapes(shape: tuple[int, int], levels: int) -> list[tuple[int, int, int]]:
    """(height, width, level) of every pyramid level, finest first (cv2.pyrDown's rounding up)."""
    height, width = shape
    out = [(height, width, 0)]
    for level in range(1, levels + 1):
        height, width = (height + 1) // 2, (width + 1) // 2
        out.append((height, width, level))
    return out


class PyramidBlend:
    """Σ_i G(w_i) · L(frame_i) per level, normalised by Σ_i G(w_i), then collapsed.

    Frames are added one at a time (a stack is never held whole): the state is one pyramid of
    sums and one of weight sums, ~1.33× the image each. The weights need not sum to 1: each
    level is divided by its own weight sum (where no frame has weight the level stays 0).
    """

    def __init__(self, height: int, width: int, levels: int | None = None) -> None:
        self.levels = blend_levels(height, width) if levels is None else max(int(levels), 0)
        self.shape = (height, width)
        self._sums: list[np.ndarray] | None = None
        self._weights: list[np.ndarray] | None = None

    def add(self, frame: np.ndarray, weight: np.ndarray) -> None:
        """Add a frame (H×W or H×W×C float) with its weight (H×W)."""
        if frame.shape[:2] != self.shape or weight.shape != self.shape:
            raise ValueError(f"frame {frame.shape} / weight {weight.shape} do not match {self.shape}")
        if self._sums is None or self._weights is None:
            sizes = [(height, width) for height, width, _ in _level_shapes(self.shape, self.levels)]
            channels = frame.shape[2:]
            self._sums = [np.zeros((*size, *channels), dtype=np.float32) for size in sizes]
            self._weights = [np.zeros(size, dtype=np.float32) for size in sizes]
        # Level by level (the values of laplacian_pyramid / gaussian_pyramid): each level's detail
        # is made, weighted and summed in one buffer, so a frame costs one full-size temporary,
        # not a whole pyramid plus products (page faults were most of the run's system time).
        current = frame.astype(np.float32, copy=False)
        mask = weight.astype(np.float32, copy=False)
        for level in range(self.levels + 1):
            total, weights = self._sums[level], self._weights[level]
            if level == self.levels:
                band = current * (mask[..., None] if current.ndim == 3 else mask)
            else:
                smaller = cv2.pyrDown(current)
                band = cv2.pyrUp(smaller, dstsize=(current.shape[1], current.shape[0])).reshape(current.shape)
                np.subtract(current, band, out=band)  # the detail, current − expanded
                band *= mask[..., None] if band.ndim == 3 else mask
                current = smaller.reshape(smaller.shape[:2] + current.shape[2:])
            total += band
            weights += mask
            del band
            if level < self.levels:
                mask = cv2.pyrDown(mask)

    def result(self) -> np.ndarray:
        """The collapsed pyramid (float32; may leave [0, 1] slightly at strong edges)."""
        if self._sums is None or self._weights is None:
            raise ValueError("no frame was added")
        bands = []
        for total, weights in zip(self._sums, self._weights, strict=True):
            scale = np.where(weights > 1e-6, 1.0 / np.maximum(weights, 1e-6), 0.0).astype(np.float32)
            bands.append(total * (scale[..., None] if total.ndim == 3 else scale))
        return reconstruct(bands[:-1], bands[-1]).astype(np.float32, copy=False)


#: Pixels of one row band of :class:`SelectionBlend` (a few float32 planes of a band stay in cache).
SELECTION_BAND_PIXELS = 1 << 18


def _band_height(width: int) -> int:
    """Rows of one band for a level ``width`` wide: even (so bands map onto whole coarse rows)."""
    rows = max(SELECTION_BAND_PIXELS // max(width, 1), 2)
    return rows + rows % 2


def _pyr_down_bands(rows_of: Callable[[slice], np.ndarray], height: int, width: int) -> np.ndarray:
    """cv2.pyrDown of an H×W image given by row slices (``rows_of(slice)``), one band at a time.

    A coarse row j reads fine rows 2j−2 … 2j+2 (reflected at the image border only): a band of
    coarse rows [j0, j1) reads fine rows [2j0−2, 2j1+2) and keeps the rows whose taps all lie
    inside, so every kept row is the whole-image row (the same taps in the same order).
    """
    coarse_height = (height + 1) // 2
    out: np.ndarray | None = None
    step = _band_height(width) // 2
    for j0 in range(0, coarse_height, step):
        j1 = min(j0 + step, coarse_height)
        top, bottom = max(2 * j0 - 2, 0), min(2 * j1 + 2, height)
        small = cv2.pyrDown(rows_of(slice(top, bottom)))
        if out is None:
            out = np.empty((coarse_height, *small.shape[1:]), dtype=small.dtype)
        offset = (2 * j0 - top) // 2
        out[j0:j1] = small[offset:offset + j1 - j0]
    assert out is not None
    return out


def _pyr_up_rows(coarse: np.ndarray, rows: slice, fine_height: int, fine_width: int) -> np.ndarray:
    """Rows ``rows`` (start even) of cv2.pyrUp(coarse, dstsize=(fine_width, fine_height)).

    A fine row y reads coarse rows ⌊y/2⌋−1 … ⌊y/2⌋+1: the band reads one coarse row more on
    each side (reflected at the image border only, as the whole-image call does) and crops.
    """
    k0 = rows.start // 2
    top = max(k0 - 1, 0)
    bottom = min((rows.stop + 1) // 2 + 2, coarse.shape[0])
    dst_height = min(2 * (bottom - top), fine_height - 2 * top)
    up = cv2.pyrUp(coarse[top:bottom], dstsize=(fine_width, dst_height))
    up = up.reshape((dst_height, fine_width, *coarse.shape[2:]))
    offset = rows.start - 2 * top
    return up[offset:offset + rows.stop - rows.start]


class SelectionBlend:
    """:class:`PyramidBlend` of a hard selection (an index map), in row bands at every level.

    For one-hot weights the weight sums of every level are Σ_i G(w_i) = G(1) = 1 (the pyramid is
    linear and the 1-4-6-4-1 kernel keeps a constant): no weight pyramids and no division are
    needed, so the result differs from :class:`PyramidBlend`'s by float rounding only. A frame
    adds, at each level, its detail times its Gaussian-weighted selection; bands where the
    selection is 0 are skipped (a frame chosen in a small region costs little beyond its
    decoding and one pyrDown). The finest level accumulates in the output buffer itself and the
    collapse adds the coarser levels into it band by band, so the state is the result plus a
    third of it, whatever the number of frames; a frame costs its decoded pixels, their half-
    size Gaussian level and band-sized temporaries.
    """

    def __init__(self, index: np.ndarray, levels: int | None = None) -> None:
        self.index = index
        height, width = index.shape
        self.levels = blend_levels(height, width) if levels is None else max(int(levels), 0)
        self.shapes = [(h, w) for h, w, _ in _level_shapes((height, width), self.levels)]
        self._sums: list[np.ndarray] | None = None

    def add(self, frame: np.ndarray, label: int) -> None:
        """Add ``frame`` (H×W or H×W×C float32) where the index map holds ``label``."""
        if frame.shape[:2] != self.shapes[0]:
            raise ValueError(f"frame {frame.shape} does not match {self.shapes[0]}")
        if self._sums is None:
            self._sums = [np.zeros((h, w, *frame.shape[2:]), dtype=np.float32) for h, w in self.shapes]
        height, width = self.shapes[0]
        selected = self.index == label

        def mask_rows(rows: slice) -> np.ndarray:
            return selected[rows].astype(np.float32)

        current = frame.astype(np.float32, copy=False)
        mask_of: Callable[[slice], np.ndarray] = mask_rows
        level_mask: np.ndarray | None = None
        for level in range(self.levels + 1):
            total = self._sums[level]
            h, w = self.shapes[level]
            smaller = cv2.pyrDown(current) if level < self.levels else None
            step = _band_height(w)
            for start in range(0, h, step):
                rows = slice(start, min(start + step, h))
                mask = mask_of(rows)
                if not mask.any():
                    continue
                if smaller is None:
                    band = current[rows].copy()
                else:
                    band = _pyr_up_rows(smaller, rows, h, w)
                    np.subtract(current[rows], band, out=band)  # the detail, current − expanded
                band *= mask[..., None] if band.ndim == 3 else mask
                total[rows] += band
            if smaller is None:
                break
            # The next level's selection weight: from the index map in bands at the finest level
            # (no full-size float mask), whole at the coarser ones (a quarter of the size each).
            level_mask = _pyr_down_bands(mask_rows, height, width) if level_mask is None else cv2.pyrDown(level_mask)
            mask_of = level_mask.__getitem__
            current = smaller.reshape(smaller.shape[:2] + current.shape[2:])

    def result(self) -> np.ndarray:
        """The collapsed pyramid, in the finest level's buffer (float32; may leave [0, 1]
        slightly at strong edges). The blend cannot be used afterwards."""
        if self._sums is None:
            raise ValueError("no frame was added")
        sums, self._sums = self._sums, None
        current = sums[-1]
        for level in range(self.levels - 1, -1, -1):
            detail = sums[level]
            h, w = self.shapes[level]
            step = _band_height(w)
            for start in range(0, h, step):
                rows = slice(start, min(start + step, h))
                detail[rows] += _pyr_up_rows(current, rows, h, w)
            current = detail
        return current
