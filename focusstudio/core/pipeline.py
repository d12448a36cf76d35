"""The fusion pipeline shared by the CLI, the GUI and the Python API.

``run_fusion`` is a generator of :class:`ProgressEvent`; its return value is the
:class:`FusionResult`. It validates parameters, resolves the device, (optionally) aligns the
frames, runs the method's two stages and records the time of each stage.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from focusstudio.core.border import complete_partial_coverage
from focusstudio.core.errors import FocusStudioError, MethodUnavailableError
from focusstudio.core.methods.base import Analysis, FusionMethod, RunContext
from focusstudio.core.methods.registry import get_method
from focusstudio.core.progress import CancelToken, ProgressGen, ProgressRange, run_to_completion
from focusstudio.core.types import FusionResult, Stack


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
) -> ProgressGen[FusionResult]:
    """Fuse ``stack``; pass a cached ``analysis`` to re-run only the post-processing."""
    from focusstudio.core.device import resolve_device

    if len(stack) < 2:
        raise FocusStudioError(f"need at least 2 frames to fuse, got {len(stack)}")
    instance, resolved = prepare(method, params, weights)
    # Device resolution imports torch (seconds of process start-up): not part of the fusion time.
    # The classical methods are NumPy/OpenCV: "auto" means the CPU without loading torch at all.
    device_name = "cpu" if device == "auto" and instance.family == "classical" else resolve_device(device)
    started = time.perf_counter()
    context = RunContext(
        device=device_name,
        cancel=cancel or CancelToken(),
        weights=Path(weights) if weights is not None else None,
        memory_limit=memory_limit,
        tile_size=tile_size,
    )
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
