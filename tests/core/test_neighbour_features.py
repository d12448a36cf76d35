"""The ``neighbours`` strategy's per-frame feature cache (MFIF-GAN): each frame's encoder runs once,
only the decoder runs per pass, and the maps equal those of the uncached pair passes."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from focusstudio.core.methods.archs.mfifgan_arch import MFIFGANGenerator, PlaneEncoder
from focusstudio.core.methods.mfifgan import MFIFGANFusion
from focusstudio.core.pipeline import fuse
from focusstudio.core.types import FusionResult, Stack
from tests.core.focus_sweep import assert_same_neighbour_maps, focus_sweep_stack

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FRAMES = 5
#: The cached and uncached maps come from the same operations on the same values; the encoder's
#: batch differs (one frame's planes against both frames') and the cached path runs channels-last
#: (oneDNN's NHWC kernels), both of which sum in another order (measured: ≤ 7.3e-6 on a 1024×684
#: pair; before channels-last, colour bit-identical, grey ≤ 3.8e-6). Bound: the
#: logits pass ~12 convolutions of ≤ 576-term sums, each adding ~√576·2⁻²⁴ ≈ 1.4e-6 relative
#: rounding to O(1) values (≈ 2e-5 compounded), then a sigmoid of slope ≤ ¼ and the symmetrised
#: mean of two maps.
MAP_TOLERANCE = 2e-5


@pytest.fixture(scope="module")
def weights() -> Path | None:
    """The shipped MFIF-GAN weights (None: the method's default file): a random network's maps
    are all near ½, where a comparison tells little."""
    return None


def _stack(colour: bool, height: int = 26, width: int = 35) -> Stack:
    return focus_sweep_stack(FRAMES, height, width, colour=colour)


class _Counts:
    def __init__(self) -> None:
        self.encoder_calls = 0
        self.planes = 0
        self.decoder_calls = 0
        self.features: list[weakref.ref[torch.Tensor]] = []  # every encode_image result
        self.most_alive = 0  # most encode_image results alive at a decoder call


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Counts]:
    """Counts the shared plane encoder's calls (and planes) and the decoder's calls."""
    counted = _Counts()
    encoder_forward = PlaneEncoder.forward
    decode = MFIFGANGenerator.decode
    encode_image = MFIFGANGenerator.encode_image

    def counting_encoder(self: PlaneEncoder, plane: torch.Tensor) -> torch.Tensor:
        counted.encoder_calls += 1
        counted.planes += int(plane.shape[0])
        return encoder_forward(self, plane)

    def counting_decode(self: MFIFGANGenerator, *features: Any) -> torch.Tensor:
        counted.decoder_calls += 1
        alive = sum(ref() is not None for ref in counted.features)
        counted.most_alive = max(counted.most_alive, alive)
        return decode(self, *features)

    def keeping_encode_image(self: MFIFGANGenerator, image: torch.Tensor) -> torch.Tensor:
        features = encode_image(self, image)
        counted.features.append(weakref.ref(features))
        return features

    monkeypatch.setattr(PlaneEncoder, "forward", counting_encoder)
    monkeypatch.setattr(MFIFGANGenerator, "decode", counting_decode)
    monkeypatch.setattr(MFIFGANGenerator, "encode_image", keeping_encode_image)
    yield counted


def _fuse(
    stack: Stack, weights: Path | None, cached: bool, monkeypatch: pytest.MonkeyPatch,
    tile_size: int | None = None, **params: Any,
) -> FusionResult:
    with monkeypatch.context() as patch:
        patch.setattr(MFIFGANFusion, "caches_frame_features", cached)
        return fuse(stack, "mfifgan", {"strategy": "neighbours", **params}, weights=weights, device="cpu",
                    tile_size=tile_size)


def _assert_same_maps(cached: FusionResult, uncached: FusionResult) -> None:
    assert_same_neighbour_maps(cached, uncached, "focus_map_", FRAMES, MAP_TOLERANCE)


@pytest.mark.parametrize("colour", [True, False])
def test_cached_features_equal_uncached_passes(
    colour: bool, weights: Path | None, counts: _Counts, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = _stack(colour)
    planes = 3 if colour else 1
    uncached = _fuse(stack, weights, False, monkeypatch)
    passes = 2 * (FRAMES - 1)  # neighbour pairs, both orders
    assert (counts.encoder_calls, counts.planes, counts.decoder_calls) == (passes, passes * 2 * planes, passes)
    counts.encoder_calls = counts.planes = counts.decoder_calls = 0
    cached = _fuse(stack, weights, True, monkeypatch)
    # every frame's features computed once; the decoder still runs once per pass
    assert (counts.encoder_calls, counts.planes, counts.decoder_calls) == (FRAMES, FRAMES * planes, passes)
    # memory flat in N: the two frames of the current pair hold features, no earlier frame does
    assert counts.most_alive == 2
    _assert_same_maps(cached, uncached)


def test_cached_features_at_an_analysis_scale(
    weights: Path | None, counts: _Counts, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At an analysis scale the features are of the shrunk frame and each map is lifted along the
    full-resolution greys, as in the uncached passes."""
    stack = _stack(True, 52, 70)
    uncached = _fuse(stack, weights, False, monkeypatch, analysis_scale=0.5)
    cached = _fuse(stack, weights, True, monkeypatch, analysis_scale=0.5)
    assert counts.encoder_calls == 2 * (FRAMES - 1) + FRAMES  # one batched call per uncached pass
    _assert_same_maps(cached, uncached)


def test_tiled_frames_run_the_pair_path(weights: Path | None, counts: _Counts, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a pair runs in tiles (its SE gates from a downscaled copy of the pair), each pass
    runs the pair network as before: the same maps exactly."""
    stack = _stack(True, 40, 48)
    cached = _fuse(stack, weights, True, monkeypatch, tile_size=16)
    calls = counts.encoder_calls
    uncached = _fuse(stack, weights, False, monkeypatch, tile_size=16)
    assert counts.encoder_calls == 2 * calls > 2 * 2 * (FRAMES - 1)  # gate pass + tiles per pass
    for k in range(1, FRAMES):
        np.testing.assert_array_equal(cached.maps[f"focus_map_{k}"].data, uncached.maps[f"focus_map_{k}"].data)
