"""The deep-method engine's tile loop and the shared N-frame strategies, on small arrays (no network)."""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
import pytest

from focusstudio.core.methods.base import RunContext
from focusstudio.core.methods.engine import (
    is_whole,
    plan_network_tiles,
    reporter,
    run_tiles,
    sum_over_tiles,
)
from focusstudio.core.methods.strategies import (
    CalibrationVolume,
    RunningArgmax,
    compose_selection,
    run_serial_decisions,
    serial_pairs,
)
from focusstudio.core.ops.compose import compose_index
from focusstudio.core.progress import Cancelled, CancelToken, ProgressEvent, ProgressRange, run_to_completion
from focusstudio.core.tiling import Tile, fits_map_budget, plan_tiles
from focusstudio.core.types import Stack


def box3(image: np.ndarray) -> np.ndarray:
    """A local operation of radius 1 (zero padding), exact in float64 whatever the tiling."""
    padded = np.pad(image, 1)
    height, width = image.shape
    return sum(padded[dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3))


def test_run_tiles_stitches_several_outputs_as_the_whole_image() -> None:
    rng = np.random.default_rng(3)
    image = rng.random((37, 51))
    tiles = plan_tiles(37, 51, 12, 1)
    events: list[ProgressEvent] = []

    def compute(tile: Tile) -> tuple[np.ndarray, np.ndarray, None]:
        window = image[tile.read]
        return box3(window), np.stack([window, 2 * window]).astype(np.float32), None

    smooth, planes, absent = run_to_completion(
        run_tiles(tiles, image.shape, compute, CancelToken(), reporter(ProgressRange(0.5, 1.0), "tiles")),
        events.append,
    )
    assert smooth is not None and planes is not None and absent is None
    assert smooth.dtype == np.float64 and planes.shape == (2, 37, 51) and planes.dtype == np.float32
    np.testing.assert_allclose(smooth, box3(image), rtol=1e-12)  # same sums, another grouping
    np.testing.assert_array_equal(planes[1], (2 * image).astype(np.float32))
    assert len(events) == len(tiles) and events[-1].fraction == pytest.approx(1.0)
    assert events[0].fraction == pytest.approx(0.5 + 0.5 / len(tiles))


def test_run_tiles_checks_the_cancel_token_before_every_tile() -> None:
    token = CancelToken()
    done: list[Tile] = []

    def compute(tile: Tile) -> np.ndarray:
        done.append(tile)
        token.cancel()
        return np.zeros((tile.read[0].stop - tile.read[0].start, tile.read[1].stop - tile.read[1].start))

    with pytest.raises(Cancelled):
        run_to_completion(run_tiles(plan_tiles(40, 40, 16, 2), (40, 40), compute, token))
    assert len(done) == 1


def test_sum_over_tiles_equals_the_global_sum_of_a_local_statistic() -> None:
    rng = np.random.default_rng(4)
    image = rng.random((45, 30))
    tiles = plan_tiles(45, 30, 16, 5)  # the plan's halo exceeds the statistic's own (1)
    total = sum_over_tiles(tiles, image.shape, 1, lambda window, core: box3(image[window])[core].sum(), None)
    assert total == pytest.approx(box3(image).sum(), rel=1e-12)


def test_network_tile_plan_whole_or_tiled() -> None:
    budget = 64 * 1024**2
    assert is_whole(plan_network_tiles(100, 80, RunContext(memory_limit=budget), 1000.0, 10))
    # a user's tile size tiles an image that would fit, unless the method asks otherwise
    forced = plan_network_tiles(100, 80, RunContext(memory_limit=budget, tile_size=64), 1000.0, 10)
    assert len(forced) == 4 and all(t.read[0].start <= t.write[0].start for t in forced)
    assert is_whole(plan_network_tiles(60, 50, RunContext(memory_limit=budget, tile_size=64), 1000.0, 10,
                                       tile_size_forces_tiles=False))
    # a small budget: several tiles, cores on the alignment grid
    small = plan_network_tiles(400, 300, RunContext(memory_limit=4 * 1024**2), 1000.0, 8, align=4)
    assert len(small) > 1 and all(t.write[0].start % 4 == 0 and t.write[1].start % 4 == 0 for t in small)


def test_kept_maps_fit_half_the_budget() -> None:
    assert fits_map_budget(50, memory_limit=100) and not fits_map_budget(51, memory_limit=100)


@pytest.mark.parametrize("ties", ["first", "last"])
def test_running_argmax_follows_its_tie_rule(ties: str) -> None:
    rng = np.random.default_rng(5)
    activities = [rng.integers(0, 3, (6, 7)).astype(np.float32) for _ in range(4)]  # many ties
    first = activities[0].copy()
    argmax = RunningArgmax((6, 7), ties=ties)  # type: ignore[arg-type]
    for i, activity in enumerate(activities):
        argmax.add(i, activity)
    volume = np.stack(activities)
    expected = volume.argmax(axis=0) if ties == "first" else len(activities) - 1 - volume[::-1].argmax(axis=0)
    np.testing.assert_array_equal(argmax.index, expected)
    np.testing.assert_array_equal(argmax.best, volume.max(axis=0))
    np.testing.assert_array_equal(activities[0], first)  # copied, not overwritten


def test_calibration_volume_is_the_arg_max_of_the_paper_s_volume() -> None:
    rng = np.random.default_rng(6)
    maps = [rng.random((5, 8)).astype(np.float32) for _ in range(3)]  # m_2, m_3, m_4
    volume = CalibrationVolume(keep_volumes=True)
    for j, m in enumerate(maps, start=1):
        volume.add(j, m)
    m2 = maps[0]
    direct = [m2, 1.0 - m2, *(m2 * (1.0 - m) / (m + 1e-4) for m in maps[1:])]
    np.testing.assert_array_equal(volume.index, np.stack(direct).argmax(axis=0))
    assert volume.volumes is not None and len(volume.volumes) == 4


def _stack(count: int) -> Stack:
    rng = np.random.default_rng(7)
    return Stack.from_arrays([rng.random((9, 11)).astype(np.float32) for _ in range(count)])


def test_serial_pairs_runs_every_step_in_order_over_its_share_of_progress() -> None:
    stack = _stack(4)
    calls: list[tuple[int, float, float]] = []

    def step(running: np.ndarray, frame: np.ndarray, j: int, progress: ProgressRange) -> Generator[
        ProgressEvent, None, np.ndarray
    ]:
        calls.append((j, progress.start, progress.end))
        yield progress.event("network", 1.0)
        return np.maximum(running, frame)

    result = run_to_completion(serial_pairs(stack, step, ProgressRange(), CancelToken()))
    assert [c[0] for c in calls] == [1, 2, 3]
    assert [c[1:] for c in calls] == [pytest.approx((k / 3, (k + 1) / 3)) for k in range(3)]
    np.testing.assert_array_equal(result, np.max([stack.load(i) for i in range(4)], axis=0))


def test_serial_decisions_track_the_source_of_hard_selections_only() -> None:
    stack = _stack(3)

    def predict(first: np.ndarray, second: np.ndarray, progress: ProgressRange) -> Generator[
        ProgressEvent, None, np.ndarray
    ]:
        yield progress.event("network", 1.0)
        return (first > second).astype(np.float32)

    hard = run_to_completion(run_serial_decisions(stack, predict, lambda soft: soft, ProgressRange(), CancelToken()))
    assert hard.index is not None and len(hard.soft_maps) == 2
    frames = np.stack([stack.load(i) for i in range(3)])
    # the running result is the pixel of the selected frame: the largest, ties to the later frame
    np.testing.assert_array_equal(np.take_along_axis(frames, hard.index[None], axis=0)[0], hard.image)
    soft = run_to_completion(
        run_serial_decisions(stack, predict, lambda s: np.full_like(s, 0.5), ProgressRange(), CancelToken())
    )
    assert soft.index is None


@pytest.mark.parametrize("how", ["select", "pyramid"])
def test_compose_selection(how: str) -> None:
    levels = (0.2, 0.5, 0.8)
    stack = Stack.from_arrays([np.full((16, 64), level, np.float32) for level in levels])
    index = np.zeros(stack.shape, dtype=np.int32)
    index[:, 32:] = 2
    image = run_to_completion(compose_selection(stack, index, RunContext(), how))  # type: ignore[arg-type]
    if how == "select":
        np.testing.assert_array_equal(image, compose_index(stack, index))
    else:  # pyramid blending: each side keeps its frame away from the switch, a ramp across it
        np.testing.assert_allclose(image[:, :8], 0.2, atol=0.02)
        np.testing.assert_allclose(image[:, -8:], 0.8, atol=0.02)
        assert np.all(np.diff(image[8]) >= -1e-6)
