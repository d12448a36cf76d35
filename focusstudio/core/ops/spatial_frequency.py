"""Pixel-wise spatial frequency (SESF-Fuse eq. 5–7, GACN eq. 1–3).

Squared left and upper neighbour differences (zero padding: the first row/column see the raw
squared value, as the released code does), summed over a (2r+1)² window with a running-sum box
filter, so the cost does not depend on r. The reference code omits the square root and the
1/(2r+1)² factor (monotone); ``normalized=True`` applies them for display.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from focusstudio.core.ops.box import box_sum, box_sum_np

if TYPE_CHECKING:
    import torch


def squared_differences_np(image: np.ndarray) -> np.ndarray:
    """(X(y,x)−X(y,x−1))² + (X(y,x)−X(y−1,x))², zero padded, summed over channels (H×W[×C])."""
    work = image.astype(np.float64, copy=False)
    horizontal = np.empty_like(work)
    horizontal[:, 0] = work[:, 0]
    horizontal[:, 1:] = work[:, 1:] - work[:, :-1]
    vertical = np.empty_like(work)
    vertical[0] = work[0]
    vertical[1:] = work[1:] - work[:-1]
    energy = horizontal * horizontal + vertical * vertical
    if energy.ndim == 3:
        energy = energy.sum(axis=2)
    return energy


def spatial_frequency_np(image: np.ndarray, radius: int, normalized: bool = False) -> np.ndarray:
    """Pixel SF of an H×W or H×W×C image (channels summed), as float64 H×W."""
    total = box_sum_np(squared_differences_np(image), radius)
    if normalized:
        return np.sqrt(np.maximum(total, 0.0) / (2 * radius + 1) ** 2)
    return total


def squared_differences(features: torch.Tensor) -> torch.Tensor:
    """Per-channel squared left+up differences of N×C×H×W features, zero padded."""
    import torch.nn.functional as F

    left = F.pad(features, (1, 0, 0, 0))[..., :, :-1]
    up = F.pad(features, (0, 0, 1, 0))[..., :-1, :]
    return (features - left) ** 2 + (features - up) ** 2


def spatial_frequency(
    features: torch.Tensor, radius: int, sum_channels: bool = True, normalized: bool = False
) -> torch.Tensor:
    """Pixel SF of N×C×H×W features: N×1×H×W when ``sum_channels`` else N×C×H×W."""
    energy = squared_differences(features)
    if sum_channels:
        # Box filtering is linear, so summing channels first costs one box filter, not C.
        energy = energy.sum(dim=1, keepdim=True)
    total = box_sum(energy, radius)
    if normalized:
        return (total.clamp_min(0) / (2 * radius + 1) ** 2).sqrt()
    return total
