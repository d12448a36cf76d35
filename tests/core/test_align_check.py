"""The overlap numbers of two frames as loaded and as aligned (the window's flicker check)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from focusstudio.core.align import ALIGN_PARAMS, align_stack
from focusstudio.core.align_check import check_pair, overlap
from focusstudio.core.progress import CancelToken, run_to_completion
from focusstudio.core.types import Stack


def _scene(height: int, width: int, seed: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.random((height, width)).astype(np.float32), (0, 0), 3.0)


def test_identical_frames_overlap_perfectly_and_a_shift_shows() -> None:
    scene = _scene(80, 120)
    same = overlap(scene, scene)
    assert same.correlation == pytest.approx(1.0, abs=1e-9) and same.mean_difference == 0.0
    assert same.pixels == 80 * 120
    # Brightness and contrast do not count (a frame exposed differently), position does.
    assert overlap(scene, 0.5 * scene + 0.2).correlation == pytest.approx(1.0, abs=1e-6)
    shifted = overlap(scene[:, 6:], scene[:, :-6])
    assert shifted.correlation < 0.9 and shifted.mean_difference > 0.0
    # A mask limits the comparison to where it is set (the change 10 px away, beyond the σ = 2 low-pass).
    mask = np.zeros((80, 120), bool)
    mask[20:40, 30:70] = True
    changed = np.ones((80, 120), bool)
    changed[10:50, 20:80] = False
    assert overlap(scene, scene + np.where(changed, 0.3, 0.0), mask).mean_difference == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="different sizes"):
        overlap(scene, scene[1:])


def test_the_registration_of_a_shifted_stack_raises_the_correlation() -> None:
    scene = _scene(120, 180)
    frames = [scene[:, 12 - 4 * index : 12 - 4 * index + 160] for index in range(3)]  # moved 4 px per frame
    stack = Stack.from_arrays(frames, ["a", "b", "c"])
    aligned, alignment = run_to_completion(align_stack(stack, ALIGN_PARAMS.resolve({}), CancelToken()))
    positions = {kept: position for position, kept in enumerate(alignment.included)}
    check = check_pair(stack, aligned, (0, positions[0]), (2, positions[2]))
    assert check.loaded.correlation < 0.9
    assert check.aligned.correlation > 0.99 and check.aligned.mean_difference < check.loaded.mean_difference / 4
    assert check.describe().startswith("frames 1 and 3: correlation")
