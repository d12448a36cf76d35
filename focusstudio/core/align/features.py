"""Estimation by keypoints (SIFT, ORB or AKAZE), ratio-tested matches and RANSAC."""

from __future__ import annotations

import threading
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


def _detector(name: str, features: int = 5000) -> tuple[Any, int, str]:
    """(detector, norm for matching, note when the requested one is unavailable); ``features``:
    the most keypoints SIFT and ORB keep."""
    if name == "akaze":
        create = getattr(cv2, "AKAZE_create", None)
        if create is not None:
            return create(), cv2.NORM_HAMMING, ""
        return cv2.SIFT_create(nfeatures=features), cv2.NORM_L2, "AKAZE is not in this OpenCV build; used SIFT"
    if name == "orb":
        return cv2.ORB_create(nfeatures=features), cv2.NORM_HAMMING, ""
    return cv2.SIFT_create(nfeatures=features), cv2.NORM_L2, ""


#: Keypoints matched per block (between two cancel checks).
_MATCH_BLOCK = 1024
#: Above this longer edge (px) keypoints are detected on the half-size pyramid level: detection and
#: brute-force matching cost ~5× less there (wbc_10: 2.2 s → 0.4 s a pair), and the fit only seeds
#: the ECC refinement, which starts from the finer levels.
_HALF_SIZE_ABOVE = 768
#: Keypoints kept on the half-size level (~500 distinctive matches on microscope frames: RANSAC
#: needs tens).
_HALF_SIZE_FEATURES = 2500

_Detected = tuple[np.ndarray, Any]  # (N×2 float32 keypoint positions in the given image, descriptors)


class FeatureCache:
    """Keypoints of the last few images, by identity: in a chain every frame is the moving image of
    one pair and the target of the next, so each is detected once rather than twice. Thread-safe
    (pairs may be registered on a pool; two threads may then both detect one image, at worst)."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._entries: dict[tuple[int, str], tuple[np.ndarray, _Detected]] = {}
        self._lock = threading.Lock()

    def get(self, image: np.ndarray, detector_name: str) -> _Detected | None:
        with self._lock:
            entry = self._entries.get((id(image), detector_name))
        return entry[1] if entry is not None and entry[0] is image else None

    def put(self, image: np.ndarray, detector_name: str, detected: _Detected) -> None:
        with self._lock:
            # The image itself is held so that its id cannot be re-used by another array meanwhile.
            self._entries[(id(image), detector_name)] = (image, detected)
            while len(self._entries) > self.size:
                self._entries.pop(next(iter(self._entries)))


def _detect(image: np.ndarray, options: AlignOptions, cache: FeatureCache | None) -> _Detected:
    """Keypoint positions (in ``image``'s pixels) and descriptors; cached when possible."""
    cached = cache.get(image, options.detector) if cache is not None else None
    if cached is not None:
        return cached
    half = max(image.shape) > _HALF_SIZE_ABOVE
    detector, _, _ = _detector(options.detector, _HALF_SIZE_FEATURES if half else 5000)
    source = cv2.pyrDown(image) if half else image
    points, descriptors = detector.detectAndCompute(_to_uint8(source), None)
    positions = np.float32([p.pt for p in points]).reshape(-1, 2)
    if half:
        positions *= 2.0  # pyrDown: coarse pixel j sits on fine pixel 2j
    detected = (positions, descriptors)
    if cache is not None:
        cache.put(image, options.detector, detected)
    return detected


def _feature_transform(
    target: np.ndarray, moving: np.ndarray, options: AlignOptions, cache: FeatureCache | None = None
) -> tuple[np.ndarray, int, str]:
    """(moving→target matrix, RANSAC inliers, note) from keypoint matches; raises RegistrationFailed."""
    _, norm, note = _detector(options.detector)
    check_cancelled()
    target_points, target_descriptors = _detect(target, options, cache)
    check_cancelled()
    moving_points, moving_descriptors = _detect(moving, options, cache)
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
    source = moving_points[[query for query, _ in good]]
    destination = target_points[[train for _, train in good]]
    # Keypoints found on the half-size level are placed less precisely (ECC refines the fit).
    threshold = 3.0 if max(target.shape) > _HALF_SIZE_ABOVE else 2.0
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
