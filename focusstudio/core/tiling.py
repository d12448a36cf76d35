"""Working-memory budget and tiled processing of frames that do not fit it.

A method whose output pixel depends only on a bounded neighbourhood of its input (its *halo*, the
receptive-field radius) can process a frame in overlapping tiles: each tile reads its core plus
the halo (clipped at the image border) and writes back only its core. With a halo at least as large
as the receptive field the stitched result equals the untiled one, because padding happens at the
same places (the image border) in both. :func:`map_tiles` does that crop-back; :func:`blend_tiles`
cross-fades the overlaps instead, for methods whose receptive field exceeds any affordable halo
(deep networks with global context), where the crop-back would show seams.

The tile grid (``Tile``, ``plan_tiles``, ``tile_edge``) is shared by these local operations and
by tiled network inference (:mod:`focusstudio.core.methods.engine`): a tile reads its core plus a
halo of at least the receptive-field radius and writes only its core back. ``align`` keeps tile
borders on a grid (e.g. 4 for a network with two stride-2 layers), so every tile sees the same
down-sampling phase as the whole image. Global operations (squeeze-excitation pooling, channel
attention) are not local; each method handles them itself (an exact pre-pass of the global
statistics, or frozen gates).

Memory budget: ``RunContext.memory_limit`` is None unless the user gives ``--memory-limit``;
:func:`resolve_memory_limit` then takes a safe fraction of the memory that is free *now* (the free
VRAM of a CUDA device, else the free RAM, at most 1.5 GiB), measured with psutil when installed, else
/proc/meminfo.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from focusstudio.core.ops.guided_filter import GuidedFilterCPU, GuidedFilterMode, guide_centre, guided_filter_np
from focusstudio.core.ops.tile_grid import Tile, plan_tiles, round_up
from focusstudio.core.progress import CancelToken

__all__ = [
    "DEFAULT_MEMORY_FRACTION",
    "DEFAULT_RAM_CAP",
    "MAP_BUDGET_SHARE",
    "MINIMUM_OPERATION_BUDGET",
    "MIN_TILE",
    "PERSISTENT_BYTES_PER_PIXEL",
    "BoundedGuidedFilter",
    "Tile",
    "available_device_memory",
    "available_ram",
    "blend_tiles",
    "compute_tiled",
    "default_memory_limit",
    "fits_map_budget",
    "fits_untiled",
    "map_tiles",
    "operation_budget",
    "plan_budget_tiles",
    "plan_tiles",
    "resolve_memory_limit",
    "run_budget",
    "tile_edge",
]

#: Share of the currently free memory a run may plan to use: the rest is left for the OS, the GUI,
#: the decoder's own buffers and the caller (and numpy temporaries the estimates do not count).
DEFAULT_MEMORY_FRACTION = 0.5
#: Upper bound of the automatic RAM budget. Tiling costs little (a 30 × 24 MP ``sf`` run took
#: 153 s tiled in 1.9 GB against 149 s untiled in 5.9 GB; with a 1.5 GiB budget 142 s and a peak
#: of 1783 MiB against 136 s and 1953 MiB with 2 GiB), so the default stays modest even on a
#: machine with plenty free; ``--memory-limit`` allows more. Not applied to CUDA memory.
DEFAULT_RAM_CAP = 3 * 1024**3 // 2
#: Used when the free memory cannot be measured at all.
FALLBACK_FREE_MEMORY = 4 * 1024**3
#: Never plan for less than this: tiles smaller than a few hundred pixels are all halo.
MINIMUM_MEMORY_LIMIT = 256 * 1024**2
#: The least one tiled operation gets when the whole-frame arrays already use up the budget
#: (a 600 px colour guided-filter tile, a 1600 px activity tile).
MINIMUM_OPERATION_BUDGET = 128 * 1024**2


def available_ram(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Bytes of RAM available to new allocations now, or None when it cannot be measured."""
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        pass
    else:
        return int(psutil.virtual_memory().available)
    try:
        text = meminfo.read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        # MemAvailable (Linux ≥ 3.14) counts reclaimable page cache; MemFree would be far too low.
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def available_device_memory(device: str) -> int | None:
    """Free memory of an accelerator (bytes), or None for the CPU / devices that share RAM (MPS)."""
    if not device.startswith("cuda"):
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


def default_memory_limit(device: str = "cpu", fraction: float = DEFAULT_MEMORY_FRACTION) -> int:
    """A safe working-memory budget: ``fraction`` of the free VRAM (CUDA), else ``fraction`` of the
    free RAM capped at :data:`DEFAULT_RAM_CAP`."""
    device_free = available_device_memory(device)
    if device_free is not None:
        return max(int(device_free * fraction), MINIMUM_MEMORY_LIMIT)
    free = available_ram()
    if free is None:
        free = FALLBACK_FREE_MEMORY
    return max(min(int(free * fraction), DEFAULT_RAM_CAP), MINIMUM_MEMORY_LIMIT)


def resolve_memory_limit(memory_limit: int | None, device: str = "cpu") -> int:
    """The user's budget when given, else :func:`default_memory_limit` for ``device``."""
    return int(memory_limit) if memory_limit is not None else default_memory_limit(device)


def _mib(size: int) -> str:
    return f"{size / 1024**3:.1f} GiB" if size >= 1024**3 else f"{size / 1024**2:.0f} MiB"


def _suggested_limit(size: int) -> str:
    """A ``--memory-limit`` value at least ``size``: whole MiB rounded up to 64 MiB."""
    mib = -(-size // (64 * 1024**2)) * 64
    return f"{mib / 1024:g}G" if mib % 1024 == 0 else f"{mib}M"


def run_budget(
    memory_limit: int | None, device: str, floor: int, what: str
) -> tuple[int, int, str | None]:
    """(budget, working budget, note) of one run: the one policy of every method and the window.

    ``floor`` is what the method holds for whole frames whatever the budget (its decoded frames,
    maps and result; :meth:`FusionMethod.memory_floor`). The method sizes its tiles from the
    *working* budget, ``budget − floor``, so that the peak stays within the budget. A user's
    ``memory_limit`` below ``floor`` plus :data:`MINIMUM_OPERATION_BUDGET` cannot be kept and is
    refused before any work, with the size that would do; the automatic budget is raised to it
    instead, with a note. ``what`` names the run in those messages ("sf on 2 frames of 4000×4000").
    Floors under :data:`MINIMUM_OPERATION_BUDGET` are not enforced.
    """
    from focusstudio.core.errors import ParameterError

    budget = resolve_memory_limit(memory_limit, device)
    if floor < MINIMUM_OPERATION_BUDGET:
        # Small stacks: the whole-frame arrays are lost in the fixed cost, and tests (and users)
        # may give tiny budgets on purpose to make a method stream.
        return budget, budget, None
    needed = floor + MINIMUM_OPERATION_BUDGET
    note = None
    if budget < needed:
        if memory_limit is not None:
            raise ParameterError(
                f"--memory-limit {_mib(budget)} is too small for {what}: its whole-frame arrays alone take "
                f"about {_mib(floor)}; give --memory-limit {_suggested_limit(needed)} or more"
            )
        note = (
            f"memory budget raised from {_mib(budget)} to {needed / 1024**2:.0f} MiB: the whole-frame arrays of {what} "
            "take that much"
        )
        budget = needed
    return budget, budget - floor, note


# --------------------------------------------------------------------------- tile grid
#: Smallest tile core we plan (pixels): below this the halo overhead dominates.
MIN_TILE = 64




def tile_edge(
    bytes_per_pixel: float,
    halo: int,
    memory_limit: int | None = None,
    tile_size: int | None = None,
    align: int = 1,
    device: str = "cpu",
) -> int:
    """Core edge (pixels) of a square tile whose working set fits ``memory_limit``.

    ``bytes_per_pixel`` is the network's peak working memory per input pixel (measured or
    estimated by the method). ``tile_size`` (the user's override) wins when given. Without a
    ``memory_limit`` the budget is the one every method gets
    (:func:`focusstudio.core.tiling.default_memory_limit`).
    """
    if tile_size is not None:
        return max(round_up(int(tile_size), align), align)
    budget = resolve_memory_limit(memory_limit, device)
    padded_edge = math.sqrt(max(budget, 1) / max(bytes_per_pixel, 1e-9))
    core = int(padded_edge) - 2 * halo
    return max(round_up(max(core, MIN_TILE), align), align)


def fits_untiled(height: int, width: int, edge: int) -> bool:
    """True when the whole image is no larger than one tile core (run it in one piece)."""
    return height * width <= edge * edge and max(height, width) <= 2 * edge


#: What a streaming N-frame method holds for the whole frame while one of its operations runs in
#: tiles (index maps, accumulators, the guide, the decoded frame), in bytes per pixel. It is taken
#: off the budget before the operation's tiles are sized.
PERSISTENT_BYTES_PER_PIXEL = 64


#: Share of the budget the maps a method keeps for its post stage (per-frame activities, decision
#: maps) may take; beyond it they are streamed and a change of post parameters re-runs the network.
MAP_BUDGET_SHARE = 0.5


def fits_map_budget(size: int, memory_limit: int | None = None, device: str = "cpu") -> bool:
    """True when ``size`` bytes of kept maps fit :data:`MAP_BUDGET_SHARE` of the budget."""
    return size <= int(resolve_memory_limit(memory_limit, device) * MAP_BUDGET_SHARE)


def operation_budget(
    shape: tuple[int, int],
    memory_limit: int | None = None,
    device: str = "cpu",
    persistent_bytes_per_pixel: float = PERSISTENT_BYTES_PER_PIXEL,
) -> int:
    """The part of the budget one tiled operation may use: the whole budget minus what the method
    keeps for the full frame meanwhile (never below :data:`MINIMUM_OPERATION_BUDGET`)."""
    limit = resolve_memory_limit(memory_limit, device)
    reserved = int(persistent_bytes_per_pixel * shape[0] * shape[1])
    return max(limit - reserved, MINIMUM_OPERATION_BUDGET)


def plan_budget_tiles(
    height: int,
    width: int,
    halo: int,
    bytes_per_pixel: float,
    memory_limit: int | None = None,
    tile_size: int | None = None,
    align: int = 1,
    device: str = "cpu",
) -> list[Tile]:
    """Tiles whose working set (``bytes_per_pixel`` × read-window area) fits the budget.

    One tile covering the whole frame when it fits and no ``tile_size`` is forced.
    """
    limit = resolve_memory_limit(memory_limit, device)
    if tile_size is None and height * width * bytes_per_pixel <= limit:
        return plan_tiles(height, width, max(height, width), 0)
    edge = tile_edge(bytes_per_pixel, halo, limit, tile_size, align, device)
    return plan_tiles(height, width, edge, halo, align)


def map_tiles(
    compute: Callable[[Tile], np.ndarray],
    tiles: list[Tile],
    output_shape: tuple[int, ...],
    dtype: np.dtype | type = np.float32,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """Crop-back stitching: ``compute(tile)`` returns the result over ``tile.read``; its core goes
    to ``tile.write``. Exact (tiled == untiled) for local operations when the halo covers their
    receptive field."""
    output = np.empty(output_shape, dtype=dtype)
    for tile in tiles:
        if cancel is not None:
            cancel.raise_if_cancelled()
        output[tile.write] = compute(tile)[tile.inner]
    return output


def _ramp(length: int, start_inside: bool, end_inside: bool, overlap: int) -> np.ndarray:
    """1-D blending weight over a read window: rises over ``overlap`` px from each interior edge."""
    weight = np.ones(length, dtype=np.float64)
    if overlap <= 0:
        return weight
    # (k + 0.5) / overlap keeps weights strictly positive and makes two facing ramps sum to 1.
    rise = (np.arange(min(overlap, length)) + 0.5) / overlap
    if start_inside:
        weight[: rise.size] = np.minimum(weight[: rise.size], rise)
    if end_inside:
        weight[length - rise.size :] = np.minimum(weight[length - rise.size :], rise[::-1])
    return weight


def blend_tiles(
    compute: Callable[[Tile], np.ndarray],
    tiles: list[Tile],
    output_shape: tuple[int, ...],
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """Feathered stitching: every tile's result over its whole read window is weighted by a ramp
    that rises across the overlap with each neighbour, and the weighted sum is normalised.

    For tiles from :func:`plan_tiles` neighbouring read windows overlap by twice the halo; the ramp
    spans that overlap, so the weights of two neighbours sum to 1 there and seams fade out. Image
    borders get no ramp.
    """
    height, width = output_shape[:2]
    accumulated = np.zeros(output_shape, dtype=np.float64)
    total = np.zeros((height, width), dtype=np.float64)
    for tile in tiles:
        if cancel is not None:
            cancel.raise_if_cancelled()
        rows, cols = tile.read
        result = compute(tile)
        row_overlap = 2 * tile.inner[0].start if rows.start > 0 else 2 * (rows.stop - tile.write[0].stop)
        col_overlap = 2 * tile.inner[1].start if cols.start > 0 else 2 * (cols.stop - tile.write[1].stop)
        weight = np.outer(
            _ramp(rows.stop - rows.start, rows.start > 0, rows.stop < height, row_overlap),
            _ramp(cols.stop - cols.start, cols.start > 0, cols.stop < width, col_overlap),
        )
        accumulated[tile.read] += result * (weight[..., None] if result.ndim == 3 else weight)
        total[tile.read] += weight
    if accumulated.ndim == 3:
        total = total[..., None]
    return (accumulated / total).astype(np.float32)


def compute_tiled(
    shape: tuple[int, int],
    compute: Callable[[tuple[slice, slice]], np.ndarray],
    halo: int,
    bytes_per_pixel: float,
    memory_limit: int | None = None,
    tile_size: int | None = None,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """A local operation over an image of ``shape`` (H, W), in tiles when its working set
    (``bytes_per_pixel`` per pixel) exceeds the budget.

    ``compute(window)`` returns the result over the (row, column) slices ``window`` of the image;
    the output keeps its dtype and trailing shape. One call with the whole image when it fits.
    """
    height, width = shape
    tiles = plan_budget_tiles(height, width, halo, bytes_per_pixel, memory_limit, tile_size)
    if len(tiles) == 1:
        return compute((slice(0, height), slice(0, width)))
    output: np.ndarray | None = None
    for tile in tiles:
        if cancel is not None:
            cancel.raise_if_cancelled()
        result = compute(tile.read)
        if output is None:
            output = np.empty((height, width, *result.shape[2:]), dtype=result.dtype)
        output[tile.write] = result[tile.inner]
    assert output is not None
    return output


class BoundedGuidedFilter:
    """The one tiled guided filter of every method (sf, sesf, gacn): :class:`GuidedFilterCPU`
    (same call, same numbers) in bounded memory, or :func:`guided_filter_np` on another device.

    When the guide's cached statistics plus one filtering pass fit the budget, this *is* the
    cached whole-frame filter. Otherwise every call filters tile by tile, each tile reading a halo
    of 2·radius (two cascaded box means), so the result equals the whole-frame filter; the guide
    statistics are then recomputed per tile and call, which roughly doubles the cost of a filter
    but keeps the memory at one tile's working set. ``dtype`` is the type of the result. With
    ``precision=np.float32`` every tile centres on the *whole* guide's mean, so tiles compute the
    numbers of the untiled filter. ``device`` other than the CPU: float64 torch math per tile
    (float32 on MPS), no cached statistics.
    """

    #: Float64 working set per guide pixel of a colour guide: cached statistics (~80 B) plus one
    #: filtering pass (~200 B), rounded up.
    BYTES_PER_PIXEL = 320

    def __init__(
        self,
        guide: np.ndarray,
        radius: int,
        eps: float,
        memory_limit: int | None = None,
        tile_size: int | None = None,
        mode: GuidedFilterMode | None = None,
        dtype: np.dtype | type = np.float64,
        precision: np.dtype | type = np.float64,
        device: str = "cpu",
        cancel: CancelToken | None = None,
    ) -> None:
        height, width = guide.shape[:2]
        self.dtype = np.dtype(dtype)
        self.precision = np.dtype(precision)
        self.guide = guide
        self.radius = radius
        self.eps = eps
        self.mode: GuidedFilterMode | None = mode
        self.device = device
        self.cancel = cancel
        channels = guide.shape[2] if guide.ndim == 3 else 1
        bytes_per_pixel = self.BYTES_PER_PIXEL * (channels + 1) / 4 * self.precision.itemsize / 8
        self.tiles = plan_budget_tiles(height, width, 2 * radius, bytes_per_pixel, memory_limit, tile_size)
        cpu = device == "cpu"
        self._centre = guide_centre(guide) if cpu and self.precision == np.float32 else None
        self._whole = (
            GuidedFilterCPU(guide, radius, eps, mode, self.precision, self._centre)
            if cpu and len(self.tiles) == 1 else None
        )

    @property
    def tiled(self) -> bool:
        return len(self.tiles) > 1

    def _window(self, window: tuple[slice, slice], source: np.ndarray) -> np.ndarray:
        if self.device != "cpu":
            return guided_filter_np(self.guide[window], source[window], self.radius, self.eps, self.mode, self.device)
        part = GuidedFilterCPU(self.guide[window], self.radius, self.eps, self.mode, self.precision, self._centre)
        return part(source[window])

    def __call__(self, source: np.ndarray) -> np.ndarray:
        """The filtered ``source`` (H×W), not clipped, in ``dtype`` (math in ``precision``; a
        float32 result saves a full-size float64 copy when tiled)."""
        if self._whole is not None:
            return self._whole(source).astype(self.dtype, copy=False)
        if len(self.tiles) == 1:
            whole = (slice(None), slice(None))
            return self._window(whole, source).astype(self.dtype, copy=False)
        output = np.empty(source.shape[:2], dtype=self.dtype)
        for tile in self.tiles:
            if self.cancel is not None:
                self.cancel.raise_if_cancelled()
            output[tile.write] = self._window(tile.read, source)[tile.inner]
        return output
