"""A Cancel reaches inside the long steps: registration, network passes, morphology, composition.

Latency itself is measured in benchmarks/gui_latency.py (``--cancel``); these tests check, without
timing anything, where the cancel checks are and that a cancel noticed there stops the run.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from focusstudio.core.align import align_stack
from focusstudio.core.pipeline import run_fusion
from focusstudio.core.progress import (
    Cancelled,
    CancelToken,
    ProgressEvent,
    cancel_scope,
    check_cancelled,
    run_to_completion,
    scoped,
)
from focusstudio.core.types import Stack


class RecordingToken(CancelToken):
    """Records the function (file:name) behind every check; cancels itself at the first check
    whose site ``stop_at`` accepts."""

    def __init__(self, stop_at: Callable[[str], bool] | None = None) -> None:
        super().__init__()
        self.sites: list[str] = []
        self.stop_at = stop_at

    def raise_if_cancelled(self) -> None:
        caller = sys._getframe(1)
        if caller.f_code.co_name == "check_cancelled":  # the ambient check: name the code that called it
            caller = caller.f_back or caller
        site = f"{Path(caller.f_code.co_filename).name}:{caller.f_code.co_name}"
        self.sites.append(site)
        if self.stop_at is not None and self.stop_at(site):
            self.cancel()
        super().raise_if_cancelled()


def _shifted_stack(count: int = 3, size: int = 160, colour: bool = False) -> Stack:
    import cv2

    rng = np.random.default_rng(5)
    base = cv2.GaussianBlur(rng.random((size + 16, size + 16)).astype(np.float32), (0, 0), 1.5)
    frames = []
    for index in range(count):
        frame = np.ascontiguousarray(base[2 * index : 2 * index + size, index : index + size])
        frames.append(np.repeat(frame[..., None], 3, axis=2) if colour else frame)
    return Stack.from_arrays(frames)


# ----------------------------------------------------------------------------- the scope
def test_check_outside_a_scope_does_nothing_and_inside_raises() -> None:
    token = CancelToken()
    token.cancel()
    check_cancelled()  # no scope: nothing to check
    with cancel_scope(token), pytest.raises(Cancelled):
        check_cancelled()
    check_cancelled()  # the scope ended with the block


def test_scoped_generator_holds_the_token_only_while_a_step_runs() -> None:
    token = CancelToken()
    seen: list[bool] = []

    def job() -> object:
        for _ in range(2):
            try:
                check_cancelled()
                seen.append(False)
            except Cancelled:
                seen.append(True)
            yield ProgressEvent("step", 0.5)
        return "done"

    steps = scoped(job(), token)
    next(steps)
    token.cancel()
    check_cancelled()  # the generator is suspended: its token is not in scope here
    assert run_to_completion(steps) == "done"
    assert seen == [False, True]


# ----------------------------------------------------------------------------- where the checks are
def test_registration_checks_between_its_pyramid_levels() -> None:
    token = RecordingToken()
    run_to_completion(align_stack(_shifted_stack(), {"method": "ecc"}, token))
    assert "ecc.py:_ecc_coarse_to_fine" in token.sites


def test_feature_registration_checks_between_detection_and_matching() -> None:
    token = RecordingToken()
    run_to_completion(align_stack(_shifted_stack(), {"method": "features"}, token))
    # Per registered pair: around each of the two detections, and before each block of matches.
    assert token.sites.count("features.py:_feature_transform") >= 4 * 2


def test_a_cancel_inside_the_registration_stops_the_alignment() -> None:
    token = RecordingToken(stop_at=lambda site: site == "ecc.py:_ecc_coarse_to_fine")
    with pytest.raises(Cancelled) as caught:
        run_to_completion(align_stack(_shifted_stack(), {"method": "ecc"}, token))
    innermost = traceback.extract_tb(caught.value.__traceback__)[-4:]
    assert any(entry.name == "_ecc_coarse_to_fine" for entry in innermost)
    assert token.sites.count("ecc.py:_ecc_coarse_to_fine") == 1  # nothing ran after it


def test_sf_checks_inside_consistency_verification_and_composition() -> None:
    token = RecordingToken()
    params = {"composition": "guided"}
    run_to_completion(run_fusion(_shifted_stack(count=3), "sf", params, cancel=token))
    assert "consistency.py:label_opening_nearest" in token.sites
    assert "morphology.py:small_region_removal_labels" in token.sites
    assert "compose.py:iter_compose_weights" in token.sites


def test_sf_pyramid_composition_checks_once_per_frame() -> None:
    """Three frames compose by pyramid by default: a check before each frame's pyramid."""
    token = RecordingToken()
    run_to_completion(run_fusion(_shifted_stack(count=3), "sf", cancel=token))
    assert token.sites.count("_classical.py:compose_pyramid_steps") >= 1


@pytest.mark.parametrize("method", ["sesf", "gacn"])
def test_a_cancel_inside_the_encoder_stops_the_network_pass(method: str) -> None:
    """SESF-Fuse and GACN share the fast encoder: a cancel between two of its blocks stops the run
    before the frame's pass ends (the per-frame check alone waits for the whole pass)."""
    pytest.importorskip("torch")
    from focusstudio.core.methods.registry import get_method

    if not get_method(method).availability()[0]:
        pytest.skip(f"{method} weights are not installed")
    encoder_sites = ("fast_cpu.py:_forward", "fast_cpu.py:_channels_last_parts")
    token = RecordingToken(stop_at=lambda site: site in encoder_sites)
    with pytest.raises(Cancelled):
        run_to_completion(run_fusion(_shifted_stack(count=2, size=96), method, cancel=token))
    first = next(i for i, site in enumerate(token.sites) if site in encoder_sites)
    assert first == len(token.sites) - 1  # the run stopped at that check


@pytest.mark.parametrize("method", ["twostream", "mfifgan"])
def test_every_layer_of_a_loaded_network_checks_for_a_cancel(method: str) -> None:
    pytest.importorskip("torch")
    from focusstudio.core.methods.registry import get_method

    if not get_method(method).availability()[0]:
        pytest.skip(f"{method} weights are not installed")
    token = RecordingToken(stop_at=lambda site: site == "checkpoint.py:_check_cancelled_hook")
    with pytest.raises(Cancelled):
        run_to_completion(run_fusion(_shifted_stack(count=2, size=96, colour=True), method, cancel=token))
    assert token.sites[-1] == "checkpoint.py:_check_cancelled_hook"
