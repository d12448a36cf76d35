"""Run a batch: every stack is one job, on this machine (in turn, or ``workers`` processes) or on a
Dask cluster (:mod:`focusstudio.core.batch.distributed`); gather a run report.

:func:`run_batch` is a progress generator (the CLI's progress display and the window's queue are
both driven by it). Events carry the stack's position in ``message`` as ``"k/n name: detail"`` and
``BatchEvent`` subclasses say when a stack starts and ends, so a caller can show per-stack status.
The report (JSON + CSV) is rewritten after every finished stack, so an interrupted run keeps one.
Every file the batch writes goes through the output policy (:func:`check_plan` checks them all
before the first stack starts).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from focusstudio.core.batch.runner import (
    AnalysisProvider,
    BatchSettings,
    StackOutcome,
    output_path_for,
    run_stack,
    run_stack_blocking,
    skip_if_current,
    with_memory_share,
)
from focusstudio.core.batch.sources import StackSpec
from focusstudio.core.errors import FocusStudioError, InputError, OutputError
from focusstudio.core.progress import CancelToken, ProgressEvent, ProgressGen

__all__ = ["REPORT_NAME", "BatchReport", "StackDone", "StackStarted", "check_plan", "run_batch", "write_report"]

#: The run report's file names in the output folder (``.json`` and ``.csv``).
REPORT_NAME = "batch-report"
_CSV_COLUMNS = ("stack", "status", "output", "seconds", "peak_mib", "frames", "size", "alignment", "worker", "reason")


@dataclass(frozen=True)
class StackStarted(ProgressEvent):
    """Stack ``position`` (0-based) has started."""

    position: int = 0


@dataclass(frozen=True)
class StackDone(ProgressEvent):
    """Stack ``position`` has ended with ``outcome``."""

    position: int = 0
    outcome: StackOutcome | None = None


@dataclass
class BatchReport:
    """Per-stack outcomes and the run's totals."""

    root: str
    output_dir: str
    method: str
    runner: str  # "local", "local, 2 workers", "dask tcp://..."
    started: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    seconds: float = 0.0
    outcomes: list[StackOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(outcome.status == status for outcome in self.outcomes)

    @property
    def failed(self) -> list[StackOutcome]:
        return [outcome for outcome in self.outcomes if outcome.status == "failed"]

    def summary(self) -> str:
        return (f"{self.count('done')} fused, {self.count('skipped')} skipped (complete and current), "
                f"{self.count('failed')} failed, in {self.seconds:.1f} s")

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "output_dir": self.output_dir,
            "method": self.method,
            "runner": self.runner,
            "started": self.started,
            "seconds": self.seconds,
            "done": self.count("done"),
            "skipped": self.count("skipped"),
            "failed": self.count("failed"),
            "stacks": [outcome.to_json() for outcome in self.outcomes],
        }

    def to_csv(self) -> str:
        metric_names: list[str] = []
        for outcome in self.outcomes:
            metric_names.extend(name for name in outcome.metrics if name not in metric_names)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([*_CSV_COLUMNS, *metric_names])
        for outcome in self.outcomes:
            row = outcome.to_json()
            row["stack"] = outcome.name
            cells = ["" if row[column] is None else row[column] for column in _CSV_COLUMNS]
            cells[3] = f"{outcome.seconds:.3f}"
            cells[4] = "" if outcome.peak_mib is None else f"{outcome.peak_mib:.0f}"
            writer.writerow([*cells, *(f"{outcome.metrics[n]:.6f}" if n in outcome.metrics else ""
                                       for n in metric_names)])
        return buffer.getvalue()


def report_paths(folder: Path) -> tuple[Path, Path]:
    return folder / f"{REPORT_NAME}.json", folder / f"{REPORT_NAME}.csv"


def write_report(report: BatchReport, folder: Path) -> tuple[Path, Path]:
    """``batch-report.json`` and ``batch-report.csv`` in ``folder``, published together through the
    output policy. They replace the previous run's report (a run checks, in :func:`check_plan`, that
    an existing one is a batch's report, or has ``force``)."""
    from focusstudio.core.io.output_policy import OutputPlan

    json_path, csv_path = report_paths(folder)
    with OutputPlan() as plan:
        plan.folder(folder, "the report folder")
        plan.write_text(plan.file(json_path, "the run report", replace=True),
                        json.dumps(report.to_json(), indent=2) + "\n")
        plan.write_text(plan.file(csv_path, "the run report (CSV)", replace=True), report.to_csv())
        plan.commit()
    return json_path, csv_path


def _is_batch_report(path: Path) -> bool:
    """Whether ``path`` is missing or a report a batch wrote (ours to replace on a re-run)."""
    if not path.exists():
        return True
    try:
        with path.open(encoding="utf-8") as handle:
            if path.suffix == ".csv":
                return handle.readline().startswith(",".join(_CSV_COLUMNS))
            data = json.load(handle)  # a report of thousands of stacks is megabytes: read it whole
    except (OSError, ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return False
    return isinstance(data, dict) and {"runner", "stacks"} <= data.keys()


def check_plan(specs: Sequence[StackSpec], settings: BatchSettings, report_folder: Path | None = None) -> None:
    """Refuse, before any work, a batch whose stacks share a name or an output file, or one that would
    write a stack's result, a sidecar or the run report over any stack's input frame (or the saved
    registration), or replace a file that is not a batch report with the report. An output template
    that gives no usable name is refused here too; a manifest row's unusable ``output`` is left to
    fail on its own. Outputs that already exist are judged per stack (skip, re-do, or refuse)."""
    from focusstudio.core.batch.runner import input_files
    from focusstudio.core.io.output_policy import OutputPlan
    from focusstudio.core.sidecar import sidecar_path

    names: set[str] = set()
    outputs: dict[Path, str] = {}
    planned: list[tuple[Path, str]] = []
    for index, spec in enumerate(specs, start=1):
        if spec.name in names:
            raise InputError(f"two stacks are named '{spec.name}'")
        names.add(spec.name)
        try:
            path = output_path_for(spec, settings, index)
        except InputError:
            if spec.output is None:
                raise  # the batch's template: every stack would fail alike
            continue
        if path in outputs:
            raise InputError(
                f"stacks '{outputs[path]}' and '{spec.name}' would both be written to {path.name}; "
                "put {stack} in the output template"
            )
        outputs[path] = spec.name
        planned.append((path, spec.name))
    # One plan for the whole batch, only to check (force: existing outputs are each stack's affair).
    plan = OutputPlan([settings.alignment_file], force=True)
    for spec in specs:
        try:
            plan.protect(input_files(spec.inputs))
        except (FocusStudioError, OSError):
            continue  # an unreadable stack fails on its own, with the loader's words
    plan.folder(settings.output_dir)
    folder = report_folder or settings.output_dir
    if folder != settings.output_dir:
        plan.folder(folder, "the report folder")
    for report_file in report_paths(folder):
        plan.file(report_file, "the run report")
        if not settings.force and not _is_batch_report(report_file):
            raise OutputError("already exists and is not a batch report; choose another output folder or "
                              "pass --force to replace it", report_file)
    for path, name in planned:
        plan.file(path, f"the result of stack '{name}'")
        plan.file(sidecar_path(path), f"the sidecar of stack '{name}'")


def _label(position: int, total: int, name: str) -> str:
    return f"{position + 1}/{total} {name}"


def run_batch(
    specs: Sequence[StackSpec],
    settings: BatchSettings,
    workers: int = 1,
    cancel: CancelToken | None = None,
    root: str = "",
    scheduler: str | None = None,
    use_dask: bool = False,
    split_tiles: int | None = None,
    retries: int = 2,
    report_folder: Path | None = None,
) -> ProgressGen[BatchReport]:
    """Fuse every stack; the report is also written to ``report_folder`` (default: the output folder).

    ``workers`` > 1 runs that many worker processes with the memory budget split between them;
    ``scheduler`` (an address) or ``use_dask`` (a LocalCluster of ``workers`` processes) runs on Dask,
    ``split_tiles`` there fans each stack's analysis out in tiles of that edge.
    """
    cancel = cancel or CancelToken()
    if not specs:
        raise InputError("no stacks to fuse", root or None)
    check_plan(specs, settings, report_folder)
    # Made here, once, so that no stack's plan (maybe in another process) creates or removes it; a run
    # that ends without writing anything removes it again.
    made_output_dir = not settings.output_dir.exists()
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    report_folder = report_folder or settings.output_dir
    if scheduler is not None or use_dask:
        from focusstudio.core.batch.distributed import run_on_dask

        runner = f"dask {scheduler}" if scheduler else f"dask LocalCluster, {workers} workers"
        steps_for: RunnerSteps = partial(
            run_on_dask, settings=settings, scheduler=scheduler, workers=workers, split_tiles=split_tiles,
            retries=retries, cancel=cancel)
    elif workers > 1:
        runner = f"local, {workers} workers"
        steps_for = partial(_run_in_processes, settings=with_memory_share(settings, workers), workers=workers,
                            cancel=cancel)
    else:
        runner = "local"
        steps_for = partial(_run_in_turn, settings=settings, cancel=cancel)
    report = BatchReport(root, str(settings.output_dir), settings.method, runner)
    started = time.perf_counter()
    outcomes: dict[int, StackOutcome] = {}
    try:
        for event in _skipping_current(specs, settings, steps_for, parallel=runner != "local"):
            if isinstance(event, StackDone) and event.outcome is not None:
                outcomes[event.position] = event.outcome
                report.outcomes = [outcomes[key] for key in sorted(outcomes)]
                report.seconds = time.perf_counter() - started
                write_report(report, report_folder)
            yield event
    finally:
        report.outcomes = [outcomes[key] for key in sorted(outcomes)]
        report.seconds = time.perf_counter() - started
        if outcomes:
            write_report(report, report_folder)
        elif made_output_dir:
            with contextlib.suppress(OSError):
                settings.output_dir.rmdir()  # only when empty
    return report


#: The stacks a runner gets: (position in the whole batch, spec).
Items = Sequence[tuple[int, StackSpec]]
RunnerSteps = Callable[[Items, int], ProgressGen[None]]


def _skipping_current(
    specs: Sequence[StackSpec], settings: BatchSettings, steps_for: RunnerSteps, parallel: bool
) -> ProgressGen[None]:
    """Run ``steps_for`` on the stacks that are not complete and current. For a parallel run those are
    found here first, so a re-run starts no worker (and no cluster) for stacks it would skip."""
    total = len(specs)
    items = list(enumerate(specs))
    if parallel:
        remaining = []
        for position, spec in items:
            outcome = skip_if_current(spec, settings, position + 1)
            if outcome is None:
                remaining.append((position, spec))
            else:
                yield StackDone("stack", 0.0, f"{_label(position, total, spec.name)}: skipped", position, outcome)
        items = remaining
    if not items:
        return
    skipped = total - len(items)
    for event in steps_for(items, total):
        # The runner's fraction is over its own stacks; the skipped ones count as done.
        fraction = (skipped + event.fraction * len(items)) / total
        if isinstance(event, StackDone):
            yield StackDone(event.stage, fraction, event.message, event.position, event.outcome)
        elif isinstance(event, StackStarted):
            yield StackStarted(event.stage, fraction, event.message, position=event.position)
        else:
            yield ProgressEvent(event.stage, fraction, event.message)


def _run_in_turn(
    items: Items, total: int, settings: BatchSettings, cancel: CancelToken,
    analysis_provider: AnalysisProvider | None = None,
) -> ProgressGen[None]:
    """Stacks one after the other in this process (``analysis_provider``: their analyses elsewhere)."""
    count = len(items)
    for number, (position, spec) in enumerate(items):
        cancel.raise_if_cancelled()
        label = _label(position, total, spec.name)
        yield StackStarted("stack", number / count, label, position=position)
        steps = run_stack(spec, settings, position + 1, cancel, analysis_provider=analysis_provider)
        while True:
            try:
                event = next(steps)
            except StopIteration as stop:
                outcome: StackOutcome = stop.value
                break
            detail = f"{event.stage} {event.message}".strip()
            yield ProgressEvent(event.stage, (number + event.fraction) / count, f"{label}: {detail}")
        yield StackDone("stack", (number + 1) / count, f"{label}: {outcome.status}", position, outcome)


def _run_in_processes(
    items: Items, total: int, settings: BatchSettings, workers: int, cancel: CancelToken
) -> ProgressGen[None]:
    """Stacks in ``workers`` processes (spawned: safe from a threaded caller such as the window)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    count = len(items)
    names = dict(items)
    executor = ProcessPoolExecutor(max_workers=min(workers, count), mp_context=multiprocessing.get_context("spawn"))
    pending: dict[Future[StackOutcome], int] = {}
    try:
        for position, spec in items:
            pending[executor.submit(run_stack_blocking, spec, settings, position + 1)] = position
            yield StackStarted("stack", 0.0, _label(position, total, spec.name) + ": queued", position=position)
        finished = 0
        while pending:
            done, _ = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            if cancel.cancelled:
                for future in pending:
                    future.cancel()
                cancel.raise_if_cancelled()
            for future in done:
                position = pending.pop(future)
                finished += 1
                outcome = _outcome_of(future, names[position].name)
                label = _label(position, total, names[position].name)
                yield StackDone("stack", finished / count, f"{label}: {outcome.status}", position, outcome)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _outcome_of(future: Any, name: str, describe: Callable[[BaseException], str] | None = None) -> StackOutcome:
    """The outcome a worker returned, or a failure naming what killed it (a crashed worker process)."""
    try:
        return future.result()
    except Exception as error:
        reason = describe(error) if describe is not None else f"{type(error).__name__}: {error}"
        return StackOutcome(name, "failed", reason=reason.splitlines()[0] if reason else type(error).__name__)
