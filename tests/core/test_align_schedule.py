"""The work-ahead of the registration (frames decoded and chained pairs registered on a thread
pool), keypoints detected once per frame, and a feature fit that confirms ECC's."""

from __future__ import annotations

import numpy as np
import pytest

import focusstudio.core.align.estimate as estimate_module
import focusstudio.core.align.features as features_module
from focusstudio.core.align import AlignOptions, estimate_alignment, register_pair
from focusstudio.core.align.results import Alignment
from focusstudio.core.progress import run_to_completion
from focusstudio.core.types import Stack
from tests.core.test_align import (
    SIMILARITIES,
    _displacement_errors,
    _relative_truth,
    _similarity,
    _stack_with_noise_frame,
    _synthetic_stack,
)


def _estimate(stack: Stack, workers: int, monkeypatch: pytest.MonkeyPatch, **options: object) -> Alignment:
    monkeypatch.setattr(estimate_module, "worker_count", lambda pixels, frames: workers)
    return run_to_completion(estimate_alignment(stack, AlignOptions(**options)))  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["auto", "features"])
def test_the_pool_finds_what_the_sequential_order_finds(monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    stack, _ = _synthetic_stack([_similarity(*p) for p in SIMILARITIES])
    sequential = _estimate(stack, 1, monkeypatch, method=method)
    pooled = _estimate(stack, 3, monkeypatch, method=method)
    for one, other in zip(sequential.frames, pooled.frames):
        assert (one.status, one.method) == (other.status, other.method)
        # The same OpenCV calls on the same pixels, in another thread.
        np.testing.assert_allclose(one.matrix, other.matrix, atol=1e-9)


def test_after_a_failed_frame_the_pool_registers_the_next_one_to_the_last_good_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack, truths = _stack_with_noise_frame()
    alignment = _estimate(stack, 3, monkeypatch)
    assert alignment.failed == [3]
    assert "using the transform of frame 3" in alignment.frames[3].messages[0]  # 1-based, as the list shows
    good = alignment.frames[4]  # its speculative pair (onto the noise frame) must not count
    assert good.status == "ok"
    assert _displacement_errors(good.matrix, _relative_truth(truths, 2)[4])[0] < 0.1


def test_the_pool_decodes_every_frame_once(monkeypatch: pytest.MonkeyPatch) -> None:
    stack, _ = _synthetic_stack([_similarity(*p) for p in SIMILARITIES])
    decoded: list[str] = []
    counting = Stack(stack.frames, lambda info: (decoded.append(info.name), stack.load(stack.frames.index(info)))[1])
    _estimate(counting, 3, monkeypatch)
    assert sorted(decoded) == sorted(counting.names)


def test_keypoints_are_detected_once_per_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    stack, _ = _synthetic_stack([_similarity(*p) for p in SIMILARITIES])
    detections: list[int] = []
    real = features_module._to_uint8

    def counting(image: np.ndarray) -> np.ndarray:
        detections.append(image.size)
        return real(image)

    monkeypatch.setattr(features_module, "_to_uint8", counting)
    alignment = _estimate(stack, 1, monkeypatch, method="features")
    assert all(f.status in ("ok", "reference") for f in alignment.frames)
    assert len(detections) == len(stack)  # 4 pairs, 8 images, 5 frames


def test_a_feature_fit_that_agrees_confirms_ecc_without_another_refinement() -> None:
    truth = [_similarity(1.0, 0.0, 0.0, 0.0), _similarity(1.0, 0.0, 3.0, -2.0)]
    stack, _ = _synthetic_stack(truth, seed=3, blur=6.0)
    target, moving = stack.load(0, grey=True), stack.load(1, grey=True)
    # Noise keeps ECC's correlation below the trusted level, so the features are tried.
    rng = np.random.default_rng(0)
    moving = np.clip(moving + rng.normal(0.0, 0.12, moving.shape), 0.0, 1.0).astype(np.float32)
    found = register_pair(target, moving, AlignOptions())
    assert found.correlation is not None and found.correlation < 0.98
    assert found.method == "ecc" and found.inliers is not None
    assert any("agrees within" in message for message in found.messages)
    # Strong defocus and noise: a fifth of a pixel (noise-free pairs: < 0.1 px, see test_align).
    assert _displacement_errors(found.matrix, _relative_truth(truth, 0)[1])[0] < 0.2
