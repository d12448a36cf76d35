"""The pair-registration cache (focusstudio.core.align.cache): a re-fusion with another method or
a setting that does not affect the registration registers nothing again; a changed estimator
setting or a changed frame does; added, removed and changed frames re-register only their own
pairs; and the result is the one an uncached run gives."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from focusstudio.core.align import (
    ALIGN_PARAMS,
    Alignment,
    AlignOptions,
    AlignRequest,
    RegistrationCache,
    RegistrationFailed,
    align_frames,
    estimate_alignment,
    registration_cache,
)
from focusstudio.core.align.cache import PAIR_SETTINGS, STACK_SETTINGS
from focusstudio.core.align.pair import PairRegistration
from focusstudio.core.pipeline import run_pipeline
from focusstudio.core.progress import run_to_completion
from focusstudio.core.types import Stack

SIZE = 96
#: Frame k is shifted by SHIFTS[k] (x, y) px against the scene; each frame has its own focus band.
SHIFTS = ((-2, 1), (-1, -1), (0, 0), (1, 2), (2, -1), (3, 1))


def _frames(seed: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    scene = cv2.GaussianBlur(rng.random((SIZE + 16, SIZE + 16)).astype(np.float32), (0, 0), 1.5)
    frames = []
    for index, (dx, dy) in enumerate(SHIFTS):
        frame = np.ascontiguousarray(scene[8 + dy : 8 + dy + SIZE, 8 + dx : 8 + dx + SIZE])
        blurred = cv2.GaussianBlur(frame, (0, 0), 1.2)
        band = np.abs(np.arange(SIZE) / SIZE - (index + 0.5) / len(SHIFTS))[None, :]
        frames.append((frame * (1 - band) + blurred * band).astype(np.float32))
    return frames


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, int]]]:
    """Every pair the estimator registers, as (id of target, id of moving) (a spy on register_pair)."""
    import focusstudio.core.align.estimate as estimate

    seen: list[tuple[int, int]] = []
    original = estimate.register_pair

    def spy(target: np.ndarray, moving: np.ndarray, *args: object, **kwargs: object) -> PairRegistration:
        seen.append((id(target), id(moving)))
        return original(target, moving, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(estimate, "register_pair", spy)
    yield seen


def _estimate(stack: Stack, cache: RegistrationCache | None, **settings: object) -> Alignment:
    return run_to_completion(estimate_alignment(stack, AlignOptions.from_params(settings), cache=cache))


def _assert_same(cached: Alignment, uncached: Alignment) -> None:
    """The registrations agree in everything but the time they took."""
    assert cached.reference == uncached.reference and cached.crop_box == uncached.crop_box
    assert cached.notes == uncached.notes and cached.options == uncached.options
    for a, b in zip(cached.frames, uncached.frames, strict=True):
        assert (a.index, a.name, a.status, a.method, a.messages) == (b.index, b.name, b.status, b.method, b.messages)
        assert (a.correlation, a.inliers, a.gain, a.offset) == (b.correlation, b.inliers, b.gain, b.offset)
        # The same pair fits composed the same way: equal up to OpenCV's own run-to-run jitter
        # (threaded kernels may sum in another order; ~1e-7 px on a 96 px frame).
        assert np.allclose(a.matrix, b.matrix, rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- the key
def test_every_alignment_setting_is_either_in_the_pair_key_or_applied_to_the_whole_stack() -> None:
    names = {spec.name for spec in ALIGN_PARAMS}
    assert set(PAIR_SETTINGS) | set(STACK_SETTINGS) == names
    assert not set(PAIR_SETTINGS) & set(STACK_SETTINGS)


# ----------------------------------------------------------------------------- re-fusing
def test_a_second_fusion_with_another_method_registers_nothing_again(calls: list[tuple[int, int]]) -> None:
    stack, cache = Stack.from_arrays(_frames()), RegistrationCache()
    request = AlignRequest({}, cache=cache)
    first = run_to_completion(run_pipeline(stack, "sf", align=request))
    assert len(calls) == len(SHIFTS) - 1 and cache.misses == len(SHIFTS) - 1 and cache.hits == 0
    # Another method, and settings that only change how the registration is applied.
    second = run_to_completion(run_pipeline(stack, "laplacian", align=request))
    applied = run_to_completion(run_pipeline(stack, "sf", align=AlignRequest(
        {"crop": False, "interpolation": "linear", "on_failure": "exclude"}, cache=cache)))
    assert len(calls) == len(SHIFTS) - 1 and cache.hits == 2 * (len(SHIFTS) - 1)
    assert first.alignment is not None and second.alignment is not None and applied.alignment is not None
    _assert_same(second.alignment, first.alignment)
    assert applied.stack.valid_mask is not None  # uncropped: the new post settings did apply
    # The frames fused are those of an uncached run.
    uncached = run_to_completion(align_frames(stack, AlignRequest({})))
    for index in range(len(stack)):
        assert np.allclose(second.stack.load(index), uncached.stack.load(index), atol=1e-5)


@pytest.mark.parametrize("setting", [{"model": "translation"}, {"ecc_iterations": 20}, {"method": "ecc"}])
def test_a_changed_estimator_setting_registers_every_pair_again(
    calls: list[tuple[int, int]], setting: dict[str, object]
) -> None:
    stack, cache = Stack.from_arrays(_frames()), RegistrationCache()
    _estimate(stack, cache)
    calls.clear()
    changed = _estimate(stack, cache, **setting)
    assert len(calls) == len(SHIFTS) - 1
    _assert_same(changed, _estimate(stack, None, **setting))


def test_a_changed_frame_re_registers_only_its_own_pairs(calls: list[tuple[int, int]]) -> None:
    frames = _frames()
    cache = RegistrationCache()
    _estimate(Stack.from_arrays(frames), cache)
    # Frame 5 (index 4) edited: it is the moving image of pair 4→3 and the target of pair 5→4.
    frames[4] = np.clip(frames[4] * 0.9 + 0.05, 0, 1).astype(np.float32)
    changed = Stack.from_arrays(frames)
    calls.clear()
    cached = _estimate(changed, cache)
    assert len(calls) == 2
    calls.clear()
    _assert_same(cached, _estimate(changed, None))


def test_added_and_removed_frames_re_register_only_the_pairs_that_changed(calls: list[tuple[int, int]]) -> None:
    frames = _frames()
    cache = RegistrationCache()
    _estimate(Stack.from_arrays(frames[:5]), cache)  # reference: frame index 2
    calls.clear()
    # A sixth frame: the reference moves to index 3, so pair 3 → 2 turns into 2 → 3, and 5 → 4 is new.
    grown = Stack.from_arrays(frames)
    cached = _estimate(grown, cache)
    assert len(calls) == 2
    calls.clear()
    _assert_same(cached, _estimate(grown, None))
    calls.clear()
    # Frame index 1 removed: only the pair that bridges the gap (0 → 2) is new.
    shrunk = Stack.from_arrays([frames[i] for i in (0, 2, 3, 4, 5)])
    cached = _estimate(shrunk, cache)
    assert len(calls) == 1
    calls.clear()
    _assert_same(cached, _estimate(shrunk, None))


def test_direct_registration_is_cached_with_its_initial_guess(calls: list[tuple[int, int]]) -> None:
    stack, cache = Stack.from_arrays(_frames()), RegistrationCache()
    first = _estimate(stack, cache, chain=False, photometric=True)
    calls.clear()
    again = _estimate(stack, cache, chain=False, photometric=True)
    assert calls == []
    _assert_same(again, first)
    assert any(frame.gain != 1.0 for frame in again.frames)  # the photometric fit ran again on the frames


# ----------------------------------------------------------------------------- the cache itself
def test_a_failed_pair_is_cached_and_raised_again_with_its_reasons() -> None:
    cache, options, image = RegistrationCache(), AlignOptions(), np.zeros((16, 16), np.float32)
    attempts: list[int] = []

    def failing() -> PairRegistration:
        attempts.append(1)
        raise RegistrationFailed("ECC did not converge; features: too few keypoints")

    for _ in range(2):
        with pytest.raises(RegistrationFailed, match="too few keypoints"):
            cache.register(image, image, options, None, failing)
    assert attempts == [1] and cache.hits == 1


def test_the_cache_keeps_the_most_recently_used_entries_and_hands_out_copies() -> None:
    cache, options = RegistrationCache(max_entries=2), AlignOptions()
    images = [np.full((8, 8), value, np.float32) for value in (0.1, 0.2, 0.3)]
    computed: list[int] = []

    def fit(number: int) -> PairRegistration:
        computed.append(number)
        return PairRegistration(np.eye(3), "ecc", 0.99, None, [])

    for number, image in enumerate(images):
        cache.register(image, image, options, None, lambda n=number: fit(n))  # type: ignore[misc]
    assert len(cache) == 2 and computed == [0, 1, 2]
    found = cache.register(images[2], images[2], options, None, lambda: fit(9))
    found.messages.append("changed by the caller")
    found.matrix[0, 2] = 5.0
    again = cache.register(images[2], images[2], options, None, lambda: fit(9))
    assert again.messages == [] and again.matrix[0, 2] == 0.0
    cache.register(images[0], images[0], options, None, lambda: fit(0))  # dropped: computed again
    assert computed == [0, 1, 2, 0]
    # Another initial guess or another dtype is another pair.
    cache.register(images[0], images[0], options, np.eye(3) * 1.0001, lambda: fit(3))
    cache.register(images[0].astype(np.float64), images[0], options, None, lambda: fit(4))
    assert computed == [0, 1, 2, 0, 3, 4]
    with pytest.raises(ValueError):
        RegistrationCache(max_entries=0)


def test_a_cancel_leaves_nothing_in_the_cache() -> None:
    from focusstudio.core.progress import Cancelled

    cache, image = RegistrationCache(), np.zeros((8, 8), np.float32)

    def cancelled() -> PairRegistration:
        raise Cancelled()

    with pytest.raises(Cancelled):
        cache.register(image, image, AlignOptions(), None, cancelled)
    assert len(cache) == 0


def test_the_shared_cache_is_one_per_process() -> None:
    assert registration_cache() is registration_cache()
    assert isinstance(registration_cache(), RegistrationCache)


def test_each_image_of_a_run_is_hashed_once_and_equal_pixels_give_equal_digests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import focusstudio.core.align.cache as cache_module

    hashed: list[int] = []
    original = cache_module.image_digest
    monkeypatch.setattr(cache_module, "image_digest", lambda image: hashed.append(1) or original(image))
    memo = cache_module.DigestMemo(size=2)
    first, copy = np.arange(64, dtype=np.float32).reshape(8, 8), np.arange(64, dtype=np.float32).reshape(8, 8)
    assert memo.digest(first) == memo.digest(first) == memo.digest(copy)
    assert len(hashed) == 2  # ``first`` once, its copy (another array) once
    assert memo.digest(first.T.copy()) != memo.digest(first)  # other pixels (or shape): another digest
