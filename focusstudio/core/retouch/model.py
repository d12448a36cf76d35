"""The retouch model: strokes painted into per-pixel frame weights over a fusion result.

The retouched image is, per pixel,

    out = B · base + Σ_k E_k · frame_k

where ``base`` is the method's own result (composed from source pixels, or a network's output
for end-to-end methods such as UFA), ``B`` the weight left to it and ``E_k`` the weight of
(aligned) source frame ``k`` times the luminosity gain it was painted with. Painting frame ``k``
with coverage ``c`` blends every weight towards "all frame k": ``B ← B(1−c)``, ``E_j ← E_j(1−c)``,
``E_k ← E_k(1−c) + c·g``; the eraser blends towards "all base". A stroke's coverage is the
maximum of its segments' coverage (one stroke never builds up past its opacity), computed against
the weights from before the stroke, which are kept per tile for undo anyway.

Only the dirty rectangle of a segment is recomposed, from frames cached in memory in a compact
dtype, so a segment costs the same on a 1 MP and a 24 MP image. ``B`` and each ``E_k`` exist only
once something is painted (``E_k``: once frame ``k`` is painted).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import cv2
import numpy as np

from focusstudio.core.retouch.brush import (
    POINT_DECIMALS,
    Brush,
    Rect,
    Stroke,
    falloff,
    segment_distance,
    segment_rect,
    union,
)
from focusstudio.core.types import RGB2GRAY_WEIGHTS, from_unit_float, to_grey

if TYPE_CHECKING:
    from focusstudio.core.types import FusionResult, Stack

#: Edge of the tiles undo snapshots are kept in.
TILE = 256
#: Memory the undo history may hold (tile snapshots of the weights); older strokes stay painted
#: and saved but can no longer be undone once the newer ones fill it.
UNDO_BYTES = 1 << 30
#: Luminosity gains are kept within this range: a larger ratio is not an exposure difference.
GAIN_RANGE = (0.5, 2.0)


class FrameCache:
    """Source frames (aligned, as the stack loads them) kept in memory once used, compactly: 16-bit
    for integer sources (error ≤ 1/131070, far below an 8- or 16-bit level), float32 otherwise."""

    def __init__(self, load: Callable[[int], np.ndarray], count: int, dtype: str = "uint16") -> None:
        self._load = load
        self.count = count
        self._dtype = "float32" if dtype == "float32" else "uint16"
        self._frames: dict[int, np.ndarray] = {}

    @classmethod
    def of_stack(cls, stack: Stack) -> FrameCache:
        return cls(stack.load, len(stack), stack.dtype)

    def loaded(self, index: int) -> bool:
        """Whether frame ``index`` is in memory (the window decodes frames in a worker and paints
        only once they are: decoding a 24 MP frame on the GUI thread freezes the window)."""
        return index in self._frames

    def ensure(self, index: int) -> np.ndarray:
        if not 0 <= index < self.count:
            raise IndexError(f"frame {index} is not in this stack of {self.count} frames")
        frame = self._frames.get(index)
        if frame is None:
            image = self._load(index)
            frame = image.astype(np.float32) if self._dtype == "float32" else from_unit_float(image, "uint16")
            self._frames[index] = frame
        return frame

    def region(self, index: int, rect: Rect) -> np.ndarray:
        """float32 [0, 1] pixels of frame ``index`` inside ``rect``."""
        row0, row1, col0, col1 = rect
        pixels = self.ensure(index)[row0:row1, col0:col1]
        if pixels.dtype == np.uint16:
            return pixels.astype(np.float32) * np.float32(1.0 / 65535.0)
        return pixels

    def raw(self, index: int, rect: Rect) -> tuple[np.ndarray, float]:
        """The stored pixels of frame ``index`` inside ``rect`` (a view) and the factor to [0, 1]."""
        row0, row1, col0, col1 = rect
        pixels = self.ensure(index)[row0:row1, col0:col1]
        return pixels, (1.0 / 65535.0 if pixels.dtype == np.uint16 else 1.0)

    def samples(self, index: int, rect: Rect, step: int, mask: np.ndarray) -> np.ndarray:
        """float32 [0, 1] pixels of frame ``index`` on the ``step`` grid of ``rect`` where ``mask``."""
        row0, row1, col0, col1 = rect
        values = self.ensure(index)[row0:row1:step, col0:col1:step][mask]
        if values.dtype == np.uint16:
            return values.astype(np.float32) * np.float32(1.0 / 65535.0)
        return values

    def forget(self, keep: Iterable[int] = ()) -> None:
        """Drop cached frames other than ``keep`` (memory: 48 MB per 24 MP RGB frame and channel)."""
        kept = set(keep)
        for index in [i for i in self._frames if i not in kept]:
            del self._frames[index]


@dataclass
class _TileState:
    """The weights of one tile: B and every E_k (None: the layer had no weight there yet)."""

    base: np.ndarray | None
    frames: dict[int, np.ndarray | None]


@dataclass
class _Entry:
    """One stroke in the undo history with its tiles before (and, once undone, after) it."""

    stroke: Stroke
    before: dict[tuple[int, int], _TileState] | None  # None: dropped from the undo history
    after: dict[tuple[int, int], _TileState] | None = None
    rect: Rect | None = None

    def nbytes(self) -> int:
        total = 0
        for states in (self.before or {}, self.after or {}):
            for state in states.values():
                total += state.base.nbytes if state.base is not None else 0
                total += sum(a.nbytes for a in state.frames.values() if a is not None)
        return total


@dataclass
class _Active:
    stroke: Stroke
    before: dict[tuple[int, int], _TileState] = field(default_factory=dict)
    rect: Rect | None = None
    gain: float = 1.0
    border_result: float = 0.0  # Σ of the current result (grey) over the stroke's border so far
    border_frame: float = 0.0  # Σ of the painted frame (grey) there


class RetouchModel:
    """A fusion result plus painted strokes; see the module docstring for the arithmetic.

    Painting: :meth:`begin_stroke`, :meth:`extend_stroke` per mouse move, :meth:`end_stroke`; each
    returns the rectangle of :attr:`image` that changed. :meth:`undo` / :meth:`redo` work on whole
    strokes. :attr:`strokes` is the list to save; :meth:`apply` replays one.
    """

    def __init__(self, base: np.ndarray, frames: FrameCache, names: Sequence[str] = ()) -> None:
        if base.ndim not in (2, 3):
            raise ValueError(f"unsupported result shape {base.shape}")
        self.base = base
        self.frames = frames
        self.names = tuple(names)
        self.shape: tuple[int, int] = (int(base.shape[0]), int(base.shape[1]))
        #: The retouched image (float32 [0, 1]); equals ``base`` until something is painted.
        self.image = np.array(base, dtype=np.float32, copy=True)
        self._base_weight: np.ndarray | None = None
        self._frame_weights: dict[int, np.ndarray] = {}
        self._scratch: np.ndarray | None = None  # the active stroke's coverage
        self._active: _Active | None = None
        self._done: list[_Entry] = []
        self._undone: list[_Entry] = []

    @classmethod
    def from_result(cls, result: FusionResult, stack: Stack) -> RetouchModel:
        if tuple(result.image.shape[:2]) != tuple(stack.shape):
            raise ValueError(f"the result is {result.image.shape[:2]} but the frames are {stack.shape}")
        return cls(result.image, FrameCache.of_stack(stack), stack.names)

    def rebased(self, base: np.ndarray, frames: FrameCache | None = None) -> RetouchModel:
        """A model over a new result of the same stack (fused again with other post-processing) with
        this model's strokes replayed on it: the gains are matched to the new surroundings, exactly
        as ``fuse --retouch`` does. ``frames``: the new stack's frames when it was aligned anew."""
        if tuple(base.shape[:2]) != self.shape:
            raise ValueError(f"the new result is {base.shape[:2]}, the strokes were painted on {self.shape}")
        model = RetouchModel(base, frames or self.frames, self.names)
        model.apply_all(self.strokes)
        return model

    # ------------------------------------------------------------------ state
    @property
    def strokes(self) -> list[Stroke]:
        """The strokes that make the current image, oldest first (undone strokes excluded)."""
        return [entry.stroke for entry in self._done]

    @property
    def painting(self) -> bool:
        return self._active is not None

    def can_undo(self) -> bool:
        return bool(self._done) and self._done[-1].before is not None and self._active is None

    def can_redo(self) -> bool:
        return bool(self._undone) and self._active is None

    def painted(self, rect: Rect | None = None) -> np.ndarray:
        """float32 H×W (or ``rect``): how much each pixel is painted (1 − the base's weight)."""
        row0, row1, col0, col1 = rect or (0, self.shape[0], 0, self.shape[1])
        if self._base_weight is None:
            return np.zeros((row1 - row0, col1 - col0), np.float32)
        return 1.0 - self._base_weight[row0:row1, col0:col1]

    def painted_frame(self, rect: Rect | None = None) -> np.ndarray:
        """int32 H×W (or ``rect``): the frame with the largest painted weight, −1 where unpainted."""
        row0, row1, col0, col1 = rect or (0, self.shape[0], 0, self.shape[1])
        best = np.full((row1 - row0, col1 - col0), -1, np.int32)
        largest = np.zeros(best.shape, np.float32)
        for index, weights in self._frame_weights.items():
            values = weights[row0:row1, col0:col1]
            larger = values > largest
            best[larger] = index
            largest = np.maximum(largest, values)
        return best

    # ------------------------------------------------------------------ painting
    def prepare_frame(self, index: int) -> None:
        """Load frame ``index`` now (the first stroke from a frame otherwise pays its decoding)."""
        self.frames.ensure(index)

    def begin_stroke(self, frame: int | None, brush: Brush, x: float, y: float, match: bool = True) -> Rect | None:
        if self._active is not None:
            self.end_stroke()
        if frame is not None:
            self.frames.ensure(frame)
        if self._base_weight is None:
            self._base_weight = np.ones(self.shape, np.float32)
        if frame is not None and frame not in self._frame_weights:
            self._frame_weights[frame] = np.zeros(self.shape, np.float32)
        if self._scratch is None:
            self._scratch = np.zeros(self.shape, np.float32)
        self._active = _Active(Stroke(frame, brush, [], match and frame is not None))
        return self.extend_stroke(x, y)

    def extend_stroke(self, x: float, y: float) -> Rect | None:
        """Paint the segment from the stroke's last point to (x, y); the changed rectangle."""
        active = self._active
        if active is None:
            raise RuntimeError("extend_stroke without begin_stroke")
        point = (round(float(x), POINT_DECIMALS), round(float(y), POINT_DECIMALS))  # as saved
        points = active.stroke.points
        start = points[-1] if points else point
        # Moves shorter than a tenth of the radius paint nothing new worth recording: skipping
        # them keeps saved strokes compact (what is recorded is exactly what was painted).
        if points and np.hypot(point[0] - start[0], point[1] - start[1]) < max(0.5, 0.1 * active.stroke.brush.radius):
            return None
        points.append(point)
        return self._paint_segment(active, start, point)

    def end_stroke(self) -> Rect | None:
        """Finish the stroke (an undo step); the rectangle it changed in all."""
        active = self._active
        if active is None:
            return None
        self._active = None
        assert self._scratch is not None
        for key in active.before:
            self._scratch[self._tile_slices(key)] = 0.0
        if active.rect is None:
            return None
        self._done.append(_Entry(active.stroke, active.before, rect=active.rect))
        self._undone.clear()
        self._trim_history()
        return active.rect

    def _trim_history(self) -> None:
        """Forget the snapshots of the oldest strokes beyond UNDO_BYTES (they stay painted)."""
        used, budget = 0, UNDO_BYTES
        for entry in reversed(self._done):
            if entry.before is None:
                break
            used += entry.nbytes()
            if used > budget:
                entry.before = None

    def apply(self, stroke: Stroke) -> Rect | None:
        """Paint a whole recorded stroke (replay from a file); the rectangle it changed."""
        if not stroke.points:
            return None
        first, *rest = stroke.points
        self.begin_stroke(stroke.frame, stroke.brush, *first, match=stroke.match)
        for point in rest:
            self.extend_stroke(*point)
        return self.end_stroke()

    def apply_all(self, strokes: Iterable[Stroke]) -> None:
        for stroke in strokes:
            self.apply(stroke)

    # ------------------------------------------------------------------ undo
    def undo(self) -> Rect | None:
        if not self.can_undo():
            return None
        entry = self._done.pop()
        assert entry.before is not None
        entry.after = {key: self._capture(key) for key in entry.before}
        for key, state in entry.before.items():
            self._restore(key, state)
        self._undone.append(entry)
        return entry.rect

    def redo(self) -> Rect | None:
        if not self.can_redo():
            return None
        entry = self._undone.pop()
        assert entry.after is not None
        for key, state in entry.after.items():
            self._restore(key, state)
        entry.after = None
        self._done.append(entry)
        return entry.rect

    # ------------------------------------------------------------------ results
    def retouched_result(self, result: FusionResult) -> FusionResult:
        """``result`` with the retouched image (same method, parameters and maps) and a note."""
        if not self._done:
            return result
        note = f"retouched by hand: {len(self._done)} stroke{'s' if len(self._done) != 1 else ''}"
        return replace(result, image=self.image.copy(), notes=(*result.notes, note))

    # ------------------------------------------------------------------ internals
    def _tile_slices(self, key: tuple[int, int]) -> tuple[slice, slice]:
        return slice(key[0] * TILE, (key[0] + 1) * TILE), slice(key[1] * TILE, (key[1] + 1) * TILE)

    def _capture(self, key: tuple[int, int]) -> _TileState:
        rows, cols = self._tile_slices(key)
        assert self._base_weight is not None
        return _TileState(
            self._base_weight[rows, cols].copy(),
            {index: weights[rows, cols].copy() for index, weights in self._frame_weights.items()},
        )

    def _restore(self, key: tuple[int, int], state: _TileState) -> None:
        rows, cols = self._tile_slices(key)
        assert self._base_weight is not None
        self._base_weight[rows, cols] = 1.0 if state.base is None else state.base
        for index, weights in self._frame_weights.items():
            saved = state.frames.get(index)
            weights[rows, cols] = 0.0 if saved is None else saved
        self._compose(self._clip((rows.start, rows.stop, cols.start, cols.stop)))

    def _clip(self, rect: Rect) -> Rect:
        return (rect[0], min(rect[1], self.shape[0]), rect[2], min(rect[3], self.shape[1]))

    def _paint_segment(self, active: _Active, p0: tuple[float, float], p1: tuple[float, float]) -> Rect | None:
        stroke = active.stroke
        brush = stroke.brush
        rect = segment_rect(p0, p1, brush.radius, self.shape)
        if rect[0] >= rect[1] or rect[2] >= rect[3]:
            return None
        assert self._scratch is not None and self._base_weight is not None
        if stroke.match and stroke.frame is not None:
            self._update_gain(active, p0, p1)
        row0, row1, col0, col1 = rect
        coverage = self._scratch[row0:row1, col0:col1]
        painted = falloff(segment_distance(p0, p1, rect), brush)
        # Only where this segment raises the stroke's coverage does anything change: the rest of the
        # rectangle (the part the previous segment already painted) is neither blended nor composed.
        grown = painted > coverage
        rows, cols = np.flatnonzero(grown.any(axis=1)), np.flatnonzero(grown.any(axis=0))
        if rows.size == 0:
            return None
        np.maximum(coverage, painted, out=coverage)
        rect = (row0 + int(rows[0]), row0 + int(rows[-1]) + 1, col0 + int(cols[0]), col0 + int(cols[-1]) + 1)
        row0, row1, col0, col1 = rect
        # Weights are rewritten tile by tile from the tile's state before the stroke.
        for tile_row in range(row0 // TILE, (row1 - 1) // TILE + 1):
            for tile_col in range(col0 // TILE, (col1 - 1) // TILE + 1):
                key = (tile_row, tile_col)
                before = active.before.get(key)
                if before is None:
                    before = active.before[key] = self._capture(key)
                self._blend_tile(key, before, rect, stroke, active.gain)
        self._compose(rect)
        active.rect = union(active.rect, rect)
        return rect

    def _blend_tile(self, key: tuple[int, int], before: _TileState, rect: Rect, stroke: Stroke, gain: float) -> None:
        assert self._scratch is not None and self._base_weight is not None
        top, left = key[0] * TILE, key[1] * TILE
        row0, row1 = max(rect[0], top), min(rect[1], top + TILE)
        col0, col1 = max(rect[2], left), min(rect[3], left + TILE)
        if row0 >= row1 or col0 >= col1:
            return
        local = (slice(row0 - top, row1 - top), slice(col0 - left, col1 - left))
        cover = self._scratch[row0:row1, col0:col1] * np.float32(stroke.brush.opacity)
        keep = 1.0 - cover
        assert before.base is not None
        base = before.base[local] * keep
        if stroke.frame is None:
            base += cover
        self._base_weight[row0:row1, col0:col1] = base
        for index, weights in self._frame_weights.items():
            saved = before.frames.get(index)
            values = saved[local] * keep if saved is not None else np.zeros_like(cover)
            if index == stroke.frame:
                values += cover * np.float32(gain)
            weights[row0:row1, col0:col1] = values

    def _update_gain(self, active: _Active, p0: tuple[float, float], p1: tuple[float, float]) -> None:
        """Luminosity matching: the gain is Σ result / Σ frame (grey) over the stroke's border seen so
        far: a ring just outside the brush, on pixels the stroke has not painted. The ring is
        sampled on a grid of at most ~64 k points (a mean needs no more)."""
        assert self._scratch is not None and active.stroke.frame is not None
        radius = active.stroke.brush.radius
        margin = max(4.0, 0.5 * radius)
        window = segment_rect(p0, p1, radius + margin, self.shape)
        row0, row1, col0, col1 = window
        step = max(1, math.ceil(math.sqrt((row1 - row0) * (col1 - col0) / 65536)))
        distance = segment_distance(p0, p1, window, step)
        ring = (distance > radius) & (distance <= radius + margin)
        ring &= self._scratch[row0:row1:step, col0:col1:step] == 0.0
        if not ring.any():
            return
        result = _grey_values(self.image[row0:row1:step, col0:col1:step][ring])
        frame = _grey_values(self.frames.samples(active.stroke.frame, window, step, ring))
        active.border_result += float(result.sum())
        active.border_frame += float(frame.sum())
        if active.border_frame > 1e-6 * ring.size:
            active.gain = float(np.clip(active.border_result / active.border_frame, *GAIN_RANGE))

    def _compose(self, rect: Rect) -> None:
        row0, row1, col0, col1 = rect
        if row0 >= row1 or col0 >= col1 or self._base_weight is None:
            return
        colour = self.base.ndim == 3
        fused = np.multiply(self.base[row0:row1, col0:col1], _spread(self._base_weight[row0:row1, col0:col1], colour))
        product: np.ndarray | None = None
        for index, weights in self._frame_weights.items():
            values = weights[row0:row1, col0:col1]
            if not values.any():
                continue
            # The frame's stored integers times (weight × scale): no float copy of the frame.
            pixels, scale = self.frames.raw(index, rect)
            if colour != (pixels.ndim == 3):
                pixels, scale = self.frames.region(index, rect), 1.0
                pixels = np.repeat(pixels[..., None], 3, axis=2) if colour else to_grey(pixels)
            if product is None:
                product = np.empty(fused.shape, np.float32)
            np.multiply(pixels, _spread(values * np.float32(scale), colour), out=product, dtype=np.float32)
            fused += product
        np.clip(fused, 0.0, 1.0, out=self.image[row0:row1, col0:col1])


def _spread(weights: np.ndarray, colour: bool) -> np.ndarray:
    """H×W weights as H×W×3 for colour images: a contiguous copy, since multiplying by a broadcast
    H×W×1 runs NumPy's inner loop over 3 elements at a time (≈4× slower on a brush-sized rect)."""
    return cv2.merge([weights, weights, weights]) if colour else weights


def _grey_values(values: np.ndarray) -> np.ndarray:
    """float64 grey of N×3 (or N) samples, in the stored scale (a ratio of sums needs no unit)."""
    values = values.astype(np.float64)
    return values @ np.asarray(RGB2GRAY_WEIGHTS) if values.ndim == 2 else values
