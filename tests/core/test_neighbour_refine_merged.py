"""The deep methods' neighbour refinements in one pass over the frames (``refine_neighbours``)
select exactly as the two separate passes (``refine_adjacent``, then
``refine_neighbour_boundaries``) and load each frame once."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from focusstudio.core.methods.neighbour_refine import (
    refine_adjacent,
    refine_neighbour_boundaries,
    refine_neighbours,
)
from focusstudio.core.progress import CancelToken
from focusstudio.core.types import Stack

SIZE = 64
COUNT = 7


def _depth_edge_stack() -> list[np.ndarray]:
    """A textured scene whose left half is in focus at frame 1 and right half at frame 5, with a
    flickering exposure (gains 0.84–1.22, as the beetle's) so that neighbouring frames' activities
    cross each other, and a little noise."""
    rng = np.random.default_rng(11)
    texture = rng.random((SIZE, SIZE), dtype=np.float32)
    left = np.arange(SIZE)[None, :] < SIZE // 2
    gains = (1.0, 0.84, 1.22, 0.9, 1.1, 0.95, 1.2)
    frames = []
    for k in range(COUNT):
        sigma_left, sigma_right = 0.3 + 0.8 * abs(k - 1), 0.3 + 0.8 * abs(k - 5)
        left_img = cv2.GaussianBlur(texture, (0, 0), sigma_left)
        right_img = cv2.GaussianBlur(texture, (0, 0), sigma_right)
        frame = gains[k] * np.where(left, left_img, right_img) + 0.01 * rng.random((SIZE, SIZE))
        frames.append(np.clip(frame, 0.0, 1.0).astype(np.float32))
    return frames


def _noisy_index() -> np.ndarray:
    """An evidence-like selection: the right frames off by −1..+1 in 8-px blocks, its edge 3 px
    too far right, so both refinements have work to do."""
    rng = np.random.default_rng(3)
    truth = np.where(np.arange(SIZE)[None, :] < SIZE // 2 + 3, 1, 5).repeat(SIZE, axis=0)
    offsets = rng.integers(-1, 2, (SIZE // 8, SIZE // 8)).repeat(8, axis=0).repeat(8, axis=1)
    return np.clip(truth + offsets, 0, COUNT - 1).astype(np.int32)


@pytest.mark.parametrize(("width", "radius", "band_rows", "threads"),
                         [(1, 4, 512, 1), (2, 4, 512, 1), (1, 8, 512, 1), (0, 4, 512, 1), (1, 0, 512, 1),
                          (1, 4, 16, 2), (2, 4, 7, 2), (0, 4, 20, 1)])
def test_one_pass_selects_exactly_as_the_two_passes(width: int, radius: int, band_rows: int, threads: int) -> None:
    """Whole frames and row bands (narrower than the activities' halo, on two threads) alike."""
    frames, index = _depth_edge_stack(), _noisy_index()
    stack = Stack.from_arrays(frames)
    separate = refine_neighbour_boundaries(stack, refine_adjacent(stack, index.copy(), CancelToken(), width),
                                           CancelToken(), radius) if radius > 0 else \
        refine_adjacent(stack, index.copy(), CancelToken(), width)
    merged = refine_neighbours(stack, index.copy(), CancelToken(), width=width, radius=radius,
                               band_rows=band_rows, threads=threads)
    np.testing.assert_array_equal(merged, separate)
    if width > 0:
        adjacent = refine_adjacent(stack, index.copy(), CancelToken(), width)
        assert (adjacent != index).mean() > 0.05  # the adjacent step changed a part of the map
        if radius > 0:
            assert (separate != adjacent).any()  # and the boundary step more of it


def test_one_pass_loads_each_frame_once() -> None:
    frames = _depth_edge_stack()
    base = Stack.from_arrays(frames)
    loads: list[int] = []

    def loader(info):  # type: ignore[no-untyped-def]
        loads.append(base.frames.index(info))
        return base.load(base.frames.index(info))

    refine_neighbours(Stack(base.frames, loader), _noisy_index(), CancelToken())
    assert loads == list(range(COUNT))


def test_a_band_with_its_halo_has_the_whole_frames_activities() -> None:
    """The rows a band reads past its edges (``ACTIVITY_HALO``) are enough for the σ = 1 blur, the
    Laplacian and the σ = 4 blur: its activities equal the whole frame's, bit for bit (the same
    cv2 kernels on the same rows); with fewer rows they differ near the cut."""
    from focusstudio.core.methods.neighbour_refine import pixel_activity
    from focusstudio.core.methods.strategies import ACTIVITY_HALO, NEIGHBOUR_ACTIVITY_SIGMA, focus_activity

    grey = np.random.default_rng(2).random((160, 40), dtype=np.float32)
    start, stop = 60, 80

    def band_activity(halo: int) -> tuple[np.ndarray, np.ndarray]:
        pixel = pixel_activity(grey[start - halo:stop + halo])
        blurred = cv2.GaussianBlur(pixel, (0, 0), NEIGHBOUR_ACTIVITY_SIGMA, borderType=cv2.BORDER_REFLECT)
        return pixel[halo:halo + stop - start], blurred[halo:halo + stop - start]

    pixel, activity = band_activity(ACTIVITY_HALO)
    np.testing.assert_array_equal(pixel, pixel_activity(grey)[start:stop])
    np.testing.assert_array_equal(activity, focus_activity(grey)[start:stop])
    assert not np.array_equal(band_activity(ACTIVITY_HALO - 8)[1], activity)


@pytest.mark.parametrize("channels", [1, 3])
def test_banded_focus_activity_is_the_whole_frames(channels: int) -> None:
    """The pre-pass's and the network loop's activities in row bands on two threads (bands
    narrower than the halo too) equal ``focus_activity`` of the whole frame, bit for bit."""
    from focusstudio.core.methods.sf_pair import band_pool
    from focusstudio.core.methods.strategies import focus_activity, focus_activity_banded

    rng = np.random.default_rng(4)
    frame = rng.random((150, 30, 3) if channels == 3 else (150, 30), dtype=np.float32)
    whole = focus_activity(frame)
    with band_pool(2) as pool:
        for rows in (7, 32, 150, 512):
            np.testing.assert_array_equal(focus_activity_banded(frame, pool, rows), whole)


def test_neighbour_evidence_in_bands_on_two_threads_is_the_whole_images() -> None:
    """``NeighbourEvidence.add``'s per-pixel steps (relevance weighting, running score, arg-max)
    in row bands on two threads give the same score and index as the whole image."""
    from focusstudio.core.methods.sf_pair import band_pool
    from focusstudio.core.methods.strategies import NeighbourEvidence

    rng = np.random.default_rng(8)
    shape = (90, 20)
    activities = [rng.random(shape, dtype=np.float32) ** 3 for _ in range(5)]
    peak = np.max(activities, axis=0)
    whole = NeighbourEvidence(shape, peak=peak, power=2.0, prior=0.5)
    banded = NeighbourEvidence(shape, peak=peak, power=2.0, prior=0.5)
    banded.band_rows = 7
    with band_pool(2) as pool:
        for k in range(4):
            weight = rng.random(shape, dtype=np.float32)
            whole.add(k, weight, (activities[k], activities[k + 1]))
            banded.add(k, weight, (activities[k], activities[k + 1]), pool)
    np.testing.assert_array_equal(banded.score, whole.score)
    np.testing.assert_array_equal(banded.index, whole.index)
    assert len(np.unique(whole.index)) >= 3  # the pairs moved the choice around
