"""How well two frames of a stack overlap, as loaded and as aligned: the numbers beside a flicker.

A flicker between two frames (the window's Alignment tab) shows a misregistration as motion; these
numbers say the same thing for a stack the user does not look at: the normalised correlation and
the mean absolute difference of the two frames, grey and low-passed (a focus stack's frames differ
in sharpness, which a low-pass mostly removes, not in position), on the area both frames cover.
Correlation near 1 and a small difference after alignment, lower and larger before, mean the
registration removed the motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from focusstudio.core.align import Alignment
from focusstudio.core.types import Stack, to_grey

#: The low-pass (Gaussian σ in pixels) applied before comparing: removes the focus differences
#: (as the alignment benchmark's neighbour correlation does).
LOW_PASS_SIGMA = 2.0
#: Frames are compared at most this many pixels on their longer side (the numbers barely change,
#: a 24 MP pair costs a fraction of the time).
CHECK_EDGE = 1024


@dataclass(frozen=True)
class Overlap:
    """Two frames compared on their common area."""

    correlation: float  # normalised cross-correlation, 1 = identical up to brightness and contrast
    mean_difference: float  # mean |a − b| of the low-passed grey frames, in [0, 1] units
    pixels: int  # compared pixels (at the check's resolution)


@dataclass(frozen=True)
class PairCheck:
    """Frames ``first`` and ``second`` (0-based stack indices) before and after alignment."""

    first: int
    second: int
    loaded: Overlap
    aligned: Overlap

    def describe(self) -> str:
        """One line, frames numbered from 1 as the window's list and the command line do."""
        return (f"frames {self.first + 1} and {self.second + 1}: correlation {self.loaded.correlation:.4f} as loaded, "
                f"{self.aligned.correlation:.4f} aligned; mean difference {self.loaded.mean_difference:.4f} → "
                f"{self.aligned.mean_difference:.4f}")


def _prepared(image: np.ndarray, scale: float) -> np.ndarray:
    grey = to_grey(image).astype(np.float32, copy=False)
    if scale < 1.0:
        size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(grey, (0, 0), LOW_PASS_SIGMA * max(scale, 0.25))


def overlap(first: np.ndarray, second: np.ndarray, mask: np.ndarray | None = None) -> Overlap:
    """How ``first`` and ``second`` (same size, grey or colour, [0, 1]) agree where ``mask`` (H×W
    bool, None = everywhere) is set."""
    if first.shape[:2] != second.shape[:2]:
        raise ValueError(f"frames of different sizes: {first.shape[:2]} and {second.shape[:2]}")
    scale = min(1.0, CHECK_EDGE / max(first.shape[:2]))
    a, b = _prepared(first, scale), _prepared(second, scale)
    keep = np.ones(a.shape, bool)
    if mask is not None:
        keep = cv2.resize(mask.astype(np.uint8), (a.shape[1], a.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
    if not keep.any():
        return Overlap(float("nan"), float("nan"), 0)
    x, y = a[keep].astype(np.float64), b[keep].astype(np.float64)
    x_centred, y_centred = x - x.mean(), y - y.mean()
    denominator = float(np.sqrt((x_centred**2).sum() * (y_centred**2).sum()))
    correlation = float((x_centred * y_centred).sum() / denominator) if denominator > 0 else 1.0
    return Overlap(correlation, float(np.abs(x - y).mean()), int(keep.sum()))


def most_moved(alignment: Alignment) -> int | None:
    """The registered frame (stack index) whose transform moves its corners farthest: the one a
    flicker against the reference shows most about (None: no other frame registered)."""
    height, width = alignment.shape
    corners = np.array([[0.0, 0.0, 1.0], [width - 1.0, 0.0, 1.0], [width - 1.0, height - 1.0, 1.0],
                        [0.0, height - 1.0, 1.0]]).T
    included = set(alignment.included)

    def movement(matrix: np.ndarray) -> float:
        moved = matrix @ corners
        moved = moved[:2] / moved[2]
        return float(np.max(np.hypot(moved[0] - corners[0], moved[1] - corners[1])))

    others = [frame for frame in alignment.frames if frame.index in included and frame.index != alignment.reference]
    if not others:
        return None
    return max(others, key=lambda frame: (movement(frame.matrix), frame.index)).index


def check_pair(loaded: Stack, aligned: Stack, first: tuple[int, int], second: tuple[int, int]) -> PairCheck:
    """Compare two frames as loaded and as aligned: ``first`` and ``second`` are (index in
    ``loaded``, position in ``aligned``). The aligned pair is compared where both frames have real
    pixels (the aligned stack's coverage; everywhere when it is cropped)."""
    as_loaded = overlap(loaded.load(first[0]), loaded.load(second[0]))
    mask: np.ndarray | None = None
    coverages = [aligned.coverage(first[1]), aligned.coverage(second[1])]
    if all(coverage is not None for coverage in coverages):
        mask = coverages[0] & coverages[1]  # type: ignore[operator]
    elif aligned.valid_mask is not None:
        mask = aligned.valid_mask
    as_aligned = overlap(aligned.load(first[1]), aligned.load(second[1]), mask)
    return PairCheck(first[0], second[0], as_loaded, as_aligned)
