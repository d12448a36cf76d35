"""Guided upsampling of decision maps: a map computed at a reduced resolution brought back to the
full resolution along the edges of a full-resolution guide.

The fast guided filter (He & Sun 2015, arXiv:1505.00996): the guided filter's local linear model
q = a·I + b is fitted at the low resolution (the map against the guide shrunk the same way), its
coefficients are smoothed and bilinearly enlarged, and applied to the full-resolution guide. Where
the guide has an edge inside a window in which the map changes, the enlarged map changes at the
guide's edge (to the full-resolution pixel); where the guide is flat it is the bilinear
enlargement of the map. Everything at full resolution is two bilinear resizes and a multiply-add,
so the cost is a few passes over the frame (OpenCV's SIMD resize and box filters).

Decisions come in three forms: a soft map in [0, 1] (:func:`upsample_soft`), a binary decision
(:func:`upsample_binary`, the soft enlargement of 0/1 thresholded at ½) and an index map
(:func:`upsample_index`, every label's one-hot map enlarged, then the per-pixel arg-max).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import cv2
import numpy as np

__all__ = [
    "UPSAMPLE_EPS",
    "UPSAMPLE_RADIUS",
    "enlarge",
    "shrink",
    "upsample_binary",
    "upsample_index",
    "upsample_soft",
]

#: Window radius of the low-resolution fit (pixels of the low resolution): a decision's transition
#: snaps to a guide edge within about this distance (× the scale factor in full-resolution pixels).
UPSAMPLE_RADIUS = 2
#: Regulariser on a guide in [0, 1]: an edge of contrast ≳ 0.03 steers the map; weaker texture
#: (noise, the blur of a defocused frame) leaves the map's bilinear enlargement.
UPSAMPLE_EPS = 1e-3


def shrink(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``image`` (H×W or H×W×C float32) resized to ``shape`` (height, width) by area averaging."""
    if image.shape[:2] == shape:
        return image
    small = cv2.resize(np.ascontiguousarray(image), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32, copy=False)


def enlarge(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear enlargement of an H×W map to ``shape`` (pixel centres aligned, as OpenCV does)."""
    if image.shape[:2] == shape:
        return image
    return cv2.resize(np.ascontiguousarray(image, dtype=np.float32), (shape[1], shape[0]),
                      interpolation=cv2.INTER_LINEAR)


def _box(image: np.ndarray, radius: int) -> np.ndarray:
    return cv2.boxFilter(image, cv2.CV_32F, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)


class _Coefficients:
    """The guide's low-resolution statistics, shared by every map enlarged with one guide."""

    def __init__(self, guide_full: np.ndarray, small_shape: tuple[int, int], radius: int, eps: float) -> None:
        self.guide_full = np.asarray(guide_full, dtype=np.float32)
        self.guide = shrink(self.guide_full, small_shape)
        self.radius = radius
        self.mean_i = _box(self.guide, radius)
        self.denominator = _box(self.guide * self.guide, radius) - self.mean_i * self.mean_i + np.float32(eps)

    def apply(self, source: np.ndarray) -> np.ndarray:
        """The full-resolution enlargement of one low-resolution map."""
        source = np.asarray(source, dtype=np.float32)
        mean_p = _box(source, self.radius)
        a = (_box(self.guide * source, self.radius) - self.mean_i * mean_p) / self.denominator
        b = mean_p - a * self.mean_i
        shape = self.guide_full.shape[:2]
        out = enlarge(_box(a, self.radius), shape)
        out *= self.guide_full
        out += enlarge(_box(b, self.radius), shape)
        return out


def upsample_soft(
    soft: np.ndarray, guide: np.ndarray, radius: int = UPSAMPLE_RADIUS, eps: float = UPSAMPLE_EPS
) -> np.ndarray:
    """A low-resolution map in [0, 1] at the size of the grey ``guide`` (H×W in [0, 1]), following
    the guide's edges, clipped to [0, 1] (float32)."""
    out = _Coefficients(guide, soft.shape[:2], radius, eps).apply(soft)
    return np.clip(out, 0.0, 1.0, out=out)


def upsample_binary(
    decision: np.ndarray, guide: np.ndarray, radius: int = UPSAMPLE_RADIUS, eps: float = UPSAMPLE_EPS
) -> np.ndarray:
    """A low-resolution 0/1 decision at the size of ``guide``: its guided enlargement > ½ (bool)."""
    return _Coefficients(guide, decision.shape[:2], radius, eps).apply(decision.astype(np.float32)) > 0.5


def upsample_index(
    index: np.ndarray,
    guide: np.ndarray,
    labels: Iterable[int] | None = None,
    radius: int = UPSAMPLE_RADIUS,
    eps: float = UPSAMPLE_EPS,
    cancel: Callable[[], None] | None = None,
) -> np.ndarray:
    """A low-resolution index map at the size of ``guide``: each label's one-hot map enlarged, the
    per-pixel arg-max of the enlargements (ties → the lower label), one label at a time (int32)."""
    coefficients = _Coefficients(guide, index.shape[:2], radius, eps)
    present = sorted(int(v) for v in (np.unique(index) if labels is None else labels))
    out = np.full(guide.shape[:2], present[0], dtype=np.int32)
    if len(present) == 1:
        return out
    best: np.ndarray | None = None
    for label in present:
        if cancel is not None:
            cancel()
        weight = coefficients.apply((index == label).astype(np.float32))
        if best is None:
            best = weight
            continue
        wins = weight > best
        out[wins] = label
        np.maximum(best, weight, out=best)
    return out
