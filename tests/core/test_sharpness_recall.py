"""Sharpness recall (focusstudio.core.metrics.recall): exact behaviour on synthetic stacks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from focusstudio.cli import main
from focusstudio.core.errors import InputError
from focusstudio.core.metrics import compute_metrics, sharpness_recall, stack_sharpness_recall
from focusstudio.core.metrics.recall import BLOCK, block_sharpness
from focusstudio.core.pipeline import PIPELINE_MAP_NAMES, fuse
from focusstudio.core.types import Stack
from tests.conftest import build_focus_stack

SIZE = 256  # 8×8 blocks of 32 px


def _frames(n: int = 4, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    synthetic = build_focus_stack(n, size=SIZE, seed=seed)
    return synthetic.sharp, [np.asarray(f) for f in synthetic.frames]


def test_the_all_in_focus_image_recalls_everything() -> None:
    sharp, frames = _frames()
    recall = sharpness_recall(sharp, frames)
    assert recall.textured_blocks == 64  # every block of the textured image changes with focus
    # Blocks straddling two frames' regions: the truth is at least as sharp as either frame.
    assert recall.recall == pytest.approx(1.0, abs=1e-3)
    assert recall.lost_fraction == 0.0 and not recall.lost.any()


def test_a_result_equal_to_the_sharpest_frame_has_recall_exactly_one() -> None:
    sharp, _ = _frames()
    # Frame 0 is the sharpest everywhere: same array, same block sharpness, ratio exactly 1.
    frames = [sharp, cv2.GaussianBlur(sharp, (0, 0), 1.5), cv2.GaussianBlur(sharp, (0, 0), 3.0)]
    recall = sharpness_recall(frames[0], frames)
    assert recall.recall == 1.0 and recall.lost_fraction == 0.0
    assert np.all(recall.sharpest == 0)
    # The most defocused frame as the result: every block lost.
    worst = sharpness_recall(frames[2], frames)
    assert worst.lost.all() and worst.lost_fraction == 1.0 and worst.recall < 0.1


def test_a_region_blurred_in_the_result_is_lost_and_only_there() -> None:
    sharp, frames = _frames()
    result = sharp.copy()
    blurred = cv2.GaussianBlur(sharp, (0, 0), 2.5)
    result[:, : SIZE // 2] = blurred[:, : SIZE // 2]  # the left half, exactly 4 block columns
    recall = sharpness_recall(result, frames)
    expected = np.zeros((8, 8), bool)
    expected[:, :4] = True
    assert np.array_equal(recall.lost, expected)
    assert recall.lost_fraction == 0.5
    # Half the (equally textured) blocks keep ~everything, the other half a few per cent.
    assert 0.45 < recall.recall < 0.56
    lost_map = recall.lost_map()
    assert lost_map.shape == (SIZE, SIZE) and lost_map.dtype == np.float32
    assert np.array_equal(lost_map, np.repeat(np.repeat(expected, BLOCK, 0), BLOCK, 1).astype(np.float32))


def test_streamed_frames_give_the_same_answer_as_a_list() -> None:
    sharp, frames = _frames(3)
    listed = sharpness_recall(sharp * 0.5 + frames[1] * 0.5, frames)
    streamed = sharpness_recall(sharp * 0.5 + frames[1] * 0.5, (f for f in frames))
    assert listed.recall == streamed.recall and np.array_equal(listed.lost, streamed.lost)
    assert stack_sharpness_recall(sharp * 0.5 + frames[1] * 0.5, Stack.from_arrays(frames)).recall == pytest.approx(
        listed.recall, rel=1e-6
    )


def test_uint8_and_float_inputs_agree() -> None:
    sharp, frames = _frames(3)
    as_uint8 = [np.round(f * 255).astype(np.uint8) for f in frames]
    a = sharpness_recall(np.round(sharp * 255).astype(np.uint8), as_uint8)
    b = sharpness_recall(np.round(sharp * 255) / 255.0, [u / 255.0 for u in as_uint8])
    assert a.recall == pytest.approx(b.recall, rel=1e-5) and np.array_equal(a.lost, b.lost)


def test_textured_blocks_exclude_flat_noise_and_blocks_equal_in_every_frame() -> None:
    rng = np.random.default_rng(1)
    sharp, _ = _frames()
    base = sharp.copy()
    base[:, SIZE // 2 :] = 0.5  # right half flat grey ...
    frames = []
    for sigma in (0.0, 2.5, 5.0):
        frame = cv2.GaussianBlur(base, (0, 0), sigma) if sigma else base.copy()
        frame[:, SIZE // 2 :] = 0.5 + rng.normal(0.0, 0.004, (SIZE, SIZE // 2))  # ... with sensor noise
        frames.append(frame.astype(np.float32))
    # A result that averages the noise away in the flat half (as a blend does) loses nothing there.
    result = frames[0].copy()
    result[:, SIZE // 2 :] = 0.5
    recall = sharpness_recall(result, frames)
    assert not recall.textured[:, 4:].any()  # noise: equal in every frame / far below the detail
    assert recall.textured[:, :3].all()
    # (the 3-px Laplacian support of block column 3 reaches the replaced noise: not exactly 1)
    assert recall.recall == pytest.approx(1.0, abs=1e-4) and recall.lost_fraction == 0.0
    # A textured image sharp in every frame: no block depends on focus, nothing to measure.
    same = sharpness_recall(sharp, [sharp, sharp])
    assert same.textured_blocks == 0 and math.isnan(same.recall) and math.isnan(same.lost_fraction)


def test_blocks_outside_the_valid_area_are_not_measured() -> None:
    sharp, frames = _frames()
    result = cv2.GaussianBlur(sharp, (0, 0), 2.5)
    valid = np.ones((SIZE, SIZE), bool)
    valid[:, :100] = False  # blocks 0..3 touch the invalid band (100 < 128)
    recall = sharpness_recall(result, frames, valid=valid)
    assert not recall.textured[:, :4].any() and recall.textured[:, 4:].all()
    assert recall.lost_fraction == 1.0


def test_registration_measures_frames_shifted_against_the_result() -> None:
    # Milder defocus than elsewhere: white-noise texture blurred by σ 2.5 correlates too little
    # with the sharp result for the aligner's 0.5 minimum (real photographs correlate far better).
    synthetic = build_focus_stack(4, size=SIZE, sigma=1.2)
    sharp, frames = synthetic.sharp, [np.asarray(f) for f in synthetic.frames]
    shift = np.float32([[1, 0, 5.5], [0, 1, -3.25]])
    moved = [cv2.warpAffine(f, shift, (SIZE, SIZE), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
             for f in frames]
    result = sharp.copy()
    result[:, : SIZE // 2] = cv2.GaussianBlur(sharp, (0, 0), 2.5)[:, : SIZE // 2]
    recall = sharpness_recall(result, moved, register=True)
    # Blocks at the borders the shifted frames do not cover are dropped; the rest as unshifted.
    assert not recall.textured[:, 7].any() and not recall.textured[0].any()
    assert recall.lost[1:, :4].all() and not recall.lost[:, 4:].any()
    with pytest.raises(InputError, match="register"):
        sharpness_recall(sharp[:200], frames)


def test_block_sharpness_is_the_mean_squared_laplacian_of_the_smoothed_image() -> None:
    rng = np.random.default_rng(2)
    image = rng.random((64, 96)).astype(np.float32)
    smooth = cv2.GaussianBlur(image, (0, 0), 1.0, borderType=cv2.BORDER_REFLECT)
    padded = np.pad(smooth.astype(np.float64), 1, mode="symmetric")
    laplacian = (padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]
                 - 4 * padded[1:-1, 1:-1])
    expected = (laplacian**2).reshape(2, 32, 3, 32).mean(axis=(1, 3))
    # float32 Laplacian: relative error a few float32 ulps of values ~1.
    np.testing.assert_allclose(block_sharpness(image), expected, rtol=1e-4)


def test_compute_metrics_reports_recall_and_lost() -> None:
    sharp, frames = _frames(3)
    values = compute_metrics(sharp, frames, metrics=["Recall", "Lost", "SF"])
    assert list(values) == ["Recall", "Lost", "SF"]
    assert values["Recall"] == pytest.approx(1.0, abs=2e-3) and values["Lost"] == 0.0


def test_quality_maps_add_lost_blocks_to_the_result() -> None:
    synthetic = build_focus_stack(3, size=128)
    result = fuse(synthetic.stack, "sf", quality_maps=True)
    lost = result.maps["lost_blocks"]
    assert "lost_blocks" in PIPELINE_MAP_NAMES
    assert lost.kind == "mask" and lost.data.shape == (128, 128) and "sharpness recall" in lost.description
    assert "lost_blocks" not in fuse(synthetic.stack, "sf").maps


def test_cli_metrics_with_registration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sharp, frames = _frames(3)
    paths = []
    for i, frame in enumerate(frames):
        path = tmp_path / f"{i}.png"
        cv2.imwrite(str(path), np.round(frame * 255).astype(np.uint8))
        paths.append(str(path))
    fused = tmp_path / "fused.png"
    cv2.imwrite(str(fused), np.round(sharp[8:-8, 4:-4] * 255).astype(np.uint8))  # cropped: sizes differ
    assert main(["metrics", str(fused), *paths, "--metrics", "Recall,Lost", "--register"]) == 0
    lines = dict(line.split() for line in capsys.readouterr().out.splitlines())
    assert float(lines["Recall"]) > 0.99 and float(lines["Lost"]) == 0.0


def test_eval_reports_recall_per_scene(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    synthetic = build_focus_stack(3, size=128, seed=4)
    scene = tmp_path / "data" / "scene"
    scene.mkdir(parents=True)
    for i, frame in enumerate(synthetic.frames, start=1):
        cv2.imwrite(str(scene / f"{i}.png"), np.round(frame * 255).astype(np.uint8))
    assert main(["eval", str(tmp_path / "data"), "--metrics", "Recall,Lost", "--json"]) == 0
    report = capsys.readouterr().out
    values = json.loads(report)["scenes"][0]["metrics"]
    assert set(values) == {"Recall", "Lost"} and values["Recall"] > 0.95 and values["Lost"] == 0.0
