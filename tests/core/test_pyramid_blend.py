"""Pyramid composition (enfuse-style hard-mask blending driven by our decision): exact where one
frame is chosen, detail kept at a switch, no brightness seam."""

from __future__ import annotations

import numpy as np
import pytest

from focusstudio.core.ops.pyramid import PyramidBlend, blend_levels, laplacian_pyramid, reconstruct


def test_pyramid_reconstructs_and_a_full_weight_returns_the_frame() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((50, 70, 3)).astype(np.float32)
    details, base = laplacian_pyramid(image, 3)
    np.testing.assert_allclose(reconstruct(details, base), image, atol=1e-5)
    blend = PyramidBlend(50, 70)
    blend.add(image, np.ones((50, 70), np.float32))
    blend.add(rng.random((50, 70, 3)).astype(np.float32), np.zeros((50, 70), np.float32))
    np.testing.assert_allclose(blend.result(), image, atol=1e-5)


def test_a_switch_keeps_each_sides_detail_and_hides_a_brightness_step() -> None:
    rng = np.random.default_rng(1)
    height, width = 64, 128
    texture = (rng.random((height, width)) - 0.5).astype(np.float32) * 0.2
    left = (0.5 + texture).astype(np.float32)  # the sharp frame on the left half
    right = (0.56 + texture).astype(np.float32)  # the same detail, 0.06 brighter (exposure drift)
    choice = np.zeros((height, width), np.float32)
    choice[:, : width // 2] = 1.0
    blend = PyramidBlend(height, width)
    blend.add(left, choice)
    blend.add(right, 1.0 - choice)
    fused = blend.result()
    # far from the switch: each side's pixels (detail included), to float rounding
    np.testing.assert_allclose(fused[:, :16], left[:, :16], atol=2e-3)
    np.testing.assert_allclose(fused[:, -16:], right[:, -16:], atol=2e-3)
    # the brightness profile (result minus the shared detail): a hard switch jumps by 0.06 from
    # one column to the next; the blend spreads the step over the coarse levels' width
    hard = np.where(choice > 0.5, left, right)
    steps_hard = np.abs(np.diff((hard - texture).mean(axis=0))).max()
    steps_blend = np.abs(np.diff((fused - texture).mean(axis=0))).max()
    assert steps_hard > 0.059 and steps_blend < 0.008


def test_levels_and_shape_checks() -> None:
    assert blend_levels(8, 8) == 1 and blend_levels(512, 1024) == 6
    blend = PyramidBlend(10, 12)
    with pytest.raises(ValueError):
        blend.result()
    with pytest.raises(ValueError):
        blend.add(np.zeros((10, 11), np.float32), np.zeros((10, 11), np.float32))


@pytest.mark.parametrize("channels", [(), (3,)])
def test_blend_level_by_level_equals_the_whole_pyramids(channels: tuple[int, ...]) -> None:
    """PyramidBlend builds each level in one buffer: the same sums as weighting whole pyramids."""
    from focusstudio.core.ops.pyramid import PyramidBlend, gaussian_pyramid, laplacian_pyramid, reconstruct

    rng = np.random.default_rng(7)
    frames = [rng.random((37, 53, *channels), dtype=np.float32) for _ in range(3)]
    weights = [rng.random((37, 53), dtype=np.float32) for _ in range(3)]
    blend = PyramidBlend(37, 53)
    for frame, weight in zip(frames, weights):
        blend.add(frame, weight)
    sums: list[np.ndarray] = []
    totals: list[np.ndarray] = []
    for frame, weight in zip(frames, weights):
        details, base = laplacian_pyramid(frame, blend.levels)
        masks = gaussian_pyramid(weight, blend.levels)
        for level, (band, mask) in enumerate(zip([*details, base], masks)):
            product = band * (mask[..., None] if band.ndim == 3 else mask)
            if len(sums) <= level:
                sums.append(np.zeros_like(product))
                totals.append(np.zeros_like(mask))
            sums[level] += product
            totals[level] += mask
    bands = [total * np.where(w > 1e-6, 1.0 / np.maximum(w, 1e-6), 0.0).astype(np.float32)[
        (..., None) if total.ndim == 3 else ...] for total, w in zip(sums, totals)]
    assert np.array_equal(blend.result(), reconstruct(bands[:-1], bands[-1]))


@pytest.mark.parametrize(("height", "width", "channels"), [(37, 53, ()), (101, 77, (3,)), (64, 130, (3,))])
def test_selection_blend_in_tiny_bands_equals_the_whole_image_blend(
    height: int, width: int, channels: tuple[int, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SelectionBlend (row bands, no weight sums) against PyramidBlend of the one-hot weights.

    Bands of 2 rows at the finest level (1 at the coarser ones: the halo logic at every band
    edge) and whole-image bands give the same sums; the only difference from PyramidBlend is its
    division by Σ_i G(w_i), which is 1 up to the rounding of L + 1 float32 pyrDown passes and a
    sum over the frames: a few ulp of the values (≤ 1), bounded here by 16 ulp of 1.
    """
    from focusstudio.core.ops import pyramid

    rng = np.random.default_rng(11)
    count = 4
    frames = [rng.random((height, width, *channels), dtype=np.float32) for _ in range(count)]
    index = rng.integers(0, count, (height, width)).astype(np.int32)
    index[: height // 3] = 2  # a region of one frame (its bands are skipped by the others)
    index[:, -9:] = 0
    reference = PyramidBlend(height, width)
    for i, frame in enumerate(frames):
        reference.add(frame, (index == i).astype(np.float32))
    expected = reference.result()
    tolerance = 16 * float(np.finfo(np.float32).eps)
    for band_pixels in (2 * width, 1 << 18):
        monkeypatch.setattr(pyramid, "SELECTION_BAND_PIXELS", band_pixels)
        blend = pyramid.SelectionBlend(index)
        assert blend.levels == reference.levels
        for i, frame in enumerate(frames):
            blend.add(frame, i)
        np.testing.assert_allclose(blend.result(), expected, rtol=0, atol=tolerance)


def test_selection_blend_of_one_frame_everywhere_returns_it() -> None:
    rng = np.random.default_rng(3)
    image = rng.random((40, 60, 3), dtype=np.float32)
    blend = pyramid_selection(np.zeros((40, 60), np.int32))
    blend.add(image, 0)
    blend.add(rng.random((40, 60, 3), dtype=np.float32), 1)  # selected nowhere: adds nothing
    np.testing.assert_allclose(blend.result(), image, atol=1e-5)
    with pytest.raises(ValueError):
        pyramid_selection(np.zeros((40, 60), np.int32)).result()
    with pytest.raises(ValueError):
        pyramid_selection(np.zeros((40, 60), np.int32)).add(image[:, :30], 0)


def pyramid_selection(index: np.ndarray):  # type: ignore[no-untyped-def]
    from focusstudio.core.ops.pyramid import SelectionBlend

    return SelectionBlend(index)
