"""The interface every fusion method implements.

A method runs in two stages so the GUI can re-run only the cheap part when a post-processing
slider moves:

* :meth:`FusionMethod.analyze` — the expensive part (network forward passes / activity
  measures). Depends only on parameters whose ``stage`` is ``"analysis"``. Returns an
  :class:`Analysis` that can be cached.
* :meth:`FusionMethod.finish` — post-processing on the cached analysis (thresholds, morphology,
  small-region removal, guided filter) and composition from the original source pixels.

Both are generators of :class:`~focusstudio.core.progress.ProgressEvent` whose return value is the
result, and both check ``context.cancel`` between steps.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from focusstudio.core.params import ParamSet
from focusstudio.core.progress import CancelToken, ProgressGen, ProgressRange
from focusstudio.core.types import FusionMap, FusionResult, Stack

if TYPE_CHECKING:
    from focusstudio.core.methods.checkpoint import LoadedNetwork
    from focusstudio.core.methods.registry import NetworkSpec


@dataclass
class RunContext:
    """Everything a method needs besides the stack and its parameters."""

    device: str = "cpu"
    cancel: CancelToken = field(default_factory=CancelToken)
    weights: Path | None = None  # None = the method's default (shipped) weights
    #: Upper bound on working memory (bytes) used to pick tile sizes; None = automatic.
    memory_limit: int | None = None
    #: Override of the tile edge (pixels) for tiled inference; None = derived from memory_limit.
    tile_size: int | None = None
    progress: ProgressRange = field(default_factory=ProgressRange)
    notes: list[str] = field(default_factory=list)

    def resolved_memory_limit(self) -> int:
        """``memory_limit``, or when None a safe fraction of the memory free now: the free VRAM on
        CUDA, else the free RAM (:func:`focusstudio.core.tiling.default_memory_limit`)."""
        from focusstudio.core.tiling import resolve_memory_limit

        return resolve_memory_limit(self.memory_limit, self.device)


@dataclass
class Analysis:
    """Cached output of :meth:`FusionMethod.analyze`: named arrays plus anything else."""

    method: str
    analysis_params: dict[str, Any]
    maps: dict[str, FusionMap] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    device: str = "cpu"


MethodFamily = Literal["classical", "deep"]


class FusionMethod(ABC):
    """Base class of every registered method. Subclasses are registered with ``@register``."""

    name: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str]
    family: ClassVar[MethodFamily] = "classical"
    params: ClassVar[ParamSet] = ParamSet()
    #: True when the fused image is decoded by a network instead of composed from source pixels.
    decodes_directly: ClassVar[bool] = False
    #: Output rounding of the reference implementation when converting to integers.
    rounding: ClassVar[Literal["round", "truncate"]] = "round"
    #: Names of the explanation maps this method produces (for docs and the GUI).
    map_names: ClassVar[tuple[str, ...]] = ()
    #: What the method holds for whole frames whatever the memory budget (decoded frames, maps,
    #: the result), in bytes per stack pixel: a fixed part and a part per frame; measured for
    #: colour stacks (benchmarks/bench_memory.py). 0 = not measured (no floor is enforced).
    floor_bytes_per_pixel: ClassVar[float] = 0.0
    floor_bytes_per_frame_pixel: ClassVar[float] = 0.0
    #: Per-frame maps are kept only up to a total (sf: MAX_ACTIVITY_BYTES; the deep methods keep
    #: them within half the budget), so the per-frame part stops growing there.
    floor_frames_cap: ClassVar[int] = 256 * 2**20
    #: Deep methods: how the network is built and filled from a checkpoint (the registry's spec).
    network_spec: ClassVar[NetworkSpec | None] = None
    #: ``"package.module:Class"`` of the training recipe (imported only to train); None = not trainable.
    training_recipe: ClassVar[str | None] = None

    def memory_floor(self, stack: Stack) -> int:
        """Bytes this method holds for whole frames of ``stack`` whatever the budget (see
        :func:`focusstudio.core.tiling.run_budget`)."""
        pixels = stack.shape[0] * stack.shape[1]
        frames = min(self.floor_bytes_per_frame_pixel * pixels * len(stack), self.floor_frames_cap)
        return int(self.floor_bytes_per_pixel * pixels + frames)

    def availability(self, weights: Path | None = None) -> tuple[bool, str]:
        """(can run, reason if not). Classical methods can always run."""
        return True, ""

    def unused_params(self, params: Mapping[str, Any], frames: int) -> dict[str, str]:
        """The parameters a run of ``frames`` frames with ``params`` does not use, each with the
        reason (front ends disable those controls and say why instead of letting them pretend)."""
        return {}

    def weights_label(self, weights: Path | None = None) -> str | None:
        """A short description of the weights that would be used (for provenance)."""
        return None

    @abstractmethod
    def analyze(self, stack: Stack, params: dict[str, Any], context: RunContext) -> ProgressGen[Analysis]:
        """Expensive stage; depends only on ``analysis`` parameters."""

    @abstractmethod
    def finish(
        self, analysis: Analysis, stack: Stack, params: dict[str, Any], context: RunContext
    ) -> ProgressGen[FusionResult]:
        """Cheap stage: post-processing and composition from the source pixels."""

    # helpers for subclasses ----------------------------------------------------------------
    def analysis_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {s.name: params[s.name] for s in self.params if s.stage == "analysis"}

    def make_result(
        self,
        image: Any,
        stack: Stack,
        params: dict[str, Any],
        maps: dict[str, FusionMap],
        analysis: Analysis,
        notes: list[str] | None = None,
    ) -> FusionResult:
        return FusionResult(
            image=image,
            method=self.name,
            params=dict(params),
            maps=maps,
            device=analysis.device,
            weights=analysis.weights,
            source_dtype=stack.dtype,
            source_names=tuple(stack.names),
            notes=tuple(stack.notes) + tuple(notes or ()),
            rounding=self.rounding,
        )


class DeepFusionMethod(FusionMethod):
    """A method whose network needs weights: available when they resolve (shipped, installed by
    name, or a file), and labelled by them so a cached analysis is never reused across weights."""

    family: ClassVar[MethodFamily] = "deep"
    #: What a ``strategy`` parameter of "auto" means for 3+ frames (2 frames: "pair").
    auto_strategy_for_many: ClassVar[str] = "serial"
    #: The parameters each N-frame strategy leaves unused on 3+ frames (:meth:`unused_params`):
    #: strategy → (their names, or None for every post-processing parameter; the reason).
    unused_by_strategy: ClassVar[Mapping[str, tuple[tuple[str, ...] | None, str]]] = {}

    @classmethod
    def resolve_strategy(cls, params: Mapping[str, Any], frames: int) -> str:
        """The N-frame strategy a run uses: the ``strategy`` parameter, with "auto" resolved."""
        strategy = str(params.get("strategy", "auto"))
        if strategy == "auto":
            return "pair" if frames == 2 else cls.auto_strategy_for_many
        return strategy

    def unused_params(self, params: Mapping[str, Any], frames: int) -> dict[str, str]:
        declared = self.unused_by_strategy.get(self.resolve_strategy(params, frames)) if frames >= 3 else None
        if declared is None:
            return {}
        names, reason = declared
        return {spec.name: reason for spec in self.params
                if (spec.stage == "post" if names is None else spec.name in names)}

    def load(self, weights: Path | None) -> LoadedNetwork:
        """The network with ``weights`` (None = the shipped ones), eval mode, on the CPU, read by
        the one checkpoint loader and cached there (callers move it to their device)."""
        from focusstudio.core.methods.checkpoint import load_method_network

        return load_method_network(self.name, weights)

    def availability(self, weights: Path | None = None) -> tuple[bool, str]:
        from focusstudio.core.weights import weights_availability

        return weights_availability(self.name, weights)

    def weights_label(self, weights: Path | None = None) -> str | None:
        from focusstudio.core.errors import WeightsError
        from focusstudio.core.weights import resolve_weights

        try:
            return resolve_weights(self.name, weights).label
        except WeightsError:
            return None
