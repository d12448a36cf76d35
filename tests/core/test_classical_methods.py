"""The classical methods sf, laplacian and gff on synthetic stacks with a known answer."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest
import scipy.ndimage as ndi

from focusstudio.core.errors import InputError, ParameterError
from focusstudio.core.methods import get_method, list_methods
from focusstudio.core.methods.laplacian import laplacian_pyramid, majority_filter, reconstruct
from focusstudio.core.ops.consistency import label_opening_nearest, verify_binary, verify_labels
from focusstudio.core.ops.morphology import disk
from focusstudio.core.pipeline import fuse, run_fusion
from focusstudio.core.progress import Cancelled, CancelToken, ProgressEvent, run_to_completion
from focusstudio.core.types import FusionResult, Stack
from tests.conftest import SyntheticFocusStack

CLASSICAL = ("sf", "laplacian", "gff")
MakeStack = Callable[..., SyntheticFocusStack]


def _psnr(image: np.ndarray, reference: np.ndarray) -> float:
    error = np.mean((image.astype(np.float64) - reference.astype(np.float64)) ** 2)
    return float(10.0 * np.log10(1.0 / max(error, 1e-12)))


def _as_unit(frame: np.ndarray) -> np.ndarray:
    if frame.dtype == np.uint8:
        return frame.astype(np.float32) / 255.0
    if frame.dtype == np.uint16:
        return frame.astype(np.float32) / 65535.0
    return frame.astype(np.float32)


def _declared(method: str, name: str) -> bool:
    patterns = (re.escape(p).replace(re.escape("{i}"), r"\d+") for p in get_method(method).map_names)
    return any(re.fullmatch(p, name) for p in patterns)


# ----------------------------------------------------------------------------- registry / params


def test_methods_are_registered_with_staged_parameters() -> None:
    for name in CLASSICAL:
        assert name in list_methods()
        method = get_method(name)
        assert method.family == "classical" and method.map_names
        assert any(s.stage == "analysis" for s in method.params)
    sf_stages = {s.name: s.stage for s in get_method("sf").params}
    assert sf_stages == {
        "sf_radius": "analysis", "boundary_radius": "analysis",
        "depth_order": "analysis", "depth_margin": "analysis", "depth_texture": "analysis",
        "use_morphology": "post", "morphology_radius": "post", "use_srr": "post",
        "composition": "post",
        "area_fraction": "post", "use_guided_filter": "post", "gf_radius": "post", "gf_eps": "post",
    }
    gff_defaults = get_method("gff").params.defaults()
    assert (gff_defaults["base_gf_radius"], gff_defaults["base_gf_eps"]) == (45, 0.3)
    assert (gff_defaults["detail_gf_radius"], gff_defaults["detail_gf_eps"]) == (7, 1e-6)
    assert (gff_defaults["saliency_radius"], gff_defaults["saliency_sigma"], gff_defaults["base_radius"]) == (5, 5, 15)


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("sf", {"sf_radius": 0}),
        ("sf", {"area_fraction": -0.1}),
        ("sf", {"gf_eps": 0.0}),
        ("sf", {"use_guided_filter": "maybe"}),
        ("sf", {"no_such_parameter": 1}),
        ("laplacian", {"levels": -1}),
        ("laplacian", {"consistency_radius": 0}),
        ("gff", {"guide": "rgb"}),
        ("gff", {"base_gf_radius": 2.5}),
    ],
)
def test_invalid_parameters_are_rejected(make_focus_stack: MakeStack, method: str, params: dict) -> None:
    stack = make_focus_stack(2, size=32).stack
    with pytest.raises(ParameterError):
        fuse(stack, method, params, device="cpu")


# ----------------------------------------------------------------------------- sf


def test_sf_pair_decision_matches_the_known_mask(make_focus_stack: MakeStack) -> None:
    synthetic = make_focus_stack(2, size=160, seed=3)
    result = fuse(synthetic.stack, "sf", device="cpu")
    decision = result.maps["decision"].data
    assert decision.dtype == np.float32 and set(np.unique(decision)) <= {0.0, 1.0}
    chosen, truth = decision > 0.5, synthetic.labels == 0
    assert (chosen & truth).sum() / (chosen | truth).sum() >= 0.95
    assert set(result.maps) == {
        "activity_0", "activity_1", "activity", "index_raw", "index", "decision_raw", "decision", "weight",
    }
    assert all(_declared("sf", name) for name in result.maps)
    assert np.array_equal(result.maps["index"].data, np.where(chosen, 0, 1))
    weight = result.maps["weight"].data
    assert weight.shape == synthetic.labels.shape and weight.dtype == np.float32
    # the guided filter (radius 4) only changes pixels within 2·4 of a decision boundary
    square = np.ones((17, 17), dtype=bool)
    far = ndi.binary_erosion(chosen, square, border_value=1) | ndi.binary_erosion(~chosen, square, border_value=1)
    assert far.mean() > 0.5
    np.testing.assert_allclose(weight[far], decision[far], atol=1e-4)
    assert np.abs(weight - decision)[~far].max() > 0.05
    assert _psnr(result.image, synthetic.sharp) > max(_psnr(_as_unit(f), synthetic.sharp) for f in synthetic.frames) + 8


@pytest.mark.parametrize("n", [3, 4])
def test_sf_index_map_matches_the_known_regions(make_focus_stack: MakeStack, n: int) -> None:
    synthetic = make_focus_stack(n, size=128, seed=n)
    result = fuse(synthetic.stack, "sf", device="cpu")
    assert np.mean(result.maps["index"].data == synthetic.labels) >= 0.95
    # N > 2 composes by pyramid blending: no guided-filter weight map
    assert {f"activity_{i}" for i in range(n)} | {"activity", "index_raw", "index"} == set(result.maps)
    assert all(_declared("sf", name) for name in result.maps)
    assert _psnr(result.image, synthetic.sharp) > max(_psnr(_as_unit(f), synthetic.sharp) for f in synthetic.frames) + 8


def _sesf_reference(decision: np.ndarray, radius: int, threshold: float) -> np.ndarray:
    """SESF-Fuse's consistency verification written with scipy (skimage border semantics)."""
    footprint = disk(radius).astype(bool)

    def drop_small(mask: np.ndarray) -> np.ndarray:
        labels, count = ndi.label(mask)  # default structure: 4-connectivity
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        small = sizes < threshold
        small[0] = False
        return mask & ~small[labels]

    d = ndi.binary_dilation(ndi.binary_erosion(decision, footprint, border_value=1), footprint, border_value=0)
    d = drop_small(d)
    d = ndi.binary_erosion(ndi.binary_dilation(d, footprint, border_value=0), footprint, border_value=1)
    return ~drop_small(~d)


def test_sf_pair_consistency_follows_sesf_order() -> None:
    rng = np.random.default_rng(11)
    noise = ndi.gaussian_filter(rng.standard_normal((64, 80)), 3.0)
    decision = (noise > 0) ^ (rng.random((64, 80)) > 0.97)  # blobs plus salt-and-pepper
    params = {"use_morphology": True, "morphology_radius": 3, "use_srr": True, "area_fraction": 0.01}
    expected = _sesf_reference(decision, 3, 0.01 * 64 * 80)
    assert np.array_equal(verify_binary(decision, params), expected)
    assert not np.array_equal(expected, decision)  # the check did something


def test_sf_label_morphology_reduces_to_opening_then_closing() -> None:
    rng = np.random.default_rng(12)
    noise = ndi.gaussian_filter(rng.standard_normal((50, 60)), 2.0)
    decision = (noise > 0) ^ (rng.random((50, 60)) > 0.95)
    index = np.where(decision, 0, 1).astype(np.int32)
    params = {"use_morphology": True, "morphology_radius": 2, "use_srr": False, "area_fraction": 0.0}
    from focusstudio.core.ops.morphology import binary_closing, binary_opening

    expected = binary_closing(binary_opening(decision, 2), 2)
    assert np.array_equal(verify_labels(index, params, label_opening_nearest) == 0, expected)


def test_sf_label_consistency_removes_specks_between_three_labels() -> None:
    index = np.zeros((60, 60), dtype=np.int32)
    index[:, 20:40] = 1
    index[:, 40:] = 2
    index[10:12, 5:7] = 2  # specks that an opening with disk(2) removes
    index[30, 30] = 0
    index[50:52, 45:47] = 1
    params = {"use_morphology": True, "morphology_radius": 2, "use_srr": True, "area_fraction": 0.01}
    expected = np.zeros((60, 60), dtype=np.int32)
    expected[:, 20:40] = 1
    expected[:, 40:] = 2
    assert np.array_equal(verify_labels(index, params, label_opening_nearest), expected)


def test_sf_switches_off_give_the_raw_selection(make_focus_stack: MakeStack) -> None:
    synthetic = make_focus_stack(3, size=64, seed=5, colour=True)
    off = {"use_morphology": False, "use_srr": False, "use_guided_filter": False, "composition": "guided",
           "boundary_radius": 0}
    result = fuse(synthetic.stack, "sf", off, device="cpu")
    index = result.maps["index_raw"].data
    assert np.array_equal(result.maps["index"].data, index)
    expected = np.choose(index[..., None], [_as_unit(f) for f in synthetic.frames])
    np.testing.assert_array_equal(result.image, expected)
    assert "weight" not in result.maps


def test_sf_ties_go_to_the_later_frame_and_identical_frames_fuse_to_themselves() -> None:
    frame = np.random.default_rng(13).random((40, 48)).astype(np.float32)
    pair = fuse(Stack.from_arrays([frame, frame]), "sf", device="cpu")
    assert not pair.maps["decision_raw"].data.any()  # SESF: D = SF_1 > SF_2, ties to the second image
    np.testing.assert_allclose(pair.image, frame, atol=1e-6)
    triple = fuse(Stack.from_arrays([frame] * 3), "sf", device="cpu")
    assert (triple.maps["index_raw"].data == 2).all()
    np.testing.assert_allclose(triple.image, frame, atol=1e-6)


def test_sf_post_parameters_reuse_the_analysis(make_focus_stack: MakeStack) -> None:
    stack = make_focus_stack(2, size=64).stack
    first = fuse(stack, "sf", device="cpu")
    again = fuse(stack, "sf", {"gf_eps": 10.0, "morphology_radius": 2}, device="cpu", analysis=first.analysis)
    assert "analyze" not in again.timings and "analyze" in first.timings
    assert not np.array_equal(again.maps["weight"].data, first.maps["weight"].data)
    redo = fuse(stack, "sf", {"sf_radius": 3}, device="cpu", analysis=first.analysis)
    assert "analyze" in redo.timings


def test_sf_ignores_invalid_border_pixels(make_focus_stack: MakeStack) -> None:
    synthetic = make_focus_stack(2, size=64, seed=6)
    frames = [_as_unit(f).copy() for f in synthetic.frames]
    junk = frames[0].copy()
    junk[:, :8] = np.random.default_rng(14).random((64, 8))  # strong fake detail where frame 0 has no data
    valid = np.ones((64, 64), dtype=bool)
    valid[:, :8] = False

    def with_mask(arrays: list[np.ndarray]) -> Stack:
        return Stack.from_arrays(arrays).with_transforms([None] * len(arrays), valid_mask=valid)

    clean = fuse(with_mask(frames), "sf", device="cpu").maps["index_raw"].data
    masked = fuse(with_mask([junk, frames[1]]), "sf", device="cpu").maps["index_raw"].data
    assert np.array_equal(masked[valid], clean[valid])
    assert (masked[~valid] == 1).all()  # no activity anywhere: the tie goes to the later frame
    unmasked = fuse(Stack.from_arrays([junk, frames[1]]), "sf", device="cpu").maps["index_raw"].data
    assert not np.array_equal(unmasked[valid], clean[valid])  # without the mask the junk leaks in


def test_sf_long_stack_keeps_no_per_frame_activity(make_focus_stack: MakeStack) -> None:
    synthetic = make_focus_stack(17, size=48, seed=7)
    result = fuse(synthetic.stack, "sf", {"composition": "guided"}, device="cpu")
    assert not any(name.startswith("activity_") for name in result.maps)
    assert {"activity", "index_raw", "index", "weight"} <= set(result.maps)
    weight = result.maps["weight"].data
    assert weight.min() >= 0.0 and weight.max() <= 1.0 + 1e-6


def test_sf_rejects_a_frame_of_another_size() -> None:
    stack = Stack.from_arrays([np.zeros((20, 20), np.float32), np.zeros((20, 24), np.float32)])
    with pytest.raises(InputError, match="frame_001"):
        fuse(stack, "sf", device="cpu")


# ----------------------------------------------------------------------------- laplacian


def test_laplacian_pyramid_reconstructs_exactly() -> None:
    rng = np.random.default_rng(15)
    for shape, base_shape in (((37, 53), (5, 7)), ((40, 30, 3), (5, 4, 3))):
        image = rng.random(shape).astype(np.float32)
        details, base = laplacian_pyramid(image, 3)
        assert [d.shape[:2] for d in details] == [shape[:2], ((shape[0] + 1) // 2, (shape[1] + 1) // 2),
                                                  ((shape[0] + 3) // 4, (shape[1] + 3) // 4)]
        assert base.shape == base_shape
        np.testing.assert_allclose(reconstruct(details, base), image, atol=1e-5)


def test_majority_filter_cleans_isolated_labels() -> None:
    index = np.zeros((20, 20), dtype=np.int32)
    index[:, 10:] = 1
    index[5, 5] = 2
    index[14, 15] = 0
    cleaned = majority_filter(index, 1)
    expected = np.zeros((20, 20), dtype=np.int32)
    expected[:, 10:] = 1
    assert np.array_equal(cleaned, expected)
    assert np.array_equal(majority_filter(expected, 2), expected)  # straight boundaries stay
    # end pixels see one 0 and one 1: a tie keeps their own label, whatever the label order
    for row in ([[0, 1, 1, 0]], [[1, 0, 0, 1]], [[2, 0, 0, 2]]):
        assert np.array_equal(majority_filter(np.array(row), 1), np.array(row))


# ----------------------------------------------------------------------------- laplacian + gff quality


@pytest.mark.parametrize("method", ["laplacian", "gff"])
@pytest.mark.parametrize(("n", "colour"), [(2, False), (3, True), (4, False)])
def test_fused_image_is_closer_to_the_sharp_image_than_any_frame(
    make_focus_stack: MakeStack, method: str, n: int, colour: bool
) -> None:
    synthetic = make_focus_stack(n, size=96, seed=20 + n, colour=colour)
    result = fuse(synthetic.stack, method, device="cpu")
    best_frame = max(_psnr(_as_unit(f), synthetic.sharp) for f in synthetic.frames)
    assert _psnr(result.image, synthetic.sharp) > best_frame + 8
    assert result.image.shape == synthetic.sharp.shape and result.image.dtype == np.float32
    assert np.mean(result.maps["index"].data == synthetic.labels) >= 0.9
    assert all(_declared(method, name) for name in result.maps)


def test_laplacian_and_gff_maps(make_focus_stack: MakeStack) -> None:
    synthetic = make_focus_stack(2, size=96, seed=8)
    lap = fuse(synthetic.stack, "laplacian", device="cpu")
    assert set(lap.maps) == {"index_raw", "index", "decision"}
    assert np.array_equal(lap.maps["decision"].data, (lap.maps["index"].data == 0).astype(np.float32))
    raw = fuse(synthetic.stack, "laplacian", {"use_consistency": False}, device="cpu")
    assert np.array_equal(raw.maps["index"].data, raw.maps["index_raw"].data)
    gff = fuse(synthetic.stack, "gff", device="cpu")
    assert set(gff.maps) == {"saliency", "index", "weight_base", "weight_detail"}
    inside = synthetic.labels == 0
    for name in ("weight_base", "weight_detail"):
        weight = gff.maps[name].data
        assert weight.min() >= 0.0 and weight.max() <= 1.0 + 1e-6
    # the detail weights (r2 = 7, eps2 = 1e-6) follow the selection closely; the base weights
    # (r1 = 45, eps1 = 0.3) are nearly flat on a 64-pixel image, unless r1 is made small
    selected = gff.maps["index"].data == 0
    square = np.ones((2 * 2 * 7 + 1,) * 2, dtype=bool)  # pixels farther than 2·r2 from a selection edge
    far = ndi.binary_erosion(selected, square, border_value=1) | ndi.binary_erosion(~selected, square, border_value=1)
    assert far[inside].any() and far[~inside].any()
    np.testing.assert_allclose(gff.maps["weight_detail"].data[far], selected[far], atol=1e-5)
    assert np.ptp(gff.maps["weight_base"].data) < 0.2
    small = fuse(synthetic.stack, "gff", {"base_gf_radius": 4}, device="cpu", analysis=gff.analysis)
    base = small.maps["weight_base"].data
    assert base[inside].mean() > base[~inside].mean() + 0.3


def test_gff_single_precision_weights_match_double_precision(make_focus_stack: MakeStack,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """gff filters its weights in float32 (the grey guide): the result is the double-precision one
    to well under a grey level (the filter's sums are float64 in OpenCV; the weights are in [0, 1])."""
    from focusstudio.core.methods import gff as gff_module

    stack = make_focus_stack(3, size=96, seed=5).stack
    single = fuse(stack, "gff", device="cpu")
    double_filter = gff_module.GuidedFilterCPU
    monkeypatch.setattr(gff_module, "GuidedFilterCPU", lambda guide, radius, eps, mode, _precision, centre=None:
                        double_filter(guide, radius, eps, mode, np.float64))
    double = fuse(stack, "gff", device="cpu", analysis=single.analysis)
    np.testing.assert_allclose(single.image, double.image, atol=1e-4)
    for name in ("weight_base", "weight_detail"):
        np.testing.assert_allclose(single.maps[name].data, double.maps[name].data, atol=1e-3)


def test_laplacian_too_many_levels_is_reduced_with_a_note(make_focus_stack: MakeStack) -> None:
    result = fuse(make_focus_stack(2, size=32).stack, "laplacian", {"levels": 12}, device="cpu")
    assert any("levels" in note for note in result.notes)


# ----------------------------------------------------------------------------- all methods


@pytest.mark.parametrize("method", CLASSICAL)
@pytest.mark.parametrize("n", [2, 3])
def test_identical_frames_fuse_to_the_frame(method: str, n: int) -> None:
    frame = np.random.default_rng(16).random((48, 40, 3)).astype(np.float32)
    result = fuse(Stack.from_arrays([frame] * n), method, device="cpu")
    np.testing.assert_allclose(result.image, frame, atol=2e-5)


@pytest.mark.parametrize("method", CLASSICAL)
def test_colour_16_bit_stack(make_focus_stack: MakeStack, method: str) -> None:
    wide = make_focus_stack(3, size=64, seed=9, colour=True, dtype="uint16")
    unit = make_focus_stack(3, size=64, seed=9, colour=True, dtype="float32")
    result = fuse(wide.stack, method, device="cpu")
    assert result.image.shape == (64, 64, 3) and result.image.dtype == np.float32
    assert result.image.min() >= 0.0 and result.image.max() <= 1.0
    assert result.source_dtype == "uint16" and result.as_dtype().dtype == np.uint16
    reference = fuse(unit.stack, method, device="cpu").image
    assert np.abs(result.image - reference).max() < 2e-3  # 16-bit quantisation only


@pytest.mark.parametrize("method", CLASSICAL)
def test_grey_8_bit_stack(make_focus_stack: MakeStack, method: str) -> None:
    synthetic = make_focus_stack(2, size=64, seed=10, dtype="uint8")
    result = fuse(synthetic.stack, method, device="cpu")
    assert result.image.shape == (64, 64) and result.as_dtype().dtype == np.uint8
    assert _psnr(result.image, synthetic.sharp) > max(_psnr(_as_unit(f), synthetic.sharp) for f in synthetic.frames)


def _events(stack: Stack, method: str, cancel_after: int | None = None) -> tuple[list[ProgressEvent], FusionResult]:
    token = CancelToken()
    events: list[ProgressEvent] = []

    def record(event: ProgressEvent) -> None:
        events.append(event)
        if cancel_after is not None and len(events) >= cancel_after:
            token.cancel()

    result = run_to_completion(run_fusion(stack, method, device="cpu", cancel=token), record)
    return events, result


@pytest.mark.parametrize("method", CLASSICAL)
def test_progress_per_frame_and_cancel(make_focus_stack: MakeStack, method: str) -> None:
    stack = make_focus_stack(4, size=48, seed=11).stack
    events, _ = _events(stack, method)
    analysis = [e for e in events if e.stage == "analysis"]
    assert len(analysis) == 4  # one event per frame
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    with pytest.raises(Cancelled):
        _events(stack, method, cancel_after=2)  # cancelled after the second frame's event
