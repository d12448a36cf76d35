"""Fusion quality metrics following the MATLAB reference code papers use (see docs/METRICS.md).

``compute_metrics`` takes images in any core format; the per-metric functions take 0..255 float64 grey
arrays (``fused``, list of ``sources``; ground-truth metrics take ``fused, reference``; SF/AG/EN/SD take the
fused image only). Larger is better for every metric except ``Lost`` (sharpness recall's lost blocks).
``sharpness_recall`` streams the frames of an N-frame stack (see ``recall.py``).
"""

from focusstudio.core.metrics.api import (
    DEFAULT_METRICS,
    GT_METRICS,
    METRIC_INFO,
    RECALL_METRICS,
    MetricMode,
    compute_metrics,
)
from focusstudio.core.metrics.fmi import fmi_dct, fmi_edge, fmi_pixel, matlab_sobel_edges
from focusstudio.core.metrics.gradient import qabf, qg
from focusstudio.core.metrics.information import (
    entropy,
    mutual_information,
    ncie,
    normalized_mutual_information,
)
from focusstudio.core.metrics.recall import SharpnessRecall, sharpness_recall, stack_sharpness_recall
from focusstudio.core.metrics.statistics import average_gradient, spatial_frequency, standard_deviation
from focusstudio.core.metrics.structural import psnr, qcb, qm, qy, ssim

__all__ = [
    "DEFAULT_METRICS",
    "GT_METRICS",
    "METRIC_INFO",
    "RECALL_METRICS",
    "MetricMode",
    "SharpnessRecall",
    "average_gradient",
    "compute_metrics",
    "entropy",
    "fmi_dct",
    "fmi_edge",
    "fmi_pixel",
    "matlab_sobel_edges",
    "mutual_information",
    "ncie",
    "normalized_mutual_information",
    "psnr",
    "qabf",
    "qcb",
    "qg",
    "qm",
    "qy",
    "sharpness_recall",
    "spatial_frequency",
    "ssim",
    "stack_sharpness_recall",
    "standard_deviation",
]
