"""The reduced-resolution stand-ins of live tuning: what is shrunk, how, and what cannot be."""

from __future__ import annotations

import numpy as np
import pytest

from focusstudio.core.live_proxy import (
    NotReducible,
    make_proxy,
    proxy_shape,
    scale_params,
    shrink_analysis,
)
from focusstudio.core.methods.base import Analysis
from focusstudio.core.methods.registry import get_method
from focusstudio.core.types import FusionMap, Stack


def test_the_proxy_fills_the_viewport_and_keeps_the_aspect() -> None:
    assert proxy_shape((1141, 1521), (760, 570)) == (570, 760)
    assert proxy_shape((4000, 6000), (1200, 1200)) == (800, 1200)
    # Not worth a second resolution when the image is about the viewport's size or smaller.
    assert proxy_shape((500, 500), (450, 450)) is None
    assert proxy_shape((500, 500), (0, 0)) is None


def test_index_maps_stay_whole_frame_numbers_and_floats_are_area_averaged() -> None:
    index = np.zeros((40, 60), np.int32)
    index[:, 30:] = 2
    activity = np.tile(np.arange(60, dtype=np.float32), (40, 1))
    analysis = Analysis("sf", {}, maps={"activity": FusionMap("activity", "activity", activity)},
                        data={"index_raw": index, "decision": index == 0, "count": 3, "levels": [1.0, 2.0]})
    small = shrink_analysis(analysis, (40, 60), (10, 15))
    shrunk = small.data["index_raw"]
    assert shrunk.shape == (10, 15) and shrunk.dtype == np.int32
    assert set(np.unique(shrunk)) == {0, 2}  # never an average of frames 0 and 2
    assert small.data["decision"].dtype == np.bool_ and small.data["decision"].shape == (10, 15)
    averaged = small.maps["activity"].data
    # Area averaging of 4 columns: the mean of columns 4k..4k+3 is 4k + 1.5 (float32 sums exact here).
    np.testing.assert_allclose(averaged[0], 4 * np.arange(15) + 1.5, atol=1e-4)
    assert small.data["count"] == 3 and small.data["levels"] == [1.0, 2.0]
    assert analysis.data["index_raw"].shape == (40, 60)  # the original is untouched


@pytest.mark.parametrize("content", [
    [np.zeros((25, 35), np.float32)],  # a tile or crop: image-sized, neither the result's size nor a level
    object(),  # a network chain
    np.zeros((40, 60, 3, 2), np.float32),
])
def test_image_sized_content_it_does_not_understand_is_not_reducible(content: object) -> None:
    analysis = Analysis("x", {}, data={"index": np.zeros((40, 60), np.int32), "other": content})
    with pytest.raises(NotReducible):
        shrink_analysis(analysis, (40, 60), (10, 15))


def test_pyramid_levels_become_the_same_levels_of_the_smaller_pyramid() -> None:
    full, small = (41, 61), (20, 30)
    levels = [np.zeros((41, 61, 3), np.float32), np.zeros((21, 31, 3), np.float32), np.ones((11, 16), np.int32)]
    analysis = Analysis("laplacian", {}, data={"fused": levels[:2], "index": [levels[2]], "levels": 2})
    shrunk = shrink_analysis(analysis, full, small)
    # cv2.pyrDown rounds up: 20×30 → 10×15 → 5×8.
    assert [level.shape for level in shrunk.data["fused"]] == [(20, 30, 3), (10, 15, 3)]
    assert shrunk.data["index"][0].shape == (5, 8) and shrunk.data["index"][0].dtype == np.int32


def test_dataclass_records_are_shrunk_field_by_field() -> None:
    from focusstudio.core.methods.strategies import SerialChain

    soft = np.tile(np.linspace(0, 1, 60, dtype=np.float32), (40, 1))
    chain = SerialChain([soft], [soft > 0.5], np.zeros((40, 60, 3), np.float32), np.zeros((40, 60), np.int32))
    shrunk = shrink_analysis(Analysis("mfifgan", {}, data={"chain": chain, "post": {"threshold": 0.5}}),
                             (40, 60), (10, 15)).data["chain"]
    assert isinstance(shrunk, SerialChain) and shrunk is not chain
    assert shrunk.soft_maps[0].shape == shrunk.weights[0].shape == shrunk.index.shape == (10, 15)
    assert shrunk.image.shape == (10, 15, 3) and chain.image.shape == (40, 60, 3)


def test_a_laplacian_preview_is_the_full_result_at_the_smaller_size(make_focus_stack: object) -> None:
    """The pyramid method (its analysis holds the levels) now previews at the viewport's size: the
    preview agrees with the full result shrunk, up to what the shrinking of detail levels blurs."""
    import cv2

    from focusstudio.core.pipeline import fuse

    stack = make_focus_stack(3, size=128, seed=2).stack  # type: ignore[operator]
    full = fuse(stack, "laplacian", device="cpu")
    assert full.analysis is not None
    proxy = make_proxy(full.analysis, stack, (64, 64))
    params = scale_params(dict(full.params), get_method("laplacian").params, proxy.scale)
    preview = fuse(proxy.stack, "laplacian", params, device="cpu", analysis=proxy.analysis)
    assert preview.image.shape[:2] == (64, 64)
    expected = cv2.resize(full.image, (64, 64), interpolation=cv2.INTER_AREA)
    assert float(np.abs(preview.image - expected).mean()) < 0.02


def test_make_proxy_shrinks_the_frames_and_reports_the_scale() -> None:
    frames = [np.full((40, 60, 3), value, np.float32) for value in (0.25, 0.75)]
    stack = Stack.from_arrays(frames, ["a", "b"])
    proxy = make_proxy(Analysis("sf", {}, data={"index_raw": np.zeros((40, 60), np.int32)}), stack, (20, 30))
    assert proxy.stack.shape == (20, 30) and proxy.stack.names == ["a", "b"]
    np.testing.assert_allclose(proxy.stack.load(1), 0.75, atol=1e-6)
    assert proxy.scale == pytest.approx(0.5) and proxy.full_shape == (40, 60)


def test_lengths_in_pixels_shrink_with_the_image_and_nothing_else_does() -> None:
    spec = get_method("sf").params
    params = spec.resolve({"gf_radius": 8, "morphology_radius": 1, "gf_eps": 0.1, "area_fraction": 0.01})
    scaled = scale_params(params, spec, 0.25)
    assert scaled["gf_radius"] == 2
    assert scaled["morphology_radius"] == 1  # on stays on
    assert scaled["gf_eps"] == params["gf_eps"] and scaled["area_fraction"] == params["area_fraction"]
    spec.resolve(scaled)  # still valid values
