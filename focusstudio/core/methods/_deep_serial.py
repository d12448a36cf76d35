"""Plumbing shared by the pairwise deep methods (MFIF-GAN, UFA-Fuse, two-stream): the decision-map
method built on the serial N-frame strategy. Their networks are loaded by the one checkpoint loader
(:mod:`focusstudio.core.methods.checkpoint`, via ``DeepFusionMethod.load``).

N > 2 frames, the ``strategy`` parameter (:data:`STRATEGY`), both from
:mod:`focusstudio.core.methods.strategies`:

* ``neighbours`` (default): the network compares each frame with the next, raw frames only and
  in both orders (:func:`~focusstudio.core.methods.strategies.run_neighbour_decisions`: the
  networks' preference for one input position would add up over the stack); each pixel takes the
  frame where the summed evidence peaks, refined by the classical focus activity among its
  neighbouring frames and next to changes of frame
  (:mod:`~focusstudio.core.methods.neighbour_refine`), composed by pyramid blending. The post-processing
  parameters (threshold, small-region removal) belong to the pair decision and are not used.
  A method whose network has a per-frame part (``caches_frame_features``: MFIF-GAN's encoder)
  computes it once per frame and runs only the joint part per pass.
* ``serial``: the running result is fused with the next frame
  (:func:`~focusstudio.core.methods.strategies.run_serial_decisions`), each step decided by the
  post-processing; when every step was a hard selection the selection is composed by pyramid
  blending. Later network inputs are composites of earlier decisions, so an early wrong step is
  carried on (measured on real stacks: a region lost at one step never comes back).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from focusstudio.core.methods._deep_pair import levels_pair_chain
from focusstudio.core.methods.analysis_scale import AnalysisScale, analysis_scale_for, lift_pair
from focusstudio.core.methods.base import Analysis, DeepFusionMethod, RunContext
from focusstudio.core.methods.strategies import (
    NeighbourChain,
    PairPredictor,
    SerialChain,
    compose_selection,
    run_neighbour_decisions,
    run_serial_decisions,
)
from focusstudio.core.ops.morphology import small_region_removal
from focusstudio.core.params import ParamSpec
from focusstudio.core.progress import ProgressEvent, ProgressGen, ProgressRange
from focusstudio.core.types import FusionMap, FusionResult, Stack, to_grey

if TYPE_CHECKING:
    from torch import nn

# --------------------------------------------------------------------------- decision methods
#: Per-step soft maps are exposed up to this many frames (one H×W float32 each).
MAX_STEP_MAPS = 16

STRATEGIES = ("auto", "neighbours", "serial")

#: The N-frame strategy parameter of every serial decision method (its ParamSet includes it).
STRATEGY = ParamSpec(
    "strategy", "choice", "auto",
    "N-frame strategy: auto = the pair decision for 2 frames, neighbours for more; neighbours = the "
    "network compares each frame with the next (raw frames, both orders), each pixel takes the frame where the "
    "summed evidence peaks, refined by the classical focus activity among its neighbouring frames and at "
    "changes of frame, composed by pyramid blending (best measured on real and synthetic "
    "stacks; threshold and small-region removal are not used); serial = fuse the running result "
    "with the next frame, each step decided by the post-processing (an early wrong step is carried on)",
    choices=STRATEGIES, stage="analysis",
)


#: Why the ``neighbours`` strategy leaves the post-processing parameters unused (shown to the user).
NEIGHBOURS_USE_NO_POST = (
    "not used by the 'neighbours' strategy on 3 or more frames: each pixel takes the frame where the "
    "summed neighbour-pair evidence peaks (choose the 'serial' strategy to use it)"
)


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


class EncodedFrame:
    """A frame as the cached ``neighbours`` predictor holds it: the image the network sees, the
    full-resolution grey its maps are lifted along (None at full scale), and the network's
    per-frame part of it, computed at the first pass that needs it."""

    __slots__ = ("encoded", "features", "grey", "image")

    def __init__(self, image: np.ndarray, grey: np.ndarray | None) -> None:
        self.image = image
        self.grey = grey
        self.features: Any | None = None
        self.encoded = False


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

    #: True where :meth:`encode_frame` / :meth:`predict_encoded` split the pair network into a
    #: per-frame part and a joint part (the ``neighbours`` strategy then encodes each frame once).
    caches_frame_features: ClassVar[bool] = False

    def encode_frame(self, network: nn.Module, frame: np.ndarray, context: RunContext) -> Any | None:
        """The network's per-frame part of a pair prediction on one frame (as ``predict_pair``
        sees it), or None where this frame's passes cannot reuse it (then each pass runs
        ``predict_pair``). Only called where :attr:`caches_frame_features`."""
        return None

    def predict_encoded(
        self, network: nn.Module, first: Any, second: Any, shape: tuple[int, int], context: RunContext
    ) -> np.ndarray:
        """``predict_pair``'s soft map (``shape``) from the two frames' :meth:`encode_frame` results."""
        raise NotImplementedError

    # -------------------------------------------------------------- shared
    auto_strategy_for_many: ClassVar[str] = "neighbours"
    unused_by_strategy: ClassVar[Mapping[str, tuple[tuple[str, ...] | None, str]]] = {
        "neighbours": (None, NEIGHBOURS_USE_NO_POST)}

    def _predictor(self, network: Any, params: dict[str, Any], stack: Stack, context: RunContext) -> PairPredictor:
        """The pair prediction every strategy runs: at an active analysis scale the network sees
        the frames shrunk and its map is lifted along the full-resolution frames."""
        scale = analysis_scale_for(self, params, stack.shape)

        def predict(first: np.ndarray, second: np.ndarray, progress: ProgressRange) -> Generator[
            ProgressEvent, None, np.ndarray
        ]:
            assert network is not None
            if not scale.active:
                return (yield from self.predict_pair(network, first, second, context, progress))
            soft = yield from self.predict_pair(network, scale.shrink(first), scale.shrink(second), context, progress)
            return lift_pair(soft, first, second)

        return predict

    def _levels_pair(
        self, network: Any, params: dict[str, Any], stack: Stack, context: RunContext, cached: list[np.ndarray] | None
    ) -> Generator[ProgressEvent, None, SerialChain | None]:
        """Two frames at an analysis scale below 1, decoded once to integer levels
        (:func:`~focusstudio.core.methods._deep_pair.levels_pair_chain`: the serial strategy's
        numbers without the full-size float32 frames); None where that does not apply."""

        def predict_small(first: np.ndarray, second: np.ndarray, progress: ProgressRange) -> Generator[
            ProgressEvent, None, np.ndarray
        ]:
            assert network is not None
            return (yield from self.predict_pair(network, first, second, context, progress))

        found = yield from levels_pair_chain(
            stack, analysis_scale_for(self, params, stack.shape), predict_small,
            lambda soft: self.decide(soft, params)[1], context.progress.sub(0.0, 1.0),
            None if cached is None else cached[0],
        )
        if found is None:
            return None
        soft, weight, fused, index = found
        return SerialChain([soft], [weight], fused, index)

    def _neighbours(
        self, stack: Stack, params: dict[str, Any], context: RunContext
    ) -> Generator[ProgressEvent, None, NeighbourChain]:
        network = self.load(context.weights).network.to(context.device)
        keep = len(stack) - 1 if len(stack) <= MAX_STEP_MAPS else 0
        scale = analysis_scale_for(self, params, stack.shape)
        if self.caches_frame_features:
            return (yield from self._neighbours_encoded(network, stack, scale, context, keep))
        if not scale.active:
            predict = self._predictor(network, params, stack, context)
            return (yield from run_neighbour_decisions(stack, predict, context.progress, context.cancel, keep))

        def prepare(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            # each frame shrunk and made grey once (it is in two pairs, both orders); the colour
            # frame is not kept: lift_pair guides by the grey frames alone
            return scale.shrink(frame), to_grey(frame)

        def predict_prepared(first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray],
                             progress: ProgressRange) -> Generator[ProgressEvent, None, np.ndarray]:
            soft = yield from self.predict_pair(network, first[0], second[0], context, progress)
            return lift_pair(soft, first[1], second[1])

        return (yield from run_neighbour_decisions(stack, predict_prepared, context.progress,  # type: ignore[arg-type]
                                                   context.cancel, keep, prepare=prepare, keep_as=scale.shrink))

    def _neighbours_encoded(
        self, network: nn.Module, stack: Stack, scale: AnalysisScale, context: RunContext, keep: int
    ) -> Generator[ProgressEvent, None, NeighbourChain]:
        """``neighbours`` with each frame's per-frame network part computed once
        (:class:`EncodedFrame`): a frame is in up to four passes (its pairs with both neighbours,
        both orders), and only the joint part runs per pass. The strategy holds two prepared
        frames at a time, so two frames' features are held: memory does not depend on N."""

        def prepare(frame: np.ndarray) -> EncodedFrame:
            # as _neighbours: shrunk and made grey once, the colour frame not kept
            return EncodedFrame(scale.shrink(frame), to_grey(frame)) if scale.active else EncodedFrame(frame, None)

        def predict(first: EncodedFrame, second: EncodedFrame, progress: ProgressRange) -> Generator[
            ProgressEvent, None, np.ndarray
        ]:
            for frame in (first, second):
                if not frame.encoded:
                    yield progress.event("network", 0.0, "frame features")
                    frame.features, frame.encoded = self.encode_frame(network, frame.image, context), True
            if first.features is None or second.features is None:  # e.g. tiled: the pair path
                soft = yield from self.predict_pair(network, first.image, second.image, context, progress)
            else:
                context.cancel.raise_if_cancelled()
                soft = self.predict_encoded(network, first.features, second.features, first.image.shape[:2], context)
                yield progress.event("network", 1.0, "decision map")
            return soft if first.grey is None or second.grey is None else lift_pair(soft, first.grey, second.grey)

        return (yield from run_neighbour_decisions(stack, predict, context.progress,  # type: ignore[arg-type]
                                                   context.cancel, keep, prepare=prepare,
                                                   keep_as=scale.shrink if scale.active else None))

    def _chain(
        self, stack: Stack, params: dict[str, Any], context: RunContext, cached: list[np.ndarray] | None
    ) -> Generator[ProgressEvent, None, SerialChain]:
        needs_network = cached is None or len(stack) > 2
        network = self.load(context.weights).network.to(context.device) if needs_network else None
        pair = yield from self._levels_pair(network, params, stack, context, cached)
        if pair is not None:
            return pair
        predict = self._predictor(network, params, stack, context)
        return (
            yield from run_serial_decisions(
                stack, predict, lambda soft: self.decide(soft, params)[1], context.progress, context.cancel,
                soft_maps=cached,
            )
        )

    def analyze(self, stack: Stack, params: dict[str, Any], context: RunContext) -> ProgressGen[Analysis]:
        label = self.load(context.weights).label
        yield context.progress.event("analysis", 0.0, f"{self.title} on {context.device}")
        if len(stack) > 2 and self.resolve_strategy(params, len(stack)) == "neighbours":
            neighbours = yield from self._neighbours(stack, params, context)
            return Analysis(self.name, self.analysis_params(params), data={"neighbours": neighbours},
                            weights=label, device=context.device)
        chain = yield from self._chain(stack, params, context, None)
        return Analysis(
            self.name, self.analysis_params(params), data={"chain": chain, "post": self.post_params(params)},
            weights=label, device=context.device,
        )

    def finish(
        self, analysis: Analysis, stack: Stack, params: dict[str, Any], context: RunContext
    ) -> ProgressGen[FusionResult]:
        if "neighbours" in analysis.data:
            return (yield from self._finish_neighbours(analysis, stack, params, context))
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
            image = yield from compose_selection(stack, chain.index, context, "pyramid")
        yield context.progress.event("compose", 1.0, "done")
        # in place (idempotent on the cached chain image): a copy was a third full-size colour
        # image at the peak of a 24 MP pair (issue 20), as GACN's serial result, the result shares it
        np.clip(image, 0.0, 1.0, out=image)
        return self.make_result(image, stack, params, maps, analysis)

    def _finish_neighbours(
        self, analysis: Analysis, stack: Stack, params: dict[str, Any], context: RunContext
    ) -> ProgressGen[FusionResult]:
        neighbours: NeighbourChain = analysis.data["neighbours"]
        image = yield from compose_selection(stack, neighbours.index, context, "pyramid")
        yield context.progress.event("compose", 1.0, "done")
        name = self.soft_map_name
        maps = {
            f"{name}_{k + 1}": FusionMap(
                f"{name}_{k + 1}", "weight", soft, f"Pair {k + 1}: weight of frame {k + 1} against frame {k + 2}",
                frame=k + 1,
            )
            for k, soft in enumerate(neighbours.soft_maps)
        }
        maps["index"] = FusionMap("index", "index", neighbours.index,
                                  "Frame each pixel was taken from: peak of the summed neighbour-pair evidence")
        return self.make_result(np.clip(image, 0.0, 1.0), stack, params, maps, analysis,
                                notes=[f"{self.name}: neighbour pairs of {len(stack)} frames",
                                       # said, so a user moving those controls knows why nothing changes
                                       f"{self.name}: {', '.join(sorted(self.post_params(params)))} act on pair "
                                       "fusions and the serial strategy; the neighbour selection is the peak of "
                                       "the summed evidence, refined by the focus activity"])

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
