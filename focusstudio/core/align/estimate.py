"""Registration of a whole stack: every frame chained (or registered directly) onto the reference,
failures handled by policy, optional photometric fit, and the common crop box."""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np

from focusstudio.core.align.cache import DigestMemo, RegistrationCache
from focusstudio.core.align.features import FeatureCache
from focusstudio.core.align.geometry import _constrain, _scale_matrix, _warp, covered_columns, largest_rectangle
from focusstudio.core.align.pair import register_pair
from focusstudio.core.align.params import AlignOptions
from focusstudio.core.align.results import Alignment, FrameAlignment
from focusstudio.core.align.schedule import PairSchedule, worker_count
from focusstudio.core.align.verify import RegistrationFailed, implausibility
from focusstudio.core.errors import InputError
from focusstudio.core.progress import CancelToken, ProgressGen, ProgressRange, cancel_scope
from focusstudio.core.types import Stack


def _photometric_fit(
    reference: np.ndarray, moving: np.ndarray, moving_to_reference: np.ndarray
) -> tuple[float, float]:
    """(gain, offset) with reference ≈ gain · moving + offset on the overlap.

    Both images are low-passed first so that their different focus (a blurred frame has less
    contrast in detail) does not bias the gain: only the large-scale exposure is compared.
    """
    height, width = reference.shape
    flags = cv2.INTER_LINEAR
    warped = _warp(moving, moving_to_reference, (width, height), flags, cv2.BORDER_CONSTANT)
    coverage = _warp(np.ones_like(moving), moving_to_reference, (width, height), flags, cv2.BORDER_CONSTANT)
    sigma = max(2.0, 0.02 * max(height, width))
    blurred_reference = cv2.GaussianBlur(reference, (0, 0), sigma)
    blurred_moving = cv2.GaussianBlur(warped, (0, 0), sigma)
    # Stay 2σ inside the overlap so that the blur never mixes in the zero border.
    eroded = cv2.erode((coverage > 0.999).astype(np.uint8), np.ones((3, 3), np.uint8), iterations=int(2 * sigma))
    valid = eroded.astype(bool)
    if valid.sum() < 100:
        return 1.0, 0.0
    x = blurred_moving[valid].astype(np.float64)
    y = blurred_reference[valid].astype(np.float64)
    if x.std() < 1e-4:
        gain = float(y.mean() / x.mean()) if x.mean() > 1e-6 else 1.0
        return float(np.clip(gain, 0.5, 2.0)), 0.0
    gain, offset = np.polyfit(x, y, 1)
    return float(np.clip(gain, 0.5, 2.0)), float(np.clip(offset, -0.5, 0.5))



def estimate_alignment(
    stack: Stack,
    options: AlignOptions | None = None,
    cancel: CancelToken | None = None,
    progress: ProgressRange | None = None,
    cache: RegistrationCache | None = None,
) -> ProgressGen[Alignment]:
    """Register every frame of ``stack`` onto the reference frame (generator returning an Alignment).

    ``cache``: pair registrations made before (:mod:`focusstudio.core.align.cache`): a pair whose
    frames and settings are unchanged is taken from it instead of being registered again, with
    the same result.
    """
    options = options or AlignOptions()
    cancel = cancel or CancelToken()
    progress = progress or ProgressRange()
    started = time.perf_counter()
    count = len(stack)
    if count == 0:
        raise InputError("cannot align an empty stack")
    reference = options.reference_index(count)
    height, width = stack.shape
    longer = max(height, width)
    factor = 1.0 if options.estimation_size == 0 else min(1.0, options.estimation_size / longer)
    small_shape = (max(8, round(height * factor)), max(8, round(width * factor)))
    to_small = _scale_matrix((height, width), small_shape)
    from_small = np.linalg.inv(to_small)

    def small_grey(index: int) -> np.ndarray:
        image = stack.load(index, grey=True)
        if image.shape != (height, width):
            raise InputError(
                f"frame {index + 1} is {image.shape[1]}×{image.shape[0]}, the reference stack is {width}×{height}",
                stack.frames[index].path or stack.frames[index].name,
            )
        if small_shape == (height, width):
            return np.ascontiguousarray(image, dtype=np.float32)
        return cv2.resize(image, (small_shape[1], small_shape[0]), interpolation=cv2.INTER_AREA)

    yield progress.event("align", 0.0, f"aligning {count} frames to frame {reference + 1}")
    cancel.raise_if_cancelled()
    reference_small = small_grey(reference)
    small_matrices: dict[int, np.ndarray] = {reference: np.eye(3)}
    records: dict[int, dict[str, Any]] = {
        reference: {"status": "reference", "method": "reference", "messages": [], "correlation": None,
                    "inliers": None}
    }
    photometric: dict[int, tuple[float, float]] = {}
    done = 1
    notes: list[str] = []
    features = FeatureCache()  # each frame's keypoints serve both pairs it belongs to
    digests = DigestMemo()  # and each frame is hashed once for the cache
    # Away from the reference: first the frames after it, then those before it.
    sequence = [*range(reference + 1, count), *range(reference - 1, -1, -1)]

    def towards_reference(index: int) -> int:
        return index - 1 if index > reference else index + 1

    def register(target: np.ndarray, moving: np.ndarray, guess: np.ndarray | None = None) -> Any:
        if cache is None:
            return register_pair(target, moving, options, guess, features)
        return cache.register(target, moving, options, guess,
                              lambda: register_pair(target, moving, options, guess, features), digests)

    schedule = PairSchedule(
        sequence, towards_reference if options.chain else None, small_grey, register, cancel,
        worker_count(small_shape[0] * small_shape[1], count), (reference, reference_small),
    )
    try:
        for index in sequence:
            if index == reference - 1 or index == reference + 1:  # a new direction starts at the reference
                anchor_index, anchor_image, anchor_matrix = reference, reference_small, np.eye(3)
            cancel.raise_if_cancelled()
            schedule.advance(index)
            moving = schedule.image(index)
            cancel.raise_if_cancelled()  # decoding a frame can take as long as registering it
            name = stack.frames[index].name
            try:
                if options.chain:
                    target_matrix = anchor_matrix
                    pair = schedule.chained(index, anchor_index, anchor_image, moving)
                else:
                    # Direct registration to the reference, started from the last accepted transform
                    # (focus breathing changes smoothly, so it is a good first guess).
                    target_matrix = np.eye(3)
                    with cancel_scope(cancel):  # register_pair checks between its OpenCV calls
                        pair = register(reference_small, moving, anchor_matrix)
                total = target_matrix @ pair.matrix
                problem = implausibility(total, small_shape[1], small_shape[0], options)
                if problem is not None:
                    raise RegistrationFailed(f"relative to the reference: {problem}")
            except RegistrationFailed as error:
                target_label = f"frame {anchor_index + 1}" if options.chain else f"reference frame {reference + 1}"
                if options.on_failure == "exclude":
                    status, action = "excluded", "excluded from the fusion"
                else:
                    status, action = "fallback", f"using the transform of frame {anchor_index + 1}"
                message = f"frame {index + 1} ({name}) could not be registered to {target_label}: {error}; {action}"
                notes.append(message)
                small_matrices[index] = anchor_matrix.copy()
                records[index] = {"status": status, "method": "none", "messages": [message],
                                  "correlation": None, "inliers": None}
            else:
                small_matrices[index] = total
                records[index] = {"status": "ok", "method": pair.method, "messages": pair.messages,
                                  "correlation": pair.correlation, "inliers": pair.inliers}
                anchor_index, anchor_image, anchor_matrix = index, moving, total
            if options.photometric and records[index]["status"] != "excluded":
                cancel.raise_if_cancelled()
                photometric[index] = _photometric_fit(reference_small, moving, small_matrices[index])
            done += 1
            record = records[index]
            detail = record["method"] if record["status"] == "ok" else record["status"]
            yield progress.event("align", done / count, f"frame {index + 1}/{count}: {detail}")
    finally:
        schedule.close()
    frames = []
    for index in range(count):
        record = records[index]
        matrix = from_small @ small_matrices[index] @ to_small if index != reference else np.eye(3)
        matrix = _constrain(matrix, options.model)
        gain, offset = photometric.get(index, (1.0, 0.0))
        frames.append(
            FrameAlignment(
                index=index,
                name=stack.frames[index].name,
                matrix=matrix,
                status=record["status"],
                method=record["method"],
                messages=tuple(record["messages"]),
                correlation=record["correlation"],
                inliers=record["inliers"],
                gain=gain,
                offset=offset,
            )
        )
    included = [f.matrix for f in frames if f.status != "excluded"]
    left, right = covered_columns(included, height, width)
    crop_box = largest_rectangle(left, right)
    if crop_box is None:
        notes.append("the aligned frames share no common area")
    alignment = Alignment(
        frames=tuple(frames),
        reference=reference,
        model=options.model,
        shape=(height, width),
        crop_box=crop_box,
        options=options.to_params(),
        seconds=time.perf_counter() - started,
        notes=tuple(notes),
    )
    yield progress.event("align", 1.0, f"aligned {count} frames in {alignment.seconds:.1f} s")
    return alignment
