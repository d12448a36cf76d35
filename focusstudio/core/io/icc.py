"""Colour profiles (ICC) of a stack's frames: read, validated, compared.

A result is written in the colour space of its frames, so the reference frame's profile goes to
the output. That is only right when every frame is in that space: a frame carrying a different
profile is refused with one line naming it (fusing Adobe RGB pixels with sRGB pixels would mix
two meanings of the same numbers). A frame without a profile is taken to be in the reference
frame's space (with a note); a reference without one is sRGB, as every viewer takes it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageCms

from focusstudio.core.errors import InputError
from focusstudio.core.io.formats import is_raw_name
from focusstudio.core.types import FrameInfo

ICC_TAG = 34675
#: Header bytes that differ between copies of the same profile: creation date, profile ID (MD5).
_VOLATILE = ((24, 36), (84, 100))


def read_profile(path: Path, page: int = 0) -> bytes | None:
    """The embedded ICC profile of ``path`` (page ``page``), or None. Headers only."""
    if is_raw_name(path):
        return None  # libraw develops to sRGB; a RAW file's embedded profile describes its preview
    try:
        with Image.open(path) as image:
            if page:
                image.seek(page)
            data = image.info.get("icc_profile")
    except Exception:
        data = _tiff_profile(path, page)  # Pillow does not open every TIFF tifffile reads
    return bytes(data) if data else None


def _tiff_profile(path: Path, page: int) -> bytes | None:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            tag = tif.pages[page].tags.get(ICC_TAG)
            return bytes(tag.value) if tag is not None else None
    except Exception:
        return None  # not a TIFF: the decoder reports what is wrong with the file


def describe(profile: bytes, path: Path) -> str:
    """The profile's description ('sRGB IEC61966-2.1'); InputError naming ``path`` when the
    profile cannot be parsed (littlecms refuses it)."""
    try:
        parsed = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        return (ImageCms.getProfileDescription(parsed) or "unnamed profile").strip()
    except Exception as exc:  # PyCMSError, OSError, TypeError for damaged profiles
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"has a damaged ICC colour profile ({reason})", path) from exc


def same_profile(reference: bytes | None, frame: bytes | None, frame_name: str) -> bool:
    """Whether a frame is in the reference frame's colour space. A frame without a profile is
    taken to be (the profile was lost on the way, e.g. by an editor); a reference without one is
    sRGB, so a frame must then be untagged or tagged sRGB."""
    if frame is None:
        return True
    if reference is None:
        return "srgb" in frame_name.lower()
    return _stable(reference) == _stable(frame)


def _stable(profile: bytes) -> bytes:
    data = bytearray(profile)
    for start, end in _VOLATILE:
        data[start:end] = bytes(end - start)
    return bytes(data)


def check_profiles(frames: Sequence[FrameInfo], reference: int, notes: list[str] | None = None) -> bytes | None:
    """The reference frame's profile after checking every frame's: InputError naming the first
    frame whose profile is damaged or differs from the reference's."""
    profiles: list[tuple[FrameInfo, bytes | None, str | None]] = []
    for frame in frames:
        if frame.path is None:
            profiles.append((frame, None, None))
            continue
        data = read_profile(frame.path, frame.page)
        profiles.append((frame, data, describe(data, frame.path) if data else None))
    _, ref_data, ref_name = profiles[reference]
    ref_label = frames[reference].name
    for frame, data, name in profiles:
        if not same_profile(ref_data, data, name or ""):
            theirs = f"'{name}'" if name else "none (sRGB)"
            ours = f"'{ref_name}'" if ref_name else "none (sRGB)"
            raise InputError(
                f"its colour profile {theirs} differs from the reference frame's ({ref_label}: {ours}); "
                "convert the frames to one colour profile first",
                frame.path,
            )
    missing = [frame.name for frame, data, _ in profiles if data is None and frame.path is not None]
    if ref_data is not None and missing and notes is not None:
        notes.append(f"{len(missing)} frame(s) without a colour profile taken to be in the reference's ({ref_name})")
    return ref_data
