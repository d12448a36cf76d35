"""The neighbour-pair strategy at an analysis scale (issue 20, 30 × 24 MP stacks): each frame loaded
once and shrunk as it comes, no full-resolution frame or map kept per frame, the evidence summed at
the analysis resolution and only the final selection lifted to full resolution."""

from __future__ import annotations

import weakref

import cv2
import numpy as np
import pytest

from focusstudio.core.methods.analysis_scale import lift_index
from focusstudio.core.methods.registry import get_method
from focusstudio.core.methods.strategies import (
    NEIGHBOUR_SMOOTHING,
    NeighbourEvidence,
    run_neighbour_decisions,
)
from focusstudio.core.progress import CancelToken, ProgressRange, run_to_completion
from focusstudio.core.types import Stack

HEIGHT, WIDTH, COUNT = 24, 40, 5


def _frames() -> list[np.ndarray]:
    """Grey frames whose "sharpness" (the value) peaks at frame k in the k-th vertical band, with
    a little noise so that no two frames are equal."""
    rng = np.random.default_rng(7)
    columns = np.arange(WIDTH, dtype=np.float32)
    frames = []
    for k in range(COUNT):
        centre = (k + 0.5) * WIDTH / COUNT
        profile = np.exp(-(((columns - centre) / (WIDTH / COUNT)) ** 2))
        noise = 0.01 * rng.random((HEIGHT, WIDTH))
        frames.append((0.1 + 0.8 * np.tile(profile, (HEIGHT, 1)) + noise).astype(np.float32))
    return frames


class CountingStack:
    """A stack whose loader hands out fresh arrays, counts the loads and keeps weak references to
    them, so a test can see which full-resolution frames are still alive."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        base = Stack.from_arrays(frames)
        self.loads: list[int] = []
        self.alive: list[weakref.ref[np.ndarray]] = []

        def loader(info):  # type: ignore[no-untyped-def]
            self.loads.append(base.frames.index(info))
            fresh = base.load(base.frames.index(info)).copy()
            self.alive.append(weakref.ref(fresh))
            return fresh

        self.stack = Stack(base.frames, loader)

    def alive_count(self) -> int:
        return sum(ref() is not None for ref in self.alive)


def _half(frame: np.ndarray) -> np.ndarray:
    return cv2.resize(frame, (WIDTH // 2, HEIGHT // 2), interpolation=cv2.INTER_AREA)


def _pixel_predictor(seen_shapes: list[tuple[int, ...]], counting: CountingStack | None = None):  # type: ignore[no-untyped-def]
    """A fake network: weight of the first frame 0.9 where it is "sharper" (brighter), else 0.1."""

    def predict(first: np.ndarray, second: np.ndarray, progress: ProgressRange):  # type: ignore[no-untyped-def]
        seen_shapes.append(first.shape)
        if counting is not None:
            # a full-resolution frame is dropped as soon as it is shrunk: none is alive during a pass
            assert counting.alive_count() == 0
        yield progress.event("network", 1.0, "pair")
        return np.where(first > second, 0.9, 0.1).astype(np.float32)

    return predict


def test_shrunk_neighbours_load_each_frame_once_and_keep_no_full_resolution_frame() -> None:
    counting = CountingStack(_frames())
    seen: list[tuple[int, ...]] = []
    chain = run_to_completion(run_neighbour_decisions(counting.stack, _pixel_predictor(seen, counting),
                                                      ProgressRange(), CancelToken(), keep_maps=COUNT - 1,
                                                      prepare=_half))
    analysis_loads = counting.loads[:COUNT]
    assert analysis_loads == list(range(COUNT))  # each frame once, in order, during the network stage
    # then only the lift of the selection reads frames (each selected frame once)
    assert sorted(counting.loads[COUNT:]) == sorted(set(counting.loads[COUNT:]))
    assert set(seen) == {(HEIGHT // 2, WIDTH // 2)}
    assert len(seen) == 2 * (COUNT - 1)
    assert chain.index.shape == (HEIGHT, WIDTH)  # the selection at full resolution
    assert [m.shape for m in chain.soft_maps] == [(HEIGHT // 2, WIDTH // 2)] * (COUNT - 1)  # kept small


def test_shrunk_neighbours_sum_at_the_analysis_resolution_and_lift_the_selection_once() -> None:
    """The index is the lift of the analysis-resolution evidence's arg-max, the evidence smoothed
    by the same full-resolution length (σ · ½ at half size), and it picks each band's peak frame."""
    frames = _frames()
    stack = Stack.from_arrays(frames)
    chain = run_to_completion(run_neighbour_decisions(stack, _pixel_predictor([]), ProgressRange(), CancelToken(),
                                                      keep_maps=COUNT - 1, prepare=_half))
    small = [_half(f) for f in frames]
    evidence = NeighbourEvidence(small[0].shape, NEIGHBOUR_SMOOTHING * 0.5)
    for k in range(COUNT - 1):
        forward = np.where(small[k] > small[k + 1], 0.9, 0.1).astype(np.float32)
        backward = np.where(small[k + 1] > small[k], 0.9, 0.1).astype(np.float32)
        evidence.add(k, (0.5 * (forward + 1.0 - backward)).astype(np.float32))
    np.testing.assert_array_equal(chain.index, lift_index(evidence.index, stack))
    # away from the bands' borders (and the smoothing's reach) every pixel takes its band's frame
    band = WIDTH // COUNT
    for k in range(COUNT):
        middle = chain.index[:, k * band + 3:(k + 1) * band - 3]
        assert (middle == k).all(), (k, np.unique(middle))


def test_neighbours_at_full_resolution_are_unchanged_by_an_identity_prepare() -> None:
    """Scale 1: no resampling anywhere; the same selection as without ``prepare``."""
    frames = _frames()
    plain = run_to_completion(run_neighbour_decisions(Stack.from_arrays(frames), _pixel_predictor([]),
                                                      ProgressRange(), CancelToken()))
    prepared = run_to_completion(run_neighbour_decisions(Stack.from_arrays(frames), _pixel_predictor([]),
                                                         ProgressRange(), CancelToken(), prepare=lambda f: f))
    np.testing.assert_array_equal(plain.index, prepared.index)


@pytest.mark.parametrize("method", ["gacn", "twostream"])
def test_deep_neighbours_at_an_analysis_scale_lift_only_the_selection(method: str) -> None:
    """A method's neighbour run at scale ½: its pair maps at the analysis resolution, its index the
    lift of their summed evidence (recomputed here from the kept maps)."""
    available, reason = get_method(method).availability()
    if not available:
        pytest.skip(f"{method}: {reason}")
    from focusstudio.core.pipeline import fuse
    from tests.conftest import build_nframe_stack

    nframe = build_nframe_stack(4, height=96, width=128)
    result = fuse(nframe.stack, method, {"analysis_scale": 0.5}, device="cpu")
    prefix = "decision_pair_" if method == "gacn" else f"{get_method(method).soft_map_name}_"
    pair_maps = [result.maps[f"{prefix}{k + 1}"].data for k in range(3)]
    assert all(m.shape == (48, 64) for m in pair_maps)
    evidence = NeighbourEvidence((48, 64), NEIGHBOUR_SMOOTHING * 0.5)
    for k, soft in enumerate(pair_maps):
        evidence.add(k, soft)
    np.testing.assert_array_equal(result.maps["index"].data, lift_index(evidence.index, nframe.stack))
    assert result.image.shape[:2] == (96, 128) and np.isfinite(result.image).all()
