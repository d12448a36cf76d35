"""GACN (Ma, Yin et al., Neurocomputing 2022): siamese dense features, per-channel spatial
frequency comparison, a decision path with 7×7 spatial SE and the boundary guided filter.

Two frames follow the released code (REFERENCE-NOTES §2.2): grey inputs without normalisation,
the soft map M_bgf as fusion weight, round-half-up on output. The network stage (up to the
initial map M) is the cached analysis; the boundary guided filter has no learned parameters, so
its constants are post-processing parameters and can be retuned without re-running the network.

N frames:

* ``neighbours`` (default for N > 2; measured best, issue 15): the network's map M of every frame
  against the next (raw grey frames, N − 1 pairs, each in both orders, symmetrised); each pixel
  takes the frame where the summed evidence 1 − 2·M peaks
  (:func:`~focusstudio.core.methods.strategies.run_neighbour_decisions`), composed by pyramid
  blending. No network input is a composite of earlier decisions.
* ``serial``: fuse frames 1 and 2 with M_bgf, convert the fused colour image back to grey, fuse
  with frame 3, and so on (the session-5 default: 47.5 dB on the 3-frame synthetic stacks with
  ground truth, calibration 32.0 dB; beetle recall 0.98, calibration 0.05). Soft steps: the
  detail a step blends away is not recovered later.
* ``calibration`` (the paper's rule, REFERENCE-NOTES §2.3; reproduces the released code): frame 1
  is the reference; the feature path runs once per frame, the decision path once per pair (1, j);
  decision volume V_1 = m_2, V_2 = 1 − m_2, V_j = m_2·(1 − m_j)/(m_j + 1e-4); per-pixel arg-max
  (ties → the lowest index) selects the source pixel (hard selection, as released). On real
  stacks whole regions come from defocused frames: kept to reproduce the authors' outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import cv2
import numpy as np

from focusstudio.core.lazy import lazy_import
from focusstudio.core.methods._deep_serial import NEIGHBOURS_USE_NO_POST
from focusstudio.core.methods.analysis_scale import (
    AnalysisScale,
    analysis_scale_for,
    lift_pair,
    pair_greys,
    pair_levels,
)
from focusstudio.core.methods.backends.gacn_fast import EncodedGrey, GACNInference
from focusstudio.core.methods.base import Analysis, DeepFusionMethod, RunContext
from focusstudio.core.methods.deep_common import grey_frame, torch_device
from focusstudio.core.methods.engine import is_whole, plan_network_tiles, reporter, run_tiles, tile_reporter
from focusstudio.core.methods.registry import NetworkSpec, register
from focusstudio.core.methods.strategies import (
    CalibrationVolume,
    NeighbourChain,
    SerialFusion,
    compose_selection,
    run_neighbour_decisions,
    serial_fusion,
)
from focusstudio.core.methods.tensors import to_numpy, to_tensor
from focusstudio.core.ops.compose import compose_pair
from focusstudio.core.ops.guided_filter import guide_centre
from focusstudio.core.ops.levels import compose_pair_banded, load_pair_sources
from focusstudio.core.ops.params import ANALYSIS_SCALE, GF_EPS, GF_RADIUS, SF_RADIUS
from focusstudio.core.ops.sparse_guided import changing_tiles, guided_filter_near_changes
from focusstudio.core.params import ParamSet, ParamSpec
from focusstudio.core.progress import ProgressEvent, ProgressGen, ProgressRange, run_to_completion
from focusstudio.core.tiling import BoundedGuidedFilter, Tile, fits_map_budget, operation_budget, plan_budget_tiles
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

#: Working memory per pixel of the boundary guided filter in torch (other devices than the CPU).
BGF_BYTES_PER_PIXEL = 200
#: Working memory per pixel of the boundary blend on the CPU (the Gaussian, the weight and the
#: blend of a tile, float32, with temporaries).
BLEND_BYTES_PER_PIXEL = 32

STRATEGIES = ("auto", "neighbours", "serial", "calibration")

#: Neighbour pairs' maps are exposed up to this many frames (one H×W float32 each).
MAX_PAIR_MAPS = 16

GACN_PARAMS = ParamSet(
    (
        ParamSpec("strategy", "choice", "auto",
                  "N-frame strategy: auto = soft pair fusion for 2 frames, neighbours for more; neighbours = "
                  "the network compares each frame with the next (raw frames, both orders), each pixel takes the frame "
                  "where the summed evidence peaks, refined by the classical focus activity among its neighbouring "
                  "frames and at changes of frame, composed by pyramid blending (best measured on real and "
                  "synthetic stacks; the boundary filter is not used); serial = fuse the running result with "
                  "the next frame, the boundary-filtered map as weight; calibration = the paper's decision "
                  "volume against frame 1, hard selection (reproduces the authors' N-frame outputs, but "
                  "takes whole regions from defocused frames on real stacks)",
                  choices=STRATEGIES, stage="analysis"),
        SF_RADIUS.with_default(5, note="(The weights were trained with 5.)"),
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
        ANALYSIS_SCALE,
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


#: A lifted decision varying by at most this within a tile and its 2r halo is taken as constant
#: there by the boundary guided filter (``near_changes``): the guided filter of a source that
#: flat is the source to within a small multiple of this (a weight error far below 1/255).
FLAT_TOLERANCE = 1e-5


def apply_bgf(
    decision: np.ndarray, grey_a: np.ndarray, grey_b: np.ndarray, config: gacn_arch.BoundaryFilterConfig,
    context: RunContext, near_changes: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(M_bgf, W) of a full map (:func:`gacn_arch.boundary_guided_filter`).

    On the CPU in NumPy/OpenCV (~2× faster than the torch module's cumulative-sum box filters in
    double precision; same values to ~1e-6): the Gaussian as a zero-padded separable OpenCV filter,
    the grey guided filter by :class:`BoundedGuidedFilter` in single precision on the centred guide
    (tiled when large). Other devices: the torch module in tiles with a halo of the filter's radius.

    ``near_changes`` (a decision lifted from an analysis scale, CPU): the guided filter runs only
    on tiles where the decision varies by more than :data:`FLAT_TOLERANCE`
    (:mod:`focusstudio.core.ops.sparse_guided`, the whole guide's centre: the same numbers there);
    elsewhere the filtered map is the decision itself."""
    height, width = decision.shape
    if torch_device(context).type == "cpu":
        decision = np.asarray(decision, dtype=np.float32)
        budget = operation_budget((height, width), context.memory_limit)
        guide = (grey_a * decision + grey_b * (1.0 - decision)).astype(np.float32, copy=False)
        if near_changes:
            filtered = guided_filter_near_changes(
                decision, lambda read: guide[read], config.gf_radius, config.gf_eps, "gray", guide_centre(guide),
                changing_tiles(decision, config.gf_radius, FLAT_TOLERANCE), context.cancel,
            )
        else:
            filtered = BoundedGuidedFilter(
                guide, config.gf_radius, config.gf_eps, budget, context.tile_size, mode="gray", dtype=np.float32,
                precision=np.float32, cancel=context.cancel,
            )(decision)
        del guide
        kernel = gacn_arch.gaussian_kernel(config.gaussian_sigma, config.gaussian_radius)[0, 0].numpy()

        def boundary_blend(tile: Tile) -> tuple[np.ndarray, np.ndarray]:
            window = decision[tile.read]
            # the normalised 2-D Gaussian is the outer product of its marginals: two 1-D passes
            blurred = cv2.sepFilter2D(window, cv2.CV_32F, kernel.sum(axis=1), kernel.sum(axis=0),
                                      borderType=cv2.BORDER_CONSTANT)
            weight = gacn_arch.boundary_weight(torch.from_numpy(blurred), config.upper, config.lower).numpy()
            return (filtered[tile.read] * weight + window * (1.0 - weight)).astype(np.float32, copy=False), weight

        # the Gaussian's halo is its radius; the filtered map is already whole
        tiles = plan_budget_tiles(height, width, config.gaussian_radius, BLEND_BYTES_PER_PIXEL, budget,
                                  context.tile_size)
    else:
        device = torch_device(context)
        tiles = plan_budget_tiles(height, width, config.radius, BGF_BYTES_PER_PIXEL, context.resolved_memory_limit(),
                                  context.tile_size, device=context.device)

        def boundary_blend(tile: Tile) -> tuple[np.ndarray, np.ndarray]:
            with torch.inference_mode():
                out, weight = gacn_arch.boundary_guided_filter(
                    to_tensor(decision[tile.read], device), to_tensor(grey_a[tile.read], device),
                    to_tensor(grey_b[tile.read], device), config,
                )
            return to_numpy(out), to_numpy(weight)

    refined, boundary = run_to_completion(run_tiles(tiles, (height, width), boundary_blend, context.cancel))
    assert refined is not None and boundary is not None
    return refined, boundary


@register
class GACNFuse(DeepFusionMethod):
    name: ClassVar[str] = "gacn"
    title: ClassVar[str] = "GACN"
    description: ClassVar[str] = (
        "Gradient-aware cascade network: per-channel spatial frequency of siamese dense features, a "
        "decision path with spatial attention and an in-network boundary guided filter (Ma, Yin et al. "
        "2022); N frames: each frame against the next, the peak of the summed evidence refined by the focus "
        "activity among neighbouring frames, composed by "
        "pyramid (the paper's decision calibration is the 'calibration' strategy, serial pair fusion 'serial')."
    )
    params: ClassVar[ParamSet] = GACN_PARAMS
    network_spec = NETWORK
    training_recipe = "focusstudio.core.training.recipes.gacn:GACNRecipe"
    rounding = "round"  # the released writer adds 0.4999… before truncating
    auto_strategy_for_many: ClassVar[str] = "neighbours"
    unused_by_strategy: ClassVar[Mapping[str, tuple[tuple[str, ...] | None, str]]] = {
        "neighbours": (None, NEIGHBOURS_USE_NO_POST)}
    map_names: ClassVar[tuple[str, ...]] = (
        "activity_diff_scale{k}", "decision_initial", "boundary", "decision", "decision_volume_{j}",
        "decision_pair_{j}", "index",
    )
    # The fixed part of the peak RSS over the fixed cost of 2 colour frames at 2400² (~215 MiB:
    # see GACN_BYTES_PER_PIXEL), 39 bytes a pixel; per frame a grey copy and a decision map
    # (8 bytes a pixel, from the code, not measured); plus margin.
    floor_bytes_per_pixel: ClassVar[float] = 45.0
    floor_bytes_per_frame_pixel: ClassVar[float] = 8.0
    #: ``analysis_scale`` "auto": the long side the network sees (benchmarks/bench_analysis_scale.py).
    analysis_long_side: ClassVar[int] = 1024
    #: ``neighbours``: each frame's feature path once, only the decision path per pass (off: the
    #: pair passes, which compute the same maps; kept for the tests that compare them).
    caches_frame_features: ClassVar[bool] = True

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
        scale: AnalysisScale | None = None,
    ) -> ProgressGen[tuple[np.ndarray, np.ndarray | None]]:
        """(M, per-scale SF differences 4×H×W when ``want_scales``) for grey frames a, b, with a
        progress event per tile (``report`` maps the local fraction to an event).

        ``reference_energy`` (untiled) / ``reference_scales`` (tiled) let calibration reuse
        the reference frame's work (computed at the analysis scale). With an active ``scale`` the
        network sees the frames shrunk and M is lifted to full resolution (the per-scale
        differences stay at the analysis resolution).
        """
        if scale is not None and scale.active:
            decision, per_scale = yield from self._pair_decision(
                inference, scale.shrink(grey_a), scale.shrink(grey_b), report, reference_energy, reference_scales,
                want_scales,
            )
            return lift_pair(decision, grey_a, grey_b), per_scale
        height, width = grey_a.shape
        # tiled: the encoder's outputs of the frames whose statistics run here are kept
        # (memory or spill), so each block runs once per tile (backends.tile_features)
        tiles, store_mode = inference.plan_tiles(height, width, GACN_BYTES_PER_PIXEL,
                                                 1 if reference_scales else 2)
        device = inference.device
        a, b = to_tensor(grey_a, device), to_tensor(grey_b, device)
        with torch.inference_mode():
            if is_whole(tiles):
                features_a = inference.features(a, None) if reference_energy is None else None
                decision, per_scale = inference.decision(features_a, inference.features(b, None, reuse=True),
                                                         reference_energy, want_scales)
                scales_map = None if per_scale is None else per_scale[0].to("cpu", torch.float32).numpy()
                return to_numpy(decision), scales_map
            store_a = None
            if reference_scales:
                scales_a = reference_scales
            else:
                scales_a, store_a = inference.stored_features(a, tiles, store_mode)
            scales_b, store_b = inference.stored_features(b, tiles, store_mode)
        numbers = {id(tile): n for n, tile in enumerate(tiles)}

        def predict(tile: Tile) -> tuple[np.ndarray, np.ndarray | None]:
            window = (slice(None), slice(None), tile.read[0], tile.read[1])
            n = numbers[id(tile)]
            with torch.inference_mode():
                features_a = inference.features(a[window], scales_a) if store_a is None else store_a.features(n)
                features_b = (inference.features(b[window], scales_b, reuse=True) if store_b is None
                              else store_b.features(n))
                decision, per_scale = inference.decision(features_a, features_b, want_scales=want_scales)
            return to_numpy(decision), None if per_scale is None else per_scale[0].float().cpu().numpy()

        try:
            out, per_scale_out = yield from run_tiles(tiles, (height, width), predict, inference.context.cancel,
                                                      report)
        finally:
            for store in (store_a, store_b):
                if store is not None:
                    store.close()
        assert out is not None
        return out, per_scale_out

    @staticmethod
    def tiles(inference: GACNInference, height: int, width: int) -> list[Tile]:
        """Tiles of the network stage (halo: the receptive radius of M)."""
        return plan_network_tiles(height, width, inference.context, GACN_BYTES_PER_PIXEL, inference.halo)

    def analyze(self, stack: Stack, params: dict[str, Any], context: RunContext) -> ProgressGen[Analysis]:
        loaded = self.load(context.weights)
        network, label = loaded.network, loaded.label
        inference = GACNInference(network, context, params["sf_radius"])
        strategy = self.resolve_strategy(params, len(stack))
        analysis = Analysis(self.name, self.analysis_params(params), weights=label, device=context.device)
        analysis.data["strategy"] = strategy
        if strategy == "serial":
            yield from self._serial(stack, params, context, inference, analysis)
        elif strategy == "neighbours":
            scale = analysis_scale_for(self, params, stack.shape)
            yield from self._neighbours(stack, context, inference, analysis, scale)
        elif strategy == "pair":
            yield context.progress.event("network", 0.0, "GACN forward")
            scale = analysis_scale_for(self, params, stack.shape)
            levels = pair_levels(stack, scale)  # decoded once for both greys
            grey_a, grey_b = pair_greys(levels) if levels else (grey_frame(stack, 0), grey_frame(stack, 1))
            decision, per_scale = yield from self._pair_decision(
                inference, grey_a, grey_b, reporter(context.progress, "GACN forward"),
                want_scales=True, scale=scale,
            )
            # levels not kept: GACN's tiled network already fills the memory budget (24 MP pair:
            # +144 MB at the peak); finish decodes the frames once more
            del levels
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
        keep = fits_map_budget((count - 1) * height * width * 4, context.memory_limit, context.device)
        reference = grey_frame(stack, 0)
        scale = analysis_scale_for(self, params, stack.shape)
        tiles = self.tiles(inference, *scale.shape)
        tile_major = len(tiles) > 1 and not scale.active  # a shrunk image is run pair by pair
        if tile_major and fits_map_budget(2 * (count - 1) * height * width * 4, context.memory_limit, context.device):
            # the maps and every frame's grey image fit: tile by tile, the reference once per tile
            analysis.data["decisions"] = yield from self._calibrate_tile_major(stack, reference, inference, tiles)
            analysis.data.pop("post_params", None)
            return
        reference_energy = None
        reference_scales = None
        with torch.inference_mode():
            ref_batch = to_tensor(scale.shrink(reference), inference.device)
            if is_whole(tiles):
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
                reporter(context.progress.sub((j - 1) / (count - 1), j / (count - 1)), f"pair 1–{j + 1} of {count}"),
                reference_energy, reference_scales, scale=scale,
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
                scales.append(inference.channel_scales(to_tensor(greys[j], inference.device), tiles))

        def predict(tile: Tile) -> tuple[np.ndarray, ...]:
            decisions = []
            with torch.inference_mode():
                window = to_tensor(reference[tile.read], inference.device)
                reference_energy = inference.energy(inference.features(window, scales[0]))
                for j in range(1, count):
                    context.cancel.raise_if_cancelled()
                    features = inference.features(to_tensor(greys[j][tile.read], inference.device), scales[j],
                                                  reuse=True)
                    decision, _ = inference.decision(None, features, reference_energy, want_scales=False)
                    decisions.append(to_numpy(decision))
            return tuple(decisions)

        decisions = yield from run_tiles(
            tiles, reference.shape, predict, context.cancel,
            tile_reporter(context.progress.sub(0.2, 1.0), len(tiles)),
        )
        return [d for d in decisions if d is not None]

    # ------------------------------------------------------------------------------ finish
    def finish(
        self, analysis: Analysis, stack: Stack, params: dict[str, Any], context: RunContext
    ) -> ProgressGen[FusionResult]:
        strategy = analysis.data["strategy"]
        post = {k: params[k] for k in _POST_NAMES}
        config = bgf_config(params)
        made_with = analysis.data["serial"].post if strategy == "serial" else analysis.data.get("post_params")
        if strategy in ("serial", "calibration") and made_with is not None and made_with != post:
            # The cached stage already used other post parameters (serial chain or streamed
            # calibration): run it again with the new ones.
            network = self.load(context.weights).network
            inference = GACNInference(network, context, params["sf_radius"])
            if strategy == "serial":
                yield from self._serial(stack, params, context, inference, analysis)
            else:
                yield from self._calibrate(stack, params, context, inference, analysis)
        if strategy == "neighbours":
            return (yield from self._finish_neighbours(analysis, stack, params, context))
        if strategy == "serial":
            serial: SerialFusion = analysis.data["serial"]
            return self.make_result(serial.image, stack, params, dict(serial.maps), analysis,
                                    notes=[f"gacn: serial fusion of {len(stack)} frames"])
        if strategy == "pair":
            grey_a, grey_b = analysis.data["grey"]
            decision = analysis.data["decision"]
            yield context.progress.event("post", 0.1, "boundary guided filter")
            lifted = analysis_scale_for(self, params, stack.shape).active
            refined, maps = self._refine(decision, grey_a, grey_b, config, params["use_bgf"], context, lifted)
            # integer levels where the files give them, converted band by band (ops.levels)
            fused = compose_pair_banded(*load_pair_sources(stack), refined)
            np.clip(fused, 0.0, 1.0, out=fused)  # in place: one full-size colour image less at the peak
            yield context.progress.event("post", 1.0, "done")
            return self.make_result(fused, stack, params, {**analysis.maps, **maps}, analysis)
        index, maps = yield from self._finish_calibration(analysis, stack, params, config, context)
        count = len(stack)
        fused = yield from compose_selection(stack, index, context, "select", 0.5, 1.0)
        return self.make_result(fused, stack, params, {**analysis.maps, **maps}, analysis,
                                notes=[f"gacn: decision calibration of {count} frames against frame 1"])

    @staticmethod
    def _refine(
        decision: np.ndarray, grey_a: np.ndarray, grey_b: np.ndarray, config: gacn_arch.BoundaryFilterConfig,
        use_bgf: bool, context: RunContext, near_changes: bool = False,
    ) -> tuple[np.ndarray, dict[str, FusionMap]]:
        if use_bgf:
            refined, boundary = apply_bgf(decision, grey_a, grey_b, config, context, near_changes)
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
            volume = CalibrationVolume(keep_volumes=fits_map_budget(count * height * width * 4, context.memory_limit,
                                                                    context.device))
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

    def _neighbours(
        self, stack: Stack, context: RunContext, inference: GACNInference, analysis: Analysis,
        scale: AnalysisScale,
    ) -> ProgressGen[None]:
        """Network stage of ``neighbours``: M of every pair (frame k, frame k + 1), folded into
        the summed evidence as it comes (at an active analysis scale each M is lifted to full
        resolution first, as in the other strategies; the kept maps are shrunk back). Each
        frame's feature path runs once (:class:`~focusstudio.core.methods.backends.gacn_fast.EncodedGrey`),
        only the decision path per pass."""
        count = len(stack)

        def prepare(frame: np.ndarray) -> EncodedGrey:
            # each frame made grey and shrunk once (it is in two pairs, both orders); the colour
            # frame is not kept
            grey = to_grey(frame)
            return EncodedGrey(grey, scale.shrink(grey))

        def predict(first: EncodedGrey, second: EncodedGrey, progress: ProgressRange) -> ProgressGen[np.ndarray]:
            # = _pair_decision(…, scale=scale) on the greys, the features of each frame computed once
            report = reporter(progress, "GACN forward")
            decision = None
            if self.caches_frame_features:
                decision = yield from inference.encoded_decision(first, second, GACN_BYTES_PER_PIXEL, report)
            if decision is None:  # not cached, or the two frames' tile plans differ: the pair path
                decision, _ = yield from self._pair_decision(inference, first.small, second.small, report)
            return lift_pair(decision, first.grey, second.grey) if scale.active else decision

        keep = count - 1 if count <= MAX_PAIR_MAPS else 0
        analysis.data["neighbours"] = yield from run_neighbour_decisions(
            stack, predict, context.progress, context.cancel, keep, prepare=prepare,  # type: ignore[arg-type]
            keep_as=scale.shrink,
        )
        yield context.progress.event("network", 1.0, "neighbour pairs done")

    def _finish_neighbours(
        self, analysis: Analysis, stack: Stack, params: dict[str, Any], context: RunContext
    ) -> ProgressGen[FusionResult]:
        neighbours: NeighbourChain = analysis.data["neighbours"]
        fused = yield from compose_selection(stack, neighbours.index, context, "pyramid")
        maps = {
            f"decision_pair_{k + 1}": FusionMap(
                f"decision_pair_{k + 1}", "decision", soft,
                f"network map M of frame {k + 1} against frame {k + 2} (P(frame {k + 1} sharper))", frame=k + 1,
            )
            for k, soft in enumerate(neighbours.soft_maps)
        }
        maps["index"] = FusionMap("index", "index", neighbours.index,
                                  "selected frame (0-based): peak of the summed neighbour-pair evidence")
        return self.make_result(np.clip(fused, 0.0, 1.0), stack, params, maps, analysis,
                                notes=[f"gacn: neighbour pairs of {len(stack)} frames"])

    def _serial(
        self, stack: Stack, params: Mapping[str, Any], context: RunContext, inference: GACNInference,
        analysis: Analysis,
    ) -> ProgressGen[None]:
        """Frames 1 and 2 with M_bgf, the result (back to grey) with frame 3, …"""
        count = len(stack)
        config = bgf_config(params)
        scale = analysis_scale_for(self, params, stack.shape)

        def step(running: np.ndarray, frame: np.ndarray, i: int, step_range: ProgressRange) -> ProgressGen[
            tuple[np.ndarray, dict[str, FusionMap]]
        ]:
            grey_a, grey_b = to_grey(running), to_grey(frame)
            decision, _ = yield from self._pair_decision(
                inference, grey_a, grey_b, reporter(step_range, f"serial step {i}/{count - 1}"), scale=scale
            )
            refined, maps = self._refine(decision, grey_a, grey_b, config, params["use_bgf"], context)
            return np.clip(compose_pair(running, frame, refined), 0.0, 1.0), maps

        post = {k: params[k] for k in _POST_NAMES}
        analysis.data["serial"] = yield from serial_fusion(stack, step, context, post)
