"""Edge-preservation metrics of Xydeas and Petrović: ``Qabf`` (MFIFB/MEFB code) and ``Qg`` (Liu's code).

Both measure how much of each source's Sobel edge strength and orientation survives in the fused image,
weighted by the source's edge strength. They differ in constants, Sobel convention and the final average,
exactly as the two reference implementations differ (see docs/METRICS.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from focusstudio.core.metrics._matlab import check_same_shape, convolve_same, correlate_same

# Sobel kernels as written in MFIFB/MEFB metricsQabf.m (applied with conv2, i.e. flipped).
_QABF_SOBEL_Y = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])
_QABF_SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
# The original paper's constants, as in metricsQabf.m.
_QABF_GAMMA_G, _QABF_KAPPA_G, _QABF_SIGMA_G = 0.9994, -15.0, 0.5
_QABF_GAMMA_A, _QABF_KAPPA_A, _QABF_SIGMA_A = 0.9879, -22.0, 0.8

# Sobel kernels as written in Liu's metricXydeas.m (applied with filter2, i.e. correlation).
_QG_SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
_QG_SOBEL_Y = np.array([[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]])
_QG_GAMMA_G, _QG_KAPPA_G, _QG_SIGMA_G = 1.0, -10.0, 0.5
_QG_GAMMA_A, _QG_KAPPA_A, _QG_SIGMA_A = 1.0, -20.0, 0.75
_QG_EPSILON = 0.00001


def _qabf_strength_orientation(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sobel_x = convolve_same(image, _QABF_SOBEL_X)
    sobel_y = convolve_same(image, _QABF_SOBEL_Y)
    strength = np.sqrt(sobel_x * sobel_x + sobel_y * sobel_y)
    with np.errstate(divide="ignore", invalid="ignore"):
        orientation = np.where(sobel_x == 0, np.pi / 2, np.arctan(sobel_y / sobel_x))
    return strength, orientation


def qabf(fused: np.ndarray, sources: Sequence[np.ndarray]) -> float:
    """Q^{AB/F} as MFIFB/MEFB ``metricsQabf.m`` computes it (the value MFIFB publishes).

    Inputs are 0..255 grey arrays. The reference reads 8-bit images and applies ``255*im2double`` to an
    array that is already double, so it works on 255× the grey values; this matters only for its quirk
    ``G = g_F`` (instead of 1) where the source and fused edge strengths are exactly equal, which is
    reproduced. N sources: Σ_n Σ_px Q_nF·g_n / Σ_n Σ_px g_n (the two-source formula summed over sources).
    Returns NaN when no source has any edge.
    """
    check_same_shape(fused, list(sources), minimum=1)
    if len(sources) < 1:
        raise ValueError("Qabf needs at least one source")
    fused_strength, fused_orientation = _qabf_strength_orientation(255.0 * fused.astype(np.float64))
    numerator = 0.0
    denominator = 0.0
    for source in sources:
        strength, orientation = _qabf_strength_orientation(255.0 * source.astype(np.float64))
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = np.where(
                strength > fused_strength,
                fused_strength / strength,
                np.where(strength == fused_strength, fused_strength, strength / fused_strength),
            )
        alignment = 1.0 - np.abs(orientation - fused_orientation) / (np.pi / 2)
        q_strength = _QABF_GAMMA_G / (1.0 + np.exp(_QABF_KAPPA_G * (relative - _QABF_SIGMA_G)))
        q_orientation = _QABF_GAMMA_A / (1.0 + np.exp(_QABF_KAPPA_A * (alignment - _QABF_SIGMA_A)))
        numerator += float(np.sum(q_strength * q_orientation * strength))
        denominator += float(np.sum(strength))
    if denominator == 0.0:
        return float("nan")
    return numerator / denominator


def _qg_gradients(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sobel_x = correlate_same(image, _QG_SOBEL_X)
    sobel_y = correlate_same(image, _QG_SOBEL_Y)
    strength = np.sqrt(sobel_x * sobel_x + sobel_y * sobel_y)
    # Liu's code nudges zero x-responses by 1e-5 before atan (so flat areas get angle 0, not π/2).
    sobel_x = sobel_x + (sobel_x == 0) * _QG_EPSILON
    return strength, np.arctan(sobel_y / sobel_x)


def qg(fused: np.ndarray, sources: Sequence[np.ndarray]) -> float:
    """Q^{AB/F} as Liu's ``metricXydeas.m`` computes it ("Q_G" in Liu's toolbox and survey).

    Constants Γ=1, κg=−10, σg=0.5, κα=−20, σα=0.75; orientation term ||Δα|−π/2|·2/π; zero strengths are
    nudged by 1e-5 in the same order as the MATLAB code (the fused strength is nudged while processing the
    first source, so later sources see the nudged values); score = mean over pixels of
    Σ_n Q_nF·g_n / Σ_n g_n (N sources: the two-source per-pixel ratio summed over sources).
    """
    check_same_shape(fused, list(sources), minimum=1)
    if len(sources) < 1:
        raise ValueError("Qg needs at least one source")
    fused_strength, fused_orientation = _qg_gradients(fused.astype(np.float64))
    weighted_sum = np.zeros(fused.shape, np.float64)
    weight_sum = np.zeros(fused.shape, np.float64)
    for source in sources:
        strength, orientation = _qg_gradients(source.astype(np.float64))
        stronger = strength > fused_strength
        strength = strength + (strength == 0) * _QG_EPSILON
        ratio_down = fused_strength / strength
        fused_strength = fused_strength + (fused_strength == 0) * _QG_EPSILON
        ratio_up = strength / fused_strength
        relative = np.where(stronger, ratio_down, ratio_up)
        alignment = np.abs(np.abs(orientation - fused_orientation) - np.pi / 2) * 2 / np.pi
        q_strength = _QG_GAMMA_G / (1.0 + np.exp(_QG_KAPPA_G * (relative - _QG_SIGMA_G)))
        q_orientation = _QG_GAMMA_A / (1.0 + np.exp(_QG_KAPPA_A * (alignment - _QG_SIGMA_A)))
        weighted_sum += q_strength * q_orientation * strength
        weight_sum += strength
    return float(np.mean(weighted_sum / weight_sum))
