"""Background work of live tuning, Qt-free: a reduced-resolution post-processing preview, a quick
draft of a whole fusion at screen resolution, and running a job (the metrics) in a thread of its
own at the lowest CPU priority.

A preview re-runs a method's ``finish`` on the result's analysis and frames shrunk to the pixels
the viewport shows (:mod:`focusstudio.core.live_proxy`); the shrunk inputs come back with it so
the next preview of the same result reuses them (a drag makes dozens of previews).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from focusstudio.core.live_proxy import (
    NotReducible,
    ProxyInputs,
    ShrunkFrames,
    make_proxy,
    scale_params,
    shrink_stack,
)
from focusstudio.core.progress import CancelToken, ProgressEvent, scoped
from focusstudio.core.types import Stack
from focusstudio.gui.jobs import FusionOutcome, to_display

ProgressJob = Generator[ProgressEvent, None, Any]


@dataclass(frozen=True, eq=False)
class PreviewRequest:
    """Post-process ``source``'s analysis with ``params`` at ``shape`` (height, width)."""

    source: FusionOutcome
    params: Mapping[str, Any]
    shape: tuple[int, int]
    #: perf_counter() of the change this preview shows (for the latency read-out and ordering).
    requested_at: float = field(default_factory=time.perf_counter)
    #: The shrunk inputs of an earlier preview of the same source and shape (None: make them).
    proxy: ProxyInputs | None = None
    #: Only shrink the inputs (ahead of the first change), post-process nothing.
    prepare_only: bool = False


@dataclass(frozen=True, eq=False)
class PreviewOutcome:
    """A reduced-resolution result for the screen (``proxy`` None: the analysis is not reducible;
    ``display`` None: nothing post-processed, only the inputs prepared or none possible)."""

    request: PreviewRequest
    display: np.ndarray | None
    proxy: ProxyInputs | None
    finish_seconds: float = 0.0
    reason: str = ""


def preview_job(request: PreviewRequest, cancel: CancelToken) -> Generator[ProgressEvent, None, PreviewOutcome]:
    """Shrink the inputs (first preview of a result only), run ``finish`` on them, make the display image."""
    from focusstudio.core.methods.registry import get_method
    from focusstudio.core.pipeline import run_fusion

    source = request.source
    analysis = source.result.analysis
    if analysis is None:
        return PreviewOutcome(request, None, None, reason="no analysis kept")
    proxy = request.proxy
    if proxy is None:
        yield ProgressEvent("preview", 0.0, "shrinking the frames")
        try:
            proxy = make_proxy(analysis, source.fused_stack, request.shape)
        except NotReducible as error:
            return PreviewOutcome(request, None, None, reason=str(error))
    cancel.raise_if_cancelled()
    if request.prepare_only:
        return PreviewOutcome(request, None, proxy)
    method = get_method(source.request.method)
    params = scale_params(request.params, method.params, proxy.scale)
    started = time.perf_counter()
    result = yield from run_fusion(proxy.stack, source.request.method, params, device=source.request.device,
                                   cancel=cancel, weights=source.request.weights, analysis=proxy.analysis)
    finished = time.perf_counter() - started
    cancel.raise_if_cancelled()
    return PreviewOutcome(request, to_display(result.image), proxy, finished)


# ---------------------------------------------------------------------------- quick draft
@dataclass(frozen=True, eq=False)
class DraftRequest:
    """Fuse ``stack`` shrunk to ``shape`` (height, width), aligned on the shrunk frames when asked."""

    stack: Stack
    method: str
    params: Mapping[str, Any]
    shape: tuple[int, int]
    slot: str = "A"
    device: str = "auto"
    weights: str | None = None
    align: Mapping[str, Any] | None = None
    requested_at: float = field(default_factory=time.perf_counter)
    #: Where the shrunk frames are left for the full run (its preview inputs reuse them).
    shrunk: ShrunkFrames | None = None


@dataclass(frozen=True, eq=False)
class DraftOutcome:
    request: DraftRequest
    display: np.ndarray
    #: The full-resolution size (height, width) the draft stands for (cropped when aligned).
    extent: tuple[int, int]
    seconds: float


#: The full fusion waits at most this long for its draft (a slow draft must not hold it up).
DRAFT_HEAD_START_S = 8.0


def after_draft(done: threading.Event, factory: Any, limit_s: float = DRAFT_HEAD_START_S) -> Any:
    """``factory``'s job, started once the draft has ended (``done``) or ``limit_s`` has passed:
    both in one process on a few cores, the draft would otherwise take as long as the full run."""

    def job(cancel: CancelToken) -> ProgressJob:
        deadline = time.perf_counter() + limit_s
        yield ProgressEvent("draft", 0.0, "a screen-resolution draft first")
        while not done.wait(0.05) and time.perf_counter() < deadline:
            cancel.raise_if_cancelled()
        return (yield from factory(cancel))

    return job


def draft_job(request: DraftRequest, cancel: CancelToken,
              done: threading.Event | None = None) -> Generator[ProgressEvent, None, DraftOutcome]:
    """A draft of the fusion the user just started: the same method, parameters and alignment
    settings on frames at screen resolution (seconds instead of minutes on a big stack); ``done``
    is set when it ends, however it ends."""
    try:
        return (yield from _draft(request, cancel))
    finally:
        if done is not None:
            done.set()


def _draft(request: DraftRequest, cancel: CancelToken) -> Generator[ProgressEvent, None, DraftOutcome]:
    from focusstudio.core.align import AlignRequest, registration_cache
    from focusstudio.core.methods.registry import get_method
    from focusstudio.core.pipeline import run_pipeline

    started = time.perf_counter()
    yield ProgressEvent("draft", 0.0, "shrinking the frames")
    small = shrink_stack(request.stack, request.shape)
    if request.shrunk is not None:
        request.shrunk.put(request.stack, request.shape, small)
    cancel.raise_if_cancelled()
    scale = request.shape[1] / request.stack.shape[1]
    params = scale_params(request.params, get_method(request.method).params, scale)
    # The draft's shrunk frames have pairs of their own in the process's cache (a re-fusion's draft re-uses them).
    align = AlignRequest(dict(request.align), cache=registration_cache()) if request.align is not None else None
    run = yield from run_pipeline(small, request.method, params, align=align, cancel=cancel,
                                  device=request.device, weights=request.weights)
    cancel.raise_if_cancelled()
    height, width = run.result.image.shape[:2]
    extent = (round(height / scale), round(width / scale))
    return DraftOutcome(request, to_display(run.result.image), extent, time.perf_counter() - started)


# ---------------------------------------------------------------------------- low priority
def lower_this_thread() -> None:
    """Make the calling thread the last to get a CPU core (Linux: nice 19 for this thread only,
    the others keep theirs; elsewhere nothing: the process-wide calls would slow the window too)."""
    if hasattr(os, "setpriority") and hasattr(threading, "get_native_id") and os.uname().sysname == "Linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


_DONE = object()


def at_low_priority(factory: Any, name: str = "focusstudio-low-priority") -> Any:
    """A job factory running ``factory``'s generator in a new thread at the lowest priority.

    A thread of its own, ended with the job: a lowered thread cannot raise its priority again, so
    lowering a shared pool thread would slow every later job that lands on it. Events and the
    result are relayed to the caller's generator (the :class:`JobRunner`'s worker)."""

    def job(cancel: CancelToken) -> ProgressJob:
        events: queue.Queue[Any] = queue.Queue()
        box: dict[str, Any] = {}

        def run() -> None:
            lower_this_thread()
            generator = scoped(factory(cancel), cancel)
            try:
                while True:
                    try:
                        events.put(next(generator))
                    except StopIteration as stop:
                        box["value"] = stop.value
                        return
            except BaseException as error:  # handed to the caller, which reports it
                box["error"] = error
            finally:
                events.put(_DONE)

        threading.Thread(target=run, name=name, daemon=True).start()
        while (item := events.get()) is not _DONE:
            yield item
        if "error" in box:
            raise box["error"]
        return box.get("value")

    return job
