"""The fusion pipeline shared by the CLI, the GUI and the Python API.

The stages: alignment (:mod:`focusstudio.core.align.stage`: estimate a registration, apply a saved
one, or take frames already aligned), then the fusion. :func:`run_pipeline` runs both (the CLI and
the window); ``run_fusion`` is the fusion alone: it validates parameters, resolves the device,
runs the method's two stages and records the time of each stage. Both are generators of
:class:`ProgressEvent` whose return value is the result.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from focusstudio.core.border import complete_partial_coverage
from focusstudio.core.device import is_out_of_memory, release_cached_gpu_memory
from focusstudio.core.errors import FocusStudioError, MethodUnavailableError, ParameterError
from focusstudio.core.methods.base import Analysis, FusionMethod, RunContext
from focusstudio.core.methods.registry import get_method
from focusstudio.core.progress import (
    CancelToken,
    ProgressEvent,
    ProgressGen,
    ProgressRange,
    run_to_completion,
    scoped,
)
from focusstudio.core.tiling import resolve_memory_limit, run_budget
from focusstudio.core.types import FusionResult, Stack

if TYPE_CHECKING:
    from focusstudio.core.align import Alignment, AlignRequest


def prepare(
    method: str | FusionMethod,
    params: Mapping[str, Any] | None = None,
    weights: str | Path | None = None,
) -> tuple[FusionMethod, dict[str, Any]]:
    """Look up the method, validate parameters against its declarations, check availability."""
    instance = get_method(method) if isinstance(method, str) else method
    resolved = instance.params.resolve(params)
    weights_path = Path(weights) if weights is not None else None
    available, reason = instance.availability(weights_path)
    if not available:
        raise MethodUnavailableError(f"method '{instance.name}' cannot run: {reason}")
    return instance, resolved


@dataclass(frozen=True, eq=False)
class PipelineResult:
    """A run of the whole pipeline: the fusion's result, the frames it fused (aligned when
    ``alignment`` is set) and the alignment stage's time (0 when it did not run)."""

    result: FusionResult
    stack: Stack
    alignment: Alignment | None
    align_seconds: float


#: Share of the progress the alignment stage takes when it registers the frames.
ALIGN_PROGRESS_SHARE = 0.3


def run_pipeline(
    stack: Stack,
    method: str | FusionMethod = "sf",
    params: Mapping[str, Any] | None = None,
    align: AlignRequest | None = None,
    cancel: CancelToken | None = None,
    progress: ProgressRange | None = None,
    align_share: float | None = ALIGN_PROGRESS_SHARE,
    **fusion: Any,
) -> ProgressGen[PipelineResult]:
    """The alignment stage (``align`` None: the frames as they are), then :func:`run_fusion` of
    the frames it gives with ``fusion``'s keyword arguments.

    Progress: when the stage registers the frames it takes the first ``align_share`` of
    ``progress`` and the fusion the rest, else the fusion takes all of it; ``align_share`` None:
    each stage reports over the whole of ``progress`` in turn.
    """
    from focusstudio.core.align.stage import align_frames

    cancel = cancel or CancelToken()
    progress = progress or ProgressRange()
    align_range = fusion_range = progress
    if align is not None and align.estimates and align_share is not None:
        align_range, fusion_range = progress.sub(0.0, align_share), progress.sub(align_share, 1.0)
    frames = yield from align_frames(stack, align, cancel, align_range)
    result = yield from fusion_range.relay(run_fusion(frames.stack, method, params, cancel=cancel, **fusion))
    return PipelineResult(result, frames.stack, frames.alignment, frames.seconds)


def run_fusion(
    stack: Stack,
    method: str | FusionMethod = "sf",
    params: Mapping[str, Any] | None = None,
    device: str = "auto",
    cancel: CancelToken | None = None,
    weights: str | Path | None = None,
    memory_limit: int | None = None,
    tile_size: int | None = None,
    analysis: Analysis | None = None,
    quality_maps: bool = False,
) -> ProgressGen[FusionResult]:
    """Fuse ``stack``; pass a cached ``analysis`` to re-run only the post-processing.

    ``quality_maps``: also measure the result's sharpness recall against the frames (one more pass
    over the stack, a frame at a time) and add the maps of :data:`QUALITY_MAP_NAMES`.
    """
    from focusstudio.core.device import resolve_device

    if len(stack) < 2:
        raise FocusStudioError(f"need at least 2 frames to fuse, got {len(stack)}")
    if tile_size is not None and tile_size < 1:
        raise ParameterError(f"the tile size must be at least 1 pixel, got {tile_size}")
    if memory_limit is not None and memory_limit < 1:
        raise ParameterError(f"the memory limit must be positive, got {memory_limit} bytes")
    instance, resolved = prepare(method, params, weights)
    # Device resolution imports torch (seconds of process start-up): not part of the fusion time.
    # The classical methods are NumPy/OpenCV: "auto" means the CPU without loading torch at all.
    device_name = "cpu" if device == "auto" and instance.family == "classical" else resolve_device(device)
    started = time.perf_counter()
    cancel = cancel or CancelToken()
    weights_path = Path(weights) if weights is not None else None
    _budget, working, budget_note = memory_budget(stack, instance, memory_limit, device_name)
    attempts = fallback_attempts(device_name, working, tile_size)
    retry_notes: list[str] = [budget_note] if budget_note else []
    for number, (attempt_device, attempt_limit, attempt_tile) in enumerate(attempts):
        context = RunContext(
            device=attempt_device, cancel=cancel, weights=weights_path, memory_limit=attempt_limit,
            tile_size=attempt_tile,
        )
        try:
            # In scope: network passes, morphology and tile loops check the token between their steps.
            result = yield from scoped(_run_stages(instance, resolved, stack, context, analysis), cancel)
        except Exception as error:  # only out-of-memory errors are retried, the rest re-raised
            if number + 1 == len(attempts) or not is_out_of_memory(error):
                raise
            release_cached_gpu_memory()
            next_device, next_limit, next_tile = attempts[number + 1]
            note = (
                f"out of memory on {attempt_device} ({_describe_budget(attempt_limit, attempt_tile)}): "
                f"retrying on {next_device} with {_describe_budget(next_limit, next_tile)}"
            )
            retry_notes.append(note)
            yield ProgressEvent("retry", 0.0, note)
            continue
        break
    timings = dict(result.timings)
    from dataclasses import replace

    if quality_maps:
        from focusstudio.core.metrics.recall import stack_sharpness_recall

        stage_start = time.perf_counter()
        yield ProgressEvent("measure", 1.0, "sharpness recall")
        recall = stack_sharpness_recall(result.image, stack)
        result = replace(result, maps={**result.maps, "lost_blocks": recall.fusion_map()})
        timings["measure"] = time.perf_counter() - stage_start
    timings["total"] = time.perf_counter() - started
    notes = tuple(dict.fromkeys((*result.notes, *retry_notes)))
    return replace(result, timings=timings, notes=notes)


#: Maps the pipeline adds to any method's result: ``valid_area`` after a border pass (aligned
#: stacks kept uncropped), ``lost_blocks`` with ``quality_maps`` (blocks whose sharpness recall is
#: below 0.5: visibly blurred patches; see focusstudio.core.metrics.recall).
PIPELINE_MAP_NAMES: tuple[str, ...] = ("valid_area", "lost_blocks")
QUALITY_MAP_NAMES: tuple[str, ...] = ("lost_blocks",)


def memory_budget(
    stack: Stack, method: str | FusionMethod, memory_limit: int | None, device: str = "cpu"
) -> tuple[int, int, str | None]:
    """(budget, working budget, note) of fusing ``stack`` with ``method``
    (:func:`focusstudio.core.tiling.run_budget`). Raises ParameterError when ``memory_limit``
    cannot hold the method's whole-frame arrays: callers check this before a long alignment."""
    instance = get_method(method) if isinstance(method, str) else method
    height, width = stack.shape
    # The floor is host memory: on a CUDA device the budget is the device's, frames stay on the host.
    floor = 0 if device.startswith("cuda") else instance.memory_floor(stack)
    return run_budget(memory_limit, device, floor, f"{instance.name} on {len(stack)} frames of {width}×{height}")


def fallback_attempts(
    device: str, memory_limit: int | None, tile_size: int | None
) -> list[tuple[str, int | None, int | None]]:
    """(device, memory budget, tile edge) to try in turn when a run runs out of memory: as asked,
    then three times with a quarter of the budget (or half the tile edge when one was given),
    then, for a GPU, the CPU as asked.

    The budget is resolved here, once per device, by the one policy every method and the window
    share (:func:`focusstudio.core.tiling.resolve_memory_limit`: the user's ``--memory-limit``,
    else a fraction of the free memory, at most 1.5 GiB of RAM), so no method falls back on a
    default of its own."""
    base = resolve_memory_limit(memory_limit, device)
    attempts: list[tuple[str, int | None, int | None]] = [(device, base, tile_size)]
    for step in range(1, 4):
        if tile_size is not None:
            attempts.append((device, base, max(tile_size >> step, MIN_RETRY_TILE)))
        else:
            attempts.append((device, max(base >> (2 * step), MIN_RETRY_BUDGET), None))
    if device != "cpu":
        attempts.append(("cpu", resolve_memory_limit(memory_limit, "cpu"), tile_size))
    return attempts


#: Floors of the out-of-memory retries: below these, tiles are mostly halo.
MIN_RETRY_TILE = 128
MIN_RETRY_BUDGET = 64 * 1024**2


def _describe_budget(memory_limit: int | None, tile_size: int | None) -> str:
    if tile_size is not None:
        return f"{tile_size}-px tiles"
    if memory_limit is None:
        return "the automatic memory budget"
    return f"a {memory_limit / 1024**2:.0f} MiB budget"


def _run_stages(
    instance: FusionMethod, resolved: dict[str, Any], stack: Stack, context: RunContext,
    analysis: Analysis | None,
) -> ProgressGen[FusionResult]:
    """Analysis (unless a matching one is cached), finish and the border stage, with timings."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    # A cached analysis is reused only for the same method, analysis parameters and weights
    # (switching checkpoints must re-run the network).
    reuse = (
        analysis is not None
        and analysis.method == instance.name
        and analysis.analysis_params == instance.analysis_params(resolved)
        and analysis.weights == instance.weights_label(context.weights)
    )
    if not reuse:
        context.progress = ProgressRange(0.0, 0.85)
        stage_start = time.perf_counter()
        analysis = yield from instance.analyze(stack, resolved, context)
        timings["analyze"] = time.perf_counter() - stage_start
    assert analysis is not None
    context.cancel.raise_if_cancelled()
    # A stack aligned without a crop ends with a border pass (see focusstudio.core.border).
    finish_end = 0.95 if stack.valid_mask is not None else 1.0
    context.progress = ProgressRange(0.85 if not reuse else 0.0, finish_end)
    stage_start = time.perf_counter()
    result = yield from instance.finish(analysis, stack, resolved, context)
    timings["finish"] = time.perf_counter() - stage_start
    if stack.valid_mask is not None:
        stage_start = time.perf_counter()
        context.progress = ProgressRange(finish_end, 1.0)
        result = yield from complete_partial_coverage(result, stack, context)
        timings["border"] = time.perf_counter() - stage_start
    timings["total"] = time.perf_counter() - started
    merged = {**result.timings, **timings}
    notes = tuple(dict.fromkeys((*result.notes, *context.notes)))
    from dataclasses import replace

    return replace(result, timings=merged, notes=notes, analysis=analysis)


def fuse(stack: Stack, method: str = "sf", params: Mapping[str, Any] | None = None, **kwargs: Any) -> FusionResult:
    """Blocking convenience wrapper around :func:`run_fusion`."""
    return run_to_completion(run_fusion(stack, method, params, **kwargs))
