"""Camera RAW development with one fixed setting for a whole stack, and the colour a DNG needs.

Frames of a focus stack must be developed identically, or the fusion stitches regions of
different brightness and colour together (shinestacker#33/#40 report exactly that). So every
frame is developed by libraw (through the optional ``rawpy``) with:

* linear output (gamma 1, no auto-brightening, no per-frame ``adjust_maximum`` which lowers the
  white point to each frame's own brightest pixel), 16-bit, sRGB primaries;
* the white balance of the stack's reference frame (its as-shot multipliers) for every frame;
* one highlight mode (clip) for all.

The linear sRGB values are then encoded with the exact sRGB transfer curve (a fixed function,
the same for every frame): the fusion methods and every other output expect display-referred
pixels, and :func:`srgb_to_linear` undoes it exactly when a linear DNG is written.
:class:`RawColour` is what such a DNG carries from the reference frame: libraw's XYZ→camera
matrix and the white balance used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from focusstudio.core.errors import InputError
from focusstudio.core.io.formats import is_raw_name
from focusstudio.core.io.guards import check_frame_size, check_unchanged
from focusstudio.core.types import FrameInfo, FrameLoader, normalise_array

#: libraw's highlight mode 0: clip at the white level (the same in every frame).
_HIGHLIGHT_CLIP = 0
#: CIE XYZ (D65) of linear sRGB primaries, the matrix libraw uses (``xyz_rgb``).
XYZ_FROM_SRGB = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)

#: CIE XYZ of the D65 white point (Y = 1).
_D65_WHITE = XYZ_FROM_SRGB.sum(axis=1)


@dataclass(frozen=True)
class RawDevelopment:
    """The fixed development of a stack: white-balance multipliers (R, G, B, G2)."""

    white_balance: tuple[float, float, float, float]


@dataclass(frozen=True)
class RawColour:
    """Colour of a developed frame as a DNG states it: ``xyz_to_camera`` (3×3, D65) and the
    white-balance multipliers (R, G, B) applied to camera values before the matrix."""

    xyz_to_camera: np.ndarray
    white_balance: tuple[float, float, float]

    @staticmethod
    def srgb() -> RawColour:
        """The 'camera' of a non-RAW stack: linear sRGB itself, already white-balanced."""
        return RawColour(np.linalg.inv(XYZ_FROM_SRGB), (1.0, 1.0, 1.0))


def import_rawpy(path: Path) -> Any:
    try:
        import rawpy
    except ImportError as exc:
        raise InputError(
            "is a camera RAW file; reading RAW files needs the optional 'rawpy' package (pip install rawpy)",
            path,
        ) from exc
    return rawpy


def _white_balance(raw: Any) -> tuple[float, float, float, float]:
    """As-shot multipliers, else the camera's daylight ones, else none; G2 = G for RGB sensors."""
    for candidate in (getattr(raw, "camera_whitebalance", None), getattr(raw, "daylight_whitebalance", None)):
        values = [float(v) for v in (candidate or [])][:4]
        if len(values) >= 3 and all(np.isfinite(values)) and min(values[:3]) > 0:
            g2 = values[3] if len(values) == 4 and values[3] > 0 else values[1]
            return values[0], values[1], values[2], g2
    return 1.0, 1.0, 1.0, 1.0


def reference_development(path: Path) -> RawDevelopment:
    """The development every frame of a stack whose reference frame is ``path`` gets."""
    rawpy = import_rawpy(path)
    try:
        with rawpy.imread(str(path)) as raw:
            return RawDevelopment(_white_balance(raw))
    except Exception as exc:  # libraw raises its own error types for damaged files
        raise InputError(f"cannot be read as camera RAW ({_short(exc)})", path) from exc


def raw_colour(path: Path, development: RawDevelopment) -> RawColour:
    """The reference frame's XYZ→camera matrix with the stack's white balance, for a DNG.

    Taken from what libraw applies: its camera→sRGB matrix (``color_matrix``, read from the file
    for some cameras, DNGs included, computed from its tables for others) inverted, with each row
    scaled back by libraw's daylight multipliers (it divided row i by ``1 / pre_mul[i]``)."""
    rawpy = import_rawpy(path)
    try:
        with rawpy.imread(str(path)) as raw:
            srgb_from_camera = np.asarray(raw.color_matrix, dtype=np.float64)[:3, :3]
            daylight = np.asarray(raw.daylight_whitebalance, dtype=np.float64)[:3]
    except Exception as exc:
        raise InputError(f"cannot be read as camera RAW ({_short(exc)})", path) from exc
    if not np.all(np.isfinite(srgb_from_camera)) or abs(np.linalg.det(srgb_from_camera)) < 1e-9:
        return RawColour.srgb()  # libraw knows no matrix for this camera: its output is the raw data
    if not np.all(np.isfinite(daylight)) or daylight.min() <= 0:
        daylight = np.ones(3)
    camera_from_srgb = np.linalg.inv(srgb_from_camera) / daylight[:, None]
    xyz_to_camera = camera_from_srgb @ np.linalg.inv(XYZ_FROM_SRGB)
    # Adobe's convention: the camera's values for D65 white peak at 1.
    xyz_to_camera /= float(np.max(xyz_to_camera @ _D65_WHITE))
    return RawColour(xyz_to_camera, development.white_balance[:3])


def develop(path: Path, development: RawDevelopment | None = None) -> np.ndarray:
    """``path`` developed to 16-bit sRGB-encoded RGB (H×W×3 uint16), upright.

    Without ``development`` the file's own as-shot white balance is used (a single image)."""
    rawpy = import_rawpy(path)
    with rawpy.imread(str(path)) as raw:
        check_frame_size(path, int(raw.sizes.width), int(raw.sizes.height))
        balance = development.white_balance if development is not None else _white_balance(raw)
        linear = raw.postprocess(
            output_bps=16,
            gamma=(1.0, 1.0),
            no_auto_bright=True,
            adjust_maximum_thr=0.0,
            user_wb=list(balance),
            highlight_mode=getattr(getattr(rawpy, "HighlightMode", None), "Clip", _HIGHLIGHT_CLIP),
        )
    encoded = linear_to_srgb(np.asarray(linear, dtype=np.float64) / 65535.0)
    return np.floor(encoded * 65535.0 + 0.5).astype(np.uint16)


def stack_development(frames: Sequence[FrameInfo]) -> tuple[RawDevelopment, Path] | None:
    """The development of a stack's RAW frames and the file it comes from: the middle frame
    (the alignment's default reference), or the first RAW frame when the middle one is not RAW.
    None when no frame is RAW."""
    raw_paths = [f.path for f in frames if f.path is not None and is_raw_name(f.path)]
    if not raw_paths:
        return None
    middle = frames[len(frames) // 2].path
    source = middle if middle in raw_paths else raw_paths[0]
    assert source is not None
    return reference_development(source), source


def raw_stack_loader(frames: Sequence[FrameInfo], base: FrameLoader) -> FrameLoader:
    """``base`` for other frames; RAW frames developed with :func:`stack_development`'s one
    setting, so the whole stack shares one white balance, white point and highlight mode."""
    found = stack_development(frames)
    if found is None:
        return base
    development = found[0]

    def loader(info: FrameInfo) -> np.ndarray:
        if info.path is None or not is_raw_name(info.path):
            return base(info)
        try:
            image = normalise_array(develop(info.path, development))
        except InputError:
            raise
        except Exception as exc:  # libraw raises its own error types for damaged data
            raise InputError(f"cannot be decoded as camera RAW ({_short(exc)})", info.path) from exc
        check_unchanged(image, info)
        return image

    return loader


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer curve (IEC 61966-2-1) on values in [0, 1]."""
    values = np.clip(linear, 0.0, 1.0)
    return np.where(values <= 0.0031308, values * 12.92, 1.055 * np.power(values, 1 / 2.4) - 0.055)


def srgb_to_linear(encoded: np.ndarray) -> np.ndarray:
    """Inverse of :func:`linear_to_srgb`."""
    values = np.clip(encoded, 0.0, 1.0)
    return np.where(values <= 0.04045, values / 12.92, np.power((values + 0.055) / 1.055, 2.4))


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
