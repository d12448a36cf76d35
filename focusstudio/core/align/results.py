"""What a registration found: per-frame transforms (:class:`FrameAlignment`) and the whole stack's
:class:`Alignment`, with its JSON form (see :mod:`focusstudio.core.align.storage` for files)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from focusstudio.core.align.geometry import (
    _apply_points,
    _checked_matrix,
    _jacobian,
    _row_intervals_to_mask,
    covered_columns,
)
from focusstudio.core.errors import ParameterError

FrameStatus = Literal["reference", "ok", "fallback", "excluded"]

MATRIX_CONVENTION = (
    "3x3 matrix mapping frame pixel coordinates (x right, y down, (0,0) = centre of the top-left "
    "pixel) to reference pixel coordinates"
)


@dataclass(frozen=True)
class FrameAlignment:
    """How one frame maps onto the reference, and how that was found."""

    index: int
    name: str
    matrix: np.ndarray  # 3×3 float64, frame → reference pixel coordinates
    status: FrameStatus
    method: str = "none"  # "ecc", "features", "features+ecc", "reference", "none"
    messages: tuple[str, ...] = ()
    correlation: float | None = None  # ECC correlation coefficient with its registration target
    inliers: int | None = None  # RANSAC inliers of the feature estimator
    gain: float = 1.0  # photometric correction: aligned = gain · frame + offset
    offset: float = 0.0

    @property
    def is_affine(self) -> bool:
        return bool(np.allclose(self.matrix[2], (0.0, 0.0, 1.0), atol=1e-12))

    def parameters(self, width: int, height: int) -> dict[str, float]:
        """Scale, rotation (degrees, counter-clockwise on screen is negative) and centre shift (px)."""
        centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
        jacobian = _jacobian(self.matrix, centre)
        p = (jacobian[0, 0] + jacobian[1, 1]) / 2.0
        q = (jacobian[1, 0] - jacobian[0, 1]) / 2.0
        moved = _apply_points(self.matrix, centre[None])[0]
        return {
            "scale": float(math.hypot(p, q)),
            "rotation_deg": float(math.degrees(math.atan2(q, p))),
            "shift_x": float(moved[0] - centre[0]),
            "shift_y": float(moved[1] - centre[1]),
        }


@dataclass(frozen=True)
class Alignment:
    """Per-frame transforms onto the reference, their status, and the area all frames cover."""

    frames: tuple[FrameAlignment, ...]
    reference: int
    model: str
    shape: tuple[int, int]  # (height, width) of the source frames
    #: Largest axis-aligned rectangle (x, y, width, height) every included aligned frame covers;
    #: None when they share no area.
    crop_box: tuple[int, int, int, int] | None
    options: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    notes: tuple[str, ...] = ()

    @property
    def matrices(self) -> list[np.ndarray]:
        return [f.matrix for f in self.frames]

    @property
    def included(self) -> list[int]:
        """Indices of the frames that take part in the fusion (not excluded)."""
        return [f.index for f in self.frames if f.status != "excluded"]

    @property
    def failed(self) -> list[int]:
        return [f.index for f in self.frames if f.status in ("fallback", "excluded")]

    def valid_mask(self) -> np.ndarray:
        """H×W bool in reference coordinates: True where every included frame has real pixels."""
        left, right = covered_columns(
            [self.frames[i].matrix for i in self.included], self.shape[0], self.shape[1]
        )
        return _row_intervals_to_mask(left, right, self.shape[1])

    def frame_coverage(self, index: int, crop: bool = False) -> np.ndarray:
        """H×W bool: where frame ``index`` has real pixels once aligned (inside the crop box when
        ``crop``). Outside it the warped frame holds replicated border pixels, which a method
        should not prefer over a frame that really saw that area."""
        left, right = covered_columns([self.frames[index].matrix], self.shape[0], self.shape[1])
        mask = _row_intervals_to_mask(left, right, self.shape[1])
        if crop and self.crop_box is not None:
            x, y, width, height = self.crop_box
            return mask[y : y + height, x : x + width]
        return mask

    def describe(self) -> list[str]:
        """One human-readable line per frame (for CLI output and logs)."""
        height, width = self.shape
        lines = []
        for frame in self.frames:
            values = frame.parameters(width, height)
            extra = []
            if frame.correlation is not None:
                extra.append(f"corr {frame.correlation:.3f}")
            if frame.inliers is not None:
                extra.append(f"{frame.inliers} inliers")
            if frame.gain != 1.0 or frame.offset != 0.0:
                extra.append(f"gain {frame.gain:.3f} offset {frame.offset:+.4f}")
            line = (
                f"frame {frame.index + 1} ({frame.name}): {frame.status:<9} {frame.method:<12} "
                f"scale {values['scale']:.4f} rot {values['rotation_deg']:+.3f}° "
                f"shift ({values['shift_x']:+.2f}, {values['shift_y']:+.2f}) px"
            )
            if extra:
                line += " [" + ", ".join(extra) + "]"
            lines.append(line)
            lines.extend(f"    {message}" for message in frame.messages)
        return lines

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable description that :meth:`from_json` reads back (reproducible runs)."""
        height, width = self.shape
        frames = []
        for frame in self.frames:
            entry: dict[str, Any] = {
                "index": frame.index,
                "name": frame.name,
                "status": frame.status,
                "method": frame.method,
                "matrix": [[float(v) for v in row] for row in frame.matrix],
                **frame.parameters(width, height),
                "correlation": frame.correlation,
                "inliers": frame.inliers,
                "gain": frame.gain,
                "offset": frame.offset,
                "messages": list(frame.messages),
            }
            frames.append(entry)
        crop = None
        if self.crop_box is not None:
            x, y, w, h = self.crop_box
            crop = {"x": x, "y": y, "width": w, "height": h}
        return {
            "convention": MATRIX_CONVENTION,
            "reference": self.reference,
            "model": self.model,
            "frame_width": width,
            "frame_height": height,
            "crop": crop,
            "seconds": self.seconds,
            "options": dict(self.options),
            "notes": list(self.notes),
            "frames": frames,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Alignment:
        """Read back :meth:`to_json` output; raises ParameterError on a malformed description."""
        try:
            frames = tuple(
                FrameAlignment(
                    index=int(entry["index"]),
                    name=str(entry["name"]),
                    matrix=_checked_matrix(entry["matrix"]),
                    status=entry["status"],
                    method=str(entry.get("method", "none")),
                    messages=tuple(entry.get("messages", ())),
                    correlation=entry.get("correlation"),
                    inliers=entry.get("inliers"),
                    gain=float(entry.get("gain", 1.0)),
                    offset=float(entry.get("offset", 0.0)),
                )
                for entry in data["frames"]
            )
            crop = data.get("crop")
            crop_box = (
                (int(crop["x"]), int(crop["y"]), int(crop["width"]), int(crop["height"])) if crop else None
            )
            return cls(
                frames=frames,
                reference=int(data["reference"]),
                model=str(data["model"]),
                shape=(int(data["frame_height"]), int(data["frame_width"])),
                crop_box=crop_box,
                options=dict(data.get("options", {})),
                seconds=float(data.get("seconds", 0.0)),
                notes=tuple(data.get("notes", ())),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ParameterError(f"not an alignment description: {error}") from None
