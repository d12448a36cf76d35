"""Open a focus stack: two or more files, one folder, or one multi-page TIFF.

Only headers are read here; every frame is decoded when ``stack.load(i)`` asks for it
(:func:`focusstudio.core.io.readers.decode_frame`). Anything the user should know (files
skipped, grey frames treated as colour, mixed bit depths) goes to ``stack.notes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from natsort import natsorted, ns

from focusstudio.core.errors import InputError
from focusstudio.core.io.formats import (
    SUPPORTED_FORMATS_TEXT,
    is_hidden,
    is_image_name,
    is_raw_name,
)
from focusstudio.core.io.raw import raw_stack_loader
from focusstudio.core.io.readers import decode_frame, decode_levels, float_frame_scale, missing_path_error, probe_image
from focusstudio.core.io.sidecars import is_focusstudio_output, sidecar_path
from focusstudio.core.types import FrameInfo, FrameLoader, Stack

#: How many names a note lists before it says "and N more".
_NOTE_NAME_LIMIT = 8
_NATURAL = ns.INT | ns.IGNORECASE


def natural_sorted(paths: Sequence[Path]) -> list[Path]:
    """``img2`` before ``img10``, case-insensitive, by file name."""
    return natsorted(paths, key=lambda path: path.name, alg=_NATURAL)


def _name_list(names: Sequence[str]) -> str:
    ordered = natsorted(names, alg=_NATURAL)
    shown = ", ".join(ordered[:_NOTE_NAME_LIMIT])
    rest = len(ordered) - _NOTE_NAME_LIMIT
    return f"{shown} and {rest} more" if rest > 0 else shown


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def list_folder_images(folder: str | Path) -> tuple[list[Path], list[str]]:
    """The image files of ``folder`` in natural order, and notes about what was left out.

    Hidden files (``.DS_Store``, macOS ``._IMG_1.jpg``), sub-folders, files whose extension
    is not an image format and FocusStudio's own results (an image with our JSON sidecar next
    to it, :func:`~focusstudio.core.io.sidecars.is_focusstudio_output`) are skipped and named in
    the notes. When every RAW file has a developed twin with the same name (camera RAW+JPEG
    shooting), the twins are used.
    """
    folder = Path(folder)
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise InputError(f"cannot be listed ({exc.strerror or exc})", folder) from exc
    images: list[Path] = []
    hidden: list[str] = []
    skipped: list[str] = []
    for entry in entries:
        if is_hidden(entry):
            hidden.append(entry.name)
        elif entry.is_dir():
            skipped.append(entry.name + "/")
        elif is_image_name(entry):
            images.append(entry)
        else:
            skipped.append(entry.name)
    images, results = _without_our_results(images)
    if results:
        # Their sidecars are accounted for by this note, not listed again as "not images".
        sidecars = {sidecar_path(path).name for path in results}
        skipped = [name for name in skipped if name not in sidecars]
    notes: list[str] = []
    if results:
        notes.append(
            f"Skipped {_plural(len(results), 'FocusStudio result')} (a .json sidecar beside it says so): "
            f"{_name_list([path.name for path in results])}"
        )
    if skipped:
        what = "that is not an image" if len(skipped) == 1 else "that are not images"
        notes.append(f"Skipped {_entries(len(skipped))} {what}: {_name_list(skipped)}")
    if hidden:
        notes.append(f"Skipped {_entries(len(hidden))} that are hidden: {_name_list(hidden)}")
    images, raw_note = _prefer_developed_twins(images)
    if raw_note:
        notes.append(raw_note)
    return natural_sorted(images), notes


def _without_our_results(images: list[Path]) -> tuple[list[Path], list[Path]]:
    """(frames, FocusStudio results) of ``images``."""
    frames: list[Path] = []
    results: list[Path] = []
    for path in images:
        (results if is_focusstudio_output(path) else frames).append(path)
    return frames, results


def _entries(count: int) -> str:
    return "1 entry" if count == 1 else f"{count} entries"


def _prefer_developed_twins(images: list[Path]) -> tuple[list[Path], str | None]:
    raws = [path for path in images if is_raw_name(path)]
    developed = [path for path in images if not is_raw_name(path)]
    if not raws or not developed:
        return images, None
    developed_stems = {path.stem.lower() for path in developed}
    if not all(path.stem.lower() in developed_stems for path in raws):
        return images, None
    return developed, (
        f"Found RAW+JPEG pairs: using the {len(developed)} developed files and ignoring "
        f"{_plural(len(raws), 'RAW file')}; pass the RAW files themselves to use them instead"
    )


def load_stack(
    inputs: Sequence[str | Path] | str | Path,
    *,
    allow_size_mismatch: bool = False,
) -> Stack:
    """Open a stack from two or more image files, one folder, or one multi-page TIFF.

    Files keep the order given; a folder's images are naturally sorted. Each TIFF contributes
    one frame per full-resolution page. Only headers are read now; frames decode on
    ``stack.load(i)``. ``allow_size_mismatch`` lets frames of different sizes through (for
    alignment, which brings them to one size); otherwise a size difference is an error.

    Raises :class:`InputError` (one line naming the file) for a missing, empty, unreadable or
    unsupported input, fewer than two frames, or frames of different sizes.
    """
    paths = [Path(inputs)] if isinstance(inputs, (str, Path)) else [Path(item) for item in inputs]
    if not paths:
        raise InputError("no input given: give two or more image files, a folder, or a multi-page TIFF")
    notes: list[str] = []
    folder: Path | None = None
    if len(paths) == 1:
        only = paths[0]
        if not only.exists():
            raise missing_path_error(only)
        if only.is_dir():
            folder = only
            files, folder_notes = list_folder_images(only)
            notes.extend(folder_notes)
        else:
            files = [only]
    else:
        for path in paths:
            if path.is_dir():
                raise InputError("is a folder: give either one folder or several image files", path)
        files = paths
        if natural_sorted(files) != files:
            notes.append("Frames are used in the order given, which is not the natural order of their names")

    frames: list[FrameInfo] = []
    for path in files:
        frames.extend(probe_image(path))
    _check_frame_count(frames, paths, folder)
    notes.extend(_check_sizes(frames, allow_size_mismatch))
    notes.extend(_describe_mixtures(frames))
    loader, float_notes = _float_loader(frames)
    notes.extend(float_notes)
    stack_loader = raw_stack_loader(frames, loader)
    # integer levels straight from the decoder: only where the loader is the plain decoder (no
    # float scaling, no RAW development), so they normalise to exactly what it returns
    levels = decode_levels if stack_loader is decode_frame else None
    return Stack(frames, stack_loader, notes, levels_loader=levels)


def _float_loader(frames: Sequence[FrameInfo]) -> tuple[FrameLoader, list[str]]:
    """The loader, dividing float frames holding 8/16-bit levels by their scale, and the notes.

    Float frames (rare: scientific and converted TIFFs) are decoded once here so the scale is
    known, and told, before the run. Frames of levels share the largest scale found, so an
    8-bit-looking dark frame of a 16-bit stack is not brightened 257-fold.
    """
    scales = {f: float_frame_scale(f) for f in frames if f.dtype == "float32" and f.path is not None}
    level_scales = {scale for scale, _ in scales.values() if scale != 1.0}
    if not level_scales:
        return decode_frame, []
    common = max(level_scales)
    per_frame = {f: (common if scale != 1.0 else 1.0) for f, (scale, _) in scales.items()}
    levels = [f.name for f, (scale, _) in scales.items() if scale != 1.0]
    bits = "16-bit" if common > 255 else "8-bit"
    notes = [
        f"{_plural(len(levels), 'float frame')} ({_name_list(levels)}) hold whole numbers up to "
        f"{common:.0f} instead of 0–1: read as {bits} levels (divided by {common:.0f})"
    ]

    def loader(info: FrameInfo) -> np.ndarray:
        return decode_frame(info, per_frame.get(info, 1.0))

    return loader, notes


def _check_frame_count(frames: Sequence[FrameInfo], paths: Sequence[Path], folder: Path | None) -> None:
    if len(frames) >= 2:
        return
    if folder is not None:
        found = "no images" if not frames else "only 1 image"
        raise InputError(
            f"contains {found} ({SUPPORTED_FORMATS_TEXT}); a stack needs at least 2 frames", folder
        )
    raise InputError(
        "is a single image; a stack needs at least 2 frames: give two or more files, "
        "a folder, or a multi-page TIFF",
        paths[0],
    )


def _check_sizes(frames: Sequence[FrameInfo], allow_size_mismatch: bool) -> list[str]:
    reference = frames[0]
    different = [frame for frame in frames[1:] if frame.shape != reference.shape]
    if not different:
        return []
    if allow_size_mismatch:
        sizes = sorted({f"{frame.width}x{frame.height}" for frame in frames})
        return [f"Frames differ in size ({', '.join(sizes)}); they must be aligned before fusing"]
    odd = different[0]
    from_multi_page_tiff = odd.path is not None and odd.name != odd.path.name
    subject = f"page {odd.page} is" if from_multi_page_tiff else "is"
    rotated = " (turned by 90 degrees? check the orientation)" if odd.shape == reference.shape[::-1] else ""
    # Two files called 1.jpg in different folders: name the reference by its full path.
    reference_label = reference.name if reference.name != odd.name else str(reference.path)
    raise InputError(
        f"{subject} {odd.width}x{odd.height} pixels but {reference_label} is "
        f"{reference.width}x{reference.height}{rotated}; frames must have the same size "
        "(alignment, --align, can fix this)",
        odd.path,
    )


def _describe_mixtures(frames: Sequence[FrameInfo]) -> list[str]:
    notes: list[str] = []
    grey = [frame.name for frame in frames if frame.channels == 1]
    if grey and len(grey) < len(frames):
        notes.append(
            f"Mixed grey and colour frames: {_plural(len(grey), 'grey frame')} ({_name_list(grey)}) "
            "treated as colour"
        )
    dtypes = {frame.dtype for frame in frames}
    if len(dtypes) > 1:
        bits = {"uint8": "8-bit", "uint16": "16-bit", "float32": "32-bit float"}
        order = ["uint8", "uint16", "float32"]
        described = " and ".join(bits.get(d, d) for d in sorted(dtypes, key=lambda d: order.index(d)))
        widest = max(dtypes, key=lambda d: order.index(d))
        notes.append(f"Mixed bit depths ({described}): the result is written as {bits[widest]}")
    return notes
