"""Guided filtering of a decision only where it can change anything: near the decision's
transitions (issue 20: full-resolution post-processing of a decision lifted from an analysis
scale, where the decision is constant over almost all of a 24 MP frame).

The guided filter's output at x is mean_a(x)·I(x) + mean_b(x), the means over the window of
radius r around x of coefficients that each depend on the source within radius r. Where the
source is constant (c) over the 2r-neighbourhood of x, every coefficient there is a = 0, b = c,
so the output is c whatever the guide: the filter only has to run on tiles whose source varies
within a halo of 2r, each tile reading that halo, so its core equals the whole-frame filter
(OpenCV sums float32 windows in double; tiles share a fixed guide centre, see
:class:`~focusstudio.core.ops.guided_filter.GuidedFilterCPU`). The guide is asked for per tile,
so a guide that is itself a composition of the frames is never made at full size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np

from focusstudio.core.ops.guided_filter import GuidedFilterCPU, GuidedFilterMode
from focusstudio.core.progress import CancelToken

__all__ = ["SPARSE_TILE", "Tile", "changing_tiles", "grid_tiles", "guided_filter_near_changes"]

#: Core size of the sparse filter's tiles: small enough that a transition costs a narrow band of
#: tiles, large enough that the 2r halo (8 pixels for SESF's r = 4) adds little (~13 % at 256).
SPARSE_TILE = 256

class Tile(NamedTuple):
    """``read``: the window read (image coordinates), ``write``: the core written, ``inner``: the
    core inside the read window (as :class:`focusstudio.core.tiling.Tile`, a floor above ops)."""

    read: tuple[slice, slice]
    write: tuple[slice, slice]
    inner: tuple[slice, slice]


def grid_tiles(height: int, width: int, tile: int, halo: int) -> Iterator[Tile]:
    """Square cores of ``tile`` pixels (smaller at the right and bottom), each read with ``halo``
    pixels around it, clipped to the image."""
    for top in range(0, height, tile):
        bottom = min(top + tile, height)
        read_top, read_bottom = max(top - halo, 0), min(bottom + halo, height)
        for left in range(0, width, tile):
            right = min(left + tile, width)
            read_left, read_right = max(left - halo, 0), min(right + halo, width)
            yield Tile(
                (slice(read_top, read_bottom), slice(read_left, read_right)),
                (slice(top, bottom), slice(left, right)),
                (slice(top - read_top, bottom - read_top), slice(left - read_left, right - read_left)),
            )


#: The guide of one read window (image coordinates) as float32, H×W or H×W×3.
GuideWindow = Callable[[tuple[slice, slice]], np.ndarray]


def changing_tiles(
    source: np.ndarray, radius: int, tolerance: float = 0.0, tile: int = SPARSE_TILE
) -> Iterator[Tile]:
    """The tiles (halo 2·``radius``) over which ``source`` varies by more than ``tolerance``:
    elsewhere its guided filter is the source (``tolerance`` 0: exactly, up to float rounding;
    else within ``tolerance``, the filter being a local affine average of the source's values)."""
    height, width = source.shape[:2]
    for part in grid_tiles(height, width, tile, 2 * radius):
        window = source[part.read]
        if float(window.max()) - float(window.min()) > tolerance:
            yield part


def guided_filter_near_changes(
    source: np.ndarray,
    guide_window: GuideWindow,
    radius: int,
    eps: float,
    mode: GuidedFilterMode | None = None,
    centre: np.ndarray | None = None,
    tiles: Iterator[Tile] | list[Tile] | None = None,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """The float32 guided filter (:class:`GuidedFilterCPU`, single precision) of ``source``
    (H×W) with the guide ``guide_window`` gives per read window, computed on ``tiles`` (default:
    :func:`changing_tiles`) and equal to ``source`` elsewhere. ``centre``: the guide's fixed
    centre (None: each tile centres on its own window's mean — the same filter up to float
    rounding)."""
    source = np.asarray(source, dtype=np.float32)
    out = source.copy()
    for part in changing_tiles(source, radius) if tiles is None else tiles:
        if cancel is not None:
            cancel.raise_if_cancelled()
        window = GuidedFilterCPU(guide_window(part.read), radius, eps, mode, np.float32, centre)
        out[part.write] = window(source[part.read])[part.inner]
    return out
