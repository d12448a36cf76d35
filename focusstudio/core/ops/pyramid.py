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
