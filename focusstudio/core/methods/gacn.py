"""GACN (Ma, Yin et al., Neurocomputing 2022): siamese dense features, per-channel spatial
frequency comparison, a decision path with 7×7 spatial SE and the boundary guided filter.

Two frames follow the released code (REFERENCE-NOTES §2.2): grey inputs without normalisation,
the soft map M_bgf as fusion weight, round-half-up on output. The network stage (up to the
initial map M) is the cached analysis; the boundary guided filter has no learned parameters, so
its constants are post-processing parameters and can be retuned without re-running the network.

N frames:

* ``serial`` (default for N > 2; measured best, issue 15): fuse frames 1 and 2 with M_bgf, convert
  the fused colour image back to grey, fuse with frame 3, and so on. 47.5 dB on the 3-frame
  synthetic stacks with ground truth (calibration: 32.0 dB); no lost blocks on the real stacks
  (beetle recall 0.98, calibration 0.05). Hard per-step decisions composed by pyramid blending
  were tried: as good on synthetic stacks, but they lost 7–9 % of the blocks of pcb and the beetle.
* ``calibration`` (the paper's rule, REFERENCE-NOTES §2.3; reproduces the released code): frame 1
  is the reference; the feature path runs once per frame, the decision path once per pair (1, j);
  decision volume V_1 = m_2, V_2 = 1 − m_2, V_j = m_2·(1 − m_j)/(m_j + 1e-4); per-pixel arg-max
  (ties → the lowest index) selects the source pixel (hard selection, as released). On real
  stacks whole regions come from defocused frames: kept to reproduce the authors' outputs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import cv2
import numpy as np

from focusstudio.core.lazy import lazy_import
from focusstudio.core.methods._classical import load_checked
from focusstudio.core.methods.base import Analysis, DeepFusionMethod, RunContext
from focusstudio.core.methods.deep_common import (
    FastEncoder,
    Features,
    as_batch,
    bn_scale_shift,
    conv2d_activation,
    encoder_channel_scales,
    gradient_energy_difference,
    grey_frame,
    plan_network_tiles,
    single_output_conv,
    squared_gradient_energy,
    torch_device,
    window_sum_sigmoid,
)
from focusstudio.core.methods.registry import NetworkSpec, register
from focusstudio.core.methods.tensors import to_numpy
from focusstudio.core.methods.tiling import Tile, fits_untiled, plan_tiles
from focusstudio.core.ops.compose import compose_pair, iter_compose_index
from focusstudio.core.ops.guided_filter import GuidedFilterCPU, guide_centre
from focusstudio.core.ops.params import GF_EPS, GF_RADIUS
from focusstudio.core.params import ParamSet, ParamSpec
from focusstudio.core.progress import ProgressEvent, ProgressGen
from focusstudio.core.types import FusionMap, FusionResult, Stack, to_grey

# torch and the architecture load on first use (see focusstudio.core.lazy).
torch = lazy_import("torch")
F = lazy_import("torch.nn.functional")
gacn_arch = lazy_import("focusstudio.core.methods.archs.gacn_arch")

#: Peak working memory per tile pixel (bytes): two 64-channel feature maps, their gradient
#: energies, the 64-channel comparison and the decision path's activations. 1.6 KB measured on a
#: 520² pair (``python -m benchmarks.bench_deep_methods --bytes-per-pixel 1000``), but whole runs
#: on 2400² pairs (``python -m benchmarks.bench_memory --methods gacn``) used 2.4 times the budget
#: planned with 2048 beyond a fixed ~215 MiB (peak RSS 827 MiB over the fixed cost with 256 MiB
#: of tiles, 2049 MiB with 767 MiB): 5000 keeps the tiles within the budget.
GACN_BYTES_PER_PIXEL = 5000

#: Guard of the decision volume against m_j → 0 (released value).
VOLUME_GUARD = 1e-4

STRATEGIES = ("auto", "serial", "calibration")

GACN_PARAMS = ParamSet(
    (
        ParamSpec("strategy", "choice", "auto",
                  "N-frame strategy: auto = soft pair fusion for 2 frames, serial for more; serial = "
                  "fuse the running result with the next frame, the boundary-filtered map as weight "
                  "(best measured on real and synthetic stacks); calibration = the paper's decision "
                  "volume against frame 1, hard selection (reproduces the authors' N-frame outputs, but "
                  "takes whole regions from defocused frames on real stacks)",
                  choices=STRATEGIES, stage="analysis"),
        ParamSpec("sf_radius", "int", 5, "radius r of the (2r+1)² spatial-frequency window (the weights "
                  "were trained with 5)", minimum=1, maximum=30, stage="analysis", title="SF radius"),
        ParamSpec("use_bgf", "bool", True, "boundary guided filter of the initial map (off = fuse with M)",
                  title="Boundary guided filter"),
        ParamSpec("bgf_upper", "float", 0.8, "blurred map above this is inside frame 1's region",
                  minimum=0.0, maximum=1.0, step=0.01, title="BGF upper threshold"),
        ParamSpec("bgf_lower", "float", 0.1, "blurred map below this is inside frame 2's region",
                  minimum=0.0, maximum=1.0, step=0.01, title="BGF lower threshold"),
        ParamSpec("gaussian_sigma", "float", 8.0, "σ of the Gaussian that finds the boundary band",
                  minimum=0.1, maximum=100.0),
        ParamSpec("gaussian_radius", "int", 4, "radius of the Gaussian's support (released: 4 → 9×9)",
                  minimum=1, maximum=50),
        GF_RADIUS.with_default(3, note="(Of the boundary guided filter.)"),
        GF_EPS.with_default(0.1, note="On a grey guide in [0, 1]."),
    )
)

_POST_NAMES = tuple(s.name for s in GACN_PARAMS if s.stage == "post")


def build_network(arch: Mapping[str, Any]) -> gacn_arch.GACNNet:
    bgf = gacn_arch.BoundaryFilterConfig(**arch["bgf"]) if "bgf" in arch else gacn_arch.BoundaryFilterConfig()
    return gacn_arch.GACNNet(reduction=int(arch.get("reduction", 8)), se_kernel=int(arch.get("se_kernel", 7)), bgf=bgf)


def convert_official(state: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The authors' released ``.pkl`` with our key names (None when ``state`` is not theirs)."""
    from focusstudio.core.methods.archs import translate_official_keys

    return translate_official_keys("gacn", state, gacn_arch.OFFICIAL_KEY_RULES, gacn_arch.OFFICIAL_MARKER)


NETWORK = NetworkSpec(build_network, convert_official=convert_official)


def bgf_config(params: Mapping[str, Any]) -> gacn_arch.BoundaryFilterConfig:
    return gacn_arch.BoundaryFilterConfig(
        gaussian_sigma=float(params["gaussian_sigma"]),
        gaussian_radius=int(params["gaussian_radius"]),
        upper=float(params["bgf_upper"]),
        lower=float(params["bgf_lower"]),
        gf_radius=int(params["gf_radius"]),
        gf_eps=float(params["gf_eps"]),
    )


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

    def tiles(self, height: int, width: int) -> list[Tile]:
        return plan_network_tiles(height, width, self.context, GACN_BYTES_PER_PIXEL, self.halo)

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
        if len(tiles) == 1:
            return None
        return encoder_channel_scales(self.encoder, image, tiles, self.context.cancel)


def apply_bgf(
    decision: np.ndarray, grey_a: np.ndarray, grey_b: np.ndarray, config: gacn_arch.BoundaryFilterConfig,
    context: RunContext,
) -> tuple[np.ndarray, np.ndarray]:
    """(M_bgf, W) of a full map, in tiles with a halo of the filter's radius when large.

    On the CPU with OpenCV's filters (:func:`_bgf_cpu`, ~2× faster than the torch module's
    cumulative-sum box filters in double precision; same values to ~1e-6)."""
    device = torch_device(context)
    height, width = decision.shape
    budget = context.resolved_memory_limit()
    edge = context.tile_size or max(int((budget / 200) ** 0.5), 256)
    tiles = plan_tiles(height, width, max(height, width) if fits_untiled(height, width, edge) else edge,
                       config.radius)
    refined = np.empty((height, width), dtype=np.float32)
    boundary = np.empty((height, width), dtype=np.float32)
    if device.type == "cpu":
        decision = np.asarray(decision, dtype=np.float32)
        guide = (grey_a * decision + grey_b * (1.0 - decision)).astype(np.float32, copy=False)
        centre = guide_centre(guide)  # every tile centres on the whole guide's mean
        for tile in tiles:
            context.cancel.raise_if_cancelled()
            out, weight = _bgf_cpu(decision[tile.read], guide[tile.read], centre, config)
            refined[tile.write] = out[tile.inner]
            boundary[tile.write] = weight[tile.inner]
        return refined, boundary
    with torch.inference_mode():
        for tile in tiles:
            context.cancel.raise_if_cancelled()
            m = as_batch(decision[tile.read], device)
            out, weight = gacn_arch.boundary_guided_filter(m, as_batch(grey_a[tile.read], device),
                                                 as_batch(grey_b[tile.read], device), config)
            refined[tile.write] = to_numpy(out)[tile.inner]
            boundary[tile.write] = to_numpy(weight)[tile.inner]
    return refined, boundary


def _bgf_cpu(
    decision: np.ndarray, guide: np.ndarray, centre: np.ndarray, config: gacn_arch.BoundaryFilterConfig
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`gacn_arch.boundary_guided_filter` of one window in NumPy/OpenCV: the Gaussian as a
    zero-padded separable OpenCV filter, the grey guided filter in single precision on the centred guide
    (:class:`GuidedFilterCPU`; its box sums accumulate in double)."""
    kernel = gacn_arch.gaussian_kernel(config.gaussian_sigma, config.gaussian_radius)[0, 0].numpy()
    # the normalised 2-D Gaussian is the outer product of its marginals: two 1-D passes
    blurred = cv2.sepFilter2D(decision, cv2.CV_32F, kernel.sum(axis=1), kernel.sum(axis=0),
                              borderType=cv2.BORDER_CONSTANT)
    weight = gacn_arch.boundary_weight(torch.from_numpy(blurred), config.upper, config.lower).numpy()
    filtered = GuidedFilterCPU(guide, config.gf_radius, config.gf_eps, mode="gray", precision=np.float32,
                               centre=centre)(decision)
    return (filtered * weight + decision * (1.0 - weight)).astype(np.float32, copy=False), weight


def _reporter(
    context: RunContext, start: float, end: float, message: str
) -> Callable[[float], ProgressEvent]:
    """Maps a sub-task's local fraction onto [start, end] of the network stage."""
    return lambda fraction: context.progress.event("network", start + (end - start) * fraction, message)


class CalibrationVolume:
    """Running arg-max of the decision volume, so N maps never need to be held at once."""

    def __init__(self, keep_volumes: bool) -> None:
        self.reference_pair: np.ndarray | None = None  # m_2 = P(frame 1 sharper than frame 2)
        self.best: np.ndarray | None = None
        self.index: np.ndarray | None = None
        self.volumes: list[np.ndarray] | None = [] if keep_volumes else None

    def add(self, frame: int, refined: np.ndarray) -> None:
        """Add m_j, the refined map of the pair (reference, ``frame``), frames in increasing order."""
        m = refined.astype(np.float32)
        if frame == 1:
            self.reference_pair = m
            first, second = m, 1.0 - m
            self.index = (second > first).astype(np.int32)  # ties → the lower index
            self.best = np.maximum(first, second)
            if self.volumes is not None:
                self.volumes.extend([first, second])
            return
        assert self.reference_pair is not None and self.best is not None and self.index is not None
        volume = self.reference_pair * (1.0 - m) / (m + VOLUME_GUARD)
        better = volume > self.best
        self.best[better] = volume[better]
        self.index[better] = frame
        if self.volumes is not None:
            self.volumes.append(volume.astype(np.float32))


@register
class GACNFuse(DeepFusionMethod):
    name: ClassVar[str] = "gacn"
    title: ClassVar[str] = "GACN"
    description: ClassVar[str] = (
        "Gradient-aware cascade network: per-channel spatial frequency of siamese dense features, a "
        "decision path with spatial attention and an in-network boundary guided filter (Ma, Yin et al. "
        "2022); N frames by serial pair fusion (the paper's decision calibration is the 'calibration' "
        "strategy)."
    )
    params: ClassVar[ParamSet] = GACN_PARAMS
    network_spec = NETWORK
    training_recipe = "focusstudio.core.training.recipes.gacn:GACNRecipe"
    rounding = "round"  # the released writer adds 0.4999… before truncating
    auto_strategy_for_many: ClassVar[str] = "serial"
    map_names: ClassVar[tuple[str, ...]] = (
        "activity_diff_scale{k}", "decision_initial", "boundary", "decision", "decision_volume_{j}", "index",
    )
    # The fixed part of the peak RSS over the fixed cost of 2 colour frames at 2400² (~215 MiB:
    # see GACN_BYTES_PER_PIXEL), 39 bytes a pixel; per frame a grey copy and a decision map
    # (8 bytes a pixel, from the code, not measured); plus margin.
    floor_bytes_per_pixel: ClassVar[float] = 45.0
    floor_bytes_per_frame_pixel: ClassVar[float] = 8.0

    # ------------------------------------------------------------------------------ network stage
    def _pair_decision(
        self,
        inference: GACNInference,
        grey_a: np.ndarray,
        grey_b: np.ndarray,
        report: Callable[[float], ProgressEvent],
        reference_energy: torch.Tensor | None = None,
        reference_scales: list[torch.Tensor] | None = None,
        want_scales: bool = False,
    ) -> ProgressGen[tuple[np.ndarray, np.ndarray | None]]:
        """(M, per-scale SF differences 4×H×W when ``want_scales``) for grey frames a, b, with a
        progress event per tile (``report`` maps the local fraction to an event).

        ``reference_energy`` (untiled) / ``reference_scales`` (tiled) let calibration reuse
        the reference frame's work.
        """
        height, width = grey_a.shape
        tiles = inference.tiles(height, width)
        device = inference.device
        a, b = as_batch(grey_a, device), as_batch(grey_b, device)
        with torch.inference_mode():
            if len(tiles) == 1:
                features_a = inference.features(a, None) if reference_energy is None else None
                decision, per_scale = inference.decision(features_a, inference.features(b, None, reuse=True),
                                                         reference_energy, want_scales)
                scales_map = None if per_scale is None else per_scale[0].to("cpu", torch.float32).numpy()
                return to_numpy(decision), scales_map
            scales_a = reference_scales or inference.channel_scales(a, tiles)
            scales_b = inference.channel_scales(b, tiles)
        out = np.empty((height, width), dtype=np.float32)
        per_scale_out = np.empty((4, height, width), dtype=np.float32) if want_scales else None
        for number, tile in enumerate(tiles):
            inference.context.cancel.raise_if_cancelled()
            yield report(number / len(tiles))
            window = (slice(None), slice(None), tile.read[0], tile.read[1])
            with torch.inference_mode():
                decision, per_scale = inference.decision(inference.features(a[window], scales_a),
                                                         inference.features(b[window], scales_b, reuse=True),
                                                         want_scales=want_scales)
            out[tile.write] = to_numpy(decision)[tile.inner]
            if per_scale_out is not None and per_scale is not None:
                per_scale_out[(slice(None), *tile.write)] = per_scale[0].float().cpu().numpy()[
                    (slice(None), *tile.inner)
                ]
        return out, per_scale_out

    def analyze(self, stack: Stack, params: dict[str, Any], context: RunContext) -> ProgressGen[Analysis]:
        loaded = self.load(context.weights)
        network, label = loaded.network, loaded.label
        inference = GACNInference(network, context, params["sf_radius"])
        strategy = self.resolve_strategy(params, len(stack))
        analysis = Analysis(self.name, self.analysis_params(params), weights=label, device=context.device)
        analysis.data["strategy"] = strategy
        if strategy == "serial":
            yield from self._serial(stack, params, context, inference, analysis)
        elif strategy == "pair":
            yield context.progress.event("network", 0.0, "GACN forward")
            grey_a, grey_b = grey_frame(stack, 0), grey_frame(stack, 1)
            decision, per_scale = yield from self._pair_decision(
                inference, grey_a, grey_b, _reporter(context, 0.0, 1.0, "GACN forward"),
                want_scales=True,
            )
            analysis.data.update(decision=decision, grey=(grey_a, grey_b))
            if per_scale is not None:
                for k in range(per_scale.shape[0]):
                    name = f"activity_diff_scale{k + 1}"
                    analysis.maps[name] = FusionMap(
                        name, "activity", per_scale[k],
                        f"SF(frame 1) − SF(frame 2) summed over the 16 channels of scale {k + 1}",
                    )
            yield context.progress.event("network", 1.0, "GACN forward done")
        else:
            yield from self._calibrate(stack, params, context, inference, analysis)
        return analysis

    def _calibrate(
        self, stack: Stack, params: Mapping[str, Any], context: RunContext, inference: GACNInference,
        analysis: Analysis,
    ) -> ProgressGen[None]:
        """Network stage of decision calibration: M_j for every pair (reference, j).

        The maps are kept for the post stage when they fit half the memory budget; otherwise the
        boundary filter and the volume arg-max run here, streaming (the post parameters used are
        recorded so :meth:`finish` can tell when it must run this again)."""
        count = len(stack)
        height, width = stack.shape
        budget = (context.resolved_memory_limit()) // 2
        keep = (count - 1) * height * width * 4 <= budget
        reference = grey_frame(stack, 0)
        tiles = inference.tiles(height, width)
        if len(tiles) > 1 and 2 * (count - 1) * height * width * 4 <= budget:
            # the maps and every frame's grey image fit: tile by tile, the reference once per tile
            analysis.data["decisions"] = yield from self._calibrate_tile_major(stack, reference, inference, tiles)
            analysis.data.pop("post_params", None)
            return
        reference_energy = None
        reference_scales = None
        with torch.inference_mode():
            ref_batch = as_batch(reference, inference.device)
            if len(tiles) == 1:
                # the feature path and its squared gradients run once for the reference
                reference_energy = inference.energy(inference.features(ref_batch, None))
            else:
                reference_scales = inference.channel_scales(ref_batch, tiles)
        volume = None if keep else CalibrationVolume(keep_volumes=False)
        config = bgf_config(params)
        decisions: list[np.ndarray] = []
        for j in range(1, count):
            context.cancel.raise_if_cancelled()
            yield context.progress.event("network", (j - 1) / (count - 1), f"pair 1–{j + 1} of {count}")
            grey = grey_frame(stack, j)
            decision, _ = yield from self._pair_decision(
                inference, reference, grey,
                _reporter(context, (j - 1) / (count - 1), j / (count - 1), f"pair 1–{j + 1} of {count}"),
                reference_energy, reference_scales,
            )
            if volume is None:
                decisions.append(decision)
            else:
                if params["use_bgf"]:
                    decision = apply_bgf(decision, reference, grey, config, context)[0]
                volume.add(j, decision)
        yield context.progress.event("network", 1.0, "decision calibration: network done")
        analysis.data["decisions"] = decisions if volume is None else None
        analysis.data.pop("post_params", None)
        if volume is not None:
            analysis.data["volume_index"] = volume.index
            analysis.data["post_params"] = {k: params[k] for k in _POST_NAMES}
            context.notes.append("gacn: decision maps streamed (memory budget); post changes re-run the net")

    def _calibrate_tile_major(
        self, stack: Stack, reference: np.ndarray, inference: GACNInference, tiles: list[Tile]
    ) -> ProgressGen[list[np.ndarray]]:
        """M_j of every pair (reference, j) for a tiled image, looping over tiles first: the
        reference frame's features and window sums run once per tile instead of once per pair
        and tile. Needs every grey frame in memory (the caller checks the budget)."""
        count = len(stack)
        context = inference.context
        greys = [reference]
        scales: list[list[torch.Tensor] | None] = []
        for j in range(count):
            context.cancel.raise_if_cancelled()
            yield context.progress.event("network", 0.2 * j / count, f"channel statistics, frame {j + 1}/{count}")
            if j > 0:
                greys.append(grey_frame(stack, j))
            with torch.inference_mode():
                scales.append(inference.channel_scales(as_batch(greys[j], inference.device), tiles))
        decisions = [np.empty(reference.shape, dtype=np.float32) for _ in range(count - 1)]
        for number, tile in enumerate(tiles):
            context.cancel.raise_if_cancelled()
            yield context.progress.event("network", 0.2 + 0.8 * number / len(tiles),
                                         f"tile {number + 1}/{len(tiles)}, {count - 1} pairs")
            with torch.inference_mode():
                window = as_batch(reference[tile.read], inference.device)
                reference_energy = inference.energy(inference.features(window, scales[0]))
                for j in range(1, count):
                    context.cancel.raise_if_cancelled()
                    features = inference.features(as_batch(greys[j][tile.read], inference.device), scales[j],
                                                  reuse=True)
                    decision, _ = inference.decision(None, features, reference_energy, want_scales=False)
                    decisions[j - 1][tile.write] = to_numpy(decision)[tile.inner]
        return decisions

    # ------------------------------------------------------------------------------ finish
    def finish(
        self, analysis: Analysis, stack: Stack, params: dict[str, Any], context: RunContext
    ) -> ProgressGen[FusionResult]:
        strategy = analysis.data["strategy"]
        post = {k: params[k] for k in _POST_NAMES}
        config = bgf_config(params)
        if strategy in ("serial", "calibration") and "post_params" in analysis.data and (
            analysis.data["post_params"] != post
        ):
            # The cached stage already used other post parameters (serial chain or streamed
            # calibration): run it again with the new ones.
            network = self.load(context.weights).network
            inference = GACNInference(network, context, params["sf_radius"])
            if strategy == "serial":
                yield from self._serial(stack, params, context, inference, analysis)
            else:
                yield from self._calibrate(stack, params, context, inference, analysis)
        if strategy == "serial":
            return self.make_result(analysis.data["fused"], stack, params, dict(analysis.data["serial_maps"]),
                                    analysis, notes=[f"gacn: serial fusion of {len(stack)} frames"])
        if strategy == "pair":
            grey_a, grey_b = analysis.data["grey"]
            decision = analysis.data["decision"]
            yield context.progress.event("post", 0.1, "boundary guided filter")
            refined, maps = self._refine(decision, grey_a, grey_b, config, params["use_bgf"], context)
            fused = np.clip(compose_pair(stack.load(0), stack.load(1), refined), 0.0, 1.0)
            yield context.progress.event("post", 1.0, "done")
            return self.make_result(fused, stack, params, {**analysis.maps, **maps}, analysis)
        index, maps = yield from self._finish_calibration(analysis, stack, params, config, context)
        count = len(stack)
        steps = iter_compose_index(stack, index, context.cancel)
        while True:
            try:
                i = next(steps)
            except StopIteration as stop:
                fused = stop.value
                break
            yield context.progress.event("compose", 0.5 + 0.5 * (i + 1) / count, f"frame {i + 1}/{count}")
        return self.make_result(fused, stack, params, {**analysis.maps, **maps}, analysis,
                                notes=[f"gacn: decision calibration of {count} frames against frame 1"])

    @staticmethod
    def _refine(
        decision: np.ndarray, grey_a: np.ndarray, grey_b: np.ndarray, config: gacn_arch.BoundaryFilterConfig,
        use_bgf: bool, context: RunContext,
    ) -> tuple[np.ndarray, dict[str, FusionMap]]:
        if use_bgf:
            refined, boundary = apply_bgf(decision, grey_a, grey_b, config, context)
        else:
            refined, boundary = decision, np.zeros_like(decision)
        maps = {
            "decision_initial": FusionMap("decision_initial", "decision", decision,
                                          "network map M = P(frame 1 sharper)"),
            "boundary": FusionMap("boundary", "mask", boundary, "boundary band W of the guided filter"),
            "decision": FusionMap("decision", "decision", refined, "M_bgf: the fusion weight of frame 1"),
        }
        return refined, maps

    def _finish_calibration(
        self, analysis: Analysis, stack: Stack, params: Mapping[str, Any], config: gacn_arch.BoundaryFilterConfig,
        context: RunContext,
    ) -> ProgressGen[tuple[np.ndarray, dict[str, FusionMap]]]:
        decisions = analysis.data.get("decisions")
        maps: dict[str, FusionMap] = {}
        if decisions is None:
            index = analysis.data["volume_index"]
        else:
            count = len(stack)
            height, width = stack.shape
            budget = (context.resolved_memory_limit()) // 2
            volume = CalibrationVolume(keep_volumes=count * height * width * 4 <= budget)
            reference = grey_frame(stack, 0)
            for j, decision in enumerate(decisions, start=1):
                context.cancel.raise_if_cancelled()
                message = f"boundary filter, pair 1–{j + 1}"
                yield context.progress.event("post", 0.5 * (j - 1) / (count - 1), message)
                if params["use_bgf"]:
                    decision = apply_bgf(decision, reference, grey_frame(stack, j), config, context)[0]
                volume.add(j, decision)
            assert volume.index is not None
            index = volume.index
            for j, values in enumerate(volume.volumes or []):
                name = f"decision_volume_{j}"
                maps[name] = FusionMap(name, "other", values, f"decision volume of frame {j + 1}", frame=j)
        maps["index"] = FusionMap("index", "index", index, "selected frame (0-based): arg-max of the volume")
        return index, maps

    def _serial(
        self, stack: Stack, params: Mapping[str, Any], context: RunContext, inference: GACNInference,
        analysis: Analysis,
    ) -> ProgressGen[None]:
        """Frames 1 and 2 with M_bgf, the result (back to grey) with frame 3, …"""
        count = len(stack)
        config = bgf_config(params)
        running = stack.load(0)
        maps: dict[str, FusionMap] = {}
        for i in range(1, count):
            context.cancel.raise_if_cancelled()
            yield context.progress.event("network", (i - 1) / (count - 1), f"serial step {i}/{count - 1}")
            frame = load_checked(stack, i)
            grey_a, grey_b = to_grey(running), to_grey(frame)
            decision, _ = yield from self._pair_decision(
                inference, grey_a, grey_b,
                _reporter(context, (i - 1) / (count - 1), i / (count - 1), f"serial step {i}/{count - 1}"),
            )
            refined, maps = self._refine(decision, grey_a, grey_b, config, params["use_bgf"], context)
            running = np.clip(compose_pair(running, frame, refined), 0.0, 1.0)
        yield context.progress.event("network", 1.0, "serial fusion done")
        analysis.data["fused"] = running
        analysis.data["serial_maps"] = {
            name: FusionMap(m.name, m.kind, m.data, m.description + " (last serial step)")
            for name, m in maps.items()
        }
        analysis.data["post_params"] = {k: params[k] for k in _POST_NAMES}
