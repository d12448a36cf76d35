"""Slow transcriptions of the MATLAB reference code of the fusion metrics (loops over pixels on
small images), the answers tests/core/test_metrics.py checks the fast implementations against."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Metric = Callable[[np.ndarray, list[np.ndarray]], float]


# ----------------------------------------------------------------------------- test images

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


