"""Haghighat's fast feature mutual information (FMI), vectorised over all 3×3 windows.

This follows ``fmi.m`` as shipped in MEFB ``metricsFMI.m`` step by step: per 3×3 window the two feature
patches are min-max normalised, turned into 9-bin pdfs (column-major window order), the joint pdf is
built by Nelsen's method between the independent and the Fréchet bound copulas, and the window score is
2·MI/(H_S + H_F), with real(−p·log2 p) for the negative joint values the mix can produce. Sums are taken
in the order of the MATLAB loops, because exact-zero tests (c == 0, mi == 0) depend on rounding.

Decision where MATLAB's behaviour is not documented: ``sum``/``mean`` of a 9-element vector are taken left
to right (what Octave does). It matters for two flat windows at different levels: both pdfs are uniform,
the mean of nine 1/9 comes out one ulp above 1/9, the deviations are equal tiny numbers, c = 1 and the
window scores ≈ 1; with a pairwise sum c would be exactly 0 and the window would score 0.

Quirk reproduced: the fused window is normalised in place while scoring the first source, so the
"identical window → 1" shortcut for the next source compares the raw source window with the *normalised*
fused window (a source window equal to the raw fused window is then scored in full). With N sources the
same happens source after source; the score is the mean over sources.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np
import scipy.fft

from focusstudio.core.metrics._matlab import check_same_shape

_WINDOW = 3
_TAPS = _WINDOW * _WINDOW
_CHUNK = 2048  # windows per vectorised batch: the (9, 9, batch) arrays stay cache-sized


def _windows(feature: np.ndarray) -> np.ndarray:
    """All 'valid' 3×3 windows as a (9, K) array: tap t = 3·col + row (MATLAB's column-major ``sub(:)``).

    Taps along the first axis keep every per-tap vector contiguous for the tap-by-tap loops below.
    """
    rows = feature.shape[0] - _WINDOW + 1
    cols = feature.shape[1] - _WINDOW + 1
    taps = [feature[r : r + rows, c : c + cols].ravel() for c in range(_WINDOW) for r in range(_WINDOW)]
    return np.stack(taps)


def _normalise_windows(windows: np.ndarray) -> np.ndarray:
    high = windows.max(axis=0)
    low = windows.min(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        normalised = (windows - low) / (high - low)
    normalised[:, high == low] = 1.0
    return normalised


def _sequential_sum(rows: np.ndarray) -> np.ndarray:
    """Left-to-right sum over the first axis (the order of a MATLAB for-loop)."""
    total = rows[0].copy()
    for row in rows[1:]:
        total += row
    return total


def _window_total(patch: np.ndarray) -> np.ndarray:
    """``sum(sum(sub))`` of a 3×3 window: three column sums, then their sum."""
    column_sums = [(patch[3 * c] + patch[3 * c + 1]) + patch[3 * c + 2] for c in range(_WINDOW)]
    return (column_sums[0] + column_sums[1]) + column_sums[2]


def _covariance_sum(bound: np.ndarray, product: np.ndarray) -> np.ndarray:
    """fmi.m's ``cov = cov + bound(i,j) − F(i)·A(j)`` over i then j, in that order and association."""
    total = np.zeros(bound.shape[1])
    for bound_term, product_term in zip(bound, product):
        total += bound_term
        total -= product_term
    return total


def _neg_plogp(p: np.ndarray) -> np.ndarray:
    """real(−p·log2 p), 0 at p = 0; for the negative values Nelsen's mix can produce that is −p·log2|p|."""
    nonzero = p != 0
    logs = np.log2(np.abs(p), out=np.zeros_like(p), where=nonzero)
    logs *= p
    return np.negative(logs, out=logs)


def _fmi_windows(source: np.ndarray, fused: np.ndarray) -> np.ndarray:
    """Window scores fmi(S, F) for normalised (9, K) windows that are not identical."""
    source_pdf = source / _window_total(source)
    fused_pdf = fused / _window_total(fused)
    source_cdf = np.cumsum(source_pdf, axis=0)
    fused_cdf = np.cumsum(fused_pdf, axis=0)

    source_dev = source_pdf - _sequential_sum(source_pdf) / _TAPS
    fused_dev = fused_pdf - _sequential_sum(fused_pdf) / _TAPS
    cross = _sequential_sum(source_dev * fused_dev)
    spread = np.sqrt(_sequential_sum(source_dev * source_dev) * _sequential_sum(fused_dev * fused_dev))
    with np.errstate(divide="ignore", invalid="ignore"):
        correlation = np.where(cross == 0, 0.0, cross / spread)

    index = np.arange(1, _TAPS + 1, dtype=np.float64)[:, None]
    source_var = _sequential_sum(index**2 * source_pdf) - _sequential_sum(index * source_pdf) ** 2
    fused_var = _sequential_sum(index**2 * fused_pdf) - _sequential_sum(index * fused_pdf) ** 2
    # MATLAB's sqrt of a round-off-negative variance is complex; it can only occur for a one-point pdf,
    # where the exact variance is 0, so it is clipped.
    source_sd = np.sqrt(np.maximum(source_var, 0.0))
    fused_sd = np.sqrt(np.maximum(fused_var, 0.0))
    sd_zero = (source_sd == 0) | (fused_sd == 0)

    joint_entropy = np.empty(source.shape[1])
    positive = correlation >= 0
    for use_upper in (True, False):
        part = np.flatnonzero(positive if use_upper else ~positive)
        if part.size:
            joint_entropy[part] = _joint_entropy(
                source_pdf[:, part],
                fused_pdf[:, part],
                source_cdf[:, part],
                fused_cdf[:, part],
                correlation[part],
                source_sd[part] * fused_sd[part],
                sd_zero[part],
                use_upper,
            )

    source_entropy = _sequential_sum(_neg_plogp(source_pdf))
    fused_entropy = _sequential_sum(_neg_plogp(fused_pdf))
    mutual = source_entropy + fused_entropy - joint_entropy
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mutual == 0, 0.0, 2.0 * mutual / (source_entropy + fused_entropy))


def _joint_entropy(
    source_pdf: np.ndarray,
    fused_pdf: np.ndarray,
    source_cdf: np.ndarray,
    fused_cdf: np.ndarray,
    correlation: np.ndarray,
    sd_product: np.ndarray,
    sd_zero: np.ndarray,
    use_upper: bool,
) -> np.ndarray:
    """Joint entropy of Nelsen's mix between independence and one Fréchet bound (upper when c ≥ 0).

    The bound copula on the cdf grid [i (fused), j (source)] is written as fmi.m writes it:
    0.5·(F+A−|F−A|) (upper, = min) or 0.5·(F+A−1+|F+A−1|) (lower, = max(F+A−1, 0)).
    """
    f = fused_cdf[:, None, :]
    a = source_cdf[None, :, :]
    total = f + a
    if use_upper:
        bound = 0.5 * (total - np.abs(f - a))
    else:
        total -= 1
        bound = 0.5 * (total + np.abs(total))
    product = f * a
    taps2 = _TAPS * _TAPS
    covariance = _covariance_sum(bound.reshape(taps2, -1), product.reshape(taps2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = correlation / (covariance / sd_product)
    if use_upper:
        weight = np.where((correlation == 0) | sd_zero, 0.0, ratio)
    else:
        weight = np.where(sd_zero, 0.0, ratio)

    # Rectangle measures of the bound copula, evaluated left to right as in fmi.m.
    rectangle = bound.copy()
    rectangle[1:, :] -= bound[:-1, :]
    rectangle[:, 1:] -= bound[:, :-1]
    rectangle[1:, 1:] += bound[:-1, :-1]
    rectangle *= weight
    rectangle += ((1 - weight) * fused_pdf)[:, None, :] * source_pdf[None, :, :]
    terms = _neg_plogp(rectangle)
    # Accumulation order of fmi.m: (1,1), the first column, the first row, then the rest row by row.
    entropy = terms[0, 0].copy()
    for i in range(1, _TAPS):
        entropy += terms[i, 0]
    for j in range(1, _TAPS):
        entropy += terms[0, j]
    for i in range(1, _TAPS):
        for j in range(1, _TAPS):
            entropy += terms[i, j]
    return entropy


def _fmi_features(fused_feature: np.ndarray, source_features: Sequence[np.ndarray]) -> float:
    fused_windows = _windows(fused_feature)
    fused_normalised = _normalise_windows(fused_windows)
    count = fused_windows.shape[1]
    fused_is_normalised = np.zeros(count, bool)
    score_sum = np.zeros(count)
    for feature in source_features:
        source_windows = _windows(feature)
        current_fused = np.where(fused_is_normalised, fused_normalised, fused_windows)
        identical = np.all(source_windows == current_fused, axis=0)
        scores = np.ones(count)
        todo = np.flatnonzero(~identical)
        for start in range(0, todo.size, _CHUNK):
            chunk = todo[start : start + _CHUNK]
            scores[chunk] = _fmi_windows(
                _normalise_windows(source_windows[:, chunk]), fused_normalised[:, chunk]
            )
        fused_is_normalised |= ~identical
        score_sum += scores
    return float(np.mean(score_sum / len(source_features)))


def _fmi(
    fused: np.ndarray, sources: Sequence[np.ndarray], feature: Callable[[np.ndarray], np.ndarray]
) -> float:
    check_same_shape(fused, list(sources), minimum=_WINDOW)
    if len(sources) < 1:
        raise ValueError("FMI needs at least one source")
    return _fmi_features(feature(fused.astype(np.float64)), [feature(s.astype(np.float64)) for s in sources])


def _identity(image: np.ndarray) -> np.ndarray:
    return image


def _dct2(image: np.ndarray) -> np.ndarray:
    return scipy.fft.dctn(image, type=2, norm="ortho")


_EDGE_SOBEL_Y = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]) / 8.0
_EDGE_TIE_TOLERANCE = 100 * np.finfo(np.float64).eps


def matlab_sobel_edges(image: np.ndarray) -> np.ndarray:
    """MATLAB ``edge(I)`` (Sobel, automatic threshold, thinning) as a 0/1 float array.

    Gradients: ``imfilter`` with fspecial('sobel')/8 and its transpose, replicate borders; magnitude
    b = bx²+by²; cutoff = 4·mean(b); a pixel is an edge when b > cutoff and it is a local maximum across
    the dominant gradient direction (|bx| ≥ |by| − 100·eps: b(r,c−1) ≤ b(r,c) > b(r,c+1); |by| ≥ |bx| −
    100·eps: b(r−1,c) ≤ b(r,c) > b(r+1,c)), borders counting as satisfied — the portable code of
    MATLAB's edge.m. Not validated against MATLAB output (Octave's edge thins differently).
    """
    work = np.ascontiguousarray(image, dtype=np.float64)
    grad_x = np.abs(
        cv2.filter2D(work, cv2.CV_64F, np.ascontiguousarray(_EDGE_SOBEL_Y.T), borderType=cv2.BORDER_REPLICATE)
    )
    grad_y = np.abs(cv2.filter2D(work, cv2.CV_64F, _EDGE_SOBEL_Y, borderType=cv2.BORDER_REPLICATE))
    magnitude = grad_x * grad_x + grad_y * grad_y
    cutoff = 4.0 * float(np.sum(magnitude)) / magnitude.size
    padded = np.pad(magnitude, 1, constant_values=-np.inf)
    left, right = padded[1:-1, :-2], padded[1:-1, 2:]
    up, down = padded[:-2, 1:-1], padded[2:, 1:-1]
    horizontal_max = (grad_x >= grad_y - _EDGE_TIE_TOLERANCE) & (left <= magnitude) & (magnitude > right)
    vertical_max = (grad_y >= grad_x - _EDGE_TIE_TOLERANCE) & (up <= magnitude) & (magnitude > down)
    return ((magnitude > cutoff) & (horizontal_max | vertical_max)).astype(np.float64)


def fmi_pixel(fused: np.ndarray, sources: Sequence[np.ndarray]) -> float:
    """FMI on raw grey values (``fmi(..., 'none', 3)``), mean over sources."""
    return _fmi(fused, sources, _identity)


def fmi_dct(fused: np.ndarray, sources: Sequence[np.ndarray]) -> float:
    """FMI on the orthonormal 2-D DCT of the whole image (``fmi(..., 'dct', 3)``), mean over sources."""
    return _fmi(fused, sources, _dct2)


def fmi_edge(fused: np.ndarray, sources: Sequence[np.ndarray]) -> float:
    """FMI on MATLAB-style Sobel edge maps (``fmi(..., 'edge', 3)``, MFIFB's "FMI"). Not validated."""
    return _fmi(fused, sources, matlab_sobel_edges)
