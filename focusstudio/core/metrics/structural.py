"""Perception- and structure-based metrics: ``Qcb`` (Chen–Blum), ``Qy`` (Yang), ``Qm`` (P.-W. Wang & Liu)
and the ground-truth metrics ``SSIM`` and ``PSNR``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import scipy.fft

from focusstudio.core.metrics._matlab import (
    check_same_shape,
    gaussian_filter_valid,
    normalize1,
    window_is_constant_valid,
)

# ----------------------------------------------------------------------------------------------- Qcb
_CSF_F0, _CSF_F1, _CSF_A = 15.3870, 1.3456, 0.7622
_CONTRAST_K, _CONTRAST_H, _CONTRAST_P, _CONTRAST_Q, _CONTRAST_Z = 1.0, 1.0, 3.0, 2.0, 0.0001


def _freqspace(count: int) -> np.ndarray:
    """MATLAB ``freqspace`` 1-D vector: ((0:n−1) − floor(n/2))·2/n (zero frequency at index floor(n/2))."""
    return (np.arange(count, dtype=np.float64) - count // 2) * (2.0 / count)


def _csf_filter(height: int, width: int) -> np.ndarray:
    """The DoG contrast-sensitivity filter of ``metricChenBlum.m``, laid out for an unshifted FFT."""
    u, v = np.meshgrid(_freqspace(width) * (width / 30.0), _freqspace(height) * (height / 30.0))
    radius = np.sqrt(u * u + v * v)
    centred = np.exp(-((radius / _CSF_F0) ** 2)) - _CSF_A * np.exp(-((radius / _CSF_F1) ** 2))
    # MATLAB multiplies fftshift(fft2(x)) by the centred filter and ifftshifts back, which is the same as
    # multiplying fft2(x) by ifftshift(filter).
    return np.fft.ifftshift(centred)


def _contrast_kernel(sigma: float) -> np.ndarray:
    """The toolbox's 31×31 exp(−r²/2σ²)/(2πσ²), deliberately not normalised to sum 1."""
    x = np.arange(-15, 16, dtype=np.float64)
    factor = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return np.outer(factor, factor) / (2.0 * np.pi * sigma * sigma)


def _masked_contrasts(images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """C^p / (h·C^q + Z) of each CSF-filtered image; the filtering leaves complex values, which are kept.

    ``filter2(G, X, 'same')`` with zero padding is done as an FFT product on a grid large enough that the
    circular convolution equals the linear one (G is symmetric, so convolution = correlation).
    """
    height, width = images[0].shape
    csf = _csf_filter(height, width)
    half = 15
    padded_shape = (scipy.fft.next_fast_len(height + 2 * half), scipy.fft.next_fast_len(width + 2 * half))
    narrow = scipy.fft.fft2(_contrast_kernel(2.0), s=padded_shape)
    wide = scipy.fft.fft2(_contrast_kernel(4.0), s=padded_shape)
    results = []
    for image in images:
        filtered = scipy.fft.ifft2(scipy.fft.fft2(image) * csf)
        spectrum = scipy.fft.fft2(filtered, s=padded_shape)
        crop = (slice(half, half + height), slice(half, half + width))
        narrow_mean = scipy.fft.ifft2(spectrum * narrow)[crop]
        wide_mean = scipy.fft.ifft2(spectrum * wide)[crop]
        with np.errstate(divide="ignore", invalid="ignore"):
            contrast = np.abs(narrow_mean / wide_mean - 1.0)
        results.append(
            _CONTRAST_K * contrast**_CONTRAST_P / (_CONTRAST_H * contrast**_CONTRAST_Q + _CONTRAST_Z)
        )
    return results


def qcb(fused: np.ndarray, sources: Sequence[np.ndarray]) -> float:
    """Chen–Blum Q_CB as Liu's ``metricChenBlum.m`` (= MEFB ``metricsQcb.m``) computes it.

    Each image is ``im2double``-scaled as the 8-bit reference input is, min-max stretched with
    ``normalize1``, filtered by the frequency-domain DoG CSF (f0=15.3870, f1=1.3456, a=0.7622, band scaled by
    size/30), then local contrast C = |G_σ=2 * I / G_σ=4 * I − 1| with unnormalised 31×31 Gaussians (zero
    padded 'same'), masked as C³/(C²+1e-4). Q = mean over pixels of Σ_n λ_n·Q_nF with
    Q_nF = min/max ratio of the masked contrasts and saliency λ_n = C_n² / Σ_k C_k² (masked contrasts; the
    N-source form of the two-source λ).
    """
    check_same_shape(fused, list(sources))
    # The reference reads uint8 files, so im2double divides by 255 before normalize1; doing the same keeps
    # normalize1's rounding identical.
    fused_contrast, *source_contrasts = _masked_contrasts(
        [normalize1(image.astype(np.float64) / 255.0) for image in [fused, *sources]]
    )
    saliency_total = sum(c * c for c in source_contrasts)
    quality = np.zeros(fused.shape, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        for contrast in source_contrasts:
            preservation = np.where(
                contrast < fused_contrast, contrast / fused_contrast, fused_contrast / contrast
            )
            quality += (contrast * contrast) / saliency_total * preservation
    return float(np.mean(quality))


# ----------------------------------------------------------------------------------------------- SSIM maps
class _GaussianMoments:
    """Local means, variances and covariances ('valid' Gaussian windows) of a set of images, computed once.

    As Z. Wang's ``ssim_index.m``: σ² = G*(x²) − (G*x)². With ``exact_flat`` the round-off this leaves on
    exactly constant windows is replaced by 0 (METRICS.md, for Q_Y), so weights σ_A²/(σ_A²+σ_B²) are exactly
    0, 1 or undefined there.
    """

    def __init__(self, images: Sequence[np.ndarray], size: int, sigma: float, exact_flat: bool) -> None:
        self._images = [image.astype(np.float64) for image in images]
        self._size = size
        self._sigma = sigma
        self.means = [gaussian_filter_valid(image, size, sigma) for image in self._images]
        self.flat = [
            window_is_constant_valid(image, size) if exact_flat else np.zeros(mean.shape, bool)
            for image, mean in zip(self._images, self.means)
        ]
        self._covariances: dict[tuple[int, int], np.ndarray] = {}

    def covariance(self, first: int, second: int) -> np.ndarray:
        key = (min(first, second), max(first, second))
        if key not in self._covariances:
            i, j = key
            product = gaussian_filter_valid(self._images[i] * self._images[j], self._size, self._sigma)
            covariance = product - self.means[i] * self.means[j]
            covariance[self.flat[i] | self.flat[j]] = 0.0
            self._covariances[key] = covariance
        return self._covariances[key]

    def ssim_map(self, first: int, second: int, c1: float, c2: float) -> np.ndarray:
        mu1, mu2 = self.means[first], self.means[second]
        mu1_mu2 = mu1 * mu2
        numerator = (2 * mu1_mu2 + c1) * (2 * self.covariance(first, second) + c2)
        variances = self.covariance(first, first) + self.covariance(second, second)
        return numerator / ((mu1 * mu1 + mu2 * mu2 + c1) * (variances + c2))


# ----------------------------------------------------------------------------------------------- Qy
_YANG_WINDOW, _YANG_SIGMA, _YANG_C = 7, 1.5, 2e-16
_YANG_THRESHOLD = 0.75


def _qy_pair(moments: _GaussianMoments, first: int, second: int, fused: int) -> float:
    ssim_12 = moments.ssim_map(first, second, _YANG_C, _YANG_C)
    ssim_1f = moments.ssim_map(first, fused, _YANG_C, _YANG_C)
    ssim_2f = moments.ssim_map(second, fused, _YANG_C, _YANG_C)
    var_1 = moments.covariance(first, first)
    var_2 = moments.covariance(second, second)
    similar = ssim_12 >= _YANG_THRESHOLD
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = var_1 / (var_1 + var_2)
    # MATLAB multiplies by the masks, so a NaN weight poisons the window whichever branch applies.
    quality = (weight * ssim_1f + (1 - weight) * ssim_2f) * similar + np.maximum(ssim_1f, ssim_2f) * ~similar
    quality = quality[~np.isnan(quality)]
    return float(np.mean(quality)) if quality.size else float("nan")


def qy(fused: np.ndarray, sources: Sequence[np.ndarray]) -> float:
    """Yang's SSIM-based Q_Y as MEFB ``metricsQy.m`` (Liu's ``metricYang.m`` plus NaN removal).

    7×7 Gaussian windows σ=1.5 ('valid'), C1=C2=2e-16; where SSIM(A,B) ≥ 0.75 the local score is
    λ·SSIM(A,F)+(1−λ)·SSIM(B,F) with λ = σ_A²/(σ_A²+σ_B²), elsewhere max(SSIM(A,F), SSIM(B,F)). Windows
    where both sources are flat (λ = 0/0) are dropped, as MFIFB/MEFB do. Exactly constant windows get
    variance 0. N sources: the mean of Q_Y over all source pairs (no N-source definition exists).
    """
    check_same_shape(fused, list(sources), minimum=_YANG_WINDOW)
    pairs = list(itertools.combinations(range(len(sources)), 2))
    if not pairs:
        raise ValueError("Qy needs at least two sources")
    moments = _GaussianMoments([*sources, fused], _YANG_WINDOW, _YANG_SIGMA, exact_flat=True)
    fused_index = len(sources)
    return float(np.mean([_qy_pair(moments, i, j, fused_index) for i, j in pairs]))


# ----------------------------------------------------------------------------------------------- Qm
_SQRT_HALF = np.sqrt(0.5)


def _haar_level(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One level of matlabPyrTools ``buildWpyr(.., 'haar')``: (lowpass, band1, band2, band3).

    corrDn with the 2-tap filter [1 1]/√2 (origin at tap 2) and start 2 pairs rows (1,2), (3,4), …; an odd
    last row or column is dropped. Band 1 is high-pass vertically / low-pass horizontally, band 2 the
    reverse, band 3 high-pass in both (the order ``pyrBand`` returns).
    """
    rows = image.shape[0] // 2 * 2
    cols = image.shape[1] // 2 * 2
    work = image[:rows, :cols]
    low = (work[0::2] + work[1::2]) * _SQRT_HALF
    high = (work[1::2] - work[0::2]) * _SQRT_HALF
    low_low = (low[:, 0::2] + low[:, 1::2]) * _SQRT_HALF
    high_low = (high[:, 0::2] + high[:, 1::2]) * _SQRT_HALF
    low_high = (low[:, 1::2] - low[:, 0::2]) * _SQRT_HALF
    high_high = (high[:, 1::2] - high[:, 0::2]) * _SQRT_HALF
    return low_low, high_low, low_high, high_high


def _qm_pair(first: np.ndarray, second: np.ndarray, fused: np.ndarray, levels: int = 2) -> float:
    images = [first.astype(np.float64), second.astype(np.float64), fused.astype(np.float64)]
    level_scores: list[float] = []
    for _ in range(levels):
        decomposed = [_haar_level(image) for image in images]
        fused_bands = decomposed[2][1:]
        numerator = 0.0
        denominator = 0.0
        for source in decomposed[:2]:
            bands = source[1:]
            weight = sum(band * band for band in bands)
            preservation = sum(np.exp(-np.abs(band - fb)) for band, fb in zip(bands, fused_bands))
            numerator += float(np.sum(preservation * weight))
            denominator += float(np.sum(weight))
        level_scores.append(numerator / denominator if denominator else float("nan"))
        images = [d[0] for d in decomposed]
    return float(level_scores[0] ** (2.0 / 3.0) * level_scores[1] ** (1.0 / 3.0))


def qm(fused: np.ndarray, sources: Sequence[np.ndarray]) -> float:
    """P.-W. Wang & Liu's multiscale Q_M as Liu's ``metricPWW.m`` (2-level Haar ``buildWpyr``).

    Per level: Σ(EP_A·W_A + EP_B·W_B)/Σ(W_A + W_B) with W = H²+V²+D² of the source's detail bands and
    EP = exp(−|H−H_F|) + exp(−|V−V_F|) + exp(−|D−D_F|) — a sum of three terms as in the code, so a perfect
    fusion scores 3, not 1. Q_M = Q_1^(2/3)·Q_2^(1/3). N sources: the mean over all source pairs.
    """
    check_same_shape(fused, list(sources), minimum=4)
    pairs = list(itertools.combinations(range(len(sources)), 2))
    if not pairs:
        raise ValueError("Qm needs at least two sources")
    return float(np.mean([_qm_pair(sources[i], sources[j], fused) for i, j in pairs]))


# ----------------------------------------------------------------------------------------------- GT metrics
_SSIM_WINDOW, _SSIM_SIGMA = 11, 1.5
_SSIM_C1 = (0.01 * 255) ** 2
_SSIM_C2 = (0.03 * 255) ** 2


def ssim(fused: np.ndarray, reference: np.ndarray) -> float:
    """Mean SSIM (Z. Wang ``ssim_index.m``: 11×11 Gaussian σ=1.5, K=(0.01, 0.03), L=255, 'valid')."""
    check_same_shape(fused, [reference], minimum=_SSIM_WINDOW)
    moments = _GaussianMoments([fused, reference], _SSIM_WINDOW, _SSIM_SIGMA, exact_flat=False)
    return float(np.mean(moments.ssim_map(0, 1, _SSIM_C1, _SSIM_C2)))


def psnr(fused: np.ndarray, reference: np.ndarray) -> float:
    """10·log10(255²/MSE) in dB; infinite for identical images. Works on any matching shape (H×W or H×W×3)."""
    if fused.shape != reference.shape:
        raise ValueError(f"image shapes differ: {fused.shape} vs {reference.shape}")
    difference = fused.astype(np.float64) - reference.astype(np.float64)
    mse = float(np.mean(difference * difference))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(255.0**2 / mse))
