"""Write fused images and explanation maps: PNG, TIFF or JPEG, chosen by extension.

Every image write goes through the output policy (:mod:`focusstudio.core.io.output_policy`):
the destination is checked before encoding (never an input, folder writable, an existing file
only with ``overwrite=True``), the encoded file goes to a hidden temporary file in the
destination folder and is published no-clobber (or replaced atomically with ``overwrite``) once
complete, so an error (or Ctrl+C, SIGTERM) never leaves a half-written image or a stray
temporary file behind. Pass ``plan=`` to stage into a run's :class:`OutputPlan` instead, which
publishes all of the run's outputs together at its end.

Bit depths: PNG stores 8 or 16 bits (float32 becomes 16-bit), TIFF 8, 16 bits or float32, JPEG
8 bits only. When the format cannot hold the requested depth the image is written at the
nearest depth it can hold and a note saying so is appended to ``notes`` (when given);
:func:`output_dtype` tells the same in advance, e.g. for a save dialog.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Literal

import cv2
import numpy as np
import tifffile
from PIL import Image

from focusstudio.core.errors import OutputError
from focusstudio.core.io.dng import encode_dng
from focusstudio.core.io.metadata import OutputMetadata
from focusstudio.core.io.output_policy import OutputPlan, create_temporary
from focusstudio.core.signals import signals_held_back
from focusstudio.core.types import FusionMap, FusionResult, from_unit_float

OutputFormat = Literal["png", "tiff", "jpeg", "dng"]
Rounding = Literal["round", "truncate"]

OUTPUT_EXTENSIONS: Mapping[str, OutputFormat] = {
    ".png": "png",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".dng": "dng",
}
_DTYPES = ("uint8", "uint16", "float32")
_BITS_TEXT = {"uint8": "8-bit", "uint16": "16-bit", "float32": "32-bit float"}
#: zlib level for PNG and TIFF: libpng's default, a good size/speed balance for photographs.
_DEFLATE_LEVEL = 6
#: From this JPEG quality on, chroma is kept at full resolution (4:4:4): fused images are all
#: about fine detail, and at high quality the size cost of 4:4:4 is small.
_FULL_CHROMA_QUALITY = 90
#: Fraction-valued map kinds, drawn as 0 → black, 1 → white.
_UNIT_MAP_KINDS = frozenset({"decision", "weight", "mask", "attention"})

PathLike = str | Path


# --------------------------------------------------------------------------- public API
def output_format(path: PathLike) -> OutputFormat:
    """The format written for ``path``'s extension; OutputError for one we do not write."""
    target = Path(path)
    if target.is_dir():
        raise OutputError("is a folder; give a file name such as result.png", target)
    image_format = OUTPUT_EXTENSIONS.get(target.suffix.lower())
    if image_format is None:
        shown = target.suffix or "no extension"
        raise OutputError(f"cannot write '{shown}' files: use .png, .tif, .jpg or .dng", target)
    return image_format


def output_dtype(path: PathLike, dtype: str) -> tuple[str, str | None]:
    """The dtype actually written for ``dtype`` at ``path``, and a note when they differ."""
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
    image_format = output_format(path)
    name = Path(path).name
    if image_format == "jpeg" and dtype != "uint8":
        return "uint8", (
            f"{name}: JPEG stores 8 bits per channel, so the {_BITS_TEXT[dtype]} result was written "
            "as 8-bit (use .png or .tif to keep the full depth)"
        )
    if image_format == "dng" and dtype != "uint16":
        return "uint16", None  # a linear DNG is always 16-bit, whatever the frames were
    if image_format == "png" and dtype == "float32":
        return "uint16", (
            f"{name}: PNG cannot store floating point, so the result was written as 16-bit "
            "(use .tif to keep float32)"
        )
    return dtype, None


def write_image(
    path: PathLike,
    image: np.ndarray,
    dtype: str = "uint8",
    *,
    overwrite: bool = False,
    protected: Iterable[PathLike | None] = (),
    rounding: Rounding = "round",
    jpeg_quality: int = 95,
    notes: list[str] | None = None,
    plan: OutputPlan | None = None,
    metadata: OutputMetadata | None = None,
) -> Path:
    """Write a float [0, 1] H×W or H×W×3 RGB ``image`` as ``dtype`` to ``path`` (atomically).

    ``protected`` are paths that must never be replaced (the input images; ``None`` entries are
    ignored, so ``(f.path for f in stack.frames)`` can be passed as is). ``rounding`` is how
    floats become integers ('round' or the reference code's 'truncate'). A note is appended to
    ``notes`` when the format cannot hold ``dtype`` (JPEG: 8-bit only). ``metadata`` (EXIF, colour
    profile; :func:`~focusstudio.core.io.metadata.collect_metadata`) is embedded when given.
    Returns the path written.
    """
    target = Path(path)
    effective, note = output_dtype(target, dtype)
    image = _checked_image(image)
    _write_through_policy(target, lambda: from_unit_float(image, effective, rounding), jpeg_quality,
                          overwrite, protected, plan, "the image", metadata)
    if note is not None and notes is not None:
        notes.append(note)
    return target


def write_result(
    path: PathLike,
    result: FusionResult,
    *,
    dtype: str | None = None,
    overwrite: bool = False,
    protected: Iterable[PathLike | None] = (),
    jpeg_quality: int = 95,
    notes: list[str] | None = None,
    plan: OutputPlan | None = None,
    metadata: OutputMetadata | None = None,
) -> Path:
    """Write a fused image in its source dtype (or ``dtype``) with the method's rounding, with
    ``metadata`` (described with the result's frames and method) when given."""
    target = Path(path)
    effective, note = output_dtype(target, dtype or result.source_dtype)
    _checked_image(result.image)
    if metadata is not None and not metadata.description and result.source_names:
        metadata = metadata.described(result.source_names, result.method)
    _write_through_policy(target, lambda: result.as_dtype(effective), jpeg_quality, overwrite, protected,
                          plan, "the fused image", metadata)
    if note is not None and notes is not None:
        notes.append(note)
    return target


def render_map(fusion_map: FusionMap, levels: int | None = None, index_colours: bool = True) -> np.ndarray:
    """A map as an 8-bit picture: H×W grey, or H×W×3 RGB for colour-coded index maps.

    Decision/weight/mask/attention maps are fractions: 0 → black, 1 → white. Index maps (which
    frame is sharpest) are scaled so frame 0 → 0 and frame ``levels - 1`` → 255 and, with
    ``index_colours``, coloured with the Turbo colour map (neighbouring frames stay
    distinguishable, the order still reads as depth). Other maps (activity, ...) are stretched
    from their minimum to their maximum.
    """
    data = np.asarray(fusion_map.data)
    if data.ndim != 2:
        raise ValueError(f"map {fusion_map.name!r} must be H×W, got shape {data.shape}")
    if fusion_map.kind == "index":
        count = levels if levels is not None else int(np.max(data, initial=0)) + 1
        top = max(count - 1, 1)
        scaled = np.floor(np.clip(data.astype(np.float64), 0, top) * (255.0 / top) + 0.5).astype(np.uint8)
        if not index_colours:
            return scaled
        return np.ascontiguousarray(cv2.applyColorMap(scaled, cv2.COLORMAP_TURBO)[..., ::-1])
    values = data.astype(np.float64)
    finite = np.isfinite(values)
    if fusion_map.kind in _UNIT_MAP_KINDS:
        values = np.clip(np.where(finite, values, 0.0), 0.0, 1.0)
    else:
        low = float(values[finite].min()) if finite.any() else 0.0
        high = float(values[finite].max()) if finite.any() else 0.0
        span = high - low if high > low else 1.0
        values = np.where(finite, (values - low) / span, 0.0)
    return np.floor(values * 255.0 + 0.5).astype(np.uint8)


def write_map(
    path: PathLike,
    fusion_map: FusionMap,
    *,
    levels: int | None = None,
    index_colours: bool = True,
    overwrite: bool = False,
    protected: Iterable[PathLike | None] = (),
    plan: OutputPlan | None = None,
) -> Path:
    """Write :func:`render_map`'s 8-bit picture of ``fusion_map`` (PNG recommended)."""
    target = Path(path)
    output_format(target)
    _write_through_policy(target, lambda: render_map(fusion_map, levels, index_colours), 95, overwrite,
                          protected, plan, f"the {fusion_map.name} map")
    return target


def render_index_grey(fusion_map: FusionMap, levels: int | None = None) -> np.ndarray:
    """An index map's raw frame positions as grey: pixel value k = frame k of the fusion (0-based, as
    the map holds them; the sidecar lists the frames in that order). 8-bit up to 256 frames, else
    16-bit: the colour-coded picture is for the eye, this one for depth-map tools and scripts."""
    data = np.asarray(fusion_map.data)
    if fusion_map.kind != "index" or data.ndim != 2:
        raise ValueError(f"map {fusion_map.name!r} is not an H×W index map")
    count = levels if levels is not None else int(np.max(data, initial=0)) + 1
    dtype = np.uint8 if count <= 256 else np.uint16
    return np.clip(np.rint(data), 0, np.iinfo(dtype).max).astype(dtype)


def grey_index_file_names(maps: Mapping[str, FusionMap]) -> dict[str, str]:
    """``{index map key: file name}`` of the raw grey copies :func:`write_maps` writes beside the
    colour-coded index maps (``index`` → ``index_grey.png``), unique among the maps' own names."""
    used = {Path(name).stem.lower() for name in map_file_names(maps).values()}
    return {key: f"{_file_stem(key + '_grey', used)}.png" for key in sorted(maps) if maps[key].kind == "index"}


def map_file_names(keys: Iterable[str]) -> dict[str, str]:
    """``{map key: file name}`` as :func:`write_maps` names them (safe, unique, sorted keys)."""
    used: set[str] = set()
    return {key: f"{_file_stem(key, used)}.png" for key in sorted(keys)}


def expected_map_files(map_names: Iterable[str], frames: int) -> list[str]:
    """The file names :func:`write_maps` will use for a method's declared ``map_names``
    (templates such as ``activity_{j}`` expanded for each of ``frames`` frames), so a run can
    check them before it starts."""
    keys: list[str] = []
    for name in map_names:
        keys.extend(name.format(j=j) for j in range(frames)) if "{j}" in name else keys.append(name)
    return list(map_file_names(keys).values())


def write_maps(
    directory: PathLike,
    result: FusionResult,
    *,
    index_colours: bool = True,
    overwrite: bool = False,
    protected: Iterable[PathLike | None] = (),
    plan: OutputPlan | None = None,
) -> list[Path]:
    """Write every map of ``result`` as ``<directory>/<map key>.png`` (for ``--maps DIR``).

    The folder is created when missing. Index maps are scaled by the number of source frames and
    colour-coded, and written once more as their raw frame positions in grey (``<key>_grey.png``,
    :func:`render_index_grey`).
    Returns the paths written, in map-key order. Every map is checked before the first is
    written, and they are published together (or with the rest of ``plan``'s outputs).
    """
    levels = len(result.source_names) or None
    names = map_file_names(result.maps)
    if plan is None:
        with OutputPlan(protected, force=overwrite) as own:
            written = write_maps(directory, result, index_colours=index_colours, plan=own)
            own.commit()
        return written
    plan.protect(protected)
    folder = plan.folder(directory, "the maps")
    targets = {key: folder / name for key, name in names.items()}
    for key, target in targets.items():  # check them all before encoding the first
        if not plan.declared(target):
            plan.file(target, f"the {key} map")
    grey_names = grey_index_file_names(result.maps)
    for key, name in grey_names.items():
        if not plan.declared(folder / name):
            plan.file(folder / name, f"the raw {key} map")
    for key, target in targets.items():
        write_map(target, result.maps[key], levels=levels, index_colours=index_colours, plan=plan)
    for key, name in grey_names.items():
        fusion_map = result.maps[key]
        _write_through_policy(folder / name, lambda m=fusion_map: render_index_grey(m, levels), 95, False, (),
                              plan, f"the raw {key} map")
    return [Path(directory) / name for name in [*names.values(), *grey_names.values()]]


# --------------------------------------------------------------------------- checks
def _checked_image(image: np.ndarray) -> np.ndarray:
    """Programming errors (wrong shape, NaN) are ValueErrors: a method produced a bad image."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3) or array.size == 0:
        raise ValueError(f"image must be H×W or H×W×3, got shape {array.shape}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError("image contains NaN or infinite values")
    return array


def check_output_path(
    path: PathLike, *, overwrite: bool = False, protected: Iterable[PathLike | None] = ()
) -> Path:
    """Check that ``path`` can be written before doing expensive work; OutputError otherwise.

    The extension must be one we write, the folder must exist, and an existing file is
    refused when it is one of ``protected`` (the inputs, always) or unless ``overwrite``.
    """
    target = Path(path)
    output_format(target)
    OutputPlan(protected, force=overwrite).file(target)
    return target


# --------------------------------------------------------------------------- encoding and writing
def _encode(
    array: np.ndarray, image_format: OutputFormat, jpeg_quality: int, metadata: OutputMetadata | None = None
) -> bytes:
    """uint8/uint16/float32 H×W or H×W×3 RGB → the bytes of a file (with ``metadata``)."""
    if image_format == "dng":
        return encode_dng(array, metadata)
    if image_format == "png":
        # OpenCV, because Pillow cannot write 16-bit RGB PNG; it expects BGR.
        pixels = np.ascontiguousarray(array[..., ::-1]) if array.ndim == 3 else array
        ok, encoded = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, _DEFLATE_LEVEL])
        if not ok:
            raise OutputError("OpenCV could not encode the PNG")
        if metadata is not None:
            return metadata.png_with_metadata(encoded.tobytes(), array.shape)
        return encoded.tobytes()
    if image_format == "tiff":
        buffer = io.BytesIO()
        tifffile.imwrite(
            buffer,
            array,
            photometric="rgb" if array.ndim == 3 else "minisblack",
            compression="zlib",
            compressionargs={"level": _DEFLATE_LEVEL},
            # Horizontal differencing shrinks photographs; tifffile does it in numpy for
            # integers (the float predictor would need the optional imagecodecs package).
            predictor=array.dtype.kind == "u",
            metadata=None,
            byteorder="<",
            **(metadata.tiff_options(array.shape) if metadata is not None else {}),
        )
        if metadata is not None:
            return metadata.tiff_with_sub_ifds(buffer.getvalue(), array.shape)
        return buffer.getvalue()
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be 1..100, got {jpeg_quality}")
    buffer = io.BytesIO()
    options: dict[str, Any] = {"quality": jpeg_quality}
    if jpeg_quality >= _FULL_CHROMA_QUALITY:
        options["subsampling"] = 0  # 4:4:4
    if metadata is not None:
        options.update(metadata.jpeg_options(array.shape))
    Image.fromarray(array.astype(np.uint8, copy=False)).save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def _write_through_policy(
    target: Path,
    pixels: Callable[[], np.ndarray],
    jpeg_quality: int,
    overwrite: bool,
    protected: Iterable[PathLike | None],
    plan: OutputPlan | None,
    role: str,
    metadata: OutputMetadata | None = None,
) -> None:
    """Check ``target`` first (cheap), then convert and encode, then stage or publish it."""
    if plan is None:
        with OutputPlan(protected, force=overwrite) as own:
            own.file(target, role)
            own.write_bytes(target, _encode(pixels(), output_format(target), jpeg_quality, metadata), role)
            own.commit()
        return
    plan.protect(protected)
    if not plan.declared(target):
        plan.file(target, role)
    plan.write_bytes(target, _encode(pixels(), output_format(target), jpeg_quality, metadata), role)


@contextlib.contextmanager
def atomic_output(path: PathLike, text: bool = False, encoding: str = "utf-8") -> Iterator[IO[Any]]:
    """A hidden temporary file next to ``path``, opened for writing; on a clean exit it is
    flushed, synced and renamed over ``path`` (keeping the permissions of a file it replaces),
    on any exception (Ctrl+C included) removed, leaving ``path`` as it was. For files a program
    owns and replaces (presets, checkpoints, manifests, installed weights, saved registrations);
    a run's results go through an :class:`OutputPlan` (checked first, no-clobber)."""
    target = Path(path)
    created: list[Path | None] = [None]

    def record(candidate: Path | None) -> None:
        created[0] = candidate

    try:
        # The temporary file is known (to the clean-up below) from before it exists: a Ctrl+C right
        # after it was created can no longer leave it behind.
        with signals_held_back():
            descriptor = create_temporary(target.parent, target.name, record)
        temporary = created[0]
        assert temporary is not None
        stream = os.fdopen(descriptor, "w", encoding=encoding) if text else os.fdopen(descriptor, "wb")
        with stream as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if target.exists():
            with contextlib.suppress(OSError):
                os.chmod(temporary, stat.S_IMODE(target.stat().st_mode))
        os.replace(temporary, target)
    except BaseException:
        if created[0] is not None:
            with contextlib.suppress(OSError):
                os.unlink(created[0])
        raise


def _write_atomically(target: Path, payload: bytes) -> None:
    try:
        with atomic_output(target) as handle:
            handle.write(payload)
    except OSError as exc:
        raise OutputError(f"cannot be written ({exc.strerror or exc})", target) from exc


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write a text file (CSV report, JSON sidecar) atomically, replacing any existing file.

    The caller decides whether replacing is allowed (see :func:`check_output_path`).
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise OutputError(f"cannot be written: the folder {target.parent} does not exist", target)
    _write_atomically(target, text.encode(encoding))
    return target


def _file_stem(key: str, used: set[str]) -> str:
    """A safe, unique file name stem for a map key (keys may contain spaces or slashes)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("._") or "map"
    candidate, number = stem, 2
    while candidate.lower() in used:
        candidate, number = f"{stem}_{number}", number + 1
    used.add(candidate.lower())
    return candidate
