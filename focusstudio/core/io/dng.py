"""Linear DNG output: the fused image as demosaiced 16-bit camera RGB (PhotometricInterpretation
LinearRaw) with the reference frame's colour matrix, white balance and EXIF, so raw developers
(Lightroom Classic, darktable, libraw) open it as a raw-like file.

The fused pixels are sRGB-encoded (how every frame was developed, :mod:`.raw`). They are
linearised with the exact sRGB curve and taken back into the camera's space the way libraw took
them out of it: libraw computes ``rgb = inv(C) · (wb ∘ camera)`` with ``C`` the rows-normalised
``xyz_to_camera · XYZ_FROM_SRGB`` and ``wb`` the white-balance multipliers scaled so the smallest
is 1, so ``camera = (C · rgb) / wb``. The DNG states the same matrix (ColorMatrix1, D65) and the
neutral ``1 / wb`` (AsShotNeutral), so a reader develops it back to the fused colours. A stack of
ordinary images is written the same way with linear sRGB as its 'camera'.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
import tifffile

from focusstudio.core.io.raw import XYZ_FROM_SRGB, RawColour, srgb_to_linear

if TYPE_CHECKING:
    from focusstudio.core.io.metadata import OutputMetadata

LINEAR_RAW = 34892
#: DNG stores matrices as signed rationals; this denominator keeps 4 decimals like Adobe's tables.
_DENOMINATOR = 10000
_D65 = 21  # EXIF LightSource code of CalibrationIlluminant1
_WHITE = 65535


def quantised(matrix: np.ndarray) -> np.ndarray:
    """``matrix`` as the DNG's SRATIONAL values will hold it (the writer and readers agree)."""
    return np.round(np.asarray(matrix, dtype=np.float64) * _DENOMINATOR) / _DENOMINATOR


def camera_from_srgb(colour: RawColour) -> tuple[np.ndarray, np.ndarray]:
    """(C, wb): libraw's normalised camera-from-linear-sRGB matrix and white balance (min 1)."""
    camera_rgb = quantised(colour.xyz_to_camera) @ XYZ_FROM_SRGB
    camera_rgb = camera_rgb / camera_rgb.sum(axis=1, keepdims=True)
    balance = np.asarray(colour.white_balance, dtype=np.float64)
    return camera_rgb, balance / balance.min()


def encode_dng(pixels: np.ndarray, metadata: OutputMetadata | None) -> bytes:
    """The bytes of a linear DNG of ``pixels`` (uint16 sRGB-encoded, H×W or H×W×3)."""
    colour = (metadata.raw_colour if metadata is not None else None) or RawColour.srgb()
    rgb = np.asarray(pixels)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    camera_rgb, balance = camera_from_srgb(colour)
    camera = np.empty(rgb.shape, dtype=np.uint16)
    for start in range(0, rgb.shape[0], 256):  # blocks of rows: float64 copies of 24 MP are big
        linear = srgb_to_linear(rgb[start:start + 256].astype(np.float64) / _WHITE)
        values = (linear @ camera_rgb.T) / balance
        camera[start:start + 256] = np.floor(np.clip(values, 0.0, 1.0) * _WHITE + 0.5).astype(np.uint16)
    neutral = balance[1] / balance
    model = _model(metadata)
    tags: list[tuple[int, str, int, object, bool]] = [
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),  # DNGBackwardVersion: LinearRaw needs nothing newer
        (50708, "s", 0, model, True),  # UniqueCameraModel
        (50721, "2i", 9, _rationals(colour.xyz_to_camera), True),  # ColorMatrix1
        (50778, "H", 1, _D65, True),  # CalibrationIlluminant1
        (50728, "2I", 3, _rationals(neutral), True),  # AsShotNeutral
        (50714, "I", 1, 0, True),  # BlackLevel
        (50717, "I", 1, _WHITE, True),  # WhiteLevel
    ]
    options = metadata.tiff_options(rgb.shape) if metadata is not None else {"extratags": []}
    options["extratags"] = [*options["extratags"], *tags]
    options.pop("iccprofile", None)  # a DNG's colour is its matrices, not an ICC profile
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, camera, photometric=LINEAR_RAW, subfiletype=0, metadata=None, byteorder="<",
                     **options)
    data = buffer.getvalue()
    return metadata.tiff_with_sub_ifds(data, camera.shape) if metadata is not None else data


def _model(metadata: OutputMetadata | None) -> str:
    if metadata is None:
        return "FocusStudio linear DNG"
    make = str(metadata.ifd0.get(0x010F, "")).strip()
    model = str(metadata.ifd0.get(0x0110, "")).strip()
    name = model if model.startswith(make) else f"{make} {model}".strip()
    return name or "FocusStudio linear DNG"


def _rationals(values: np.ndarray) -> list[int]:
    flat: list[int] = []
    for value in np.ravel(values):
        flat += [round(float(value) * _DENOMINATOR), _DENOMINATOR]
    return flat
