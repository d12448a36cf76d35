"""Plumbing shared by the pairwise deep methods (MFIF-GAN, UFA-Fuse, two-stream): the serial
N-frame strategy and the decision-map method built on it. Their networks are loaded by the one
checkpoint loader (:mod:`focusstudio.core.methods.checkpoint`, via ``DeepFusionMethod.load``).

Serial strategy for N > 2 frames (SESF-Fuse's, REFERENCE-NOTES §7.2.5): the running result is
fused with the next frame, N − 1 times. For decision-map methods the running result is composed
by hard selection from source pixels, so an index map of the source frame of every pixel is kept;
with N > 2 the final image is that selection composed by pyramid blending
(:class:`~focusstudio.core.ops.pyramid.PyramidBlend`: no brightness seams where the frame switches).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from focusstudio.core.methods._classical import compose_pyramid_steps, load_checked
from focusstudio.core.methods.base import Analysis, DeepFusionMethod, RunContext
from focusstudio.core.ops.morphology import small_region_removal
from focusstudio.core.progress import ProgressEvent, ProgressGen, ProgressRange
from focusstudio.core.types import FusionMap, FusionResult, Stack

if TYPE_CHECKING:
    from torch import nn


# --------------------------------------------------------------------------- padding
def pad_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    """Pad bottom/right by edge replication so both sides are multiples of ``multiple``."""
    height, width = image.shape[:2]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h == 0 and pad_w == 0:
        return image
    widths = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, widths, mode="edge")


# --------------------------------------------------------------------------- serial strategy
#: Runs the network on (running result, next frame) and returns its map; progress over ``range``.
PairPredictor = Callable[[np.ndarray, np.ndarray, ProgressRange], Generator[ProgressEvent, None, np.ndarray]]


@dataclass
class SerialChain:
    """What the serial decision strategy produced."""

    soft_maps: list[np.ndarray]  # per step j = 1..N−1: the network's weight of the running result
    weights: list[np.ndarray]  # per step: the weight actually used (binary or soft)
    image: np.ndarray  # the fused image (float32 [0, 1])
    index: np.ndarray | None  # frame index of every pixel when every step was a hard selection


def run_serial_decisions(
    stack: Stack,
    predict: PairPredictor,
    decide: Callable[[np.ndarray], np.ndarray],
    progress: ProgressRange,
    cancel_check: Callable[[], None],
    soft_maps: list[np.ndarray] | None = None,
) -> Generator[ProgressEvent, None, SerialChain]:
    """Fuse frames 0, 1, … serially: running = w·running + (1 − w)·frame_j, w = decide(map_j).

    With ``soft_maps`` given (a cached chain) and N = 2 no network runs. For N > 2 the maps of
    later steps depend on earlier decisions, so the network runs again from step 2 on.
    """
    count = len(stack)
    running = load_checked(stack, 0)
    index: np.ndarray | None = np.zeros(stack.shape, dtype=np.int32)
    maps: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    for step in range(1, count):
        cancel_check()
        frame = load_checked(stack, step)
        step_range = progress.sub((step - 1) / (count - 1), step / (count - 1))
        if soft_maps is not None and step == 1:
            soft = soft_maps[0]
        else:
            soft = yield from predict(running, frame, step_range)
        weight = decide(soft).astype(np.float32, copy=False)
        if index is not None and np.all((weight == 0.0) | (weight == 1.0)):
            index = np.where(weight > 0.5, index, step).astype(np.int32)
        else:
            index = None
        w = weight[..., None] if running.ndim == 3 else weight
        running = (w * running + (1.0 - w) * frame).astype(np.float32)
        maps.append(soft)
        weights.append(weight)
        yield step_range.event("fuse", 1.0, f"fused frame {step + 1} of {count}")
    return SerialChain(maps, weights, running, index)


# --------------------------------------------------------------------------- decision methods
#: Per-step soft maps are exposed up to this many frames (one H×W float32 each).
MAX_STEP_MAPS = 16


def threshold_and_clean(
    soft: np.ndarray, threshold: float, area_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """(binary soft > threshold, float32 map after small-region removal in both polarities).

    Small-region removal flips 4-connected 1-regions, then 0-regions, smaller than
    ``area_fraction``·H·W (strict <); ``area_fraction = 0`` skips it.
    """
    raw = soft > threshold
    cleaned = small_region_removal(raw, area_fraction, polarity="both", connectivity=4) if area_fraction > 0 else raw
    return raw, cleaned.astype(np.float32)


class SerialDecisionMethod(DeepFusionMethod):
    """A pairwise network predicting a soft map (weight of the first input), turned into a
    decision by post-processing and applied to the source pixels; N frames serially.

    Subclasses give the pair prediction and the post-processing. The analysis
    caches the whole serial chain together with the post-processing it was made with.
    """

    #: Name and description of the network's soft map in the explanation maps.
    soft_map_name: ClassVar[str] = "soft_map"
    soft_map_description: ClassVar[str] = "Network output: weight of frame 1"

    # -------------------------------------------------------------- to implement
    @abstractmethod
    def predict_pair(
        self, network: nn.Module, first: np.ndarray, second: np.ndarray, context: RunContext,
        progress: ProgressRange,
    ) -> Generator[ProgressEvent, None, np.ndarray]:
        """The soft map (H×W float32, weight of ``first``) of one pair of float [0, 1] frames."""

    @abstractmethod
    def post_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """The post-processing parameters the serial chain depends on."""

    @abstractmethod
    def decide(self, soft: np.ndarray, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """(binary map before clean-up, weight used for fusion) of one soft map."""

    # -------------------------------------------------------------- shared
    def _chain(
        self, stack: Stack, params: dict[str, Any], context: RunContext, cached: list[np.ndarray] | None
    ) -> Generator[ProgressEvent, None, SerialChain]:
        needs_network = cached is None or len(stack) > 2
        network = self.load(context.weights).network.to(context.device) if needs_network else None

        def predict(first: np.ndarray, second: np.ndarray, progress: ProgressRange) -> Generator[
            ProgressEvent, None, np.ndarray
        ]:
            assert network is not None
            return (yield from self.predict_pair(network, first, second, context, progress))

        return (
            yield from run_serial_decisions(
                stack, predict, lambda soft: self.decide(soft, params)[1], context.progress,
                context.cancel.raise_if_cancelled, soft_maps=cached,
            )
        )

    def analyze(self, stack: Stack, params: dict[str, Any], context: RunContext) -> ProgressGen[Analysis]:
        label = self.load(context.weights).label
        yield context.progress.event("analysis", 0.0, f"{self.title} on {context.device}")
        chain = yield from self._chain(stack, params, context, None)
        return Analysis(
            self.name, self.analysis_params(params), data={"chain": chain, "post": self.post_params(params)},
            weights=label, device=context.device,
        )

    def finish(
        self, analysis: Analysis, stack: Stack, params: dict[str, Any], context: RunContext
    ) -> ProgressGen[FusionResult]:
        chain: SerialChain = analysis.data["chain"]
        if analysis.data["post"] != self.post_params(params):
            # The cache was made with other post-processing. The first step's map stays valid;
            # for N > 2 later steps see different running results, so the network runs again.
            chain = yield from self._chain(stack, params, context, chain.soft_maps)
            analysis.data.update(chain=chain, post=self.post_params(params))
        maps = self.explanation_maps(chain, params, len(stack))
        image = chain.image
        if len(stack) > 2 and chain.index is not None:
            # Every step was a hard selection: compose the selection by pyramid blending, so a
            # switch of frame leaves no brightness seam in flat or bokeh areas (issue 15).
            image = yield from compose_pyramid_steps(stack, chain.index, context, 0.0, 1.0)
        yield context.progress.event("compose", 1.0, "done")
        return self.make_result(np.clip(image, 0.0, 1.0), stack, params, maps, analysis)

    def explanation_maps(self, chain: SerialChain, params: dict[str, Any], count: int) -> dict[str, FusionMap]:
        """Two frames: the soft map, the binary map before and the decision after clean-up.
        N frames: the soft map of every step (up to :data:`MAX_STEP_MAPS` frames) and the index map."""
        maps: dict[str, FusionMap] = {}
        name = self.soft_map_name
        if count == 2:
            soft = chain.soft_maps[0]
            raw, decision = self.decide(soft, params)
            maps[name] = FusionMap(name, "weight", soft, self.soft_map_description)
            maps["decision_raw"] = FusionMap(
                "decision_raw", "decision", raw.astype(np.float32),
                f"{name} > {params['threshold']:g} (1 = frame 1), before clean-up",
            )
            maps["decision"] = FusionMap("decision", "decision", decision, "Weight of frame 1 used for fusion")
        elif count <= MAX_STEP_MAPS:
            for step, soft in enumerate(chain.soft_maps, start=1):
                maps[f"{name}_{step}"] = FusionMap(
                    f"{name}_{step}", "weight", soft,
                    f"Step {step}: weight of the running result against frame {step + 1}", frame=step,
                )
        if chain.index is not None:
            maps["index"] = FusionMap("index", "index", chain.index, "Frame each pixel was taken from")
        return maps
