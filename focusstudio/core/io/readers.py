"""Header probing and pixel decoding of single image files.

Two stages, so that opening a stack is cheap:

* :func:`probe_image` reads only headers (Pillow's lazy ``open``, the PNG ``IHDR`` chunk,
  tifffile's page tags, libraw's size block) and returns one :class:`FrameInfo` per frame: the
  size *after* EXIF orientation, the channel count after normalisation (1 or 3) and the source
  dtype.
* :func:`decode_frame` (the loader of every file-backed :class:`Stack`) and :func:`read_image`
  decode the pixels to float32 in [0, 1], H×W or H×W×3 RGB, alpha dropped, orientation applied.

Decoders, chosen by the file's first bytes:

* PNG → OpenCV (``IMREAD_UNCHANGED``: 16-bit RGB survives, which Pillow would cut to 8 bits;
  this flag also makes OpenCV ignore EXIF orientation, which we then apply exactly once).
* JPEG, BMP, WebP → Pillow (strict: a truncated JPEG raises instead of decoding grey rows,
  which OpenCV would do silently; CMYK/YCbCr/palette modes convert to RGB).
* TIFF → tifffile, one frame per full-resolution page; pages whose compression needs the
  optional ``imagecodecs`` package (LZW, JPEG, PackBits) fall back to OpenCV's libtiff.
* Camera RAW → ``rawpy`` (optional, imported only when a RAW file is met), 16-bit output with
  the camera white balance and no auto-brightening, so every frame of a stack gets the same
  tone curve. libraw applies the sensor orientation itself.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile
from PIL import Image

from focusstudio.core.errors import FocusStudioError, InputError
from focusstudio.core.io.formats import SUPPORTED_FORMATS_TEXT, ImageFormat, detect_format
from focusstudio.core.types import FrameInfo, normalise_array

EXIF_ORIENTATION_TAG = 0x0112

#: Pillow modes that hold one grey channel (alpha, if any, is dropped).
_PILLOW_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_PILLOW_UINT16_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
_XMP_ORIENTATION = re.compile(rb'tiff:Orientation(?:="|>)([1-8])')
#: A PNG's IEND chunk must be among its last bytes; more slack than the 12-byte chunk allows
#: tolerates the odd writer that pads the file.
_PNG_TAIL_BYTES = 4096


# --------------------------------------------------------------------------- public API
def probe_image(path: str | Path) -> list[FrameInfo]:
    """Frames in ``path`` from headers only: one per full-resolution page (TIFF), else one.

    Raises :class:`InputError` naming the file when it is missing, empty, not an image of a
    supported format, or its header is damaged.
    """
    path = Path(path)
    image_format = _checked_format(path)
    try:
        if image_format == "tiff":
            return _probe_tiff(path)
        if image_format == "raw":
            return [_probe_raw(path)]
        if image_format == "png":
            return [_probe_png(path)]
        return [_probe_pillow(path)]
    except FocusStudioError:
        raise
    except Exception as exc:  # decoders raise anything from OSError to SyntaxError on bad headers
        raise InputError(f"is not a readable {image_format.upper()} image ({_reason(exc)})", path) from exc


def read_image(path: str | Path, page: int = 0) -> np.ndarray:
    """Decode ``path`` (page ``page`` of a TIFF) to float32 [0, 1], H×W or H×W×3 RGB."""
    path = Path(path)
    image, _ = _decode(path, page)
    return image


def read_image_with_dtype(path: str | Path, page: int = 0) -> tuple[np.ndarray, str]:
    """Like :func:`read_image`, also returning the source dtype ('uint8', 'uint16', 'float32')."""
    return _decode(Path(path), page)


def decode_frame(info: FrameInfo) -> np.ndarray:
    """The :class:`Stack` loader: decode the frame ``info`` describes and check it still fits.

    A file replaced or damaged after :func:`probe_image` raises :class:`InputError` here rather
    than handing a method an array of the wrong shape.
    """
    if info.path is None:
        raise ValueError(f"frame {info.name!r} has no file to decode")
    image, _ = _decode(info.path, info.page)
    if image.shape[:2] != info.shape:
        raise InputError(
            f"changed since it was opened: it is now {image.shape[1]}x{image.shape[0]} pixels, "
            f"it was {info.width}x{info.height}",
            info.path,
        )
    if info.channels == 1 and image.ndim == 3:
        # Only header-grey files get here (grey+alpha PNG decoded by OpenCV as BGRA): the
        # channels are identical, so channel 0 is the exact grey value.
        image = np.ascontiguousarray(image[..., 0])
    elif info.channels == 3 and image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turn pixels stored with EXIF ``orientation`` (1–8) upright; same result as Pillow's
    ``ImageOps.exif_transpose``. Works on H×W and H×W×C arrays."""
    if orientation == 2:
        result = np.fliplr(image)
    elif orientation == 3:
        result = np.rot90(image, 2)
    elif orientation == 4:
        result = np.flipud(image)
    elif orientation == 5:  # transpose: mirror about the main diagonal
        result = np.swapaxes(image, 0, 1)
    elif orientation == 6:  # stored rotated 90° anticlockwise → rotate 90° clockwise
        result = np.rot90(image, -1)
    elif orientation == 7:  # transverse: mirror about the anti-diagonal
        result = np.swapaxes(np.rot90(image, 2), 0, 1)
    elif orientation == 8:
        result = np.rot90(image, 1)
    else:
        return image
    return np.ascontiguousarray(result)


# --------------------------------------------------------------------------- shared helpers
def _reason(exc: BaseException) -> str:
    """A decoder's message cut to one short line (some span several lines or are empty)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _checked_format(path: Path) -> ImageFormat:
    """The decoder for ``path`` after the checks every input gets (exists, file, not empty)."""
    try:
        if not path.exists():
            raise InputError("does not exist", path)
        if path.is_dir():
            raise InputError("is a folder, not an image file", path)
        if path.stat().st_size == 0:
            raise InputError("is empty (0 bytes)", path)
        image_format = detect_format(path)
    except OSError as exc:
        raise InputError(f"cannot be read ({_reason(exc)})", path) from exc
    if image_format is None:
        raise InputError(f"is not a supported image ({SUPPORTED_FORMATS_TEXT})", path)
    return image_format


def _oriented_shape(height: int, width: int, orientation: int) -> tuple[int, int]:
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


def _decode(path: Path, page: int) -> tuple[np.ndarray, str]:
    """(float32 image, source dtype) with orientation applied; InputError naming the file."""
    image_format = _checked_format(path)
    try:
        if image_format == "tiff":
            array, orientation = _decode_tiff(path, page)
        elif image_format == "raw":
            array, orientation = _decode_raw(path), 1
        elif image_format == "png":
            array, orientation = _decode_png(path)
        else:
            array, orientation = _decode_pillow(path)
    except FocusStudioError:
        raise
    except Exception as exc:  # truncated/corrupt data surfaces as many exception types
        raise InputError(f"cannot be decoded, the file may be truncated or damaged ({_reason(exc)})", path) from exc
    source_dtype = _source_dtype(array.dtype)
    if array.dtype.kind == "f":
        array = np.nan_to_num(array.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=0.0)
    image = normalise_array(apply_orientation(array, orientation))
    return image, source_dtype


def _source_dtype(dtype: np.dtype[Any]) -> str:
    if dtype == np.uint8:
        return "uint8"
    if dtype == np.uint16:
        return "uint16"
    return "float32"


def _bgr_to_rgb(array: np.ndarray) -> np.ndarray:
    """OpenCV's BGR/BGRA order → RGB (alpha dropped); grey passes through."""
    if array.ndim == 3 and array.shape[2] >= 3:
        return np.ascontiguousarray(array[..., 2::-1])
    return array


# --------------------------------------------------------------------------- Pillow (JPEG, BMP, WebP)
def _pillow_orientation(image: Image.Image) -> int:
    """EXIF (or XMP) orientation 1–8 from an opened but not yet decoded Pillow image."""
    if image.format == "PNG" and "exif" not in image.info:
        # PngImageFile.getexif() decodes the whole image to look for an eXIf chunk after IDAT;
        # writers put eXIf before IDAT, so the header-only view is enough and stays cheap.
        xmp = image.info.get("XML:com.adobe.xmp") or image.info.get("xmp")
        if isinstance(xmp, str):
            xmp = xmp.encode("utf-8", "replace")
        match = _XMP_ORIENTATION.search(xmp) if isinstance(xmp, bytes) else None
        return int(match.group(1)) if match else 1
    value = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
    try:
        orientation = int(value)
    except (TypeError, ValueError):
        return 1
    return orientation if 1 <= orientation <= 8 else 1


def _pillow_dtype(mode: str) -> str:
    if mode in _PILLOW_UINT16_MODES:
        return "uint16"
    if mode == "F":
        return "float32"
    return "uint8"


def _probe_pillow(path: Path) -> FrameInfo:
    with Image.open(path) as image:
        orientation = _pillow_orientation(image)
        width, height = image.size
        channels = 1 if image.mode in _PILLOW_GREY_MODES else 3
        dtype = _pillow_dtype(image.mode)
    height, width = _oriented_shape(height, width, orientation)
    return FrameInfo(path.name, height, width, channels, dtype, path)


def _pillow_pixels(image: Image.Image) -> np.ndarray:
    """A decoded Pillow image → uint8/uint16/float32 array, H×W or H×W×3."""
    mode = image.mode
    if mode in ("L", "RGB"):
        return np.asarray(image)
    if mode in _PILLOW_UINT16_MODES:
        # "I" is 32-bit signed; for image files it carries 16-bit samples.
        return np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
    if mode == "F":
        return np.asarray(image, dtype=np.float32)
    if mode in _PILLOW_GREY_MODES:  # "1", "LA", "La"
        return np.asarray(image.convert("L"))
    return np.asarray(image.convert("RGB"))  # RGBA, P, PA, CMYK, YCbCr, LAB, HSV, ...


def _decode_pillow(path: Path) -> tuple[np.ndarray, int]:
    with Image.open(path) as image:
        orientation = _pillow_orientation(image)
        image.load()  # raises OSError("image file is truncated") for a cut-off file
        return _pillow_pixels(image), orientation


# --------------------------------------------------------------------------- PNG
def _probe_png(path: Path) -> FrameInfo:
    with open(path, "rb") as handle:
        head = handle.read(33)
        size = handle.seek(0, 2)
        handle.seek(max(0, size - _PNG_TAIL_BYTES))
        tail = handle.read()
    if len(head) < 33 or head[12:16] != b"IHDR":
        raise InputError("is not a readable PNG image (no IHDR header)", path)
    if b"IEND" not in tail:
        raise InputError("is truncated or damaged (the PNG end marker is missing)", path)
    width, height = struct.unpack(">II", head[16:24])
    bit_depth, colour_type = head[24], head[25]
    if width == 0 or height == 0:
        raise InputError(f"is not a readable PNG image (size {width}x{height})", path)
    with Image.open(path) as image:
        orientation = _pillow_orientation(image)
    height, width = _oriented_shape(height, width, orientation)
    channels = 1 if colour_type in (0, 4) else 3  # grey, grey+alpha; else RGB(A) or palette
    dtype = "uint16" if bit_depth == 16 else "uint8"
    return FrameInfo(path.name, height, width, channels, dtype, path)


def _decode_png(path: Path) -> tuple[np.ndarray, int]:
    # np.fromfile + imdecode instead of imread: imread cannot open non-ASCII paths on Windows.
    encoded = np.fromfile(path, dtype=np.uint8)
    array = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    if array is None:
        raise InputError("cannot be decoded, the PNG data is truncated or damaged", path)
    with Image.open(path) as image:
        orientation = _pillow_orientation(image)
    return _bgr_to_rgb(array), orientation


# --------------------------------------------------------------------------- TIFF
def _tiff_orientation(page: tifffile.TiffPage) -> int:
    tag = page.tags.get(274)
    try:
        orientation = int(tag.value) if tag is not None else 1
    except (TypeError, ValueError):
        return 1
    return orientation if 1 <= orientation <= 8 else 1


def _tiff_page_info(path: Path, page: tifffile.TiffPage, index: int) -> FrameInfo:
    where = f"page {index}: " if index else ""
    photometric = tifffile.PHOTOMETRIC(page.photometric)
    colour_samples = page.samplesperpixel - len(page.extrasamples)
    if page.imagedepth > 1:
        raise InputError(f"{where}volumetric TIFF images (depth {page.imagedepth}) are not supported", path)
    if photometric in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.MINISWHITE):
        if colour_samples != 1:
            raise InputError(f"{where}{colour_samples}-channel grey TIFF images are not supported", path)
        channels = 1
    elif photometric in (tifffile.PHOTOMETRIC.RGB, tifffile.PHOTOMETRIC.YCBCR, tifffile.PHOTOMETRIC.PALETTE):
        channels = 3
    else:
        raise InputError(f"{where}TIFF colour model {photometric.name} is not supported (save as RGB)", path)
    if photometric == tifffile.PHOTOMETRIC.PALETTE or page.dtype in (np.bool_, np.uint8):
        dtype = "uint8"
    elif page.dtype == np.uint16:
        dtype = "uint16"
    elif page.dtype is not None and np.dtype(page.dtype).kind == "f":
        dtype = "float32"
    else:
        raise InputError(f"{where}TIFF sample type {page.dtype} is not supported (use 8/16-bit or float)", path)
    height, width = _oriented_shape(page.imagelength, page.imagewidth, _tiff_orientation(page))
    return FrameInfo(path.name, height, width, channels, dtype, path, index)


def _probe_tiff(path: Path) -> list[FrameInfo]:
    frames: list[FrameInfo] = []
    with tifffile.TiffFile(path) as tif:
        pages = tif.pages
        for index in range(len(pages)):
            page = pages[index]
            if not isinstance(page, tifffile.TiffPage) or page.is_reduced or page.is_mask:
                continue  # thumbnails, pyramid levels and transparency masks are not frames
            frames.append(_tiff_page_info(path, page, index))
    if not frames:
        raise InputError("has no full-resolution image in it", path)
    if len(frames) > 1:
        frames = [FrameInfo(f"{path.name}[{f.page}]", f.height, f.width, f.channels, f.dtype, path, f.page)
                  for f in frames]
    return frames


def _tiff_page_pixels(array: np.ndarray, page: tifffile.TiffPage) -> np.ndarray:
    """A page as tifffile returns it → uint8/uint16/float array, H×W or H×W×C."""
    axes = page.axes
    if array.ndim == 3 and axes.startswith("S"):  # planar configuration "separate"
        array = np.moveaxis(array, 0, -1)
    photometric = page.photometric
    if photometric == tifffile.PHOTOMETRIC.PALETTE:
        # The TIFF colour map holds 16-bit RGB entries for each index.
        colormap = np.asarray(page.colormap)
        indices = array[..., 0] if array.ndim == 3 else array
        return np.moveaxis(colormap[:, indices], 0, -1).astype(np.uint16)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * np.uint8(255)
    if array.ndim == 3 and photometric in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.MINISWHITE):
        array = array[..., 0]  # grey + extra (alpha) samples
    elif array.ndim == 3 and array.shape[2] > 3:
        array = array[..., :3]
    if photometric == tifffile.PHOTOMETRIC.MINISWHITE:
        array = (1.0 - array) if array.dtype.kind == "f" else (np.iinfo(array.dtype).max - array)
    return array


def _decode_tiff(path: Path, page_index: int) -> tuple[np.ndarray, int]:
    with tifffile.TiffFile(path) as tif:
        if page_index >= len(tif.pages):
            raise InputError(f"has no page {page_index} (it has {len(tif.pages)})", path)
        page = tif.pages[page_index]
        if not isinstance(page, tifffile.TiffPage):
            raise InputError(f"page {page_index} cannot be read", path)
        orientation = _tiff_orientation(page)
        try:
            array = _tiff_page_pixels(page.asarray(), page)
        except (ValueError, KeyError, NotImplementedError) as exc:
            if "imagecodecs" not in str(exc) and not isinstance(exc, NotImplementedError):
                raise  # truncated or corrupt data: not something another decoder should guess at
            array = _decode_tiff_with_opencv(path, page_index, exc)
    return array, orientation


def _decode_tiff_with_opencv(path: Path, page_index: int, cause: Exception) -> np.ndarray:
    """Pages compressed with a codec tifffile lacks without ``imagecodecs`` (LZW is common)."""
    encoded = np.fromfile(path, dtype=np.uint8)
    ok, pages = cv2.imdecodemulti(encoded, cv2.IMREAD_UNCHANGED, None, (page_index, page_index + 1))
    if not ok or not pages:
        raise InputError(
            f"cannot be decoded ({_reason(cause)}); installing the 'imagecodecs' package may help", path
        ) from cause
    return _bgr_to_rgb(pages[0])


# --------------------------------------------------------------------------- camera RAW
def _import_rawpy(path: Path) -> Any:
    try:
        import rawpy
    except ImportError as exc:
        raise InputError(
            "is a camera RAW file; reading RAW files needs the optional 'rawpy' package (pip install rawpy)",
            path,
        ) from exc
    return rawpy


def _probe_raw(path: Path) -> FrameInfo:
    rawpy = _import_rawpy(path)
    with rawpy.imread(str(path)) as raw:
        sizes = raw.sizes
        height, width, flip = int(sizes.height), int(sizes.width), int(sizes.flip)
    if flip in (5, 6):  # libraw's flip codes for 90° turns: its output is portrait
        height, width = width, height
    return FrameInfo(path.name, height, width, 3, "uint16", path)


def _decode_raw(path: Path) -> np.ndarray:
    rawpy = _import_rawpy(path)
    with rawpy.imread(str(path)) as raw:
        # Same white balance and no per-frame auto-brightening: frames of a stack must match.
        pixels = raw.postprocess(output_bps=16, use_camera_wb=True, no_auto_bright=True)
    return np.asarray(pixels, dtype=np.uint16)
