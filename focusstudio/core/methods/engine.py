"""The deep methods' inference engine: the tile plan of a network stage and the one loop that runs
a network over tiles (halo, stitching, progress, cancel checks).

A method gives the per-tile computation (its ``predict`` on one read window) and the engine does
the rest, so no method writes a tile loop of its own. Out of memory is not caught here: the
pipeline retries the whole run with a quarter of the budget (then the CPU), and the plan below
derives the tile edge from that budget (:func:`focusstudio.core.pipeline.fallback_attempts`), so
one retry policy covers every method.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from focusstudio.core.methods.base import RunContext
from focusstudio.core.progress import CancelToken, ProgressEvent, ProgressGen, ProgressRange
from focusstudio.core.tiling import Tile, fits_untiled, plan_tiles, tile_edge

__all__ = [
    "TileOutput",
    "is_whole",
    "network_tile_edge",
    "plan_network_tiles",
    "reporter",
    "run_tiles",
    "sum_over_tiles",
    "tile_reporter",
]

T = TypeVar("T")

#: What a tile's computation returns over the tile's read window: one array or several, each with
#: the image axes last (H×W, C×H×W, ...); None for an output a run does not produce.
TileOutput = np.ndarray | tuple[np.ndarray | None, ...]


def network_tile_edge(context: RunContext, bytes_per_pixel: float, halo: int, align: int = 1) -> int:
    """Core edge of a network stage's square tiles under the run's budget (or its tile size)."""
    return tile_edge(bytes_per_pixel, halo, context.memory_limit, context.tile_size, align, context.device)


def plan_network_tiles(
    height: int,
    width: int,
    context: RunContext,
    bytes_per_pixel: float,
    halo: int,
    align: int = 1,
    tile_size_forces_tiles: bool = True,
) -> list[Tile]:
    """Tiles of a network stage: one covering the image when it fits the memory budget, else
    square cores of the edge the budget allows (``context.tile_size`` wins) with ``halo``.

    ``bytes_per_pixel`` is the stage's peak working memory per input pixel. With
    ``tile_size_forces_tiles`` a user's tile size tiles even an image that would fit one tile (the
    methods whose tiled result is exact); otherwise such an image still runs whole (the methods
    whose tiles freeze global statistics and so differ slightly from a whole run)."""
    edge = network_tile_edge(context, bytes_per_pixel, halo, align)
    untiled = fits_untiled(height, width, edge)
    if untiled and (context.tile_size is None or not tile_size_forces_tiles):
        return plan_tiles(height, width, max(height, width), 0, align)
    return plan_tiles(height, width, edge, halo, align)


def is_whole(tiles: Sequence[Tile]) -> bool:
    """True when the plan is one tile reading the whole image (run the untiled path)."""
    return len(tiles) == 1


def reporter(progress: ProgressRange, message: str, stage: str = "network") -> Callable[[float], ProgressEvent]:
    """Progress of a sub-task: its local fraction done → an event over ``progress``."""
    return lambda fraction: progress.event(stage, fraction, message)


def tile_reporter(progress: ProgressRange, count: int, stage: str = "network") -> Callable[[float], ProgressEvent]:
    """:func:`reporter` for :func:`run_tiles` over ``count`` tiles: "tile k/count"."""
    return lambda fraction: progress.event(stage, fraction, f"tile {round(fraction * count)}/{count}")


def run_tiles(
    tiles: Sequence[Tile],
    shape: tuple[int, int],
    compute: Callable[[Tile], TileOutput],
    cancel: CancelToken,
    report: Callable[[float], ProgressEvent] | None = None,
) -> ProgressGen[tuple[np.ndarray | None, ...]]:
    """Run ``compute`` on every tile and stitch the cores of its outputs into full-size arrays.

    ``compute(tile)`` returns its outputs over ``tile.read`` (image axes last); their cores
    (``tile.inner``) are written to ``tile.write`` of arrays of the image's ``shape`` (H, W) with
    the outputs' leading axes and dtypes. The cancel token is checked before every tile and
    ``report(fraction done)`` gives a progress event after it. Returns the outputs as a tuple in
    the order ``compute`` gives them."""
    outputs: list[np.ndarray | None] | None = None
    for number, tile in enumerate(tiles):
        cancel.raise_if_cancelled()
        result = compute(tile)
        parts = result if isinstance(result, tuple) else (result,)
        if outputs is None:
            outputs = [
                None if part is None else np.empty((*part.shape[:-2], *shape), dtype=part.dtype) for part in parts
            ]
        for output, part in zip(outputs, parts, strict=True):
            if output is not None and part is not None:
                output[(..., *tile.write)] = part[(..., *tile.inner)]
        if report is not None:
            yield report((number + 1) / len(tiles))
    assert outputs is not None, "no tiles"
    return tuple(outputs)


def sum_over_tiles(
    tiles: Sequence[Tile],
    shape: tuple[int, int],
    halo: int,
    compute: Callable[[tuple[slice, slice], tuple[slice, slice]], T],
    cancel: CancelToken | None = None,
) -> T:
    """Σ over ``tiles`` of ``compute(read window, core)``: a global statistic (channel sums before
    an SE or attention layer) accumulated tile by tile. Each tile reads its core (``tile.write``)
    plus ``halo`` (the statistic's own receptive field, which may be smaller than the plan's);
    ``core`` is the core inside that window. Returns the sum (a tensor or array)."""
    height, width = shape
    total: T | None = None
    for tile in tiles:
        if cancel is not None:
            cancel.raise_if_cancelled()
        rows, cols = tile.write
        y0, y1 = max(rows.start - halo, 0), min(rows.stop + halo, height)
        x0, x1 = max(cols.start - halo, 0), min(cols.stop + halo, width)
        core = (slice(rows.start - y0, rows.stop - y0), slice(cols.start - x0, cols.stop - x0))
        part = compute((slice(y0, y1), slice(x0, x1)), core)
        total = part if total is None else total + part  # type: ignore[operator]
    assert total is not None, "no tiles"
    return total
