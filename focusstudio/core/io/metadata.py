"""The camera's metadata carried from a stack's reference frame to the fused result.

:func:`collect_metadata` reads, before the run, the reference frame's EXIF (IFD0's descriptive
tags, the Exif and GPS sub-IFDs, MakerNote included) and the colour profiles of all frames
(:mod:`focusstudio.core.io.icc`); damaged EXIF or profiles, or frames whose profiles differ,
are refused with one line naming the file. The writers then embed an :class:`OutputMetadata`
in what they encode: JPEG (APP1 Exif, APP2 ICC, XMP), PNG (eXIf, iCCP and iTXt chunks, inserted
after IHDR) and TIFF/DNG (IFD0 tags through tifffile, the Exif and GPS sub-IFDs appended).

The pixels FocusStudio writes are upright (the readers apply the EXIF orientation), so the
orientation tag is always 1; ``Software`` names FocusStudio and the image description and XMP
say what the result was fused from. The embedded thumbnail (IFD1) is dropped: it still shows the
reference frame, not the result. ``strip=True`` drops the GPS position, the MakerNote (private
camera data) and owner/serial numbers.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from PIL import Image, TiffImagePlugin

from focusstudio.core.errors import InputError
from focusstudio.core.io.formats import is_raw_name
from focusstudio.core.io.icc import check_profiles
from focusstudio.core.io.raw import RawColour, raw_colour, stack_development
from focusstudio.core.types import FrameInfo

EXIF_IFD, GPS_IFD, INTEROP_IFD = 0x8769, 0x8825, 0xA005
ORIENTATION, SOFTWARE, DESCRIPTION = 0x0112, 0x0131, 0x010E
MAKER_NOTE = 0x927C
PIXEL_X, PIXEL_Y = 0xA002, 0xA003
#: IFD0 tags that describe the picture and the camera (not the file's structure: a TIFF's
#: StripOffsets or BitsPerSample must never be copied into another file).
IFD0_KEPT = {
    0x010F: "Make", 0x0110: "Model", 0x0132: "DateTime", 0x013B: "Artist", 0x8298: "Copyright",
    0x013C: "HostComputer",
}
#: Dropped by ``strip=True`` besides the GPS IFD: private camera data and what names a person
#: or a camera body (CameraOwnerName, BodySerialNumber, LensSerialNumber).
_PRIVATE_EXIF = frozenset({MAKER_NOTE, 0xA430, 0xA431, 0xA435})
#: tifffile writes no ExifTag/GPSTag pointer itself: these neighbouring private codes (same place
#: in the sorted IFD) are written as placeholders and renamed once the sub-IFDs are appended.
_PLACEHOLDERS = {EXIF_IFD: EXIF_IFD + 1, GPS_IFD: GPS_IFD + 1}
#: Exif-IFD tags that point elsewhere in the source file and would dangle in ours.
_POINTER_TAGS = frozenset({INTEROP_IFD, 0x8769, 0x8825})


@dataclass(frozen=True)
class OutputMetadata:
    """What a written result carries: the reference frame's EXIF and colour profile, the note."""

    reference: str = ""
    ifd0: dict[int, Any] = field(default_factory=dict)
    exif_ifd: dict[int, Any] = field(default_factory=dict)
    gps_ifd: dict[int, Any] = field(default_factory=dict)
    icc_profile: bytes | None = None
    description: str = ""
    #: The camera colour a DNG states (the reference RAW frame's matrix, or sRGB).
    raw_colour: RawColour | None = None

    @property
    def software(self) -> str:
        from focusstudio import __version__

        return f"FocusStudio {__version__}"

    def described(self, frames: Sequence[str], method: str) -> OutputMetadata:
        """With the note of the stack (how many frames, first and last, the method)."""
        names = f"{frames[0]} … {frames[-1]}" if len(frames) > 1 else ", ".join(frames)
        text = f"Focus stack of {len(frames)} frames ({names}) fused with method '{method}'"
        if self.reference:
            text += f"; metadata from {self.reference}"
        return replace(self, description=text)

    # ----------------------------------------------------------------- EXIF
    def exif(self, shape: tuple[int, ...]) -> Image.Exif:
        """The EXIF of a result of ``shape`` (H×W[×C]): upright, our Software and description."""
        exif = Image.Exif()
        for tag, value in self.ifd0.items():
            exif[tag] = value
        exif[ORIENTATION] = 1
        exif[SOFTWARE] = self.software
        if self.description:
            exif[DESCRIPTION] = _ascii(self.description)
        if self.exif_ifd:
            sub = exif.get_ifd(EXIF_IFD)
            sub.update(self.exif_ifd)
            if PIXEL_X in sub or PIXEL_Y in sub:
                sub[PIXEL_X], sub[PIXEL_Y] = int(shape[1]), int(shape[0])
        if self.gps_ifd:
            exif.get_ifd(GPS_IFD).update(self.gps_ifd)
        return exif

    def exif_bytes(self, shape: tuple[int, ...]) -> bytes:
        """The TIFF-structured EXIF block, without JPEG's ``Exif\\0\\0`` prefix."""
        return self.exif(shape).tobytes()[6:]

    def xmp(self) -> bytes:
        """A minimal XMP packet: the creator tool and the description (UTF-8, names as they are)."""
        packet = (
            '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/">'
            f"<xmp:CreatorTool>{escape(self.software)}</xmp:CreatorTool><tiff:Orientation>1</tiff:Orientation>"
            f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{escape(self.description)}</rdf:li>'
            "</rdf:Alt></dc:description></rdf:Description></rdf:RDF></x:xmpmeta>"
            '<?xpacket end="w"?>'
        )
        return packet.encode("utf-8")

    # ----------------------------------------------------------------- per format
    def jpeg_options(self, shape: tuple[int, ...]) -> dict[str, Any]:
        """Keyword arguments of Pillow's JPEG ``save``."""
        options: dict[str, Any] = {"exif": self.exif(shape).tobytes(), "xmp": self.xmp()}
        if self.profile_fits(shape):
            options["icc_profile"] = self.icc_profile
        return options

    def png_with_metadata(self, png: bytes, shape: tuple[int, ...]) -> bytes:
        """``png`` with iCCP, eXIf and XMP chunks inserted after IHDR (before any IDAT)."""
        chunks = [_png_chunk(b"eXIf", self.exif_bytes(shape))]
        if self.profile_fits(shape):
            chunks.insert(0, _png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(self.icc_profile)))
        chunks.append(_png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + self.xmp()))
        ihdr_end = 8 + 8 + struct.unpack(">I", png[8:12])[0] + 4  # signature, IHDR length+type, data, CRC
        return png[:ihdr_end] + b"".join(chunks) + png[ihdr_end:]

    def profile_fits(self, shape: tuple[int, ...]) -> bool:
        """Whether the profile describes pixels of ``shape``: an RGB profile does not fit a grey
        result (colour frames fused to grey by a method), and a grey one no RGB result."""
        if not self.icc_profile or len(self.icc_profile) < 20:
            return False
        grey = len(shape) == 2 or shape[-1] == 1
        return (self.icc_profile[16:20] == b"GRAY") == grey

    def tiff_options(self, shape: tuple[int, ...]) -> dict[str, Any]:
        """Keyword arguments of ``tifffile.imwrite``: IFD0 tags, profile, sub-IFD placeholders
        (:meth:`tiff_with_sub_ifds` fills them in once the file's length is known)."""
        extratags: list[tuple[int, str, int, Any, bool]] = [(ORIENTATION, "H", 1, 1, True)]
        extratags += [(tag, "s", 0, _ascii(str(value)), True) for tag, value in self.ifd0.items()
                      if isinstance(value, str)]
        extratags.append((700, "B", len(self.xmp()), self.xmp(), True))
        for tag, sub in ((EXIF_IFD, self.exif_ifd), (GPS_IFD, self.gps_ifd)):
            if sub:
                extratags.append((_PLACEHOLDERS[tag], "I", 1, 0, True))
        options: dict[str, Any] = {"software": self.software, "extratags": extratags}
        if self.description:
            options["description"] = _ascii(self.description)
        if self.profile_fits(shape):
            options["iccprofile"] = self.icc_profile
        return options

    def tiff_with_sub_ifds(self, tiff: bytes, shape: tuple[int, ...]) -> bytes:
        """``tiff`` (written with :meth:`tiff_options`, little-endian) with the Exif and GPS IFDs
        appended and IFD0's pointers to them set."""
        import tifffile

        exif = self.exif(shape)
        subs = {tag: exif.get_ifd(tag) for tag in (EXIF_IFD, GPS_IFD) if exif.get_ifd(tag)}
        if not subs:
            return tiff
        with tifffile.TiffFile(io.BytesIO(tiff)) as tif:
            if tif.byteorder != "<" or tif.is_bigtiff:
                return tiff  # not what tiff_options asked tifffile for: leave it without sub-IFDs
            tags = tif.pages.first.tags
            entries = {tag: (tags[_PLACEHOLDERS[tag]].offset, tags[_PLACEHOLDERS[tag]].valueoffset)
                       for tag in subs if _PLACEHOLDERS[tag] in tags}
        out = bytearray(tiff)
        for tag, (entry, where) in entries.items():
            out += b"\x00" * (len(out) % 2)  # IFDs start on a word boundary
            directory = TiffImagePlugin.ImageFileDirectory_v2(ifh=b"II*\x00\x08\x00\x00\x00")
            for key, value in subs[tag].items():
                directory[key] = value
            offset = len(out)
            out += directory.tobytes(offset)
            struct.pack_into("<I", out, where, offset)
            struct.pack_into("<H", out, entry, tag)
        return bytes(out)


def collect_metadata(
    frames: Sequence[FrameInfo], reference: int | None = None, *, strip: bool = False, notes: list[str] | None = None
) -> OutputMetadata:
    """The metadata a result of the stack ``frames`` carries, taken from frame ``reference``
    (default: the middle one, the alignment's default reference).

    Raises :class:`InputError` naming the file for damaged EXIF in the reference frame, a
    damaged colour profile in any frame, or frames whose colour profiles differ.
    """
    index = reference if reference is not None and 0 <= reference < len(frames) else len(frames) // 2
    chosen = frames[index]
    icc = check_profiles(frames, index, notes)
    ifd0: dict[int, Any] = {}
    exif_ifd: dict[int, Any] = {}
    gps_ifd: dict[int, Any] = {}
    if chosen.path is not None:
        ifd0, exif_ifd, gps_ifd = read_exif(chosen.path, chosen.page)
    if strip:
        gps_ifd = {}
        exif_ifd = {tag: value for tag, value in exif_ifd.items() if tag not in _PRIVATE_EXIF}
    colour = None
    development = stack_development(frames)
    if development is not None:
        colour = raw_colour(development[1], development[0])
    return OutputMetadata(chosen.name, ifd0, exif_ifd, gps_ifd, icc, raw_colour=colour)


def read_exif(path: Path, page: int = 0) -> tuple[dict[int, Any], dict[int, Any], dict[int, Any]]:
    """(IFD0's kept tags, Exif IFD, GPS IFD) of ``path``; empty when it has no EXIF.

    TIFF-based RAW files (DNG, NEF, CR2, ARW, ...) are parsed as TIFF structures (Pillow cannot
    open most of them as images); other RAW formats (CR3, RAF, ...) give empty dictionaries."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exif = _raw_exif(path) if is_raw_name(path) else _image_exif(path, page)
            ifd0 = {tag: exif[tag] for tag in IFD0_KEPT if tag in exif}
            exif_ifd = {t: v for t, v in exif.get_ifd(EXIF_IFD).items() if t not in _POINTER_TAGS}
            gps_ifd = dict(exif.get_ifd(GPS_IFD))
    except Exception as exc:
        raise InputError(f"has damaged metadata that cannot be read ({_reason(exc)})", path) from exc
    # "Corrupt EXIF data": a directory could not be read. Pillow's "Possibly corrupt" warnings
    # (one tag skipped) are common in camera files and cost only that tag.
    damaged = [str(w.message) for w in caught if str(w.message).startswith("Corrupt EXIF")]
    if damaged:
        raise InputError(f"has damaged EXIF metadata ({damaged[0].strip()})", path)
    return ifd0, exif_ifd, gps_ifd


def _image_exif(path: Path, page: int) -> Image.Exif:
    try:
        image = Image.open(path)
    except (Image.UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        # Pillow opens no float or planar TIFF; tifffile reads them: their IFD0 strings are kept
        # (the Exif and GPS IFDs of such rare files are not).
        return _tifffile_ifd0(path, page)
    with image:
        if page:
            image.seek(page)
        exif = image.getexif()
        exif.get_ifd(EXIF_IFD), exif.get_ifd(GPS_IFD)  # read while the file is open
        return exif


def _tifffile_ifd0(path: Path, page: int) -> Image.Exif:
    import tifffile

    exif = Image.Exif()
    try:
        with tifffile.TiffFile(path) as tif:
            tags = tif.pages[page].tags
            for code in IFD0_KEPT:
                if code in tags and isinstance(tags[code].value, str):
                    exif[code] = tags[code].value
    except Exception:
        pass  # not a TIFF either: the decoder names what is wrong with the file
    return exif


def _raw_exif(path: Path) -> Image.Exif:
    exif = Image.Exif()
    data = path.read_bytes()
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        exif.load(data)
    return exif


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _ascii(text: str) -> str:
    """EXIF/TIFF ASCII fields hold 7-bit text; the XMP packet keeps the exact names."""
    return text.encode("ascii", "replace").decode("ascii")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
