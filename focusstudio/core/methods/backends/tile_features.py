"""Exact channel-SE statistics of a tiled image in one encoder pass per block: every tile's block
outputs are kept between the passes (in memory, or spilled to a temporary file when they do not
fit the run's budget), so block k+1 runs on the stored outputs once block k's global statistics
are known, and the final features of each tile are read back instead of recomputed.

Why: the channel SE of the dense encoder scales block k's channels by a function of their mean
over the *whole* image, so a tiled image needs block k's statistics before block k+1 can run
anywhere. Recomputing blocks 0..k on every tile for each k (:func:`~.fast_cpu.encoder_channel_scales`,
kept as the fallback when neither memory nor disk can hold the outputs) evaluates K(K+1)/2
blocks, then K more for the forward; kept outputs evaluate K. Each tile's blocks run on the
tile's own read window, exactly as the forward of :class:`~.fast_cpu.FastEncoder` runs them, so
the kept features equal a tiled forward with the global scales; only the statistics' sums see
wider windows than before (same pixels, values equal up to convolution rounding).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from focusstudio.core.lazy import lazy_import
from focusstudio.core.methods.base import RunContext
from focusstudio.core.methods.engine import is_whole, plan_network_tiles
from focusstudio.core.progress import CancelToken, ProgressEvent, ProgressGen, run_to_completion
from focusstudio.core.tiling import MAP_BUDGET_SHARE, Tile

if TYPE_CHECKING:
    from focusstudio.core.methods.backends.fast_cpu import FastEncoder, Features

torch = lazy_import("torch")

#: Where a run keeps its tiles' block outputs: memory, a temporary file, or nowhere (recompute).
StoreMode = Literal["memory", "spill", "recompute"]

#: Free disk a spill leaves beyond its own size (bytes): never fill the user's disk.
SPILL_DISK_MARGIN = 2 * 1024**3

#: Environment variable naming the spill folder (default: the system's temporary folder).
SPILL_DIR_ENV = "FOCUSSTUDIO_SPILL_DIR"


def spill_dir() -> str:
    return os.environ.get(SPILL_DIR_ENV) or tempfile.gettempdir()


def stored_bytes(tiles: Sequence[Tile], channels: int, frames: int = 1) -> int:
    """Bytes of ``channels`` float32 channels over every tile's read window, for ``frames`` frames."""
    area = sum((t.read[0].stop - t.read[0].start) * (t.read[1].stop - t.read[1].start) for t in tiles)
    return 4 * channels * area * frames


def plan_stored_tiles(
    height: int, width: int, context: RunContext, bytes_per_pixel: float, halo: int, channels: int, frames: int = 1,
    spill: bool = True,
) -> tuple[list[Tile], StoreMode]:
    """Tiles of a network stage whose encoder outputs are kept (:class:`TileFeatureStore`), and
    where they are kept.

    One tile: nothing to keep. Otherwise in memory when the kept outputs (``channels`` per pixel
    of every read window, ``frames`` frames at once) fit :data:`MAP_BUDGET_SHARE` of the run's
    working budget; the tiles are then planned from what is left, so outputs and tiles together
    stay within the budget. Else spilled to a temporary file (explicit reads and writes: the
    file's pages are the system's cache, not the process's memory) when the disk has room with a
    margin and ``spill`` allows it; else nowhere (the statistics recompute the earlier blocks per
    pass). Spilling pays where the encoder is slow (SESF's NCHW reference arithmetic: 2450² pair,
    CPU time 42 → 34 s); GACN's channels-last blocks recompute about as fast as they are read
    back (1000² pair: 5.4 s recomputing, 5.7 s spilled, 4.4 s in memory), so it does not spill."""
    tiles = plan_network_tiles(height, width, context, bytes_per_pixel, halo)
    if is_whole(tiles):
        return tiles, "recompute"
    budget = context.resolved_memory_limit()
    needed = stored_bytes(tiles, channels, frames)
    if needed <= budget * MAP_BUDGET_SHARE:
        smaller = plan_network_tiles(height, width, replace(context, memory_limit=budget - needed),
                                     bytes_per_pixel, halo)
        if not is_whole(smaller) and stored_bytes(smaller, channels, frames) <= budget * MAP_BUDGET_SHARE:
            return smaller, "memory"
    return tiles, "spill" if spill and _disk_has_room(needed) else "recompute"


def transient_store_mode(tiles: Sequence[Tile], channels: int, context: RunContext, spill: bool = True) -> StoreMode:
    """Where the block outputs of statistics alone are kept (dropped once the scales are known):
    the tiles were planned for a whole network's working set, of which one block's is a small
    part, so memory when the outputs fit :data:`MAP_BUDGET_SHARE` of the budget, else as
    :func:`plan_stored_tiles` decides."""
    needed = stored_bytes(tiles, channels)
    if needed <= context.resolved_memory_limit() * MAP_BUDGET_SHARE:
        return "memory"
    return "spill" if spill and _disk_has_room(needed) else "recompute"


def _disk_has_room(needed: int) -> bool:
    try:
        return needed + SPILL_DISK_MARGIN <= shutil.disk_usage(spill_dir()).free
    except OSError:
        return False


class TileFeatureStore:
    """Block outputs of every tile, by (tile number, block), in memory or in an unnamed temporary
    file. A block's outputs are stored before its SE scales are known; the scales are applied
    once, on the first read after :meth:`set_scales` (written back).

    Layout as the encoder's forward keeps its features, so that the next block reads them without
    a copy: channels-last, every block's 16 channels a dense tensor of its own; reference (NCHW),
    one 64-channel tensor per tile whose leading channels are the next block's input."""

    def __init__(self, encoder: FastEncoder, mode: StoreMode, device: torch.device) -> None:
        assert mode in ("memory", "spill")
        self.encoder = encoder
        self.device = device
        self._memory: dict[tuple[int, int], torch.Tensor] = {}
        self._buffers: dict[int, torch.Tensor] = {}  # reference layout in memory: tile → 1×64×h×w
        # closed by close() / the context manager; unnamed, so nothing is left on disk after a crash
        self._file = tempfile.TemporaryFile(dir=spill_dir()) if mode == "spill" else None  # noqa: SIM115
        #: (tile, block) → (offset, shape as stored, channels-last) in the spill file
        self._where: dict[tuple[int, int], tuple[int, tuple[int, ...], bool]] = {}
        self._end = 0
        self._scales: dict[int, torch.Tensor] = {}
        self._scaled: set[tuple[int, int]] = set()
        self._workspace: torch.Tensor | None = None  # spilled, reference layout: a tile's 64 channels
        self._part_buffers: dict[int, torch.Tensor] = {}  # spilled, channels-last: block → buffer

    @property
    def spilled(self) -> bool:
        return self._file is not None

    def close(self) -> None:
        self._memory.clear()
        self._buffers.clear()
        self._part_buffers.clear()
        self._workspace = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> TileFeatureStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def save(self, tile: int, block: int, output: torch.Tensor) -> None:
        """Block ``block``'s output on tile ``tile``'s window, before its SE scaling."""
        if self._file is not None:
            self._write(tile, block, output, None)
        elif self.encoder.channels_last:
            self._memory[(tile, block)] = output
        else:
            if tile not in self._buffers:
                _, _, height, width = output.shape
                self._buffers[tile] = torch.empty((1, self.encoder.out_channels, height, width),
                                                  dtype=output.dtype, device=output.device)
            target = self._buffers[tile][:, block * self.encoder.width : (block + 1) * self.encoder.width]
            self._memory[(tile, block)] = target.copy_(output)

    def set_scales(self, block: int, scales: torch.Tensor) -> None:
        self._scales[block] = scales

    def load(self, tile: int, block: int, into: torch.Tensor | None = None) -> torch.Tensor:
        """Block ``block``'s SE-scaled output on tile ``tile``'s window. In memory: scaled in place
        on the first load. Spilled: read into ``into`` (a contiguous tensor of its shape) or a
        buffer reused for the block (valid until the next load of this block), scaled on every
        read (the same operation, so the same values: cheaper than writing it back)."""
        key = (tile, block)
        if self._file is not None:
            return self.encoder.scale_block(self._read(key, into), block, self._scales[block])
        output = self._memory[key]
        if key not in self._scaled:
            output = self.encoder.scale_block(output, block, self._scales[block])
            self._scaled.add(key)
        return output

    def inputs(self, tile: int, block: int) -> torch.Tensor | list[torch.Tensor]:
        """Blocks 0..``block``−1's scaled outputs as block ``block`` reads them (see the class)."""
        if self.encoder.channels_last:
            return [self.load(tile, j) for j in range(block)]
        width = self.encoder.width
        if self._file is None:
            for j in range(block):
                self.load(tile, j)  # scales it in place, once
            return self._buffers[tile][:, : block * width]
        _, _, height, window_width = self._where[(tile, 0)][1]
        shape = (1, self.encoder.out_channels, height, window_width)
        if self._workspace is None or tuple(self._workspace.shape) != shape:
            # reused from tile to tile (fresh pages cost page faults); the caller is done with it
            self._workspace = torch.empty(shape, dtype=torch.float32, device=self.device)
        joined = self._workspace[:, : block * width]
        for j in range(block):
            self.load(tile, j, joined[:, j * width : (j + 1) * width])
        return joined

    def features(self, tile: int) -> Features:
        """Tile ``tile``'s encoder features (every block, scaled), as the encoder's forward gives them."""
        return self.inputs(tile, len(self.encoder.blocks))

    # ------------------------------------------------------------------ spill file
    def _write(self, tile: int, block: int, output: torch.Tensor, offset: int | None) -> None:
        assert self._file is not None
        channels_last = output.shape[1] > 1 and not output.is_contiguous() and output.is_contiguous(
            memory_format=torch.channels_last)
        dense = (output.permute(0, 2, 3, 1) if channels_last else output).contiguous().cpu()
        data = memoryview(dense.numpy()).cast("B")
        if offset is None:
            offset = self._end
            self._end += len(data)
        self._where[(tile, block)] = (offset, tuple(dense.shape), channels_last)
        written = 0
        while written < len(data):  # pwrite may write less than asked (2 GiB per call on Linux)
            written += os.pwrite(self._file.fileno(), data[written:], offset + written)

    def _read(self, key: tuple[int, int], into: torch.Tensor | None) -> torch.Tensor:
        assert self._file is not None
        offset, shape, channels_last = self._where[key]
        direct = into is not None and into.device.type == "cpu" and into.is_contiguous() and not channels_last
        if direct:
            dense = into
        else:
            dense = self._part_buffers.get(key[1])
            if dense is None or tuple(dense.shape) != shape:
                dense = self._part_buffers[key[1]] = torch.empty(shape, dtype=torch.float32)
        assert dense is not None
        data = memoryview(dense.numpy()).cast("B")
        done = 0
        while done < len(data):
            count = os.preadv(self._file.fileno(), [data[done:]], offset + done)
            if count <= 0:
                raise OSError(f"spill file ended early at byte {offset + done}")
            done += count
        if direct:
            return dense
        tensor = (dense.permute(0, 3, 1, 2) if channels_last else dense).to(self.device)
        return tensor if into is None else into.copy_(tensor)


def staged_channel_scales(
    encoder: FastEncoder,
    image: torch.Tensor,
    tiles: Sequence[Tile],
    store: TileFeatureStore,
    cancel: CancelToken | None = None,
    halo: int | None = None,
) -> list[torch.Tensor]:
    """:func:`staged_channel_scales_steps` without progress events."""
    return run_to_completion(staged_channel_scales_steps(encoder, image, tiles, store, cancel, halo=halo))


def staged_channel_scales_steps(
    encoder: FastEncoder,
    image: torch.Tensor,
    tiles: Sequence[Tile],
    store: TileFeatureStore,
    cancel: CancelToken | None = None,
    report: Callable[[float], ProgressEvent] | None = None,
    halo: int | None = None,
) -> ProgressGen[list[torch.Tensor]]:
    """The cSE channel weights of every block for the whole (1×1×H×W) ``image``, one pass per
    block: pass k runs block k on every tile's read window from the stored (scaled) outputs of
    blocks 0..k−1, sums its pre-SE output over the tile's core and stores it; the global means
    then give block k's weights exactly. Afterwards ``store.features(t)`` is tile t's forward.
    ``report(fraction done)``: a progress event after every block of every tile (block k's
    work grows with k: its convolution reads k·16 channels).

    ``halo``: for statistics alone (the store dropped afterwards), each tile's blocks run on its
    core plus this many pixels (the encoder's receptive radius suffices) instead of its whole
    read window; ``store.features`` is then not a tile's forward."""
    height, width = image.shape[-2:]
    windows = [(tile.read, tile.inner) if halo is None else _core_window(tile, halo, (height, width))
               for tile in tiles]
    scales: list[torch.Tensor] = []
    blocks = len(encoder.blocks)
    weight = [max(k, 1) for k in range(blocks)]  # block 0 reads one channel, block k 16·k
    for block in range(blocks):
        total: torch.Tensor | None = None
        for number, (window, core) in enumerate(windows):
            if cancel is not None:
                cancel.raise_if_cancelled()
            with torch.inference_mode():  # per tile: the events are yielded outside of it
                if block == 0:
                    inputs: torch.Tensor | list[torch.Tensor] = image[:, :, window[0], window[1]]
                else:
                    inputs = store.inputs(number, block)
                output = encoder.block_output(inputs, block)
                sums = encoder.block_sums(output, block, core)
                total = sums if total is None else total + sums
                store.save(number, block, output)
            if report is not None:
                done = sum(weight[:block]) + weight[block] * (number + 1) / len(tiles)
                yield report(done / sum(weight))
        assert total is not None, "no tiles"
        with torch.inference_mode():
            means = (total / float(height * width)).to(image.dtype)
            scales.append(encoder.blocks[block][1].scales_from_mean(means))
        store.set_scales(block, scales[-1])
    return scales


def _core_window(tile: Tile, halo: int, shape: tuple[int, int]) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """(window, core inside it): ``tile``'s core plus ``halo`` pixels, clipped to the image."""
    (rows, cols), (height, width) = tile.write, shape
    y0, y1 = max(rows.start - halo, 0), min(rows.stop + halo, height)
    x0, x1 = max(cols.start - halo, 0), min(cols.stop + halo, width)
    core = (slice(rows.start - y0, rows.stop - y0), slice(cols.start - x0, cols.stop - x0))
    return (slice(y0, y1), slice(x0, x1)), core
