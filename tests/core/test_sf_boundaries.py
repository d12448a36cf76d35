"""sf's boundary refinement (3+ frames): a smaller SF window decides again the pixels near a
change of frame, so a sharp foreground's frame does not spread over the background past its edge."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from focusstudio.core.methods import sf, sf_boundaries
from focusstudio.core.pipeline import fuse
from focusstudio.core.types import Stack

SIZE, TOP, BOTTOM = 96, 32, 64  # the foreground square is [TOP, BOTTOM)²


def _depth_edge_stack() -> tuple[Stack, np.ndarray]:
    """Three frames: the textured background sharp in frame 0, the bright textured square sharp
    in frame 2 (its frame blurs the background by σ = 3 px), frame 1 between (σ = 1.5 each)."""
    rng = np.random.default_rng(7)
    background = cv2.GaussianBlur(rng.uniform(0.3, 0.6, (SIZE, SIZE)).astype(np.float32), (0, 0), 0.7)
    square = np.zeros((SIZE, SIZE), np.float32)
    square[TOP:BOTTOM, TOP:BOTTOM] = 1.0
    foreground = 0.8 + 0.15 * np.sign(np.sin(np.arange(SIZE) / 1.5))[None, :].astype(np.float32)

    def frame(sigma_back: float, sigma_front: float) -> np.ndarray:
        def soft(image: np.ndarray, sigma: float) -> np.ndarray:
            return image if sigma == 0 else cv2.GaussianBlur(image, (0, 0), sigma)

        alpha = soft(square, sigma_front)
        image = soft(background, sigma_back) * (1 - alpha) + soft(foreground * square, sigma_front)
        return np.repeat(np.clip(image, 0, 1)[..., None], 3, axis=2)

    frames = [frame(0.0, 3.0), frame(1.5, 1.5), frame(3.0, 0.0)]
    ring = np.zeros((SIZE, SIZE), bool)  # 4–5 px outside the square's outline
    ring[TOP - 5:BOTTOM + 5, TOP - 5:BOTTOM + 5] = True
    ring[TOP - 3:BOTTOM + 3, TOP - 3:BOTTOM + 3] = False
    return Stack.from_arrays([np.round(f * 255).astype(np.uint8) for f in frames]), ring


def test_the_square_frame_does_not_spread_past_the_depth_edge() -> None:
    stack, ring = _depth_edge_stack()
    before = fuse(stack, "sf", {"boundary_radius": 0}).maps["index"].data
    after = fuse(stack, "sf").maps["index"].data
    # The 11×11 window reaches the square's sharp outline from 5 px outside: frame 2 wins there.
    assert np.mean(before[ring] == 2) > 0.8
    # The 5×5 window does not reach it from 4–5 px: the background's sharp frame takes the ring back
    # (the left/up differences put the outline's energy on the square's first row and column).
    assert np.mean(after[ring] == 2) < 0.05
    assert np.mean(after[ring] == 0) > 0.9
    # Away from the outline nothing changes: the square's inside and the far background.
    inner = (slice(TOP + 8, BOTTOM - 8),) * 2
    assert np.array_equal(after[inner], before[inner]) and np.all(after[inner] == 2)
    assert np.array_equal(after[:16], before[:16])


def test_pairs_keep_sesf_decision() -> None:
    stack, _ = _depth_edge_stack()
    pair = stack.subset([0, 2])
    a = fuse(pair, "sf")
    b = fuse(pair, "sf", {"boundary_radius": 0})
    assert np.array_equal(a.maps["index"].data, b.maps["index"].data)
    assert np.array_equal(a.image, b.image)


def test_refine_boundaries_takes_the_fine_label_only_between_the_neighbours_labels() -> None:
    index = np.zeros((12, 12), np.int32)
    index[:, 6:] = 4
    fine = np.full((12, 12), -1, np.int32)
    fine[:, 4] = 3  # between 0 and 4 near the boundary: taken
    fine[:, 5] = 7  # outside [0, 4]: refused
    fine[:, 0] = 2  # 6 px from the boundary, beyond the radius: refused
    original = index.copy()
    out = sf.refine_boundaries(index, fine, 2)
    assert np.all(out[:, 4] == 3) and np.all(out[:, 5] == 0) and np.all(out[:, 0] == 0)
    assert np.array_equal(np.delete(out, 4, axis=1), np.delete(original, 4, axis=1))


@pytest.mark.parametrize("band_pixels", [40, 97])
def test_refine_boundaries_in_bands_equals_the_whole_map(monkeypatch: pytest.MonkeyPatch, band_pixels: int) -> None:
    rng = np.random.default_rng(3)
    index = cv2.resize(rng.integers(0, 5, (6, 7)).astype(np.uint8), (37, 29), interpolation=cv2.INTER_NEAREST)
    index = index.astype(np.int32)
    fine = rng.integers(-1, 5, index.shape).astype(np.int32)
    whole = sf.refine_boundaries(index.copy(), fine, 3)
    assert not np.array_equal(whole, index)  # the case refines something
    monkeypatch.setattr(sf_boundaries, "BAND_PIXELS", band_pixels)
    assert sf.band_rows(37, 3) < 29  # several bands
    # In place, band by band: each band must still read the rows above as they were.
    assert np.array_equal(sf.refine_boundaries(index, fine, 3), whole)


def test_the_image_edge_is_no_edge_for_three_frames() -> None:
    """SESF pads with zeros: the first row's and column's "difference" is the grey value itself.
    Pairs keep it; with 3+ frames it is left out, so the sharp frame, not the brightest, wins
    along the top and left edges."""
    rng = np.random.default_rng(11)
    sharp = (0.3 + 0.1 * rng.random((48, 56))).astype(np.float32)
    soft = cv2.GaussianBlur(sharp, (0, 0), 2.0)
    frames = [sharp, soft + 0.3, soft + 0.1]  # frame 1: defocused and the brightest
    index = fuse(Stack.from_arrays(frames), "sf", {"boundary_radius": 0}).maps["index_raw"].data
    assert np.all(index == 0)
    # The pair keeps SESF's padding: the brighter defocused frame takes the edges' window.
    pair = fuse(Stack.from_arrays(frames[:2]), "sf").maps["decision_raw"].data
    assert not pair[0].any() and not pair[:, 0].any() and pair[24, 28] == 1
