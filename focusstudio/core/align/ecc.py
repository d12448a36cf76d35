"""Estimation by ECC (``cv2.findTransformECC``), coarse to fine on a Gaussian pyramid."""

from __future__ import annotations

import cv2
import numpy as np

from focusstudio.core.align.geometry import _constrain
from focusstudio.core.align.params import AlignOptions
from focusstudio.core.align.verify import RegistrationFailed
from focusstudio.core.progress import check_cancelled

_ECC_MOTION = {
    "translation": cv2.MOTION_TRANSLATION,
    "similarity": cv2.MOTION_AFFINE,  # projected onto a similarity after every level
    "affine": cv2.MOTION_AFFINE,
    "homography": cv2.MOTION_HOMOGRAPHY,
}


def _pyramid(image: np.ndarray, min_size: int) -> list[np.ndarray]:
    """[finest, ..., coarsest] with pyrDown (a coarse pixel j sits on fine pixel 2j)."""
    levels = [image]
    while min(levels[-1].shape) // 2 >= min_size and len(levels) < 8:
        levels.append(cv2.pyrDown(levels[-1]))
    return levels


_HALF = np.diag([0.5, 0.5, 1.0])
_DOUBLE = np.diag([2.0, 2.0, 1.0])


def _ecc_coarse_to_fine(
    target_levels: list[np.ndarray],
    moving_levels: list[np.ndarray],
    initial: np.ndarray,
    options: AlignOptions,
    first_level: int | None = None,
) -> tuple[np.ndarray, float]:
    """ECC from the coarsest level down; returns (warp target→moving at the finest level, correlation).

    ``initial`` maps target to moving coordinates at the finest level. A level where ECC fails
    keeps the warp of the coarser level; only a failure at the finest level is fatal.
    """
    motion = _ECC_MOTION[options.model]
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, options.ecc_iterations, options.ecc_epsilon)
    top = len(target_levels) - 1 if first_level is None else min(first_level, len(target_levels) - 1)
    warp = np.linalg.matrix_power(_HALF, top) @ initial @ np.linalg.matrix_power(_DOUBLE, top)
    correlation = float("nan")
    for level in range(top, -1, -1):
        check_cancelled()  # a level is one OpenCV call: the finest can take a good part of a second
        if level != top:
            warp = _DOUBLE @ warp @ _HALF
        rows = 3 if options.model == "homography" else 2
        guess = warp[:rows].astype(np.float32)
        try:
            correlation, found = cv2.findTransformECC(
                target_levels[level], moving_levels[level], guess, motion, criteria, None,
                options.gauss_filter_size,
            )
        except cv2.error as error:
            if level == 0:
                reason = str(error).strip().splitlines()[-1] if str(error).strip() else "cv2 error"
                raise RegistrationFailed(f"ECC did not converge ({reason})") from None
            continue
        full = np.eye(3)
        full[:rows] = found.astype(np.float64)
        warp = _constrain(full, options.model)
    return warp, float(correlation)
