"""Refinements of the deep methods' neighbour-pair selection (``neighbours``, issue 15): the
classical focus activity decides again between each pixel's chosen frame and its neighbouring
frames, and the pixels next to a change of frame are decided again per pixel (sf's boundary
refinement, :func:`~focusstudio.core.methods.sf_boundaries.refine_boundaries`).

Both run after :func:`~focusstudio.core.methods.strategies.run_neighbour_decisions` has summed
the network's evidence, together in one grey load of every frame (:func:`refine_neighbours`);
memory does not depend on N.
"""

from __future__ import annotations

from functools import partial

import cv2
import numpy as np

from focusstudio.core.methods._classical import load_checked
from focusstudio.core.methods.sf_boundaries import refine_boundaries
from focusstudio.core.methods.sf_pair import band_pool, run_bands
from focusstudio.core.methods.strategies import (
    ACTIVITY_BAND_ROWS,
    ACTIVITY_HALO,
    NEIGHBOUR_ACTIVITY_SIGMA,
    activity_bands,
    focus_activity,
)
from focusstudio.core.progress import CancelToken
from focusstudio.core.types import Stack

__all__ = [
    "NEIGHBOUR_BOUNDARY_MARGIN",
    "NEIGHBOUR_BOUNDARY_RADIUS",
    "NEIGHBOUR_REFINE_FRAMES",
    "NEIGHBOUR_REFINE_MARGIN",
    "AdjacentRefinement",
    "PixelCandidate",
    "pixel_activity",
    "refine_adjacent",
    "refine_neighbour_boundaries",
    "refine_neighbours",
]


#: Frames either side of the summed evidence's choice among which the classical activity decides
#: again (:class:`AdjacentRefinement`); 0 switches it off.
NEIGHBOUR_REFINE_FRAMES = 1
#: An adjacent frame replaces the evidence's choice only where its :func:`focus_activity` is at
#: least this many times the chosen frame's. Measured (benchmarks/README.md, session 9): 1.0
#: takes adjacent frames whose energy differs by noise and cost up to 0.1 dB on the synthetic
#: stacks at N = 16–30; 1.15 and 1.25 within ±0.01 dB there; on the beetle (mfifgan) 1.15 gives
#: recall 0.995, 1.25 0.987.
NEIGHBOUR_REFINE_MARGIN = 1.15


class AdjacentRefinement:
    """Re-decides an N-frame index map among the frames within ``width`` of each pixel's label by
    a classical focus activity, one frame at a time (every frame, in any order).

    Where a stack's focus steps are fine, neighbouring frames are nearly equally sharp and the
    networks' pair answers between them are noise or biased (the 28-frame beetle: frames of a
    flickering exposure, gains 0.84–1.22, and the networks' choice off by one frame over much of
    the image). The summed evidence places each pixel in the right part of the stack (it ignores
    a far frame's ringing or noise, which a global arg-max of the activity would take); the
    activity then chooses among that choice and its neighbours, where it beats the chosen frame
    by ``margin`` and focus changes the pixel's activity at all (highest ≥ :data:`TEXTURED_RATIO`
    × lowest over the stack: in flat or noisy areas the frames' activities differ by noise, and
    the network decides). Holds six H×W arrays whatever N is.
    """

    def __init__(self, index: np.ndarray, width: int = NEIGHBOUR_REFINE_FRAMES,
                 margin: float = NEIGHBOUR_REFINE_MARGIN) -> None:
        self.index = index
        self.width = width
        self.margin = np.float32(margin)
        self.best = np.full(index.shape, -1.0, dtype=np.float32)
        self.pick = index.copy()
        self.chosen = np.zeros(index.shape, dtype=np.float32)
        self.low: np.ndarray | None = None
        self.high: np.ndarray | None = None

    def add(self, frame: int, activity: np.ndarray) -> np.ndarray:
        """Frame ``frame``'s :func:`focus_activity`; returns where the pick is now this frame."""
        if self.low is None or self.high is None:
            self.low, self.high = activity.copy(), activity.copy()
        else:
            np.minimum(self.low, activity, out=self.low)
            np.maximum(self.high, activity, out=self.high)
        distance = np.abs(self.index - frame)
        np.copyto(self.chosen, activity, where=distance == 0)
        wins = (distance <= self.width) & (activity > self.best)
        self.pick[wins] = frame
        np.copyto(self.best, activity, where=wins)
        return wins

    def result(self) -> np.ndarray:
        """The refined index (a new array; the input index is left as it was)."""
        if self.low is None or self.high is None:
            return self.index.copy()
        take = (self.best > self.margin * self.chosen) & (self.high >= TEXTURED_RATIO * self.low)
        return np.where(take, self.pick, self.index).astype(np.int32)


#: A pixel's activity changes with focus where its highest over the stack is at least this many
#: times its lowest (the sharpness-recall metric's own test of a textured block).
TEXTURED_RATIO = 2.0


def refine_adjacent(stack: Stack, index: np.ndarray, cancel: CancelToken,
                    width: int = NEIGHBOUR_REFINE_FRAMES, margin: float = NEIGHBOUR_REFINE_MARGIN) -> np.ndarray:
    """:class:`AdjacentRefinement` of ``index`` over the stack's frames (one grey load each)."""
    if width <= 0:
        return index
    refinement = AdjacentRefinement(index, width, margin)
    for frame in range(len(stack)):
        cancel.raise_if_cancelled()
        refinement.add(frame, focus_activity(load_checked(stack, frame, grey=True), NEIGHBOUR_ACTIVITY_SIGMA))
    return refinement.result()


#: Pixels within this distance (px) of a change of frame in the neighbour selection are decided
#: again by the per-pixel activity (:func:`refine_neighbour_boundaries`); 0 switches it off.
NEIGHBOUR_BOUNDARY_RADIUS = 4
#: ... where the best frame's per-pixel activity is at least this many times the chosen frame's.
#: Measured on the synthetic stacks at N = 8 (twostream, 3 scenes, benchmarks/README.md session 9):
#: +0.35 dB with 1.5, +0.33 with 2, +0.29 with 4.
NEIGHBOUR_BOUNDARY_MARGIN = 1.5


def pixel_activity(grey: np.ndarray) -> np.ndarray:
    """The squared Laplacian of the σ = 1 smoothed grey image, per pixel (no window)."""
    smooth = cv2.GaussianBlur(grey, (0, 0), 1.0, borderType=cv2.BORDER_REFLECT)
    laplacian = cv2.Laplacian(smooth, cv2.CV_32F, borderType=cv2.BORDER_REFLECT)
    return np.multiply(laplacian, laplacian, out=laplacian)


class PixelCandidate:
    """The per-pixel arg-max of :func:`pixel_activity` over the frames, where it is at least
    ``margin`` times the activity of the frame ``index`` holds there, else −1 (the candidate of
    :func:`~focusstudio.core.methods.sf_boundaries.refine_boundaries`). Frames one at a time;
    ties keep the earlier frame. Holds three H×W arrays."""

    def __init__(self, index: np.ndarray, margin: float = NEIGHBOUR_BOUNDARY_MARGIN) -> None:
        self.index = index
        self.margin = np.float32(margin)
        self.best = np.full(index.shape, -1.0, dtype=np.float32)
        self.pick = np.zeros(index.shape, dtype=np.int32)
        self.of_main = np.zeros(index.shape, dtype=np.float32)

    def add(self, frame: int, activity: np.ndarray) -> None:
        np.copyto(self.of_main, activity, where=self.index == frame)
        wins = activity > self.best
        self.pick[wins] = frame
        np.copyto(self.best, activity, where=wins)

    def candidate(self) -> np.ndarray:
        out = self.pick
        out[self.best < self.margin * self.of_main] = -1
        return out


def refine_neighbour_boundaries(stack: Stack, index: np.ndarray, cancel: CancelToken,
                                radius: int = NEIGHBOUR_BOUNDARY_RADIUS,
                                margin: float = NEIGHBOUR_BOUNDARY_MARGIN) -> np.ndarray:
    """``index``, in place: the pixels within ``radius`` of a change of frame decided again by the
    per-pixel activity among the frames present around them (sf's boundary refinement,
    :func:`~focusstudio.core.methods.sf_boundaries.refine_boundaries`, with
    :class:`PixelCandidate`; one grey load per frame).

    Why: the evidence is smoothed (σ = 4 px) and the activity averaged over σ = 4 px, so a sharp
    foreground's frame spreads a few pixels past its outline over a background that is blurred
    in it (the synthetic stacks' halo band); the per-pixel activity decides those pixels again.
    """
    if radius <= 0:
        return index
    candidate = PixelCandidate(index, margin)
    for frame in range(len(stack)):
        cancel.raise_if_cancelled()
        candidate.add(frame, pixel_activity(load_checked(stack, frame, grey=True)))
    fine = candidate.candidate()
    del candidate
    return refine_boundaries(index, fine, radius)


def refine_neighbours(stack: Stack, index: np.ndarray, cancel: CancelToken,
                      width: int = NEIGHBOUR_REFINE_FRAMES, margin: float = NEIGHBOUR_REFINE_MARGIN,
                      radius: int = NEIGHBOUR_BOUNDARY_RADIUS,
                      boundary_margin: float = NEIGHBOUR_BOUNDARY_MARGIN, band_rows: int | None = None,
                      threads: int | None = None) -> np.ndarray:
    """``refine_neighbour_boundaries(refine_adjacent(index))``, exactly, in ONE grey load and one
    :func:`pixel_activity` per frame instead of two of each (at 24 MP a grey JPEG decode and the
    σ = 1 blur + Laplacian cost about as much as the rest of a refinement pass).

    Why it is the same: :func:`focus_activity` of a grey frame is the σ = 4 Gaussian of its
    :func:`pixel_activity` (the same operations in the same order, so bit for bit); the boundary
    step's arg-max over the frames does not depend on the index; only its "activity of the chosen
    frame" does, and the adjacent step chooses either the evidence's frame or its current pick,
    so the pixel activity of both is kept while the pick changes and the one chosen is taken
    afterwards. Holds nine H×W arrays besides the index (the two separate passes: five, then
    three) whatever N is.

    In row bands of ``band_rows`` (strategies' :data:`ACTIVITY_BAND_ROWS`) on ``threads`` threads
    (the CPUs, at most sf's :data:`~focusstudio.core.methods.sf_pair.MAX_THREADS`): the
    activities' NumPy work runs on one core otherwise. Each band's activities are computed with
    :data:`ACTIVITY_HALO` rows around it, so they equal the whole frame's bit for bit.
    """
    band_rows = ACTIVITY_BAND_ROWS if band_rows is None else band_rows
    if radius <= 0:
        return refine_adjacent(stack, index, cancel, width, margin)
    height = index.shape[0]
    bands = [_BandRefinement(index, rows, width, margin, boundary_margin)
             for rows in activity_bands(height, band_rows)]
    with band_pool(threads) as pool:
        for frame in range(len(stack)):
            cancel.raise_if_cancelled()
            grey = load_checked(stack, frame, grey=True)
            run_bands(partial(_BandRefinement.add, frame=frame, grey=grey), bands, pool)
            del grey
    refined = np.empty_like(index, dtype=np.int32)
    fine = np.empty_like(index, dtype=np.int32)
    for band in bands:
        band.result(refined, fine)
    del bands
    return refine_boundaries(refined, fine, radius)


class _BandRefinement:
    """:func:`refine_neighbours`' state for rows ``rows`` of the index (its own arrays, so two
    threads never write the same memory)."""

    def __init__(self, index: np.ndarray, rows: tuple[int, int], width: int, margin: float,
                 boundary_margin: float) -> None:
        self.rows = rows
        self.index = index[rows[0]:rows[1]]
        self.adjacent = AdjacentRefinement(self.index, width, margin) if width > 0 else None
        # its of_main: the pixel activity of the evidence's frame
        self.candidate = PixelCandidate(self.index, boundary_margin)
        self.of_pick = np.zeros(self.index.shape, dtype=np.float32) if self.adjacent is not None else None

    def add(self, frame: int, grey: np.ndarray) -> None:
        start, stop = self.rows
        low, high = max(start - ACTIVITY_HALO, 0), min(stop + ACTIVITY_HALO, grey.shape[0])
        pixel = pixel_activity(grey[low:high])
        inner = slice(start - low, stop - low)
        if self.adjacent is not None and self.of_pick is not None:
            activity = cv2.GaussianBlur(pixel, (0, 0), NEIGHBOUR_ACTIVITY_SIGMA, borderType=cv2.BORDER_REFLECT)
            # where the adjacent step's pick is now this frame, keep this frame's pixel activity
            np.copyto(self.of_pick, pixel[inner], where=self.adjacent.add(frame, activity[inner]))
            del activity
        self.candidate.add(frame, pixel[inner])

    def result(self, refined: np.ndarray, fine: np.ndarray) -> None:
        """Write the band's rows of the refined index and of the boundary step's candidate."""
        start, stop = self.rows
        if self.adjacent is None or self.of_pick is None:
            refined[start:stop] = self.index
        else:
            refined[start:stop] = self.adjacent.result()
            # the boundary step's "activity of the chosen frame": of the pick where the adjacent
            # step took it, of the evidence's frame elsewhere (which PixelCandidate has kept)
            np.copyto(self.candidate.of_main, self.of_pick, where=refined[start:stop] != self.index)
        fine[start:stop] = self.candidate.candidate()
