"""The tile grid: cover an image with cores of at most a given size, each read with a halo
(shared by the tiled operations of :mod:`focusstudio.core.tiling` and the sparse guided filter
of :mod:`focusstudio.core.ops.sparse_guided`, which sits on a floor below it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tile:
    """One tile: ``read`` is the input window, ``write`` the output window (image coordinates),
    ``inner`` the output window inside the tile's own output (tile coordinates)."""

    read: tuple[slice, slice]
    write: tuple[slice, slice]
    inner: tuple[slice, slice]


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def plan_tiles(height: int, width: int, tile: int, halo: int, align: int = 1) -> list[Tile]:
    """Cover an ``height``×``width`` image with cores of at most ``tile`` pixels a side.

    Core borders and the halo are multiples of ``align``; so are the read windows when the image
    size is (pad the image to a multiple of ``align`` first).
    """
    tile = max(round_up(tile, align), align)
    halo = round_up(halo, align)
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
