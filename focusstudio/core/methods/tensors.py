"""numpy images ↔ torch batches, the one conversion every deep method uses at its network's edges."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def to_tensor(image: np.ndarray, device: str | torch.device) -> torch.Tensor:
    """H×W or H×W×C float32 → 1×C×H×W on ``device``."""
    import torch

    array = image[None, None] if image.ndim == 2 else np.ascontiguousarray(image.transpose(2, 0, 1))[None]
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(device)


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """1×C×H×W (or C×H×W, or H×W) → H×W when C = 1, else H×W×C; float32 on the CPU."""
    array = tensor.detach().float().cpu().numpy()
    if array.ndim == 4:
        array = array[0]
    if array.ndim == 2:
        return array
    return array[0] if array.shape[0] == 1 else np.ascontiguousarray(array.transpose(1, 2, 0))


def pad_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    """Pad bottom/right by edge replication so both sides are multiples of ``multiple``."""
    height, width = image.shape[:2]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h == 0 and pad_w == 0:
        return image
    widths = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, widths, mode="edge")
