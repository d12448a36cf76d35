"""Fuse one stack of a batch: load, align (or re-use a saved registration), fuse, write the image
and its sidecar; decide whether an existing output is complete and current.

:func:`run_stack` never raises for a bad stack: its one-line reason becomes a ``failed``
:class:`StackOutcome`, so the batch goes on. The same function runs in the calling process, in a
worker process (``--workers``) and on a Dask worker (``--dask``), so every route writes the same
bytes.

Output policy. Each stack's image and sidecar go through one
:class:`~focusstudio.core.io.output_policy.OutputPlan`: checked before the stack is loaded (never
one of its frames, folder writable, no clobbering without ``force``), staged while it is fused and
published together at its end (sidecar first), so a failed, cancelled or killed stack leaves
nothing new. The sidecar's ``batch`` section holds a fingerprint of everything that determines the
result (method, parameters, alignment settings or saved registration, weights, device, and every
input file's size and modification time) and the written image's size and modification time. A
later run skips a stack whose image and sidecar match (complete and current); re-does one whose
sidecar it wrote but whose image is missing or incomplete (e.g. a crash between the two
publications; older batches also marked a sidecar ``writing``); and refuses, without ``force``, to
replace anything else: an image it did not write, or one made from other settings or older inputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from focusstudio.core.batch.sources import StackSpec
from focusstudio.core.errors import FocusStudioError, InputError, OutputError
from focusstudio.core.progress import CancelToken, ProgressEvent, ProgressGen, ProgressRange

if TYPE_CHECKING:
    from focusstudio.core.io.output_policy import OutputPlan

__all__ = [
    "DEFAULT_TEMPLATE",
    "BatchSettings",
    "StackOutcome",
    "output_path_for",
    "peak_memory_reset",
    "peak_rss_mib",
    "run_stack",
    "run_stack_blocking",
]

#: Output names: ``{stack}`` (the stack's name), ``{method}``, ``{index}`` (1-based position).
DEFAULT_TEMPLATE = "{stack}_{method}.tif"
Status = Literal["done", "skipped", "failed"]


class AnalysisProvider(Protocol):
    """Computes a method's analysis of an opened stack elsewhere (tiles on a cluster)."""

    def __call__(self, spec: StackSpec, stack: Any, method: str, params: dict[str, Any],
                 align: Mapping[str, Any] | None) -> Any: ...


@dataclass(frozen=True)
class BatchSettings:
    """What every stack of a batch is fused with (a stack's manifest row may override some)."""

    output_dir: Path
    method: str = "sf"
    #: Method parameters, validated values or ``--set`` text.
    params: Mapping[str, Any] = field(default_factory=dict)
    #: None: align 3+ frames (the CLI's default); True/False: always/never.
    align: bool | None = None
    align_settings: Mapping[str, Any] = field(default_factory=dict)
    #: A saved registration applied to every stack instead of estimating one.
    alignment_file: Path | None = None
    template: str = DEFAULT_TEMPLATE
    device: str = "auto"
    weights: str | None = None
    memory_limit: int | None = None
    tile_size: int | None = None
    force: bool = False
    #: Metric keys to measure each result with; () = the standard set; None = none.
    metrics: tuple[str, ...] | None = None


@dataclass
class StackOutcome:
    """What happened to one stack (a row of the run report)."""

    name: str
    status: Status
    output: str | None = None
    reason: str = ""
    seconds: float = 0.0
    #: Peak resident memory of the process that fused it, during this stack (MiB).
    peak_mib: float | None = None
    frames: int | None = None
    size: str = ""
    alignment: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    worker: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- peak memory
def peak_memory_reset() -> None:
    """Start a new peak-RSS measurement for this process (Linux: ``clear_refs`` 5 resets VmHWM)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass  # not Linux, or not allowed: the lifetime peak is reported instead


def peak_rss_mib() -> float | None:
    """Peak resident memory of this process since :func:`peak_memory_reset` (or since it started)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource
        import sys
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024


# ----------------------------------------------------------------------------- settings of one stack
@dataclass(frozen=True)
class _Resolved:
    method: str
    params: dict[str, Any]
    align: dict[str, Any] | None  # None: not aligned (decided per stack when settings.align is None)
    output: Path


def output_path_for(spec: StackSpec, settings: BatchSettings, index: int) -> Path:
    """Where ``spec``'s result goes: its manifest ``output`` or the template, in the output folder."""
    from focusstudio.core.io import output_format

    method = spec.method or settings.method
    if spec.output:
        name = spec.output
    else:
        try:
            name = settings.template.format(stack=spec.name, method=method, index=index)
        except (KeyError, IndexError, ValueError) as error:
            raise InputError(
                f"output template '{settings.template}' is invalid ({error}); use {{stack}}, {{method}}, {{index}}"
            ) from None
    if Path(name).name != name or name in ("", ".", ".."):
        raise InputError(f"output name '{name}' of stack '{spec.name}' must be a file name, not a path")
    path = settings.output_dir / name
    output_format(path)  # an unsupported extension fails before any work
    return path


def _parse_params(method: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """Values that are text (CSV cells) are parsed like ``--set``; the others validated as they are."""
    texts = [f"{key}={value}" for key, value in values.items() if isinstance(value, str)]
    parsed = method.params.parse_assignments(texts)
    parsed.update({key: value for key, value in values.items() if not isinstance(value, str)})
    return method.params.resolve(parsed)


def _resolve(spec: StackSpec, settings: BatchSettings, index: int) -> _Resolved:
    from focusstudio.core.align import ALIGN_PARAMS
    from focusstudio.core.methods.registry import get_method

    method_name = spec.method or settings.method
    method = get_method(method_name)
    # Batch-wide parameters belong to the batch's method; a row with another method starts from defaults.
    base = dict(settings.params) if method_name == settings.method else {}
    params = _parse_params(method, {**base, **spec.params})
    align_values = {**settings.align_settings, **spec.align}
    texts = [f"{key}={value}" for key, value in align_values.items() if isinstance(value, str)]
    parsed = ALIGN_PARAMS.parse_assignments(texts)
    parsed.update({key: value for key, value in align_values.items() if not isinstance(value, str)})
    align = ALIGN_PARAMS.resolve(parsed)
    return _Resolved(method.name, params, align, output_path_for(spec, settings, index))


# ----------------------------------------------------------------------------- fingerprint
def input_files(inputs: Sequence[Path]) -> list[Path]:
    """The files a stack reads: a folder's images (as ``load_stack`` picks them), or the files given."""
    from focusstudio.core.io.stacks import list_folder_images

    if len(inputs) == 1 and inputs[0].is_dir():
        return list_folder_images(inputs[0])[0]
    return list(inputs)


def _file_state(path: Path) -> list[Any]:
    status = path.stat()
    return [str(path.resolve()), status.st_size, status.st_mtime_ns]


def fingerprint(resolved: _Resolved, settings: BatchSettings, files: Sequence[Path], aligned: bool) -> str:
    """A hash of everything that determines the result; OSError when an input cannot be read."""
    alignment_hash = None
    if settings.alignment_file is not None:
        alignment_hash = hashlib.sha256(Path(settings.alignment_file).read_bytes()).hexdigest()
    payload = {
        "method": resolved.method,
        "params": resolved.params,
        "align": resolved.align if aligned and alignment_hash is None else None,
        "alignment_file": alignment_hash,
        "weights": settings.weights,
        "device": settings.device,
        "inputs": [_file_state(path) for path in files],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


OutputState = Literal["absent", "current", "ours", "stale", "foreign"]


def output_state(output: Path, digest: str) -> OutputState:
    """How an existing output relates to this run (see the module docstring)."""
    from focusstudio.core.sidecar import read_sidecar, sidecar_path

    sidecar_file = sidecar_path(output)
    sidecar = read_sidecar(sidecar_file)
    batch = sidecar.get("batch") if sidecar is not None else None
    if not isinstance(batch, dict) or "fingerprint" not in batch:
        return "foreign" if output.exists() or sidecar_file.exists() else "absent"
    if batch["fingerprint"] != digest:
        return "stale"
    if batch.get("status") == "done" and output.is_file():
        status = output.stat()
        if [status.st_size, status.st_mtime_ns] == [batch.get("output_size"), batch.get("output_mtime_ns")]:
            return "current"
    return "ours"


# ----------------------------------------------------------------------------- one stack
def _alignment_summary(alignment: Any, reused: Path | None) -> str:
    count = len(alignment.frames)
    failed = len(alignment.failed)
    text = f"{alignment.model}, {count - failed}/{count} frames registered"
    if alignment.crop_box is not None:
        text += f", crop {alignment.crop_box[2]}x{alignment.crop_box[3]}"
    return text + (f" (from {reused.name})" if reused is not None else "")


def _worker_label() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def run_stack(
    spec: StackSpec,
    settings: BatchSettings,
    index: int = 1,
    cancel: CancelToken | None = None,
    analysis: Any = None,
    analysis_provider: AnalysisProvider | None = None,
) -> ProgressGen[StackOutcome]:
    """Fuse one stack; progress events span [0, 1] of this stack. ``analysis`` (a precomputed analysis
    of the method) or ``analysis_provider`` (called with the opened stack, e.g. to compute it in tiles
    on a cluster) leave only the finish to run here.

    Bad input, settings or outputs give a ``failed`` outcome with the one-line reason;
    :class:`~focusstudio.core.progress.Cancelled` and KeyboardInterrupt propagate.
    """
    cancel = cancel or CancelToken()
    started = time.perf_counter()
    peak_memory_reset()
    outcome = StackOutcome(spec.name, "failed", worker=_worker_label())
    try:
        result = yield from _fuse_and_write(spec, settings, index, cancel, outcome, analysis, analysis_provider)
        outcome.status = result
    except FocusStudioError as error:
        outcome.reason = str(error)
    except MemoryError:
        outcome.reason = "out of memory; give a smaller --memory-limit or fewer --workers"
    except OSError as error:
        outcome.reason = f"{error.filename or spec.name}: {error.strerror or error}"
    except (ValueError, RuntimeError, TypeError, IndexError, KeyError) as error:
        # A decoder or library failing on damaged data: still one line, the batch goes on.
        first_line = (str(error).strip().splitlines() or [""])[0]
        outcome.reason = f"{spec.name}: {type(error).__name__}: {first_line}"
    outcome.seconds = time.perf_counter() - started
    outcome.peak_mib = peak_rss_mib()
    return outcome


def align_request(settings: BatchSettings, align: Mapping[str, Any] | None, wanted: bool) -> Any:
    """The alignment stage's request for one stack (an
    :class:`~focusstudio.core.align.AlignRequest`, None: not aligned): the batch's saved
    registration, else a registration with the stack's settings ``align`` when ``wanted``."""
    from focusstudio.core.align import AlignRequest, registration_cache

    if settings.alignment_file is not None:
        # Only the crop applies to a saved registration (the fingerprint holds the file, not the settings).
        crop = bool(align.get("crop", True)) if align else True
        return AlignRequest.from_file(settings.alignment_file, {"crop": crop})
    # The process's pair cache: manifest rows fusing one stack with several methods register it once.
    return AlignRequest(dict(align or {}), cache=registration_cache()) if wanted else None


def open_stack(
    spec: StackSpec, settings: BatchSettings, align: Mapping[str, Any] | None, aligned: bool
) -> tuple[Any, Any]:
    """The stack's frames, with the saved registration applied when the batch has one: the same
    (stack, alignment) wherever it is opened, so tiles fanned out to workers see the client's frames."""
    from focusstudio.core.align import align_frames
    from focusstudio.core.io import load_stack
    from focusstudio.core.progress import run_to_completion

    stack = load_stack(list(spec.inputs), allow_size_mismatch=aligned)
    if settings.alignment_file is None:
        return stack, None
    frames = run_to_completion(align_frames(stack, align_request(settings, align, True)))
    return frames.stack, frames.alignment


def _fuse_and_write(
    spec: StackSpec, settings: BatchSettings, index: int, cancel: CancelToken, outcome: StackOutcome,
    analysis: Any, analysis_provider: AnalysisProvider | None,
) -> ProgressGen[Status]:
    from focusstudio.core.align import align_by_default
    from focusstudio.core.io.output_policy import OutputPlan
    from focusstudio.core.sidecar import sidecar_path

    resolved = _resolve(spec, settings, index)
    outcome.output = str(resolved.output)
    files = input_files(spec.inputs)
    wanted_alignment = settings.align if settings.align is not None else align_by_default(len(files))
    aligned = wanted_alignment or settings.alignment_file is not None
    try:
        digest = fingerprint(resolved, settings, files, aligned)
    except OSError as error:
        # An input cannot be read: the loader names it in its own words (else say it here).
        from focusstudio.core.io import load_stack

        load_stack(list(spec.inputs), allow_size_mismatch=aligned)
        raise InputError(f"cannot be read ({error.strerror or error})", error.filename or spec.name) from None
    state = output_state(resolved.output, digest)
    if state == "current" and not settings.force:
        outcome.reason = "complete and current"
        return "skipped"
    if state in ("stale", "foreign") and not settings.force:
        why = "was made from other settings or older inputs" if state == "stale" else "was not written by a batch"
        raise OutputError(f"already exists and {why}; pass --force to replace it", resolved.output)
    # Both outputs checked before any work (never one of the stack's inputs, folder writable, no
    # clobbering), staged while working, published together at the end; a failed, cancelled or
    # interrupted stack leaves nothing new. This batch's own outputs ("ours": interrupted, or
    # --force'd "current") are replaced; any other existing file only with --force.
    with OutputPlan([*files, settings.alignment_file], force=settings.force) as plan:
        plan.folder(settings.output_dir)
        ours = state in ("ours", "current")
        # The sidecar first: publication follows declaration, so a crash between the two leaves a
        # sidecar without its image, which a re-run recognises as its own and re-does. A file that
        # is missing now stays no-clobber: one appearing meanwhile is not ours.
        for path, role in ((sidecar_path(resolved.output), "the sidecar"), (resolved.output, "the fused image")):
            plan.file(path, role, replace=ours and os.path.lexists(path))
        status = yield from _fuse_into(plan, spec, settings, cancel, outcome, analysis, analysis_provider,
                                       resolved, wanted_alignment, aligned, digest)
        plan.commit()
    yield ProgressEvent("saved", 1.0, resolved.output.name)
    return status


def _fuse_into(
    plan: OutputPlan, spec: StackSpec, settings: BatchSettings, cancel: CancelToken, outcome: StackOutcome,
    analysis: Any, analysis_provider: AnalysisProvider | None, resolved: _Resolved, wanted_alignment: bool,
    aligned: bool, digest: str,
) -> ProgressGen[Status]:
    """Load, align, fuse and measure the stack, and stage its image and sidecar in ``plan``."""
    from focusstudio.core.align import align_frames
    from focusstudio.core.pipeline import ALIGN_PROGRESS_SHARE, run_fusion

    yield ProgressEvent("loading", 0.0, spec.name)
    stack, alignment = open_stack(spec, settings, resolved.align, aligned)
    outcome.frames = len(stack)
    protected = [frame.path for frame in stack.frames if frame.path is not None]
    plan.protect(protected)
    fusion_range = ProgressRange(0.0, 0.95)
    if alignment is not None:
        outcome.alignment = _alignment_summary(alignment, settings.alignment_file)
    elif wanted_alignment:
        request = align_request(settings, resolved.align, wanted_alignment)
        frames = yield from align_frames(stack, request, cancel, ProgressRange(0.0, ALIGN_PROGRESS_SHARE))
        stack, alignment = frames.stack, frames.alignment
        outcome.alignment = _alignment_summary(alignment, None)
        fusion_range = ProgressRange(ALIGN_PROGRESS_SHARE, 0.95)
    height, width = stack.shape
    outcome.size = f"{width}x{height}"
    if analysis_provider is not None:
        if wanted_alignment and settings.alignment_file is None:
            raise InputError("tiles fanned out to workers need --no-align or a saved --alignment FILE "
                             "(save one with 'focusstudio fuse --maps DIR')", spec.name)
        yield ProgressEvent("analysis", 0.05, f"{spec.name}: tiles on the cluster")
        analysis = analysis_provider(spec, stack, resolved.method, resolved.params, resolved.align)
    result = yield from fusion_range.relay(run_fusion(
        stack, resolved.method, resolved.params, device=settings.device, cancel=cancel, weights=settings.weights,
        memory_limit=settings.memory_limit, tile_size=settings.tile_size, analysis=analysis,
    ))
    cancel.raise_if_cancelled()
    if settings.metrics is not None:
        yield ProgressEvent("metrics", 0.95, spec.name)
        outcome.metrics = _measure(result, stack, settings.metrics)
    yield ProgressEvent("saving", 0.97, resolved.output.name)
    _stage_outputs(plan, resolved, settings, result, [str(path) for path in protected], alignment, digest,
                   stack.frames)
    return "done"


def _measure(result: Any, stack: Any, keys: tuple[str, ...]) -> dict[str, float]:
    from focusstudio.core.metrics import compute_metrics

    sources = [stack.load(i) for i in range(len(stack))]
    # Measure the image as it is written (8-bit results rounded like the saved file).
    fused = result.as_dtype() if result.source_dtype != "float32" else result.image
    return compute_metrics(fused, sources, metrics=list(keys) or None)


def _stage_outputs(
    plan: OutputPlan, resolved: _Resolved, settings: BatchSettings, result: Any, sources: list[str],
    alignment: Any, digest: str, frames: Any = (),
) -> None:
    """Stage the image, then its sidecar with the staged image's size and modification time (the
    published file is that very file: a link or a rename keeps both). The image keeps the camera's
    EXIF and colour profile like ``fuse`` does (a damaged one fails this stack, naming the file)."""
    from focusstudio.core.io import write_result
    from focusstudio.core.io.metadata import collect_metadata
    from focusstudio.core.sidecar import reproduce_command, sidecar_data, sidecar_path, stage_sidecar

    output = resolved.output
    align_for_command = resolved.align if alignment is not None and settings.alignment_file is None else None
    command = reproduce_command(result, sources, output, settings.device, settings.weights, align_for_command)
    data = sidecar_data(result, output, sources, command, alignment)
    if settings.alignment_file is not None:
        data["alignment_file"] = str(settings.alignment_file)
    metadata = collect_metadata(frames) if frames else None
    write_result(output, result, plan=plan, metadata=metadata)
    staged = plan.staged_stat(output)
    data["batch"] = {"fingerprint": digest, "status": "done", "output_size": staged.st_size,
                     "output_mtime_ns": staged.st_mtime_ns}
    stage_sidecar(plan, sidecar_path(output), data)


def skip_if_current(spec: StackSpec, settings: BatchSettings, index: int) -> StackOutcome | None:
    """A ``skipped`` outcome when the stack's output is complete and current, else None (also when
    that cannot be decided here): lets a parallel run skip without sending the stack to a worker."""
    from focusstudio.core.align import align_by_default

    if settings.force:
        return None
    try:
        resolved = _resolve(spec, settings, index)
        files = input_files(spec.inputs)
        aligned = (settings.align if settings.align is not None else align_by_default(len(files))) or (
            settings.alignment_file is not None
        )
        digest = fingerprint(resolved, settings, files, aligned)
    except (FocusStudioError, OSError):
        return None
    if output_state(resolved.output, digest) != "current":
        return None
    return StackOutcome(spec.name, "skipped", str(resolved.output), "complete and current", worker=_worker_label())


def run_stack_blocking(spec: StackSpec, settings: BatchSettings, index: int = 1, analysis: Any = None) -> StackOutcome:
    """:func:`run_stack` without progress: the task a worker process or a Dask worker runs."""
    from focusstudio.core.progress import run_to_completion

    return run_to_completion(run_stack(spec, settings, index, analysis=analysis))


def with_memory_share(settings: BatchSettings, workers: int) -> BatchSettings:
    """The settings for one of ``workers`` parallel workers: each gets its share of the budget (the
    given one, else the automatic one measured now for the whole machine)."""
    if workers <= 1:
        return settings
    from focusstudio.core.tiling import MINIMUM_MEMORY_LIMIT, default_memory_limit

    total = settings.memory_limit if settings.memory_limit is not None else default_memory_limit("cpu")
    return replace(settings, memory_limit=max(total // workers, MINIMUM_MEMORY_LIMIT))
