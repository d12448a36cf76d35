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
from tests.core.metric_references import (
    _edge_reference,
    _entropy_bits,
    _fmi_reference,
    _fspecial_gaussian,
    _normalize1_loop,
    _qabf_reference,
    _qcb_reference,
    _qg_reference,
    _qm_reference,
    _qy_reference,
)

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
