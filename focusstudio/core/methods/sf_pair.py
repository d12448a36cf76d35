"""sf's pair path at camera resolution (issue 20): the frames kept between analysis and finish, the
tiled guided composition, and the worker threads that run sf's bands and tiles.

A 24 MP pair ran on one core (measured: wall ≈ 0.93 × CPU time, enfuse 0.73×), so its wall time
was its CPU time. The banded activity and the tiles of the guided composition write disjoint rows
and tiles and read only what no other band writes, so they run on a few threads (NumPy and OpenCV
release the GIL in their loops) and give exactly the serial result; the two frames decode at the
same time, as their integer levels where the files have them (no float32 frames, no re-encoding).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np

from focusstudio.core.ops.compose import compose_pair
from focusstudio.core.ops.guided_filter import GuidedFilterCPU
from focusstudio.core.progress import check_cancelled
from focusstudio.core.runtime import release_free_memory
from focusstudio.core.types import Stack, normalise_array

#: At most this many threads: the passes are memory-bound, and more threads only add band
#: temporaries (≈ 10 MB each) without more bandwidth.
MAX_THREADS = 4


def worker_threads() -> int:
    """Threads for sf's bands: the CPUs this process may run on, at most :data:`MAX_THREADS`."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_THREADS))


@contextmanager
def band_pool(threads: int | None = None) -> Iterator[ThreadPoolExecutor | None]:
    """A pool for :func:`run_bands` (None on a single CPU: the bands then run in the caller)."""
    count = worker_threads() if threads is None else threads
    if count <= 1:
        yield None
        return
    try:
        with ThreadPoolExecutor(max_workers=count, thread_name_prefix="sf-band") as pool:
            yield pool
    finally:
        # Each worker thread gets its own malloc arena, which keeps the band temporaries it
        # freed (≈ 50 MB a thread; measured: +106 MiB peak RSS on a 6 MP pair with 2 threads):
        # hand them back once the pool is done.
        release_free_memory()


def run_bands(work: Callable[[Any], None], items: Iterable[Any], pool: ThreadPoolExecutor | None) -> None:
    """``work(item)`` for every item, in order in the caller or on ``pool``'s threads. Each item
    must write its own rows only. The first exception is raised once the started items are done
    (the others are not started); the caller's cancellation is checked between items."""
    if pool is None:
        for item in items:
            check_cancelled()
            work(item)
        return
    futures: list[Future[None]] = [pool.submit(work, item) for item in items]
    try:
        for future in futures:
            check_cancelled()
            future.result()
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def load_levels_pair(stack: Stack, pool: ThreadPoolExecutor | None) -> list[np.ndarray] | None:
    """Frames 0 and 1 of a pair as their integer levels (:meth:`Stack.load_levels`), decoded at
    the same time on ``pool``; None when either has none (float or RAW files, in-memory or
    transformed frames), which then take the float32 path."""
    if len(stack) != 2 or any(t is not None for t in stack.transforms):
        return None
    if pool is None:
        levels = [stack.load_levels(0), stack.load_levels(1)]
    else:
        levels = list(pool.map(stack.load_levels, (0, 1)))
    if any(frame is None for frame in levels):
        return None
    return [frame for frame in levels if frame is not None]


class HeldFrame:
    """A decoded frame kept between analysis and finish, as 8-bit codes when that is exact.

    Frames decoded from 8-bit files are k/255 in float32 (``normalise_array``); rounding ×255
    recovers k, and k → float32 → /255 gives the same float32 bits back. Only untransformed 8-bit
    sources are encoded, and every 8th row of each band is checked when stored; other frames
    (16-bit, float, transformed, or failing the check) are kept as float32. Indexing returns the
    float32 pixels of a window (4× less memory held for a JPEG). Frames with integer levels on
    file are held as those levels instead (:func:`load_levels_pair`); this is the path of the
    others (in-memory arrays, aligned frames).
    """

    def __init__(self, frame: np.ndarray, codes: bool) -> None:
        self._float: np.ndarray | None = None if codes else frame
        self._codes: np.ndarray | None = np.empty(frame.shape, dtype=np.uint8) if codes else None
        self.shape = frame.shape

    @classmethod
    def start(cls, frame: np.ndarray, source_dtype: str) -> HeldFrame:
        return cls(frame, source_dtype == "uint8")

    def store_band(self, frame: np.ndarray, rows: slice) -> None:
        """Encode rows of ``frame`` (falls back to the float frame at the first inexact band;
        bands may be stored from several threads)."""
        target = self._codes
        if target is None:
            return
        scaled = frame[rows] * np.float32(255.0)
        np.rint(scaled, out=scaled)
        codes = scaled.astype(np.uint8)
        # The caller only holds 8-bit sources untransformed (k/255 by construction); every 8th row
        # is checked against that, so a frame breaking it is kept as float32 instead.
        back = codes[::8].astype(np.float32)
        back /= np.float32(255.0)
        if not np.array_equal(back, frame[rows][::8]):
            self._codes, self._float = None, frame
            return
        target[rows] = codes

    def finish_storing(self, frame: np.ndarray) -> None:
        """Drop the float frame when every band was encoded exactly."""
        if self._codes is None:
            self._float = frame

    def __getitem__(self, key: Any) -> np.ndarray:
        if self._float is not None:
            return self._float[key]
        assert self._codes is not None
        window = self._codes[key].astype(np.float32)
        window /= np.float32(255.0)
        return window


#: A pair's frame as finish reads it: a held frame, integer levels or float32 pixels.
PairFrame = np.ndarray | HeldFrame


def unit_window(frame: PairFrame, key: Any) -> np.ndarray:
    """``frame[key]`` as float32 [0, 1] (levels normalised exactly as when decoding)."""
    window = frame[key]
    if window.dtype in (np.uint8, np.uint16):
        return normalise_array(window)
    return window


def _levels8(frame: PairFrame) -> bool:
    return isinstance(frame, np.ndarray) and frame.dtype == np.uint8


def constant_weight_tables(clip: bool) -> tuple[np.ndarray, np.ndarray]:
    """``compose_pair`` of every pair of 8-bit codes (a, b) with the weight 0 and with 1, indexed
    by ``a·256 + b`` (clipped to [0, 1] when ``clip``): the same float32 operations on the same
    values as composing the decoded frames, so a tile whose weight is 0 or 1 throughout is composed
    by one table look-up per sample, bit for bit (a 24 MP pair: 1.07 → 0.32 CPU-s, measured)."""
    codes = np.arange(256, dtype=np.uint8)
    first = normalise_array(np.repeat(codes, 256)[None])
    second = normalise_array(np.tile(codes, 256)[None])
    tables = []
    for value in (0.0, 1.0):
        table = compose_pair(first, second, np.full(first.shape, value, dtype=np.float32))
        if clip:
            np.clip(table, 0.0, 1.0, out=table)
        tables.append(table[0])
    return tables[0], tables[1]


#: SESF-Fuse applies its guided filter to a guide in grey levels 0–255; eps is given on that scale.
GUIDE_SCALE = 255.0
#: Edge of the square tiles of :func:`guided_pair_tiles` (plus a halo of 2·radius each side).
GUIDED_TILE = 256


def guided_pair_tiles(
    first: PairFrame, second: PairFrame, weight: np.ndarray, radius: int, eps: float,
    pool: ThreadPoolExecutor | None = None, clip: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """SESF-Fuse's guided composition of a pair, tile by tile: (fused, filtered weight).

    The guide is the hard composition ``compose_pair(first, second, weight)`` in grey levels
    0–255; it is built per tile and never exists at full size. A tile reads a halo of 2·radius
    (two cascaded box means), so it gets the whole-frame filter's values. Where the weight is
    constant over a tile and its halo, the filter returns that constant (cov(I, p) = 0, so a = 0
    and b = mean(p) = p): the tile is not filtered, which on a decision map leaves only the tiles
    along the decision's boundaries to filter. The result then differs from the whole-frame
    float32 :class:`~focusstudio.core.ops.guided_filter.GuidedFilterCPU` by its float32 rounding
    only (bounded in tests/core/test_sf_bands.py). Each tile's float32 filter is centred on that
    tile's guide mean (any centre gives the same filter; a local one keeps the variances from
    cancelling best: measured closer to the float64 filter than the whole-frame centre).

    Tiles read only ``weight`` and the frames and write only their own pixels, so they run on
    ``pool``'s threads with the same result. ``clip``: the fused tile clipped to [0, 1] while it is
    in cache (the filtered weight is returned unclipped, as SESF uses it).
    """
    height, width = weight.shape
    halo = 2 * radius
    filtered = np.empty((height, width), dtype=np.float32)
    fused = np.empty(first.shape, dtype=np.float32)
    tables = constant_weight_tables(clip) if _levels8(first) and _levels8(second) else None

    def tile(corner: tuple[int, int]) -> None:
        y, x = corner
        inner = (slice(y, min(y + GUIDED_TILE, height)), slice(x, min(x + GUIDED_TILE, width)))
        top, left = max(y - halo, 0), max(x - halo, 0)
        read = (slice(top, min(inner[0].stop + halo, height)), slice(left, min(inner[1].stop + halo, width)))
        source = weight[read]
        low, high = source.min(), source.max()
        if low == high:
            filtered[inner] = low
        else:
            guide = compose_pair(unit_window(first, read), unit_window(second, read), source)
            guide *= GUIDE_SCALE
            band = GuidedFilterCPU(guide, radius, eps, None, np.float32)(source)
            filtered[inner] = band[y - top:inner[0].stop - top, x - left:inner[1].stop - left]
        if tables is not None and low == high and (low == 0.0 or low == 1.0):
            # Most tiles: one 8-bit pair code → the composed float32 value (see the tables).
            codes = first[inner].astype(np.uint16)
            codes <<= 8
            codes |= second[inner]
            np.take(tables[int(low)], codes, out=fused[inner], mode="clip")
            return
        out = compose_pair(unit_window(first, inner), unit_window(second, inner), filtered[inner])
        if clip:
            np.clip(out, 0.0, 1.0, out=out)
        fused[inner] = out

    corners = [(y, x) for y in range(0, height, GUIDED_TILE) for x in range(0, width, GUIDED_TILE)]
    run_bands(tile, corners, pool)
    return fused, filtered
