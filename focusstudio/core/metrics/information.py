"""Histogram-based metrics: ``MI``, ``NMI`` (Hossny), ``NCIE`` (Wang) and ``EN`` (entropy).

All follow Liu's toolbox: images are first stretched to 0..255 with ``normalize1`` (except EN, which bins
the fused grey values directly, as MFIFB/MEFB ``metricsEntropy.m``), joint histograms have 256×256 bins
and logarithms are base 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from focusstudio.core.metrics._matlab import (
    check_same_shape,
    histogram_entropy,
    joint_histogram_256,
    normalize1,
)


@dataclass(frozen=True)
class _MutualInformation:
    """Liu's ``mutual_info.m`` outputs for one image pair (bits)."""

    mutual: float
    joint_entropy: float
    first_entropy: float
    second_entropy: float


def _mutual_info(first: np.ndarray, second: np.ndarray) -> _MutualInformation:
    joint = joint_histogram_256(first, second)
    first_entropy = histogram_entropy(joint.sum(axis=1))
    second_entropy = histogram_entropy(joint.sum(axis=0))
    joint_entropy = histogram_entropy(joint.ravel())
    return _MutualInformation(
        first_entropy + second_entropy - joint_entropy, joint_entropy, first_entropy, second_entropy
    )


def mutual_information(fused: np.ndarray, sources: Sequence[np.ndarray]) -> float:
    """MI = Σ_n I(S_n; F) in bits, on ``normalize1``-stretched images (Liu ``mutual_info.m``).

    N sources: the sum over all sources (the two-source definition is I(A;F) + I(B;F)).
    """
    check_same_shape(fused, list(sources))
    fused_levels = normalize1(fused)
    return float(sum(_mutual_info(normalize1(s), fused_levels).mutual for s in sources))


def normalized_mutual_information(fused: np.ndarray, sources: Sequence[np.ndarray]) -> float:
    """Hossny's NMI = 2·Σ_n I(S_n; F) / (H(S_n) + H(F)) (Liu ``metricMI.m`` with sw=1, MEFB ``metricsNMI.m``).

    N sources: the sum over sources, as the two-source definition sums the two terms (so the value of a
    perfect copy grows with N: 2 for two identical sources and F).
    """
    check_same_shape(fused, list(sources))
    fused_levels = normalize1(fused)
    total = 0.0
    for source in sources:
        info = _mutual_info(normalize1(source), fused_levels)
        entropies = info.second_entropy + info.first_entropy
        if entropies == 0.0:  # both images constant: no information to share, NMI is undefined
            return float("nan")
        total += info.mutual / entropies
    return 2.0 * total


def _nonlinear_correlation(first: np.ndarray, second: np.ndarray) -> float:
    """Liu's ``NCC.m``: (H_x + H_y − H_xy) / log2(256) on 0..255 integer images."""
    info = _mutual_info(first, second)
    return (info.first_entropy + info.second_entropy - info.joint_entropy) / 8.0


def ncie(fused: np.ndarray, sources: Sequence[np.ndarray]) -> float:
    """Wang's nonlinear correlation information entropy (Liu ``metricWang.m`` + ``NCC.m``).

    R is the K×K matrix of nonlinear correlation coefficients (ones on the diagonal) of the normalised
    sources and fused image, with K = N+1 variables (Wang's definition is for K variables; K=3 for two
    sources). NCIE = 1 + Σ_i (λ_i/K)·log2(λ_i/K) / log2(256) over the eigenvalues λ_i of R — the code
    divides by log2 256, not log2 K. Eigenvalues that round-off makes zero or slightly negative contribute 0
    (MATLAB would return NaN or a complex number there).
    """
    check_same_shape(fused, list(sources))
    images = [normalize1(s) for s in sources] + [normalize1(fused)]
    count = len(images)
    correlation = np.eye(count)
    for i in range(count):
        for j in range(i + 1, count):
            correlation[i, j] = correlation[j, i] = _nonlinear_correlation(images[i], images[j])
    eigenvalues = np.linalg.eigvalsh(correlation)
    shares = eigenvalues[eigenvalues > 0] / count
    entropy = -float(np.sum(shares * np.log2(shares))) / 8.0
    return 1.0 - entropy


def entropy(fused: np.ndarray) -> float:
    """EN: entropy in bits of the 256-bin histogram of ``floor`` of the fused grey values (MEFB code)."""
    levels = np.clip(np.floor(fused.astype(np.float64)), 0, 255).astype(np.int64)
    counts = np.bincount(levels.ravel(), minlength=256).astype(np.float64)
    return histogram_entropy(counts / counts.sum())
