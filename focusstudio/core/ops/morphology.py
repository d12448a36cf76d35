"""Binary morphology with a true disk and small-region removal.

Border semantics follow scikit-image (what the reference code used): erosion treats pixels
outside the image as 1, dilation as 0 — which is also OpenCV's default border for morphology.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from focusstudio.core.progress import check_cancelled


def disk(radius: int) -> np.ndarray:
    """A true disk footprint: x² + y² ≤ r² (r=5 → 81 pixels; not OpenCV's ellipse)."""
    coords = np.arange(-radius, radius + 1)
    return ((coords[:, None] ** 2 + coords[None, :] ** 2) <= radius * radius).astype(np.uint8)


def _as_u8(binary: np.ndarray) -> np.ndarray:
    return (np.asarray(binary) > 0).astype(np.uint8)


def binary_erosion(binary: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0:
        return np.asarray(binary) > 0
    # Outside the image counts as 1 for erosion (explicit value: OpenCV 5 dropped
    # ``morphologyDefaultBorderValue``).
    return cv2.erode(_as_u8(binary), disk(radius), borderType=cv2.BORDER_CONSTANT, borderValue=1) > 0


def binary_dilation(binary: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0:
        return np.asarray(binary) > 0
    # Outside the image counts as 0 for dilation.
    return cv2.dilate(_as_u8(binary), disk(radius), borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0


def binary_opening(binary: np.ndarray, radius: int) -> np.ndarray:
    """Erosion then dilation with a disk of ``radius``."""
    return binary_dilation(binary_erosion(binary, radius), radius)


def binary_closing(binary: np.ndarray, radius: int) -> np.ndarray:
    """Dilation then erosion with a disk of ``radius``."""
    return binary_erosion(binary_dilation(binary, radius), radius)


Connectivity = Literal[4, 8]


def remove_small_objects(binary: np.ndarray, min_area: float, connectivity: Connectivity = 4) -> np.ndarray:
    """Set to 0 every connected component of 1s whose area is strictly below ``min_area``.

    Components touching the border are included (as in the reference code).
    """
    mask = _as_u8(binary)
    if min_area <= 1 or not mask.any():
        return mask > 0
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=connectivity)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    if keep[1:].all():  # nothing to remove: skip the full-size lookup
        return mask > 0
    keep[0] = False  # label 0 is the background of this labelling
    return keep[labels]


def fill_small_holes(binary: np.ndarray, min_area: float, connectivity: Connectivity = 4) -> np.ndarray:
    """Set to 1 every connected component of 0s whose area is strictly below ``min_area``."""
    return ~remove_small_objects(~(np.asarray(binary) > 0), min_area, connectivity)


def small_region_removal(
    binary: np.ndarray,
    area_fraction: float,
    polarity: Literal["both", "ones", "zeros"] = "both",
    connectivity: Connectivity = 4,
) -> np.ndarray:
    """Flip connected regions smaller than ``area_fraction``·H·W (1-regions, then 0-regions)."""
    threshold = area_fraction * binary.shape[0] * binary.shape[1]
    result = np.asarray(binary) > 0
    if polarity in ("both", "ones"):
        result = remove_small_objects(result, threshold, connectivity)
    if polarity in ("both", "zeros"):
        result = fill_small_holes(result, threshold, connectivity)
    return result


def small_region_removal_labels(
    index_map: np.ndarray, area_fraction: float, connectivity: Connectivity = 4
) -> np.ndarray:
    """N-label version: every connected region of one label smaller than the threshold takes the
    label that surrounds it most (majority of its outer boundary pixels)."""
    threshold = area_fraction * index_map.shape[0] * index_map.shape[1]
    result = index_map.astype(np.int32, copy=True)
    if threshold <= 1:
        return result
    for _ in range(4):  # a few passes: a relabelled region can join a neighbour that was small too
        changed = False
        for label in np.unique(result):
            check_cancelled()  # one connected-components pass per label over the whole map
            mask = (result == label).astype(np.uint8)
            count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=connectivity)
            for component in range(1, count):
                if stats[component, cv2.CC_STAT_AREA] >= threshold:
                    continue
                x, y, w, h = stats[component, :4]
                y0, y1 = max(y - 1, 0), min(y + h + 1, result.shape[0])
                x0, x1 = max(x - 1, 0), min(x + w + 1, result.shape[1])
                region = labels[y0:y1, x0:x1] == component
                ring = cv2.dilate(region.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
                ring &= ~region
                neighbours = result[y0:y1, x0:x1][ring]
                neighbours = neighbours[neighbours != label]
                if neighbours.size == 0:
                    continue
                values, counts = np.unique(neighbours, return_counts=True)
                result[y0:y1, x0:x1][region] = values[np.argmax(counts)]
                changed = True
        if not changed:
            break
    return result
