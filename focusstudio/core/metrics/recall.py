"""Sharpness recall: how much of what was sharp in some frame is sharp in the fused result.

A no-reference measure for N-frame stacks (issue 15): pair metrics such as Q^{AB/F} reward hard
decisions and do not see a region taken from a defocused frame. Definition:

* Every image (result and frames, registered to the result) is turned grey (skimage weights),
  lightly smoothed (Gaussian σ = ``SMOOTHING_SIGMA`` = 1 px, so sensor noise and JPEG blocking
  count less than real detail) and its 4-neighbour Laplacian squared. The *sharpness* ``S`` of a
  B×B block (B = ``BLOCK`` = 32, blocks tiled from the top-left corner; a remainder strip narrower
  than B at the right/bottom is not measured) is the mean of that squared Laplacian.
* ``S_max`` / ``S_min``: the largest / smallest frame sharpness of the block over all frames.
* A block is *textured* when (1) every frame has real pixels in all of it (``valid``), (2)
  ``S_max ≥ TEXTURE_FRACTION · P99`` where P99 is the 99th percentile of ``S_max`` over the
  image's valid blocks (1 % of the stack's strong detail: smooth gradients, bokeh and dark noise
  fall below) and (3) ``S_max ≥ FOCUS_RATIO · S_min`` (2×): focus changes the block's detail, so
  choosing a frame matters there. Blocks that are equally sharp (or equally flat and noisy) in
  every frame say nothing about focus selection and only measure noise; over 30 frames the noise
  energy of a flat block varies by up to ~1.6× from frame to frame, hence 2.
* Block recall ``r = min(1, S_result / S_max)`` (ringing and halos earn nothing above 1).
  ``recall`` = mean of ``r`` over the textured blocks, weighted by ``S_max``. A textured block
  with ``r < LOST_BELOW`` (0.5) is *lost* (a visibly blurred patch); ``lost_fraction`` is the
  share of textured blocks that are lost (unweighted). Both are NaN when no block is textured.

Frames are streamed: only per-block arrays are kept, never two frames at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from focusstudio.core.errors import InputError
from focusstudio.core.types import FusionMap, normalise_array, to_grey

BLOCK = 32
SMOOTHING_SIGMA = 1.0
TEXTURE_FRACTION = 0.01
TEXTURE_PERCENTILE = 99.0
FOCUS_RATIO = 2.0
LOST_BELOW = 0.5
#: Registration (``register=True``) estimates each transform on copies at most this long.
ESTIMATION_SIZE = 1024


@dataclass(frozen=True)
class SharpnessRecall:
    """Sharpness recall of one result; per-block arrays are rows × cols of B×B blocks."""

    recall: float
    lost_fraction: float
    block: int
    shape: tuple[int, int]  # (height, width) of the measured image
    s_result: np.ndarray  # float64: the result's block sharpness
    s_max: np.ndarray  # float64: the sharpest frame's block sharpness
    sharpest: np.ndarray  # int32: which frame is sharpest in each block
    textured: np.ndarray  # bool
    block_recall: np.ndarray  # float64 min(1, S_result/S_max); NaN where not textured
    lost: np.ndarray  # bool: textured and recall < LOST_BELOW

    @property
    def textured_blocks(self) -> int:
        return int(self.textured.sum())

    @property
    def lost_blocks(self) -> int:
        return int(self.lost.sum())

    def lost_map(self) -> np.ndarray:
        """H×W float32: 1 on lost blocks, 0 elsewhere (the unmeasured remainder strip included)."""
        return _expand(self.lost.astype(np.float32), self.block, self.shape)

    def fusion_map(self) -> FusionMap:
        """The ``lost_blocks`` result map, its description carrying the numbers."""
        return FusionMap(
            "lost_blocks",
            "mask",
            self.lost_map(),
            f"{self.block}-px blocks where the result keeps under {LOST_BELOW:.0%} of the sharpest "
            f"frame's detail: sharpness recall {self.recall:.3f}, {self.lost_fraction:.1%} of "
            f"{self.textured_blocks} textured blocks lost",
        )

    def summary(self) -> dict[str, float]:
        return {
            "recall": self.recall,
            "lost_fraction": self.lost_fraction,
            "textured_blocks": float(self.textured_blocks),
            "lost_blocks": float(self.lost_blocks),
        }


def _expand(blocks: np.ndarray, block: int, shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, np.float32)
    rows, cols = blocks.shape
    out[: rows * block, : cols * block] = np.repeat(np.repeat(blocks, block, axis=0), block, axis=1)
    return out


def _grey(image: np.ndarray, label: str) -> np.ndarray:
    try:
        unit = normalise_array(np.asarray(image))
    except ValueError as error:
        raise InputError(f"{label}: {error}") from None
    if not np.all(np.isfinite(unit)):
        raise InputError(f"{label}: image contains NaN or infinite values")
    return to_grey(unit)


def block_sharpness(grey: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """Mean squared Laplacian of the σ = 1 smoothed grey image over each full B×B block (float64)."""
    smooth = cv2.GaussianBlur(grey.astype(np.float32, copy=False), (0, 0), SMOOTHING_SIGMA,
                              borderType=cv2.BORDER_REFLECT)
    laplacian = cv2.Laplacian(smooth, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REFLECT)
    rows, cols = grey.shape[0] // block, grey.shape[1] // block
    energy = np.square(laplacian[: rows * block, : cols * block], dtype=np.float32).astype(np.float64)
    return energy.reshape(rows, block, cols, block).mean(axis=(1, 3))


def _valid_blocks(valid: np.ndarray, block: int, rows: int, cols: int) -> np.ndarray:
    cropped = np.asarray(valid, bool)[: rows * block, : cols * block]
    return cropped.reshape(rows, block, cols, block).all(axis=(1, 3))


def register_frames(
    fused: np.ndarray, frames: Iterable[np.ndarray], options: Any = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Each frame registered onto ``fused`` with the project's aligner: (grey frame, coverage) pairs.

    For results made outside FocusStudio (e.g. enfuse): every frame is registered to the result
    directly (the result is sharp everywhere, so each frame correlates with it), estimated on
    copies of at most ``ESTIMATION_SIZE`` px and warped at full size. ``options``: an
    ``AlignOptions`` or a mapping of alignment settings (default: the aligner's defaults).
    """
    from focusstudio.core.align import AlignOptions, RegistrationFailed, register_pair

    if options is None or not isinstance(options, AlignOptions):
        options = AlignOptions.from_params(options)
    target = _grey(fused, "fused image")
    height, width = target.shape
    factor = min(1.0, ESTIMATION_SIZE / max(height, width))
    small_size = (max(round(width * factor), 1), max(round(height * factor), 1))
    target_small = cv2.resize(target, small_size, interpolation=cv2.INTER_AREA) if factor < 1 else target
    for index, frame in enumerate(frames):
        grey = _grey(frame, f"frame {index + 1}")
        moving_small = grey
        if factor < 1:
            moving_size = (max(round(grey.shape[1] * factor), 1), max(round(grey.shape[0] * factor), 1))
            moving_small = cv2.resize(grey, moving_size, interpolation=cv2.INTER_AREA)
        try:
            pair = register_pair(target_small, moving_small, options)
        except RegistrationFailed as error:
            raise InputError(f"frame {index + 1} cannot be registered to the result: {error}") from None
        # Small-scale frame→result matrix, conjugated back to full-resolution pixel coordinates.
        to_small = _scale_matrix(grey.shape, moving_small.shape)
        from_small = np.linalg.inv(_scale_matrix(target.shape, target_small.shape))
        matrix = from_small @ pair.matrix @ to_small
        warped = _warp_to(grey, matrix, (width, height), cv2.INTER_CUBIC)
        coverage = _warp_to(np.ones_like(grey), matrix, (width, height), cv2.INTER_LINEAR) > 0.999
        yield np.clip(warped, 0.0, 1.0), coverage


def _scale_matrix(source: tuple[int, ...], target: tuple[int, ...]) -> np.ndarray:
    """Pixel-centre mapping of a resize from ``source`` (h, w) to ``target`` (h, w), as cv2.resize does."""
    sy, sx = target[0] / source[0], target[1] / source[1]
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def _warp_to(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int], flags: int) -> np.ndarray:
    if np.allclose(matrix[2], (0.0, 0.0, 1.0), atol=1e-12):
        return cv2.warpAffine(image, matrix[:2], size, flags=flags, borderMode=cv2.BORDER_CONSTANT)
    return cv2.warpPerspective(image, matrix, size, flags=flags, borderMode=cv2.BORDER_CONSTANT)


def sharpness_recall(
    fused: np.ndarray,
    frames: Iterable[np.ndarray],
    *,
    block: int = BLOCK,
    valid: np.ndarray | None = None,
    register: bool = False,
    align_options: Any = None,
) -> SharpnessRecall:
    """Sharpness recall of ``fused`` against ``frames`` (see the module docstring).

    ``frames``: any iterable of images (a generator keeps one frame in memory at a time) in the
    core's formats (float [0, 1], uint8, uint16; grey or RGB), the same size as ``fused`` and
    registered to it, unless ``register`` (then each is registered with the project's aligner,
    ``align_options``, and only blocks every frame covers are measured). ``valid``: H×W bool,
    where every frame has real pixels (blocks touching an invalid pixel are not measured).
    """
    if block < 4:
        raise InputError(f"sharpness recall: block size must be at least 4 px, got {block}")
    result_grey = _grey(fused, "fused image")
    height, width = result_grey.shape
    rows, cols = height // block, width // block
    s_result = block_sharpness(result_grey, block)
    del result_grey
    s_max = np.full((rows, cols), -np.inf)
    s_min = np.full((rows, cols), np.inf)
    sharpest = np.zeros((rows, cols), np.int32)
    if valid is not None and np.asarray(valid).shape[:2] != (height, width):
        raise InputError(f"sharpness recall: validity mask is {np.asarray(valid).shape[:2]}, image {(height, width)}")
    covered = np.ones((rows, cols), bool) if valid is None else _valid_blocks(valid, block, rows, cols)
    pairs: Iterable[tuple[np.ndarray, np.ndarray | None]]
    if register:
        pairs = register_frames(fused, frames, align_options)
    else:
        pairs = ((frame, None) for frame in frames)
    count = 0
    for index, (frame, coverage) in enumerate(pairs):
        grey = frame if register else _grey(frame, f"frame {index + 1}")
        if grey.shape != (height, width):
            raise InputError(
                f"frame {index + 1} is {grey.shape[1]}×{grey.shape[0]} but the fused image is {width}×{height}"
                " (register the frames to the result)"
            )
        if coverage is not None:
            covered &= _valid_blocks(coverage, block, rows, cols)
        sharpness = block_sharpness(grey, block)
        del grey, frame
        better = sharpness > s_max
        sharpest[better] = index
        np.maximum(s_max, sharpness, out=s_max)
        np.minimum(s_min, sharpness, out=s_min)
        count += 1
    if count == 0:
        raise InputError("sharpness recall needs at least one source frame")
    textured = covered.copy()
    if textured.any():
        strong = float(np.percentile(s_max[covered], TEXTURE_PERCENTILE))
        textured &= (s_max >= TEXTURE_FRACTION * strong) & (s_max > 0.0) & (s_max >= FOCUS_RATIO * s_min)
    block_recall = np.full((rows, cols), np.nan)
    ratio = np.minimum(1.0, s_result[textured] / s_max[textured])
    block_recall[textured] = ratio
    lost = textured & (np.nan_to_num(block_recall, nan=1.0) < LOST_BELOW)
    if ratio.size:
        recall = float(np.sum(ratio * s_max[textured]) / np.sum(s_max[textured]))
        lost_fraction = float(lost.sum() / ratio.size)
    else:
        recall = lost_fraction = math.nan
    return SharpnessRecall(
        recall, lost_fraction, block, (height, width), s_result, np.maximum(s_max, 0.0), sharpest,
        textured, block_recall, lost,
    )


def stack_sharpness_recall(fused: np.ndarray, stack: Any, block: int = BLOCK) -> SharpnessRecall:
    """Recall of ``fused`` against a (possibly aligned) :class:`~focusstudio.core.types.Stack`,
    decoding one frame at a time; the stack's validity mask limits the measured blocks."""
    frames = (stack.load(i, grey=True) for i in range(len(stack)))
    return sharpness_recall(fused, frames, block=block, valid=stack.valid_mask)
