"""No-reference statistics of the fused image: ``SF``, ``AG`` and ``SD`` (MFIFB/MEFB code)."""

from __future__ import annotations

import numpy as np


def spatial_frequency(fused: np.ndarray) -> float:
    """SF = √(RF + CF), RF/CF = sum of squared horizontal/vertical neighbour differences over M·N."""
    image = fused.astype(np.float64)
    pixels = image.shape[0] * image.shape[1]
    row_term = float(np.sum(np.diff(image, axis=1) ** 2)) / pixels
    column_term = float(np.sum(np.diff(image, axis=0) ** 2)) / pixels
    return float(np.sqrt(row_term + column_term))


def average_gradient(fused: np.ndarray) -> float:
    """AG = Σ √((g_x² + g_y²)/2) / ((M−1)(N−1)) with MATLAB ``gradient`` (central, one-sided at borders)."""
    image = fused.astype(np.float64)
    if min(image.shape) < 2:
        raise ValueError(f"AG needs at least 2×2 pixels, got {image.shape}")
    grad_y, grad_x = np.gradient(image)
    total = float(np.sum(np.sqrt((grad_x * grad_x + grad_y * grad_y) / 2.0)))
    return total / ((image.shape[0] - 1) * (image.shape[1] - 1))


def standard_deviation(fused: np.ndarray) -> float:
    """SD: population standard deviation of the fused grey values."""
    image = fused.astype(np.float64)
    return float(np.sqrt(np.mean((image - image.mean()) ** 2)))
