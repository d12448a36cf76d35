"""A tiny focus-sweep stack for the N-frame network tests: frame k sharp in its own vertical band."""

from __future__ import annotations

import cv2
import numpy as np

from focusstudio.core.types import FusionResult, Stack


def focus_sweep_stack(
    frames: int, height: int, width: int, *, colour: bool = True, seed: int = 7,
    texture_sigma: float = 0.0, blur_sigma: float = 2.0,
) -> Stack:
    """``frames`` 8-bit frames of one random texture (smoothed by ``texture_sigma`` when > 0),
    each blurred by ``blur_sigma`` except in its own band of columns, where it is the texture."""
    rng = np.random.default_rng(seed)
    texture = rng.random((height, width, 3) if colour else (height, width)).astype(np.float32)
    if texture_sigma > 0:
        texture = cv2.GaussianBlur(texture, (0, 0), texture_sigma)
    blurred = cv2.GaussianBlur(texture, (0, 0), blur_sigma)
    stack = []
    for k in range(frames):
        frame = blurred.copy()
        band = slice(k * width // frames, (k + 1) * width // frames)
        frame[:, band] = texture[:, band]
        stack.append((frame * 255).astype(np.uint8))
    return Stack.from_arrays(stack)


def assert_same_neighbour_maps(
    cached: FusionResult, uncached: FusionResult, map_prefix: str, frames: int, tolerance: float
) -> None:
    """A cached-features neighbour fusion equals the plain passes: each pair's map within
    ``tolerance``, the selection up to flipped near-ties, the image where the selection agrees."""
    names = [f"{map_prefix}{k + 1}" for k in range(frames - 1)]
    assert set(names) <= set(cached.maps)
    for name in names:
        np.testing.assert_allclose(cached.maps[name].data, uncached.maps[name].data, rtol=0, atol=tolerance)
    # the maps are not trivially equal: the pairs differ (the comparison has something to compare)
    assert not np.allclose(cached.maps[names[0]].data, cached.maps[names[-1]].data, atol=1e-3)
    # the selection is the arg-max of summed maps: rounding can flip a near-tie, nothing more
    index, other = cached.maps["index"].data, uncached.maps["index"].data
    assert np.mean(index != other) <= 0.01
    same = index == other
    np.testing.assert_allclose(cached.image[same], uncached.image[same], rtol=0, atol=1e-6)
