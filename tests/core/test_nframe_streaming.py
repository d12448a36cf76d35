"""The neighbour-pair strategy at an analysis scale (issue 20, 30 × 24 MP stacks): each frame loaded
once, shrunk and made grey as it comes and its colour pixels released, the pair maps kept for
explanation at the analysis resolution, so memory does not grow with N; the selection unchanged."""

from __future__ import annotations

import weakref

import cv2
import numpy as np
import pytest

from focusstudio.core.methods.analysis_scale import lift_pair
from focusstudio.core.methods.neighbour_refine import NEIGHBOUR_BOUNDARY_RADIUS, NEIGHBOUR_REFINE_FRAMES
from focusstudio.core.methods.registry import get_method
from focusstudio.core.methods.strategies import NEIGHBOUR_PRIOR, NEIGHBOUR_RELEVANCE_POWER, run_neighbour_decisions
from focusstudio.core.progress import CancelToken, ProgressRange, run_to_completion
from focusstudio.core.types import Stack, to_grey

HEIGHT, WIDTH, COUNT = 24, 40, 5


def _frames() -> list[np.ndarray]:
    """Colour frames whose "sharpness" (the value) peaks at frame k in the k-th vertical band, with
    a little noise so that no two frames are equal."""
    rng = np.random.default_rng(7)
    columns = np.arange(WIDTH, dtype=np.float32)
    frames = []
    for k in range(COUNT):
        centre = (k + 0.5) * WIDTH / COUNT
        profile = np.exp(-(((columns - centre) / (WIDTH / COUNT)) ** 2))
        noise = 0.01 * rng.random((HEIGHT, WIDTH))
        grey = 0.1 + 0.8 * np.tile(profile, (HEIGHT, 1)) + noise
        frames.append(np.stack([grey, 0.9 * grey, 0.8 * grey], axis=2).astype(np.float32))
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


def _prepare(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _half(frame), to_grey(frame)


def _decide(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """A fake network: weight of the first frame 0.9 where it is "sharper" (brighter), else 0.1."""
    return np.where(to_grey(first) > to_grey(second), 0.9, 0.1).astype(np.float32)


def _plain_predictor():  # type: ignore[no-untyped-def]
    """The unprepared path: shrink both frames for every pass, lift along the colour frames."""

    def predict(first: np.ndarray, second: np.ndarray, progress: ProgressRange):  # type: ignore[no-untyped-def]
        yield progress.event("network", 1.0, "pair")
        return lift_pair(_decide(_half(first), _half(second)), first, second)

    return predict


def _prepared_predictor(seen_shapes: list[tuple[int, ...]], counting: CountingStack | None = None):  # type: ignore[no-untyped-def]
    def predict(first, second, progress: ProgressRange):  # type: ignore[no-untyped-def]
        seen_shapes.append(first[0].shape)
        if counting is not None:
            # a colour frame is dropped as soon as it is prepared: none is alive during a pass
            assert counting.alive_count() == 0
        yield progress.event("network", 1.0, "pair")
        return lift_pair(_decide(first[0], second[0]), first[1], second[1])

    return predict


def test_prepared_neighbours_load_each_frame_once_and_keep_no_colour_frame() -> None:
    counting = CountingStack(_frames())
    seen: list[tuple[int, ...]] = []
    chain = run_to_completion(run_neighbour_decisions(counting.stack, _prepared_predictor(seen, counting),
                                                      ProgressRange(), CancelToken(), keep_maps=COUNT - 1,
                                                      prepare=_prepare, keep_as=_half))
    # Each frame once, in order, for the pairs; with the relevance weighting also once before,
    # for the stack's peak activity (a grey pass that keeps only the running maximum); once more
    # after, for the refinements of the selection (one grey pass for both: neighbour_refine).
    passes = 2 if NEIGHBOUR_RELEVANCE_POWER > 0 or NEIGHBOUR_PRIOR > 0 else 1
    passes += NEIGHBOUR_REFINE_FRAMES > 0 or NEIGHBOUR_BOUNDARY_RADIUS > 0
    assert counting.loads == list(range(COUNT)) * passes
    assert seen == [(HEIGHT // 2, WIDTH // 2, 3)] * (2 * (COUNT - 1))
    assert chain.index.shape == (HEIGHT, WIDTH)
    assert [m.shape for m in chain.soft_maps] == [(HEIGHT // 2, WIDTH // 2)] * (COUNT - 1)  # kept small


def test_prepared_neighbours_select_exactly_as_the_plain_path() -> None:
    """Shrinking and making grey once per frame instead of per pass changes no arithmetic: lift_pair
    guided by the grey frames is lift_pair guided by the colour frames (it makes them grey)."""
    frames = _frames()
    plain = run_to_completion(run_neighbour_decisions(Stack.from_arrays(frames), _plain_predictor(),
                                                      ProgressRange(), CancelToken(), keep_maps=COUNT - 1))
    prepared = run_to_completion(run_neighbour_decisions(Stack.from_arrays(frames), _prepared_predictor([]),
                                                         ProgressRange(), CancelToken(), keep_maps=COUNT - 1,
                                                         prepare=_prepare, keep_as=_half))
    np.testing.assert_array_equal(prepared.index, plain.index)
    for small, full in zip(prepared.soft_maps, plain.soft_maps):
        np.testing.assert_array_equal(small, _half(full))
    # and the selection is right: away from the bands' borders every pixel takes its band's frame
    band = WIDTH // COUNT
    for k in range(COUNT):
        middle = plain.index[:, k * band + 3:(k + 1) * band - 3]
        assert (middle == k).all(), (k, np.unique(middle))


@pytest.mark.parametrize("method", ["gacn", "twostream"])
def test_deep_neighbours_at_an_analysis_scale_keep_small_maps_and_a_full_size_selection(method: str) -> None:
    available, reason = get_method(method).availability()
    if not available:
        pytest.skip(f"{method}: {reason}")
    from focusstudio.core.pipeline import fuse
    from tests.conftest import build_nframe_stack

    nframe = build_nframe_stack(4, height=96, width=128)
    result = fuse(nframe.stack, method, {"analysis_scale": 0.5}, device="cpu")
    prefix = "decision_pair_" if method == "gacn" else f"{get_method(method).soft_map_name}_"
    assert [result.maps[f"{prefix}{k + 1}"].data.shape for k in range(3)] == [(48, 64)] * 3
    assert result.maps["index"].data.shape == (96, 128)
    assert result.image.shape[:2] == (96, 128) and np.isfinite(result.image).all()
