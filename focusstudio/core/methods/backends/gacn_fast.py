"""GACN's fast inference backend: the network's function with less work (channels-last/oneDNN on
the CPU, window sums on energy differences, fused activations), for whole images or tiles.

The reference forward is ``GACNNet.forward`` beside the architecture
(:mod:`focusstudio.core.methods.archs.gacn_arch`); ``tests/core/test_sesf_gacn.py`` and
``tests/core/test_official_equivalence.py`` check this backend against it and against the
authors' outputs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from focusstudio.core.lazy import lazy_import
from focusstudio.core.methods.backends.fast_cpu import (
    FastEncoder,
    Features,
    bn_scale_shift,
    conv2d_activation,
    encoder_channel_scales,
    gradient_energy_difference,
    single_output_conv,
    window_sum_sigmoid,
)
from focusstudio.core.methods.backends.tile_features import (
    StoreMode,
    TileFeatureStore,
    plan_stored_tiles,
    staged_channel_scales,
    transient_store_mode,
)
from focusstudio.core.methods.base import RunContext
from focusstudio.core.methods.deep_common import squared_gradient_energy, torch_device
from focusstudio.core.methods.engine import is_whole, run_tiles
from focusstudio.core.methods.tensors import to_numpy, to_tensor
from focusstudio.core.progress import ProgressEvent, ProgressGen
from focusstudio.core.tiling import Tile

# torch and the architecture load on first use (see focusstudio.core.lazy).
torch = lazy_import("torch")
gacn_arch = lazy_import("focusstudio.core.methods.archs.gacn_arch")


class EncodedGrey:
    """A frame as GACN's ``neighbours`` passes hold it: its full-resolution grey (the lift's guide),
    its grey at the analysis resolution, and the feature path's output on it, computed at the
    first pass that needs it (:meth:`GACNInference.encode`) and reused by the frame's other passes
    (up to four: both neighbours, both orders). The strategy holds two frames at a time."""

    __slots__ = ("encoded", "features", "grey", "scales", "small", "store", "tensor", "tiles")

    def __init__(self, grey: np.ndarray, small: np.ndarray) -> None:
        self.grey = grey
        self.small = small
        self.encoded = False
        self.tensor: torch.Tensor | None = None
        self.features: Any = None  # whole image: the feature path's output
        self.tiles: list[Tile] | None = None  # tiled: the plan, the global cSE scales and kept tile features
        self.scales: list[torch.Tensor] | None = None
        self.store: TileFeatureStore | None = None


class GACNInference:
    """Inference-only forward of a ``GACNNet``, the module's function with less work:
    the feature path is :class:`FastEncoder` (channels-last on the CPU, its blocks' outputs kept
    as separate parts); the window sum runs once per pair, on the energy *difference* (it is
    linear: SF_a − SF_b = box(E_a − E_b)), with sigmoid(1000·x) fused into its last pass
    (:func:`window_sum_sigmoid`); decision calibration keeps the reference frame's squared
    gradients; ReLU rides in the convolutions (:func:`conv2d_activation`), BN runs in place, and
    the 7×7 spatial SE convolutions use :func:`single_output_conv`. Agreement with the module is
    at float-rounding level (M may move at near-ties of sigmoid(1000·x): ≤ 1 pixel per pair on
    the authors' ten test pairs).

    Cost of a 520×520 pair: ~22 G multiply-adds of convolutions (feature path 3.8 per frame,
    decision path 12.5, spatial SE 2.1), i.e. 0.3 s at the 2-core CPU's measured 146 GFLOP/s
    matrix-product peak before any element-wise pass; this path runs within ~1.6× of that floor.
    """

    def __init__(self, network: gacn_arch.GACNNet, context: RunContext, sf_radius: int) -> None:
        self.device = torch_device(context)
        if self.device.type != "cpu":
            network = copy.deepcopy(network).to(self.device)
        self.network = network
        # Channels-last convolutions on the CPU: 2–3× faster, and M tolerates the different
        # rounding (see FastEncoder); GPUs keep their own layout choice.
        self.channels_last = self.device.type == "cpu"
        self.encoder = FastEncoder(network.feature_path, channels_last=self.channels_last)
        self.sf_radius = sf_radius
        self.context = context
        self.se = [se.conv.weight.detach() for se in network.decision_se]
        # decision blocks as (conv weight, bias, BN scale, BN shift): BN applied in place
        self.blocks = []
        for block in network.decision_blocks:
            scale, shift = bn_scale_shift(block)
            bias = None if block.conv.bias is None else block.conv.bias.detach()
            weight = block.conv.weight.detach()
            if self.channels_last:
                weight = weight.contiguous(memory_format=torch.channels_last)
            self.blocks.append((weight, bias, scale.view(1, -1, 1, 1), shift.view(1, -1, 1, 1)))

    @property
    def halo(self) -> int:
        """Receptive radius of M (features, gradient, SF window, decision path)."""
        return self.encoder.radius + 1 + self.sf_radius + self.network.decision_radius

    def features(self, grey: torch.Tensor, scales: list[torch.Tensor] | None, reuse: bool = False) -> Features:
        """Features of a 1×1×h×w grey window ([0, 1], no normalisation in GACN): channels-last,
        the encoder blocks' parts (never joined: the energy reads them as they are); else one
        tensor, ``reuse``: in the buffer of the previous ``reuse`` call (see :class:`FastEncoder`)."""
        if self.channels_last:
            return self.encoder.parts(grey, scales)
        return self.encoder(grey, scales, reuse)

    def _spatial_se(self, x: torch.Tensor, i: int) -> torch.Tensor:
        return x.mul_(torch.sigmoid_(single_output_conv(x, self.se[i])))

    def energy(self, features: Features) -> torch.Tensor:
        """Per-channel squared gradients, N×64×h×w: the spatial frequency before its window sum
        (kept for the reference frame by decision calibration)."""
        if self.channels_last:
            return gradient_energy_difference(features)
        assert isinstance(features, torch.Tensor)
        return squared_gradient_energy(features, sum_channels=False)

    def decision(
        self, features_a: Features | None, features_b: Features,
        reference_energy: torch.Tensor | None = None, want_scales: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(M, per-scale SF difference N×4×h×w) from the features of two frames (same window).

        With ``reference_energy`` (frame a's :meth:`energy`, kept by decision calibration)
        ``features_a`` is not needed. The window sum runs once, on the energy *difference* (it is
        linear: SF_a − SF_b = box(E_a − E_b)), fused with sigmoid(1000·x). The per-scale map is
        None unless ``want_scales``."""
        if reference_energy is not None:
            energy = self.energy(features_b)
            torch.sub(reference_energy, energy, out=energy)
        else:
            assert features_a is not None
            if self.channels_last:
                energy = gradient_energy_difference(features_a, features_b)
            else:
                assert isinstance(features_a, torch.Tensor) and isinstance(features_b, torch.Tensor)
                energy = squared_gradient_energy(features_a, sum_channels=False, minus=features_b)
        x, per_scale = window_sum_sigmoid(energy, self.sf_radius, gacn_arch.SIGMOID_GAIN,
                                          gacn_arch.ENCODER_WIDTH if want_scales else None)
        x = self._spatial_se(x, 0)
        for i, (weight, bias, scale, shift) in enumerate(self.blocks):
            x = conv2d_activation(x, weight, bias, (1, 1), "relu")
            x = torch.addcmul(shift, x, scale, out=x)  # BN in one pass
            x = self._spatial_se(x, i + 1)
        return torch.sigmoid_(x.mul_(gacn_arch.SIGMOID_GAIN)), per_scale

    def channel_scales(self, image: torch.Tensor, tiles: list[Tile]) -> list[torch.Tensor] | None:
        """The encoder's global cSE scales of a tiled ``image`` (None for one tile): one block
        pass each with the block outputs kept meanwhile (memory or spill, dropped afterwards;
        the statistics' working set is a fraction of the tiles' planned one), else recomputing."""
        if len(tiles) == 1:
            return None
        mode = transient_store_mode(tiles, self.encoder.out_channels, self.context, spill=False)
        if mode == "recompute":
            return encoder_channel_scales(self.encoder, image, tiles, self.context.cancel)
        with TileFeatureStore(self.encoder, mode, self.device) as store:
            # statistics alone: the encoder's own receptive radius as halo, not the tiles' read windows
            return staged_channel_scales(self.encoder, image, tiles, store, self.context.cancel,
                                         halo=self.encoder.radius)

    def plan_tiles(self, height: int, width: int, bytes_per_pixel: float, frames: int) -> tuple[list[Tile], StoreMode]:
        """Tiles of the network stage and where ``frames`` frames' encoder outputs are kept
        (:func:`plan_stored_tiles`)."""
        # no spill: the channels-last blocks recompute about as fast as they read back (plan_stored_tiles)
        return plan_stored_tiles(height, width, self.context, bytes_per_pixel, self.halo, self.encoder.out_channels,
                                 frames, spill=False)

    def stored_features(
        self, image: torch.Tensor, tiles: list[Tile], mode: StoreMode
    ) -> tuple[list[torch.Tensor], TileFeatureStore | None]:
        """(global cSE scales, every tile's kept features or None) of a tiled ``image``:
        ``store.features(n)`` is tile n's :meth:`features` without running the encoder again.
        The caller closes the store."""
        if mode == "recompute":
            return encoder_channel_scales(self.encoder, image, tiles, self.context.cancel), None
        store = TileFeatureStore(self.encoder, mode, self.device)
        try:
            return staged_channel_scales(self.encoder, image, tiles, store, self.context.cancel), store
        except BaseException:
            store.close()
            raise

    # ------------------------------------------------------------------ neighbours: frames encoded once
    def encode(self, frame: EncodedGrey, bytes_per_pixel: float) -> None:
        """The frame's feature path as a pair's decision runs it (``GACNFuse._pair_decision``: the
        same tile plan for ``bytes_per_pixel``): the whole image's features, or, in tiles, its
        global cSE scales and every tile's features (kept in memory where the plan allows, else
        recomputed per pass from the scales)."""
        if frame.encoded:
            return
        height, width = frame.small.shape
        tiles, store_mode = self.plan_tiles(height, width, bytes_per_pixel, 2)
        frame.tensor = to_tensor(frame.small, self.device)
        with torch.inference_mode():
            if len(tiles) == 1:
                frame.features = self.features(frame.tensor, None)  # a buffer of its own (no reuse)
            else:
                frame.tiles = tiles
                frame.scales, frame.store = self.stored_features(frame.tensor, tiles, store_mode)
        frame.encoded = True

    def encoded_decision(
        self, first: EncodedGrey, second: EncodedGrey, bytes_per_pixel: float,
        report: Callable[[float], ProgressEvent],
    ) -> ProgressGen[np.ndarray | None]:
        """M of (``first``, ``second``) at the analysis resolution, as a pair's decision computes it,
        from the frames' features computed once (:meth:`encode`); None where the two frames' tile
        plans differ (made under different budgets: the caller runs the pair)."""
        for frame in (first, second):
            if not frame.encoded:
                yield report(0.0)
                self.encode(frame, bytes_per_pixel)
        if first.tiles != second.tiles:
            return None
        if first.tiles is None or is_whole(first.tiles):
            with torch.inference_mode():
                decision, _ = self.decision(first.features, second.features, want_scales=False)
            return to_numpy(decision)
        tiles = first.tiles
        numbers = {id(tile): n for n, tile in enumerate(tiles)}

        def tile_features(frame: EncodedGrey, tile: Tile, n: int) -> Features:
            if frame.store is not None:
                return frame.store.features(n)
            assert frame.tensor is not None
            return self.features(frame.tensor[(slice(None), slice(None), *tile.read)], frame.scales)

        def predict(tile: Tile) -> np.ndarray:
            n = numbers[id(tile)]
            with torch.inference_mode():
                decision, _ = self.decision(tile_features(first, tile, n), tile_features(second, tile, n),
                                            want_scales=False)
            return to_numpy(decision)

        (out,) = yield from run_tiles(tiles, first.small.shape, predict, self.context.cancel, report)
        assert out is not None
        return out
