"""Box filters whose cost does not depend on the radius (running sums).

Two border conventions are used by the reference code and both are offered:
``box_sum`` — zero padding, plain window sum; ``box_mean`` — mean over the in-image part of the
window (the window is clipped at the border and divided by the true pixel count).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch


def box_sum_np(image: np.ndarray, radius: int) -> np.ndarray:
    """Sum over a (2r+1)² window with zero padding, for an H×W or H×W×C float array."""
    size = 2 * radius + 1
    work = image.astype(np.float64, copy=False)
    return cv2.boxFilter(
        work, -1, (size, size), normalize=False, borderType=cv2.BORDER_CONSTANT
    )


#: Grid of :func:`box_sum_exact_np`: values are rounded to multiples of 2⁻³⁵ (≈ 2.9e-11).
EXACT_FRACTION_BITS = 35


def box_sum_exact_np(image: np.ndarray, radius: int, fraction_bits: int = EXACT_FRACTION_BITS) -> np.ndarray:
    """:func:`box_sum_np` without rounding error: every window sum is exact (float64 out).

    Floating running sums (cv2.boxFilter) carry rounding residue along a row or column, so equal
    windows get sums that differ in the last bits depending on what came before them: exact ties
    (flat areas, identical frames) are then decided arbitrarily, and a frame processed in tiles
    differs from the whole frame. Here the values are first rounded to multiples of
    2^-``fraction_bits``; while every running sum stays below 2^(52 − fraction_bits) each partial
    sum is exactly representable in float64, so the same running sums make no error at all: a
    flat window sums to exactly 0, equal windows to exactly the same value, tiled equals untiled.

    Raises ValueError when the values are too large for the grid (the sums could be inexact).
    """
    size = 2 * radius + 1
    largest = float(np.abs(image).max()) if image.size else 0.0
    # A running sum holds at most a window's sum plus the value entering it: bound it by 2×.
    if 2.0 * largest * size * size >= 2.0 ** (52 - fraction_bits):
        raise ValueError(f"values up to {largest:g} are too large for an exact {size}×{size} box sum")
    scale = float(2**fraction_bits)
    grid = image.astype(np.float64) * scale
    np.rint(grid, out=grid)
    grid /= scale  # a power of two: exact
    return box_sum_np(grid, radius)


def box_mean_np(image: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the in-image part of a (2r+1)² window (border-count normalisation)."""
    height, width = image.shape[:2]
    counts = _window_counts(height, width, radius)
    sums = box_sum_np(image, radius)
    if sums.ndim == 3:
        counts = counts[..., None]
    return sums / counts


def _window_counts(height: int, width: int, radius: int) -> np.ndarray:
    rows = np.minimum(np.arange(height) + radius, height - 1) - np.maximum(np.arange(height) - radius, 0) + 1
    cols = np.minimum(np.arange(width) + radius, width - 1) - np.maximum(np.arange(width) - radius, 0) + 1
    return np.outer(rows, cols).astype(np.float64)


def _cumsum_box_1d(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    import torch

    length = x.shape[dim]
    csum = torch.cumsum(x, dim=dim)  # csum[i] = sum(x[:i+1])
    # extended[j] = sum(x[:clamp(j - r, 0, L)]): r+1 leading zeros, r trailing copies of the total.
    # Then out[i] = extended[i + 2r + 1] − extended[i]; two slices (views) instead of gathers,
    # which were ~20× slower on CPU.
    lead_shape = list(x.shape)
    lead_shape[dim] = radius + 1
    trail = csum.narrow(dim, length - 1, 1).expand(*[radius if d == dim % x.ndim else -1 for d in range(x.ndim)])
    extended = torch.cat([torch.zeros(lead_shape, dtype=x.dtype, device=x.device), csum, trail], dim=dim)
    return extended.narrow(dim, 2 * radius + 1, length) - extended.narrow(dim, 0, length)


def _accumulation_dtype(x: torch.Tensor) -> torch.dtype:
    import torch

    # float64 keeps long running sums exact enough for strict comparisons (SF_A > SF_B);
    # MPS has no float64.
    return torch.float32 if x.device.type == "mps" else torch.float64


def box_sum(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Zero-padded (2r+1)² window sum over the last two dims of an N×C×H×W tensor."""
    work = x.to(_accumulation_dtype(x))
    out = _cumsum_box_1d(_cumsum_box_1d(work, radius, -1), radius, -2)
    return out.to(x.dtype)


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Border-count-normalised (2r+1)² window mean over the last two dims (differentiable)."""
    import torch

    height, width = x.shape[-2:]
    ones = torch.ones((1, 1, height, width), dtype=x.dtype, device=x.device)
    return box_sum(x, radius) / box_sum(ones, radius)
