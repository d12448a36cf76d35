"""Small MATLAB-compatible building blocks shared by the metric implementations.

The published metric values come from MATLAB code, so the details that change numbers are reproduced here
once: ``round`` (half away from zero), ``rgb2gray`` coefficients, Liu's ``normalize1``, ``filter2`` /
``conv2`` with zero padding in 'same' mode, ``fspecial('gaussian')`` and 'valid' cropping.
"""

from __future__ import annotations

import cv2
import numpy as np

#: MATLAB ``rgb2gray`` weights: the first row of the inverse of the NTSC YIQ matrix
#: (≈ 0.298936, 0.587043, 0.114021), computed exactly as MATLAB does.
RGB2GRAY_WEIGHTS: tuple[float, float, float] = tuple(
    float(w)
    for w in np.linalg.inv(np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]]))[0]
)  # type: ignore[assignment]


def matlab_round(values: np.ndarray) -> np.ndarray:
    """MATLAB ``round`` of a non-negative array: halves go up (numpy's ``round`` goes to even).

    ``floor(x + 0.5)`` would be wrong just below a half (0.49999999999999994 + 0.5 rounds to 1.0);
    ``x − floor(x)`` is exact, so the half test is too.
    """
    floor = np.floor(values)
    return floor + (values - floor >= 0.5)


def rgb2gray_uint8(image: np.ndarray) -> np.ndarray:
    """``rgb2gray`` of an 8-bit H×W×3 image (values 0..255): weighted sum rounded like MATLAB's uint8 cast."""
    weights = RGB2GRAY_WEIGHTS
    rgb = image.astype(np.float64)
    grey = weights[0] * rgb[..., 0] + weights[1] * rgb[..., 1] + weights[2] * rgb[..., 2]
    return np.clip(matlab_round(grey), 0.0, 255.0)


def normalize1(data: np.ndarray) -> np.ndarray:
    """Liu's ``normalize1``: min-max stretch to 0..255 and round to integers.

    An all-zero image is returned unchanged (as in the toolbox). A constant non-zero image makes the MATLAB
    code divide 0 by 0 (NaN, then an indexing error in the histogram code); here it maps to zeros.
    """
    data = np.asarray(data, dtype=np.float64)
    high = float(data.max())
    low = float(data.min())
    if high == 0.0 and low == 0.0:
        return data.copy()
    if high == low:
        return np.zeros_like(data)
    return matlab_round((data - low) / (high - low) * 255.0)


def correlate_same(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(kernel, image, 'same')``: 2-D correlation, zero padding, odd-sized kernel."""
    if kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
        raise ValueError(
            "correlate_same needs an odd-sized kernel (MATLAB's 'same' centre differs otherwise)"
        )
    return cv2.filter2D(
        np.ascontiguousarray(image, dtype=np.float64),
        cv2.CV_64F,
        np.ascontiguousarray(kernel, dtype=np.float64),
        borderType=cv2.BORDER_CONSTANT,
    )


def convolve_same(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """MATLAB ``conv2(image, kernel, 'same')``, odd-sized kernel: correlation with the flipped kernel."""
    return correlate_same(image, kernel[::-1, ::-1])


def gaussian_kernel_1d(size: int, sigma: float) -> np.ndarray:
    """1-D factor of MATLAB ``fspecial('gaussian', size, sigma)`` (the 2-D kernel is its outer product)."""
    half = (size - 1) / 2.0
    x = np.arange(size, dtype=np.float64) - half
    kernel = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return kernel / kernel.sum()


def gaussian_filter_valid(image: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """``filter2(fspecial('gaussian', size, sigma), image, 'valid')`` (output shrinks by size−1)."""
    kernel = gaussian_kernel_1d(size, sigma)
    filtered = cv2.sepFilter2D(
        np.ascontiguousarray(image, dtype=np.float64),
        cv2.CV_64F,
        kernel,
        kernel,
        borderType=cv2.BORDER_REFLECT,
    )
    margin = size // 2
    return filtered[margin : filtered.shape[0] - margin, margin : filtered.shape[1] - margin]


def window_is_constant_valid(image: np.ndarray, size: int) -> np.ndarray:
    """True where the size×size window ('valid' positions) holds a single value."""
    kernel = np.ones((size, size), np.uint8)
    work = np.ascontiguousarray(image, dtype=np.float64)
    high = cv2.dilate(work, kernel, borderType=cv2.BORDER_REFLECT)
    low = cv2.erode(work, kernel, borderType=cv2.BORDER_REFLECT)
    margin = size // 2
    crop = (slice(margin, image.shape[0] - margin), slice(margin, image.shape[1] - margin))
    return high[crop] == low[crop]


def histogram_entropy(probabilities: np.ndarray) -> float:
    """−Σ p log2 p over the non-zero entries (the toolbox's ``p.*log2(p+(p==0))``)."""
    nonzero = probabilities[probabilities > 0]
    return float(-np.sum(nonzero * np.log2(nonzero)))


def joint_histogram_256(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """256×256 joint probability of two integer 0..255 images (rows: ``first``, columns: ``second``)."""
    a = first.astype(np.int64).ravel()
    b = second.astype(np.int64).ravel()
    counts = np.bincount(a * 256 + b, minlength=256 * 256).astype(np.float64)
    return counts.reshape(256, 256) / counts.sum()


def check_same_shape(fused: np.ndarray, others: list[np.ndarray], minimum: int = 1) -> None:
    """Raise ValueError unless every image is 2-D, as large as ``minimum`` and the shape of ``fused``."""
    if fused.ndim != 2:
        raise ValueError(f"metric functions take 2-D grey arrays, got shape {fused.shape}")
    if min(fused.shape) < minimum:
        raise ValueError(f"image {fused.shape} is smaller than the {minimum}×{minimum} the metric needs")
    for other in others:
        if other.shape != fused.shape:
            raise ValueError(f"image shapes differ: {other.shape} vs {fused.shape}")
