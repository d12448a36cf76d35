"""GACN's per-frame feature cache in the ``neighbours`` strategy (issue 20): each frame's feature
path runs once (whole image, or its tiles' global cSE scales and kept tile features), only the
decision path per pass, and the maps equal those of the pair passes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from focusstudio.core.methods.backends.gacn_fast import GACNInference
from focusstudio.core.methods.gacn import GACNFuse
from focusstudio.core.pipeline import fuse
from focusstudio.core.types import FusionResult, Stack
from tests.core.focus_sweep import focus_sweep_stack

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FRAMES = 4
#: The cached passes run the same operations on the same values as the pair passes (a frame's
#: features do not depend on the frame it is compared with; the tile plan is the same), so the maps
#: agree to the last bit on one machine; the bound leaves room for a kernel that sums a batch in
#: another order: one float32 rounding (2⁻²⁴ relative) of O(1) activations, amplified by the
#: decision's sigmoid(1000·x) (slope ≤ 250) and the symmetrised mean, ≈ 1.5e-5.
MAP_TOLERANCE = 1e-4


def _stack(height: int, width: int) -> Stack:
    return focus_sweep_stack(FRAMES, height, width, seed=11, texture_sigma=0.7, blur_sigma=2.5)


class _Counts:
    def __init__(self) -> None:
        self.features = 0  # whole-image (or per-tile recomputed) feature path runs
        self.stored = 0  # tiled feature paths with kept tile features
        self.decisions = 0  # decision path runs (per pass, or per tile and pass)

    def reset(self) -> None:
        self.features = self.stored = self.decisions = 0


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Counts]:
    counted = _Counts()
    features, stored, decision = GACNInference.features, GACNInference.stored_features, GACNInference.decision

    def counting_features(self: GACNInference, *args: Any, **kwargs: Any) -> Any:
        counted.features += 1
        return features(self, *args, **kwargs)

    def counting_stored(self: GACNInference, *args: Any, **kwargs: Any) -> Any:
        counted.stored += 1
        return stored(self, *args, **kwargs)

    def counting_decision(self: GACNInference, *args: Any, **kwargs: Any) -> Any:
        counted.decisions += 1
        return decision(self, *args, **kwargs)

    monkeypatch.setattr(GACNInference, "features", counting_features)
    monkeypatch.setattr(GACNInference, "stored_features", counting_stored)
    monkeypatch.setattr(GACNInference, "decision", counting_decision)
    yield counted


def _fuse(stack: Stack, cached: bool, monkeypatch: pytest.MonkeyPatch, tile_size: int | None = None,
          **params: Any) -> FusionResult:
    with monkeypatch.context() as patch:
        patch.setattr(GACNFuse, "caches_frame_features", cached)
        return fuse(stack, "gacn", {"strategy": "neighbours", **params}, device="cpu", tile_size=tile_size)


def _assert_same_maps(cached: FusionResult, uncached: FusionResult) -> None:
    names = [f"decision_pair_{k + 1}" for k in range(FRAMES - 1)]
    for name in names:
        np.testing.assert_allclose(cached.maps[name].data, uncached.maps[name].data, rtol=0, atol=MAP_TOLERANCE)
    # the maps are not trivially equal: the pairs differ
    assert not np.allclose(cached.maps[names[0]].data, cached.maps[names[-1]].data, atol=1e-3)
    np.testing.assert_array_equal(cached.maps["index"].data, uncached.maps["index"].data)
    np.testing.assert_allclose(cached.image, uncached.image, rtol=0, atol=1e-6)


def test_whole_frames_encoded_once(counts: _Counts, monkeypatch: pytest.MonkeyPatch) -> None:
    stack = _stack(30, 44)
    passes = 2 * (FRAMES - 1)  # neighbour pairs, both orders
    uncached = _fuse(stack, False, monkeypatch)
    assert (counts.features, counts.decisions) == (2 * passes, passes)
    counts.reset()
    cached = _fuse(stack, True, monkeypatch)
    assert (counts.features, counts.stored, counts.decisions) == (FRAMES, 0, passes)
    _assert_same_maps(cached, uncached)


def test_tiled_frames_encoded_once(counts: _Counts, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiled: each frame's global cSE scales and tile features once; the decision path per tile
    and pass, from the kept features."""
    stack = _stack(40, 56)
    uncached = _fuse(stack, False, monkeypatch, tile_size=24)
    passes = 2 * (FRAMES - 1)
    assert counts.stored == 2 * passes
    tiles = counts.decisions // passes
    assert tiles > 1  # the plan did tile
    counts.reset()
    cached = _fuse(stack, True, monkeypatch, tile_size=24)
    assert (counts.stored, counts.decisions) == (FRAMES, passes * tiles)
    _assert_same_maps(cached, uncached)


def test_analysis_scale_encodes_the_shrunk_frames(counts: _Counts, monkeypatch: pytest.MonkeyPatch) -> None:
    stack = _stack(48, 64)
    uncached = _fuse(stack, False, monkeypatch, analysis_scale=0.5)
    counts.reset()
    cached = _fuse(stack, True, monkeypatch, analysis_scale=0.5)
    assert counts.features == FRAMES
    _assert_same_maps(cached, uncached)
