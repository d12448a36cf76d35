"""Retouch model (issue 16): painting frames into the result, undo/redo, save and re-apply,
luminosity matching and the pick helpers."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from focusstudio.core.errors import InputError
from focusstudio.core.pipeline import fuse
from focusstudio.core.retouch import (
    Brush,
    FrameCache,
    RetouchDocument,
    RetouchModel,
    SharpnessProbe,
    Stroke,
    apply_retouch,
    chosen_frame_of,
    parse_retouch,
    read_retouch_file,
    retouch_section,
)
from focusstudio.core.retouch.brush import segment_distance
from focusstudio.core.types import FusionResult, Stack
from tests.conftest import build_focus_stack

#: Frames are cached as 16-bit: a painted pixel differs from the float frame by ≤ 1/131070.
CACHE_TOLERANCE = 1.0 / 65535.0
HARD = Brush(size=24, hardness=1.0, opacity=1.0)


@pytest.fixture(scope="module")
def pair() -> tuple[Stack, FusionResult]:
    synthetic = build_focus_stack(2, size=96, seed=1, colour=True)
    return synthetic.stack, fuse(synthetic.stack, "sf")


def _model(pair: tuple[Stack, FusionResult]) -> RetouchModel:
    stack, result = pair
    return RetouchModel.from_result(result, stack)


def _disc(shape: tuple[int, int], x: float, y: float, radius: float) -> np.ndarray:
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    return np.hypot(cols + 0.5 - x, rows + 0.5 - y) <= radius


def test_painting_copies_the_frame_inside_and_leaves_the_rest(pair: tuple[Stack, FusionResult]) -> None:
    stack, result = pair
    model = _model(pair)
    rect = model.begin_stroke(1, HARD, 40, 40, match=False)
    assert rect is not None
    model.extend_stroke(56, 44)
    total = model.end_stroke()
    assert total is not None
    frame = stack.load(1)
    distance = segment_distance((40, 40), (56, 44), (0, model.shape[0], 0, model.shape[1]))
    inside = distance <= 10
    np.testing.assert_allclose(model.image[inside], frame[inside], atol=CACHE_TOLERANCE)
    outside = distance >= 12.5
    # Untouched pixels are the method's own result, bit for bit (1·base + nothing).
    np.testing.assert_array_equal(model.image[outside], result.image[outside])
    assert model.painted_frame()[40, 48] == 1
    assert model.painted_frame()[5, 5] == -1
    row0, row1, col0, col1 = total
    assert row0 <= 28 and row1 >= 56 and col0 <= 28 and col1 >= 68


def test_one_stroke_never_builds_up_past_its_opacity(pair: tuple[Stack, FusionResult]) -> None:
    model = _model(pair)
    half = Brush(size=20, hardness=1.0, opacity=0.5)
    model.begin_stroke(0, half, 30, 30, match=False)
    for x in (40, 30, 40, 30):  # back and forth over the same pixels
        model.extend_stroke(x, 30)
    model.end_stroke()
    assert model.painted()[29, 35] == pytest.approx(0.5, abs=1e-6)
    model.apply(Stroke(0, half, [(35.0, 30.0)], match=False))  # a second stroke does build up
    assert model.painted()[29, 35] == pytest.approx(0.75, abs=1e-6)


def test_eraser_returns_to_the_methods_result(pair: tuple[Stack, FusionResult]) -> None:
    _stack, result = pair
    model = _model(pair)
    model.apply(Stroke(1, Brush(30, 0.3, 0.8), [(48.0, 48.0), (60.0, 50.0)]))
    assert not np.allclose(model.image, result.image)
    model.apply(Stroke(None, Brush(60, 1.0, 1.0), [(54.0, 49.0)]))
    np.testing.assert_allclose(model.image, result.image, atol=1e-6)
    assert float(model.painted().max()) == pytest.approx(0.0, abs=1e-6)


def test_undo_and_redo_whole_strokes(pair: tuple[Stack, FusionResult]) -> None:
    _stack, result = pair
    model = _model(pair)
    assert not model.can_undo() and model.undo() is None
    model.apply(Stroke(1, Brush(20, 0.5, 1.0), [(30.0, 30.0), (50.0, 30.0)]))
    after_one = model.image.copy()
    model.apply(Stroke(0, Brush(40, 0.5, 0.7), [(40.0, 36.0), (40.0, 60.0)]))
    after_two = model.image.copy()
    assert model.undo() is not None
    np.testing.assert_allclose(model.image, after_one, atol=1e-6)
    model.undo()
    np.testing.assert_allclose(model.image, result.image, atol=1e-6)
    assert not model.can_undo() and model.can_redo()
    model.redo()
    model.redo()
    np.testing.assert_allclose(model.image, after_two, atol=1e-6)
    assert len(model.strokes) == 2
    model.undo()
    model.apply(Stroke(None, Brush(10, 0.5, 1.0), [(10.0, 10.0)]))  # a new stroke drops the redo
    assert not model.can_redo()
    assert [s.frame for s in model.strokes] == [1, None]


def test_saved_strokes_reapply_to_a_result_fused_with_other_settings(pair: tuple[Stack, FusionResult]) -> None:
    stack, result = pair
    model = _model(pair)
    model.apply(Stroke(1, Brush(26, 0.6, 1.0), [(44.0, 46.0), (52.0, 50.0)], match=False))
    model.apply(Stroke(0, Brush(16, 0.2, 0.6), [(80.0, 10.0), (84.0, 20.0)]))
    document = json.loads(json.dumps(retouch_section(model)))
    # The same settings: the same image.
    again = apply_retouch(result, stack, parse_retouch(document))
    np.testing.assert_allclose(again.image, model.image, atol=1e-6)
    assert "retouched by hand: 2 strokes" in again.notes
    # Other post-processing: painted pixels are still the frame, the rest is the new result.
    other = fuse(stack, "sf", {"use_guided_filter": False, "sf_radius": 3})
    reapplied = apply_retouch(other, stack, parse_retouch(document)).image
    inside = _disc(model.shape, 44, 46, 6)
    np.testing.assert_allclose(reapplied[inside], stack.load(1)[inside], atol=CACHE_TOLERANCE)
    far = ~(_disc(model.shape, 48, 48, 24) | _disc(model.shape, 82, 15, 20))
    np.testing.assert_array_equal(reapplied[far], other.image[far])


def test_end_to_end_results_get_the_frame_mixed_over_them() -> None:
    """UFA-like: the network's output is not composed from the frames; painting mixes the frame over it."""
    synthetic = build_focus_stack(2, size=64, seed=2)
    network = FusionResult(np.full((64, 64), 0.3, np.float32), "ufa", {})
    model = RetouchModel.from_result(network, synthetic.stack)
    model.apply(Stroke(0, Brush(20, 1.0, 0.5), [(32.0, 32.0)], match=False))
    expected = 0.5 * 0.3 + 0.5 * synthetic.stack.load(0)[32, 32]
    assert model.image[32, 32] == pytest.approx(expected, abs=CACHE_TOLERANCE)
    assert model.image[2, 2] == pytest.approx(0.3)
    assert chosen_frame_of(network, 32, 32) is None


def _ring_step(image: np.ndarray, x: float, y: float, radius: float) -> float:
    """Mean just inside − mean just outside a circle (signed)."""
    rows, cols = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    distance = np.hypot(cols + 0.5 - x, rows + 0.5 - y)
    inner = (distance > radius - 7) & (distance < radius - 2)
    outer = (distance > radius + 2) & (distance < radius + 7)
    return float(image[inner].mean()) - float(image[outer].mean())


def test_luminosity_matching_reduces_the_seam() -> None:
    """Frame 1 is 20 % brighter than frame 0; painting it over a result made of frame 0 leaves a
    step at the stroke's border unless its gain is matched to the surroundings. The seam is the
    border step in excess of the texture's own step there (the step of frame 0 itself)."""
    synthetic = build_focus_stack(2, size=160, seed=4, sigma=1.5)
    # × 0.8 first: no pixel of the brighter frame clips, so the offset is a pure gain.
    frames = [synthetic.frames[0] * 0.8, synthetic.frames[1] * (0.8 * 1.2)]
    stack = Stack.from_arrays(frames)
    result = FusionResult(np.asarray(frames[0], np.float32), "sf", {})  # the surroundings: frame 0
    texture_step = _ring_step(result.image, 80, 80, 24)
    seams = {}
    for match in (False, True):
        model = RetouchModel.from_result(result, stack)
        model.apply(Stroke(1, Brush(48, 1.0, 1.0), [(80.0, 80.0)], match=match))
        seams[match] = abs(_ring_step(model.image, 80, 80, 24) - texture_step)
    # Unmatched: ~20 % of the mean level (≈ 0.4) inside; matched: the gain is estimated on the
    # border ring, where the blurred frame 1 has the same mean as frame 0 up to the blur's leak.
    assert seams[False] > 0.05
    assert seams[True] < 0.1 * seams[False]


def test_pick_helpers(make_focus_stack) -> None:  # type: ignore[no-untyped-def]
    synthetic = make_focus_stack(3, size=128, seed=5)
    result = fuse(synthetic.stack, "sf")
    probe = SharpnessProbe.of_stack(synthetic.stack)
    assert not probe.measured
    labels = synthetic.labels
    # Far inside each sector, away from its edges and the centre.
    for frame in range(3):
        rows, cols = np.nonzero(labels == frame)
        far = np.hypot(rows - 63.5, cols - 63.5) > 40
        row, col = int(np.median(rows[far])), int(np.median(cols[far]))
        assert labels[row, col] == frame
        assert probe.sharpest(row, col) == frame
        assert chosen_frame_of(result, row, col) == frame
    assert probe.measured


def test_frame_cache_keeps_frames_compact(pair: tuple[Stack, FusionResult]) -> None:
    stack, _ = pair
    cache = FrameCache.of_stack(stack)
    assert cache.ensure(0).dtype == np.uint16 or stack.dtype == "float32"
    region = cache.region(1, (10, 20, 30, 45))
    np.testing.assert_allclose(region, stack.load(1)[10:20, 30:45], atol=CACHE_TOLERANCE)
    with pytest.raises(IndexError):
        cache.ensure(2)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not a JSON retouch file"),
        ('{"a": 1}', "not a FocusStudio retouch file"),
        ('{"retouch": {"format": "focusstudio-retouch", "version": 9}}', "version 9"),
        ('{"format": "focusstudio-retouch", "version": 1, "shape": [96], "strokes": []}', "'shape'"),
        ('{"format": "focusstudio-retouch", "version": 1, "shape": [96, 96], "strokes": '
         '[{"frame": 0, "size": -3, "points": [[1, 2]]}]}', "stroke 1: 'size'"),
        ('{"format": "focusstudio-retouch", "version": 1, "shape": [96, 96], "strokes": '
         '[{"frame": 0, "size": 3, "points": []}]}', "'points'"),
        ('{"format": "focusstudio-retouch", "version": 1, "shape": [96, 96], "strokes": '
         '[{"frame": 0, "size": 3, "opacity": 2, "points": [[1, 2]]}]}', "'opacity'"),
    ],
)
def test_bad_retouch_files_are_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "strokes.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message) as caught:
        read_retouch_file(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_document_that_does_not_fit_is_refused(pair: tuple[Stack, FusionResult]) -> None:
    stack, result = pair
    stroke = Stroke(0, HARD, [(10.0, 10.0)])
    with pytest.raises(InputError, match="paint from frame 5"):
        apply_retouch(result, stack, RetouchDocument((96, 96), (), (replace(stroke, frame=5),)))
    with pytest.raises(InputError, match="120×80"):
        apply_retouch(result, stack, RetouchDocument((80, 120), (), (stroke,)))
    with pytest.raises(InputError, match="not found"):
        read_retouch_file(Path("/nonexistent/strokes.json"))


def test_brush_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="size"):
        Brush(size=0)
    with pytest.raises(ValueError, match="hardness"):
        Brush(hardness=1.5)


def test_grey_results_are_painted_too() -> None:
    synthetic = build_focus_stack(2, size=64, seed=6, dtype="uint8")
    result = fuse(synthetic.stack, "sf")
    model = RetouchModel.from_result(result, synthetic.stack)
    model.apply(Stroke(0, HARD, [(20.0, 20.0)], match=False))
    assert model.image.ndim == 2
    assert model.image[20, 20] == pytest.approx(synthetic.stack.load(0)[20, 20], abs=CACHE_TOLERANCE)
    assert model.retouched_result(result).as_dtype().dtype == np.uint8


def test_rebased_model_replays_the_strokes_on_a_new_result(pair: tuple[Stack, FusionResult]) -> None:
    stack, _ = pair
    model = _model(pair)
    model.apply(Stroke(1, Brush(26, 0.6, 1.0), [(44.0, 46.0), (52.0, 50.0)]))
    model.apply(Stroke(0, Brush(16, 0.2, 0.6), [(80.0, 10.0)]))
    model.undo()  # undone strokes are not carried over
    other = fuse(stack, "sf", {"use_guided_filter": False})
    rebased = model.rebased(other.image)
    expected = apply_retouch(other, stack, RetouchDocument.of_model(model)).image
    np.testing.assert_allclose(rebased.image, expected, atol=1e-6)
    assert len(rebased.strokes) == 1 and rebased.can_undo()
    with pytest.raises(ValueError, match="painted on"):
        model.rebased(other.image[:50])


def test_the_undo_history_is_bounded(pair: tuple[Stack, FusionResult], monkeypatch: pytest.MonkeyPatch) -> None:
    from focusstudio.core.retouch import model as model_module

    # Room for the snapshots of one stroke and a half (each: the one 96×96 tile of B and of frame 1's layer).
    monkeypatch.setattr(model_module, "UNDO_BYTES", 3 * 96 * 96 * 4)
    model = _model(pair)
    for x in (20.0, 50.0, 80.0):
        model.apply(Stroke(1, HARD, [(x, 40.0)]))
    assert model.undo() is not None
    assert not model.can_undo() and model.undo() is None
    assert len(model.strokes) == 2  # the older strokes stay painted and saved
    model.redo()
    assert len(model.strokes) == 3


def test_chosen_frame_reads_whatever_selection_map_a_method_has() -> None:
    from focusstudio.core.retouch import chosen_frame
    from focusstudio.core.types import FusionMap

    decision = np.zeros((8, 8), np.float32)
    decision[:, :4] = 1.0  # frame 0 on the left half
    raw = FusionMap("decision_raw", "decision", 1.0 - decision)
    # SESF-Fuse names its final pair decision "decision_post"; the raw one must not win.
    maps = {"decision_raw": raw, "decision_post": FusionMap("decision_post", "decision", decision)}
    assert chosen_frame(maps, 2, 1, (8, 8)) == 0 and chosen_frame(maps, 2, 6, (8, 8)) == 1
    assert chosen_frame({"decision_raw": raw}, 2, 1, (8, 8)) == 1
    # Maps at a lower resolution are scaled to the image.
    index = FusionMap("index", "index", np.array([[0, 2], [1, 1]], np.int32))
    assert chosen_frame({"index": index, **maps}, 10, 90, (100, 100)) == 2
    assert chosen_frame({"activity": FusionMap("activity", "activity", decision)}, 0, 0, (8, 8)) is None
