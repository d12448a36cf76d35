"""Verification of a fit: is a transform plausible for a focus stack, and how well does the frame
it aligns correlate with its target (the score every candidate fit is compared by)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from focusstudio.core.align.geometry import _apply_points, _jacobian, _warp
from focusstudio.core.align.params import AlignOptions


class RegistrationFailed(Exception):
    """A pair could not be registered; the message says why."""



def implausibility(matrix: np.ndarray, width: int, height: int, options: AlignOptions) -> str | None:
    """Why ``matrix`` is not a plausible frame-to-frame motion of a focus stack, or None."""
    corners = np.array([[0.0, 0.0], [width - 1.0, 0.0], [width - 1.0, height - 1.0], [0.0, height - 1.0]])
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    if not np.all(np.isfinite(matrix)):
        return "the transform is not finite"
    w = np.hstack([corners, np.ones((4, 1))]) @ matrix[2]
    if np.any(w <= 1e-6):
        return "the transform folds the frame through infinity"
    # Scale and rotation are checked where they are largest for a homography: at every corner.
    for point in (centre, *corners):
        jacobian = _jacobian(matrix, point)
        singular = np.linalg.svd(jacobian, compute_uv=False)
        if np.linalg.det(jacobian) <= 0:
            return "the transform mirrors the frame"
        if singular[-1] < options.min_scale or singular[0] > options.max_scale:
            outside = singular[-1] if singular[-1] < options.min_scale else singular[0]
            return f"scale {outside:.3f} outside [{options.min_scale:g}, {options.max_scale:g}]"
        angle = math.degrees(
            math.atan2(jacobian[1, 0] - jacobian[0, 1], jacobian[0, 0] + jacobian[1, 1])
        )
        if abs(angle) > options.max_rotation:
            return f"rotation {angle:+.2f}° exceeds ±{options.max_rotation:g}°"
    moved = _apply_points(matrix, centre[None])[0] - centre
    if abs(moved[0]) > options.max_shift * width or abs(moved[1]) > options.max_shift * height:
        return (
            f"shift ({moved[0]:+.1f}, {moved[1]:+.1f}) px exceeds {100 * options.max_shift:g} % of the "
            f"{width}×{height} frame"
        )
    return None


def _correlation(target: np.ndarray, moving: np.ndarray, target_to_moving: np.ndarray) -> float:
    """Zero-mean normalised correlation of ``target`` and ``moving`` warped onto it, on the overlap."""
    height, width = target.shape
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = _warp(moving, target_to_moving, (width, height), flags, cv2.BORDER_CONSTANT)
    coverage = _warp(np.ones_like(moving), target_to_moving, (width, height), flags, cv2.BORDER_CONSTANT)
    valid = coverage > 0.999
    if valid.sum() < 16:
        return float("nan")
    a = target[valid].astype(np.float64)
    b = warped[valid].astype(np.float64)
    a -= a.mean()
    b -= b.mean()
    denominator = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else float("nan")



def _pair_problem(
    matrix: np.ndarray, correlation: float, width: int, height: int, options: AlignOptions
) -> str | None:
    if not math.isfinite(correlation) or correlation < options.min_correlation:
        return f"correlation {correlation:.3f} below {options.min_correlation:g}"
    return implausibility(matrix, width, height, options)
