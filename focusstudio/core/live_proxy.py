"""Reduced-resolution stand-ins for live post-processing: the analysis and the frames at screen size.

While the user drags a post-processing control, the window re-runs a method's ``finish`` on a copy
of its analysis and frames shrunk to the pixels the screen shows (a 1.7 MP result shown in a
900-pixel viewport needs a quarter of the pixels), then the full resolution once the control
rests. The shrinking is generic: every array of the analysis whose first two dimensions are the
result's height and width is resized (categorical arrays — integer and boolean frame indices and
decisions — by nearest neighbour, the rest by area averaging), and so is every level of an image
pyramid (a size that halving the result's, rounding up as ``cv2.pyrDown`` does, reaches: resized to
the same level of the smaller size), inside dicts, lists and dataclasses (a deep method's serial
chain); an analysis holding anything else image-sized is not reducible and the caller falls back
to the full resolution. Spatial post-processing parameters (radii, sigmas in pixels) shrink with the
image, so the preview looks like the full result at the scale it is shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any

import cv2
import numpy as np

from focusstudio.core.methods.base import Analysis
from focusstudio.core.params import ParamSet
from focusstudio.core.types import Stack

#: Parameters whose names end like this are lengths in pixels (a guided filter's radius, a
#: Gaussian's sigma): scaled with the image. The rest (eps, area fractions, thresholds) are not.
SPATIAL_SUFFIXES = ("radius", "sigma")


#: An array of another size is "image-like" (a pyramid level, a tile) when both its first two
#: dimensions are at least this long; smaller ones (per-channel weights, a 2×C table) are kept as they are.
IMAGE_LIKE_EDGE = 16


#: Pyramid levels are recognised down to this edge (coarser "levels" are more likely small tables).
PYRAMID_EDGE = 4


class NotReducible(Exception):
    """The analysis holds image-sized data the generic shrinking does not understand."""


@dataclass(frozen=True, eq=False)
class ProxyInputs:
    """What a reduced-resolution ``finish`` runs on."""

    stack: Stack
    analysis: Analysis
    #: proxy size / full size (the same along both axes, up to rounding)
    scale: float
    full_shape: tuple[int, int]


def proxy_shape(full_shape: tuple[int, int], view_pixels: tuple[int, int]) -> tuple[int, int] | None:
    """The size (height, width) that fills a ``view_pixels`` (width, height) viewport with the whole
    image, keeping its aspect; None when that is not smaller than the image itself (no gain)."""
    height, width = full_shape
    view_width, view_height = view_pixels
    if view_width < 1 or view_height < 1:
        return None
    scale = min(view_width / width, view_height / height)
    if scale >= 0.8:  # under a 36 % saving a second resolution costs more than it gains
        return None
    return max(1, round(height * scale)), max(1, round(width * scale))


def _categorical(array: np.ndarray) -> bool:
    return array.dtype == np.bool_ or np.issubdtype(array.dtype, np.integer)


def _resize(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    size = (shape[1], shape[0])
    if _categorical(array):
        # Frame numbers and decisions must stay whole: never average two frames' indices.
        source = array.astype(np.int32) if array.dtype in (np.bool_, np.int64, np.uint32, np.uint64) else array
        small = cv2.resize(source, size, interpolation=cv2.INTER_NEAREST)
        return small.astype(array.dtype, copy=False)
    source = array if array.dtype in (np.float32, np.uint8, np.uint16) else array.astype(np.float32)
    small = cv2.resize(source, size, interpolation=cv2.INTER_AREA)
    if array.ndim == 3 and small.ndim == 2:  # OpenCV drops a single channel
        small = small[..., None]
    return small.astype(array.dtype, copy=False)


def pyramid_shapes(shape: tuple[int, int], depth: int = 24) -> list[tuple[int, int]]:
    """The sizes of an image pyramid's levels (``cv2.pyrDown`` rounds up), ``shape`` first."""
    out = [shape]
    while len(out) <= depth:  # (1, 1) repeats: pyrDown of a pixel is a pixel
        height, width = out[-1]
        out.append(((height + 1) // 2, (width + 1) // 2))
    return out


def _shrink(value: Any, full: tuple[int, int], shape: tuple[int, int]) -> Any:
    """``value`` with every full-size array (and pyramid level) resized; NotReducible for other
    image-sized content."""
    if isinstance(value, np.ndarray):
        if value.ndim >= 2 and value.shape[:2] == full:
            if value.ndim > 3:
                raise NotReducible(f"a {value.ndim}-dimensional full-size array")
            return _resize(value, shape)
        levels = pyramid_shapes(full)
        if 2 <= value.ndim <= 3 and min(value.shape[:2]) >= PYRAMID_EDGE and value.shape[:2] in levels:
            # A pyramid level (coarse ones too: they must match the smaller frames' pyramids).
            return _resize(value, pyramid_shapes(shape, len(levels))[levels.index(value.shape[:2])])
        if value.ndim >= 2 and min(value.shape[:2]) >= IMAGE_LIKE_EDGE:
            # An image-sized array of another size (a tile, a crop): cannot be shrunk here.
            raise NotReducible(f"an array of shape {value.shape}")
        return value
    if isinstance(value, dict):
        return {key: _shrink(item, full, shape) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_shrink(item, full, shape) for item in value)
    if value is None or isinstance(value, (bool, int, float, str, np.generic)):
        return value
    if is_dataclass(value) and not isinstance(value, type):
        # A FusionMap, a serial chain's record: the same object with its fields shrunk.
        changes = {item.name: _shrink(getattr(value, item.name), full, shape) for item in fields(value) if item.init}
        return replace(value, **changes)
    raise NotReducible(f"a {type(value).__name__}")


def shrink_analysis(analysis: Analysis, full_shape: tuple[int, int], shape: tuple[int, int]) -> Analysis:
    """A copy of ``analysis`` at ``shape`` (raises :class:`NotReducible`); the original is untouched."""
    return replace(
        analysis,
        maps=_shrink(dict(analysis.maps), full_shape, shape),
        data=_shrink(dict(analysis.data), full_shape, shape),
    )


def shrink_stack(stack: Stack, shape: tuple[int, int]) -> Stack:
    """The frames of ``stack`` (registered, when it is) resized to ``shape``, held in memory."""
    arrays = [_resize(stack.load(index), shape) for index in range(len(stack))]
    return Stack.from_arrays(arrays, stack.names)


class ShrunkFrames:
    """One stack's frames shrunk once, for every job that needs them at that size: the quick draft
    shrinks them, the full run's preview inputs (:func:`make_proxy`) take them from here instead
    of shrinking the same frames again (written by one job before the other reads it)."""

    def __init__(self) -> None:
        self._entry: tuple[Stack, tuple[int, int], Stack] | None = None

    def put(self, source: Stack, shape: tuple[int, int], frames: Stack) -> None:
        self._entry = (source, shape, frames)

    def get(self, source: Stack, shape: tuple[int, int]) -> Stack | None:
        """The frames of ``source`` at ``shape`` when they were put here (None: not)."""
        entry = self._entry
        return entry[2] if entry is not None and entry[0] is source and entry[1] == shape else None


def make_proxy(analysis: Analysis, stack: Stack, shape: tuple[int, int], frames: Stack | None = None) -> ProxyInputs:
    """The analysis and frames of a result at ``shape`` (raises :class:`NotReducible`); ``frames``:
    ``stack`` already shrunk to ``shape`` (by the quick draft), else they are shrunk here."""
    full = stack.shape
    small_analysis = shrink_analysis(analysis, full, shape)  # first: the cheap check that can fail
    if frames is None or frames.shape != shape or len(frames) != len(stack):
        frames = shrink_stack(stack, shape)
    return ProxyInputs(frames, small_analysis, shape[1] / full[1], full)


def scale_params(params: Mapping[str, Any], spec: ParamSet, scale: float) -> dict[str, Any]:
    """``params`` with the post-processing lengths in pixels multiplied by ``scale`` (kept within
    each parameter's bounds; a radius that was on stays at least 1)."""
    scaled = dict(params)
    for item in spec:
        if item.stage != "post" or item.kind not in ("int", "float") or not item.name.endswith(SPATIAL_SUFFIXES):
            continue
        value = params.get(item.name)
        if value is None or isinstance(value, bool):
            continue
        new: float = float(value) * scale
        if item.kind == "int":
            new = max(1 if value >= 1 else 0, round(new))
        if item.minimum is not None:
            new = max(new, item.minimum)
        scaled[item.name] = int(new) if item.kind == "int" else float(new)
    return scaled
