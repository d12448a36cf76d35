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


@pytest.mark.parametrize(("width", "radius"), [(1, 4), (2, 4), (1, 8), (0, 4), (1, 0)])
def test_one_pass_selects_exactly_as_the_two_passes(width: int, radius: int) -> None:
    frames, index = _depth_edge_stack(), _noisy_index()
    stack = Stack.from_arrays(frames)
    separate = refine_neighbour_boundaries(stack, refine_adjacent(stack, index.copy(), CancelToken(), width),
                                           CancelToken(), radius) if radius > 0 else \
        refine_adjacent(stack, index.copy(), CancelToken(), width)
    merged = refine_neighbours(stack, index.copy(), CancelToken(), width=width, radius=radius)
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
