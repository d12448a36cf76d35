"""Full-size aligned stacks (no crop): the border that not every frame covers is never taken from a
frame's replicated edge pixels, whatever the method."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from focusstudio.core.align import Alignment, apply_alignment, covered_columns, largest_rectangle
from focusstudio.core.border import covered_sharpness
from focusstudio.core.pipeline import fuse
from focusstudio.core.types import Stack

HEIGHT, WIDTH, SHIFT = 48, 64, 7


def _texture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(cv2.GaussianBlur(rng.random((HEIGHT, WIDTH, 3)).astype(np.float32), (0, 0), 0.8) * 1.6 - 0.3,
                   0.0, 1.0)


def _shifted_stack() -> tuple[Stack, np.ndarray, np.ndarray]:
    """Frame 0 (the reference) is sharp on the left; frame 1, sharp on the right, was taken
    SHIFT pixels further right: aligned, its left SHIFT columns hold no data of its own."""
    scene = _texture(1)
    blurred = cv2.GaussianBlur(scene, (0, 0), 2.5)
    left = np.zeros((HEIGHT, WIDTH), bool)
    left[:, : WIDTH // 2] = True
    first = np.where(left[..., None], scene, blurred)
    second_in_reference = np.where(left[..., None], blurred, scene)
    # What the camera recorded for frame 1: the scene moved SHIFT pixels to the left, and the
    # columns entering on the right are junk with strong "detail" (another object).
    second = np.empty_like(second_in_reference)
    second[:, : WIDTH - SHIFT] = second_in_reference[:, SHIFT:]
    second[:, WIDTH - SHIFT :] = np.random.default_rng(3).random((HEIGHT, SHIFT, 3))
    stack = Stack.from_arrays([first, second])
    # frame 1 → reference: x + SHIFT
    matrices = [np.eye(3), np.array([[1.0, 0.0, SHIFT], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])]
    left_cols, right_cols = covered_columns(matrices, HEIGHT, WIDTH)
    crop = largest_rectangle(left_cols, right_cols)
    assert crop is not None
    x, y, w, h = crop
    alignment = Alignment.from_json(
        {"reference": 0, "model": "similarity", "frame_width": WIDTH, "frame_height": HEIGHT,
         "crop": {"x": x, "y": y, "width": w, "height": h},
         "frames": [{"index": i, "name": stack.names[i], "status": "reference" if i == 0 else "ok",
                     "matrix": m.tolist()} for i, m in enumerate(matrices)]}
    )
    aligned = apply_alignment(stack, alignment, crop=False)
    return aligned, first, second_in_reference


def test_stack_reports_each_frames_coverage() -> None:
    aligned, _, _ = _shifted_stack()
    assert aligned.valid_mask is not None
    reference, shifted = aligned.coverage(0), aligned.coverage(1)
    assert reference is not None and reference.all()
    assert shifted is not None
    assert not shifted[:, :SHIFT].any() and shifted[:, SHIFT:].all()
    np.testing.assert_array_equal(aligned.valid_mask, shifted)


@pytest.mark.parametrize("method", ["sf", "laplacian", "gff"])
def test_uncovered_border_comes_from_the_frame_that_covers_it(method: str) -> None:
    aligned, first, _ = _shifted_stack()
    result = fuse(aligned, method, device="cpu")
    # Only frame 0 saw the left SHIFT columns: they are its pixels, not frame 1's replicated edge.
    np.testing.assert_allclose(result.image[:, :SHIFT], first[:, :SHIFT], atol=1e-6)
    valid_area = result.maps["valid_area"].data
    assert not valid_area[:, :SHIFT].any() and valid_area[:, SHIFT:].all()
    assert any("border pixels" in note for note in result.notes)
    for fusion_map in result.maps.values():
        if fusion_map.kind == "index" and fusion_map.frame is None:
            assert (fusion_map.data[:, :SHIFT] == 0).all(), fusion_map.name


def test_inside_the_common_area_the_method_result_is_kept() -> None:
    aligned, _, _ = _shifted_stack()
    result = fuse(aligned, "laplacian", device="cpu")
    plain = fuse(aligned.with_transforms(aligned.transforms, valid_mask=None), "laplacian", device="cpu")
    # The pyramid's support reaches a few pixels past the band edge; well inside, nothing changes.
    np.testing.assert_array_equal(result.image[:, SHIFT:], plain.image[:, SHIFT:])
    assert "border" in result.timings and "border" not in plain.timings


def test_covered_sharpness_ignores_uncovered_pixels_and_the_padding() -> None:
    rng = np.random.default_rng(5)
    grey = rng.random((20, 30))
    covered = np.ones((20, 30), bool)
    covered[:, :10] = False
    noisy = grey.copy()
    noisy[:, :10] = rng.random((20, 10)) * 50.0  # would dominate if it were counted
    np.testing.assert_allclose(covered_sharpness(noisy, covered)[:, 12:], covered_sharpness(grey, covered)[:, 12:])
    flat = np.full((20, 30), 0.8)
    # A flat frame is not sharp at the image edge (the zero padding is not an edge of the scene).
    assert np.abs(covered_sharpness(flat, None)).max() == 0.0
