"""Fusion quality metrics following the MATLAB reference code papers use (see docs/METRICS.md).

``compute_metrics`` takes images in any core format; the per-metric functions take 0..255 float64 grey
arrays (``fused``, list of ``sources``; ground-truth metrics take ``fused, reference``; SF/AG/EN/SD take the
fused image only). Larger is better for every metric.
"""

from focusstudio.core.metrics.api import DEFAULT_METRICS, GT_METRICS, METRIC_INFO, MetricMode, compute_metrics
from focusstudio.core.metrics.fmi import fmi_dct, fmi_edge, fmi_pixel, matlab_sobel_edges
from focusstudio.core.metrics.gradient import qabf, qg
from focusstudio.core.metrics.information import (
    entropy,
    mutual_information,
    ncie,
    normalized_mutual_information,
)
from focusstudio.core.metrics.statistics import average_gradient, spatial_frequency, standard_deviation
from focusstudio.core.metrics.structural import psnr, qcb, qm, qy, ssim

__all__ = [
    "DEFAULT_METRICS",
    "GT_METRICS",
    "METRIC_INFO",
    "MetricMode",
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
    "spatial_frequency",
    "ssim",
    "standard_deviation",
]
