"""Estimation by keypoints (SIFT, ORB or AKAZE), ratio-tested matches and RANSAC."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from focusstudio.core.align.geometry import _constrain, _translation
from focusstudio.core.align.params import AlignOptions
from focusstudio.core.align.verify import RegistrationFailed
from focusstudio.core.progress import check_cancelled


def _to_uint8(image: np.ndarray) -> np.ndarray:
    # A percentile stretch gives dim microscope frames enough contrast for the detectors.
    low, high = np.percentile(image, (0.5, 99.5))
    scale = 255.0 / max(float(high - low), 1e-6)
    return np.clip((image - low) * scale, 0, 255).astype(np.uint8)


def _detector(name: str) -> tuple[Any, int, str]:
    """(detector, norm for matching, note when the requested one is unavailable)."""
    if name == "akaze":
        create = getattr(cv2, "AKAZE_create", None)
        if create is not None:
            return create(), cv2.NORM_HAMMING, ""
        return cv2.SIFT_create(nfeatures=5000), cv2.NORM_L2, "AKAZE is not in this OpenCV build; used SIFT"
    if name == "orb":
        return cv2.ORB_create(nfeatures=5000), cv2.NORM_HAMMING, ""
    return cv2.SIFT_create(nfeatures=5000), cv2.NORM_L2, ""


#: Keypoints matched per block (between two cancel checks).
_MATCH_BLOCK = 1024


def _feature_transform(
    target: np.ndarray, moving: np.ndarray, options: AlignOptions
) -> tuple[np.ndarray, int, str]:
    """(moving→target matrix, RANSAC inliers, note) from keypoint matches; raises RegistrationFailed."""
    detector, norm, note = _detector(options.detector)
    check_cancelled()
    target_points, target_descriptors = detector.detectAndCompute(_to_uint8(target), None)
    check_cancelled()
    moving_points, moving_descriptors = detector.detectAndCompute(_to_uint8(moving), None)
    check_cancelled()
    if target_descriptors is None or moving_descriptors is None or len(target_points) < 3 or len(moving_points) < 3:
        raise RegistrationFailed("features: too few keypoints")
    matcher = cv2.BFMatcher(norm)
    good: list[tuple[int, int]] = []  # (moving keypoint, target keypoint)
    # Brute-force matching of thousands of keypoints takes a while: in blocks of query rows, with a
    # cancel check between them (each row's nearest neighbours do not depend on the other rows).
    for start in range(0, len(moving_descriptors), _MATCH_BLOCK):
        check_cancelled()
        block = matcher.knnMatch(moving_descriptors[start : start + _MATCH_BLOCK], target_descriptors, k=2)
        # Lowe's ratio test keeps only distinctive matches.
        good.extend((start + pair[0].queryIdx, pair[0].trainIdx) for pair in block
                    if len(pair) == 2 and pair[0].distance < 0.75 * pair[1].distance)
    if len(good) < options.min_inliers:
        raise RegistrationFailed(f"features: only {len(good)} distinctive matches (need {options.min_inliers})")
    source = np.float32([moving_points[query].pt for query, _ in good])
    destination = np.float32([target_points[train].pt for _, train in good])
    threshold = 2.0
    if options.model == "homography":
        found, mask = cv2.findHomography(source, destination, cv2.RANSAC, threshold, maxIters=5000, confidence=0.999)
    elif options.model == "affine":
        found, mask = cv2.estimateAffine2D(
            source, destination, method=cv2.RANSAC, ransacReprojThreshold=threshold, maxIters=5000, confidence=0.999
        )
    else:
        found, mask = cv2.estimateAffinePartial2D(
            source, destination, method=cv2.RANSAC, ransacReprojThreshold=threshold, maxIters=5000, confidence=0.999
        )
    if found is None or mask is None:
        raise RegistrationFailed("features: RANSAC found no consistent transform")
    inlier_mask = mask.ravel().astype(bool)
    inliers = int(inlier_mask.sum())
    if inliers < options.min_inliers:
        raise RegistrationFailed(f"features: only {inliers} RANSAC inliers (need {options.min_inliers})")
    matrix = np.eye(3)
    if found.shape == (3, 3):
        matrix = found.astype(np.float64)
    else:
        matrix[:2] = found.astype(np.float64)
    if options.model == "translation":
        shift = np.median(destination[inlier_mask] - source[inlier_mask], axis=0)
        matrix = _translation(float(shift[0]), float(shift[1]))
    return _constrain(matrix, options.model), inliers, note
