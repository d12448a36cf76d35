"""Exact tiled channel-SE statistics with kept block outputs (backends.tile_features): one
block evaluation per block and tile, the same scales and features as the recomputing path and
the untiled forward, in memory, spilled to a file, or recomputed when neither fits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from focusstudio.core.methods.archs import GACNNet, SESFNet
from focusstudio.core.methods.backends import tile_features
from focusstudio.core.methods.backends.fast_cpu import FastEncoder, encoder_channel_scales
from focusstudio.core.methods.backends.tile_features import (
    TileFeatureStore,
    plan_stored_tiles,
    staged_channel_scales,
    stored_bytes,
)
from focusstudio.core.methods.base import RunContext
from focusstudio.core.methods.sesf import SESFActivity
from focusstudio.core.pipeline import fuse
from focusstudio.core.tiling import MAP_BUDGET_SHARE, plan_tiles
from focusstudio.core.types import Stack


def _randomised(network: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random BatchNorm statistics: the SE scales then differ clearly from channel to channel."""
    generator = torch.Generator().manual_seed(seed)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.2)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    return network.eval()


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture()
def spill_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(tile_features.SPILL_DIR_ENV, str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("mode", ["memory", "spill"])
def test_kept_outputs_give_the_global_scales_and_the_tiled_forward(
    channels_last: bool, mode: str, spill_here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    network = _randomised(SESFNet(), 3)
    encoder = FastEncoder(network.encoder, channels_last=channels_last)
    image = torch.randn(1, 1, 70, 90)
    tiles = plan_tiles(70, 90, 32, 6)
    evaluations: list[int] = []
    block_output = encoder.block_output
    monkeypatch.setattr(encoder, "block_output", lambda inputs, i: evaluations.append(i) or block_output(inputs, i))
    monkeypatch.setattr(encoder, "pre_se_channel_sums", lambda *args: pytest.fail("recomputed earlier blocks"))
    with torch.inference_mode(), TileFeatureStore(encoder, mode, torch.device("cpu")) as store:  # type: ignore[arg-type]
        scales = staged_channel_scales(encoder, image, tiles, store)
        # each block once per tile: K·tiles evaluations, not K(K+1)/2·tiles
        assert sorted(evaluations) == sorted(list(range(4)) * len(tiles))
        assert store.spilled == (mode == "spill")
        if mode == "spill":
            assert len(list(spill_here.iterdir())) == 0  # unnamed: nothing left behind even on a crash
        recomputed = encoder_channel_scales(FastEncoder(network.encoder, channels_last=channels_last), image, tiles)
        current, outputs = image, []
        for i, (block, se) in enumerate(zip(network.encoder.blocks, network.encoder.se)):
            normalised = block(current)
            assert torch.allclose(scales[i], se.scales(normalised), atol=1e-6)
            assert torch.allclose(scales[i], recomputed[i], atol=1e-6)
            outputs.append(normalised * scales[i])
            current = torch.cat(outputs, dim=1)
        whole = encoder(image)
        for number, tile in enumerate(tiles):
            window = image[:, :, tile.read[0], tile.read[1]]
            kept = store.features(number)
            kept = torch.cat(kept, dim=1) if isinstance(kept, list) else kept.clone()  # spilled: a reused buffer
            forward = encoder(window, scales)
            assert kept.shape == forward.shape
            # the same operations on the same window with the same scales
            assert torch.allclose(kept, forward, atol=1e-6)
            assert torch.allclose(kept[(..., *tile.inner)], whole[(..., *tile.write)], atol=1e-5)
            again = store.features(number)  # loads are repeatable: scaled once (memory) or alike on every read (spill)
            assert torch.equal(torch.cat(again, dim=1) if isinstance(again, list) else again, kept)


@pytest.mark.parametrize("channels_last", [False, True])
def test_statistics_alone_need_only_the_encoder_s_radius_as_halo(channels_last: bool) -> None:
    network = _randomised(SESFNet(), 5)
    encoder = FastEncoder(network.encoder, channels_last=channels_last)
    image = torch.randn(1, 1, 70, 90)
    tiles = plan_tiles(70, 90, 24, 12)
    with torch.inference_mode():
        with TileFeatureStore(encoder, "memory", torch.device("cpu")) as store:  # type: ignore[arg-type]
            narrow = staged_channel_scales(encoder, image, tiles, store, halo=encoder.radius)
            window = store.load(0, 0)
            assert window.shape[-2:] == (24 + encoder.radius, 24 + encoder.radius)  # a corner tile
        recomputed = encoder_channel_scales(encoder, image, tiles)
    for ours, theirs in zip(narrow, recomputed, strict=True):
        assert torch.allclose(ours, theirs, atol=1e-6)


def test_the_store_mode_follows_the_budget_and_the_disk(spill_here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    height, width, halo, per_pixel = 600, 800, 10, 1024
    big = RunContext(memory_limit=2 * 1024**3)
    assert plan_stored_tiles(height, width, big, per_pixel, halo, 64)[1] == "recompute"  # one tile: nothing kept
    budget = 300 * 1024**2
    tiles, mode = plan_stored_tiles(height, width, RunContext(memory_limit=budget), per_pixel, halo, 64)
    assert mode == "memory" and len(tiles) > 1
    kept = stored_bytes(tiles, 64)
    assert kept <= budget * MAP_BUDGET_SHARE
    edge = tiles[0].read[0].stop - tiles[0].read[0].start
    assert kept + edge * edge * per_pixel <= budget * 1.05  # kept outputs and a tile's working set
    small = RunContext(memory_limit=96 * 1024**2)
    tiles, mode = plan_stored_tiles(height, width, small, per_pixel, halo, 64)
    assert mode == "spill"
    assert stored_bytes(tiles, 64) > small.resolved_memory_limit() * MAP_BUDGET_SHARE

    class Full:
        free = 1024**2

    monkeypatch.setattr(tile_features.shutil, "disk_usage", lambda path: Full())
    assert plan_stored_tiles(height, width, small, per_pixel, halo, 64)[1] == "recompute"


def _sesf_network() -> SESFNet:
    torch.manual_seed(0)
    network = _randomised(SESFNet(), 1)
    assert isinstance(network, SESFNet)
    return network


@pytest.mark.parametrize("mode", ["memory", "spill", "recompute"])
def test_sesf_tiled_equals_untiled_wherever_outputs_are_kept(
    mode: str, spill_here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    network = _sesf_network()
    grey = np.random.default_rng(0).random((75, 98)).astype(np.float32)
    whole = SESFActivity(network, RunContext(), 5)(grey)
    chosen: list[str] = []
    plan = tile_features.plan_stored_tiles

    def forced(*args: Any, **kwargs: Any) -> tuple[Any, str]:
        tiles, _ = plan(*args, **kwargs)
        chosen.append(mode)
        return tiles, mode

    monkeypatch.setattr("focusstudio.core.methods.sesf.plan_stored_tiles", forced)
    tiled = SESFActivity(network, RunContext(tile_size=32), 5)(grey)
    assert chosen == [mode]
    np.testing.assert_allclose(tiled, whole, rtol=1e-4, atol=1e-4 * float(whole.max()))


@pytest.mark.parametrize("memory_limit", [None, 256 * 1024])
def test_gacn_tiled_pair_with_kept_or_recomputed_features_equals_untiled(
    memory_limit: int | None, tmp_path: Path, spill_here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    network = _randomised(GACNNet(), 2)
    weights = tmp_path / "gacn_random.pt"
    torch.save({"state_dict": network.state_dict(), "arch": network.arch_config()}, weights)
    rng = np.random.default_rng(1)
    stack = Stack.from_arrays([rng.random((90, 84)).astype(np.float32) for _ in range(2)])
    whole = fuse(stack, "gacn", weights=weights)
    modes: list[str] = []
    init = TileFeatureStore.__init__

    def spy(self: TileFeatureStore, encoder: Any, mode: str, device: Any) -> None:
        modes.append(mode)
        init(self, encoder, mode, device)  # type: ignore[arg-type]

    monkeypatch.setattr(TileFeatureStore, "__init__", spy)
    tiled = fuse(stack, "gacn", weights=weights, tile_size=32, memory_limit=memory_limit)
    # both frames' features kept in memory; beyond the budget GACN recomputes (it never spills:
    # its channels-last blocks recompute about as fast as they would read back)
    assert modes == (["memory"] * 2 if memory_limit is None else [])
    for name in ("decision_initial", "decision"):
        difference = np.abs(whole.maps[name].data - tiled.maps[name].data)
        assert float(difference.mean()) < 1e-4 and float((difference > 1e-2).mean()) < 1e-3
    np.testing.assert_allclose(tiled.image, whole.image, atol=2e-2)
