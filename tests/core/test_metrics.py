"""Fusion quality metrics (focusstudio.core.metrics) against known answers and slow transcriptions of the
MATLAB reference code (loops over pixels on small images), following docs/METRICS.md."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from focusstudio.core.errors import InputError, ParameterError
from focusstudio.core.metrics import (
    DEFAULT_METRICS,
    GT_METRICS,
    METRIC_INFO,
    average_gradient,
    compute_metrics,
    entropy,
    fmi_dct,
    fmi_edge,
    fmi_pixel,
    matlab_sobel_edges,
    mutual_information,
    ncie,
    normalized_mutual_information,
    psnr,
    qabf,
    qcb,
    qg,
    qm,
    qy,
    spatial_frequency,
    ssim,
    standard_deviation,
)
from focusstudio.core.metrics._matlab import RGB2GRAY_WEIGHTS, matlab_round, normalize1

Metric = Callable[[np.ndarray, list[np.ndarray]], float]


# ----------------------------------------------------------------------------- test images
def _texture(size: int, seed: int, sigma: float = 1.0) -> np.ndarray:
    """Integer 0..255 grey texture (float64), band-limited so that blurring changes it clearly."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.standard_normal((size, size)), (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    low, high = noise.min(), noise.max()
    return np.round((noise - low) / (high - low) * 255.0)


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return np.round(cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT))


@pytest.fixture(scope="module")
def pair16() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 16×16 source pair (complementary blur) and a mixed fused image, integer grey levels."""
    sharp = _texture(16, 1)
    blurred = _blur(sharp, 1.5)
    left = np.zeros((16, 16), bool)
    left[:, :8] = True
    source_a = np.where(left, sharp, blurred)
    source_b = np.where(left, blurred, sharp)
    fused = np.round(0.7 * source_a + 0.3 * source_b)
    return source_a, source_b, fused


# ----------------------------------------------------------------------------- MATLAB primitives, slowly
def _conv2_same(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """MATLAB conv2(image, kernel, 'same') from the definition of the full convolution (zero outside)."""
    rows, cols = image.shape
    krows, kcols = kernel.shape
    full = np.zeros((rows + krows - 1, cols + kcols - 1))
    for m in range(rows):
        for n in range(cols):
            full[m : m + krows, n : n + kcols] += image[m, n] * kernel
    top, left = krows // 2, kcols // 2  # odd kernels: the central part of the full result
    return full[top : top + rows, left : left + cols]


def _filter2_same(kernel: np.ndarray, image: np.ndarray) -> np.ndarray:
    """MATLAB filter2(kernel, image, 'same') = conv2(image, rot90(kernel, 2), 'same')."""
    return _conv2_same(image, kernel[::-1, ::-1])


def _fspecial_gaussian(size: int, sigma: float) -> np.ndarray:
    half = (size - 1) / 2
    y, x = np.mgrid[-half : half + 1, -half : half + 1]
    kernel = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    return kernel / kernel.sum()


def _normalize1_loop(data: np.ndarray) -> np.ndarray:
    high, low = data.max(), data.min()
    if high == 0 and low == 0:
        return data.copy()
    out = np.empty_like(data)
    for index, value in np.ndenumerate(data):
        scaled = (value - low) / (high - low) * 255
        out[index] = math.floor(scaled + 0.5)  # MATLAB round for x ≥ 0 (no x just below a half here)
    return out


# ----------------------------------------------------------------------------- slow references
def _qabf_reference(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """metricsQabf.m, pixel loops and all (images scaled by 255 as the code does)."""
    tg, kg, dg, ta, ka, da = 0.9994, -15, 0.5, 0.9879, -22, 0.8
    h1 = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], float)
    h3 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)

    def grad(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sx = _conv2_same(255 * image, h3)
        sy = _conv2_same(255 * image, h1)
        g = np.sqrt(sx**2 + sy**2)
        angle = np.zeros_like(g)
        for i, j in np.ndindex(g.shape):
            angle[i, j] = math.pi / 2 if sx[i, j] == 0 else math.atan(sy[i, j] / sx[i, j])
        return g, angle

    (ga, aa), (gb, ab), (gf, af) = grad(a), grad(b), grad(f)
    numerator = denominator = 0.0
    for gs, as_ in ((ga, aa), (gb, ab)):
        for i, j in np.ndindex(gs.shape):
            if gs[i, j] > gf[i, j]:
                relative = gf[i, j] / gs[i, j]
            elif gs[i, j] == gf[i, j]:
                relative = gf[i, j]
            else:
                relative = gs[i, j] / gf[i, j]
            alignment = 1 - abs(as_[i, j] - af[i, j]) / (math.pi / 2)
            q = tg / (1 + math.exp(kg * (relative - dg))) * ta / (1 + math.exp(ka * (alignment - da)))
            numerator += q * gs[i, j]
            denominator += gs[i, j]
    return numerator / denominator


def _qg_reference(img1: np.ndarray, img2: np.ndarray, fuse: np.ndarray) -> float:
    """metricXydeas.m, statement by statement."""
    flt1 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)
    flt2 = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], float)

    def sobel(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = _filter2_same(flt1, image)
        y = _filter2_same(flt2, image)
        g = np.sqrt(x * x + y * y)
        x = x + (x == 0) * 0.00001
        return g, np.arctan(y / x)

    fuse_g, fuse_a = sobel(fuse)
    img1_g, img1_a = sobel(img1)
    img2_g, img2_a = sobel(img2)
    bimap = img1_g > fuse_g
    img1_g = img1_g + (img1_g == 0) * 0.00001
    buffer1 = fuse_g / img1_g
    fuse_g = fuse_g + (fuse_g == 0) * 0.00001
    buffer2 = img1_g / fuse_g
    gaf = bimap * buffer1 + (1 - bimap) * buffer2
    aaf = np.abs(np.abs(img1_a - fuse_a) - np.pi / 2) * 2 / np.pi
    bimap = img2_g > fuse_g
    img2_g = img2_g + (img2_g == 0) * 0.00001
    buffer1 = fuse_g / img2_g
    fuse_g = fuse_g + (fuse_g == 0) * 0.00001
    buffer2 = img2_g / fuse_g
    gbf = bimap * buffer1 + (1 - bimap) * buffer2
    abf = np.abs(np.abs(img2_a - fuse_a) - np.pi / 2) * 2 / np.pi
    qaf = 1 / (1 + np.exp(-10 * (gaf - 0.5))) / (1 + np.exp(-20 * (aaf - 0.75)))
    qbf = 1 / (1 + np.exp(-10 * (gbf - 0.5))) / (1 + np.exp(-20 * (abf - 0.75)))
    return float(np.mean((qaf * img1_g + qbf * img2_g) / (img1_g + img2_g)))


def _freqspace(n: int) -> np.ndarray:
    # MATLAB doc: n even → (-n:2:n-2)/n, n odd → (-n+1:2:n-1)/n
    return np.arange(-n, n - 1, 2) / n if n % 2 == 0 else np.arange(-n + 1, n, 2) / n


def _qcb_reference(im1: np.ndarray, im2: np.ndarray, fim: np.ndarray) -> float:
    """metricChenBlum.m with uint8 inputs (im2double first), filter2 as explicit 'same' correlation."""
    im1, im2, fim = (_normalize1_loop(x / 255.0) for x in (im1, im2, fim))
    hang, lie = im1.shape
    u, v = np.meshgrid(_freqspace(lie), _freqspace(hang))
    u, v = (lie / 30) * u, (hang / 30) * v
    r = np.sqrt(u**2 + v**2)
    sd = np.exp(-((r / 15.3870) ** 2)) - 0.7622 * np.exp(-((r / 1.3456) ** 2))

    def csf(image: np.ndarray) -> np.ndarray:
        return np.fft.ifft2(np.fft.ifftshift(np.fft.fftshift(np.fft.fft2(image)) * sd))

    x, y = np.meshgrid(np.arange(-15, 16), np.arange(-15, 16))
    g1 = np.exp(-(x * x + y * y) / (2 * 2 * 2)) / (2 * np.pi * 2 * 2)
    g2 = np.exp(-(x * x + y * y) / (2 * 4 * 4)) / (2 * np.pi * 4 * 4)

    def filter2_complex(kernel: np.ndarray, image: np.ndarray) -> np.ndarray:
        padded = np.zeros((image.shape[0] + 30, image.shape[1] + 30), complex)
        padded[15:-15, 15:-15] = image
        out = np.zeros(image.shape, complex)
        for i, j in np.ndindex(image.shape):
            out[i, j] = np.sum(kernel * padded[i : i + 31, j : j + 31])
        return out

    def masked(image: np.ndarray) -> np.ndarray:
        filtered = csf(image)
        c = np.abs(filter2_complex(g1, filtered) / filter2_complex(g2, filtered) - 1)
        return c**3 / (c**2 + 0.0001)

    c1p, c2p, cfp = masked(im1), masked(im2), masked(fim)
    q1f = np.where(c1p < cfp, c1p / cfp, cfp / c1p)
    q2f = np.where(c2p < cfp, c2p / cfp, cfp / c2p)
    ramda1 = c1p * c1p / (c1p * c1p + c2p * c2p)
    ramda2 = c2p * c2p / (c1p * c1p + c2p * c2p)
    return float(np.mean(ramda1 * q1f + ramda2 * q2f))


def _local_stats(x: np.ndarray, y: np.ndarray, size: int, sigma: float) -> list[tuple[float, ...]]:
    """(μx, μy, σx², σy², σxy) of every 'valid' window; exactly constant windows get σ² = 0 (METRICS.md)."""
    w = _fspecial_gaussian(size, sigma)
    out = []
    for i in range(x.shape[0] - size + 1):
        for j in range(x.shape[1] - size + 1):
            px, py = x[i : i + size, j : j + size], y[i : i + size, j : j + size]
            mx, my = np.sum(w * px), np.sum(w * py)
            flat_x, flat_y = px.max() == px.min(), py.max() == py.min()
            vx = 0.0 if flat_x else np.sum(w * px * px) - mx * mx
            vy = 0.0 if flat_y else np.sum(w * py * py) - my * my
            cxy = 0.0 if (flat_x or flat_y) else np.sum(w * px * py) - mx * my
            out.append((mx, my, vx, vy, cxy))
    return out


def _qy_reference(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    c = 2e-16

    def ssim_value(mx: float, my: float, vx: float, vy: float, cxy: float) -> float:
        return (2 * mx * my + c) * (2 * cxy + c) / ((mx * mx + my * my + c) * (vx + vy + c))

    values = []
    for s_ab, s_af, s_bf in zip(
        _local_stats(a, b, 7, 1.5), _local_stats(a, f, 7, 1.5), _local_stats(b, f, 7, 1.5)
    ):
        ssim_ab, ssim_af, ssim_bf = ssim_value(*s_ab), ssim_value(*s_af), ssim_value(*s_bf)
        var_a, var_b = s_ab[2], s_ab[3]
        if var_a + var_b == 0:
            continue  # NaN weight: the window is dropped
        weight = var_a / (var_a + var_b)
        if ssim_ab >= 0.75:
            values.append(weight * ssim_af + (1 - weight) * ssim_bf)
        else:
            values.append(max(ssim_af, ssim_bf))
    return float(np.mean(values))


def _haar_bands_reference(image: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """buildWpyr(.., 1, 'haar') via corrDn's definition: filter origin at tap 2, samples start at 2."""
    lo_f = np.array([1.0, 1.0]) / np.sqrt(2)
    hi_f = np.array([-1.0, 1.0]) / np.sqrt(2)  # modulateFlipShift([1 1]/√2)

    def corr_down(x: np.ndarray, taps: np.ndarray, axis: int) -> np.ndarray:
        x = np.moveaxis(x, axis, 0)
        samples = [taps[0] * x[r - 1] + taps[1] * x[r] for r in range(1, x.shape[0], 2)]  # 1-based r = 2,4,…
        return np.moveaxis(np.array(samples), 0, axis)

    lo, hi = corr_down(image, lo_f, 0), corr_down(image, hi_f, 0)
    bands = [corr_down(hi, lo_f, 1), corr_down(lo, hi_f, 1), corr_down(hi, hi_f, 1)]
    return corr_down(lo, lo_f, 1), bands


def _qm_reference(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    scores = []
    for _ in range(2):
        (la, ba), (lb, bb), (lf, bf) = (_haar_bands_reference(x) for x in (a, b, f))
        wa = sum(x * x for x in ba)
        wb = sum(x * x for x in bb)
        epa = sum(np.exp(-np.abs(x - y)) for x, y in zip(ba, bf))
        epb = sum(np.exp(-np.abs(x - y)) for x, y in zip(bb, bf))
        scores.append(np.sum(epa * wa + epb * wb) / np.sum(wa + wb))
        a, b, f = la, lb, lf
    return float(scores[0] ** (2 / 3) * scores[1] ** (1 / 3))


def _fmi_pair_reference(a_sub: np.ndarray, f_sub: np.ndarray) -> float:
    """One window of fmi.m (both windows already min-max normalised), scalar loops as in the MATLAB code."""
    l = 9
    a_pdf = list(a_sub.flatten(order="F") / (sum(a_sub[:, 0]) + sum(a_sub[:, 1]) + sum(a_sub[:, 2])))
    f_pdf = list(f_sub.flatten(order="F") / (sum(f_sub[:, 0]) + sum(f_sub[:, 1]) + sum(f_sub[:, 2])))
    a_cdf, f_cdf = [a_pdf[0]], [f_pdf[0]]
    for i in range(1, l):
        a_cdf.append(a_pdf[i] + a_cdf[i - 1])
        f_cdf.append(f_pdf[i] + f_cdf[i - 1])
    a_mean, f_mean = sum(a_pdf) / l, sum(f_pdf) / l
    a_tmp = [p - a_mean for p in a_pdf]
    f_tmp = [p - f_mean for p in f_pdf]
    cross = sum(x * y for x, y in zip(a_tmp, f_tmp))
    c = 0.0 if cross == 0 else cross / math.sqrt(sum(x * x for x in a_tmp) * sum(y * y for y in f_tmp))
    e_a = e2_a = e_f = e2_f = 0.0
    for i in range(1, l + 1):
        e_a += i * a_pdf[i - 1]
        e2_a += i**2 * a_pdf[i - 1]
        e_f += i * f_pdf[i - 1]
        e2_f += i**2 * f_pdf[i - 1]
    a_sd = math.sqrt(max(e2_a - e_a**2, 0.0))
    f_sd = math.sqrt(max(e2_f - e_f**2, 0.0))

    def up(x: float, y: float) -> float:
        return 0.5 * (x + y - abs(x - y))

    def lo(x: float, y: float) -> float:
        return 0.5 * (x + y - 1 + abs(x + y - 1))

    bound = up if c >= 0 else lo
    if (c >= 0 and (c == 0 or a_sd == 0 or f_sd == 0)) or (c < 0 and (a_sd == 0 or f_sd == 0)):
        weight = 0.0
    else:
        cov = 0.0
        for i in range(l):
            for j in range(l):
                cov = cov + bound(f_cdf[i], a_cdf[j]) - f_cdf[i] * a_cdf[j]
        weight = c / (cov / (f_sd * a_sd))

    def term(i: int, j: int) -> float:
        rect = bound(f_cdf[i], a_cdf[j])
        if i > 0:
            rect -= bound(f_cdf[i - 1], a_cdf[j])
        if j > 0:
            rect -= bound(f_cdf[i], a_cdf[j - 1])
        if i > 0 and j > 0:
            rect += bound(f_cdf[i - 1], a_cdf[j - 1])
        p = weight * rect + (1 - weight) * f_pdf[i] * a_pdf[j]
        return 0.0 if p == 0 else -p * math.log2(abs(p))

    joint = term(0, 0)
    for i in range(1, l):
        joint += term(i, 0)
    for j in range(1, l):
        joint += term(0, j)
    for i in range(1, l):
        for j in range(1, l):
            joint += term(i, j)
    a_ent = sum(-p * math.log2(p) for p in a_pdf if p != 0)
    f_ent = sum(-p * math.log2(p) for p in f_pdf if p != 0)
    mi = a_ent + f_ent - joint
    return 0.0 if mi == 0 else 2 * mi / (a_ent + f_ent)


def _fmi_reference(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """fmi.m's sliding-window loop, including the in-place normalisation of the fused window."""

    def normalise(sub: np.ndarray) -> np.ndarray:
        return np.ones((3, 3)) if sub.max() == sub.min() else (sub - sub.min()) / (sub.max() - sub.min())

    scores = []
    for p in range(1, a.shape[0] - 1):
        for q in range(1, a.shape[1] - 1):
            a_sub, b_sub, f_sub = (x[p - 1 : p + 2, q - 1 : q + 2] for x in (a, b, f))
            if np.all(a_sub == f_sub):
                fmi_af = 1.0
            else:
                a_sub, f_sub = normalise(a_sub), normalise(f_sub)
                fmi_af = _fmi_pair_reference(a_sub, f_sub)
            if np.all(b_sub == f_sub):
                fmi_bf = 1.0
            else:
                b_sub, f_sub = normalise(b_sub), normalise(f_sub)
                fmi_bf = _fmi_pair_reference(b_sub, f_sub)
            scores.append((fmi_af + fmi_bf) / 2)
    return float(np.mean(scores))


def _edge_reference(image: np.ndarray) -> np.ndarray:
    """MATLAB edge(I): imfilter(replicate) with fspecial('sobel')/8, 4·mean threshold, portable thinning."""
    op = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], float) / 8
    padded = np.pad(image, 1, mode="edge")
    m, n = image.shape
    bx = np.zeros((m, n))
    by = np.zeros((m, n))
    for r in range(m):
        for c in range(n):
            window = padded[r : r + 3, c : c + 3]
            bx[r, c] = np.sum(op.T * window)
            by[r, c] = np.sum(op * window)
    b = bx * bx + by * by
    cutoff = 4 * b.sum() / b.size
    bx, by = np.abs(bx), np.abs(by)
    tolerance = 100 * np.finfo(float).eps
    e = np.zeros((m, n), bool)
    for r in range(m):
        for c in range(n):
            b1 = True if c - 1 < 0 else b[r, c - 1] <= b[r, c]
            b2 = True if c + 1 >= n else b[r, c] > b[r, c + 1]
            b3 = True if r - 1 < 0 else b[r - 1, c] <= b[r, c]
            b4 = True if r + 1 >= m else b[r, c] > b[r + 1, c]
            e[r, c] = b[r, c] > cutoff and (
                (bx[r, c] >= by[r, c] - tolerance and b1 and b2)
                or (by[r, c] >= bx[r, c] - tolerance and b3 and b4)
            )
    return e.astype(float)


def _entropy_bits(levels: np.ndarray) -> float:
    _, counts = np.unique(levels, return_counts=True)
    p = counts / counts.sum()
    return float(-np.sum(p * np.log2(p)))


# ----------------------------------------------------------------------------- MATLAB primitives
def test_rgb2gray_weights_are_matlabs() -> None:
    assert np.allclose(RGB2GRAY_WEIGHTS, (0.298936, 0.587043, 0.114021), atol=1e-6)


def test_matlab_round_takes_halves_up_and_keeps_just_below_half() -> None:
    values = np.array([0.5, 1.5, 2.5, 0.49999999999999994, 254.5, 3.2])
    assert matlab_round(values).tolist() == [1.0, 2.0, 3.0, 0.0, 255.0, 3.0]


def test_normalize1_matches_loop_and_edge_cases() -> None:
    data = np.array([[10.0, 29.0, 200.0], [105.0, 11.0, 58.0]])
    assert np.array_equal(normalize1(data), _normalize1_loop(data))
    assert np.array_equal(normalize1(np.zeros((2, 2))), np.zeros((2, 2)))
    assert np.array_equal(normalize1(np.full((2, 2), 7.0)), np.zeros((2, 2)))


# ----------------------------------------------------------------------------- edge-preservation metrics
def test_qabf_matches_matlab_loop_transcription(pair16: tuple[np.ndarray, ...]) -> None:
    a, b, f = pair16
    assert qabf(f, [a, b]) == pytest.approx(_qabf_reference(a, b, f), abs=1e-12)


def test_qabf_identity_is_the_gamma_bounded_value() -> None:
    # F = A = B: relative strength hits the G = g_F quirk at 255× scale, so Q_g = Γg exactly; Δα = 0 gives
    # Q_α = Γα / (1 + exp(κα·(1 − σα))). The weighted mean of a constant is that constant.
    image = _texture(32, 2)
    expected = 0.9994 * 0.9879 / (1 + math.exp(-22 * (1 - 0.8)))
    assert qabf(image, [image, image]) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.975333, abs=1e-6)


def test_qg_matches_matlab_transcription_and_identity(pair16: tuple[np.ndarray, ...]) -> None:
    a, b, f = pair16
    assert qg(f, [a, b]) == pytest.approx(_qg_reference(a, b, f), abs=1e-12)
    # F = A = B: G = 1 and A = 1 everywhere (flat pixels: 1e-5/1e-5), so Q = 1/(1+e^−5)² at every pixel.
    image = _texture(32, 3)
    assert qg(image, [image, image]) == pytest.approx(1 / (1 + math.exp(-5)) ** 2, abs=1e-12)


# ----------------------------------------------------------------------------- Qcb, Qy, Qm
def test_qcb_matches_matlab_transcription(pair16: tuple[np.ndarray, ...]) -> None:
    a, b, f = pair16
    assert qcb(f, [a, b]) == pytest.approx(_qcb_reference(a, b, f), abs=1e-10)


def test_qcb_odd_size_matches_transcription() -> None:
    a = _texture(15, 4)[:, :13]
    b = _blur(a, 1.2)
    f = np.round(0.5 * a + 0.5 * b)
    assert qcb(f, [a, b]) == pytest.approx(_qcb_reference(a, b, f), abs=1e-10)


def test_qy_matches_window_loop_with_flat_windows_dropped() -> None:
    a = _texture(20, 5)
    b = _blur(a, 1.5)
    # A region flat in both sources: its windows have λ = 0/0 and are dropped (not NaN, not 0).
    a[:9, :9] = 40.0
    b[:9, :9] = 40.0
    f = np.round(0.6 * a + 0.4 * b)
    value = qy(f, [a, b])
    assert math.isfinite(value)
    assert value == pytest.approx(_qy_reference(a, b, f), abs=1e-10)


def test_qy_identity_is_one() -> None:
    image = _texture(24, 6)
    assert qy(image, [image, image]) == pytest.approx(1.0, abs=1e-12)


def test_qm_matches_haar_transcription_and_identity_is_three(pair16: tuple[np.ndarray, ...]) -> None:
    a, b, f = pair16
    assert qm(f, [a, b]) == pytest.approx(_qm_reference(a, b, f), abs=1e-12)
    # Odd sizes drop the last row/column at each level, as corrDn's sampling does.
    a17, b17, f17 = (np.pad(x, ((0, 1), (0, 3)), mode="reflect") for x in (a, b, f))
    assert qm(f17, [a17, b17]) == pytest.approx(_qm_reference(a17, b17, f17), abs=1e-12)
    # EP sums three exp(0) = 1 terms, so a perfect fusion scores 3 at both levels: 3^(2/3)·3^(1/3) = 3.
    assert qm(a, [a, a]) == pytest.approx(3.0, abs=1e-12)


# ----------------------------------------------------------------------------- information metrics
def test_mi_of_an_image_with_itself_is_its_entropy_per_source() -> None:
    image = _texture(32, 7)
    levels_entropy = _entropy_bits(normalize1(image))
    assert mutual_information(image, [image]) == pytest.approx(levels_entropy, abs=1e-12)
    assert mutual_information(image, [image, image]) == pytest.approx(2 * levels_entropy, abs=1e-12)
    assert normalized_mutual_information(image, [image, image]) == pytest.approx(2.0, abs=1e-12)


def test_mi_of_independent_images_is_small() -> None:
    rng = np.random.default_rng(8)
    a = rng.integers(0, 4, (128, 128)).astype(float)
    b = rng.integers(0, 4, (128, 128)).astype(float)
    assert 0.0 <= mutual_information(a, [b]) < 0.01


def test_ncie_identity_matches_eigenvalue_formula() -> None:
    image = _texture(32, 9)
    c = _entropy_bits(normalize1(image)) / 8  # NCC(x, x) = H(x)/log2(256)
    shares = np.array([1 + 2 * c, 1 - c, 1 - c]) / 3
    expected = 1 + float(np.sum(shares * np.log2(shares))) / 8
    assert ncie(image, [image, image]) == pytest.approx(expected, abs=1e-12)


def test_entropy_of_two_level_image_is_one_bit() -> None:
    image = np.zeros((8, 8))
    image[:, 4:] = 200.0
    assert entropy(image) == pytest.approx(1.0, abs=1e-15)
    assert entropy(np.full((8, 8), 3.7)) == 0.0
    four = np.arange(64, dtype=float).reshape(8, 8) % 4 * 50
    assert entropy(four) == pytest.approx(2.0, abs=1e-15)


def test_fmi_pixel_matches_matlab_loop_transcription(pair16: tuple[np.ndarray, ...]) -> None:
    a, b, f = (x[:8, 4:12] for x in pair16)
    f = f.copy()
    f[:4] = b[:4]  # windows where B equals the raw fused window but A does not
    f[6:, :3] = 12.0
    b = b.copy()
    b[6:, :3] = 12.0  # windows flat in both B and F
    assert fmi_pixel(f, [a, b]) == pytest.approx(_fmi_reference(a, b, f), abs=1e-12)


def test_fmi_reuses_the_normalised_fused_window_for_later_sources() -> None:
    # One 3×3 window. F = B is a flat patch with one brighter pixel; A differs. Scoring A normalises F in
    # place, so B (raw) no longer equals F and is scored in full. F's pdf has a single point (σ = 0), so the
    # joint pdf is the product of the marginals and MI = 0: both fmi(A, F) and fmi(B, F) are 0, although
    # B is identical to F.
    spike = np.full((3, 3), 50.0)
    spike[1, 1] = 60.0
    a = np.array([[10.0, 80.0, 30.0], [55.0, 20.0, 90.0], [70.0, 40.0, 15.0]])
    assert fmi_pixel(spike, [a]) == 0.0
    assert fmi_pixel(spike, [a, spike]) == 0.0
    assert _fmi_reference(a, spike, spike) == 0.0
    # In the other order B is compared first, while F is still raw, and takes the "identical" shortcut: 1.
    assert fmi_pixel(spike, [spike, a]) == 0.5


def test_fmi_two_flat_windows_at_different_levels_score_one() -> None:
    # Documented decision (left-to-right sums, as Octave): both pdfs uniform, c = 1, joint = diagonal.
    assert fmi_pixel(np.full((3, 3), 5.0), [np.full((3, 3), 7.0)]) == pytest.approx(1.0, abs=1e-12)


def test_fmi_identity_is_one(pair16: tuple[np.ndarray, ...]) -> None:
    a = pair16[0]
    assert fmi_pixel(a, [a, a]) == 1.0
    assert fmi_dct(a, [a, a]) == 1.0
    assert fmi_edge(a, [a, a]) == 1.0


def test_fmi_dct_and_edge_use_the_matlab_features(pair16: tuple[np.ndarray, ...]) -> None:
    import scipy.fft

    a, b, f = (x[:9, 3:12] for x in pair16)
    dct = [scipy.fft.dctn(x, norm="ortho") for x in (a, b, f)]
    assert fmi_dct(f, [a, b]) == pytest.approx(_fmi_reference(*dct), abs=1e-12)
    rng = np.random.default_rng(10)
    image = np.round(cv2.GaussianBlur(rng.random((14, 14)) * 255, (0, 0), 1.0))
    assert np.array_equal(matlab_sobel_edges(image), _edge_reference(image))
    edges = [_edge_reference(x) for x in (a, b, f)]
    assert fmi_edge(f, [a, b]) == pytest.approx(_fmi_reference(*edges), abs=1e-12)


# ----------------------------------------------------------------------------- statistics, GT metrics
def test_sd_sf_ag_on_hand_computed_arrays() -> None:
    square = np.array([[0.0, 2.0], [4.0, 6.0]])
    assert standard_deviation(square) == pytest.approx(math.sqrt(5.0), abs=1e-15)
    # RF = (2² + 2²)/4, CF = (4² + 4²)/4
    assert spatial_frequency(square) == pytest.approx(math.sqrt(2.0 + 8.0), abs=1e-15)
    # gradient: g_x = 2, g_y = 4 everywhere (one-sided); √((4+16)/2) per pixel, 4 pixels, (M−1)(N−1) = 1
    assert average_gradient(square) == pytest.approx(4 * math.sqrt(10.0), abs=1e-12)
    rows = np.tile([0.0, 1.0, 4.0], (3, 1))
    # g_x per row: 1 (one-sided), 2 (central), 3 (one-sided); g_y = 0 → Σ g_x/√2 = 18/√2 over (2·2)
    assert average_gradient(rows) == pytest.approx(18 / math.sqrt(2) / 4, abs=1e-12)


def test_psnr_and_ssim_on_known_cases() -> None:
    image = _texture(24, 11)
    assert psnr(image, image) == math.inf
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-12)
    shifted = image + 5.0
    assert psnr(shifted, image) == pytest.approx(10 * math.log10(255.0**2 / 25.0), abs=1e-12)
    noisy = image + np.random.default_rng(12).normal(0, 20, image.shape)
    assert ssim(noisy, image) < 0.9


def test_ssim_matches_window_loop() -> None:
    a = _texture(14, 13)
    b = _blur(a, 1.0) + 3.0
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    w = _fspecial_gaussian(11, 1.5)
    values = []
    for i, j in np.ndindex(4, 4):
        pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
        ma, mb = np.sum(w * pa), np.sum(w * pb)
        va, vb = np.sum(w * pa * pa) - ma * ma, np.sum(w * pb * pb) - mb * mb
        cab = np.sum(w * pa * pb) - ma * mb
        values.append((2 * ma * mb + c1) * (2 * cab + c2) / ((ma * ma + mb * mb + c1) * (va + vb + c2)))
    assert ssim(a, b) == pytest.approx(float(np.mean(values)), abs=1e-12)


# ----------------------------------------------------------------------------- properties
_SOURCE_METRICS: dict[str, Metric] = {
    "Qabf": qabf,
    "Qg": qg,
    "Qcb": qcb,
    "Qy": qy,
    "NCIE": ncie,
    "MI": mutual_information,
    "NMI": normalized_mutual_information,
    "Qm": qm,
}


@pytest.mark.parametrize("name", list(_SOURCE_METRICS))
def test_symmetric_in_source_order(name: str, pair16: tuple[np.ndarray, ...]) -> None:
    a, b, f = pair16
    metric = _SOURCE_METRICS[name]
    # Qg nudges the fused strength while processing the first source, so order matters at 1e-5 scale.
    tolerance = 1e-9 if name == "Qg" else 1e-12
    assert metric(f, [a, b]) == pytest.approx(metric(f, [b, a]), abs=tolerance)


@pytest.mark.parametrize("name", ["Qabf", "Qg", "Qcb"])
def test_duplicating_every_source_leaves_ratio_metrics_unchanged(
    name: str, pair16: tuple[np.ndarray, ...]
) -> None:
    a, b, f = pair16
    metric = _SOURCE_METRICS[name]
    assert metric(f, [a, b, a, b]) == pytest.approx(metric(f, [a, b]), abs=1e-9)


def test_sum_metrics_double_when_every_source_is_duplicated(pair16: tuple[np.ndarray, ...]) -> None:
    a, b, f = pair16
    for metric in (mutual_information, normalized_mutual_information):
        assert metric(f, [a, b, a, b]) == pytest.approx(2 * metric(f, [a, b]), abs=1e-12)


def test_pairwise_metrics_average_over_source_pairs(pair16: tuple[np.ndarray, ...]) -> None:
    a, b, f = pair16
    c = _blur(a, 0.8)
    for metric in (qy, qm):
        pairs = [metric(f, [x, y]) for x, y in itertools.combinations([a, b, c], 2)]
        assert metric(f, [a, b, c]) == pytest.approx(float(np.mean(pairs)), abs=1e-12)


def test_ncie_uses_n_plus_one_variables(pair16: tuple[np.ndarray, ...]) -> None:
    a, b, _ = pair16
    # Three identical images among four variables: R has a 3×3 block of c = NCC(a, a) off its diagonal.
    value = ncie(a, [a, a, b])
    assert 0.0 < value < 1.0
    assert value != pytest.approx(ncie(a, [a, b]), abs=1e-6)


def test_sharp_fusion_beats_blurred_fusion(make_focus_stack: Callable[..., object]) -> None:
    synthetic = make_focus_stack(2, size=64, seed=3, dtype="uint8")
    sources = [f.astype(np.float64) for f in synthetic.frames]
    sharp = np.round(synthetic.sharp.astype(np.float64) * 255)
    blurred = _blur(sharp, 2.0)
    for metric in (qcb, qy, qabf, qg):
        assert metric(sharp, sources) > metric(blurred, sources) + 0.05, metric.__name__


# ----------------------------------------------------------------------------- compute_metrics
def test_metric_info_covers_every_key() -> None:
    assert set(DEFAULT_METRICS) <= set(METRIC_INFO)
    assert set(GT_METRICS) <= set(METRIC_INFO)
    assert {"FMI_pixel", "FMI_dct", "FMI_edge"} <= set(METRIC_INFO)
    assert "not validated" in METRIC_INFO["FMI_edge"]
    assert all(isinstance(text, str) and text and "\n" not in text for text in METRIC_INFO.values())


def _colour_pair(size: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    channels = [_texture(size, 20 + k) for k in range(3)]
    a = np.stack(channels, axis=2).astype(np.uint8)
    b = _blur(a.astype(np.float64), 1.5).astype(np.uint8)
    f = ((a.astype(np.uint16) + b) // 2).astype(np.uint8)
    return a, b, f


def test_compute_metrics_default_keys_and_gt() -> None:
    a, b, f = _colour_pair()
    values = compute_metrics(f, [a, b])
    assert list(values) == list(DEFAULT_METRICS)
    assert all(math.isfinite(v) for v in values.values())
    with_gt = compute_metrics(f, [a, b], gt=a)
    assert list(with_gt) == [*DEFAULT_METRICS, *GT_METRICS]
    assert compute_metrics(a, [a, b], gt=a, metrics=["psnr", "SSIM"]) == {
        "PSNR": math.inf,
        "SSIM": pytest.approx(1.0),
    }


def test_compute_metrics_grey_mode_uses_rgb2gray_with_uint8_rounding() -> None:
    a, b, f = _colour_pair()
    grey = [
        np.floor(np.tensordot(x.astype(float), RGB2GRAY_WEIGHTS, axes=([2], [0])) + 0.5) for x in (a, b, f)
    ]
    values = compute_metrics(f, [a, b], metrics=["Qabf", "MI", "SD"])
    assert values["Qabf"] == pytest.approx(qabf(grey[2], grey[:2]), abs=1e-12)
    assert values["MI"] == pytest.approx(mutual_information(grey[2], grey[:2]), abs=1e-12)
    assert values["SD"] == pytest.approx(standard_deviation(grey[2]), abs=1e-12)


def test_compute_metrics_accepts_float_uint8_uint16_alike() -> None:
    a, b, f = _colour_pair()
    reference = compute_metrics(f, [a, b], metrics=["Qabf", "Qy", "EN"])
    as_float = compute_metrics(
        f.astype(np.float32) / 255, [x.astype(np.float32) / 255 for x in (a, b)], metrics=["Qabf", "Qy", "EN"]
    )
    as_uint16 = compute_metrics(
        f.astype(np.uint16) * 257, [x.astype(np.uint16) * 257 for x in (a, b)], metrics=["Qabf", "Qy", "EN"]
    )
    assert as_float == pytest.approx(reference, abs=1e-12)
    assert as_uint16 == pytest.approx(reference, abs=1e-12)


def test_compute_metrics_treats_equal_channel_rgb_as_grey() -> None:
    a, b, f = (_texture(24, k).astype(np.uint8) for k in (30, 31, 32))
    rgb = [np.repeat(x[..., None], 3, axis=2) for x in (a, b, f)]
    grey_values = compute_metrics(f, [a, b], metrics=["Qcb", "NMI"])
    assert compute_metrics(rgb[2], rgb[:2], metrics=["Qcb", "NMI"]) == pytest.approx(grey_values, abs=1e-12)
    assert compute_metrics(rgb[2], rgb[:2], metrics=["Qcb", "NMI"], mode="per_channel") == pytest.approx(
        grey_values, abs=1e-12
    )


def test_compute_metrics_per_channel_is_the_channel_mean() -> None:
    a, b, f = _colour_pair()
    values = compute_metrics(f, [a, b], gt=a, metrics=["SF", "Qabf", "PSNR"], mode="per_channel")
    channels = [[x[..., c].astype(float) for x in (a, b, f)] for c in range(3)]
    assert values["SF"] == pytest.approx(np.mean([spatial_frequency(ch[2]) for ch in channels]), abs=1e-12)
    assert values["Qabf"] == pytest.approx(np.mean([qabf(ch[2], ch[:2]) for ch in channels]), abs=1e-12)
    # PSNR takes the MSE over all three channels at once.
    assert values["PSNR"] == pytest.approx(psnr(f.astype(float), a.astype(float)), abs=1e-12)


def test_compute_metrics_rejects_bad_input() -> None:
    a, b, f = _colour_pair()
    with pytest.raises(InputError):
        compute_metrics(f, [a])
    with pytest.raises(InputError, match="source 2"):
        compute_metrics(f, [a, b[:20]])
    with pytest.raises(InputError):
        compute_metrics(f.astype(np.int32), [a, b])
    with pytest.raises(ParameterError, match="unknown metric"):
        compute_metrics(f, [a, b], metrics=["Qabf", "Qzz"])
    with pytest.raises(ParameterError, match="ground truth"):
        compute_metrics(f, [a, b], metrics=["PSNR"])
    with pytest.raises(ParameterError):
        compute_metrics(f, [a, b], mode="rgb")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="SSIM needs images of at least 11"):
        compute_metrics(f[:8, :8], [a[:8, :8], b[:8, :8]], gt=a[:8, :8], metrics=["SF", "SSIM"])


# ----------------------------------------------------------------------------- METRICS.md caveat
def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_coffee_caveat_source_copy_wins_mi_but_gt_wins_qabf_and_psnr(shared_dir: Path) -> None:
    scene = shared_dir / "data" / "synth_stack3_gt" / "02_coffee"
    if not scene.is_dir():
        pytest.skip(f"{scene} not found")
    sources = [_read(scene / f"{i}.png") for i in (1, 2, 3)]
    gt = _read(scene / "gt.png")
    keys = ["MI", "Qabf", "PSNR"]
    candidates = {"gt": gt, **{f"source {i + 1}": s for i, s in enumerate(sources)}}
    scores = {
        name: compute_metrics(image, sources, gt=gt, metrics=keys) for name, image in candidates.items()
    }
    assert scores["source 1"]["MI"] > scores["gt"]["MI"]
    for key in ("Qabf", "PSNR"):
        assert max(scores, key=lambda name, k=key: scores[name][k]) == "gt", key
