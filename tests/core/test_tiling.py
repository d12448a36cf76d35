"""Tiled processing: tiles partition the frame, tiled == untiled for local operations, memory budget."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from focusstudio.core import tiling
from focusstudio.core.methods.sf import pixel_activity
from focusstudio.core.ops.box import box_sum_exact_np, box_sum_np
from focusstudio.core.ops.guided_filter import GuidedFilterCPU, guided_filter_np
from focusstudio.core.ops.spatial_frequency import spatial_frequency_np
from focusstudio.core.pipeline import fuse
from focusstudio.core.tiling import (
    MINIMUM_MEMORY_LIMIT,
    MINIMUM_OPERATION_BUDGET,
    BoundedGuidedFilter,
    Tile,
    blend_tiles,
    compute_tiled,
    default_memory_limit,
    map_tiles,
    operation_budget,
    plan_budget_tiles,
    resolve_memory_limit,
)

HEIGHT, WIDTH = 61, 83  # deliberately not multiples of the tile size


def _texture(seed: int, channels: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (HEIGHT, WIDTH, channels) if channels else (HEIGHT, WIDTH)
    return rng.random(shape).astype(np.float32)


def test_tiles_partition_the_frame_and_read_their_halo() -> None:
    tiles = plan_budget_tiles(HEIGHT, WIDTH, halo=4, bytes_per_pixel=8, tile_size=16)
    assert len(tiles) == 4 * 6
    written = np.zeros((HEIGHT, WIDTH), int)
    for tile in tiles:
        written[tile.write] += 1
        for axis, size in ((0, HEIGHT), (1, WIDTH)):
            read, write = tile.read[axis], tile.write[axis]
            assert read.start == max(write.start - 4, 0) and read.stop == min(write.stop + 4, size)
            assert tile.inner[axis].start == write.start - read.start
    np.testing.assert_array_equal(written, 1)


def test_one_tile_when_the_frame_fits_the_budget() -> None:
    tiles = plan_budget_tiles(HEIGHT, WIDTH, halo=4, bytes_per_pixel=8, memory_limit=HEIGHT * WIDTH * 8)
    assert len(tiles) == 1 and tiles[0].write == (slice(0, HEIGHT), slice(0, WIDTH))
    # A budget below the frame's working set splits it.
    assert len(plan_budget_tiles(4000, 6000, halo=6, bytes_per_pixel=48, memory_limit=300 * 1024**2)) > 1


@pytest.mark.parametrize("tile_size", [7, 16, 40])
def test_tiled_spatial_frequency_activity_equals_untiled(tile_size: int) -> None:
    radius = 5
    image = _texture(0)
    valid = np.ones((HEIGHT, WIDTH), bool)
    valid[:, :3] = False  # an alignment border: the mask must be sliced with the tile
    from focusstudio.core.methods.sf import energy_mask

    mask = energy_mask(valid)
    assert mask is not None
    untiled = pixel_activity(image, radius, mask)
    tiled = compute_tiled(
        (HEIGHT, WIDTH),
        lambda window: pixel_activity(image[window], radius, mask[window]),
        halo=radius + 1,
        bytes_per_pixel=48,
        tile_size=tile_size,
    )
    assert tiled.dtype == untiled.dtype == np.float64
    # The activity's window sums are exact (fixed point), so tiles agree bit for bit.
    np.testing.assert_array_equal(tiled, untiled)
    # The decision built on it (which of two frames is sharper) is identical.
    other = _texture(1)
    other_untiled = pixel_activity(other, radius, mask)
    other_tiled = compute_tiled(
        (HEIGHT, WIDTH), lambda window: pixel_activity(other[window], radius, mask[window]),
        halo=radius + 1, bytes_per_pixel=48, tile_size=tile_size,
    )
    np.testing.assert_array_equal(tiled > other_tiled, untiled > other_untiled)


def test_exact_box_sum_matches_the_float_box_sum_and_has_no_residue() -> None:
    values = _texture(8).astype(np.float64) ** 2
    values[20:40, 30:60] = 0.0  # a flat area
    exact = box_sum_exact_np(values, 4)
    np.testing.assert_allclose(exact, box_sum_np(values, 4), rtol=1e-10, atol=1e-10)
    # The float running sum leaves residue in the flat area; the exact one gives true zeros, and
    # a window's sum does not depend on what precedes it.
    assert (exact[24:36, 34:56] == 0.0).all()
    np.testing.assert_array_equal(box_sum_exact_np(values[10:, 13:], 4)[10:-5, 10:-5], exact[20:-5, 23:-5])
    with pytest.raises(ValueError, match="too large"):
        box_sum_exact_np(values * 1e6, 4)


def test_halo_smaller_than_the_receptive_field_is_not_exact() -> None:
    image = _texture(2)
    untiled = spatial_frequency_np(image, 5)
    too_small = compute_tiled(
        (HEIGHT, WIDTH), lambda window: spatial_frequency_np(image[window], 5), halo=2, bytes_per_pixel=8,
        tile_size=16,
    )
    assert np.abs(too_small - untiled).max() > 1e-3


def test_tiled_colour_guided_filter_equals_untiled() -> None:
    radius = 4
    guide = _texture(3, channels=3) * 255.0
    source = (_texture(4) > 0.5).astype(np.float32)
    untiled = guided_filter_np(guide, source, radius, 0.1)
    # Two cascaded box means of radius r: the receptive field is 2r.
    tiled = compute_tiled(
        (HEIGHT, WIDTH), lambda window: guided_filter_np(guide[window], source[window], radius, 0.1),
        halo=2 * radius, bytes_per_pixel=200, tile_size=13,
    )
    np.testing.assert_allclose(tiled, untiled, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["sesf_color", "color", "gray"])
def test_bounded_guided_filter_equals_the_whole_frame_filter(mode: str) -> None:
    radius = 3
    guide = _texture(6, channels=1 if mode == "gray" else 3) * 255.0
    if mode == "gray":
        guide = guide[..., 0]
    source = (_texture(7) > 0.4).astype(np.float32)
    whole = GuidedFilterCPU(guide, radius, 0.1, mode)(source)  # type: ignore[arg-type]
    bounded = BoundedGuidedFilter(guide, radius, 0.1, tile_size=12, mode=mode)  # type: ignore[arg-type]
    assert bounded.tiled
    np.testing.assert_allclose(bounded(source), whole, rtol=1e-9, atol=1e-9)
    untiled = BoundedGuidedFilter(guide, radius, 0.1, memory_limit=1024**3, mode=mode)  # type: ignore[arg-type]
    assert not untiled.tiled
    np.testing.assert_array_equal(untiled(source), whole)
    # Single precision: every tile uses the whole guide's centre, so tiles compute the same numbers.
    single = BoundedGuidedFilter(guide, radius, 0.1, tile_size=12, mode=mode, precision=np.float32)  # type: ignore[arg-type]
    single_whole = BoundedGuidedFilter(guide, radius, 0.1, memory_limit=1024**3, mode=mode, precision=np.float32)  # type: ignore[arg-type]
    assert single.tiled and not single_whole.tiled
    np.testing.assert_allclose(single(source), single_whole(source), rtol=0, atol=1e-6)


def test_operation_budget_leaves_room_for_the_whole_frame_arrays() -> None:
    assert operation_budget((1000, 1000), memory_limit=1000 * 1024**2, persistent_bytes_per_pixel=64) == (
        1000 * 1024**2 - 64 * 1000 * 1000
    )
    assert operation_budget((10000, 10000), memory_limit=1024**3) == MINIMUM_OPERATION_BUDGET


def test_map_tiles_crop_back_and_blend_agree_for_a_local_operation() -> None:
    image = _texture(5, channels=3)
    tiles = plan_budget_tiles(HEIGHT, WIDTH, halo=6, bytes_per_pixel=8, tile_size=20)

    def local(window: tuple[slice, slice]) -> np.ndarray:
        return spatial_frequency_np(image[window], 3, normalized=True).astype(np.float32)

    expected = spatial_frequency_np(image, 3, normalized=True).astype(np.float32)
    cropped = map_tiles(lambda tile: local(tile.read), tiles, (HEIGHT, WIDTH))
    blended = blend_tiles(lambda tile: local(tile.read), tiles, (HEIGHT, WIDTH))
    np.testing.assert_allclose(cropped, expected, rtol=1e-6, atol=1e-6)
    # Blending also reads halo pixels near the tile edge, which are wrong for an SF of radius 3 only
    # within 4 px of an interior read edge; the ramps give those pixels small weights.
    assert np.abs(blended - expected).mean() < 0.05 * np.abs(expected).mean()


def test_blending_cross_fades_a_tile_dependent_result() -> None:
    """A non-local result (one constant per tile) jumps at core borders when cropped back but
    changes gradually when blended."""
    halo = 6
    tiles = plan_budget_tiles(HEIGHT, WIDTH, halo=halo, bytes_per_pixel=8, tile_size=24)
    # Keyed by the core's top-left corner (slices are not hashable before Python 3.12).
    values = {(tile.write[0].start, tile.write[1].start): float(k) for k, tile in enumerate(tiles)}

    def constant(tile: Tile) -> np.ndarray:
        rows, cols = tile.read
        return np.full(
            (rows.stop - rows.start, cols.stop - cols.start, 2),
            values[(tile.write[0].start, tile.write[1].start)],
            np.float32,
        )

    cropped = map_tiles(constant, tiles, (HEIGHT, WIDTH, 2))
    blended = blend_tiles(constant, tiles, (HEIGHT, WIDTH, 2))
    largest_jump = max(abs(a - b) for a in values.values() for b in values.values())
    steps = np.abs(np.diff(blended[..., 0], axis=1)).max(), np.abs(np.diff(blended[..., 0], axis=0)).max()
    assert np.abs(np.diff(cropped[..., 0], axis=1)).max() >= 1.0
    assert max(steps) <= largest_jump / (2 * halo) + 1e-5
    assert blended.min() >= 0.0 and blended.max() <= max(values.values())


def test_memory_limit_defaults_to_a_fraction_of_free_ram(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemFree:         1000000 kB\nMemAvailable:   8000000 kB\n")
    monkeypatch.setitem(sys.modules, "psutil", None)  # "not installed": the /proc/meminfo path
    assert tiling.available_ram(meminfo) == 8000000 * 1024
    monkeypatch.setattr(tiling, "available_ram", lambda: 3 * 1024**3)
    assert default_memory_limit("cpu") == int(3 * 1024**3 * tiling.DEFAULT_MEMORY_FRACTION)
    monkeypatch.setattr(tiling, "available_ram", lambda: 8000000 * 1024)
    assert default_memory_limit("cpu") == tiling.DEFAULT_RAM_CAP  # plenty free: capped
    monkeypatch.setattr(tiling, "available_ram", lambda: 10 * 1024**2)
    assert default_memory_limit("cpu") == MINIMUM_MEMORY_LIMIT
    monkeypatch.setattr(tiling, "available_ram", lambda: None)
    assert default_memory_limit("cpu") == min(
        int(tiling.FALLBACK_FREE_MEMORY * tiling.DEFAULT_MEMORY_FRACTION), tiling.DEFAULT_RAM_CAP
    )
    assert resolve_memory_limit(123456789) == 123456789


def test_free_ram_is_measured_on_this_machine() -> None:
    free = tiling.available_ram()
    if free is None:
        pytest.skip("no way to measure free RAM here")
    assert free > 0
    assert default_memory_limit() >= MINIMUM_MEMORY_LIMIT


@pytest.mark.parametrize("count", [2, 4])
def test_sf_fusion_in_forced_tiny_tiles_equals_the_untiled_fusion(
    make_focus_stack: Callable[..., Any], count: int
) -> None:
    synthetic = make_focus_stack(count, size=96, seed=3, colour=True)
    whole = fuse(synthetic.stack, "sf", device="cpu")
    tiled = fuse(synthetic.stack, "sf", device="cpu", tile_size=16)
    np.testing.assert_array_equal(tiled.maps["index_raw"].data, whole.maps["index_raw"].data)
    np.testing.assert_array_equal(tiled.maps["index"].data, whole.maps["index"].data)
    if count == 2:  # the guided filter's weight (N > 2 composes by pyramid blending: no weight map)
        np.testing.assert_allclose(tiled.maps["weight"].data, whole.maps["weight"].data, atol=1e-6)
    np.testing.assert_allclose(tiled.image, whole.image, atol=1e-6)
    np.testing.assert_array_equal(tiled.as_dtype("uint8"), whole.as_dtype("uint8"))


def test_run_context_resolves_its_memory_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from focusstudio.core.methods.base import RunContext

    assert RunContext(memory_limit=512 * 1024**2).resolved_memory_limit() == 512 * 1024**2
    monkeypatch.setattr(tiling, "available_ram", lambda: 2 * 1024**3)
    assert RunContext().resolved_memory_limit() == int(2 * 1024**3 * tiling.DEFAULT_MEMORY_FRACTION)
