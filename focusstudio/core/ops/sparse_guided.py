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

import numpy as np

from focusstudio.core.ops.guided_filter import GuidedFilterCPU, GuidedFilterMode
from focusstudio.core.ops.tile_grid import Tile, plan_tiles
from focusstudio.core.progress import CancelToken

__all__ = ["SPARSE_TILE", "Tile", "changing_tiles", "guided_filter_near_changes", "plan_tiles"]

#: Core size of the sparse filter's tiles: small enough that a transition costs a narrow band of
#: tiles, large enough that the 2r halo (8 pixels for SESF's r = 4) adds little (~13 % at 256).
SPARSE_TILE = 256

#: The guide of one read window (image coordinates) as float32, H×W or H×W×3.
GuideWindow = Callable[[tuple[slice, slice]], np.ndarray]


def changing_tiles(
    source: np.ndarray, radius: int, tolerance: float = 0.0, tile: int = SPARSE_TILE
) -> Iterator[Tile]:
    """The tiles (halo 2·``radius``) over which ``source`` varies by more than ``tolerance``:
    elsewhere its guided filter is the source (``tolerance`` 0: exactly, up to float rounding;
    else within ``tolerance``, the filter being a local affine average of the source's values)."""
    height, width = source.shape[:2]
    for part in plan_tiles(height, width, tile, 2 * radius):
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
