"""sf's banded and tiled passes (issue 20: 24 MP at enfuse's cost) against the whole-frame operations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from focusstudio.core.methods import sf, sf_boundaries, sf_pair
from focusstudio.core.ops.compose import compose_pair
from focusstudio.core.ops.guided_filter import GuidedFilterCPU
from focusstudio.core.pipeline import fuse
from focusstudio.core.tiling import BoundedGuidedFilter
from focusstudio.core.types import Stack, to_grey


def _frames(height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.random((height // 8 + 2, width // 8 + 2, 3)).astype(np.float32)
    import cv2

    smooth = cv2.resize(base, (width, height), interpolation=cv2.INTER_CUBIC)
    sharp = np.clip(smooth + 0.2 * rng.random((height, width, 3)).astype(np.float32), 0.0, 1.0)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 2.0)
    yy, xx = np.mgrid[:height, :width]
    left = (xx < width / 2 + width / 6 * np.sin(yy / 17.0))[..., None]
    return np.where(left, sharp, blurred), np.where(left, blurred, sharp)


@pytest.mark.parametrize("band_pixels", [64 * 16, 1 << 18])
def test_activity_bands_equal_the_whole_frame_activity(monkeypatch: pytest.MonkeyPatch, band_pixels: int) -> None:
    """Exact window sums: banded activity, selection and SF maps equal the whole-frame ones bit for bit."""
    monkeypatch.setattr(sf_boundaries, "BAND_PIXELS", band_pixels)
    first, second = _frames(150, 64, 1)
    second[40:60] = first[40:60]  # exact ties: the later frame must win
    valid = np.ones(first.shape[:2], dtype=bool)
    valid[:, :3] = False
    mask = sf.energy_mask(valid)
    radius = 5
    best = np.empty(first.shape[:2])
    index = np.zeros(first.shape[:2], dtype=np.int32)
    maps = [np.empty(first.shape[:2], dtype=np.float32) for _ in range(2)]
    for i, frame in enumerate((first, second)):
        sf.activity_bands(frame, radius, mask, i, best, index, maps[i])
    whole = [sf.pixel_activity(to_grey(frame), radius, mask) for frame in (first, second)]
    assert np.array_equal(best, np.maximum(whole[0], whole[1]))
    assert np.array_equal(index, (whole[1] >= whole[0]).astype(np.int32))
    assert (index[47:53, 10:50] == 1).all()
    for i in range(2):
        assert np.array_equal(maps[i], sf._normalised_band(whole[i], radius))


def test_guided_pair_tiles_match_the_whole_frame_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiled pair composition is the whole-frame guided filter up to float32 rounding.

    Tolerance: the float32 filter (the implementation this replaced) has its own rounding error
    against float64; the tiles (each centred on its own guide mean) must stay within twice that
    error, and where the decision is constant over a tile and its halo the result is exactly the
    decision (the filter's exact value there).
    """
    monkeypatch.setattr(sf_pair, "GUIDED_TILE", 32)
    first, second = _frames(120, 100, 2)
    yy, xx = np.mgrid[:120, :100]
    weight = (xx < 50 + 15 * np.sin(yy / 9.0)).astype(np.float32)
    radius, eps = 4, 0.1
    guide = compose_pair(first, second, weight) * sf_pair.GUIDE_SCALE
    exact = GuidedFilterCPU(guide, radius, eps, None, np.float64)(weight)
    single = BoundedGuidedFilter(guide, radius, eps, 1 << 40, dtype=np.float32, precision=np.float32)(weight)
    fused, filtered = sf_pair.guided_pair_tiles(first, second, weight, radius, eps)
    assert filtered.dtype == np.float32 and fused.dtype == np.float32
    single_error = float(np.abs(single - exact).max())
    assert single_error < 1e-4
    assert float(np.abs(filtered - exact).max()) <= 2 * single_error + 1e-7
    assert np.array_equal(fused, compose_pair(first, second, filtered))
    # tiles (32 px, halo 8) entirely inside one side of the boundary are left exactly 0 or 1
    assert (filtered[:, :8] == 1.0).all() and (filtered[:, 96:] == 0.0).all()


def test_pair_fuse_with_and_without_the_held_frames_is_identical() -> None:
    """Finish uses the frames decoded by the analysis once; a reused analysis decodes them again."""
    first, second = _frames(96, 80, 3)
    stack = Stack.from_arrays([first, second])
    result = fuse(stack, "sf", device="cpu")
    assert sf.HELD_FRAMES not in result.analysis.data  # handed over, not kept in the cache
    again = fuse(stack, "sf", device="cpu", analysis=result.analysis)
    assert np.array_equal(result.image, again.image)
    assert np.array_equal(result.maps["weight"].data, again.maps["weight"].data)
    # the input arrays are untouched
    assert np.array_equal(stack.load(0), first) and np.array_equal(stack.load(1), second)


def test_held_frames_of_an_8_bit_pair_are_exact() -> None:
    """8-bit frames are held as codes between analysis and finish: the same image as re-decoding."""
    first, second = _frames(64, 72, 4)
    codes = [np.rint(frame * 255).astype(np.uint8) for frame in (first, second)]
    stack = Stack.from_arrays(codes)
    result = fuse(stack, "sf", device="cpu")
    again = fuse(stack, "sf", device="cpu", analysis=result.analysis)
    assert np.array_equal(result.image, again.image)
    frame = stack.load(0)
    held = sf_pair.HeldFrame.start(frame, "uint8")
    held.store_band(frame, slice(0, 64))
    held.finish_storing(frame)
    assert held._float is None and np.array_equal(held[10:20, 5:], frame[10:20, 5:])
    # a frame that is not k/255 (e.g. warped by alignment) stays float32
    off = frame + np.float32(1e-3)
    kept = sf_pair.HeldFrame.start(off, "uint8")
    kept.store_band(off, slice(0, 64))
    kept.finish_storing(off)
    assert kept[...] is not None and np.array_equal(kept[...], off)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_pair_bands_on_threads_equal_the_serial_frame_by_frame_pass(
    monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    """The pair's one-pass bands (levels, tiny bands, on 1–3 threads) give exactly the index, SF
    maps and best SF of the frame-by-frame pass on the float32 frames."""
    monkeypatch.setattr(sf_boundaries, "BAND_PIXELS", 64 * 16)
    first, second = _frames(150, 64, 5)
    levels = [np.rint(frame * 255).astype(np.uint8) for frame in (first, second)]
    levels[1][40:60] = levels[0][40:60]  # exact ties: the later frame must win
    frames = [level.astype(np.float32) / np.float32(255.0) for level in levels]
    radius = 5
    best = np.empty(first.shape[:2])
    index = np.zeros(first.shape[:2], dtype=np.int32)
    maps = [np.empty(first.shape[:2], dtype=np.float32) for _ in range(2)]
    for i, frame in enumerate(frames):
        sf.activity_bands(frame, radius, None, i, best, index, maps[i])
    pair_index = np.full(first.shape[:2], -1, dtype=np.int32)
    pair_maps = [np.empty(first.shape[:2], dtype=np.float32) for _ in range(2)]
    activity = np.empty(first.shape[:2], dtype=np.float32)
    with sf_pair.band_pool(threads) as pool:
        assert (pool is None) == (threads == 1)
        sf.pair_activity_bands(levels, radius, None, pair_index, pair_maps, activity, pool)
    assert np.array_equal(pair_index, index)
    assert (pair_index[47:53, 10:50] == 1).all()
    for i in range(2):
        assert np.array_equal(pair_maps[i], maps[i])
    assert np.array_equal(activity, sf.normalised_sf(best, radius))


def test_guided_tiles_on_threads_equal_the_serial_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiles on two threads, read from 8-bit levels, clipped in the tile: bit for bit the serial
    tiles on the float32 frames, clipped afterwards."""
    monkeypatch.setattr(sf_pair, "GUIDED_TILE", 16)
    first, second = _frames(100, 90, 6)
    levels = [np.rint(frame * 255).astype(np.uint8) for frame in (first, second)]
    frames = [level.astype(np.float32) / np.float32(255.0) for level in levels]
    yy, xx = np.mgrid[:100, :90]
    weight = (xx < 45 + 12 * np.sin(yy / 7.0)).astype(np.float32)
    fused, filtered = sf_pair.guided_pair_tiles(frames[0], frames[1], weight, 4, 0.1)
    np.clip(fused, 0.0, 1.0, out=fused)
    with sf_pair.band_pool(2) as pool:
        threaded, threaded_weight = sf_pair.guided_pair_tiles(
            levels[0], levels[1], weight, 4, 0.1, pool=pool, clip=True
        )
    assert np.array_equal(threaded, fused) and np.array_equal(threaded_weight, filtered)


def test_a_pair_of_8_bit_files_fuses_as_the_same_frames_in_memory(tmp_path: Path) -> None:
    """The levels path (files decoded to 8-bit levels, both at once) gives exactly the image and
    maps of the float32 path (the same frames in memory), and a reused analysis decodes again."""
    import cv2

    from focusstudio.core.io import load_stack

    paths = []
    for i, frame in enumerate(_frames(90, 70, 7)):
        path = tmp_path / f"f{i}.png"
        cv2.imwrite(str(path), np.rint(frame[..., ::-1] * 255).astype(np.uint8))
        paths.append(path)
    stack = load_stack(paths)
    assert stack.load_levels(0) is not None
    from_files = fuse(stack, "sf", device="cpu")
    in_memory = fuse(Stack.from_arrays([stack.load(0), stack.load(1)]), "sf", device="cpu")
    again = fuse(stack, "sf", device="cpu", analysis=from_files.analysis)
    for other in (in_memory, again):
        assert np.array_equal(from_files.image, other.image)
        assert sorted(from_files.maps) == sorted(other.maps)
        for name, fusion_map in from_files.maps.items():
            assert np.array_equal(fusion_map.data, other.maps[name].data), name


@pytest.mark.parametrize(("dtype", "rounding"), [("uint8", "round"), ("uint16", "truncate")])
def test_output_conversion_in_threaded_blocks_equals_one_pass(dtype: str, rounding: str) -> None:
    """``from_unit_float`` converts blocks on threads: the same codes as the one-pass formula."""
    from focusstudio.core.types import from_unit_float

    rng = np.random.default_rng(8)
    image = rng.uniform(-0.1, 1.1, (700, 500, 3)).astype(np.float32)  # ~6 blocks, clipping included
    image[0, :4, 0] = [0.5 / 255, 1.5 / 255, 254.5 / 255, 1.0]  # halves: the rounding rule decides
    scale = 255.0 if dtype == "uint8" else 65535.0
    scaled = np.clip(image.astype(np.float64) * scale, 0.0, scale)
    expected = (np.floor(scaled + 0.5) if rounding == "round" else np.floor(scaled)).astype(dtype)
    assert np.array_equal(from_unit_float(image, dtype, rounding), expected)


def test_numpy_small_pages_is_scoped(monkeypatch: pytest.MonkeyPatch) -> None:
    """sf's runs switch NumPy's huge-page requests off and restore the previous setting after."""
    from numpy._core.multiarray import _set_madvise_hugepage as switch

    from focusstudio.core.runtime import numpy_small_pages

    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    before = switch(True)
    try:
        with numpy_small_pages():
            assert switch(False) is False  # off inside (switch returns the setting it replaces)
        assert switch(True) is True  # restored
        monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")  # a user's choice wins
        with numpy_small_pages():
            assert switch(True) is True
    finally:
        switch(before)
