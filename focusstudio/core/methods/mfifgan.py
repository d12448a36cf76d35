"""MFIF-GAN (Wang, Xu, Liu et al. 2021): a GAN-trained generator predicts the focus map.

Pipeline (REFERENCE-NOTES §3.3, §7.4):

1. The generator sees both sources in colour (grey stacks: one plane each) and outputs the
   focus map P ∈ (0, 1), the weight of the first source. Inputs are padded by edge replication
   at the bottom/right to a multiple of 4 (two stride-2 stages) and the map is cropped back — the
   upstream code instead runs unpadded and centre-crops a 1–3 px larger map; both leave the map
   aligned with the image, ours without the half-pixel offset of an odd crop.
2. ``decision_raw`` = P > threshold (strict, 0.5 by default).
3. Small-region removal in both polarities: 1-regions, then 0-regions, smaller than
   ``area_fraction``·H·W are flipped (4-connectivity, strict <; default 0.001) → ``decision``.
4. Hard fusion from the source pixels: F = D·A + (1 − D)·B (colour and 16-bit preserved).

N frames (``strategy``, :mod:`focusstudio.core.methods._deep_serial`): ``neighbours`` (default)
— the generator compares each frame with the next, each pixel takes the frame where the summed
evidence peaks (refined by the focus activity among neighbouring frames and at changes of frame),
composed by pyramid blending (each frame's encoder features are computed once and
reused in its up to four passes; only the decoder runs per pass); ``serial`` — fuse the running result with the next
frame with the pair pipeline above (a change of a post-processing parameter then re-runs the
network from the second step on, since later inputs depend on earlier decisions).

Large images: the encoder's squeeze-excitation gates average over the whole feature map, the rest
(convolutions, batch norm in eval mode) is local. When the image does not fit one tile, the gates
are computed once on a downscaled copy of the whole image and frozen for every full-resolution
tile (halo ≥ the receptive field), so tiles share one set of global gates and no seams appear; the
map then differs slightly from an untiled run (a note says so).

Weights: ``weights/mfifgan.pt`` trained by ``focusstudio train --method mfifgan`` (the authors'
13.7 M-parameter checkpoint is not available). The shipped file may be a narrower configuration
of the same topology; its size is stored in the checkpoint.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from focusstudio.core.methods._deep_serial import STRATEGY, SerialDecisionMethod, threshold_and_clean
from focusstudio.core.methods.base import RunContext
from focusstudio.core.methods.engine import is_whole, network_tile_edge, plan_network_tiles, run_tiles, tile_reporter
from focusstudio.core.methods.registry import NetworkSpec, register
from focusstudio.core.methods.tensors import pad_to_multiple, to_numpy, to_tensor
from focusstudio.core.ops.params import ANALYSIS_SCALE, AREA_FRACTION, DECISION_THRESHOLD
from focusstudio.core.params import ParamSet
from focusstudio.core.progress import ProgressGen, ProgressRange
from focusstudio.core.tiling import Tile

if TYPE_CHECKING:
    import torch
    from torch import nn

    from focusstudio.core.methods.archs.mfifgan_arch import MFIFGANGenerator


def build_generator(arch: Mapping[str, Any]) -> MFIFGANGenerator:
    from focusstudio.core.methods.archs.mfifgan_arch import GeneratorConfig, MFIFGANGenerator

    fields = ("width", "blocks", "se_reduction")
    return MFIFGANGenerator(GeneratorConfig(**{k: int(arch[k]) for k in fields if k in arch}))


def infer_arch(state: Mapping[str, Any]) -> dict[str, Any]:
    """A bare state dict of ours carries no configuration: read it from the tensor shapes."""
    from focusstudio.core.methods.archs.mfifgan_arch import config_from_state_dict

    config = config_from_state_dict(state)
    return {} if config is None else config.to_dict()


NETWORK = NetworkSpec(build_generator, infer_arch=infer_arch)


def halo_for(blocks: int) -> int:
    """Receptive-field radius (full-resolution pixels) rounded up to a multiple of 4, plus margin.

    Stem 7×7 (3) + two stride-2 convs (1 + 2) + two 3×3 convs per block at ¼ resolution (4 px
    each) + decoder (transposed convs 4 + 2, final 7×7: 3).
    """
    radius = 3 + 1 + 2 + 8 * blocks + 4 + 2 + 3
    return -(-(radius + 4) // 4) * 4


def bytes_per_pixel(width: int) -> float:
    """Working memory per input pixel of one forward pass (float32), a slight over-estimate of the
    measured peak (4.0 kB at width 64, 1.2 kB at width 16): the full-resolution stem over six
    planes dominates."""
    return 66.0 * width + 256.0


@register
class MFIFGANFusion(SerialDecisionMethod):
    name = "mfifgan"
    title = "MFIF-GAN"
    description = (
        "GAN-trained generator (shared six-branch SE-ResNet encoder) predicts a focus map; threshold, "
        "small-region removal in both polarities and hard selection of the source pixels "
        "(Wang, Xu, Liu et al. 2021). N frames: each frame against the next, the peak of the summed "
        "evidence refined by the focus activity among neighbouring frames, composed by pyramid (the 'serial' "
        "strategy fuses the running result with the next frame)."
    )
    rounding = "round"
    params = ParamSet(
        (
            STRATEGY,
            DECISION_THRESHOLD.with_default(0.5, note="(The soft map is the generator's focus map.)"),
            AREA_FRACTION.with_default(0.001, note="(Small-region removal is on unless it is 0.)"),
            ANALYSIS_SCALE,
        )
    )
    #: ``analysis_scale`` "auto": the long side the network sees (benchmarks/bench_analysis_scale.py).
    analysis_long_side: ClassVar[int] = 1024
    soft_map_name = "focus_map"
    soft_map_description = "Generator output: weight of frame 1, before thresholding"
    map_names: ClassVar[tuple[str, ...]] = ("focus_map", "decision_raw", "decision", "index", "focus_map_{j}")
    network_spec = NETWORK
    training_recipe = "focusstudio.core.training.recipes.mfifgan:MFIFGANRecipe"

    def predict_pair(
        self, network: nn.Module, first: np.ndarray, second: np.ndarray, context: RunContext,
        progress: ProgressRange,
    ) -> ProgressGen[np.ndarray]:
        return (yield from predict_focus_map(network, first, second, context, progress))  # type: ignore[arg-type]

    # N frames (neighbours): the shared plane encoder is ~80 % of a pass (1024×684 pair, shipped
    # weights), and each frame is in up to four passes; it runs once per frame.
    caches_frame_features = True

    def encode_frame(self, network: nn.Module, frame: np.ndarray, context: RunContext) -> Any | None:
        return frame_features(network, frame, context)  # type: ignore[arg-type]

    def predict_encoded(
        self, network: nn.Module, first: Any, second: Any, shape: tuple[int, int], context: RunContext
    ) -> np.ndarray:
        return focus_map_from_features(network, first, second, shape)  # type: ignore[arg-type]

    def post_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"threshold": params["threshold"], "area_fraction": params["area_fraction"]}

    def decide(self, soft: np.ndarray, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        return threshold_and_clean(soft, params["threshold"], params["area_fraction"])


# --------------------------------------------------------------------------- inference
def predict_focus_map(
    network: MFIFGANGenerator,
    image_a: np.ndarray,
    image_b: np.ndarray,
    context: RunContext,
    progress: ProgressRange,
) -> ProgressGen[np.ndarray]:
    """Focus map (weight of ``image_a``) at the images' size; tiled when too large."""
    import cv2
    import torch

    height, width = image_a.shape[:2]
    multiple = network.size_multiple
    padded_a, padded_b = pad_to_multiple(image_a, multiple), pad_to_multiple(image_b, multiple)
    padded_h, padded_w = padded_a.shape[:2]
    config = network.config
    halo = halo_for(config.blocks)
    edge = network_tile_edge(context, bytes_per_pixel(config.width), halo, multiple)
    tiles = plan_network_tiles(padded_h, padded_w, context, bytes_per_pixel(config.width), halo, multiple,
                               tile_size_forces_tiles=False)
    device = context.device

    def generator(tile: Tile) -> np.ndarray:
        return to_numpy(network(to_tensor(padded_a[tile.read], device), to_tensor(padded_b[tile.read], device)))

    with torch.inference_mode():
        if is_whole(tiles):
            yield progress.event("network", 0.05, "generator forward pass")
            focus_map = generator(tiles[0])
            yield progress.event("network", 1.0, "focus map")
            return np.ascontiguousarray(focus_map[:height, :width], dtype=np.float32)

        # Global squeeze-excitation gates from a downscaled copy of the whole image.
        scale = min(1.0, edge / max(padded_h, padded_w))
        small_h = max(multiple, int(padded_h * scale) // multiple * multiple)
        small_w = max(multiple, int(padded_w * scale) // multiple * multiple)
        small_a = cv2.resize(padded_a, (small_w, small_h), interpolation=cv2.INTER_AREA)
        small_b = cv2.resize(padded_b, (small_w, small_h), interpolation=cv2.INTER_AREA)
        with network.capture_gates() as modules:
            network(to_tensor(small_a, device), to_tensor(small_b, device))
            gates = [module.captured for module in modules]
        assert all(g is not None for g in gates)
        context.notes.append(
            f"MFIF-GAN: {padded_w}×{padded_h} image run in {len(tiles)} tiles; squeeze-excitation gates "
            f"from a {small_w}×{small_h} copy of the whole image"
        )
        with network.frozen_gates(gates):  # type: ignore[arg-type]
            (output,) = yield from run_tiles(tiles, (padded_h, padded_w), generator, context.cancel,
                                             tile_reporter(progress, len(tiles)))
    assert output is not None
    return np.ascontiguousarray(output[:height, :width])



# --------------------------------------------------------------------------- per-frame features
#: The channels-last copy of each network the ``neighbours`` passes run on the CPU.
_CHANNELS_LAST: weakref.WeakKeyDictionary[Any, MFIFGANGenerator] = weakref.WeakKeyDictionary()


def channels_last_network(network: MFIFGANGenerator, device: torch.device) -> MFIFGANGenerator:
    """``network`` with channels-last weights on the CPU (made once per network), else itself.

    oneDNN's NHWC convolutions: measured on a 1024×684 frame (1 thread), the encoder 2.2 → 1.8
    CPU-s, the decoder 1.4 → 0.7 (its transposed convolutions gain most); sums in another order,
    so maps agree with the NCHW module within float rounding (7e-6 there). Only the per-frame
    ``neighbours`` path uses it: pairs and ``serial`` keep the module's own arithmetic."""
    import torch

    if device.type != "cpu":
        return network
    converted = _CHANNELS_LAST.get(network)
    if converted is None:
        converted = copy.deepcopy(network).to(memory_format=torch.channels_last)
        _CHANNELS_LAST[network] = converted
    return converted

def frame_features(network: MFIFGANGenerator, image: np.ndarray, context: RunContext) -> torch.Tensor | None:
    """The encoder's features of one frame, padded as :func:`predict_focus_map` pads it (the
    per-image part of the generator, reused in every pair the frame is in), or None where a pair of
    such frames runs in tiles: there the squeeze-excitation gates come from a downscaled copy of
    the pair (:func:`predict_focus_map` runs instead)."""
    import torch

    padded = pad_to_multiple(image, network.size_multiple)
    config = network.config
    tiles = plan_network_tiles(padded.shape[0], padded.shape[1], context, bytes_per_pixel(config.width),
                               halo_for(config.blocks), network.size_multiple, tile_size_forces_tiles=False)
    if not is_whole(tiles):
        return None
    tensor = to_tensor(padded, context.device)
    with torch.inference_mode():
        if tensor.device.type == "cpu":
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        return channels_last_network(network, tensor.device).encode_image(tensor)


def focus_map_from_features(
    network: MFIFGANGenerator, features_a: torch.Tensor, features_b: torch.Tensor, shape: tuple[int, int]
) -> np.ndarray:
    """:func:`predict_focus_map` of two frames of ``shape`` from their :func:`frame_features`."""
    import torch

    with torch.inference_mode():
        focus_map = to_numpy(channels_last_network(network, features_a.device).decode(features_a, features_b))
    return np.ascontiguousarray(focus_map[: shape[0], : shape[1]], dtype=np.float32)
