"""Frames kept as their decoded integer levels and converted to float32 band by band (issue 20).

A 24 MP colour frame is 72 MB as 8-bit levels and 288 MB as the core's float32 [0, 1]. Where a
pair of frames is only read (the composition of the fused image, the guide of a guided filter),
the levels are kept and each band of rows converted when it is used: the numbers are exactly
those of the float32 frames (the same :func:`~focusstudio.core.types.normalise_array` per band,
the same float32 arithmetic per pixel), without the two full-size float32 frames and their page
faults. Sources that are already float (in-memory stacks, float or RAW files, aligned frames) go
through unchanged, so every caller has one code path.
"""

from __future__ import annotations

import numpy as np

from focusstudio.core.ops.compose import compose_pair
from focusstudio.core.runtime import release_free_memory
from focusstudio.core.types import LEVEL_BAND_ROWS, Stack, normalise_array

__all__ = ["compose_pair_banded", "load_pair_sources", "unit_band"]


def load_pair_sources(stack: Stack) -> tuple[np.ndarray, np.ndarray]:
    """Frames 0 and 1 as integer levels where both decode to them (:meth:`Stack.load_levels`),
    else as float32 [0, 1] (:meth:`Stack.load`); either way :func:`unit_band` reads them."""
    first = stack.load_levels(0)
    second = stack.load_levels(1) if first is not None else None
    if first is None or second is None:
        return stack.load(0), stack.load(1)
    return first, second


def unit_band(source: np.ndarray, rows: slice | tuple[slice, slice]) -> np.ndarray:
    """``source[rows]`` as float32 [0, 1]: integer levels normalised, a float frame as it is."""
    band = source[rows]
    if band.dtype in (np.uint8, np.uint16):
        return normalise_array(band)
    return band


def compose_pair_banded(
    first: np.ndarray, second: np.ndarray, weight: np.ndarray, band_rows: int = LEVEL_BAND_ROWS
) -> np.ndarray:
    """``compose_pair`` (F = B + w·(A − B), not clipped) of two sources (levels or float, see
    :func:`unit_band`) and the weight of the first, band by band: exactly the values of
    ``compose_pair`` on the float32 frames, holding only the result and one band of each."""
    height = weight.shape[0]
    release_free_memory()  # the result is a run's largest block: not on top of the freed heap
    out = np.empty((*weight.shape[:2], *first.shape[2:]), dtype=np.float32)
    for start in range(0, height, band_rows):
        rows = slice(start, start + band_rows)
        out[rows] = compose_pair(unit_band(first, rows), unit_band(second, rows), weight[rows])
    return out
