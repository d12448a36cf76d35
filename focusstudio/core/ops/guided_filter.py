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

from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

from focusstudio.core.ops.box import _window_counts, box_mean

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
    """NumPy convenience wrapper: guide H×W or H×W×3, source H×W → float32 H×W (float64 math).

    On the CPU the same formulas run on OpenCV box sums (:func:`guided_filter_cpu`), several times
    faster than the torch cumulative sums; other devices use :func:`guided_filter`.
    """
    if device == "cpu":
        return guided_filter_cpu(guide, source, radius, eps, mode).astype(np.float32)
    import torch

    g = torch.from_numpy(np.ascontiguousarray(guide, dtype=np.float64))
    g = g[None, None] if g.ndim == 2 else g.permute(2, 0, 1)[None]
    p = torch.from_numpy(np.ascontiguousarray(source, dtype=np.float64))[None, None]
    dtype = torch.float32 if device == "mps" else torch.float64
    with torch.no_grad():
        q = guided_filter(g.to(device, dtype), p.to(device, dtype), radius, eps, mode)
    return q[0, 0].to("cpu", torch.float32).numpy()


def guided_filter_cpu(
    guide: np.ndarray, source: np.ndarray, radius: int, eps: float, mode: GuidedFilterMode | None = None
) -> np.ndarray:
    """:func:`guided_filter` in NumPy/OpenCV (float64): guide H×W or H×W×3, source H×W → H×W."""
    return GuidedFilterCPU(guide, radius, eps, mode)(source)


class GuidedFilterCPU:
    """A guided filter bound to one guide, for filtering several sources with it (NumPy/OpenCV,
    float64, border-count-normalised means, same three modes as :func:`guided_filter`).

    The guide's own statistics (means, variances or the inverse of Σ + eps·I) are computed once,
    so filtering N weight maps with the same guide costs about half of N separate filters. The
    textbook colour mode inverts the 3×3 covariance in closed form (adjugate / determinant).

    ``precision=np.float32`` halves the memory traffic (about 2× faster on a megapixel). The guide
    is then centred on its per-channel mean first: the filter's output does not change (variances,
    covariances and the coefficients a are shift-invariant and b absorbs the shift exactly), but
    mean(I²) − mean(I)² no longer cancels catastrophically in single precision. OpenCV's box filter
    sums float32 input in double, so window sums stay correctly rounded.
    """

    def __init__(
        self,
        guide: np.ndarray,
        radius: int,
        eps: float,
        mode: GuidedFilterMode | None = None,
        precision: np.dtype | type = np.float64,
        centre: np.ndarray | None = None,
    ) -> None:
        self.precision = np.dtype(precision)
        if self.precision not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"precision must be float32 or float64, not {self.precision}")
        image = np.asarray(guide, dtype=self.precision)
        if self.precision == np.float32:
            # Tiles of one guide pass the whole guide's centre, so they compute the same numbers.
            shift = guide_centre(image) if centre is None else centre
            image = (image - np.asarray(shift, dtype=np.float32)).astype(np.float32, copy=False)
        if mode is None:
            mode = "gray" if image.ndim == 2 else "sesf_color"
        if mode == "gray":
            if image.ndim != 2:
                raise ValueError("gray guided filter needs a 1-channel guide")
        elif image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{mode} guided filter needs a 3-channel guide")
        self.guide = image
        self.radius = radius
        self.mode = mode
        height, width = image.shape[:2]
        self._reciprocal_counts = (
            _reciprocal_counts(height, width, radius, self.precision.char)
            if height * width <= _CACHED_COUNTS_PIXELS
            else (1.0 / _window_counts(height, width, radius)).astype(self.precision)
        )
        self.mean_guide = self.mean(image)
        if mode == "gray" or mode == "sesf_color":
            # per-channel 1 / (var(I_c) + eps)
            self._inverse: np.ndarray | tuple[np.ndarray, ...] = 1.0 / (
                self.mean(image * image) - self.mean_guide * self.mean_guide + eps
            )
        else:
            pairs = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
            moments = self.mean(np.stack([image[..., i] * image[..., j] for i, j in pairs], axis=2))
            s00, s01, s02, s11, s12, s22 = (
                moments[..., k] - self.mean_guide[..., i] * self.mean_guide[..., j] + (eps if i == j else 0.0)
                for k, (i, j) in enumerate(pairs)
            )
            # (Σ + eps·I)⁻¹ = adjugate / determinant; the adjugate of a symmetric matrix is symmetric
            c00 = s11 * s22 - s12 * s12
            c01 = s02 * s12 - s01 * s22
            c02 = s01 * s12 - s02 * s11
            c11 = s00 * s22 - s02 * s02
            c12 = s01 * s02 - s00 * s12
            c22 = s00 * s11 - s01 * s01
            determinant = s00 * c00 + s01 * c01 + s02 * c02
            self._inverse = tuple(c / determinant for c in (c00, c01, c02, c11, c12, c22))

    def mean(self, x: np.ndarray) -> np.ndarray:
        """Border-count-normalised window mean (H×W or H×W×C)."""
        size = 2 * self.radius + 1
        sums = cv2.boxFilter(
            x.astype(self.precision, copy=False), -1, (size, size), normalize=False, borderType=cv2.BORDER_CONSTANT
        )
        sums *= self._reciprocal_counts[..., None] if sums.ndim == 3 else self._reciprocal_counts
        return sums

    def __call__(self, source: np.ndarray) -> np.ndarray:
        """The filtered ``source`` (H×W) as H×W in the filter's precision, not clipped."""
        p = np.asarray(source, dtype=self.precision)
        if p.shape != self.guide.shape[:2]:
            raise ValueError(f"source shape {p.shape} does not match the guide {self.guide.shape[:2]}")
        image, mean_i = self.guide, self.mean_guide
        mean_p = self.mean(p)
        if self.mode == "gray":
            a = (self.mean(image * p) - mean_i * mean_p) * self._inverse
            b = mean_p - a * mean_i
            return self.mean(a) * image + self.mean(b)
        cov_ip = self.mean(image * p[..., None]) - mean_i * mean_p[..., None]
        if self.mode == "sesf_color":
            a = cov_ip * self._inverse
        else:
            i00, i01, i02, i11, i12, i22 = self._inverse  # type: ignore[misc]
            v0, v1, v2 = cov_ip[..., 0], cov_ip[..., 1], cov_ip[..., 2]
            a = np.stack(
                [i00 * v0 + i01 * v1 + i02 * v2, i01 * v0 + i11 * v1 + i12 * v2, i02 * v0 + i12 * v1 + i22 * v2],
                axis=2,
            )
        b = mean_p - _channel_dot(a, mean_i)
        return _channel_dot(self.mean(a), image) + self.mean(b)


#: Window counts are cached up to this size only (a band of rows, not a 24 MP frame: the cache
#: would keep several whole frames alive).
_CACHED_COUNTS_PIXELS = 2**22


@lru_cache(maxsize=8)
def _reciprocal_counts(height: int, width: int, radius: int, precision: str) -> np.ndarray:
    """1 / the window counts, read-only and cached: filters of many row bands of one size (gff's
    fusion pass) would otherwise spend ~12 % of each filter rebuilding them."""
    counts = (1.0 / _window_counts(height, width, radius)).astype(precision)
    counts.setflags(write=False)
    return counts


def guide_centre(guide: np.ndarray) -> np.ndarray:
    """Per-channel mean of a guide (a scalar array for a grey one), as float32."""
    if guide.ndim == 3:
        return guide.reshape(-1, guide.shape[2]).mean(axis=0, dtype=np.float64).astype(np.float32)
    return np.asarray(guide.mean(dtype=np.float64), dtype=np.float32)


def _channel_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σ_c a[..., c]·b[..., c] for H×W×3 arrays (plane by plane: numpy's strided last-axis sum is
    several times slower)."""
    total = a[..., 0] * b[..., 0]
    for channel in range(1, a.shape[2]):
        total += a[..., channel] * b[..., channel]
    return total
