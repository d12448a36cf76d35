"""Two-stream's per-frame cache in the ``neighbours`` strategy (issue 20): each frame's two streams
run once, only the joint part per pass, and the maps equal those of the module's pair passes."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from focusstudio.core.methods.archs.twostream_arch import Stream, TwoStreamNet
from focusstudio.core.methods.backends.twostream_fast import TwoStreamInference
from focusstudio.core.methods.base import RunContext
from focusstudio.core.methods.tensors import to_numpy, to_tensor
from focusstudio.core.methods.twostream import TwoStreamFusion, alpha_from_features, frame_features
from focusstudio.core.pipeline import fuse
from focusstudio.core.types import FusionResult, Stack
from tests.core.focus_sweep import assert_same_neighbour_maps, focus_sweep_stack

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FRAMES = 5
#: The split runs the module's operations on the same values in another order: conv_g's sum over
#: its 5·width input channels is split into three (the frames' shares and F's), and oneDNN's
#: channels-last kernels sum in their own order. Each of the ten convolutions adds ~√K·2⁻²⁴
#: relative rounding to O(1) activations (K ≤ 9·5·32 = 1440 terms: ≈ 2.3e-6), ≈ 2e-5 compounded
#: over the path, then the sigmoid (slope ≤ ¼) and the symmetrised mean of two maps. Measured:
#: ≤ 6e-8 on a 1024×683 pair against a float64 forward.
MAP_TOLERANCE = 2e-5


def _stack(colour: bool, height: int = 26, width: int = 35) -> Stack:
    return focus_sweep_stack(FRAMES, height, width, colour=colour)


class _Counts:
    def __init__(self) -> None:
        self.stream_calls = 0  # the module's streams (pair passes)
        self.encodes = 0  # the split's per-frame part
        self.joints = 0  # the split's per-pass part
        self.features: list[weakref.ref[torch.Tensor]] = []  # a tensor of every encode result
        self.most_alive = 0  # most encode results alive at a joint call


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Counts]:
    counted = _Counts()
    stream_forward = Stream.forward
    encode = TwoStreamInference.encode
    joint = TwoStreamInference.joint

    def counting_stream(self: Stream, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        counted.stream_calls += 1
        return stream_forward(self, image)

    def counting_encode(self: TwoStreamInference, image: torch.Tensor) -> Any:
        counted.encodes += 1
        features = encode(self, image)
        counted.features.append(weakref.ref(features.d[0]))
        return features

    def counting_joint(self: TwoStreamInference, first: Any, second: Any) -> torch.Tensor:
        counted.joints += 1
        counted.most_alive = max(counted.most_alive, sum(ref() is not None for ref in counted.features))
        return joint(self, first, second)

    monkeypatch.setattr(Stream, "forward", counting_stream)
    monkeypatch.setattr(TwoStreamInference, "encode", counting_encode)
    monkeypatch.setattr(TwoStreamInference, "joint", counting_joint)
    yield counted


def _fuse(stack: Stack, cached: bool, monkeypatch: pytest.MonkeyPatch, **params: Any) -> FusionResult:
    with monkeypatch.context() as patch:
        patch.setattr(TwoStreamFusion, "caches_frame_features", cached)
        return fuse(stack, "twostream", {"strategy": "neighbours", **params}, device="cpu")


def _assert_same_maps(cached: FusionResult, uncached: FusionResult) -> None:
    assert_same_neighbour_maps(cached, uncached, "alpha_", FRAMES, MAP_TOLERANCE)


@pytest.mark.parametrize("colour", [True, False])
def test_cached_streams_equal_uncached_passes(colour: bool, counts: _Counts, monkeypatch: pytest.MonkeyPatch) -> None:
    stack = _stack(colour)
    passes = 2 * (FRAMES - 1)  # neighbour pairs, both orders
    uncached = _fuse(stack, False, monkeypatch)
    assert (counts.stream_calls, counts.encodes, counts.joints) == (2 * passes, 0, 0)
    counts.stream_calls = 0
    cached = _fuse(stack, True, monkeypatch)
    # each frame's streams once; the joint part once per pass; the module's streams never
    assert (counts.stream_calls, counts.encodes, counts.joints) == (0, FRAMES, passes)
    # memory flat in N: the two frames of the current pair hold features, no earlier frame does
    assert counts.most_alive == 2
    _assert_same_maps(cached, uncached)


def test_cached_streams_at_an_analysis_scale(counts: _Counts, monkeypatch: pytest.MonkeyPatch) -> None:
    """At an analysis scale the features are of the shrunk frame and each map is lifted along the
    full-resolution greys, as in the uncached passes."""
    stack = _stack(True, 52, 70)
    uncached = _fuse(stack, False, monkeypatch, analysis_scale=0.5)
    cached = _fuse(stack, True, monkeypatch, analysis_scale=0.5)
    assert counts.encodes == FRAMES
    _assert_same_maps(cached, uncached)


def _network() -> TwoStreamNet:
    return TwoStreamFusion().load(None).network  # type: ignore[return-value]


def test_tiled_split_equals_the_module(counts: _Counts) -> None:
    """Tiles with the network's halo (it is local) give the whole image's α; both equal the
    module's forward within rounding, in both orders of a pair."""
    network = _network()
    rng = np.random.default_rng(3)
    first = rng.random((45, 61)).astype(np.float32)
    second = np.clip(first * 0.5 + 0.25 * rng.random((45, 61)).astype(np.float32), 0, 1)
    whole, tiled = RunContext(device="cpu"), RunContext(device="cpu", tile_size=16)
    a, b = frame_features(network, first, whole), frame_features(network, second, whole)
    a_tiled, b_tiled = frame_features(network, first, tiled), frame_features(network, second, tiled)
    assert a is not None and b is not None and a_tiled is not None and b_tiled is not None
    assert counts.encodes == 2 + 2 * 4 * 3  # whole, then 4 × 3 tiles of 16 px
    for (x, y), (x_img, y_img) in (((a, b), (first, second)), ((b, a), (second, first))):
        with torch.inference_mode():
            module = to_numpy(network(to_tensor(x_img, "cpu"), to_tensor(y_img, "cpu")))
        split = alpha_from_features(network, x, y, first.shape, whole)
        np.testing.assert_allclose(split, module, rtol=0, atol=MAP_TOLERANCE)
    split_tiled = alpha_from_features(network, a_tiled, b_tiled, first.shape, tiled)
    np.testing.assert_allclose(split_tiled, alpha_from_features(network, a, b, first.shape, whole),
                               rtol=0, atol=MAP_TOLERANCE)


def test_features_beyond_the_map_budget_run_the_pair_path() -> None:
    """Two frames' features that do not fit the map budget are not made (None: the pair network
    runs per pass instead)."""
    image = np.zeros((64, 64), dtype=np.float32)
    assert frame_features(_network(), image, RunContext(device="cpu", memory_limit=1 << 20)) is None
    assert frame_features(_network(), image, RunContext(device="cpu")) is not None
