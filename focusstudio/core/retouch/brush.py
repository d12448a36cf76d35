"""Brush geometry of the retouch tool: brush settings, stroke records and the coverage of a segment.

Coordinates are continuous image coordinates ``(x, y)``: pixel (row r, column c) covers
[c, c+1) × [r, r+1), so its centre is (c + 0.5, r + 0.5) — the convention of the viewer, which
maps a mouse position to ``(floor(y), floor(x))``. A stroke's coverage is the brush's radial
falloff of the distance to the stroke's polyline, so it does not depend on how densely the
mouse reported positions (no dab spacing, no build-up inside one stroke).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: (row0, row1, col0, col1): a half-open pixel rectangle.
Rect = tuple[int, int, int, int]


@dataclass(frozen=True)
class Brush:
    """Diameter in image pixels; hardness = the fraction of the radius painted fully (the rest is a
    smooth falloff); opacity = the most one stroke changes a pixel (0..1)."""

    size: float = 64.0
    hardness: float = 0.5
    opacity: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.size) and self.size > 0):
            raise ValueError(f"brush size must be a positive number of pixels, got {self.size!r}")
        for name in ("hardness", "opacity"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"brush {name} must be between 0 and 1, got {value!r}")

    @property
    def radius(self) -> float:
        return self.size / 2.0


#: Decimals a stroke's points are painted and saved with: the model rounds each point before
#: painting it, so a saved stroke replays to the same pixels (a hard brush's edge moves a 16-bit
#: level for a few thousandths of a pixel).
POINT_DECIMALS = 2


@dataclass
class Stroke:
    """One stroke as the user painted it: what is saved in a sidecar and replayed.

    ``frame``: the source frame painted in (0-based), or None for the eraser (back to the method's
    own result). ``match``: luminosity matching of the painted frame to the stroke's surroundings.
    """

    frame: int | None
    brush: Brush
    points: list[tuple[float, float]] = field(default_factory=list)
    match: bool = True

    def to_json(self) -> dict[str, object]:
        return {
            "frame": self.frame,
            "size": round(self.brush.size, 3),
            "hardness": round(self.brush.hardness, 4),
            "opacity": round(self.brush.opacity, 4),
            "match": self.match,
            "points": [[round(x, POINT_DECIMALS), round(y, POINT_DECIMALS)] for x, y in self.points],
        }


def segment_rect(p0: tuple[float, float], p1: tuple[float, float], reach: float, shape: tuple[int, int]) -> Rect:
    """The pixels whose centres lie within ``reach`` of the segment's bounding box, clipped to the image."""
    height, width = shape
    x_low, x_high = min(p0[0], p1[0]) - reach, max(p0[0], p1[0]) + reach
    y_low, y_high = min(p0[1], p1[1]) - reach, max(p0[1], p1[1]) + reach
    col0 = max(0, math.floor(x_low - 0.5))
    col1 = min(width, math.ceil(x_high - 0.5) + 1)
    row0 = max(0, math.floor(y_low - 0.5))
    row1 = min(height, math.ceil(y_high - 0.5) + 1)
    return (row0, max(row0, row1), col0, max(col0, col1))


def segment_distance(p0: tuple[float, float], p1: tuple[float, float], rect: Rect, step: int = 1) -> np.ndarray:
    """Distance (float32) from each pixel centre of ``rect`` (every ``step``-th row and column) to
    the segment p0–p1 (a point when equal)."""
    row0, row1, col0, col1 = rect
    px = (np.arange(col0, col1, step, dtype=np.float32) + 0.5)[None, :]
    py = (np.arange(row0, row1, step, dtype=np.float32) + 0.5)[:, None]
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    length2 = dx * dx + dy * dy
    rx, ry = px - np.float32(p0[0]), py - np.float32(p0[1])
    if length2 <= 1e-12:
        return np.sqrt(rx * rx + ry * ry)
    t = np.clip((rx * np.float32(dx) + ry * np.float32(dy)) / np.float32(length2), 0.0, 1.0)
    ex, ey = rx - t * np.float32(dx), ry - t * np.float32(dy)
    return np.sqrt(ex * ex + ey * ey)


def falloff(distance: np.ndarray, brush: Brush) -> np.ndarray:
    """Brush coverage (float32, 0..1) at ``distance`` from the stroke's centre line: 1 inside
    hardness × radius, a smoothstep down to 0 at the radius. At least one pixel of ramp, so even
    a hard brush is anti-aliased."""
    radius = brush.radius
    inner = min(brush.hardness * radius, max(radius - 1.0, 0.0))
    ramp = max(radius - inner, 1e-6)
    t = np.clip((np.float32(radius) - distance) / np.float32(ramp), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32, copy=False)


def union(a: Rect | None, b: Rect | None) -> Rect | None:
    """The smallest rectangle holding both (None = empty)."""
    if a is None or a[0] >= a[1] or a[2] >= a[3]:
        return b if b is not None and b[0] < b[1] and b[2] < b[3] else None
    if b is None or b[0] >= b[1] or b[2] >= b[3]:
        return a
    return (min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3]))
