"""Tiled inference for fully convolutional networks whose output pixel depends on a bounded
neighbourhood of the input (the receptive field).

A tile reads its *core* plus a *halo* of at least the receptive-field radius on every side that
lies inside the image, and writes only its core back. With a halo ≥ the receptive-field radius
the result equals the untiled forward pass (zero padding happens at the same places: the image
border). Global operations (squeeze-excitation pooling, channel attention) are not local; each
method handles them itself (exact pre-pass of the global statistics, or frozen gates).

``align`` keeps tile borders on a grid (e.g. 4 for a network with two stride-2 layers), so every
tile sees the same down-sampling phase as the whole image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Smallest tile core we plan (pixels): below this the halo overhead dominates.
MIN_TILE = 64


@dataclass(frozen=True)
class Tile:
    """One tile: ``read`` is the input window, ``write`` the output window (image coordinates),
    ``inner`` the output window inside the tile's own output (tile coordinates)."""

    read: tuple[slice, slice]
    write: tuple[slice, slice]
    inner: tuple[slice, slice]


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def plan_tiles(height: int, width: int, tile: int, halo: int, align: int = 1) -> list[Tile]:
    """Cover an ``height``×``width`` image with cores of at most ``tile`` pixels a side.

    Core borders and the halo are multiples of ``align``; so are the read windows when the image
    size is (pad the image to a multiple of ``align`` first).
    """
    tile = max(_round_up(tile, align), align)
    halo = _round_up(halo, align)
    tiles: list[Tile] = []
    for top in range(0, height, tile):
        bottom = min(top + tile, height)
        read_top, read_bottom = max(top - halo, 0), min(bottom + halo, height)
        for left in range(0, width, tile):
            right = min(left + tile, width)
            read_left, read_right = max(left - halo, 0), min(right + halo, width)
            tiles.append(
                Tile(
                    read=(slice(read_top, read_bottom), slice(read_left, read_right)),
                    write=(slice(top, bottom), slice(left, right)),
                    inner=(
                        slice(top - read_top, bottom - read_top),
                        slice(left - read_left, right - read_left),
                    ),
                )
            )
    return tiles


def tile_edge(
    bytes_per_pixel: float,
    halo: int,
    memory_limit: int | None = None,
    tile_size: int | None = None,
    align: int = 1,
) -> int:
    """Core edge (pixels) of a square tile whose working set fits ``memory_limit``.

    ``bytes_per_pixel`` is the network's peak working memory per input pixel (measured or
    estimated by the method). ``tile_size`` (the user's override) wins when given. Without a
    ``memory_limit`` the budget is the one every method gets
    (:func:`focusstudio.core.tiling.default_memory_limit`).
    """
    if tile_size is not None:
        return max(_round_up(int(tile_size), align), align)
    from focusstudio.core.tiling import resolve_memory_limit

    budget = resolve_memory_limit(memory_limit)
    padded_edge = math.sqrt(max(budget, 1) / max(bytes_per_pixel, 1e-9))
    core = int(padded_edge) - 2 * halo
    return max(_round_up(max(core, MIN_TILE), align), align)


def fits_untiled(height: int, width: int, edge: int) -> bool:
    """True when the whole image is no larger than one tile core (run it in one piece)."""
    return height * width <= edge * edge and max(height, width) <= 2 * edge
