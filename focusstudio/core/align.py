"""Registration of the frames of a focus stack to one reference frame.

Real stacks are not registered: handheld frames drift, stages drift, and the magnification of most
lenses changes with the focus distance ("focus breathing"). Every frame is therefore mapped onto a
reference frame (the middle one by default) before pixel-wise comparison.

How a frame is registered
-------------------------
* Estimation runs on a downscaled grey copy (``estimation_size`` px on the longer edge); the
  transform is scaled back to full resolution afterwards. Frames are decoded one at a time and only
  two downscaled copies (the reference and the current neighbour) are held.
* Frames are *chained*: frame i is registered to its neighbour towards the reference (i±1), whose
  focus differs least, and the pair transforms are composed towards the reference. Frames far apart
  in focus share almost no sharp detail, so registering them directly is unreliable.
* ECC (``cv2.findTransformECC``) runs coarse-to-fine on a Gaussian pyramid. ECC has no similarity
  model, so for ``similarity`` an affine warp is estimated and projected onto the closest
  similarity (rotation + uniform scale + shift) at every pyramid level.
* When ECC fails (no convergence, low correlation, implausible result), features (SIFT/ORB/AKAZE)
  with RANSAC are tried, then refined with ECC when possible.
* A pair is rejected when its transform is implausible for a focus stack (scale outside
  [``min_scale``, ``max_scale``], rotation above ``max_rotation`` degrees, centre shift above
  ``max_shift`` of the frame). A rejected frame takes its neighbour's transform or is excluded.

Convention of the matrices
--------------------------
``FrameAlignment.matrix`` is a 3×3 float64 matrix that maps **frame pixel coordinates to reference
pixel coordinates** (x to the right, y down, (0, 0) = centre of the top-left pixel). The aligned
frame is ``cv2.warpAffine(frame, matrix[:2], (W, H))`` (``warpPerspective`` for homographies).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from focusstudio.core.errors import FocusStudioError, InputError, ParameterError
from focusstudio.core.params import ParamSet, ParamSpec
from focusstudio.core.progress import (
    CancelToken,
    ProgressGen,
    ProgressRange,
    cancel_scope,
    check_cancelled,
    run_to_completion,
)
from focusstudio.core.types import Stack

MotionModel = Literal["translation", "similarity", "affine", "homography"]
MOTION_MODELS: tuple[str, ...] = ("translation", "similarity", "affine", "homography")
EstimationMethod = Literal["auto", "ecc", "features"]
FeatureDetector = Literal["sift", "orb", "akaze"]
FailurePolicy = Literal["neighbour", "exclude"]
Interpolation = Literal["linear", "cubic"]
FrameStatus = Literal["reference", "ok", "fallback", "excluded"]

MATRIX_CONVENTION = (
    "3x3 matrix mapping frame pixel coordinates (x right, y down, (0,0) = centre of the top-left "
    "pixel) to reference pixel coordinates"
)

#: Alignment settings, declared once for CLI flags, GUI forms and validation.
ALIGN_PARAMS = ParamSet(
    (
        ParamSpec("model", "choice", "similarity", "Motion model: translation, similarity (shift + rotation "
                  "+ scale, covers focus breathing), affine or homography.", choices=MOTION_MODELS,
                  stage="analysis", title="Motion model"),
        ParamSpec("reference", "int", -1, "Index of the reference frame (-1 = the middle frame).",
                  minimum=-1, stage="analysis", title="Reference frame", special_value="middle"),
        ParamSpec("method", "choice", "auto", "Estimator: ECC on an image pyramid, features + RANSAC, or "
                  "auto (both; the fit whose aligned frame correlates better with its target is kept).",
                  choices=("auto", "ecc", "features"),
                  stage="analysis", title="Estimator"),
        ParamSpec("detector", "choice", "sift", "Feature detector of the feature-based estimator.",
                  choices=("sift", "orb", "akaze"), stage="analysis", title="Feature detector"),
        ParamSpec("chain", "bool", True, "Register each frame to its neighbour towards the reference and "
                  "compose (robust for long stacks); off = register every frame to the reference directly.",
                  stage="analysis", title="Chain through neighbours"),
        ParamSpec("estimation_size", "int", 1024, "Longer edge (px) of the grey copy the transforms are "
                  "estimated on (0 = full resolution).", minimum=0, maximum=100000, stage="analysis",
                  title="Estimation size"),
        ParamSpec("ecc_iterations", "int", 50, "Maximum ECC iterations per pyramid level.", minimum=1,
                  maximum=10000, stage="analysis", title="ECC iterations"),
        ParamSpec("ecc_epsilon", "float", 1e-5, "ECC stops when the correlation improves by less than this.",
                  minimum=0.0, maximum=0.1, stage="analysis", title="ECC epsilon", log_scale=True),
        ParamSpec("gauss_filter_size", "int", 5, "Gaussian pre-filter size ECC applies to both images "
                  "(odd, 0 = none).", minimum=0, maximum=31, stage="analysis", title="ECC smoothing"),
        ParamSpec("min_correlation", "float", 0.5, "A registration whose ECC correlation coefficient is "
                  "below this is a failure.", minimum=-1.0, maximum=1.0, stage="analysis",
                  title="Minimum correlation"),
        ParamSpec("min_inliers", "int", 20, "Fewest RANSAC inliers the feature estimator accepts.",
                  minimum=3, maximum=100000, stage="analysis", title="Minimum inliers"),
        ParamSpec("min_scale", "float", 0.8, "Smallest plausible scale of a frame relative to the reference.",
                  minimum=0.01, maximum=1.0, stage="analysis", title="Minimum scale"),
        ParamSpec("max_scale", "float", 1.25, "Largest plausible scale of a frame relative to the reference.",
                  minimum=1.0, maximum=100.0, stage="analysis", title="Maximum scale"),
        ParamSpec("max_rotation", "float", 5.0, "Largest plausible rotation (degrees).", minimum=0.0,
                  maximum=180.0, stage="analysis", title="Maximum rotation"),
        ParamSpec("max_shift", "float", 0.2, "Largest plausible shift of the frame centre, as a fraction of "
                  "the frame width/height.", minimum=0.0, maximum=1.0, stage="analysis", title="Maximum shift"),
        ParamSpec("photometric", "bool", False, "Match brightness and contrast of every frame to the reference "
                  "(gain/offset fitted on the low-passed overlap), for exposure flicker.", stage="analysis",
                  title="Match brightness"),
        ParamSpec("on_failure", "choice", "neighbour", "What to do with a frame that cannot be registered: "
                  "give it its neighbour's transform, or exclude it from the fusion.",
                  choices=("neighbour", "exclude"), stage="analysis", title="On failure"),
        ParamSpec("crop", "bool", True, "Crop to the largest rectangle every aligned frame covers; off = keep "
                  "the full size with a validity mask.", stage="post", title="Crop"),
        ParamSpec("interpolation", "choice", "cubic", "Resampling of the warped frames.",
                  choices=("linear", "cubic"), stage="post", title="Interpolation"),
    )
)


#: Alignment is on by default from this many frames: pairs are mostly benchmark pairs that are
#: registered already, while real stacks (3+ frames) are not.
ALIGN_BY_DEFAULT_FROM = 3


def align_by_default(frame_count: int) -> bool:
    """Whether the pipeline aligns a stack of ``frame_count`` frames when the user did not say."""
    return frame_count >= ALIGN_BY_DEFAULT_FROM


def align_settings_from_options(
    assignments: Sequence[str], reference: int | None, model: str | None, crop: bool | None
) -> dict[str, Any]:
    """Alignment settings from the command line's ``--align-set``, ``--reference``,
    ``--align-model`` and ``--crop/--no-crop`` (None: not given), as ``fuse`` and ``batch`` read
    them (the reverse of :func:`focusstudio.core.sidecar.align_arguments`)."""
    settings: dict[str, Any] = ALIGN_PARAMS.parse_assignments(assignments)
    if reference is not None:
        settings["reference"] = reference
    if model is not None:
        settings["model"] = model
    if crop is not None:
        settings["crop"] = crop
    return settings


@dataclass(frozen=True)
class AlignOptions:
    """Validated alignment settings (the fields are the names of :data:`ALIGN_PARAMS`)."""

    model: MotionModel = "similarity"
    reference: int = -1
    method: EstimationMethod = "auto"
    detector: FeatureDetector = "sift"
    chain: bool = True
    estimation_size: int = 1024
    ecc_iterations: int = 50
    ecc_epsilon: float = 1e-5
    gauss_filter_size: int = 5
    min_correlation: float = 0.5
    min_inliers: int = 20
    min_scale: float = 0.8
    max_scale: float = 1.25
    max_rotation: float = 5.0
    max_shift: float = 0.2
    photometric: bool = False
    on_failure: FailurePolicy = "neighbour"
    crop: bool = True
    interpolation: Interpolation = "cubic"

    def __post_init__(self) -> None:
        for item in fields(self):
            ALIGN_PARAMS.get(item.name).validate(getattr(self, item.name))
        if self.gauss_filter_size and self.gauss_filter_size % 2 == 0:
            raise ParameterError(f"alignment 'gauss_filter_size' must be odd or 0, got {self.gauss_filter_size}")

    @classmethod
    def from_params(cls, values: Mapping[str, Any] | None = None) -> AlignOptions:
        """Options from a (partial) mapping of :data:`ALIGN_PARAMS` names; unknown names are rejected."""
        return cls(**ALIGN_PARAMS.resolve(values))

    def to_params(self) -> dict[str, Any]:
        return {item.name: getattr(self, item.name) for item in fields(self)}

    def reference_index(self, count: int) -> int:
        """The reference frame for a stack of ``count`` frames (the middle one when ``reference`` is -1)."""
        if self.reference < 0:
            return count // 2
        if self.reference >= count:
            raise ParameterError(f"reference frame {self.reference} does not exist (the stack has {count} frames)")
        return self.reference


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
                f"frame {frame.index} ({frame.name}): {frame.status:<9} {frame.method:<12} "
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


# ---------------------------------------------------------------------------------------- geometry
def _checked_matrix(rows: Any) -> np.ndarray:
    matrix = np.asarray(rows, dtype=np.float64)
    if matrix.shape != (3, 3) or not np.all(np.isfinite(matrix)):
        raise ValueError(f"a matrix must be 3x3 and finite, got {rows!r}")
    return matrix


def _apply_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map N×2 points with a 3×3 matrix (with the perspective division)."""
    homogeneous = np.hstack([points, np.ones((len(points), 1))]) @ matrix.T
    return homogeneous[:, :2] / homogeneous[:, 2:3]


def _jacobian(matrix: np.ndarray, point: np.ndarray) -> np.ndarray:
    """2×2 derivative of the (projective) map at ``point``."""
    x, y = float(point[0]), float(point[1])
    w = matrix[2, 0] * x + matrix[2, 1] * y + matrix[2, 2]
    u = matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2]
    v = matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2]
    return np.array(
        [
            [(matrix[0, 0] * w - u * matrix[2, 0]) / w**2, (matrix[0, 1] * w - u * matrix[2, 1]) / w**2],
            [(matrix[1, 0] * w - v * matrix[2, 0]) / w**2, (matrix[1, 1] * w - v * matrix[2, 1]) / w**2],
        ]
    )


def _translation(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def _project_to_similarity(matrix: np.ndarray) -> np.ndarray:
    """The closest rotation + uniform scale (least squares on the 2×2 part), shift unchanged."""
    p = (matrix[0, 0] + matrix[1, 1]) / 2.0
    q = (matrix[1, 0] - matrix[0, 1]) / 2.0
    return np.array([[p, -q, matrix[0, 2]], [q, p, matrix[1, 2]], [0.0, 0.0, 1.0]])


def _constrain(matrix: np.ndarray, model: str) -> np.ndarray:
    if model == "similarity":
        return _project_to_similarity(matrix)
    if model == "translation":
        return _translation(matrix[0, 2], matrix[1, 2])
    if model == "affine":
        constrained = matrix.copy()
        constrained[2] = (0.0, 0.0, 1.0)
        return constrained
    return matrix / matrix[2, 2]


def implausibility(matrix: np.ndarray, width: int, height: int, options: AlignOptions) -> str | None:
    """Why ``matrix`` is not a plausible frame-to-frame motion of a focus stack, or None."""
    corners = np.array([[0.0, 0.0], [width - 1.0, 0.0], [width - 1.0, height - 1.0], [0.0, height - 1.0]])
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    if not np.all(np.isfinite(matrix)):
        return "the transform is not finite"
    w = np.hstack([corners, np.ones((4, 1))]) @ matrix[2]
    if np.any(w <= 1e-6):
        return "the transform folds the frame through infinity"
    # Scale and rotation are checked where they are largest for a homography: at every corner.
    for point in (centre, *corners):
        jacobian = _jacobian(matrix, point)
        singular = np.linalg.svd(jacobian, compute_uv=False)
        if np.linalg.det(jacobian) <= 0:
            return "the transform mirrors the frame"
        if singular[-1] < options.min_scale or singular[0] > options.max_scale:
            outside = singular[-1] if singular[-1] < options.min_scale else singular[0]
            return f"scale {outside:.3f} outside [{options.min_scale:g}, {options.max_scale:g}]"
        angle = math.degrees(
            math.atan2(jacobian[1, 0] - jacobian[0, 1], jacobian[0, 0] + jacobian[1, 1])
        )
        if abs(angle) > options.max_rotation:
            return f"rotation {angle:+.2f}° exceeds ±{options.max_rotation:g}°"
    moved = _apply_points(matrix, centre[None])[0] - centre
    if abs(moved[0]) > options.max_shift * width or abs(moved[1]) > options.max_shift * height:
        return (
            f"shift ({moved[0]:+.1f}, {moved[1]:+.1f}) px exceeds {100 * options.max_shift:g} % of the "
            f"{width}×{height} frame"
        )
    return None


# ------------------------------------------------------------------------------- pair estimation
class RegistrationFailed(Exception):
    """A pair could not be registered; the message says why."""


_ECC_MOTION = {
    "translation": cv2.MOTION_TRANSLATION,
    "similarity": cv2.MOTION_AFFINE,  # projected onto a similarity after every level
    "affine": cv2.MOTION_AFFINE,
    "homography": cv2.MOTION_HOMOGRAPHY,
}


def _pyramid(image: np.ndarray, min_size: int) -> list[np.ndarray]:
    """[finest, ..., coarsest] with pyrDown (a coarse pixel j sits on fine pixel 2j)."""
    levels = [image]
    while min(levels[-1].shape) // 2 >= min_size and len(levels) < 8:
        levels.append(cv2.pyrDown(levels[-1]))
    return levels


_HALF = np.diag([0.5, 0.5, 1.0])
_DOUBLE = np.diag([2.0, 2.0, 1.0])


def _ecc_coarse_to_fine(
    target_levels: list[np.ndarray],
    moving_levels: list[np.ndarray],
    initial: np.ndarray,
    options: AlignOptions,
    first_level: int | None = None,
) -> tuple[np.ndarray, float]:
    """ECC from the coarsest level down; returns (warp target→moving at the finest level, correlation).

    ``initial`` maps target to moving coordinates at the finest level. A level where ECC fails
    keeps the warp of the coarser level; only a failure at the finest level is fatal.
    """
    motion = _ECC_MOTION[options.model]
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, options.ecc_iterations, options.ecc_epsilon)
    top = len(target_levels) - 1 if first_level is None else min(first_level, len(target_levels) - 1)
    warp = np.linalg.matrix_power(_HALF, top) @ initial @ np.linalg.matrix_power(_DOUBLE, top)
    correlation = float("nan")
    for level in range(top, -1, -1):
        check_cancelled()  # a level is one OpenCV call: the finest can take a good part of a second
        if level != top:
            warp = _DOUBLE @ warp @ _HALF
        rows = 3 if options.model == "homography" else 2
        guess = warp[:rows].astype(np.float32)
        try:
            correlation, found = cv2.findTransformECC(
                target_levels[level], moving_levels[level], guess, motion, criteria, None,
                options.gauss_filter_size,
            )
        except cv2.error as error:
            if level == 0:
                reason = str(error).strip().splitlines()[-1] if str(error).strip() else "cv2 error"
                raise RegistrationFailed(f"ECC did not converge ({reason})") from None
            continue
        full = np.eye(3)
        full[:rows] = found.astype(np.float64)
        warp = _constrain(full, options.model)
    return warp, float(correlation)


def _correlation(target: np.ndarray, moving: np.ndarray, target_to_moving: np.ndarray) -> float:
    """Zero-mean normalised correlation of ``target`` and ``moving`` warped onto it, on the overlap."""
    height, width = target.shape
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = _warp(moving, target_to_moving, (width, height), flags, cv2.BORDER_CONSTANT)
    coverage = _warp(np.ones_like(moving), target_to_moving, (width, height), flags, cv2.BORDER_CONSTANT)
    valid = coverage > 0.999
    if valid.sum() < 16:
        return float("nan")
    a = target[valid].astype(np.float64)
    b = warped[valid].astype(np.float64)
    a -= a.mean()
    b -= b.mean()
    denominator = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else float("nan")


def _warp(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int], flags: int, border: int) -> np.ndarray:
    if np.allclose(matrix[2], (0.0, 0.0, 1.0), atol=1e-12):
        return cv2.warpAffine(image, matrix[:2], size, flags=flags, borderMode=border)
    return cv2.warpPerspective(image, matrix, size, flags=flags, borderMode=border)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    # A percentile stretch gives dim microscope frames enough contrast for the detectors.
    low, high = np.percentile(image, (0.5, 99.5))
    scale = 255.0 / max(float(high - low), 1e-6)
    return np.clip((image - low) * scale, 0, 255).astype(np.uint8)


def _detector(name: str) -> tuple[Any, int, str]:
    """(detector, norm for matching, note when the requested one is unavailable)."""
    if name == "akaze":
        create = getattr(cv2, "AKAZE_create", None)
        if create is not None:
            return create(), cv2.NORM_HAMMING, ""
        return cv2.SIFT_create(nfeatures=5000), cv2.NORM_L2, "AKAZE is not in this OpenCV build; used SIFT"
    if name == "orb":
        return cv2.ORB_create(nfeatures=5000), cv2.NORM_HAMMING, ""
    return cv2.SIFT_create(nfeatures=5000), cv2.NORM_L2, ""


#: Keypoints matched per block (between two cancel checks).
_MATCH_BLOCK = 1024


def _feature_transform(
    target: np.ndarray, moving: np.ndarray, options: AlignOptions
) -> tuple[np.ndarray, int, str]:
    """(moving→target matrix, RANSAC inliers, note) from keypoint matches; raises RegistrationFailed."""
    detector, norm, note = _detector(options.detector)
    check_cancelled()
    target_points, target_descriptors = detector.detectAndCompute(_to_uint8(target), None)
    check_cancelled()
    moving_points, moving_descriptors = detector.detectAndCompute(_to_uint8(moving), None)
    check_cancelled()
    if target_descriptors is None or moving_descriptors is None or len(target_points) < 3 or len(moving_points) < 3:
        raise RegistrationFailed("features: too few keypoints")
    matcher = cv2.BFMatcher(norm)
    good: list[tuple[int, int]] = []  # (moving keypoint, target keypoint)
    # Brute-force matching of thousands of keypoints takes a while: in blocks of query rows, with a
    # cancel check between them (each row's nearest neighbours do not depend on the other rows).
    for start in range(0, len(moving_descriptors), _MATCH_BLOCK):
        check_cancelled()
        block = matcher.knnMatch(moving_descriptors[start : start + _MATCH_BLOCK], target_descriptors, k=2)
        # Lowe's ratio test keeps only distinctive matches.
        good.extend((start + pair[0].queryIdx, pair[0].trainIdx) for pair in block
                    if len(pair) == 2 and pair[0].distance < 0.75 * pair[1].distance)
    if len(good) < options.min_inliers:
        raise RegistrationFailed(f"features: only {len(good)} distinctive matches (need {options.min_inliers})")
    source = np.float32([moving_points[query].pt for query, _ in good])
    destination = np.float32([target_points[train].pt for _, train in good])
    threshold = 2.0
    if options.model == "homography":
        found, mask = cv2.findHomography(source, destination, cv2.RANSAC, threshold, maxIters=5000, confidence=0.999)
    elif options.model == "affine":
        found, mask = cv2.estimateAffine2D(
            source, destination, method=cv2.RANSAC, ransacReprojThreshold=threshold, maxIters=5000, confidence=0.999
        )
    else:
        found, mask = cv2.estimateAffinePartial2D(
            source, destination, method=cv2.RANSAC, ransacReprojThreshold=threshold, maxIters=5000, confidence=0.999
        )
    if found is None or mask is None:
        raise RegistrationFailed("features: RANSAC found no consistent transform")
    inlier_mask = mask.ravel().astype(bool)
    inliers = int(inlier_mask.sum())
    if inliers < options.min_inliers:
        raise RegistrationFailed(f"features: only {inliers} RANSAC inliers (need {options.min_inliers})")
    matrix = np.eye(3)
    if found.shape == (3, 3):
        matrix = found.astype(np.float64)
    else:
        matrix[:2] = found.astype(np.float64)
    if options.model == "translation":
        shift = np.median(destination[inlier_mask] - source[inlier_mask], axis=0)
        matrix = _translation(float(shift[0]), float(shift[1]))
    return _constrain(matrix, options.model), inliers, note


@dataclass
class PairRegistration:
    """How one frame maps onto its registration target (a neighbour or the reference)."""

    matrix: np.ndarray  # moving → target
    method: str
    correlation: float | None
    inliers: int | None
    messages: list[str]


#: With ``method`` "auto", an ECC fit whose aligned frame correlates this well with its target is
#: kept without trying the feature-based fit (which costs ~6× ECC's time): a wrong fit does not
#: reach it on a textured pair (misc_damselfly's rotated ECC fits: 0.846 and 0.732).
TRUSTED_CORRELATION = 0.98


def register_pair(
    target: np.ndarray,
    moving: np.ndarray,
    options: AlignOptions,
    initial: np.ndarray | None = None,
) -> PairRegistration:
    """Register grey float32 ``moving`` onto ``target``; raises RegistrationFailed with every reason.

    ``initial`` is a guess of the moving→target matrix (identity when None). With ``method``
    "auto" both estimators run (unless ECC's fit correlates ≥ :data:`TRUSTED_CORRELATION`) and the
    candidate whose warped frame correlates better with the target over their overlap is kept:
    ECC converging to a plausible but wrong fit (a rotation of 1–2°, a doubled subject) is not
    caught by the plausibility checks, only by comparing it with another fit on the aligned pixels.
    """
    height, width = target.shape
    guess = np.eye(3) if initial is None else initial
    reasons: list[str] = []
    candidates: list[PairRegistration] = []
    target_levels: list[np.ndarray] = []
    moving_levels: list[np.ndarray] = []
    if options.method in ("auto", "ecc"):
        target_levels = _pyramid(target, 48)
        moving_levels = _pyramid(moving, 48)
        try:
            warp, _ = _ecc_coarse_to_fine(target_levels, moving_levels, np.linalg.inv(guess), options)
            # Every candidate is scored the same way: correlation of the warped frame on the overlap.
            correlation = _correlation(target, moving, warp)
            matrix = np.linalg.inv(warp)
            problem = _pair_problem(matrix, correlation, width, height, options)
            if problem is None:
                candidates.append(PairRegistration(matrix, "ecc", correlation, None, []))
            else:
                reasons.append(f"ECC: {problem}")
        except RegistrationFailed as error:
            reasons.append(str(error))
    trusted = options.method == "auto" and any(
        c.correlation is not None and c.correlation >= TRUSTED_CORRELATION for c in candidates
    )
    if options.method == "features" or (options.method == "auto" and not trusted):
        check_cancelled()
        try:
            found = _feature_candidate(target, moving, options, target_levels, moving_levels)
            if options.method == "features" or (found.correlation or -1.0) >= options.min_correlation:
                candidates.append(found)
            else:
                reasons.append(f"features: correlation {found.correlation:.3f} below {options.min_correlation:g}")
        except RegistrationFailed as error:
            reasons.append(str(error))
    if not candidates:
        raise RegistrationFailed("; ".join(reasons))
    best = max(candidates, key=lambda c: c.correlation if c.correlation is not None else -2.0)
    best.messages = reasons + best.messages
    others = [c for c in candidates if c is not best]
    if others:
        scores = ", ".join(f"{c.method} {c.correlation:.3f}" for c in others)
        best.messages.append(f"kept {best.method} (correlation {best.correlation:.3f}; other fits: {scores})")
    return best


def _feature_candidate(
    target: np.ndarray,
    moving: np.ndarray,
    options: AlignOptions,
    target_levels: list[np.ndarray],
    moving_levels: list[np.ndarray],
) -> PairRegistration:
    """The feature-based fit, refined by ECC from a finer level when that correlates at least as
    well; raises RegistrationFailed."""
    height, width = target.shape
    matrix, inliers, note = _feature_transform(target, moving, options)
    notes = [note] if note else []
    problem = implausibility(matrix, width, height, options)
    if problem is not None:
        raise RegistrationFailed(f"features: {problem}")
    correlation = _correlation(target, moving, np.linalg.inv(matrix))
    if not target_levels:
        target_levels, moving_levels = _pyramid(target, 48), _pyramid(moving, 48)
    # Refine the feature estimate with ECC from a finer level (the guess is already close).
    try:
        warp, _ = _ecc_coarse_to_fine(target_levels, moving_levels, np.linalg.inv(matrix), options, first_level=1)
        refined_correlation = _correlation(target, moving, warp)
        refined = np.linalg.inv(warp)
        if (
            _pair_problem(refined, refined_correlation, width, height, options) is None
            and refined_correlation >= correlation - 1e-3
        ):
            return PairRegistration(refined, "features+ecc", refined_correlation, inliers, notes)
    except RegistrationFailed:
        pass
    return PairRegistration(matrix, "features", correlation, inliers, notes)


def _pair_problem(
    matrix: np.ndarray, correlation: float, width: int, height: int, options: AlignOptions
) -> str | None:
    if not math.isfinite(correlation) or correlation < options.min_correlation:
        return f"correlation {correlation:.3f} below {options.min_correlation:g}"
    return implausibility(matrix, width, height, options)


# ------------------------------------------------------------------------------ photometric fit
def _photometric_fit(
    reference: np.ndarray, moving: np.ndarray, moving_to_reference: np.ndarray
) -> tuple[float, float]:
    """(gain, offset) with reference ≈ gain · moving + offset on the overlap.

    Both images are low-passed first so that their different focus (a blurred frame has less
    contrast in detail) does not bias the gain: only the large-scale exposure is compared.
    """
    height, width = reference.shape
    flags = cv2.INTER_LINEAR
    warped = _warp(moving, moving_to_reference, (width, height), flags, cv2.BORDER_CONSTANT)
    coverage = _warp(np.ones_like(moving), moving_to_reference, (width, height), flags, cv2.BORDER_CONSTANT)
    sigma = max(2.0, 0.02 * max(height, width))
    blurred_reference = cv2.GaussianBlur(reference, (0, 0), sigma)
    blurred_moving = cv2.GaussianBlur(warped, (0, 0), sigma)
    # Stay 2σ inside the overlap so that the blur never mixes in the zero border.
    eroded = cv2.erode((coverage > 0.999).astype(np.uint8), np.ones((3, 3), np.uint8), iterations=int(2 * sigma))
    valid = eroded.astype(bool)
    if valid.sum() < 100:
        return 1.0, 0.0
    x = blurred_moving[valid].astype(np.float64)
    y = blurred_reference[valid].astype(np.float64)
    if x.std() < 1e-4:
        gain = float(y.mean() / x.mean()) if x.mean() > 1e-6 else 1.0
        return float(np.clip(gain, 0.5, 2.0)), 0.0
    gain, offset = np.polyfit(x, y, 1)
    return float(np.clip(gain, 0.5, 2.0)), float(np.clip(offset, -0.5, 0.5))


# ------------------------------------------------------------------------------- covered area
COVERAGE_MARGIN = 0.5


def covered_columns(
    matrices: list[np.ndarray], height: int, width: int, source_shape: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per output row y (of a height×width output): the first and last column (int) where every
    mapped frame (of ``source_shape``, default the output's) has pixels.

    Each frame's footprint is the image of its pixel-centre rectangle, a convex quadrilateral;
    their intersection is convex, so a row's covered part is one interval. Empty rows get
    left > right.
    """
    rows = np.arange(height, dtype=np.float64)
    left = np.full(height, -np.inf)
    right = np.full(height, np.inf)
    source_height, source_width = source_shape or (height, width)
    # A frame's pixels cover the area up to half a pixel beyond its outer pixel centres: a sample
    # there is read from the edge pixel, so a sub-pixel shift (ECC finds ~0.01 px even between
    # frames that never moved) does not cost a row or a column of the result.
    low_edge = -COVERAGE_MARGIN
    high_x, high_y = source_width - 1.0 + COVERAGE_MARGIN, source_height - 1.0 + COVERAGE_MARGIN
    corners = np.array([[low_edge, low_edge], [high_x, low_edge], [high_x, high_y], [low_edge, high_y]])
    for matrix in matrices:
        quad = _apply_points(matrix, corners)
        low = np.full(height, np.inf)
        high = np.full(height, -np.inf)
        for k in range(4):
            (x0, y0), (x1, y1) = quad[k], quad[(k + 1) % 4]
            lo_y, hi_y = min(y0, y1), max(y0, y1)
            # A small tolerance keeps exactly-aligned edges (identity, integer shifts) inside.
            inside = (rows >= lo_y - 1e-9) & (rows <= hi_y + 1e-9)
            if abs(y1 - y0) < 1e-12:
                xs = np.where(inside, min(x0, x1), np.inf)
                xe = np.where(inside, max(x0, x1), -np.inf)
            else:
                crossing = x0 + (rows - y0) * (x1 - x0) / (y1 - y0)
                xs = np.where(inside, crossing, np.inf)
                xe = np.where(inside, crossing, -np.inf)
            low = np.minimum(low, xs)
            high = np.maximum(high, xe)
        left = np.maximum(left, low)
        right = np.minimum(right, high)
    eps = 1e-6
    left_columns = np.where(np.isfinite(left), np.ceil(np.maximum(left, 0.0) - eps), width)
    right_columns = np.where(np.isfinite(right), np.floor(np.minimum(right, width - 1.0) + eps), -1)
    return left_columns.astype(np.int64), right_columns.astype(np.int64)


def _row_intervals_to_mask(left: np.ndarray, right: np.ndarray, width: int) -> np.ndarray:
    columns = np.arange(width)
    return (columns[None, :] >= left[:, None]) & (columns[None, :] <= right[:, None])


def largest_rectangle(left: np.ndarray, right: np.ndarray) -> tuple[int, int, int, int] | None:
    """Largest axis-aligned (x, y, width, height) inside a convex region given by row intervals.

    For a convex region the left bound is a convex and the right bound a concave function of the
    row, so over rows y0..y1 the tightest bounds are found at y0 or y1: the widest rectangle
    spanning those rows is min(R[y0], R[y1]) − max(L[y0], L[y1]) + 1. All pairs are tried
    (vectorised per first row), which is exact and O(H²) cheap numpy work.
    """
    valid_rows = np.flatnonzero(right >= left)
    if valid_rows.size == 0:
        return None
    first, last = int(valid_rows[0]), int(valid_rows[-1])
    lefts, rights = left[first : last + 1], right[first : last + 1]
    best: tuple[int, int, int, int] | None = None
    best_area = 0
    for start in range(len(lefts)):
        widths = np.minimum(rights[start], rights[start:]) - np.maximum(lefts[start], lefts[start:]) + 1
        widths = np.where(rights[start:] >= lefts[start:], widths, 0)
        # Rows past an empty row cannot be spanned (the region is convex, so this is only a guard).
        empty = np.flatnonzero(widths <= 0)
        if empty.size:
            widths = widths[: empty[0]]
        if widths.size == 0:
            continue
        areas = widths * np.arange(1, widths.size + 1)
        k = int(np.argmax(areas))
        if areas[k] > best_area:
            best_area = int(areas[k])
            x = int(max(lefts[start], lefts[start + k]))
            best = (x, first + start, int(widths[k]), k + 1)
    return best


# ------------------------------------------------------------------------------- estimation
def _scale_matrix(source: tuple[int, int], target: tuple[int, int]) -> np.ndarray:
    """Pixel-centre mapping of a resize from ``source`` (h, w) to ``target`` (h, w), as cv2.resize does."""
    sy = target[0] / source[0]
    sx = target[1] / source[1]
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def estimate_alignment(
    stack: Stack,
    options: AlignOptions | None = None,
    cancel: CancelToken | None = None,
    progress: ProgressRange | None = None,
) -> ProgressGen[Alignment]:
    """Register every frame of ``stack`` onto the reference frame (generator returning an Alignment)."""
    options = options or AlignOptions()
    cancel = cancel or CancelToken()
    progress = progress or ProgressRange()
    started = time.perf_counter()
    count = len(stack)
    if count == 0:
        raise InputError("cannot align an empty stack")
    reference = options.reference_index(count)
    height, width = stack.shape
    longer = max(height, width)
    factor = 1.0 if options.estimation_size == 0 else min(1.0, options.estimation_size / longer)
    small_shape = (max(8, round(height * factor)), max(8, round(width * factor)))
    to_small = _scale_matrix((height, width), small_shape)
    from_small = np.linalg.inv(to_small)

    def small_grey(index: int) -> np.ndarray:
        image = stack.load(index, grey=True)
        if image.shape != (height, width):
            raise InputError(
                f"frame {index} is {image.shape[1]}×{image.shape[0]}, the reference stack is {width}×{height}",
                stack.frames[index].path or stack.frames[index].name,
            )
        if small_shape == (height, width):
            return np.ascontiguousarray(image, dtype=np.float32)
        return cv2.resize(image, (small_shape[1], small_shape[0]), interpolation=cv2.INTER_AREA)

    yield progress.event("align", 0.0, f"aligning {count} frames to frame {reference}")
    cancel.raise_if_cancelled()
    reference_small = small_grey(reference)
    small_matrices: dict[int, np.ndarray] = {reference: np.eye(3)}
    records: dict[int, dict[str, Any]] = {
        reference: {"status": "reference", "method": "reference", "messages": [], "correlation": None,
                    "inliers": None}
    }
    photometric: dict[int, tuple[float, float]] = {}
    done = 1
    notes: list[str] = []
    for direction in (1, -1):
        anchor_index, anchor_image, anchor_matrix = reference, reference_small, np.eye(3)
        for index in range(reference + direction, count if direction > 0 else -1, direction):
            cancel.raise_if_cancelled()
            moving = small_grey(index)
            cancel.raise_if_cancelled()  # decoding a frame can take as long as registering it
            if options.chain:
                target_image, target_matrix = anchor_image, anchor_matrix
                guess = np.eye(3)
            else:
                # Direct registration to the reference, started from the last accepted transform
                # (focus breathing changes smoothly, so it is a good first guess).
                target_image, target_matrix = reference_small, np.eye(3)
                guess = anchor_matrix
            name = stack.frames[index].name
            try:
                with cancel_scope(cancel):  # register_pair checks between its OpenCV calls
                    pair = register_pair(target_image, moving, options, guess)
                total = target_matrix @ pair.matrix
                problem = implausibility(total, small_shape[1], small_shape[0], options)
                if problem is not None:
                    raise RegistrationFailed(f"relative to the reference: {problem}")
            except RegistrationFailed as error:
                target_label = f"frame {anchor_index}" if options.chain else f"reference frame {reference}"
                if options.on_failure == "exclude":
                    status, action = "excluded", "excluded from the fusion"
                else:
                    status, action = "fallback", f"using the transform of frame {anchor_index}"
                message = f"frame {index} ({name}) could not be registered to {target_label}: {error}; {action}"
                notes.append(message)
                small_matrices[index] = anchor_matrix.copy()
                records[index] = {"status": status, "method": "none", "messages": [message],
                                  "correlation": None, "inliers": None}
            else:
                small_matrices[index] = total
                records[index] = {"status": "ok", "method": pair.method, "messages": pair.messages,
                                  "correlation": pair.correlation, "inliers": pair.inliers}
                anchor_index, anchor_image, anchor_matrix = index, moving, total
            if options.photometric and records[index]["status"] != "excluded":
                cancel.raise_if_cancelled()
                photometric[index] = _photometric_fit(reference_small, moving, small_matrices[index])
            done += 1
            record = records[index]
            detail = record["method"] if record["status"] == "ok" else record["status"]
            yield progress.event("align", done / count, f"frame {index + 1}/{count}: {detail}")
    frames = []
    for index in range(count):
        record = records[index]
        matrix = from_small @ small_matrices[index] @ to_small if index != reference else np.eye(3)
        matrix = _constrain(matrix, options.model)
        gain, offset = photometric.get(index, (1.0, 0.0))
        frames.append(
            FrameAlignment(
                index=index,
                name=stack.frames[index].name,
                matrix=matrix,
                status=record["status"],
                method=record["method"],
                messages=tuple(record["messages"]),
                correlation=record["correlation"],
                inliers=record["inliers"],
                gain=gain,
                offset=offset,
            )
        )
    included = [f.matrix for f in frames if f.status != "excluded"]
    left, right = covered_columns(included, height, width)
    crop_box = largest_rectangle(left, right)
    if crop_box is None:
        notes.append("the aligned frames share no common area")
    alignment = Alignment(
        frames=tuple(frames),
        reference=reference,
        model=options.model,
        shape=(height, width),
        crop_box=crop_box,
        options=options.to_params(),
        seconds=time.perf_counter() - started,
        notes=tuple(notes),
    )
    yield progress.event("align", 1.0, f"aligned {count} frames in {alignment.seconds:.1f} s")
    return alignment


# ---------------------------------------------------------------------------------- applying
class FrameWarp:
    """The per-frame transform applied on load: warp (and crop) onto the reference, match brightness."""

    def __init__(
        self,
        matrix: np.ndarray,
        output_shape: tuple[int, int],
        interpolation: Interpolation = "cubic",
        gain: float = 1.0,
        offset: float = 0.0,
        before: Callable[[np.ndarray], np.ndarray] | None = None,
        source_shape: tuple[int, int] | None = None,
    ) -> None:
        self.matrix = matrix
        self.output_shape = output_shape
        #: (height, width) of the frame the matrix maps from, when known (for :meth:`coverage`).
        self.source_shape = source_shape
        self.flags = cv2.INTER_CUBIC if interpolation == "cubic" else cv2.INTER_LINEAR
        self.gain = gain
        self.offset = offset
        self.before = before

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if self.before is not None:
            image = self.before(image)
        height, width = self.output_shape
        window = self._integer_window(image.shape[0], image.shape[1])
        if window is not None:
            # An integer shift inside the frame (the reference when cropping): a slice, no resampling.
            x0, y0 = window
            out = np.array(image[y0 : y0 + height, x0 : x0 + width], dtype=np.float32, copy=True)
        else:
            out = _warp(image, self.matrix, (width, height), self.flags, cv2.BORDER_REPLICATE)
            if self.flags == cv2.INTER_CUBIC:
                np.clip(out, 0.0, 1.0, out=out)  # cubic interpolation overshoots at edges
        if self.gain != 1.0 or self.offset != 0.0:
            out = np.clip(out * np.float32(self.gain) + np.float32(self.offset), 0.0, 1.0)
        return out.astype(np.float32, copy=False)

    def coverage(self) -> np.ndarray | None:
        """Output-sized bool mask of where the frame has real pixels (elsewhere the warp replicates
        its border); None when the source shape is unknown."""
        if self.source_shape is None:
            return None
        height, width = self.output_shape
        left, right = covered_columns([self.matrix], height, width, self.source_shape)
        return _row_intervals_to_mask(left, right, width)

    def _integer_window(self, source_height: int, source_width: int) -> tuple[int, int] | None:
        """(x0, y0) when the warp is a pure integer shift whose output lies inside the source."""
        matrix = self.matrix
        if not (np.allclose(matrix[:2, :2], np.eye(2), atol=1e-12) and np.allclose(matrix[2], (0, 0, 1))):
            return None
        shift = matrix[:2, 2]
        if not np.allclose(shift, np.round(shift), atol=1e-9):
            return None
        x0, y0 = -round(float(shift[0])), -round(float(shift[1]))
        height, width = self.output_shape
        if x0 < 0 or y0 < 0 or x0 + width > source_width or y0 + height > source_height:
            return None
        return x0, y0

    def __repr__(self) -> str:
        return f"FrameWarp(matrix={self.matrix.tolist()}, output_shape={self.output_shape})"


def apply_alignment(
    stack: Stack,
    alignment: Alignment,
    crop: bool = True,
    interpolation: Interpolation = "cubic",
) -> Stack:
    """The stack with every included frame warped onto the reference when it is loaded.

    ``crop=True`` gives frames of the crop box size; ``crop=False`` keeps the full frame size and
    sets ``valid_mask`` (True where every aligned frame has real pixels; border pixels elsewhere are
    replicated). Excluded frames are left out. Any transform the stack already had runs first.
    """
    if len(stack) != len(alignment.frames):
        raise FocusStudioError(
            f"the alignment describes {len(alignment.frames)} frames but the stack has {len(stack)}"
        )
    if stack.shape != alignment.shape:
        raise FocusStudioError(
            f"the alignment is for {alignment.shape[1]}×{alignment.shape[0]} frames, the stack has "
            f"{stack.shape[1]}×{stack.shape[0]}"
        )
    keep = alignment.included
    if len(keep) < 2:
        raise FocusStudioError(f"only {len(keep)} frame(s) left after excluding the unregistered ones")
    valid_mask: np.ndarray | None = None
    if crop:
        if alignment.crop_box is None:
            raise FocusStudioError("the aligned frames share no common area: nothing to crop to")
        x, y, box_width, box_height = alignment.crop_box
        placement = _translation(-x, -y)
        output_shape = (box_height, box_width)
    else:
        placement = np.eye(3)
        output_shape = alignment.shape
        mask = alignment.valid_mask()
        valid_mask = None if mask.all() else mask
    transforms = []
    for index in keep:
        frame = alignment.frames[index]
        transforms.append(
            FrameWarp(
                placement @ frame.matrix,
                output_shape,
                interpolation,
                frame.gain,
                frame.offset,
                before=stack.transforms[index],
                source_shape=alignment.shape,
            )
        )
    aligned = stack.subset(keep).with_transforms(transforms, valid_mask=valid_mask, shape=output_shape)
    aligned.notes.extend(note for note in alignment.notes if note not in aligned.notes)
    return aligned


def align_stack(
    stack: Stack,
    options: AlignOptions | Mapping[str, Any] | None = None,
    cancel: CancelToken | None = None,
    progress: ProgressRange | None = None,
) -> ProgressGen[tuple[Stack, Alignment]]:
    """Estimate and apply the alignment: the pipeline's alignment stage.

    Returns (aligned stack, alignment). The aligned stack decodes and warps each frame on load, so
    nothing is held in memory beyond what the caller keeps.
    """
    if options is None or isinstance(options, Mapping):
        options = AlignOptions.from_params(options)
    alignment = yield from estimate_alignment(stack, options, cancel, progress)
    aligned = apply_alignment(stack, alignment, crop=options.crop, interpolation=options.interpolation)
    return aligned, alignment


def align(stack: Stack, options: AlignOptions | Mapping[str, Any] | None = None) -> tuple[Stack, Alignment]:
    """Blocking wrapper around :func:`align_stack`."""
    return run_to_completion(align_stack(stack, options))


def save_alignment(path: str | Path, alignment: Alignment) -> Path:
    """Write the registration as JSON (atomically), for re-use on other stacks of the same rig."""
    import json

    from focusstudio.core.io import atomic_write_text

    return atomic_write_text(path, json.dumps(alignment.to_json(), indent=2) + "\n")


def load_alignment(path: str | Path) -> Alignment:
    """Read a registration saved by :func:`save_alignment`, ``fuse --maps`` (alignment.json) or found
    in a result's sidecar (its ``alignment`` entry); InputError (one line) when it is none of these."""
    import json

    source = Path(path)
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot be read ({exc.strerror or exc})", source) from None
    except ValueError as exc:
        raise InputError(f"is not valid JSON ({exc})", source) from None
    if isinstance(data, dict) and "frames" not in data and isinstance(data.get("alignment"), dict):
        data = data["alignment"]  # a sidecar: the registration its result was made with
    if not isinstance(data, dict):
        raise InputError("holds no alignment (expected the JSON of a saved registration)", source)
    try:
        return Alignment.from_json(data)
    except ParameterError as error:
        raise InputError(error.message, source) from None


__all__ = [
    "ALIGN_BY_DEFAULT_FROM",
    "ALIGN_PARAMS",
    "MOTION_MODELS",
    "AlignOptions",
    "Alignment",
    "FrameAlignment",
    "FrameWarp",
    "PairRegistration",
    "RegistrationFailed",
    "align",
    "align_by_default",
    "align_stack",
    "apply_alignment",
    "covered_columns",
    "estimate_alignment",
    "implausibility",
    "largest_rectangle",
    "register_pair",
]
