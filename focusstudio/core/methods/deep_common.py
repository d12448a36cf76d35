"""Helpers shared by the deep methods' inference: frames in grey, devices, and SESF's banded
deep spatial frequency (reference arithmetic, any device).

GACN's fast CPU path (the channels-last encoder, fused convolutions, its activity operations)
is :mod:`focusstudio.core.methods.backends.fast_cpu`; the tile loop of network inference is
:mod:`focusstudio.core.methods.engine`.
"""

from __future__ import annotations

import numpy as np

from focusstudio.core.lazy import lazy_import
from focusstudio.core.methods._classical import load_checked
from focusstudio.core.methods.base import RunContext
from focusstudio.core.ops.box import box_sum
from focusstudio.core.progress import check_cancelled
from focusstudio.core.types import Stack

# torch loads on first use (see focusstudio.core.lazy).
torch = lazy_import("torch")
F = lazy_import("torch.nn.functional")


# ---------------------------------------------------------------------------------------- frames
def torch_device(context: RunContext) -> torch.device:
    return torch.device(context.device)


def exact_dtype(device: torch.device) -> torch.dtype:
    """float64 where available (strict comparisons, guided filters on 0–255 guides)."""
    return torch.float32 if device.type == "mps" else torch.float64


def grey_frame(stack: Stack, index: int) -> np.ndarray:
    """Frame ``index`` in grey (skimage rgb2gray weights, float32 [0, 1]), H×W; a frame whose size
    differs from the stack's is an :class:`InputError` naming the file."""
    return np.ascontiguousarray(load_checked(stack, index, grey=True), dtype=np.float32)


# ---------------------------------------------------------------------------------------- activity
#: Rows per band in the band-wise (cache-friendly) activity computations: a 64-channel band of a
#: ~500-pixel-wide image is then a few MB, so its many element-wise passes stay in cache.
BAND_ROWS = 64


def _energy_rows(features: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Per-channel (X(y,x)−X(y,x−1))² + (X(y,x)−X(y−1,x))² for rows [start, stop), zero padding
    at the image border only (the first row/column see the raw value, as the released code)."""
    horizontal, vertical = row_differences(features, start, stop)
    return horizontal.square_().add_(vertical.square_())


def row_differences(
    features: torch.Tensor, start: int, stop: int, buffers: tuple[torch.Tensor, torch.Tensor] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(X(y,x)−X(y,x−1), X(y,x)−X(y−1,x)) for rows [start, stop), into ``buffers`` when given."""
    rows = features[:, :, start:stop]
    horizontal, vertical = buffers if buffers is not None else (torch.empty_like(rows), torch.empty_like(rows))
    horizontal[..., 0] = rows[..., 0]
    torch.sub(rows[..., 1:], rows[..., :-1], out=horizontal[..., 1:])
    if start == 0:
        vertical[:, :, 0] = rows[:, :, 0]
        torch.sub(rows[:, :, 1:], rows[:, :, :-1], out=vertical[:, :, 1:])
    else:
        torch.sub(rows, features[:, :, start - 1 : stop - 1], out=vertical)
    return horizontal, vertical




def squared_gradient_energy(
    features: torch.Tensor, sum_channels: bool, minus: torch.Tensor | None = None
) -> torch.Tensor:
    """Squared gradient energy of N×C×H×W features: per channel (N×C×H×W), summed over channels
    (N×1×H×W), or — with ``minus`` — the per-channel difference E(features) − E(minus).

    Computed in bands of :data:`BAND_ROWS` rows (same arithmetic per element as a whole-image
    computation, ~2× faster on a CPU whose memory bandwidth is the limit)."""
    count, _, height, width = features.shape
    if sum_channels:
        out = torch.empty((count, 1, height, width), dtype=features.dtype, device=features.device)
    else:
        out = torch.empty_like(features)  # keeps a channels-last layout
    for start in range(0, height, BAND_ROWS):
        check_cancelled()
        stop = min(start + BAND_ROWS, height)
        energy = _energy_rows(features, start, stop)
        if minus is not None:
            energy.sub_(_energy_rows(minus, start, stop))
        if sum_channels:
            torch.sum(energy, dim=1, keepdim=True, out=out[:, :, start:stop])
        else:
            out[:, :, start:stop] = energy
    return out


def deep_sf_sum(features: torch.Tensor, radius: int) -> torch.Tensor:
    """SESF's deep spatial frequency: channel-summed squared differences, (2r+1)² zero-padded
    window *sum* (float64 running sums), returned as float32 N×1×H×W."""
    energy = squared_gradient_energy(features, sum_channels=True)
    return box_sum(energy.to(exact_dtype(energy.device)), radius).to(torch.float32)


def channel_box_sum(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Zero-padded (2r+1)² window sum of every channel (float32, separable depthwise convs —
    ~10 terms per sum, so no long-running-sum rounding), in bands of rows for cache locality."""
    channels, height = x.shape[1], x.shape[2]
    size = 2 * radius + 1
    row = torch.ones((channels, 1, 1, size), dtype=x.dtype, device=x.device)
    col = torch.ones((channels, 1, size, 1), dtype=x.dtype, device=x.device)
    if x.device.type != "cpu" or is_channels_last(x):
        # oneDNN's NHWC depthwise kernels are fast enough without the bands (~4× the NCHW ones)
        return F.conv2d(F.conv2d(x, row, padding=(0, radius), groups=channels), col, padding=(radius, 0),
                        groups=channels)
    out = torch.empty_like(x)
    for start in range(0, height, BAND_ROWS):
        stop = min(start + BAND_ROWS, height)
        read0, read1 = max(start - radius, 0), min(stop + radius, height)
        horizontal = F.conv2d(x[:, :, read0:read1], row, padding=(0, radius), groups=channels)
        # zero rows only where the window leaves the image
        padded = F.pad(horizontal, (0, 0, radius - (start - read0), radius - (read1 - stop)))
        out[:, :, start:stop] = F.conv2d(padded, col, groups=channels)
    return out


def is_channels_last(x: torch.Tensor) -> bool:
    return x.shape[1] > 1 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def sesf_halo(encoder_radius: int, sf_radius: int) -> int:
    """Receptive radius of SESF's SF map: the 3×3 convs, the one-pixel difference, the window."""
    return encoder_radius + 1 + sf_radius
