"""Saving and re-applying retouch strokes: the ``retouch`` section of a result's sidecar.

What is saved is the stroke list itself (points, brush, frame), a few hundred bytes per stroke:
re-applying it to the same stack fused again — with the same or other post-processing settings —
repaints the same pixels from the same frames. A retouch file is either a FocusStudio sidecar
holding a ``retouch`` section or that section alone.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from focusstudio.core.errors import InputError
from focusstudio.core.retouch.brush import Brush, Stroke
from focusstudio.core.retouch.model import RetouchModel
from focusstudio.core.types import FusionResult, Stack

FORMAT = "focusstudio-retouch"
VERSION = 1
#: A retouch file is text of at most this many bytes (thousands of strokes fit).
MAX_RETOUCH_BYTES = 64 * 2**20


@dataclass(frozen=True)
class RetouchDocument:
    """The strokes of one retouched result and the stack they were painted on."""

    shape: tuple[int, int]  # (height, width) of the result painted on
    frame_names: tuple[str, ...]
    strokes: tuple[Stroke, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "shape": list(self.shape),
            "frames": list(self.frame_names),
            "strokes": [stroke.to_json() for stroke in self.strokes],
        }

    @classmethod
    def of_model(cls, model: RetouchModel) -> RetouchDocument:
        return cls(model.shape, model.names, tuple(model.strokes))

    def check_stack(self, frames: int, label: str | Path = "the retouch file") -> None:
        """InputError when a stroke paints from a frame the stack does not have."""
        used = [s.frame for s in self.strokes if s.frame is not None]
        if used and max(used) >= frames:
            raise InputError(f"its strokes paint from frame {max(used)} but the stack has {frames} frames "
                             "(made for another stack?)", label)


def retouch_section(model: RetouchModel) -> dict[str, Any] | None:
    """The sidecar's ``retouch`` entry for ``model`` (None when nothing is painted)."""
    return RetouchDocument.of_model(model).to_json() if model.strokes else None


def _number(value: Any, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{what} must be between {low:g} and {high:g}, got {value!r}")
    return float(value)


def _stroke(data: Any, number: int) -> Stroke:
    what = f"stroke {number}"
    if not isinstance(data, dict):
        raise ValueError(f"{what} is not an object")
    frame = data.get("frame")
    if frame is not None and (isinstance(frame, bool) or not isinstance(frame, int) or frame < 0):
        raise ValueError(f"{what}: 'frame' must be a frame number (0-based) or null, got {frame!r}")
    brush = Brush(
        _number(data.get("size"), f"{what}: 'size'", 1e-3, 1e6),
        _number(data.get("hardness", 0.5), f"{what}: 'hardness'", 0.0, 1.0),
        _number(data.get("opacity", 1.0), f"{what}: 'opacity'", 0.0, 1.0),
    )
    points = data.get("points")
    if not isinstance(points, list) or not points:
        raise ValueError(f"{what}: 'points' must be a non-empty list of [x, y]")
    parsed = []
    for point in points:
        if not isinstance(point, list) or len(point) != 2:
            raise ValueError(f"{what}: every point must be [x, y], got {point!r}")
        parsed.append((_number(point[0], f"{what}: x", -1e7, 1e7), _number(point[1], f"{what}: y", -1e7, 1e7)))
    match = data.get("match", True)
    if not isinstance(match, bool):
        raise ValueError(f"{what}: 'match' must be true or false")
    return Stroke(frame, brush, parsed, match)


def parse_retouch(data: Any) -> RetouchDocument:
    """A document from JSON data (a sidecar with a ``retouch`` section, or the section); ValueError
    naming what is wrong."""
    if isinstance(data, dict) and "retouch" in data and "format" not in data:
        data = data["retouch"]
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError("not a FocusStudio retouch file (no 'retouch' section)")
    if data.get("version") != VERSION:
        raise ValueError(f"retouch format version {data.get('version')!r} is not supported (this is {VERSION})")
    shape = data.get("shape")
    if (not isinstance(shape, list) or len(shape) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
        raise ValueError(f"'shape' must be [height, width], got {shape!r}")
    names = data.get("frames", [])
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError("'frames' must be a list of frame names")
    strokes = data.get("strokes")
    if not isinstance(strokes, list):
        raise ValueError("'strokes' must be a list")
    return RetouchDocument((shape[0], shape[1]), tuple(names),
                           tuple(_stroke(stroke, number) for number, stroke in enumerate(strokes, start=1)))


def read_retouch_file(path: str | Path) -> RetouchDocument:
    """Read and check a retouch file (or a sidecar holding one); InputError (one line) otherwise."""
    source = Path(path)
    try:
        if source.stat().st_size > MAX_RETOUCH_BYTES:
            raise InputError(f"larger than {MAX_RETOUCH_BYTES // 2**20} MB: not a retouch file", source)
        data = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("retouch file not found", source) from None
    except IsADirectoryError:
        raise InputError("is a folder, not a retouch file", source) from None
    except OSError as error:
        raise InputError(f"cannot read the retouch file: {error.strerror or error}", source) from None
    except (UnicodeDecodeError, ValueError) as error:
        raise InputError(f"not a JSON retouch file ({type(error).__name__})", source) from None
    try:
        return parse_retouch(data)
    except ValueError as error:
        raise InputError(str(error), source) from None


def apply_retouch(result: FusionResult, stack: Stack, document: RetouchDocument,
                  label: str | Path = "the retouch file") -> FusionResult:
    """``result`` with the document's strokes repainted from ``stack``'s frames (a note says so, and
    when the frame names differ). InputError when the document does not fit this result."""
    shape = (int(result.image.shape[0]), int(result.image.shape[1]))
    if shape != document.shape:
        raise InputError(f"painted on a {document.shape[1]}×{document.shape[0]} result but this result is "
                         f"{shape[1]}×{shape[0]} (other frames, alignment or crop?)", label)
    document.check_stack(len(stack), label)
    model = RetouchModel.from_result(result, stack)
    model.apply_all(document.strokes)
    retouched = model.retouched_result(result)
    if document.frame_names and list(document.frame_names) != stack.names:
        note = f"{label}: its frame names differ from this stack's; strokes applied by frame number"
        retouched = replace(retouched, notes=(*retouched.notes, note))
    return retouched

