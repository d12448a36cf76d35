"""Which files are images, and which decoder reads them.

The extension decides whether a folder entry is an image at all (cheap: no file is opened for
``notes.txt``); the first bytes decide the decoder, so a PNG saved as ``.jpg`` still reads
correctly. Camera RAW files are recognised by extension only, because most of them are TIFF
containers whose first IFD is a small preview, not the picture.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Literal

ImageFormat = Literal["png", "jpeg", "tiff", "bmp", "webp", "raw"]

#: Extensions of the formats read with Pillow/OpenCV/tifffile (lower case, with the dot).
STANDARD_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".tif", ".tiff", ".bmp", ".dib", ".webp"}
)
#: Camera RAW extensions, read with the optional ``rawpy`` package.
RAW_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".orf", ".rw2",
        ".raf", ".pef", ".srw", ".rwl", ".3fr", ".erf", ".kdc", ".mrw", ".x3f", ".iiq", ".mos",
        ".mef", ".raw",
    }
)
IMAGE_EXTENSIONS: frozenset[str] = STANDARD_EXTENSIONS | RAW_EXTENSIONS
TIFF_EXTENSIONS: frozenset[str] = frozenset({".tif", ".tiff"})

#: Human-readable list for error messages.
SUPPORTED_FORMATS_TEXT = "PNG, JPEG, TIFF, BMP, WebP or camera RAW"

_MAGIC: tuple[tuple[bytes, ImageFormat], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
    (b"BM", "bmp"),
)


def is_image_name(path: Path) -> bool:
    """True when the extension is one FocusStudio reads (case-insensitive)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def is_raw_name(path: Path) -> bool:
    return path.suffix.lower() in RAW_EXTENSIONS


def is_hidden(path: Path) -> bool:
    """Dot files (``.DS_Store``, macOS ``._IMG_1.jpg`` resource forks) and Windows hidden files."""
    if path.name.startswith("."):
        return True
    attributes = getattr(os.stat_result, "st_file_attributes", None)
    if attributes is None:  # not Windows
        return False
    try:
        return bool(path.stat().st_file_attributes & stat.FILE_ATTRIBUTE_HIDDEN)  # type: ignore[attr-defined]
    except OSError:
        return False


def sniff_format(head: bytes) -> ImageFormat | None:
    """The format announced by a file's first bytes, or None when it is not one we read."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def detect_format(path: Path) -> ImageFormat | None:
    """Decoder for ``path``: RAW by extension, everything else by content."""
    if is_raw_name(path):
        return "raw"
    with open(path, "rb") as handle:
        head = handle.read(16)
    return sniff_format(head)
