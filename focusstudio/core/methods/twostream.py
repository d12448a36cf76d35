"""Two-stream latent decision map (Zeng et al.): a regression network predicts α, the weight of
the first source, supervised only through the fused image α·F₁ + (1 − α)·F₂ during training.

Inference (METHODS.md §5; REFERENCE-NOTES §7.6.5):

1. α is computed on the grey frames (the paper works on grey images; the network and its
   interpretation are described in :mod:`~focusstudio.core.methods.archs.twostream_arch`).
2. ``decision_raw`` = α > threshold (strict, 0.5 by default).
3. Optional small-region removal (MFIF-GAN's, both polarities, 4-connectivity), off by default as
   the paper has none.
4. Hard fusion of the colour (or 16-bit) source pixels — or, with ``soft_alpha`` on, the soft
   blend α·F₁ + (1 − α)·F₂ that the network was trained with.

N frames (``strategy``, :mod:`focusstudio.core.methods._deep_serial`): ``neighbours`` (default)
— α of each frame against the next, each pixel takes the frame where the summed evidence peaks
(refined by the focus activity among neighbouring frames and at changes of frame), composed by
pyramid blending (each frame's two streams run once, only the joint part per pass:
:mod:`focusstudio.core.methods.backends.twostream_fast`); ``serial`` — the running result's grey
image is the next step's first input, each step decided as above.
The network is purely local (no pooling, no normalisation), so tiled inference with a halo of its
receptive-field radius is exact.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from focusstudio.core.methods._deep_serial import STRATEGY, SerialDecisionMethod, threshold_and_clean
from focusstudio.core.methods.base import RunContext
from focusstudio.core.methods.engine import is_whole, plan_network_tiles, run_tiles, tile_reporter
from focusstudio.core.methods.registry import NetworkSpec, register
from focusstudio.core.methods.tensors import to_numpy, to_tensor
from focusstudio.core.ops.params import ANALYSIS_SCALE, AREA_FRACTION, DECISION_THRESHOLD, USE_SRR
from focusstudio.core.params import ParamSet, ParamSpec
from focusstudio.core.progress import ProgressGen, ProgressRange, run_to_completion
from focusstudio.core.tiling import Tile, fits_map_budget
from focusstudio.core.types import to_grey

if TYPE_CHECKING:
    from torch import nn

    from focusstudio.core.methods.archs.twostream_arch import TwoStreamNet
    from focusstudio.core.methods.backends.twostream_fast import FrameFeatures, TwoStreamInference


def build_network(arch: Mapping[str, Any]) -> TwoStreamNet:
    from focusstudio.core.methods.archs.twostream_arch import TwoStreamNet

    fields = ("width", "head_width", "in_channels")
    return TwoStreamNet(**{k: int(arch[k]) for k in fields if k in arch})


def infer_arch(state: Mapping[str, Any]) -> dict[str, Any]:
    """Configuration of a bare state dict of ours, from its tensor shapes."""
    first = state.get("stream_1.head.0.weight")
    head = state.get("conv_g.0.weight")
    if first is None or head is None:
        return {}
    return {"width": int(first.shape[0]), "in_channels": int(first.shape[1]), "head_width": int(head.shape[0])}


NETWORK = NetworkSpec(build_network, infer_arch=infer_arch)


def bytes_per_pixel(width: int, head_width: int) -> float:
    """Working memory per pixel, a slight over-estimate of the measured peak (8.6 kB at 128/64,
    2.6 kB at 32/32): C₁, D₁, C₂, D₂, E, F, the five-way concatenation and the head, float32."""
    return 4.0 * (16 * width + 4 * head_width) + 256.0


def predict_alpha(
    network: TwoStreamNet, first: np.ndarray, second: np.ndarray, context: RunContext, progress: ProgressRange
) -> ProgressGen[np.ndarray]:
    """α (weight of ``first``) of two frames; colour frames are converted to grey first."""
    import torch

    device = context.device
    if network.in_channels == 1:
        first, second = to_grey(first), to_grey(second)
    height, width = first.shape[:2]
    halo = network.receptive_radius
    head_width = network.conv_g[0].out_channels
    tiles = plan_network_tiles(height, width, context, bytes_per_pixel(network.conv_e[0].out_channels, head_width),
                               halo, tile_size_forces_tiles=False)

    def forward(tile: Tile) -> np.ndarray:
        return to_numpy(network(to_tensor(first[tile.read], device), to_tensor(second[tile.read], device)))

    with torch.inference_mode():
        if is_whole(tiles):
            yield progress.event("network", 0.05, "two-stream forward pass")
            alpha = forward(tiles[0])
            yield progress.event("network", 1.0, "α")
            return alpha.astype(np.float32, copy=False)
        context.notes.append(f"Two-stream: {width}×{height} image run in {len(tiles)} tiles (exact)")
        (alpha,) = yield from run_tiles(tiles, (height, width), forward, context.cancel,
                                        tile_reporter(progress, len(tiles)))
    assert alpha is not None
    return alpha


@register
class TwoStreamFusion(SerialDecisionMethod):
    name = "twostream"
    title = "Two-stream latent decision map"
    description = (
        "Two-stream residual network regresses a latent decision map α on the grey frames, trained only "
        "through the fused image (Zeng et al.); α is binarised and applied to the source pixels. "
        "N frames: each frame against the next, the peak of the summed evidence refined by the focus activity "
        "among neighbouring frames, composed by pyramid (the "
        "'serial' strategy fuses the running result with the next frame)."
    )
    rounding = "round"
    params = ParamSet(
        (
            STRATEGY,
            DECISION_THRESHOLD.with_default(0.5, note="(The soft map is the latent decision map α.)"),
            ParamSpec("soft_alpha", "bool", False, "Blend with the soft α (α·F1 + (1−α)·F2, the training "
                      "objective) instead of a hard selection.", stage="post", title="Soft α"),
            USE_SRR.with_default(False, note="(Not in the paper.)"),
            AREA_FRACTION.with_default(0.001),
            ANALYSIS_SCALE,
        )
    )
    #: ``analysis_scale`` "auto": the long side the network sees (benchmarks/bench_analysis_scale.py).
    analysis_long_side: ClassVar[int] = 1024
    soft_map_name = "alpha"
    soft_map_description = "Latent decision map α: weight of frame 1 predicted by the network"
    map_names: ClassVar[tuple[str, ...]] = ("alpha", "decision_raw", "decision", "index", "alpha_{j}")
    network_spec = NETWORK
    training_recipe = "focusstudio.core.training.recipes.twostream:TwoStreamRecipe"

    def predict_pair(
        self, network: nn.Module, first: np.ndarray, second: np.ndarray, context: RunContext,
        progress: ProgressRange,
    ) -> ProgressGen[np.ndarray]:
        return (yield from predict_alpha(network, first, second, context, progress))  # type: ignore[arg-type]

    # N frames (neighbours): the two streams are half of a pass's multiply-adds and each frame is
    # in up to four passes (twice per stream); they run once per frame (backends.twostream_fast).
    caches_frame_features = True

    def encode_frame(self, network: nn.Module, frame: np.ndarray, context: RunContext) -> Any | None:
        return frame_features(network, frame, context)  # type: ignore[arg-type]

    def predict_encoded(
        self, network: nn.Module, first: Any, second: Any, shape: tuple[int, int], context: RunContext
    ) -> np.ndarray:
        return alpha_from_features(network, first, second, shape, context)  # type: ignore[arg-type]

    def post_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {k: params[k] for k in ("threshold", "soft_alpha", "use_srr", "area_fraction")}

    def decide(self, soft: np.ndarray, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        area = params["area_fraction"] if params["use_srr"] else 0.0
        raw, decision = threshold_and_clean(soft, params["threshold"], area)
        if params["soft_alpha"]:
            return raw, np.clip(soft, 0.0, 1.0).astype(np.float32)
        return raw, decision


# --------------------------------------------------------------------------- per-frame features
#: One split inference per network (its weights in the split and memory format it needs).
_INFERENCES: weakref.WeakKeyDictionary[Any, TwoStreamInference] = weakref.WeakKeyDictionary()


def split_inference(network: TwoStreamNet, context: RunContext) -> TwoStreamInference:
    """The per-frame / joint split of ``network`` (:mod:`~focusstudio.core.methods.backends.twostream_fast`),
    made once per network and device; channels-last on the CPU."""
    import torch

    from focusstudio.core.methods.backends.twostream_fast import TwoStreamInference

    device = torch.device(context.device)
    inference = _INFERENCES.get(network)
    if inference is None or inference.device != device:
        inference = TwoStreamInference(network, device, channels_last=device.type == "cpu")
        _INFERENCES[network] = inference
    return inference


def frame_features(network: TwoStreamNet, image: np.ndarray, context: RunContext) -> FrameFeatures | None:
    """One frame's part of every pass it is in (float [0, 1], grey or colour as :func:`predict_alpha`
    takes it), in tiles with the network's halo where the budget asks (exact: the network is
    local); None where two frames' features do not fit the map budget (the pair path runs)."""
    import torch

    from focusstudio.core.methods.backends.twostream_fast import (
        ENCODE_BYTES_PER_PIXEL_PER_CHANNEL,
        FrameFeatures,
        feature_bytes_per_pixel,
    )

    inference = split_inference(network, context)
    if network.in_channels == 1:
        image = to_grey(image)
    height, width = image.shape[:2]
    # the strategy holds two frames' features (the current pair's)
    if not fits_map_budget(2 * feature_bytes_per_pixel(inference.width) * height * width, context.memory_limit,
                           context.device):
        return None
    tiles = plan_network_tiles(height, width, context, ENCODE_BYTES_PER_PIXEL_PER_CHANNEL * inference.width,
                               network.receptive_radius)
    with torch.inference_mode():
        tensor = inference.tensor(to_tensor(image, inference.device))
        if is_whole(tiles):
            return inference.encode(tensor)
        whole: FrameFeatures | None = None
        for tile in tiles:
            context.cancel.raise_if_cancelled()
            part = inference.encode(tensor[(..., *tile.read)])
            if whole is None:
                def full(like: torch.Tensor) -> torch.Tensor:
                    return inference.tensor(like.new_empty((*like.shape[:2], height, width)))

                whole = FrameFeatures(tensor, (full(part.d[0]), full(part.d[1])), (full(part.g[0]), full(part.g[1])))
            for kept, new in zip((*whole.d, *whole.g), (*part.d, *part.g), strict=True):
                kept[(..., *tile.write)] = new[(..., *tile.inner)]
    return whole


def alpha_from_features(
    network: TwoStreamNet, first: FrameFeatures, second: FrameFeatures, shape: tuple[int, int], context: RunContext
) -> np.ndarray:
    """:func:`predict_alpha` of two frames of ``shape`` from their :func:`frame_features`."""
    import torch

    from focusstudio.core.methods.backends.twostream_fast import JOINT_BYTES_PER_PIXEL_PER_CHANNEL

    inference = split_inference(network, context)
    height, width = shape
    tiles = plan_network_tiles(height, width, context, JOINT_BYTES_PER_PIXEL_PER_CHANNEL * inference.width,
                               network.receptive_radius)

    def joint(tile: Tile) -> np.ndarray:
        rows, cols = tile.read
        return to_numpy(inference.joint(inference.window(first, rows, cols), inference.window(second, rows, cols)))

    with torch.inference_mode():
        if is_whole(tiles):
            return to_numpy(inference.joint(first, second)).astype(np.float32, copy=False)
        (alpha,) = run_to_completion(run_tiles(tiles, shape, joint, context.cancel))
    assert alpha is not None
    return alpha.astype(np.float32, copy=False)
