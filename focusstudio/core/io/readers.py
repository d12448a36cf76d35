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
* Camera RAW → ``rawpy`` (optional, imported only when a RAW file is met): fixed linear 16-bit
  development, sRGB-encoded (:mod:`focusstudio.core.io.raw`). libraw applies the sensor
  orientation itself.

Every decoder first checks the header's size against the pixel limit
(:mod:`focusstudio.core.io.guards`). Float samples are read as 0–1; a float file holding 8- or
16-bit levels (whole numbers up to 255 or 65535, as some converters write) is scaled down with a
note instead of being clipped to white, and other values above 1 (HDR radiance) are refused:
fusing them would need a tone mapping the user should choose.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import struct
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile
from PIL import Image

from focusstudio.core.errors import FocusStudioError, InputError
from focusstudio.core.io.formats import SUPPORTED_FORMATS_TEXT, ImageFormat, detect_format
from focusstudio.core.io.guards import captured_c_stderr, check_frame_size, check_unchanged, decoder_reason
from focusstudio.core.io.raw import develop, import_rawpy
from focusstudio.core.types import FrameInfo, image_planes, normalise_array

EXIF_ORIENTATION_TAG = 0x0112

#: Pillow modes that hold one grey channel (alpha, if any, is dropped).
_PILLOW_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_PILLOW_UINT16_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
_XMP_ORIENTATION = re.compile(rb'tiff:Orientation(?:="|>)([1-8])')
#: A PNG's IEND chunk must be among its last bytes; more slack than the 12-byte chunk allows
#: tolerates the odd writer that pads the file.
_PNG_TAIL_BYTES = 4096
#: Pillow's own decompression-bomb guard warns on stderr above 89 MP and refuses 179 MP frames
#: that our limit (checked from the header before every decode) allows; ours replaces it.
Image.MAX_IMAGE_PIXELS = None
#: Pillow warns on stderr about damaged EXIF while the readers only want the orientation (1 when
#: unreadable); the reference frame's EXIF, which is carried, is checked by metadata.py.
warnings.filterwarnings("ignore", message="(?:Possibly )?[Cc]orrupt EXIF", category=UserWarning)


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


def decode_frame(info: FrameInfo, float_scale: float | None = None) -> np.ndarray:
    """The :class:`Stack` loader: decode the frame ``info`` describes and check it still fits.

    A file replaced or damaged after :func:`probe_image` raises :class:`InputError` here rather
    than handing a method an array of the wrong shape. ``float_scale`` divides float samples
    (see :func:`float_frame_scale`).
    """
    if info.path is None:
        raise ValueError(f"frame {info.name!r} has no file to decode")
    image, _ = _decode(info.path, info.page, float_scale)
    return as_opened(image, info)


def as_opened(image: np.ndarray, info: FrameInfo) -> np.ndarray:
    """``image`` checked against ``info`` (:func:`check_unchanged`) with the channels ``info``
    declares: grey taken from channel 0, or grey repeated into three channels."""
    check_unchanged(image, info)
    if info.channels == 1 and image.ndim == 3:
        # Only header-grey files get here (grey+alpha PNG decoded by OpenCV as BGRA): the
        # channels are identical, so channel 0 is the exact grey value.
        return np.ascontiguousarray(image[..., 0])
    if info.channels == 3 and image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    return image


def decode_levels(info: FrameInfo) -> np.ndarray | None:
    """The frame ``info`` describes as its integer levels (uint8/uint16, H×W or H×W×3 as
    :func:`decode_frame` shapes it, orientation applied), or None for float samples.

    ``normalise_array(decode_levels(info))`` equals ``decode_frame(info)`` exactly; a caller that
    converts band by band (:mod:`focusstudio.core.ops.levels`) never holds the float32 frame,
    4× the size of 8-bit levels (issue 20: 288 MB for a 24 MP colour frame)."""
    if info.path is None:
        raise ValueError(f"frame {info.name!r} has no file to decode")
    array, orientation = _pixels(info.path, info.page)
    if array.dtype not in (np.uint8, np.uint16):
        return None
    try:
        levels = image_planes(apply_orientation(array, orientation))
    except ValueError as exc:  # a shape no frame can have (decoders accept odd headers)
        raise InputError(f"cannot be used as an image ({_reason(exc)})", info.path) from exc
    return np.ascontiguousarray(as_opened(levels, info))


def float_frame_scale(info: FrameInfo) -> tuple[float, str | None]:
    """(divisor, levels) of a float frame's samples (:func:`float_sample_scale`); decodes it once."""
    if info.path is None or info.dtype != "float32":
        return 1.0, None
    array, _ = _pixels(info.path, info.page)
    if array.dtype.kind != "f":
        return 1.0, None
    return float_sample_scale(array, info.path)


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
        try:
            status = os.stat(path)
        except OSError as exc:
            raise missing_path_error(path, exc) from None
        if stat.S_ISDIR(status.st_mode):
            raise InputError("is a folder, not an image file", path)
        if not stat.S_ISREG(status.st_mode):
            raise InputError(f"is {_special_file_kind(status.st_mode)}, not a regular file", path)
        if status.st_size == 0:
            raise InputError("is empty (0 bytes)", path)
        image_format = detect_format(path)
    except OSError as exc:
        raise InputError(f"cannot be read ({_reason(exc)})", path) from exc
    if image_format is None:
        raise InputError(f"is not a supported image ({SUPPORTED_FORMATS_TEXT})", path)
    return image_format


def missing_path_error(path: Path, cause: OSError | None = None) -> InputError:
    """The one line for a path that cannot be followed to a file: missing, a dangling or looping
    symbolic link, or a folder on the way that cannot be searched."""
    if cause is None:
        try:
            os.stat(path)
        except OSError as exc:
            cause = exc
    if cause is not None and cause.errno == errno.ELOOP:
        return InputError("is a symbolic link loop (following its links never reaches a file)", path)
    if os.path.islink(path):
        return InputError(f"is a broken symbolic link (its target {os.readlink(path)} does not exist)", path)
    if cause is None or cause.errno == errno.ENOENT:
        return InputError("does not exist", path)
    return InputError(f"cannot be read ({cause.strerror or cause})", path)


def _special_file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _oriented_shape(height: int, width: int, orientation: int) -> tuple[int, int]:
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


def _decode(path: Path, page: int, float_scale: float | None = None) -> tuple[np.ndarray, str]:
    """(float32 image, source dtype) with orientation applied; InputError naming the file.

    Float samples are divided by ``float_scale`` (a stack's common scale), or when None by the
    scale :func:`float_sample_scale` finds in this file."""
    array, orientation = _pixels(path, page)
    source_dtype = _source_dtype(array.dtype)
    if array.dtype.kind == "f":
        scale = float_scale if float_scale is not None else float_sample_scale(array, path)[0]
        array = np.nan_to_num(array.astype(np.float32, copy=False), nan=0.0, posinf=scale, neginf=0.0)
        if scale != 1.0:
            array = array / np.float32(scale)
    try:
        image = normalise_array(apply_orientation(array, orientation))
    except ValueError as exc:  # a shape no frame can have (decoders accept odd headers)
        raise InputError(f"cannot be used as an image ({_reason(exc)})", path) from exc
    return image, source_dtype


#: Scales of float samples: 0–1 as is, whole numbers up to 255 or 65535 as 8/16-bit levels.
_FLOAT_LEVELS = ((255.0, "8-bit"), (65535.0, "16-bit"))


def float_sample_scale(array: np.ndarray, path: Path) -> tuple[float, str | None]:
    """(divisor, levels) for float samples: (1, None) when they lie in 0–1; (255, "8-bit") or
    (65535, "16-bit") when they are whole numbers up to that (levels saved as float).

    Raises InputError for other values above 1 (HDR data): clipping them would turn the
    highlights white without a word, and guessing a scale would change the picture's tones.
    """
    finite = array[np.isfinite(array)]
    peak = float(finite.max()) if finite.size else 0.0
    if peak <= 1.0:
        return 1.0, None
    for scale, bits in _FLOAT_LEVELS:
        if peak <= scale and bool(np.all(finite == np.round(finite))):
            return scale, bits
    raise InputError(
        f"holds float samples up to {peak:.4g}; float images must hold 0–1 (or whole 8/16-bit "
        "levels): scale it to 0–1 first (HDR data needs tone mapping)",
        path,
    )


def _pixels(path: Path, page: int) -> tuple[np.ndarray, int]:
    """The decoder's array (source dtype, not yet oriented) and the orientation to apply."""
    image_format = _checked_format(path)
    try:
        if image_format == "tiff":
            return _decode_tiff(path, page)
        if image_format == "raw":
            return _decode_raw(path), 1
        if image_format == "png":
            return _decode_png(path)
        return _decode_pillow(path)
    except FocusStudioError:
        raise
    except Exception as exc:  # truncated/corrupt data surfaces as many exception types
        raise InputError(f"cannot be decoded, the file may be truncated or damaged ({_reason(exc)})", path) from exc


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
        width, height = check_frame_size(path, *image.size)
        orientation = _pillow_orientation(image)
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
        check_frame_size(path, *image.size)
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
    width, height = check_frame_size(path, *struct.unpack(">II", head[16:24]))
    bit_depth, colour_type = head[24], head[25]
    with Image.open(path) as image:
        orientation = _pillow_orientation(image)
    height, width = _oriented_shape(height, width, orientation)
    channels = 1 if colour_type in (0, 4) else 3  # grey, grey+alpha; else RGB(A) or palette
    dtype = "uint16" if bit_depth == 16 else "uint8"
    return FrameInfo(path.name, height, width, channels, dtype, path)


def _decode_png(path: Path) -> tuple[np.ndarray, int]:
    # np.fromfile + imdecode instead of imread: imread cannot open non-ASCII paths on Windows.
    encoded = np.fromfile(path, dtype=np.uint8)
    if encoded.size < 24 or encoded[12:16].tobytes() != b"IHDR":
        raise InputError("is not a readable PNG image (no IHDR header)", path)
    check_frame_size(path, *struct.unpack(">II", encoded[16:24].tobytes()))
    with captured_c_stderr() as complaints:  # libpng prints its errors itself
        array = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    if array is None:
        reason = decoder_reason(complaints)
        detail = f" ({reason})" if reason else ""
        raise InputError(f"cannot be decoded, the PNG data is truncated or damaged{detail}", path)
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
    _check_tiff_size(path, page, where)
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


def _check_tiff_size(path: Path, page: tifffile.TiffPage, where: str) -> None:
    """ImageWidth/ImageLength must be positive whole numbers within the pixel limit (tifffile
    accepts an ASCII or FLOAT tag and hands on a string or a float)."""
    check_frame_size(path, page.imagewidth, page.imagelength, where)
    depth = page.imagedepth
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise InputError(f"{where}has a damaged header: its depth is {depth!r}", path)


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
        where = f"page {page_index}: " if page_index else ""
        _check_tiff_size(path, page, where)
        if page.imagedepth > 1:
            raise InputError(f"{where}volumetric TIFF images (depth {page.imagedepth}) are not supported", path)
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
    with captured_c_stderr():  # libtiff prints warnings about tags it does not know
        ok, pages = cv2.imdecodemulti(encoded, cv2.IMREAD_UNCHANGED, None, (page_index, page_index + 1))
    if not ok or not pages:
        raise InputError(
            f"cannot be decoded ({_reason(cause)}); installing the 'imagecodecs' package may help", path
        ) from cause
    return _bgr_to_rgb(pages[0])


# --------------------------------------------------------------------------- camera RAW
def _probe_raw(path: Path) -> FrameInfo:
    rawpy = import_rawpy(path)
    with rawpy.imread(str(path)) as raw:
        sizes = raw.sizes
        height, width, flip = int(sizes.height), int(sizes.width), int(sizes.flip)
    width, height = check_frame_size(path, width, height)
    if flip in (5, 6):  # libraw's flip codes for 90° turns: its output is portrait
        height, width = width, height
    return FrameInfo(path.name, height, width, 3, "uint16", path)


def _decode_raw(path: Path) -> np.ndarray:
    # One file alone: its own white balance. A stack's frames share one (stacks.load_stack).
    return develop(path)
