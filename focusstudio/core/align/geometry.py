"""Geometry of the registration matrices: 3×3 helpers, model constraints, warping, and the area
every aligned frame covers (per-row intervals and the largest rectangle inside them)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np


def _checked_matrix(rows: Any) -> np.ndarray:
    matrix = np.asarray(rows, dtype=np.float64)
    if matrix.shape != (3, 3) or not np.all(np.isfinite(matrix)):
        raise ValueError(f"a matrix must be 3x3 and finite, got {rows!r}")
    return matrix


def _apply_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map N×2 points with a 3×3 matrix (with the perspective division)."""
    homogeneous = np.hstack([points, np.ones((len(points), 1))]) @ matrix.T
    return homogeneous[:, :2] / homogeneous[:, 2:3]


def _jacobian(matrix: np.ndarray, point: np.ndarray) -> np.ndarray:
    """2×2 derivative of the (projective) map at ``point``."""
    x, y = float(point[0]), float(point[1])
    w = matrix[2, 0] * x + matrix[2, 1] * y + matrix[2, 2]
    u = matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2]
    v = matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2]
    return np.array(
        [
            [(matrix[0, 0] * w - u * matrix[2, 0]) / w**2, (matrix[0, 1] * w - u * matrix[2, 1]) / w**2],
            [(matrix[1, 0] * w - v * matrix[2, 0]) / w**2, (matrix[1, 1] * w - v * matrix[2, 1]) / w**2],
        ]
    )


def _translation(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def _project_to_similarity(matrix: np.ndarray) -> np.ndarray:
    """The closest rotation + uniform scale (least squares on the 2×2 part), shift unchanged."""
    p = (matrix[0, 0] + matrix[1, 1]) / 2.0
    q = (matrix[1, 0] - matrix[0, 1]) / 2.0
    return np.array([[p, -q, matrix[0, 2]], [q, p, matrix[1, 2]], [0.0, 0.0, 1.0]])


def _constrain(matrix: np.ndarray, model: str) -> np.ndarray:
    if model == "similarity":
        return _project_to_similarity(matrix)
    if model == "translation":
        return _translation(matrix[0, 2], matrix[1, 2])
    if model == "affine":
        constrained = matrix.copy()
        constrained[2] = (0.0, 0.0, 1.0)
        return constrained
    return matrix / matrix[2, 2]



def _warp(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int], flags: int, border: int) -> np.ndarray:
    if np.allclose(matrix[2], (0.0, 0.0, 1.0), atol=1e-12):
        return cv2.warpAffine(image, matrix[:2], size, flags=flags, borderMode=border)
    return cv2.warpPerspective(image, matrix, size, flags=flags, borderMode=border)



def _scale_matrix(source: tuple[int, int], target: tuple[int, int]) -> np.ndarray:
    """Pixel-centre mapping of a resize from ``source`` (h, w) to ``target`` (h, w), as cv2.resize does."""
    sy = target[0] / source[0]
    sx = target[1] / source[1]
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


# ------------------------------------------------------------------------------- covered area
COVERAGE_MARGIN = 0.5


def covered_columns(
    matrices: list[np.ndarray], height: int, width: int, source_shape: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per output row y (of a height×width output): the first and last column (int) where every
    mapped frame (of ``source_shape``, default the output's) has pixels.

    Each frame's footprint is the image of its pixel-centre rectangle, a convex quadrilateral;
    their intersection is convex, so a row's covered part is one interval. Empty rows get
    left > right.
    """
    rows = np.arange(height, dtype=np.float64)
    left = np.full(height, -np.inf)
    right = np.full(height, np.inf)
    source_height, source_width = source_shape or (height, width)
    # A frame's pixels cover the area up to half a pixel beyond its outer pixel centres: a sample
    # there is read from the edge pixel, so a sub-pixel shift (ECC finds ~0.01 px even between
    # frames that never moved) does not cost a row or a column of the result.
    low_edge = -COVERAGE_MARGIN
    high_x, high_y = source_width - 1.0 + COVERAGE_MARGIN, source_height - 1.0 + COVERAGE_MARGIN
    corners = np.array([[low_edge, low_edge], [high_x, low_edge], [high_x, high_y], [low_edge, high_y]])
    for matrix in matrices:
        quad = _apply_points(matrix, corners)
        low = np.full(height, np.inf)
        high = np.full(height, -np.inf)
        for k in range(4):
            (x0, y0), (x1, y1) = quad[k], quad[(k + 1) % 4]
            lo_y, hi_y = min(y0, y1), max(y0, y1)
            # A small tolerance keeps exactly-aligned edges (identity, integer shifts) inside.
            inside = (rows >= lo_y - 1e-9) & (rows <= hi_y + 1e-9)
            if abs(y1 - y0) < 1e-12:
                xs = np.where(inside, min(x0, x1), np.inf)
                xe = np.where(inside, max(x0, x1), -np.inf)
            else:
                crossing = x0 + (rows - y0) * (x1 - x0) / (y1 - y0)
                xs = np.where(inside, crossing, np.inf)
                xe = np.where(inside, crossing, -np.inf)
            low = np.minimum(low, xs)
            high = np.maximum(high, xe)
        left = np.maximum(left, low)
        right = np.minimum(right, high)
    eps = 1e-6
    left_columns = np.where(np.isfinite(left), np.ceil(np.maximum(left, 0.0) - eps), width)
    right_columns = np.where(np.isfinite(right), np.floor(np.minimum(right, width - 1.0) + eps), -1)
    return left_columns.astype(np.int64), right_columns.astype(np.int64)


def _row_intervals_to_mask(left: np.ndarray, right: np.ndarray, width: int) -> np.ndarray:
    columns = np.arange(width)
    return (columns[None, :] >= left[:, None]) & (columns[None, :] <= right[:, None])


def largest_rectangle(left: np.ndarray, right: np.ndarray) -> tuple[int, int, int, int] | None:
    """Largest axis-aligned (x, y, width, height) inside a convex region given by row intervals.

    For a convex region the left bound is a convex and the right bound a concave function of the
    row, so over rows y0..y1 the tightest bounds are found at y0 or y1: the widest rectangle
    spanning those rows is min(R[y0], R[y1]) − max(L[y0], L[y1]) + 1. All pairs are tried
    (vectorised per first row), which is exact and O(H²) cheap numpy work.
    """
    valid_rows = np.flatnonzero(right >= left)
    if valid_rows.size == 0:
        return None
    first, last = int(valid_rows[0]), int(valid_rows[-1])
    lefts, rights = left[first : last + 1], right[first : last + 1]
    best: tuple[int, int, int, int] | None = None
    best_area = 0
    for start in range(len(lefts)):
        widths = np.minimum(rights[start], rights[start:]) - np.maximum(lefts[start], lefts[start:]) + 1
        widths = np.where(rights[start:] >= lefts[start:], widths, 0)
        # Rows past an empty row cannot be spanned (the region is convex, so this is only a guard).
        empty = np.flatnonzero(widths <= 0)
        if empty.size:
            widths = widths[: empty[0]]
        if widths.size == 0:
            continue
        areas = widths * np.arange(1, widths.size + 1)
        k = int(np.argmax(areas))
        if areas[k] > best_area:
            best_area = int(areas[k])
            x = int(max(lefts[start], lefts[start + k]))
            best = (x, first + start, int(widths[k]), k + 1)
    return best
