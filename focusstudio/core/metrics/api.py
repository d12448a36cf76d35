"""``compute_metrics``: input conversion, colour handling and the metric table.

Input convention: float arrays in [0, 1] (the core's convention), uint8 or uint16 arrays; H×W, H×W×1,
H×W×3 or H×W×4 (alpha dropped). Every image is brought to 8-bit levels first, because the reference MATLAB
code reads 8-bit files: floats are rounded as an 8-bit PNG export would round them (round(255·x)), 16-bit
images are scaled like MATLAB ``im2uint8`` (round(x/257)). RGB images whose three channels are equal are
treated as grey.

Colour: ``mode='grey'`` (default) converts RGB with MATLAB ``rgb2gray`` weights and uint8 rounding, the
usual practice of papers that call Liu's toolbox. ``mode='per_channel'`` is the MFIFB/MEFB wrapper
behaviour: every metric on each of the three channels, then the mean (grey images are repeated on the
three channels; PSNR takes the MSE over all channels at once). If every image is grey both modes agree.
Sharpness recall (``Recall``, ``Lost``; see ``recall.py``) is always measured on the grey images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from focusstudio.core.errors import InputError, ParameterError
from focusstudio.core.metrics._matlab import matlab_round, rgb2gray_uint8
from focusstudio.core.metrics.fmi import fmi_dct, fmi_edge, fmi_pixel
from focusstudio.core.metrics.gradient import qabf, qg
from focusstudio.core.metrics.information import (
    entropy,
    mutual_information,
    ncie,
    normalized_mutual_information,
)
from focusstudio.core.metrics.recall import SharpnessRecall, sharpness_recall
from focusstudio.core.metrics.statistics import average_gradient, spatial_frequency, standard_deviation
from focusstudio.core.metrics.structural import psnr, qcb, qm, qy, ssim
from focusstudio.core.types import image_planes

MetricMode = Literal["grey", "per_channel"]
# (fused, sources, ground truth or None) → value, on 0..255 float64 grey arrays.
_Evaluator = Callable[[np.ndarray, list[np.ndarray], "np.ndarray | None"], float]


@dataclass(frozen=True)
class _Metric:
    description: str
    evaluate: _Evaluator
    needs_gt: bool = False
    minimum_side: int = 1  # smallest image side the metric's windows or pyramid need


def _gt(function: Callable[[np.ndarray, np.ndarray], float]) -> _Evaluator:
    def evaluate(fused: np.ndarray, sources: list[np.ndarray], gt: np.ndarray | None) -> float:
        assert gt is not None
        return function(fused, gt)

    return evaluate


def _fused_only(function: Callable[[np.ndarray], float]) -> _Evaluator:
    return lambda fused, sources, gt: function(fused)


def _with_sources(function: Callable[[np.ndarray, Sequence[np.ndarray]], float]) -> _Evaluator:
    return lambda fused, sources, gt: function(fused, sources)


_METRICS: dict[str, _Metric] = {
    "Qabf": _Metric("Xydeas–Petrović edge preservation Q^{AB/F} (MFIFB code; 0..1)", _with_sources(qabf)),
    "Qg": _Metric(
        "Xydeas–Petrović edge preservation as Liu's Q_G (mean of per-pixel ratios; 0..1)", _with_sources(qg)
    ),
    "Qcb": _Metric("Chen–Blum human-perception contrast preservation (0..1)", _with_sources(qcb)),
    "Qy": _Metric(
        "Yang's SSIM-based structural similarity to the sources (0..1)", _with_sources(qy), minimum_side=7
    ),
    "NCIE": _Metric("Wang's nonlinear correlation information entropy (0..1)", _with_sources(ncie)),
    "MI": _Metric("mutual information Σ I(S_n;F) in bits", _with_sources(mutual_information)),
    "NMI": _Metric(
        "Hossny's normalised mutual information 2·Σ I/(H_S+H_F)", _with_sources(normalized_mutual_information)
    ),
    "FMI_pixel": _Metric(
        "Haghighat feature mutual information on grey values (0..1)", _with_sources(fmi_pixel)
    ),
    "FMI_dct": _Metric(
        "Haghighat feature mutual information on DCT coefficients (0..1)", _with_sources(fmi_dct)
    ),
    "FMI_edge": _Metric(
        "Haghighat feature mutual information on Sobel edges, MFIFB's FMI (0..1; not validated)",
        _with_sources(fmi_edge),
        minimum_side=3,
    ),
    "Qm": _Metric(
        "P.-W. Wang & Liu multiscale Haar edge preservation (toolbox code; 0..3)", _with_sources(qm)
    ),
    # Computed together (one pass over the frames) in compute_metrics, always on grey images.
    "Recall": _Metric(
        "sharpness recall: S_max-weighted mean of min(1, S_result/S_max) over textured 32-px blocks "
        "(0..1; NaN when no block is textured)",
        _with_sources(lambda fused, sources: _recall(fused, sources, None).recall),
    ),
    "Lost": _Metric(
        "share of textured 32-px blocks whose sharpness recall is below 0.5 (0..1, SMALLER is better)",
        _with_sources(lambda fused, sources: _recall(fused, sources, None).lost_fraction),
    ),
    "SF": _Metric("spatial frequency of the fused image", _fused_only(spatial_frequency)),
    "AG": _Metric("average gradient of the fused image", _fused_only(average_gradient), minimum_side=2),
    "EN": _Metric("entropy of the fused image in bits (0..8)", _fused_only(entropy)),
    "SD": _Metric("standard deviation of the fused grey levels", _fused_only(standard_deviation)),
    "PSNR": _Metric("peak signal-to-noise ratio against the ground truth, dB", _gt(psnr), needs_gt=True),
    "SSIM": _Metric(
        "structural similarity to the ground truth (Z. Wang; ≤ 1)", _gt(ssim), needs_gt=True, minimum_side=11
    ),
}

def _recall(fused: np.ndarray, sources: Sequence[np.ndarray], valid: np.ndarray | None) -> SharpnessRecall:
    """Sharpness recall on 0..255 grey levels (the measure takes [0, 1] floats)."""
    return sharpness_recall(fused / 255.0, (source / 255.0 for source in sources), valid=valid)


#: Keys computed by one sharpness-recall pass.
RECALL_METRICS: tuple[str, ...] = ("Recall", "Lost")


#: One-line description of every metric key (larger is better for all of them).
METRIC_INFO: dict[str, str] = {key: metric.description for key, metric in _METRICS.items()}

#: The standard no-reference set; ``compute_metrics`` adds ``GT_METRICS`` when a ground truth is given.
DEFAULT_METRICS: tuple[str, ...] = (
    "Qabf",
    "Qg",
    "Qcb",
    "Qy",
    "NCIE",
    "MI",
    "NMI",
    "Qm",
    "SF",
    "AG",
    "EN",
    "SD",
    "Recall",
    "Lost",
)
GT_METRICS: tuple[str, ...] = ("PSNR", "SSIM")


def _canonical_keys(metrics: Sequence[str] | None, has_gt: bool) -> list[str]:
    if metrics is None:
        return list(DEFAULT_METRICS) + (list(GT_METRICS) if has_gt else [])
    by_lower = {key.lower(): key for key in _METRICS}
    keys: list[str] = []
    for name in metrics:
        key = by_lower.get(name.strip().lower())
        if key is None:
            raise ParameterError(f"unknown metric '{name}' (known: {', '.join(_METRICS)})")
        if _METRICS[key].needs_gt and not has_gt:
            raise ParameterError(f"metric '{key}' needs a ground truth image")
        if key not in keys:
            keys.append(key)
    return keys


def _to_levels(image: np.ndarray, label: str) -> np.ndarray:
    """Any supported array → float64 8-bit levels (integers 0..255), H×W or H×W×3."""
    array = np.asarray(image)
    try:
        array = image_planes(array)
    except ValueError:
        raise InputError(f"{label}: unsupported image shape {array.shape} (expected H×W or H×W×3)") from None
    if array.dtype == np.uint8:
        levels = array.astype(np.float64)
    elif array.dtype == np.uint16:
        levels = matlab_round(array.astype(np.float64) / 257.0)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise InputError(f"{label}: image contains NaN or infinite values")
        levels = np.floor(np.clip(array.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5)
    else:
        raise InputError(
            f"{label}: unsupported pixel type {array.dtype} (use uint8, uint16 or float in [0,1])"
        )
    if (
        levels.ndim == 3
        and np.array_equal(levels[..., 0], levels[..., 1])
        and np.array_equal(levels[..., 0], levels[..., 2])
    ):
        levels = levels[..., 0]
    return np.ascontiguousarray(levels)


def compute_metrics(
    fused: np.ndarray,
    sources: Sequence[np.ndarray],
    gt: np.ndarray | None = None,
    metrics: Sequence[str] | None = None,
    mode: MetricMode = "grey",
    valid: np.ndarray | None = None,
    labels: tuple[str, Sequence[str], str | None] | None = None,
) -> dict[str, float]:
    """Quality metrics of ``fused`` against its ``sources`` (and ``gt`` when given); larger is better.

    ``labels`` (fused, sources, ground truth) names the images in errors, e.g. their file names;
    without them they are "the fused image", "source 1", ...

    ``metrics``: keys of ``METRIC_INFO`` (case-insensitive); default ``DEFAULT_METRICS`` plus PSNR and SSIM
    when a ground truth is given. Returns ``{key: value}`` in the requested order. Values can be NaN where
    a metric is undefined (e.g. edge metrics on flat images) and PSNR is infinite for an exact match.
    ``valid`` (H×W bool, where every source has real pixels) limits the sharpness-recall blocks;
    Recall and Lost are measured on grey images in both modes.
    """
    if mode not in ("grey", "per_channel"):
        raise ParameterError(f"unknown metrics mode '{mode}' (use 'grey' or 'per_channel')")
    if len(sources) < 2:
        raise InputError(f"metrics need at least 2 source images, got {len(sources)}")
    keys = _canonical_keys(metrics, gt is not None)

    fused_label, source_labels, gt_label = (
        labels if labels is not None else ("the fused image", [f"source {i + 1}" for i in range(len(sources))],
                                           "ground truth")
    )
    gt_label = gt_label or "ground truth"
    fused_levels = _to_levels(fused, fused_label)
    source_levels = [_to_levels(s, label) for s, label in zip(sources, source_labels, strict=True)]
    gt_levels = _to_levels(gt, gt_label) if gt is not None else None
    reference_shape = fused_levels.shape[:2]
    labelled = list(zip(source_labels, source_levels, strict=True))
    if gt_levels is not None:
        labelled.append((gt_label, gt_levels))
    for label, levels in labelled:
        if levels.shape[:2] != reference_shape:
            raise InputError(
                f"is {levels.shape[1]}×{levels.shape[0]} pixels but {fused_label} is "
                f"{reference_shape[1]}×{reference_shape[0]}; metrics compare images of one size",
                label,
            )

    height, width = reference_shape
    for key in keys:
        side = _METRICS[key].minimum_side
        if min(height, width) < side:
            raise InputError(f"{key} needs images of at least {side}×{side} pixels, got {width}×{height}")

    def grey(levels: np.ndarray) -> np.ndarray:
        return rgb2gray_uint8(levels) if levels.ndim == 3 else levels

    fused_grey = grey(fused_levels)
    sources_grey = [grey(s) for s in source_levels]
    recall_values: dict[str, float] = {}
    if any(key in RECALL_METRICS for key in keys):
        recall = _recall(fused_grey, sources_grey, valid)
        recall_values = {"Recall": recall.recall, "Lost": recall.lost_fraction}
    other = [key for key in keys if key not in RECALL_METRICS]
    images = [fused_levels, *source_levels] + ([gt_levels] if gt_levels is not None else [])
    any_colour = any(image.ndim == 3 for image in images)
    if mode == "per_channel" and any_colour:
        values = _per_channel(other, fused_levels, source_levels, gt_levels)
    else:
        gt_grey = grey(gt_levels) if gt_levels is not None else None
        values = {key: float(_METRICS[key].evaluate(fused_grey, sources_grey, gt_grey)) for key in other}
    return {key: recall_values[key] if key in RECALL_METRICS else values[key] for key in keys}


def _per_channel(
    keys: list[str], fused: np.ndarray, sources: list[np.ndarray], gt: np.ndarray | None
) -> dict[str, float]:
    def colour(levels: np.ndarray) -> np.ndarray:
        return levels if levels.ndim == 3 else np.repeat(levels[..., None], 3, axis=2)

    def channels(levels: np.ndarray) -> list[np.ndarray]:
        return [np.ascontiguousarray(levels[..., c]) for c in range(3)]

    fused_rgb = colour(fused)
    gt_rgb = colour(gt) if gt is not None else None
    fused_planes = channels(fused_rgb)
    source_planes = [channels(colour(s)) for s in sources]
    gt_planes: list[np.ndarray | None] = list(channels(gt_rgb)) if gt_rgb is not None else [None, None, None]
    values: dict[str, float] = {}
    for key in keys:
        if key == "PSNR":
            assert gt_rgb is not None
            values[key] = psnr(fused_rgb, gt_rgb)  # MSE over all channels at once
            continue
        per_channel = [
            _METRICS[key].evaluate(fused_planes[c], [planes[c] for planes in source_planes], gt_planes[c])
            for c in range(3)
        ]
        values[key] = float(np.mean(per_channel))
    return values
