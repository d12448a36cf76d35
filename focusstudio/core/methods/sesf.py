"""SESF-Fuse (Ma et al., Neural Comput. & Applic. 2020): deep spatial frequency of an unsupervised
auto-encoder's features as the activity measure, binary decision, consistency verification and a
guided filter.

Two frames follow the authors' released code step by step (REFERENCE-NOTES §1.2), where it
differs from the paper: strict ``SF_1 > SF_2`` (the paper writes ≥), window *sums* without the
square root, skimage ``rgb2gray`` weights, the per-channel-slope colour guided filter on the
initial fused image in 0–255 scale, an unclipped guided-filter weight and truncation on output.

N frames:

* ``blend`` (default for N > 2): the per-pixel arg-max of ``nway`` and its label opening, without
  small-region removal, composed by pyramid blending (each frame's Laplacian pyramid weighted by
  the Gaussian pyramid of its selection, :class:`~focusstudio.core.ops.pyramid.PyramidBlend`): on
  real stacks ``nway``'s small-region removal hands whole small sharp regions to a defocused frame
  and its hard selection shows brightness seams; ``blend`` has neither (issue 15's measurements).
  Its arg-max is of deep SF × the frame's classical focus activity^``classical_power`` (1;
  :func:`classical_score`): on bright-field microscopy the deep SF alone chose defocused planes
  whose cells carry a broad bright halo (algae at 1024 px: recall 0.862, 7.2 % of the blocks
  lost, rods doubled and colonies ringed in the crops; with the product 0.968, 1.2 %, crisp),
  and on nframe_synth it gains against the ground truth too (benchmarks/README.md, session 9).
  ``classical_power`` 0 gives the deep SF's own arg-max (``nway``'s).
* ``nway``: per-pixel arg-max of the deep SF over all frames (ties → the
  lowest index), then the consistency verification generalised to labels — every label's region
  is opened with the disk and the pixels it loses go to the label holding most of their disk
  neighbourhood (for two labels this acts like the pair's opening + closing) — and small regions
  of any label are merged into their surroundings; finally each frame's one-hot weight is guided
  filtered (the filtered weights still sum to 1: the guided filter is linear and maps 1 to 1).
* ``serial``: the paper's suggestion — fuse the running result with the next frame, N − 1 times,
  recomputing the grey image from the fused colour result.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import cv2
import numpy as np

from focusstudio.core.lazy import lazy_import
from focusstudio.core.methods._classical import compose_weighted_steps
from focusstudio.core.methods.analysis_scale import (
    AnalysisScale,
    analysis_scale_for,
    lift_index,
    lift_pair,
    pair_greys,
    pair_levels,
)
from focusstudio.core.methods.backends.fast_cpu import FastEncoder, encoder_channel_scales
from focusstudio.core.methods.backends.tile_features import (
    TileFeatureStore,
    plan_stored_tiles,
    staged_channel_scales_steps,
)
from focusstudio.core.methods.base import Analysis, DeepFusionMethod, RunContext
from focusstudio.core.methods.deep_common import deep_sf_sum, grey_frame, sesf_halo, torch_device
from focusstudio.core.methods.engine import is_whole, reporter, run_tiles
from focusstudio.core.methods.registry import NetworkSpec, register
from focusstudio.core.methods.strategies import (
    RunningArgmax,
    SerialFusion,
    compose_selection,
    serial_fusion,
)
from focusstudio.core.methods.tensors import to_numpy, to_tensor
from focusstudio.core.ops import params as ops_params
from focusstudio.core.ops.compose import compose_pair
from focusstudio.core.ops.consistency import label_opening_majority, verify_binary, verify_labels
from focusstudio.core.ops.levels import compose_pair_banded, load_pair_sources, unit_band
from focusstudio.core.ops.sparse_guided import guided_filter_near_changes
from focusstudio.core.params import ParamSet, ParamSpec
from focusstudio.core.progress import ProgressEvent, ProgressGen, ProgressRange, run_to_completion
from focusstudio.core.tiling import BoundedGuidedFilter, Tile, fits_map_budget, operation_budget
from focusstudio.core.types import FusionMap, FusionResult, Stack, to_grey

# torch and the architecture load on first use (see focusstudio.core.lazy).
torch = lazy_import("torch")
sesf_arch = lazy_import("focusstudio.core.methods.archs.sesf_arch")

#: Peak working memory of the encoder + deep SF per pixel of a tile (bytes, float32): the 64
#: features, the dense concatenations and the gradient energies. Measured: 0.65 KB
#: (``python -m benchmarks.bench_deep_methods --bytes-per-pixel 1000``); the rest is margin.
SESF_BYTES_PER_PIXEL = 1024

STRATEGIES = ("auto", "blend", "nway", "serial")

SESF_PARAMS = ParamSet(
    (
        ParamSpec("strategy", "choice", "auto",
                  "N-frame strategy: auto = the authors' pair pipeline for 2 frames, blend for more; "
                  "blend = arg-max of the deep SF (times the classical focus activity, classical_power) over all "
                  "frames, label opening, and each frame's "
                  "Laplacian pyramid weighted by the Gaussian pyramid of its selection (best measured on "
                  "real stacks: no blurred patches, no seams); nway = the same arg-max with the pair "
                  "pipeline's clean-up (opening, small-region removal, guided filter); serial = the "
                  "paper's suggestion, fuse the running result with the next frame",
                  choices=STRATEGIES, stage="analysis"),
        ops_params.SF_RADIUS.with_default(5, note="(The weights were trained with 5.)"),
        ops_params.USE_MORPHOLOGY,
        ops_params.MORPHOLOGY_RADIUS.with_default(5),
        ops_params.USE_SRR.with_default(True, note="(Not with the blend strategy.)"),
        ops_params.AREA_FRACTION.with_default(0.01),
        ops_params.USE_GUIDED_FILTER.with_default(True, note="(Not with the blend strategy.)"),
        ops_params.GF_RADIUS.with_default(4),
        ops_params.GF_EPS.with_default(0.1, note="On a guide in grey levels 0–255 (the released code's scale)."),
        ParamSpec("clamp_weight", "bool", False,
                  "clip the guided-filter weight to [0, 1] (the released code does not)"),
        ops_params.ANALYSIS_SCALE,
        ParamSpec("classical_power", "float", 1.0,
                  "blend strategy: the deep SF of each frame is multiplied by its classical focus "
                  "activity (squared Laplacian, σ = 4 px window) to this power before the arg-max; "
                  "0 = the deep SF alone", minimum=0.0, maximum=4.0, stage="analysis",
                  title="Classical activity weight"),
    )
)

_POST_NAMES = tuple(s.name for s in SESF_PARAMS if s.stage == "post")


def build_network(arch: Mapping[str, Any]) -> sesf_arch.SESFNet:
    return sesf_arch.SESFNet(reduction=int(arch.get("reduction", 8)))


def convert_official(state: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The authors' released ``.pkl`` with our key names (None when ``state`` is not theirs)."""
    from focusstudio.core.methods.archs import translate_official_keys

    return translate_official_keys("sesf", state, sesf_arch.OFFICIAL_KEY_RULES, sesf_arch.OFFICIAL_MARKER)


#: SESF's decoder is only needed for training: an encoder-only export is fine for fusion.
NETWORK = NetworkSpec(build_network, convert_official=convert_official, optional_prefixes=("decoder.",))


def normalize_grey(grey: np.ndarray) -> np.ndarray:
    """[0, 1] grey → the SESF network's input scale (float32, as torchvision's Normalize)."""
    mean, std = np.float32(sesf_arch.SESF_MEAN), np.float32(sesf_arch.SESF_STD)
    return ((grey.astype(np.float32) - mean) / std).astype(np.float32)


class SESFActivity:
    """Deep SF maps of single grey frames with one network (tiled when the image is large)."""

    def __init__(self, network: sesf_arch.SESFNet, context: RunContext, sf_radius: int) -> None:
        self.device = torch_device(context)
        if self.device.type != "cpu":
            network = copy.deepcopy(network).to(self.device)
        self.encoder = FastEncoder(network.encoder)
        self.sf_radius = sf_radius
        self.context = context

    def __call__(self, grey: np.ndarray) -> np.ndarray:
        """The deep SF map of one grey [0, 1] frame (H×W float32)."""
        return run_to_completion(self.run(grey, lambda fraction: ProgressEvent("network", fraction)))

    def run(self, grey: np.ndarray, report: Callable[[float], ProgressEvent]) -> ProgressGen[np.ndarray]:
        """:meth:`__call__` as a generator with a progress event per tile (``report`` maps the
        local fraction to an event)."""
        height, width = grey.shape
        halo = sesf_halo(self.encoder.radius, self.sf_radius)
        # tiled: every tile's block outputs are kept (memory or spill) between the passes of
        # the exact channel statistics, so each block runs once per tile (backends.tile_features)
        tiles, store_mode = plan_stored_tiles(height, width, self.context, SESF_BYTES_PER_PIXEL, halo,
                                              self.encoder.out_channels)
        image = to_tensor(normalize_grey(grey), self.device)
        if is_whole(tiles):
            with torch.inference_mode():
                return to_numpy(deep_sf_sum(self.encoder(image, reuse=True), self.sf_radius))
        if store_mode == "recompute":
            with torch.inference_mode():
                scales = encoder_channel_scales(self.encoder, image, tiles, self.context.cancel)

            def deep_sf(tile: Tile) -> np.ndarray:
                with torch.inference_mode():
                    window = image[:, :, tile.read[0], tile.read[1]]
                    return to_numpy(deep_sf_sum(self.encoder(window, scales, reuse=True), self.sf_radius))

            (out,) = yield from run_tiles(tiles, (height, width), deep_sf, self.context.cancel, report)
            assert out is not None
            return out
        numbers = {id(tile): n for n, tile in enumerate(tiles)}
        statistics = 0.85  # share of the work: the encoder's blocks; then the SF from kept features
        with TileFeatureStore(self.encoder, store_mode, self.device) as store:
            yield from staged_channel_scales_steps(self.encoder, image, tiles, store, self.context.cancel,
                                                   lambda fraction: report(statistics * fraction))

            def stored_sf(tile: Tile) -> np.ndarray:
                with torch.inference_mode():
                    features = store.features(numbers[id(tile)])
                    assert isinstance(features, torch.Tensor)
                    return to_numpy(deep_sf_sum(features, self.sf_radius))

            (out,) = yield from run_tiles(tiles, (height, width), stored_sf, self.context.cancel,
                                          lambda fraction: report(statistics + (1.0 - statistics) * fraction))
        assert out is not None
        return out


# ---------------------------------------------------------------------------------------- post
def guide_of(image: np.ndarray) -> np.ndarray:
    """The guided filter's guide: the initial fused image in the released code's 0–255 scale
    (float32: the filter runs in single precision on the CPU and converts for other devices)."""
    return image.astype(np.float32) * np.float32(255.0)


def weight_filter(guide: np.ndarray, params: Mapping[str, Any], context: RunContext) -> BoundedGuidedFilter:
    """The guided filter of 0/1 weights with ``guide`` (colour guide → the released
    per-channel-slope variant), single precision on the CPU, in tiles when it exceeds the budget."""
    return BoundedGuidedFilter(
        guide, params["gf_radius"], params["gf_eps"],
        operation_budget(guide.shape[:2], context.memory_limit, context.device), context.tile_size,
        dtype=np.float32, precision=np.float32, device=context.device, cancel=context.cancel,
    )


def classical_score(deep_sf: np.ndarray, grey: np.ndarray, power: float, scale: AnalysisScale) -> np.ndarray:
    """``blend``'s per-frame score: the deep SF times the frame's classical focus activity to
    ``power`` (:func:`~focusstudio.core.methods.strategies.focus_activity`'s measure). Why: on
    bright-field microscopy the deep SF of a defocused plane whose small cells carry a broad
    bright halo exceeds that of the in-focus, dark-edged cells (algae: frame 2's ringed rods and
    colonies chosen over frame 3), while the Laplacian energy at the focus peak is higher. The
    squared Laplacian is taken on the full-resolution ``grey`` and area-averaged to the analysis
    scale before its σ = :data:`CLASSICAL_WINDOW` px window: at the analysis scale it sees coarser
    detail and took a past-focus plane's thick rims on diatoms (algae at 2048 px, recall 0.978 →
    0.945; this way 0.982). Two full-size float32 temporaries a frame (8 bytes a pixel). A
    product keeps the arg-max streaming; the activity's scale does not change it."""
    smoothed = cv2.GaussianBlur(grey.astype(np.float32, copy=False), (0, 0), 1.0, borderType=cv2.BORDER_REFLECT)
    energy = cv2.Laplacian(smoothed, cv2.CV_32F, borderType=cv2.BORDER_REFLECT)
    del smoothed
    np.multiply(energy, energy, out=energy)
    activity = cv2.GaussianBlur(scale.shrink(energy), (0, 0), CLASSICAL_WINDOW, borderType=cv2.BORDER_REFLECT)
    del energy
    np.maximum(activity, 0.0, out=activity)  # area averaging and blurring keep it ≥ 0 up to rounding
    np.power(activity, np.float32(power), out=activity)
    return np.asarray(deep_sf, dtype=np.float32) * activity


#: σ (px of the analysis image) of the window of :func:`classical_score`'s focus activity.
CLASSICAL_WINDOW = 4.0


@register
class SESFFuse(DeepFusionMethod):
    name: ClassVar[str] = "sesf"
    title: ClassVar[str] = "SESF-Fuse"
    description: ClassVar[str] = (
        "Unsupervised auto-encoder features with squeeze-excitation; deep spatial frequency picks the "
        "sharper source; morphology, small-region removal and a guided filter clean the decision "
        "(Ma et al. 2020)."
    )
    params: ClassVar[ParamSet] = SESF_PARAMS
    network_spec = NETWORK
    training_recipe = "focusstudio.core.training.recipes.sesf:SESFRecipe"
    rounding = "truncate"  # the released code clips and casts to uint8
    auto_strategy_for_many: ClassVar[str] = "blend"
    unused_by_strategy: ClassVar[Mapping[str, tuple[tuple[str, ...] | None, str]]] = {"blend": (
        ("use_srr", "area_fraction", "use_guided_filter", "gf_radius", "gf_eps", "clamp_weight"),
        "not used by the 'blend' strategy on 3 or more frames: the label-opened selection is composed by "
        "pyramid blending (choose 'nway' to use it)"),
        "nway": (("classical_power",), "only the 'blend' strategy weighs the deep SF by the classical activity"),
        "serial": (("classical_power",), "only the 'blend' strategy weighs the deep SF by the classical activity")}
    map_names: ClassVar[tuple[str, ...]] = (
        "activity_{i}", "decision_raw", "decision_post", "weight", "index_raw", "index",
    )
    # Peak RSS minus the fixed cost, less one minimum tile budget, of 2 colour frames at 2400²
    # with --memory-limit 256M: 134 bytes a pixel; per frame a grey copy and an activity map
    # (8 bytes a pixel, from the code, not measured); plus 10 %.
    floor_bytes_per_pixel: ClassVar[float] = 130.0
    floor_bytes_per_frame_pixel: ClassVar[float] = 8.0
    #: ``analysis_scale`` "auto": the long side the network sees (benchmarks/bench_analysis_scale.py).
    analysis_long_side: ClassVar[int] = 1024

    # ------------------------------------------------------------------------------ analyze
    def analyze(self, stack: Stack, params: dict[str, Any], context: RunContext) -> ProgressGen[Analysis]:
        loaded = self.load(context.weights)
        network, label = loaded.network, loaded.label
        activity = SESFActivity(network, context, params["sf_radius"])
        strategy = self.resolve_strategy(params, len(stack))
        analysis = Analysis(self.name, self.analysis_params(params), weights=label, device=context.device)
        analysis.data["strategy"] = strategy
        scale = analysis_scale_for(self, params, stack.shape)
        if strategy == "serial":
            yield from self._serial(stack, params, context, activity, analysis, scale)
            return analysis
        count = len(stack)
        height, width = scale.shape
        keep_maps = strategy == "pair" or fits_map_budget(4 * count * height * width, context.memory_limit,
                                                          context.device)
        argmax = RunningArgmax((height, width))
        activities: list[np.ndarray] = []
        greys: list[np.ndarray] = []  # a pair's full-resolution greys, kept for the lift (no second decode)
        # a lifted pair's frames decoded once, kept as levels for the guide and the composition
        levels = pair_levels(stack, scale) if strategy == "pair" else None
        pair_grey = pair_greys(levels) if levels else None
        for i in range(count):
            context.cancel.raise_if_cancelled()
            yield context.progress.event("network", i / count, f"deep SF, frame {i + 1}/{count}")
            frame_range = context.progress.sub(i / count, (i + 1) / count)
            grey = pair_grey[i] if pair_grey else grey_frame(stack, i)
            if strategy == "pair" and scale.active:
                greys.append(grey)
            sf = yield from activity.run(scale.shrink(grey), reporter(frame_range, "deep SF"))
            if keep_maps:
                activities.append(sf)
                analysis.maps[f"activity_{i}"] = FusionMap(
                    f"activity_{i}", "activity", sf, f"deep spatial frequency of frame {i + 1}", frame=i
                )
            if strategy == "blend" and params["classical_power"] > 0:
                argmax.add(i, classical_score(sf, grey, params["classical_power"], scale))
            elif strategy in ("nway", "blend"):
                argmax.add(i, sf)  # strict: ties keep the lower index
            del grey
        if strategy == "pair":
            analysis.data["activity"] = activities
            if scale.active:  # the decision at full resolution, once (post changes reuse it)
                analysis.data["decision_raw"] = lift_pair(activities[0] > activities[1], *greys)
                del greys, pair_grey
                analysis.data["levels"] = levels
        else:
            index = argmax.index
            analysis.data["index_raw"] = lift_index(index, stack, context.cancel) if scale.active else index
            if not keep_maps:
                context.notes.append("sesf: per-frame activity maps not kept (memory budget)")
        yield context.progress.event("network", 1.0, "deep spatial frequency done")
        return analysis

    # ------------------------------------------------------------------------------ finish
    def finish(
        self, analysis: Analysis, stack: Stack, params: dict[str, Any], context: RunContext
    ) -> ProgressGen[FusionResult]:
        strategy = analysis.data["strategy"]
        if strategy == "serial":
            if analysis.data["serial"].post != {k: params[k] for k in _POST_NAMES}:
                # The serial chain feeds each fused result into the next network pass, so new
                # post-processing parameters mean running the chain again.
                network = self.load(context.weights).network
                activity = SESFActivity(network, context, params["sf_radius"])
                yield from self._serial(stack, params, context, activity, analysis,
                                        analysis_scale_for(self, params, stack.shape))
            serial: SerialFusion = analysis.data["serial"]
            return self.make_result(serial.image, stack, params, dict(serial.maps), analysis,
                                    notes=[f"sesf: serial fusion of {len(stack)} frames"])
        if strategy == "pair":
            # integer levels where the files give them, converted band by band (ops.levels)
            first, second = analysis.data.get("levels") or load_pair_sources(stack)
            activity = analysis.data["activity"]
            raw = analysis.data.get("decision_raw")
            yield context.progress.event("post", 0.1, "decision and consistency verification")
            if raw is None:  # scale 1: the activities' own decision (the frames are not read)
                raw = activity[0] > activity[1]
            image, maps = self._fuse_pair(first, second, activity[0], activity[1], params, context, raw,
                                          near_changes="decision_raw" in analysis.data)
            maps = {**analysis.maps, **maps}
            yield context.progress.event("post", 1.0, "done")
            return self.make_result(image, stack, params, maps, analysis)
        image, maps = yield from self._finish_nway(analysis, stack, params, context)
        return self.make_result(image, stack, params, {**analysis.maps, **maps}, analysis)

    def _fuse_pair(
        self,
        first: np.ndarray,
        second: np.ndarray,
        sf_first: np.ndarray,
        sf_second: np.ndarray,
        params: Mapping[str, Any],
        context: RunContext,
        raw: np.ndarray | None = None,
        near_changes: bool = False,
    ) -> tuple[np.ndarray, dict[str, FusionMap]]:
        """The released two-image pipeline on cached activities → (fused [0,1], maps). Activities
        at an analysis scale below 1: their decision is lifted to full resolution first (``raw``:
        that lift, already made). ``first``/``second``: float frames or integer levels
        (:func:`~focusstudio.core.ops.levels.unit_band`). ``near_changes`` (a lifted decision,
        CPU): the guided filter runs only on tiles where the decision changes, its guide made
        per tile (:mod:`focusstudio.core.ops.sparse_guided`): the same filter, the constant parts
        exactly 0/1 instead of within float rounding of them."""
        if raw is None:
            raw = lift_pair(sf_first > sf_second, first, second)  # strict, as released (ties → the second)
        post = verify_binary(raw, params)
        decision = post.astype(np.float32)
        if params["use_guided_filter"]:
            if near_changes and context.device == "cpu":

                def guide_window(read: tuple[slice, slice]) -> np.ndarray:
                    guide = compose_pair(unit_band(first, read), unit_band(second, read), decision[read])
                    guide *= np.float32(255.0)  # guide_of's values
                    return guide

                weight = guided_filter_near_changes(decision, guide_window, params["gf_radius"], params["gf_eps"],
                                                    cancel=context.cancel)
            else:
                guide = compose_pair_banded(first, second, decision)
                guide *= np.float32(255.0)  # guide_of in place: the same values, one full-size image less
                weight = weight_filter(guide, params, context)(decision)
                del guide  # before the composition: at 24 MP each colour image is 288 MB
            if params["clamp_weight"]:
                weight = np.clip(weight, 0.0, 1.0)
        else:
            weight = decision
        fused = compose_pair_banded(first, second, weight)
        np.clip(fused, 0.0, 1.0, out=fused)
        maps = {
            "decision_raw": FusionMap("decision_raw", "decision", raw.astype(np.float32),
                                      "SF(frame 1) > SF(frame 2): 1 = take frame 1"),
            "decision_post": FusionMap("decision_post", "decision", decision,
                                       "after opening, small-region removal, closing"),
            "weight": FusionMap("weight", "weight", weight.astype(np.float32),
                                "guided-filter weight of frame 1 (unclipped; values outside [0,1] possible)"),
        }
        return fused, maps

    def _finish_nway(
        self, analysis: Analysis, stack: Stack, params: dict[str, Any], context: RunContext
    ) -> ProgressGen[tuple[np.ndarray, dict[str, FusionMap]]]:
        raw = analysis.data["index_raw"]
        yield context.progress.event("post", 0.05, "consistency verification of the index map")
        blend = analysis.data["strategy"] == "blend"
        # blend: no small-region removal (pyramid blending hides small regions' seams, and it
        # flipped correct small sharp regions to defocused frames on real stacks).
        index = verify_labels(raw, {**params, "use_srr": params["use_srr"] and not blend}, label_opening_majority)
        maps = {
            "index_raw": FusionMap("index_raw", "index", raw, "frame with the highest deep SF (0-based)"),
            "index": FusionMap("index", "index", index, "after label opening and small-region removal"),
        }
        if blend:
            fused = yield from compose_selection(stack, index, context, "pyramid", 0.1, 1.0, stage="post")
            return fused, maps
        initial = yield from compose_selection(stack, index, context, "select", 0.1, 0.4)
        if not params["use_guided_filter"]:
            return initial, maps
        guided = weight_filter(guide_of(initial), params, context)  # the guide's statistics once
        present = [int(v) for v in np.unique(index)]

        def weight_of(position: int) -> np.ndarray:
            weight = guided((index == present[position]).astype(np.float32))
            return np.clip(weight, 0.0, 1.0) if params["clamp_weight"] else weight

        fused = yield from compose_weighted_steps(stack.subset(present), weight_of, context, 0.4, 1.0, stage="post")
        return np.clip(fused, 0.0, 1.0), maps

    def _serial(
        self,
        stack: Stack,
        params: Mapping[str, Any],
        context: RunContext,
        activity: SESFActivity,
        analysis: Analysis,
        scale: AnalysisScale,
    ) -> ProgressGen[None]:
        """Fuse frame 1 with 2, the result with 3, …; stores the result in ``analysis.data``."""
        count = len(stack)
        running_sf: list[np.ndarray] = []  # the running result's deep SF, once computed

        def step(running: np.ndarray, frame: np.ndarray, i: int, step_range: ProgressRange) -> ProgressGen[
            tuple[np.ndarray, dict[str, FusionMap]]
        ]:
            report = reporter(step_range, "deep SF")
            if not running_sf:
                running_sf.append((yield from activity.run(scale.shrink(to_grey(running)), report)))
            frame_sf = yield from activity.run(scale.shrink(to_grey(frame)), report)
            fused, maps = self._fuse_pair(running, frame, running_sf[0], frame_sf, params, context)
            if i < count - 1:
                # the grey image is recomputed from the fused colour result
                running_sf[0] = yield from activity.run(scale.shrink(to_grey(fused)), report)
            return fused, maps

        post = {k: params[k] for k in _POST_NAMES}
        analysis.data["serial"] = yield from serial_fusion(stack, step, context, post)
