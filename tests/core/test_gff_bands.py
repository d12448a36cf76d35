"""gff's banded, threaded fusion pass (issue 20) against the same pass in one band, and the band plan."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from focusstudio.core.methods import gff
from focusstudio.core.types import normalise_array


def _sums(shape: tuple[int, int], colour: bool) -> gff.WeightedSums:
    channels = (*shape, 3) if colour else shape
    return gff.WeightedSums(
        np.zeros(channels, np.float32), np.zeros(channels, np.float32), np.zeros(shape, np.float32),
        np.zeros(shape, np.float32), (np.zeros(shape, np.float32), np.zeros(shape, np.float32)),
    )


@pytest.mark.parametrize("height", [120, 173, 37])
def test_plan_bands_cover_every_row_once_with_halos(height: int) -> None:
    bands = gff.plan_bands(height, halo=9, band_rows=25, parts=2)
    assert len(bands) == 1 or len(bands) % 2 == 0
    covered = np.zeros(height, int)
    for core, read in bands:
        covered[core] += 1
        assert read.start == max(core.start - 9, 0) and read.stop == min(core.stop + 9, height)
    assert (covered == 1).all()


def test_plan_bands_keeps_an_image_of_about_one_band_whole() -> None:
    assert gff.plan_bands(300, halo=90, band_rows=250, parts=2) == [(slice(0, 300), slice(0, 300))]
    assert [core for core, _ in gff.plan_bands(520, halo=90, band_rows=250, parts=2)] == [slice(0, 260),
                                                                                         slice(260, 520)]


@pytest.mark.parametrize(("colour", "levels", "guide"), [(True, True, "grey"), (False, False, "grey"),
                                                          (True, False, "colour")])
def test_banded_frames_equal_one_band(colour: bool, levels: bool, guide: str) -> None:
    """Bands (threaded or not) give the one-band numbers: each band reads every window its core rows
    need (2r for a filter, r for the mean), OpenCV sums float32 windows in double and the guide is
    centred on the whole frame's mean, so only the order of float32 operations inside a window's
    running sums differs: a few ulps of the filter's intermediate values, below 1e-5 on [0, 1]
    weights and layers (radii 9 and 3 here, so that several bands have real halos)."""
    rng = np.random.default_rng(3)
    shape = (150, 64)
    params = {**gff.GuidedFilteringFusion.params.defaults(), "base_gf_radius": 9, "detail_gf_radius": 3,
              "base_radius": 4, "guide": guide}
    index = (rng.random((15, 8)) * 3).astype(np.uint8).repeat(10, 0).repeat(8, 1)
    frames = [rng.integers(0, 256, (*shape, 3) if colour else shape, dtype=np.uint8) for _ in range(3)]
    sources = frames if levels else [normalise_array(f) for f in frames]
    whole, banded, threaded = _sums(shape, colour), _sums(shape, colour), _sums(shape, colour)
    with ThreadPoolExecutor(2) as pool:
        for i, source in enumerate(sources):
            gff.accumulate_frame(whole, source, index, i, params, None, band_rows=shape[0])
            gff.accumulate_frame(banded, source, index, i, params, None, band_rows=20)
            gff.accumulate_frame(threaded, source, index, i, params, pool, band_rows=13)
    reference = whole.fused()
    assert whole.base_total.min() > 0.0
    for other in (banded, threaded):
        for name in ("base_total", "detail_total"):
            np.testing.assert_allclose(getattr(other, name), getattr(whole, name), atol=1e-5)
        np.testing.assert_allclose(other.first_weights[0], whole.first_weights[0], atol=1e-5)
        np.testing.assert_allclose(other.fused(), reference, atol=1e-5)


def test_levels_and_float_sources_fuse_alike() -> None:
    """A frame kept as 8-bit levels is converted band by band to exactly its float32 values."""
    rng = np.random.default_rng(4)
    shape = (90, 40)
    params = gff.GuidedFilteringFusion.params.defaults()
    index = (rng.random(shape) < 0.5).astype(np.uint8)
    frames = [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for _ in range(2)]
    from_levels, from_float = _sums(shape, True), _sums(shape, True)
    for i, frame in enumerate(frames):
        gff.accumulate_frame(from_levels, frame, index, i, params, None, band_rows=30)
        gff.accumulate_frame(from_float, normalise_array(frame), index, i, params, None, band_rows=30)
    np.testing.assert_array_equal(from_levels.fused(), from_float.fused())


@pytest.mark.parametrize("threads", [False, True])
def test_banded_saliency_equals_whole(threads: bool) -> None:
    """Each band reads the radius + 1 rows its core needs, so the saliency is the whole frame's
    up to the order of float32 sums inside one kernel window (a few ulps of values ≤ 8)."""
    grey = np.random.default_rng(5).random((131, 47)).astype(np.float32)
    whole = gff.saliency(grey, 5, 5.0)
    with ThreadPoolExecutor(2) as pool:
        banded = gff.banded_saliency(grey, 5, 5.0, pool if threads else None, band_rows=17)
    np.testing.assert_allclose(banded, whole, rtol=0, atol=1e-5)
    assert not np.array_equal(gff.banded_saliency(grey, 4, 5.0, None, band_rows=17), whole)
