"""benchmarks/docs_crops.py: results of different size and scale land on the same pixels before cropping."""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import pytest

from benchmarks.docs_crops import LABELS, TRUTH_LABEL, onto, parse_box, side_by_side


def _texture(height: int, width: int) -> np.ndarray:
    """A smooth random BGR texture (features and ECC both lock onto it)."""
    rng = np.random.default_rng(7)
    noise = rng.random((height // 8, width // 8, 3)).astype(np.float32)
    big = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(big * 255, 0, 255).astype(np.uint8)


def test_onto_undoes_scale_shift_and_size_difference() -> None:
    target = _texture(240, 320)
    # Like enfuse's result against ours: 2 % larger, shifted, and a different canvas size.
    matrix = np.array([[1.02, 0.0, 7.0], [0.0, 1.02, -4.0]])
    moving = cv2.warpAffine(target, matrix, (330, 250), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    warped, note = onto(target, moving)
    assert warped.shape == target.shape
    inner = (slice(30, -30), slice(30, -30))
    # Two cubic resamplings of a smooth texture: a few grey levels; a 1 px misfit gives far more.
    error = np.abs(warped[inner].astype(np.float32) - target[inner].astype(np.float32)).mean()
    assert error < 4.0, note


def test_side_by_side_is_three_labelled_zoomed_panels() -> None:
    image = _texture(60, 80)
    picture = side_by_side([image, image, image], list(LABELS), (10, 5, 30, 20), zoom=2)
    assert picture.shape == (28 + 40, 3 * 60 + 2 * 8, 3)
    # Nearest-neighbour: every 2×2 block of the first panel is one source pixel.
    panel = picture[28:, :60]
    assert np.array_equal(panel[::2, ::2], image[5:25, 10:40])
    assert np.array_equal(panel[1::2, 1::2], image[5:25, 10:40])
    assert len(LABELS) == 3


def test_a_truth_panel_makes_four_panels() -> None:
    image = _texture(60, 80)
    picture = side_by_side([image] * 4, [TRUTH_LABEL, *LABELS], (10, 5, 30, 20), zoom=2)
    assert picture.shape == (28 + 40, 4 * 60 + 3 * 8, 3)
    with pytest.raises(ValueError):
        side_by_side([image] * 4, list(LABELS), (10, 5, 30, 20), zoom=2)


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "-1,0,5,5", "0,0,0,5"])
def test_parse_box_rejects_bad_boxes(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_box(text)
