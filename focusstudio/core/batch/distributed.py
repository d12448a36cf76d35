"""Run a batch on a ``dask.distributed`` cluster (the optional ``distributed`` extra).

One task per stack: the task is :func:`~focusstudio.core.batch.runner.run_stack_blocking`, the
same function a local run uses, so outputs are byte-identical and the output policy (atomic
writes, no overwrite without ``force``, skip complete and current) is the same. Workers must see
the inputs and the output folder at the same paths as the client (a shared file system). A task
that raises is retried ``retries`` times; a worker that dies has its task re-run elsewhere by the
scheduler; what still fails becomes a failed stack in the report.

Huge stacks (``split_tiles``): the method's analysis is fanned out as tiles of the frame, each
reading its core plus the halo of the method's local measure (for ``sf`` the spatial-frequency
window, r + 1: the same halo that makes its local tiled run equal to the untiled one), and the
per-tile results are stitched on the client, which then runs the finish (the consistency
verification is global) and writes the result: identical to a local run. Each tile task decodes
the frames it reads whole (the readers have no region decoding), so the gain is the analysis
work and memory per worker, not the decoding.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from focusstudio.core.batch.runner import (
    BatchSettings,
    StackOutcome,
    open_stack,
    run_stack_blocking,
)
from focusstudio.core.batch.sources import StackSpec
from focusstudio.core.errors import FocusStudioError, InputError
from focusstudio.core.progress import CancelToken, ProgressGen
from focusstudio.core.runtime import tune_process

__all__ = ["TILE_ANALYSES", "run_on_dask", "sf_tile_analysis", "tiled_analysis_on"]

_EXTRA_HINT = "pip install 'focusstudio[distributed]'"


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise FocusStudioError(f"--dask and --scheduler need dask.distributed: {_EXTRA_HINT}") from None
    return distributed


def _connect(scheduler: str | None, workers: int) -> tuple[Any, Any]:
    """(client, cluster): a client of the cluster at ``scheduler``, or of a new LocalCluster of
    ``workers`` single-threaded processes (closed with the client)."""
    distributed = _import_distributed()
    if scheduler is None:
        import dask

        # Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in every worker, which turns off FocusStudio's own
        # allocator settings (focusstudio/core/runtime.py): a stack then took 1.6× as long (benchmarks/README.md).
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
        return distributed.Client(cluster), cluster
    try:
        return distributed.Client(scheduler, timeout="15s"), None
    except (OSError, TimeoutError, ValueError) as error:
        raise FocusStudioError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None


def _worker_settings(settings: BatchSettings) -> BatchSettings:
    """On a worker without an explicit budget: the default fraction of the worker's own memory limit,
    split between its threads (not the whole machine's free memory, which its neighbours share)."""
    if settings.memory_limit is not None:
        return settings
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return settings
    from focusstudio.core.tiling import DEFAULT_MEMORY_FRACTION, DEFAULT_RAM_CAP, MINIMUM_MEMORY_LIMIT

    limit = getattr(getattr(worker, "memory_manager", None), "memory_limit", None)
    if not limit:
        return settings
    threads = max(int(getattr(worker.state, "nthreads", 1) or 1), 1)
    share = min(int(limit * DEFAULT_MEMORY_FRACTION) // threads, DEFAULT_RAM_CAP)
    return replace(settings, memory_limit=max(share, MINIMUM_MEMORY_LIMIT))


def _stack_task(spec: StackSpec, settings: BatchSettings, index: int) -> StackOutcome:
    """What a worker runs for one stack."""
    tune_process()  # a worker process is started by Dask, not by our CLI
    return run_stack_blocking(spec, _worker_settings(settings), index)


# ----------------------------------------------------------------------------- tiles of one stack
def sf_tile_analysis(
    spec: StackSpec, settings: BatchSettings, align: Mapping[str, Any] | None, params: Mapping[str, Any],
    read: tuple[slice, slice], inner: tuple[slice, slice],
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``sf``'s analysis over one tile: (index of the frame with the largest activity, that activity,
    the boundary refinement's candidate or None) over the tile's core, computed on the read window
    (core + halo) exactly as ``sf.analyze`` does."""
    from focusstudio.core.methods._classical import load_checked

    tune_process()
    from focusstudio.core.methods.sf import FineSelection, energy_mask, fine_radius_of, pixel_activity

    stack, _ = open_stack(spec, settings, align, aligned=settings.alignment_file is not None)
    radius = int(params["sf_radius"])
    mask = energy_mask(stack.valid_mask, None if len(stack) == 2 else stack.shape)
    window_mask = None if mask is None else mask[read]
    best: np.ndarray | None = None
    index: np.ndarray | None = None
    fine_radius = fine_radius_of(params, len(stack))
    fine: FineSelection | None = None
    for i in range(len(stack)):
        grey = load_checked(stack, i, grey=True)
        activity = pixel_activity(grey[read], radius, window_mask)
        later_wins = None
        if best is None:
            best = activity
            index = np.zeros(activity.shape, dtype=np.int32)
            fine = None if fine_radius == 0 else FineSelection(activity.shape, fine_radius)
        else:
            later_wins = activity >= best  # ties to the later frame, as sf.analyze
            index[later_wins] = i  # type: ignore[index]
            np.maximum(best, activity, out=best)
        if fine is not None:
            whole = slice(0, activity.shape[0])
            fine.fold(i, whole, pixel_activity(grey[read], fine_radius, window_mask), later_wins)
    assert best is not None and index is not None
    return index[inner], best[inner], None if fine is None else fine.candidate()[inner]


def _sf_halo(params: Mapping[str, Any]) -> int:
    return int(params["sf_radius"]) + 1  # one left/up difference plus the window radius


def _sf_assemble(
    method: str, params: Mapping[str, Any], index: np.ndarray, best: np.ndarray, fine: np.ndarray | None = None
) -> Any:
    from focusstudio.core.methods.base import Analysis
    from focusstudio.core.methods.registry import get_method
    from focusstudio.core.methods.sf import FINE_INDEX, normalised_sf
    from focusstudio.core.types import FusionMap

    radius = int(params["sf_radius"])
    instance = get_method(method)
    maps = {"activity": FusionMap("activity", "activity", normalised_sf(best, radius),
                                  "Largest spatial frequency over the frames")}
    data: dict[str, Any] = {"index_raw": index}
    if fine is not None:
        data[FINE_INDEX] = fine
    return Analysis(instance.name, instance.analysis_params(dict(params)), maps=maps, data=data)


#: Methods whose analysis can be fanned out in tiles: (tile task, halo of params, assemble).
TILE_ANALYSES: dict[str, tuple[Callable[..., Any], Callable[[Mapping[str, Any]], int], Callable[..., Any]]] = {
    "sf": (sf_tile_analysis, _sf_halo, _sf_assemble),
}


def tiled_analysis_on(client: Any, tile_edge: int, settings: BatchSettings, retries: int) -> Callable[..., Any]:
    """An analysis provider for :func:`~focusstudio.core.batch.runner.run_stack` that fans the
    analysis out to ``client``'s workers in tiles of ``tile_edge`` pixels and stitches it."""
    from focusstudio.core.tiling import plan_tiles

    def provider(spec: StackSpec, stack: Any, method: str, params: dict[str, Any],
                 align: Mapping[str, Any] | None) -> Any:
        if method not in TILE_ANALYSES:
            raise InputError(f"--split-tiles supports the methods {', '.join(sorted(TILE_ANALYSES))}, "
                             f"not '{method}'", spec.name)
        task, halo_of, assemble = TILE_ANALYSES[method]
        height, width = stack.shape
        tiles = plan_tiles(height, width, tile_edge, halo_of(params))
        token = secrets.token_hex(4)
        futures = [
            client.submit(task, spec, settings, align, params, tile.read, tile.inner, retries=retries, pure=False,
                          key=f"tile-{spec.name}-{number}-{token}")
            for number, tile in enumerate(tiles)
        ]
        results = client.gather(futures)
        index = np.empty((height, width), dtype=np.int32)
        best = np.empty((height, width), dtype=np.float64)
        # sf's boundary refinement adds a third map per tile (None when it is off).
        fine = None if results and results[0][2] is None else np.empty((height, width), dtype=np.int32)
        for tile, (tile_index, tile_best, tile_fine) in zip(tiles, results):
            index[tile.write] = tile_index
            best[tile.write] = tile_best
            if fine is not None:
                fine[tile.write] = tile_fine
        return assemble(method, params, index, best, fine)

    return provider


# ----------------------------------------------------------------------------- the batch
def run_on_dask(
    items: Sequence[tuple[int, StackSpec]],
    total: int,
    settings: BatchSettings,
    scheduler: str | None,
    workers: int,
    split_tiles: int | None,
    retries: int,
    cancel: CancelToken,
) -> ProgressGen[None]:
    """One task per stack of ``items`` ((position in the batch, spec) pairs), or with ``split_tiles``
    each stack in turn with its analysis in tiles; yields the engine's StackStarted/StackDone events."""
    from focusstudio.core.batch.engine import StackDone, StackStarted, _label, _outcome_of, _run_in_turn

    distributed = _import_distributed()
    client, cluster = _connect(scheduler, max(workers, 1))
    count = len(items)
    names = dict(items)
    try:
        if split_tiles is not None:
            if split_tiles < 64:
                raise FocusStudioError(f"--split-tiles must be at least 64 pixels, got {split_tiles}")
            # Each stack in turn here, as a local run does, its analysis fanned out in tiles.
            yield from _run_in_turn(items, total, settings, cancel,
                                    analysis_provider=tiled_analysis_on(client, split_tiles, settings, retries))
            return
        token = secrets.token_hex(4)
        pending: dict[Any, int] = {}
        for position, spec in items:
            future = client.submit(_stack_task, spec, settings, position + 1, retries=retries, pure=False,
                                   key=f"stack-{position}-{token}")
            pending[future] = position
            yield StackStarted("stack", 0.0, _label(position, total, spec.name) + ": queued", position=position)
        finished = 0
        while pending:
            if cancel.cancelled:
                client.cancel(list(pending))
                cancel.raise_if_cancelled()
            try:
                done = distributed.wait(list(pending), timeout=0.5, return_when="FIRST_COMPLETED").done
            except TimeoutError:
                continue
            for future in done:
                position = pending.pop(future)
                finished += 1
                outcome = _outcome_of(future, names[position].name, _describe_failure)
                label = _label(position, total, names[position].name)
                yield StackDone("stack", finished / count, f"{label}: {outcome.status}", position, outcome)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _describe_failure(error: BaseException) -> str:
    name = type(error).__name__
    if name == "KilledWorker":
        return "its worker died (out of memory?) on every try; see the worker logs"
    return f"{name}: {error}"

