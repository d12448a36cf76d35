"""sf on N frames at camera resolution (issue 20): the banded pyramid composition and the faster
label opening give the results of the whole-image forms."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from focusstudio.core.methods import sf_boundaries
from focusstudio.core.ops import consistency, pyramid
from focusstudio.core.pipeline import fuse
from focusstudio.core.types import Stack


def test_zero_pixel_table_equals_the_gather_and_falls_back_for_another_numbering() -> None:
    rng = np.random.default_rng(5)
    index = rng.integers(0, 4, (61, 47)).astype(np.int32)
    mask = index == 2
    _, nearest = cv2.distanceTransformWithLabels(mask.astype(np.uint8), cv2.DIST_L2, 5,
                                                 labelType=cv2.DIST_LABEL_PIXEL)
    zeros = ~mask
    gathered = np.zeros(int(nearest.max()) + 1, dtype=np.int32)
    gathered[nearest[zeros]] = index[zeros]
    assert np.array_equal(consistency._labels_of_zero_ids(nearest, zeros, index), gathered)
    # Another numbering of the zero pixels (ids permuted): the table follows it.
    permutation = np.concatenate(([0], rng.permutation(np.arange(1, int(nearest.max()) + 1))))
    renumbered = permutation[nearest].astype(np.int32)
    table = consistency._labels_of_zero_ids(renumbered, zeros, index)
    assert np.array_equal(table[renumbered[zeros]], index[zeros])


def _stack(count: int, height: int, width: int) -> Stack:
    """Frames sharp in different vertical strips (a texture blurred elsewhere), colour."""
    rng = np.random.default_rng(2)
    texture = rng.random((height, width, 3), dtype=np.float32)
    blurred = cv2.GaussianBlur(texture, (0, 0), 3.0)
    frames = []
    for i in range(count):
        frame = blurred.copy()
        strip = slice(i * width // count, (i + 1) * width // count)
        frame[:, strip] = texture[:, strip]
        frames.append(frame)
    return Stack.from_arrays(frames)


def test_sf_n_frames_in_tiny_bands_equals_the_whole_image_pyramid_blend(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default N-frame sf with 2-row bands against PyramidBlend of its own index map.

    The index map does not depend on the bands (the activity sums are exact); the composition
    differs from the whole-image blend by the float32 rounding of its weight sums (≤ a few ulp
    of values ≤ 1) and of the clip: 16 ulp of 1 bound it.
    """
    stack = _stack(4, 72, 90)
    whole = fuse(stack, "sf")
    monkeypatch.setattr(pyramid, "SELECTION_BAND_PIXELS", 2 * 90)
    monkeypatch.setattr(sf_boundaries, "BAND_PIXELS", 1)  # the analysis in bands of 24 rows (4 halos, its minimum)
    result = fuse(stack, "sf")
    index = result.maps["index"].data
    assert np.array_equal(index, whole.maps["index"].data)  # exact activity sums: the same decision
    assert set(np.unique(index)) == {0, 1, 2, 3}
    reference = pyramid.PyramidBlend(72, 90)
    for i in range(len(stack)):
        reference.add(stack.load(i), (index == i).astype(np.float32))
    expected = np.clip(reference.result(), 0.0, 1.0)
    np.testing.assert_allclose(result.image, expected, rtol=0, atol=16 * float(np.finfo(np.float32).eps))
    # Each strip comes from its sharp frame (away from the strip edges, where the blend mixes).
    for i in range(4):
        inner = slice(i * 90 // 4 + 6, (i + 1) * 90 // 4 - 6)
        np.testing.assert_allclose(result.image[10:-10, inner], stack.load(i)[10:-10, inner], atol=0.02)


@pytest.mark.parametrize("low", [0, -2])
def test_labels_present_are_np_unique(low: int) -> None:
    rng = np.random.default_rng(4)
    index = rng.integers(low, 9, (40, 33)).astype(np.int32)
    index[index == 5] = 7  # a gap
    assert consistency._labels_present(index) == [int(v) for v in np.unique(index)]
