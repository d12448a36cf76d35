"""A tiny focus-sweep stack for the N-frame network tests: frame k sharp in its own vertical band."""

from __future__ import annotations

import cv2
import numpy as np

from focusstudio.core.types import Stack


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
