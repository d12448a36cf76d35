"""Building blocks in focusstudio.core.ops checked against slow, obviously-correct references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from focusstudio.core.errors import ParameterError
from focusstudio.core.methods.registry import get_method, list_methods
from focusstudio.core.ops.box import box_mean, box_mean_np, box_sum, box_sum_np
from focusstudio.core.ops.compose import compose_index, compose_pair, compose_weights
from focusstudio.core.ops.consistency import (
    label_opening_majority,
    label_opening_nearest,
    verify_binary,
    verify_labels,
)
from focusstudio.core.ops.guided_filter import GuidedFilterCPU, guided_filter, guided_filter_cpu, guided_filter_np
from focusstudio.core.ops.morphology import (
    binary_closing,
    binary_dilation,
    binary_erosion,
    binary_opening,
    disk,
    fill_small_holes,
    remove_small_objects,
    small_region_removal,
    small_region_removal_labels,
)
from focusstudio.core.ops.params import (
    AREA_FRACTION,
    DECISION_THRESHOLD,
    GF_EPS,
    GF_RADIUS,
    MORPHOLOGY_RADIUS,
    USE_GUIDED_FILTER,
    USE_MORPHOLOGY,
    USE_SRR,
)
from focusstudio.core.ops.spatial_frequency import (
    spatial_frequency,
    spatial_frequency_np,
    squared_differences_np,
)
from focusstudio.core.progress import Cancelled, CancelToken
from focusstudio.core.types import Stack

# ----------------------------------------------------------------------------- references


def _window(height: int, width: int, y: int, x: int, radius: int) -> tuple[slice, slice]:
    """The in-image part of the (2r+1)² window centred on (y, x)."""
    return (
        slice(max(y - radius, 0), min(y + radius + 1, height)),
        slice(max(x - radius, 0), min(x + radius + 1, width)),
    )


def _brute_box_sum(image: np.ndarray, radius: int) -> np.ndarray:
    height, width = image.shape[:2]
    out = np.zeros(image.shape, dtype=np.float64)
    for y in range(height):
        for x in range(width):
            rows, cols = _window(height, width, y, x, radius)
            out[y, x] = image[rows, cols].sum(axis=(0, 1))
    return out


def _brute_box_mean(image: np.ndarray, radius: int) -> np.ndarray:
    height, width = image.shape[:2]
    out = np.zeros(image.shape, dtype=np.float64)
    for y in range(height):
        for x in range(width):
            rows, cols = _window(height, width, y, x, radius)
            out[y, x] = image[rows, cols].mean(axis=(0, 1))
    return out


def _brute_guided_filter(guide: np.ndarray, source: np.ndarray, radius: int, eps: float, mode: str) -> np.ndarray:
    """He et al.'s definition written out window by window (guide H×W or H×W×3, float64)."""
    height, width = source.shape
    colour = guide.ndim == 3
    channels = guide.shape[2] if colour else 1
    slopes = np.zeros((height, width, channels))
    offsets = np.zeros((height, width))
    for y in range(height):
        for x in range(width):
            rows, cols = _window(height, width, y, x, radius)
            window_p = source[rows, cols].ravel()
            window_i = guide[rows, cols].reshape(-1, channels)
            mean_i = window_i.mean(axis=0)
            mean_p = window_p.mean()
            centred = window_i - mean_i
            cov_ip = (centred * (window_p - mean_p)[:, None]).mean(axis=0)
            if mode == "color":
                sigma = centred.T @ centred / len(window_p)
                a = np.linalg.solve(sigma + eps * np.eye(channels), cov_ip)
            else:  # gray and sesf_color: independent per-channel slopes
                a = cov_ip / ((centred**2).mean(axis=0) + eps)
            slopes[y, x] = a
            offsets[y, x] = mean_p - (a * mean_i).sum()
    guide3 = guide.reshape(height, width, channels)
    return (_brute_box_mean(slopes, radius) * guide3).sum(axis=2) + _brute_box_mean(offsets, radius)


# ----------------------------------------------------------------------------- box filters


@pytest.mark.parametrize("shape", [(9, 13), (7, 11, 3)])
@pytest.mark.parametrize("radius", [1, 3, 20])
def test_box_filters_match_brute_force_sums(shape: tuple[int, ...], radius: int) -> None:
    image = np.random.default_rng(1).random(shape)
    np.testing.assert_allclose(box_sum_np(image, radius), _brute_box_sum(image, radius), atol=1e-10)
    np.testing.assert_allclose(box_mean_np(image, radius), _brute_box_mean(image, radius), atol=1e-12)
    if len(shape) == 2:  # the torch versions work on N×C×H×W
        tensor = torch.from_numpy(image)[None, None]
        np.testing.assert_allclose(box_sum(tensor, radius)[0, 0].numpy(), _brute_box_sum(image, radius), atol=1e-10)
        np.testing.assert_allclose(box_mean(tensor, radius)[0, 0].numpy(), _brute_box_mean(image, radius), atol=1e-12)


def test_torch_box_filter_keeps_float32_and_is_differentiable() -> None:
    x = torch.rand(2, 3, 6, 5, dtype=torch.float32, requires_grad=True)
    y = box_mean(x, 2)
    assert y.dtype == torch.float32 and y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


# ----------------------------------------------------------------------------- spatial frequency


def _direct_spatial_frequency(image: np.ndarray, radius: int) -> np.ndarray:
    """SF written from the formula: zero outside the image for both the shift and the window."""
    height, width = image.shape[:2]
    padded = np.zeros((height + 1, width + 1, *image.shape[2:]))
    padded[1:, 1:] = image
    energy = np.zeros((height, width))
    for y in range(height):
        for x in range(width):
            value = padded[y + 1, x + 1]
            row_term = np.sum((value - padded[y + 1, x]) ** 2)
            column_term = np.sum((value - padded[y, x + 1]) ** 2)
            energy[y, x] = row_term + column_term
    return _brute_box_sum(energy, radius)


@pytest.mark.parametrize("shape", [(8, 10), (6, 7, 3)])
def test_spatial_frequency_matches_direct_formula(shape: tuple[int, ...]) -> None:
    image = np.random.default_rng(3).random(shape)
    expected = _direct_spatial_frequency(image, 2)
    np.testing.assert_allclose(spatial_frequency_np(image, 2), expected, rtol=1e-12, atol=1e-12)
    normalised = spatial_frequency_np(image, 2, normalized=True)
    np.testing.assert_allclose(normalised, np.sqrt(expected / 25.0), rtol=1e-12)
    # torch version on N×C×H×W features: channels summed, or kept apart
    chw = image[None] if image.ndim == 2 else np.moveaxis(image, 2, 0)
    tensor = torch.from_numpy(np.ascontiguousarray(chw))[None]
    np.testing.assert_allclose(spatial_frequency(tensor, 2)[0, 0].numpy(), expected, rtol=1e-12)
    per_channel = spatial_frequency(tensor, 2, sum_channels=False)[0].numpy()
    np.testing.assert_allclose(per_channel.sum(axis=0), expected, rtol=1e-12)


def test_spatial_frequency_zero_pads_first_row_and_column() -> None:
    image = np.zeros((5, 6))
    image[0, 3] = 2.0  # first row: its upper neighbour is the zero padding
    image[4, 0] = 3.0  # first column: its left neighbour is the zero padding
    energy = squared_differences_np(image)
    # (2-0)² left term + (2-0)² padded upper term; the pixel to its right sees (0-2)²
    assert energy[0, 3] == pytest.approx(8.0)
    assert energy[0, 4] == pytest.approx(4.0)
    assert energy[4, 0] == pytest.approx(18.0)
    # A constant image has energy only on the first row/column (the jump from the zero padding)
    constant = np.full((4, 4), 0.5)
    energy = squared_differences_np(constant)
    assert energy[0, 0] == pytest.approx(0.5)
    assert energy[0, 1] == pytest.approx(0.25) and energy[1, 0] == pytest.approx(0.25)
    assert np.all(energy[1:, 1:] == 0)


# ----------------------------------------------------------------------------- guided filter


def test_gray_guided_filter_matches_slow_reference() -> None:
    rng = np.random.default_rng(4)
    guide = rng.random((9, 11))
    source = (rng.random((9, 11)) > 0.5).astype(np.float64)
    expected = _brute_guided_filter(guide, source, 2, 0.01, "gray")
    np.testing.assert_allclose(guided_filter_np(guide, source, 2, 0.01), expected, atol=1e-6)
    g = torch.from_numpy(guide)[None, None]
    p = torch.from_numpy(source)[None, None]
    np.testing.assert_allclose(guided_filter(g, p, 2, 0.01)[0, 0].numpy(), expected, atol=1e-12)


def test_sesf_color_guided_filter_matches_its_formula() -> None:
    rng = np.random.default_rng(5)
    guide = rng.random((8, 10, 3))
    source = (rng.random((8, 10)) > 0.5).astype(np.float64)
    expected = _brute_guided_filter(guide, source, 2, 0.05, "sesf_color")
    np.testing.assert_allclose(guided_filter_np(guide, source, 2, 0.05), expected, atol=1e-6)  # default mode
    np.testing.assert_allclose(guided_filter_np(guide, source, 2, 0.05, mode="sesf_color"), expected, atol=1e-6)


def test_textbook_color_guided_filter_matches_slow_reference() -> None:
    rng = np.random.default_rng(6)
    guide = rng.random((8, 9, 3))
    source = rng.random((8, 9))
    expected = _brute_guided_filter(guide, source, 2, 0.02, "color")
    g = torch.from_numpy(np.moveaxis(guide, 2, 0).copy())[None]
    p = torch.from_numpy(source)[None, None]
    np.testing.assert_allclose(guided_filter(g, p, 2, 0.02, mode="color")[0, 0].numpy(), expected, atol=1e-10)
    # It differs from the SESF variant (which ignores the cross-channel covariance)
    sesf = guided_filter(g, p, 2, 0.02, mode="sesf_color")[0, 0].numpy()
    assert np.abs(sesf - expected).max() > 1e-3
    # A source that is an affine function of the guide passes through almost unchanged
    affine = 0.3 * guide[..., 0] - 0.7 * guide[..., 1] + 0.2 * guide[..., 2] + 0.1
    q = guided_filter(g, torch.from_numpy(affine)[None, None], 2, 1e-9, mode="color")[0, 0].numpy()
    np.testing.assert_allclose(q, affine, atol=1e-5)


@pytest.mark.parametrize("mode", ["gray", "sesf_color", "color"])
def test_cpu_guided_filter_matches_torch_and_reuses_its_guide(mode: str) -> None:
    rng = np.random.default_rng(10)
    guide = rng.random((23, 31)) if mode == "gray" else rng.random((23, 31, 3))
    channels_first = guide[None] if mode == "gray" else np.moveaxis(guide, 2, 0).copy()
    g = torch.from_numpy(channels_first)[None]
    bound = GuidedFilterCPU(guide, 3, 0.01, mode)  # type: ignore[arg-type]
    for _ in range(3):  # several sources through the one guide
        source = (rng.random((23, 31)) > 0.5).astype(np.float64)
        expected = guided_filter(g, torch.from_numpy(source)[None, None], 3, 0.01, mode=mode)[0, 0].numpy()  # type: ignore[arg-type]
        np.testing.assert_allclose(bound(source), expected, atol=1e-10)
        np.testing.assert_allclose(guided_filter_cpu(guide, source, 3, 0.01, mode), expected, atol=1e-10)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        bound(np.zeros((5, 5)))


def test_guided_filter_rejects_mismatched_guides() -> None:
    with pytest.raises(ValueError):
        guided_filter(torch.rand(1, 3, 5, 5), torch.rand(1, 1, 5, 5), 1, 0.1, mode="gray")
    with pytest.raises(ValueError):
        guided_filter(torch.rand(1, 1, 5, 5), torch.rand(1, 1, 5, 5), 1, 0.1, mode="color")
    with pytest.raises(ValueError):
        guided_filter_np(np.random.rand(5, 5, 3), np.random.rand(5, 5), 1, 0.1, mode="gray")
    with pytest.raises(ValueError):
        guided_filter_np(np.random.rand(5, 5), np.random.rand(5, 5), 1, 0.1, mode="sesf_color")


@pytest.mark.parametrize("mode", ["gray", "sesf_color", "color"])
def test_guided_filter_is_differentiable(mode: str) -> None:
    generator = torch.Generator().manual_seed(7)
    channels = 1 if mode == "gray" else 3
    guide = torch.rand(1, channels, 4, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    source = torch.rand(1, 1, 4, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    function = lambda g, p: guided_filter(g, p, 1, 0.1, mode=mode)  # noqa: E731
    assert torch.autograd.gradcheck(function, (guide, source), fast_mode=True)


def test_guided_filter_works_in_float32_with_backward() -> None:
    guide = torch.rand(2, 1, 16, 16, requires_grad=True)
    source = torch.rand(2, 1, 16, 16, requires_grad=True)
    out = guided_filter(guide, source, 3, 0.1)
    assert out.dtype == torch.float32 and out.shape == (2, 1, 16, 16)
    out.mean().backward()
    assert source.grad is not None and guide.grad is not None
    assert torch.isfinite(source.grad).all() and source.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- morphology


def test_disk_is_a_true_disk() -> None:
    footprint = disk(5)
    assert footprint.shape == (11, 11)
    assert int(footprint.sum()) == 81
    assert int(disk(1).sum()) == 5 and int(disk(0).sum()) == 1
    assert np.array_equal(footprint, footprint.T) and np.array_equal(footprint, footprint[::-1])


@pytest.mark.parametrize("radius", [1, 2, 4])
def test_morphology_matches_skimage_border_semantics(radius: int) -> None:
    """Erosion sees 1 outside the image, dilation sees 0 (scipy with explicit border values)."""
    rng = np.random.default_rng(8 + radius)
    footprint = disk(radius).astype(bool)
    for threshold in (0.3, 0.5, 0.7):
        binary = rng.random((30, 37)) > threshold
        eroded = ndi.binary_erosion(binary, footprint, border_value=1)
        dilated = ndi.binary_dilation(binary, footprint, border_value=0)
        assert np.array_equal(binary_erosion(binary, radius), eroded)
        assert np.array_equal(binary_dilation(binary, radius), dilated)
        opened = ndi.binary_dilation(eroded, footprint, border_value=0)
        closed = ndi.binary_erosion(dilated, footprint, border_value=1)
        assert np.array_equal(binary_opening(binary, radius), opened)
        assert np.array_equal(binary_closing(binary, radius), closed)


def test_border_does_not_erode_or_dilate() -> None:
    ones = np.ones((12, 12), dtype=bool)
    assert binary_erosion(ones, 3).all() and binary_opening(ones, 3).all()
    zeros = np.zeros((12, 12), dtype=bool)
    assert not binary_dilation(zeros, 3).any() and not binary_closing(zeros, 3).any()
    # A half-plane of 1s touching the border keeps its border pixels through an opening
    half = np.zeros((12, 12), dtype=bool)
    half[:, :6] = True
    assert np.array_equal(binary_opening(half, 2), half)
    assert np.array_equal(binary_closing(half, 2), half)
    assert binary_erosion(binary_dilation(half, 0), 0).sum() == half.sum()  # radius 0 = identity


def _blob_image() -> np.ndarray:
    image = np.zeros((12, 12), dtype=bool)
    image[1:3, 1:4] = True  # a 6-pixel region
    image[6, 6] = image[7, 7] = True  # two 1-pixel regions touching only diagonally
    image[9:12, 9:12] = True  # a 9-pixel region touching the border
    return image


def test_remove_small_objects_uses_strict_threshold_and_4_connectivity() -> None:
    image = _blob_image()
    kept = remove_small_objects(image, 6)  # 6 is not < 6: kept; the diagonal pair are 2 regions of 1
    assert kept[1:3, 1:4].all() and not kept[6, 6] and not kept[7, 7] and kept[9:, 9:].all()
    removed = remove_small_objects(image, 7)
    assert not removed[1:3, 1:4].any() and removed[9:, 9:].all()
    assert not remove_small_objects(image, 10).any()  # the border region is removed too
    # With 8-connectivity the diagonal pair is one region of area 2
    pair = remove_small_objects(image, 2, connectivity=8)
    assert pair[6, 6] and pair[7, 7]
    assert np.array_equal(remove_small_objects(image, 1), image)


def test_fill_small_holes_is_the_dual() -> None:
    image = ~_blob_image()
    filled = fill_small_holes(image, 6)
    assert not filled[1:3, 1:4].any() and filled[6, 6] and filled[7, 7]
    assert np.array_equal(fill_small_holes(image, 7), ~remove_small_objects(~image, 7))
    assert fill_small_holes(image, 7)[1:3, 1:4].all()


def test_small_region_removal_both_polarities() -> None:
    image = np.zeros((20, 20), dtype=bool)
    image[:, 10:] = True
    image[2:4, 2:4] = True  # 4-pixel island of 1s in the 0 half
    image[15:18, 14:17] = False  # 9-pixel hole of 0s in the 1 half
    threshold_fraction = 9.0 / 400.0  # threshold area = 9: the island (4) goes, the hole (9) stays
    both = small_region_removal(image, threshold_fraction)
    assert not both[2:4, 2:4].any() and not both[15:18, 14:17].any()
    larger = small_region_removal(image, 10.0 / 400.0)
    expected = np.zeros((20, 20), dtype=bool)
    expected[:, 10:] = True
    assert np.array_equal(larger, expected)
    ones_only = small_region_removal(image, 10.0 / 400.0, polarity="ones")
    assert not ones_only[2:4, 2:4].any() and not ones_only[15:18, 14:17].any()
    zeros_only = small_region_removal(image, 10.0 / 400.0, polarity="zeros")
    assert zeros_only[2:4, 2:4].all() and zeros_only[15:18, 14:17].all()


def test_small_region_removal_labels() -> None:
    index = np.zeros((20, 30), dtype=np.int32)
    index[:, 10:20] = 1
    index[:, 20:] = 2
    index[5:7, 3:5] = 2  # 4 px of label 2 inside label 0
    index[12, 14] = 0  # 1 px of label 0 inside label 1
    index[15:18, 25:28] = 1  # 9 px of label 1 inside label 2
    index[0, 9] = 1  # 1 px of label 1 4-connected to the label-1 band: part of a large region
    cleaned = small_region_removal_labels(index, 9.0 / 600.0)  # threshold 9, strict
    assert (cleaned[5:7, 3:5] == 0).all()
    assert cleaned[12, 14] == 1
    assert (cleaned[15:18, 25:28] == 1).all()  # area 9 is not < 9
    assert cleaned[0, 9] == 1  # part of the large label-1 band (4-connected to it)
    cleaned = small_region_removal_labels(index, 10.0 / 600.0)
    expected = np.zeros((20, 30), dtype=np.int32)
    expected[:, 10:20] = 1
    expected[:, 20:] = 2
    expected[0, 9] = 1
    assert np.array_equal(cleaned, expected)
    # 4-connectivity: two diagonal single pixels of label 3 are two regions of area 1
    diagonal = np.zeros((10, 10), dtype=np.int32)
    diagonal[4, 4] = diagonal[5, 5] = 3
    assert not (small_region_removal_labels(diagonal, 2.0 / 100.0) == 3).any()
    assert (small_region_removal_labels(diagonal, 2.0 / 100.0, connectivity=8) == 3).sum() == 2
    # The island takes the label that surrounds most of it
    mixed = np.zeros((10, 10), dtype=np.int32)
    mixed[:, 5:] = 1
    mixed[4, 5] = 2  # its outer ring holds five 1s and three 0s
    assert small_region_removal_labels(mixed, 2.0 / 100.0)[4, 5] == 1
    assert np.array_equal(small_region_removal_labels(mixed, 0.0), mixed)


# ----------------------------------------------------------------------------- composition


class _CountingStack:
    """A stack wrapper counting how many times each frame is decoded."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.stack = Stack.from_arrays(frames)
        self.loads = [0] * len(frames)

    def __len__(self) -> int:
        return len(self.stack)

    def load(self, index: int, grey: bool = False) -> np.ndarray:
        self.loads[index] += 1
        return self.stack.load(index, grey)


@pytest.mark.parametrize("colour", [False, True])
def test_compose_index_and_weights(colour: bool) -> None:
    rng = np.random.default_rng(9)
    shape = (6, 7, 3) if colour else (6, 7)
    frames = [rng.random(shape).astype(np.float32) for _ in range(3)]
    index = rng.integers(0, 3, size=(6, 7))
    stack = _CountingStack(frames)
    seen: list[int] = []
    fused = compose_index(stack, index, on_frame=seen.append)  # type: ignore[arg-type]
    expected = np.choose(index[..., None] if colour else index, frames)
    np.testing.assert_array_equal(fused, expected)
    assert stack.loads == [1, 1, 1] and seen == [0, 1, 2]

    weights = [rng.random((6, 7)).astype(np.float32) for _ in range(3)]
    total = sum(weights)
    expand = (lambda w: w[..., None]) if colour else (lambda w: w)
    expected_soft = sum(expand(w / total) * f for w, f in zip(weights, frames))
    stack.loads = [0, 0, 0]
    soft = compose_weights(stack, weights)  # type: ignore[arg-type]
    np.testing.assert_allclose(soft, expected_soft, rtol=1e-5)
    assert stack.loads == [1, 1, 1]
    raw = compose_weights(stack, lambda i: weights[i], normalize=False)  # type: ignore[arg-type]
    np.testing.assert_allclose(raw, sum(expand(w) * f for w, f in zip(weights, frames)), rtol=1e-5)

    pair = compose_pair(frames[0], frames[1], weights[0])
    np.testing.assert_allclose(pair, expand(weights[0]) * frames[0] + expand(1 - weights[0]) * frames[1], rtol=1e-6)


def test_compose_respects_cancel() -> None:
    stack = Stack.from_arrays([np.zeros((4, 4), np.float32)] * 2)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        compose_index(stack, np.zeros((4, 4), np.int32), cancel=token)
    with pytest.raises(Cancelled):
        compose_weights(stack, [np.ones((4, 4))] * 2, cancel=token)


@pytest.mark.parametrize("mode", ["gray", "sesf_color", "color"])
def test_single_precision_guided_filter_matches_double_on_a_255_scaled_guide(mode: str) -> None:
    """Float32 works on a centred guide: without the centring, mean(I²) − mean(I)² of a 0..255
    guide loses ~1e-3 to cancellation, comparable to the default eps."""
    rng = np.random.default_rng(11)
    guide = rng.random((40, 50)) if mode == "gray" else rng.random((40, 50, 3))
    guide = 100.0 + 150.0 * guide  # bright, nearly flat: the worst case for cancellation
    source = (rng.random((40, 50)) > 0.5).astype(np.float64)
    double = GuidedFilterCPU(guide, 3, 0.1, mode)(source)  # type: ignore[arg-type]
    single = GuidedFilterCPU(guide, 3, 0.1, mode, np.float32)(source)  # type: ignore[arg-type]
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, double, atol=2e-5)


# ----------------------------------------------------------------------------- consistency verification
_CLEAN_ALL = {"use_morphology": True, "morphology_radius": 1, "use_srr": True, "area_fraction": 0.01}


def _half_with_speck_and_hole() -> np.ndarray:
    """12×12, frame 0 (1s) on columns 0–6; a 1-pixel speck of 1s at (2, 10) and a 1-pixel hole at
    (6, 3), with 3 columns on either side of the hole (the width of disk(1), a cross)."""
    decision = np.zeros((12, 12), dtype=bool)
    decision[:, :7] = True
    decision[2, 10] = True
    decision[6, 3] = False
    return decision


@pytest.mark.parametrize(
    "settings",
    [
        # The opening removes the speck (no cross fits in it), the closing fills the hole; the
        # straight edge of the half plane survives both.
        {"use_srr": False},
        # threshold 0.01·144 = 1.44 pixels: both 1-pixel regions are strictly smaller.
        {"use_morphology": False},
        {},
    ],
)
def test_verify_binary_removes_a_speck_and_fills_a_hole(settings: dict[str, bool]) -> None:
    half = np.zeros((12, 12), dtype=bool)
    half[:, :7] = True
    assert np.array_equal(verify_binary(_half_with_speck_and_hole(), {**_CLEAN_ALL, **settings}), half)


def test_verify_binary_switches_and_strict_area_threshold() -> None:
    decision = _half_with_speck_and_hole()
    off = {**_CLEAN_ALL, "use_morphology": False, "use_srr": False}
    assert np.array_equal(verify_binary(decision, off), decision)
    # radius 0 switches the morphology off like use_morphology=False
    assert np.array_equal(verify_binary(decision, {**off, "use_morphology": True, "morphology_radius": 0}), decision)
    domino = np.zeros((10, 10), dtype=bool)
    domino[4, 4:6] = True  # a 2-pixel region
    srr = {**off, "use_srr": True}
    assert np.array_equal(verify_binary(domino, {**srr, "area_fraction": 0.02}), domino)  # 2 is not < 2
    assert not verify_binary(domino, {**srr, "area_fraction": 0.03}).any()  # 2 < 3


def _corner_hole() -> np.ndarray:
    """7×7, label 0 on columns 0–3, label 1 on 4–6, and one pixel of label 0 at (0, 5)."""
    index = np.zeros((7, 7), dtype=np.int32)
    index[:, 4:] = 1
    index[0, 5] = 0
    return index


def test_label_openings_differ_beside_a_removed_speck() -> None:
    """Why two label openings exist: the 0-speck at (0, 5) also leaves (0, 4) a 1-pixel-wide
    part of label 1 (its cross holds 0s at (0, 3) and (0, 5)).

    * nearest: labels are opened in turn on the updated map. Label 0's opening removes the speck,
      which takes its nearest other label (1, at distance 1); label 1 is then a straight half plane
      and loses nothing → the clean half plane.
    * majority: every label is opened on the input map. Label 1's opening loses (0, 4) too; its
      cross holds one opened 0 ((0, 3)) and no opened 1 ((1, 4) is not opened either: its cross
      touches column 3) → it takes 0. The speck's cross holds two opened 1s ((0, 6), (1, 5)) → 1.
    """
    index = _corner_hole()
    half = np.zeros((7, 7), dtype=np.int32)
    half[:, 4:] = 1
    assert np.array_equal(label_opening_nearest(index, 1), half)
    majority = half.copy()
    majority[0, 4] = 0
    assert np.array_equal(label_opening_majority(index, 1), majority)
    # Neither changes its input; radius 0 is the identity (a copy)
    assert np.array_equal(index, _corner_hole())
    for opening in (label_opening_nearest, label_opening_majority):
        same = opening(index, 0)
        assert np.array_equal(same, index) and same is not index


def test_label_openings_give_a_thin_line_to_its_surroundings() -> None:
    """A 1-pixel-wide vertical line of label 2 inside label 0 (label 1 from column 8): no cross
    fits in the line, so it goes; its pixels touch only label 0 and the cross around them holds
    only opened 0s (the 0 strips either side are at least 3 wide, so nothing else is opened away)."""
    index = np.zeros((8, 12), dtype=np.int32)
    index[:, 4] = 2
    index[:, 8:] = 1
    expected = index.copy()
    expected[:, 4] = 0
    assert np.array_equal(label_opening_nearest(index, 1), expected)
    assert np.array_equal(label_opening_majority(index, 1), expected)


def test_verify_labels_opening_then_small_region_removal() -> None:
    index = np.zeros((12, 12), dtype=np.int32)
    index[:, 7:] = 1
    index[1:3, 2:4] = 2  # a 4-pixel square of label 2: a cross fits in none of its pixels
    morphology = {"use_morphology": True, "morphology_radius": 1, "use_srr": False, "area_fraction": 0.0}
    srr = {"use_morphology": False, "morphology_radius": 1, "use_srr": True, "area_fraction": 0.03}
    expected = np.zeros((12, 12), dtype=np.int32)
    expected[:, 7:] = 1
    for opening in (label_opening_nearest, label_opening_majority):
        assert np.array_equal(verify_labels(index, morphology, opening), expected)
        # threshold 0.03·144 = 4.32 > 4: the square takes the label around it
        assert np.array_equal(verify_labels(index, srr, opening), expected)
        # 0.025·144 = 3.6 < 4: kept
        assert np.array_equal(verify_labels(index, {**srr, "area_fraction": 0.025}, opening), index)
        result = verify_labels(index, {**srr, "use_srr": False}, opening)
        assert result.dtype == np.int32 and np.array_equal(result, index) and result is not index


# ----------------------------------------------------------------------------- shared parameter declarations
def test_with_default_keeps_the_declaration_and_checks_the_default() -> None:
    radius = GF_RADIUS.with_default(45, name="base_gf_radius", title="Base GF radius", note="Filter r1.")
    assert (radius.name, radius.default, radius.title) == ("base_gf_radius", 45, "Base GF radius")
    assert (radius.kind, radius.minimum, radius.maximum, radius.stage) == ("int", 1, 512, "post")
    assert radius.help == GF_RADIUS.help + " Filter r1."
    assert GF_EPS.with_default(1e-6).help == GF_EPS.help and GF_EPS.with_default(1e-6).log_scale
    with pytest.raises(ParameterError, match="<= 512"):
        GF_RADIUS.with_default(600)


_SHARED = {spec.name: spec for spec in (USE_GUIDED_FILTER, GF_RADIUS, GF_EPS, USE_MORPHOLOGY, MORPHOLOGY_RADIUS,
                                        USE_SRR, AREA_FRACTION, DECISION_THRESHOLD)}


def test_every_method_uses_the_shared_post_processing_declarations() -> None:
    """Whatever method offers a guided filter, SRR, morphology or a decision threshold offers it
    with the one declared range (CLI, form and presets show the same limits)."""
    seen = set()
    for name in list_methods():
        for spec in get_method(name).params:
            shared = _SHARED.get(spec.name) or _SHARED.get(spec.name.split("_", 1)[-1])  # base_gf_eps → gf_eps
            if shared is None or (spec.name != shared.name and not spec.name.endswith(shared.name)):
                continue
            seen.add((name, spec.name))
            fields = ("kind", "minimum", "maximum", "stage", "step", "log_scale", "choices")
            assert [getattr(spec, f) for f in fields] == [getattr(shared, f) for f in fields], (name, spec.name)
            assert spec.help.startswith(shared.help), (name, spec.name)
    assert {("sf", "gf_eps"), ("sesf", "area_fraction"), ("gacn", "gf_radius"), ("gff", "detail_gf_eps"),
            ("mfifgan", "threshold"), ("twostream", "use_srr")} <= seen
