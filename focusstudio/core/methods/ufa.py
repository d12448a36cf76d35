"""UFA-Fuse (Zang et al. 2021): end-to-end fusion with unity fusion attention.

The network decodes the fused image itself (REFERENCE-NOTES §4): **the result is not built from
source pixels**. Consequences the user should know:

* Precision: the network computes in float32 and ends in a sigmoid, so its output is continuous.
  16-bit sources go in as float [0, 1] and the result is written in 16 bits, but those bits carry
  the network's accuracy (about 1/255 for a model trained on 8-bit images), not the sources' exact
  values. Decision-map methods keep source pixel values exactly; UFA-Fuse does not.
* Grey stacks: the released model is RGB-only; grey frames are replicated to three channels and
  the mean of the three output channels is the grey result (our adaptation).
* Output rounding is truncation (the authors' ``ToPILImage``), used when writing integers.

Explanation maps, per frame ``k`` (the frame's role in the pair it took part in):

* ``spatial_attention_{k}`` — the spatial attention weight M^s of that input (H×W). With our own
  weights the two inputs' weights sum to 1 at every pixel; with the authors' weights (loaded with
  their denominator typo) they do not, and the first input's weight is what their network used.
* ``channel_attention_{k}`` — the channel attention M^c is one weight per channel (C×1×1, global).
  Shown as an image: the share of input k in the channel-attended features at each pixel,
  mean_c(M^c_k·F_k) / Σ_i mean_c(M^c_i·F_i). The weight vectors themselves are kept in the
  analysis (``analysis.data["channel_weights"]``: per step, a 2×C array).
* ``derived_decision`` (2 frames) / ``derived_index`` (N frames) — labelled *derived*: which source
  the decoded pixel is closest to (sum of absolute channel differences); not used for fusion.

N frames: serial — the running result is fused with the next frame by the network.

Large images: everything is local except the channel attention's global average. Tiled inference
is exact: a first pass sums the pre-attention features tile by tile (halo ≥ their receptive
field), and the second pass runs every tile with the whole image's channel means.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from focusstudio.core.errors import WeightsError
from focusstudio.core.methods._classical import load_checked
from focusstudio.core.methods.base import Analysis, DeepFusionMethod, RunContext
from focusstudio.core.methods.engine import is_whole, plan_network_tiles, reporter, run_tiles, sum_over_tiles
from focusstudio.core.methods.registry import NetworkSpec, register
from focusstudio.core.methods.strategies import serial_pairs
from focusstudio.core.methods.tensors import to_tensor
from focusstudio.core.params import ParamSet
from focusstudio.core.progress import ProgressGen, ProgressRange
from focusstudio.core.tiling import Tile
from focusstudio.core.types import FusionMap, FusionResult, Stack

if TYPE_CHECKING:
    from focusstudio.core.methods.archs.ufa_arch import UFAFuseNet

#: Per-frame attention maps are exposed up to this many frames.
MAX_FRAME_MAPS = 16

#: Receptive field of the features entering the channel attention (nine 3×3 convs).
PRE_ATTENTION_HALO = 9
#: Receptive field of the whole network: 9 + spatial 7×7 (3) + attention_out (1) + 5 convs (5).
NETWORK_HALO = 18


def build_network(arch: Mapping[str, Any]) -> UFAFuseNet:
    from focusstudio.core.methods.archs.ufa_arch import UFAFuseNet

    return UFAFuseNet(width=int(arch.get("width", 64)), official_quirks=bool(arch.get("official_quirks", False)))


def convert_official(state: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The authors' v1 release → our names, with their quirks switched on."""
    from focusstudio.core.methods.archs.ufa_arch import looks_official, official_state_dict

    if not looks_official(state):
        return None
    try:
        return official_state_dict(state), {"width": 64, "official_quirks": True}
    except KeyError as error:
        raise WeightsError(f"not the UFA-Fuse v1 release ({error.args[0]})") from None


def infer_arch(state: Mapping[str, Any]) -> dict[str, Any]:
    stem = state.get("stem.0.weight")
    return {"width": int(stem.shape[0])} if stem is not None else {}


NETWORK = NetworkSpec(build_network, infer_arch=infer_arch, convert_official=convert_official)


def bytes_per_pixel(width: int) -> float:
    """Working memory per pixel, a slight over-estimate of the measured peak (3.3 kB at width 64,
    1.5 kB at width 32): about thirteen live width-channel float32 maps."""
    return 4.0 * width * 13 + 128.0


@dataclass
class PairOutput:
    """UFA-Fuse on one pair, as numpy arrays."""

    fused: np.ndarray  # H×W×3 float32 in (0, 1)
    spatial: tuple[np.ndarray, np.ndarray]  # H×W each
    channel_share: tuple[np.ndarray, np.ndarray]  # H×W each, sums to 1
    channel_weights: np.ndarray  # 2×C


def _as_rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


def _shares(mean_1: np.ndarray, mean_2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # LeakyReLU features can be slightly negative: clamp so the share stays in [0, 1].
    positive_1, positive_2 = np.maximum(mean_1, 0.0), np.maximum(mean_2, 0.0)
    total = positive_1 + positive_2
    share_1 = np.where(total > 1e-12, positive_1 / np.maximum(total, 1e-12), 0.5).astype(np.float32)
    return share_1, (1.0 - share_1).astype(np.float32)


def fuse_pair(
    network: UFAFuseNet, image_1: np.ndarray, image_2: np.ndarray, context: RunContext, progress: ProgressRange
) -> ProgressGen[PairOutput]:
    """Run the network on two images (H×W or H×W×3), tiled when they do not fit in memory."""
    import torch

    device = context.device
    rgb_1, rgb_2 = _as_rgb(image_1), _as_rgb(image_2)
    height, width = rgb_1.shape[:2]
    tiles = plan_network_tiles(height, width, context, bytes_per_pixel(network.fusion.out_channels), NETWORK_HALO,
                               tile_size_forces_tiles=False)
    means: tuple[torch.Tensor, torch.Tensor] | None = None
    weights: list[torch.Tensor] = []

    def forward(tile: Tile) -> np.ndarray:
        out = network(to_tensor(rgb_1[tile.read], device), to_tensor(rgb_2[tile.read], device), means)
        if not weights:  # global: the same in every tile
            weights.append(torch.cat([out.channel_weights[0][0, :, 0, 0], out.channel_weights[1][0, :, 0, 0]]))
        stacked = torch.cat([out.fused, *out.spatial_weights, *out.channel_attended_mean], dim=1)
        return stacked[0].float().cpu().numpy()

    with torch.inference_mode():
        if is_whole(tiles):
            yield progress.event("network", 0.05, "UFA-Fuse forward pass")
            result = forward(tiles[0])
            yield progress.event("network", 1.0, "fused")
        else:
            # Pass 1: exact global channel means from tiles of the pre-attention features.
            yield progress.event("network", 0.0, "channel attention")
            sums = [
                sum_over_tiles(
                    tiles, (height, width), PRE_ATTENTION_HALO,
                    lambda window, core, rgb=rgb: network.pre_attention(to_tensor(rgb[window], device))[
                        (..., *core)].sum(dim=(2, 3)),
                    context.cancel,
                )
                for rgb in (rgb_1, rgb_2)
            ]
            yield progress.event("network", 0.4, "channel attention")
            means = (sums[0] / (height * width), sums[1] / (height * width))
            # Pass 2: every tile with the whole image's channel means.
            context.notes.append(f"UFA-Fuse: {width}×{height} image run in {len(tiles)} tiles (exact)")
            (result,) = yield from run_tiles(tiles, (height, width), forward, context.cancel,
                                             reporter(progress.sub(0.4, 1.0), "tiles"))
    assert result is not None and weights
    channel_weights = weights[0]
    fused = np.ascontiguousarray(result[:3].transpose(1, 2, 0))
    return PairOutput(
        fused=fused,
        spatial=(result[3], result[4]),
        channel_share=_shares(result[5], result[6]),
        channel_weights=channel_weights.float().cpu().numpy().reshape(2, -1),
    )


@register
class UFAFusion(DeepFusionMethod):
    name = "ufa"
    title = "UFA-Fuse"
    description = (
        "End-to-end network with unity fusion attention (Zang et al. 2021). The fused image is decoded "
        "by the network and not built from source pixels: 16-bit output carries the network's precision, "
        "not the sources' exact values. Attention maps are its explanation. N frames: serial."
    )
    decodes_directly = True
    rounding = "truncate"
    params = ParamSet(())
    map_names: ClassVar[tuple[str, ...]] = (
        "spatial_attention_{k}", "channel_attention_{k}", "derived_decision", "derived_index",
    )
    network_spec = NETWORK
    training_recipe = "focusstudio.core.training.recipes.ufa:UFARecipe"

    def analyze(self, stack: Stack, params: dict[str, Any], context: RunContext) -> ProgressGen[Analysis]:
        loaded = self.load(context.weights)
        network = loaded.network.to(context.device)
        grey = not stack.is_color
        count = len(stack)
        maps: dict[str, FusionMap] = {}
        channel_weights: list[np.ndarray] = []
        quirks = " (authors' weights: the spatial weights need not sum to 1)" if network.official_quirks else ""

        def step(running: np.ndarray, frame: np.ndarray, step: int, step_range: ProgressRange) -> ProgressGen[
            np.ndarray
        ]:
            out = yield from fuse_pair(network, running, frame, context, step_range)
            channel_weights.append(out.channel_weights)
            for role, k in ((0, 0 if step == 1 else None), (1, step)):
                if k is None or count > MAX_FRAME_MAPS:
                    continue
                other = "frame 2" if k == 0 else ("frame 1" if step == 1 else "the running result")
                maps[f"spatial_attention_{k}"] = FusionMap(
                    f"spatial_attention_{k}", "attention", out.spatial[role],
                    f"Spatial attention weight of frame {k + 1} against {other}{quirks}", frame=k,
                )
                maps[f"channel_attention_{k}"] = FusionMap(
                    f"channel_attention_{k}", "attention", out.channel_share[role],
                    f"Share of frame {k + 1} in the channel-attended features (the channel weights are global; "
                    "vectors in the analysis)", frame=k,
                )
            return out.fused.mean(axis=2, dtype=np.float32) if grey else out.fused

        running = yield from serial_pairs(stack, step, context.progress, context.cancel)
        return Analysis(
            self.name, self.analysis_params(params), maps=maps,
            data={"fused": np.clip(running, 0.0, 1.0).astype(np.float32), "channel_weights": channel_weights},
            weights=loaded.label, device=context.device,
        )

    def finish(
        self, analysis: Analysis, stack: Stack, params: dict[str, Any], context: RunContext
    ) -> ProgressGen[FusionResult]:
        fused: np.ndarray = analysis.data["fused"]
        maps = dict(analysis.maps)
        maps.update(derived_maps(fused, stack, context))
        yield context.progress.event("compose", 1.0, "done")
        notes = ["UFA-Fuse decodes the fused image with a network: pixel values are not copied from the sources"]
        return self.make_result(fused, stack, params, maps, analysis, notes=notes)


def derived_maps(fused: np.ndarray, stack: Stack, context: RunContext) -> dict[str, FusionMap]:
    """Which source each decoded pixel is closest to (a *derived* view, not used for fusion)."""
    best_distance: np.ndarray | None = None
    index = np.zeros(stack.shape, dtype=np.int32)
    distances: list[np.ndarray] = []
    for i in range(len(stack)):
        context.cancel.raise_if_cancelled()
        difference = np.abs(load_checked(stack, i) - fused)
        distance = difference.sum(axis=2) if difference.ndim == 3 else difference
        if len(stack) == 2:
            distances.append(distance)
        if best_distance is None:
            best_distance = distance
        else:
            closer = distance < best_distance
            index[closer] = i
            np.minimum(best_distance, distance, out=best_distance)
    if len(stack) == 2:
        first, second = distances
        decision = np.where(first < second, 1.0, np.where(first > second, 0.0, 0.5)).astype(np.float32)
        return {
            "derived_decision": FusionMap(
                "derived_decision", "decision", decision,
                "Derived, not used for fusion: 1 where the decoded pixel is closer to frame 1 than to "
                "frame 2 (0.5 = equally close)",
            )
        }
    return {
        "derived_index": FusionMap(
            "derived_index", "index", index,
            "Derived, not used for fusion: the frame each decoded pixel is closest to",
        )
    }
