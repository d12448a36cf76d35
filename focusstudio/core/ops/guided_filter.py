"""Guided filter (He, Sun, Tang 2013) in torch: runs on CPU or GPU and is differentiable.

Means are border-count-normalised box means (as the reference code's cumulative-sum filter).
Three variants:

* ``gray`` — the standard filter with a 1-channel guide;
* ``sesf_color`` — the colour variant of the released SESF-Fuse code: per-channel slopes
  a_c = cov(I_c, p)/(var(I_c)+eps), b = mean(p) − Σ_c a_c·mean(I_c), q = Σ_c mean(a_c)·I_c +
  mean(b). Not the textbook colour filter; needed to reproduce the published results;
* ``color`` — the textbook colour filter with the 3×3 covariance inverse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from focusstudio.core.ops.box import box_mean

if TYPE_CHECKING:
    import torch

GuidedFilterMode = Literal["gray", "sesf_color", "color"]


def guided_filter(
    guide: torch.Tensor,
    source: torch.Tensor,
    radius: int,
    eps: float,
    mode: GuidedFilterMode | None = None,
) -> torch.Tensor:
    """Filter ``source`` (N×1×H×W) guided by ``guide`` (N×1×H×W or N×3×H×W); returns N×1×H×W.

    ``mode`` defaults to ``gray`` for a 1-channel guide and ``sesf_color`` for a 3-channel one.
    The output is not clipped.
    """
    if mode is None:
        mode = "gray" if guide.shape[1] == 1 else "sesf_color"
    if mode == "gray":
        if guide.shape[1] != 1:
            raise ValueError("gray guided filter needs a 1-channel guide")
        return _gray(guide, source, radius, eps)
    if guide.shape[1] != 3:
        raise ValueError(f"{mode} guided filter needs a 3-channel guide")
    if mode == "sesf_color":
        return _sesf_color(guide, source, radius, eps)
    return _color(guide, source, radius, eps)


def _gray(guide: torch.Tensor, source: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    mean_i = box_mean(guide, radius)
    mean_p = box_mean(source, radius)
    cov_ip = box_mean(guide * source, radius) - mean_i * mean_p
    var_i = box_mean(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, radius) * guide + box_mean(b, radius)


def _sesf_color(guide: torch.Tensor, source: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    mean_i = box_mean(guide, radius)  # N×3×H×W
    mean_p = box_mean(source, radius)  # N×1×H×W
    cov_ip = box_mean(guide * source, radius) - mean_i * mean_p
    var_i = box_mean(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)  # per-channel slopes
    b = mean_p - (a * mean_i).sum(dim=1, keepdim=True)
    return (box_mean(a, radius) * guide).sum(dim=1, keepdim=True) + box_mean(b, radius)


def _color(guide: torch.Tensor, source: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    import torch

    mean_i = box_mean(guide, radius)
    mean_p = box_mean(source, radius)
    cov_ip = box_mean(guide * source, radius) - mean_i * mean_p  # N×3×H×W
    sigma_entries = {}
    for i in range(3):
        for j in range(i, 3):
            sigma_entries[(i, j)] = (
                box_mean(guide[:, i : i + 1] * guide[:, j : j + 1], radius)
                - mean_i[:, i : i + 1] * mean_i[:, j : j + 1]
            )
    rows = []
    for i in range(3):
        row = [sigma_entries[(min(i, j), max(i, j))] for j in range(3)]
        rows.append(torch.cat(row, dim=1))
    sigma = torch.stack(rows, dim=1)  # N×3×3×H×W
    sigma = sigma.permute(0, 3, 4, 1, 2)  # N×H×W×3×3
    sigma = sigma + eps * torch.eye(3, dtype=guide.dtype, device=guide.device)
    a = torch.linalg.solve(sigma, cov_ip.permute(0, 2, 3, 1).unsqueeze(-1)).squeeze(-1)
    a = a.permute(0, 3, 1, 2)  # N×3×H×W
    b = mean_p - (a * mean_i).sum(dim=1, keepdim=True)
    return (box_mean(a, radius) * guide).sum(dim=1, keepdim=True) + box_mean(b, radius)


def guided_filter_np(
    guide: np.ndarray, source: np.ndarray, radius: int, eps: float, mode: GuidedFilterMode | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """NumPy convenience wrapper: guide H×W or H×W×3, source H×W → float32 H×W (float64 math)."""
    import torch

    g = torch.from_numpy(np.ascontiguousarray(guide, dtype=np.float64))
    g = g[None, None] if g.ndim == 2 else g.permute(2, 0, 1)[None]
    p = torch.from_numpy(np.ascontiguousarray(source, dtype=np.float64))[None, None]
    dtype = torch.float32 if device == "mps" else torch.float64
    with torch.no_grad():
        q = guided_filter(g.to(device, dtype), p.to(device, dtype), radius, eps, mode)
    return q[0, 0].to("cpu", torch.float32).numpy()
