"""The work the window hands to background workers, as plain Qt-free generators.

Each job is a generator of :class:`ProgressEvent` that checks a :class:`CancelToken` and returns
a frozen dataclass of numpy arrays; :class:`focusstudio.gui.workers.JobRunner` runs it in a
thread. Nothing here imports Qt, so the jobs can be tested (and reused) without a window.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from focusstudio.core.align import Alignment
from focusstudio.core.io.output_policy import OutputPlan
from focusstudio.core.io.tolerant import FRAME_CACHE_BUDGET, FileProblem, open_files
from focusstudio.core.live_proxy import NotReducible, ProxyInputs, ShrunkFrames, make_proxy, proxy_shape
from focusstudio.core.methods.base import Analysis
from focusstudio.core.progress import CancelToken, ProgressEvent
from focusstudio.core.sidecar import reproduce_command, sidecar_data, sidecar_path, stage_sidecar
from focusstudio.core.types import FrameInfo, FusionMap, FusionResult, Stack

THUMBNAIL_EDGE = 96
ProgressJob = Generator[ProgressEvent, None, Any]


# ---------------------------------------------------------------------------- display helpers
def to_display(image: np.ndarray) -> np.ndarray:
    """float [0,1] H×W(×3) → uint8 for the screen (pyqtgraph's fast path), rounded."""
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def make_thumbnail(image: np.ndarray, edge: int = THUMBNAIL_EDGE) -> np.ndarray:
    """A uint8 copy whose longer side is ``edge`` pixels (area-averaged, so no aliasing)."""
    height, width = image.shape[:2]
    scale = edge / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if scale < 1 else image
    return np.ascontiguousarray(to_display(small))


def default_levels(fusion_map: FusionMap) -> tuple[float, float]:
    """Display levels of a map: its value range; index maps centred on whole frame numbers."""
    low, high = fusion_map.value_range
    if fusion_map.kind == "index":
        # Centre every frame number on its own colour of the categorical map.
        return (-0.5, float(high) + 0.5)
    if not np.isfinite(low) or not np.isfinite(high) or high <= low:
        high = low + 1.0 if np.isfinite(low) else 1.0
        low = low if np.isfinite(low) else 0.0
    return (float(low), float(high))


def map_levels(maps: Mapping[str, FusionMap]) -> dict[str, tuple[float, float]]:
    """Levels of every map (a full scan of each: done in the worker, not on the GUI thread)."""
    return {name: default_levels(fusion_map) for name, fusion_map in maps.items()}


def bit_depth_label(dtype: str) -> str:
    return {"uint8": "8-bit", "uint16": "16-bit", "float32": "32-bit float"}.get(dtype, dtype)


def describe_stack(stack: Stack) -> str:
    """"3 frames · 520×520 · 8-bit RGB" (the summary line of the stack panel)."""
    if len(stack) == 0:
        return "No frames"
    height, width = stack.shape
    colour = "RGB" if stack.is_color else "grey"
    count = f"{len(stack)} frame" + ("" if len(stack) == 1 else "s")
    return f"{count} · {width}×{height} · {bit_depth_label(stack.dtype)} {colour}"


# ---------------------------------------------------------------------------- opening files
@dataclass(frozen=True, eq=False)
class LoadOutcome:
    """The good frames of the opened files, their thumbnails, and what went wrong."""

    stack: Stack | None
    thumbnails: tuple[np.ndarray, ...]
    problems: tuple[FileProblem, ...]
    notes: tuple[str, ...]
    paths: tuple[str, ...]
    #: The good frames as decoded for their thumbnails (float32, ``stack``'s order) when they fit
    #: the frame cache's budget: the window keeps them, so the draft, the full run and the frame
    #: view never decode a frame again. Empty: over the budget.
    decoded: tuple[np.ndarray, ...] = ()


@dataclass(frozen=True)
class FrameDecoded(ProgressEvent):
    """A load's progress event saying one more good frame was decoded: its thumbnail, so the
    window can show the frames as they are decoded instead of when the last one is."""

    position: int = 0  # among the good frames so far
    name: str = ""
    thumbnail: np.ndarray | None = field(default=None, compare=False)
    #: The frame as decoded (float32 [0, 1], the array the load keeps; no copy): the window shows
    #: it while the rest decode instead of waiting for the last frame.
    image: np.ndarray | None = field(default=None, compare=False, repr=False)


def load_files(
    paths: Sequence[str | Path],
    cancel: CancelToken,
    reference_shape: tuple[int, int] | None = None,
    already_open: Sequence[str] = (),
) -> Generator[ProgressEvent, None, LoadOutcome]:
    """The core's tolerant loader (:func:`focusstudio.core.io.tolerant.open_files`), making a
    thumbnail of every good frame while it checks the frame's pixels; a :class:`FrameDecoded`
    event follows each good frame, and the decoded frames come back when they fit the cache."""
    thumbnails: list[np.ndarray] = []
    kept: list[np.ndarray] | None = []
    kept_bytes = 0
    #: Frames decoded and not yet announced (each goes out with its FrameDecoded event).
    unannounced: list[np.ndarray] = []

    def per_frame(image: np.ndarray) -> np.ndarray:
        nonlocal kept, kept_bytes
        thumbnail = make_thumbnail(image)
        thumbnails.append(thumbnail)
        unannounced.append(image)
        if kept is not None:
            kept.append(image)
            kept_bytes += image.nbytes
            if kept_bytes > FRAME_CACHE_BUDGET:  # a big stack decodes on demand, as before
                kept = None
        return thumbnail

    opening = open_files(paths, cancel, per_frame, reference_shape, already_open)
    shown = 0
    name = ""
    while True:
        try:
            event = next(opening)
        except StopIteration as stop:
            opened = stop.value
            break
        while shown < len(thumbnails):  # the frame decoded since the last event
            yield FrameDecoded(event.stage, event.fraction, name, shown, name, thumbnails[shown],
                               unannounced.pop(0))
            shown += 1
        name = event.message
        yield event
    if shown < len(thumbnails):
        yield FrameDecoded("making thumbnails", 1.0, name, shown, name, thumbnails[shown], unannounced.pop(0))
    decoded = tuple(kept) if kept is not None and len(kept) == len(opened.products) else ()
    return LoadOutcome(opened.stack, opened.products, opened.problems, opened.notes, opened.paths, decoded)


# ---------------------------------------------------------------------------- source frames
@dataclass(frozen=True, eq=False)
class FrameDisplay:
    """One source frame ready for the screen."""

    index: int  # in the loaded stack
    display: np.ndarray  # uint8
    image: np.ndarray  # float32 [0,1], for the cursor read-out
    #: Which view of the frames it was made for (the window drops frames of an outdated view).
    view: int = 0


def array_display_job(
    image: np.ndarray, index: int, cancel: CancelToken, view: int = 0
) -> Generator[ProgressEvent, None, FrameDisplay]:
    """A frame already decoded (a stack being opened) for the screen, as loaded frame ``index``."""
    cancel.raise_if_cancelled()
    yield ProgressEvent("showing frame", 0.0, "")
    return FrameDisplay(index, to_display(image), image, view)


def frame_display_job(
    stack: Stack, position: int, cancel: CancelToken, index: int | None = None, view: int = 0
) -> Generator[ProgressEvent, None, FrameDisplay]:
    """Frame ``position`` of ``stack`` for the screen, labelled as loaded frame ``index`` (the same
    by default; an aligned stack holds only the fused frames, in their own order)."""
    cancel.raise_if_cancelled()
    yield ProgressEvent("loading frame", 0.0, stack.frames[position].name)
    image = stack.load(position)
    cancel.raise_if_cancelled()
    return FrameDisplay(position if index is None else index, to_display(image), image, view)


# ---------------------------------------------------------------------------- fusion
@dataclass(frozen=True, eq=False)
class FusionRequest:
    """Everything one fusion run needs; ``analysis`` set = re-run the post-processing only."""

    stack: Stack
    method: str
    params: Mapping[str, Any]
    device: str = "auto"
    slot: str = "A"
    analysis: Analysis | None = None
    weights: str | None = None
    #: Identifies the frame selection (loaded stack + active indices) the result belongs to.
    stack_key: tuple[Any, ...] = ()
    #: perf_counter() of the user action that asked for this run (for the latency read-out).
    requested_at: float = field(default_factory=time.perf_counter)
    live: bool = False
    #: Alignment settings (``ALIGN_PARAMS`` values) when the frames are to be registered first;
    #: None = fuse the frames as they are.
    align: Mapping[str, Any] | None = None
    #: A registration already made for these frames and settings (aligned stack, alignment): reused
    #: instead of aligning again (re-fusing, live post-processing).
    aligned: tuple[Stack, Alignment] | None = None
    #: A registration loaded from a file (File → Load alignment…): applied instead of registering.
    saved: Alignment | None = None
    #: The viewport's device pixels (width, height): once fused, the analysis and frames are also
    #: shrunk to the resolution on screen, still in the worker, so the first live-tuning change
    #: finds them ready (None: not wanted — a live update, a method without post-processing).
    preview_view: tuple[int, int] | None = None
    #: The frames the quick draft of this run shrank (to the same viewport): reused for the preview
    #: inputs when the run fuses the frames as they are.
    shrunk: ShrunkFrames | None = None


@dataclass(frozen=True, eq=False)
class FusionOutcome:
    """A finished run: the core's result plus its display image, prepared off the main thread."""

    request: FusionRequest
    result: FusionResult
    display: np.ndarray  # uint8 H×W(×3)
    worker_seconds: float
    #: Display levels of each map, computed with the result so the GUI thread never scans a map.
    levels: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    #: The frames actually fused (aligned when ``alignment`` is set), and their registration.
    stack: Stack | None = None
    alignment: Alignment | None = None
    #: The analysis and frames at the viewport's resolution (``request.preview_view``), for live
    #: previews; None when not asked for or not possible (``preview_note`` says why).
    proxy: ProxyInputs | None = None
    preview_note: str = ""

    @property
    def fused_stack(self) -> Stack:
        return self.stack if self.stack is not None else self.request.stack

    @property
    def reused_analysis(self) -> bool:
        return "analyze" not in self.result.timings

    @property
    def stack_key(self) -> tuple[Any, ...]:
        """The frame selection the result was made from (what the workspace compares)."""
        return self.request.stack_key


#: Share of the progress bar the alignment stage takes when it runs.
ALIGN_PROGRESS_SHARE = 0.3


def fusion_job(request: FusionRequest, cancel: CancelToken) -> Generator[ProgressEvent, None, FusionOutcome]:
    """Align (when asked and not already done), fuse, and prepare the display image and levels."""
    from focusstudio.core.align import AlignRequest, registration_cache
    from focusstudio.core.pipeline import run_pipeline

    started = time.perf_counter()
    align = None
    if request.aligned is not None:  # the cached registration of these frames and settings
        align = AlignRequest(dict(request.align or {}), saved=request.aligned[1], aligned=request.aligned[0])
    elif request.align is not None:  # unchanged frames' pairs are taken from the process's cache
        align = AlignRequest(dict(request.align), saved=request.saved, cache=registration_cache())
    run = yield from run_pipeline(
        request.stack,
        request.method,
        dict(request.params),
        align=align,
        cancel=cancel,
        align_share=ALIGN_PROGRESS_SHARE,
        device=request.device,
        weights=request.weights,
        analysis=request.analysis,
    )
    result, stack, alignment = run.result, run.stack, run.alignment
    cancel.raise_if_cancelled()
    display = to_display(result.image)
    levels = map_levels(result.maps)
    proxy, note = _preview_inputs(request, result, stack if stack is not None else request.stack)
    return FusionOutcome(request, result, display, time.perf_counter() - started, levels, stack, alignment,
                         proxy, note)


def _preview_inputs(request: FusionRequest, result: FusionResult, fused: Stack) -> tuple[ProxyInputs | None, str]:
    """The result's analysis and frames shrunk for live previews (see ``FusionRequest.preview_view``).

    Made here rather than on the first change: shrinking six 1.7 MP frames costs ~70 ms of CPU
    (a 24 MP pair ~0.4 s), small beside the fusion but three times a preview, which the first
    change of a tuning session then waited for."""
    if request.preview_view is None or request.live or result.analysis is None:
        return None, ""
    shape = proxy_shape(fused.shape, request.preview_view)
    if shape is None:
        return None, "the result is no bigger than the view"
    frames = request.shrunk.get(fused, shape) if request.shrunk is not None else None
    try:
        return make_proxy(result.analysis, fused, shape, frames), ""
    except NotReducible as error:
        return None, f"not reducible: {error}"


# ---------------------------------------------------------------------------- metrics
@dataclass(frozen=True)
class MetricsOutcome:
    slot: str
    label: str
    values: Mapping[str, float]
    #: Maps measured with the metrics (where the result falls short), and their display levels.
    maps: Mapping[str, FusionMap] = field(default_factory=dict)
    levels: Mapping[str, tuple[float, float]] = field(default_factory=dict)


def _sharpness_recall(fused: np.ndarray, sources: Sequence[np.ndarray],
                      valid: np.ndarray | None) -> tuple[dict[str, float], dict[str, FusionMap]]:
    """Sharpness recall as ``fuse --maps`` measures it (the same core measure on the fused
    frames): the recall, its lost share, and the ``lost_blocks`` map."""
    from focusstudio.core.metrics import sharpness_recall

    recall = sharpness_recall(fused, iter(sources), valid=valid)
    fusion_map = recall.fusion_map()
    return {"Recall": recall.recall, "Lost": recall.lost_fraction}, {fusion_map.name: fusion_map}


#: Metrics measured together with maps of where the result falls short: key → (fused image, source
#: frames, where every frame has pixels) → (values, maps). Every other key is ``compute_metrics``'.
MappedMetric = Callable[[np.ndarray, Sequence[np.ndarray], "np.ndarray | None"],
                        tuple[dict[str, float], dict[str, FusionMap]]]
MAPPED_METRICS: dict[str, MappedMetric] = {"Recall": _sharpness_recall}


def metrics_job(
    slot: str,
    label: str,
    fused: np.ndarray,
    stack: Stack,
    keys: Sequence[str],
    cancel: CancelToken,
) -> Generator[ProgressEvent, None, MetricsOutcome]:
    """No-reference metrics of ``fused`` against the frames of ``stack``, one metric at a time,
    with the maps that some of them measure (:data:`MAPPED_METRICS`)."""
    from focusstudio.core.metrics import compute_metrics

    sources: list[np.ndarray] = []
    for index in range(len(stack)):
        cancel.raise_if_cancelled()
        yield ProgressEvent("metrics", 0.3 * index / len(stack), "reading sources")
        sources.append(stack.load(index))
    values: dict[str, float] = {}
    maps: dict[str, FusionMap] = {}
    for number, key in enumerate(keys):
        cancel.raise_if_cancelled()
        yield ProgressEvent("metrics", 0.3 + 0.7 * number / len(keys), key)
        if key in MAPPED_METRICS:
            measured, measured_maps = MAPPED_METRICS[key](fused, sources, stack.valid_mask)
            values.update({k: float(v) for k, v in measured.items()})
            maps.update(measured_maps)
        else:
            values.update({k: float(v) for k, v in compute_metrics(fused, sources, metrics=[key]).items()})
    return MetricsOutcome(slot, label, values, maps, map_levels(maps))


# ---------------------------------------------------------------------------- export
@dataclass(frozen=True, eq=False)
class ExportRequest:
    path: Path
    result: FusionResult
    source_paths: tuple[str, ...]
    device: str = "auto"
    weights: str | None = None
    with_maps: bool = False
    overwrite: bool = False
    #: The alignment settings and the registration the result was made with (None: not aligned).
    align: Mapping[str, Any] | None = None
    alignment: Alignment | None = None
    #: The retouch strokes painted over ``result`` (focusstudio.core.retouch.retouch_section), saved
    #: in the sidecar, which the reproduce command then names with --retouch.
    retouch: Mapping[str, Any] | None = None
    #: The dtype to write (``uint16``: 16-bit from 8-bit frames); None = the frames' own.
    dtype: str | None = None
    #: The frames whose reference frame's EXIF and colour profile the output carries (none: no
    #: metadata), and that reference (None: the middle frame, the alignment's default).
    metadata_frames: tuple[FrameInfo, ...] = ()
    reference: int | None = None


@dataclass(frozen=True)
class ExportOutcome:
    image: Path
    sidecar: Path
    maps: tuple[Path, ...]
    notes: tuple[str, ...]


def export_job(request: ExportRequest, cancel: CancelToken) -> Generator[ProgressEvent, None, ExportOutcome]:
    """Write the result (in its source bit depth when the format allows), the maps and the sidecar.

    One output plan: the image, the sidecar and the maps are checked before anything is encoded
    (never a source frame, never each other) and published together at the end; a cancel or an
    error leaves nothing new.
    """
    from focusstudio.core.errors import InputError
    from focusstudio.core.io import expected_map_files, output_format, write_maps, write_result
    from focusstudio.core.io.metadata import collect_metadata
    from focusstudio.core.io.writers import output_dtype

    notes: list[str] = []
    output_format(request.path)
    metadata = None
    if request.metadata_frames:
        try:
            metadata = collect_metadata(request.metadata_frames, request.reference, notes=notes)
        except InputError as error:
            # The CLI refuses such a stack; the window still saves the pixels the user asked for.
            notes.append(f"written without the camera's metadata: {error}")
    with OutputPlan(request.source_paths, force=request.overwrite) as outputs:
        outputs.file(request.path, "the fused image")
        outputs.file(sidecar_path(request.path), "the sidecar")
        folder = request.path.with_name(request.path.stem + "_maps")
        if request.with_maps and request.result.maps:
            outputs.folder(folder, "the maps")
            for name in expected_map_files(request.result.maps, 0):
                outputs.file(folder / name, f"the map {name}")
        yield ProgressEvent("saving", 0.1, request.path.name)
        image = write_result(request.path, request.result, notes=notes, plan=outputs, dtype=request.dtype,
                             metadata=metadata)
        maps: list[Path] = []
        if request.with_maps and request.result.maps:
            cancel.raise_if_cancelled()
            yield ProgressEvent("saving", 0.6, "maps")
            maps = write_maps(folder, request.result, plan=outputs)
        yield ProgressEvent("saving", 0.9, "sidecar")
        cancel.raise_if_cancelled()
        command = reproduce_command(request.result, request.source_paths, request.path, request.device,
                                    request.weights, request.align,
                                    sidecar_path(image) if request.retouch else None)
        written = output_dtype(request.path, request.dtype or request.result.source_dtype)[0]
        if request.dtype is not None and written != request.result.source_dtype:
            command += ["--bits", "16" if written == "uint16" else "8"]
        data = sidecar_data(request.result, request.path, request.source_paths, command, request.alignment, maps,
                            request.retouch)
        data["output_dtype"] = written
        sidecar = stage_sidecar(outputs, sidecar_path(image), data)
        outputs.commit()
    return ExportOutcome(image, sidecar, tuple(maps), tuple(notes))
