"""Data passed between core stages: stacks of frames and fusion results.

Image convention inside the core: float32, row-major H×W (grey) or H×W×3 (RGB), values in
[0, 1]. The source dtype is remembered so a 16-bit stack gives a 16-bit result. Decision maps
are float32 in [0, 1] (weight of the first/reference frame) or an integer index map for N frames.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

#: rgb→grey weights used by SESF-Fuse and GACN at test time (skimage ``rgb2gray``).
RGB2GRAY_WEIGHTS = (0.2125, 0.7154, 0.0721)


def to_grey(image: np.ndarray) -> np.ndarray:
    """H×W×3 → H×W with the skimage weights; H×W is returned unchanged (as float32)."""
    if image.ndim == 2:
        return image.astype(np.float32, copy=False)
    r, g, b = RGB2GRAY_WEIGHTS
    return (r * image[..., 0] + g * image[..., 1] + b * image[..., 2]).astype(np.float32)


@dataclass(frozen=True)
class FrameInfo:
    """Where one frame comes from and what it looks like, without its pixels."""

    name: str
    height: int
    width: int
    channels: int  # 1 or 3 after normalisation (alpha dropped, grey kept as 1)
    dtype: str  # the source's dtype: 'uint8', 'uint16' or 'float32'
    path: Path | None = None
    page: int = 0  # page index inside a multi-page TIFF

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)


FrameLoader = Callable[[FrameInfo], np.ndarray]


class Stack:
    """An ordered list of frames, decoded on demand.

    Frames are decoded by ``loader`` each time :meth:`load` is called, so a long stack never has
    to sit in memory as float32 all at once. In-memory stacks (:meth:`from_arrays`) keep their
    arrays. ``notes`` collects what the user should be told (skipped files, conversions).
    """

    def __init__(
        self,
        frames: Sequence[FrameInfo],
        loader: FrameLoader,
        notes: Sequence[str] = (),
        transforms: Sequence[Callable[[np.ndarray], np.ndarray] | None] | None = None,
        valid_mask: np.ndarray | None = None,
        coverages: Sequence[Callable[[], np.ndarray | None] | None] | None = None,
        levels_loader: Callable[[FrameInfo], np.ndarray | None] | None = None,
    ) -> None:
        self.frames: tuple[FrameInfo, ...] = tuple(frames)
        self._loader = loader
        #: Decodes a frame to its integer levels (see :meth:`load_levels`); None = not available.
        self._levels_loader = levels_loader
        self.notes: list[str] = list(notes)
        self.transforms = tuple(transforms) if transforms is not None else (None,) * len(self.frames)
        #: H×W bool: where every (aligned) frame has real pixels; None = everywhere.
        self.valid_mask = valid_mask
        #: Per frame, what computes its coverage mask (see :meth:`coverage`); by default the
        #: transform's own ``coverage`` method (alignment warps have one).
        if coverages is None:
            coverages = [getattr(transform, "coverage", None) for transform in self.transforms]
        self.coverages: tuple[Callable[[], np.ndarray | None] | None, ...] = tuple(coverages)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_arrays(
        cls,
        arrays: Sequence[np.ndarray],
        names: Sequence[str] | None = None,
        dtype: str | None = None,
    ) -> Stack:
        """A stack from arrays: uint8/uint16 are scaled to [0, 1]; floats must already be."""
        frames: list[FrameInfo] = []
        data: dict[str, np.ndarray] = {}
        for i, array in enumerate(arrays):
            name = names[i] if names is not None else f"frame_{i:03d}"
            src_dtype = dtype or (str(array.dtype) if array.dtype in (np.uint8, np.uint16) else "float32")
            image = normalise_array(array)
            frames.append(
                FrameInfo(name, image.shape[0], image.shape[1], 1 if image.ndim == 2 else 3, src_dtype)
            )
            data[f"{i}:{name}"] = image
        keys = list(data)

        def loader(info: FrameInfo) -> np.ndarray:
            return data[keys[frames.index(info)]]

        return cls(frames, loader)

    # ----------------------------------------------------------------- properties
    def __len__(self) -> int:
        return len(self.frames)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.frames]

    @property
    def shape(self) -> tuple[int, int]:
        return self.frames[0].shape

    @property
    def is_color(self) -> bool:
        return any(f.channels == 3 for f in self.frames)

    @property
    def dtype(self) -> str:
        """The widest source dtype: a result is written back in this dtype."""
        order = {"uint8": 0, "uint16": 1, "float32": 2}
        return max((f.dtype for f in self.frames), key=lambda d: order.get(d, 2))

    # ----------------------------------------------------------------- access
    def load(self, index: int, grey: bool = False) -> np.ndarray:
        """Frame ``index`` as float32 in [0, 1]; RGB when the stack is colour (grey replicated)."""
        if grey:
            levels = self._frame_levels(index)
            if levels is not None:  # the same values without the float32 colour frame
                return grey_from_levels(levels)
        image = self._loader(self.frames[index])
        transform = self.transforms[index]
        if transform is not None:
            image = transform(image)
        if grey:
            return to_grey(image)
        if self.is_color and image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        return image

    def load_levels(self, index: int) -> np.ndarray | None:
        """Frame ``index`` as its decoded integer levels (uint8/uint16, H×W or H×W×3, RGB when the
        stack is colour), or None where only :meth:`load` can give it (in-memory, float or RAW
        frames, a transform). ``normalise_array(load_levels(i))`` equals ``load(i)`` exactly: large
        frames are then converted band by band (:mod:`focusstudio.core.ops.levels`) instead of
        being held as float32, 4× the size of 8-bit levels (issue 20)."""
        levels = self._frame_levels(index)
        if levels is not None and self.is_color and levels.ndim == 2:
            levels = np.repeat(levels[..., None], 3, axis=2)
        return levels

    def _frame_levels(self, index: int) -> np.ndarray | None:
        if self._levels_loader is None or self.transforms[index] is not None:
            return None
        return self._levels_loader(self.frames[index])

    def coverage(self, index: int) -> np.ndarray | None:
        """H×W bool: where frame ``index`` has real pixels once transformed (alignment without a
        crop leaves borders of replicated pixels); None = everywhere or unknown."""
        if self.valid_mask is None:
            return None
        coverage = self.coverages[index]
        return coverage() if coverage is not None else None

    def subset(self, indices: Sequence[int]) -> Stack:
        """A stack with the frames at ``indices`` in that order (reorder / exclude)."""
        return Stack(
            [self.frames[i] for i in indices],
            self._loader,
            self.notes,
            [self.transforms[i] for i in indices],
            self.valid_mask,
            [self.coverages[i] for i in indices],
            self._levels_loader,
        )

    def with_transforms(
        self,
        transforms: Sequence[Callable[[np.ndarray], np.ndarray] | None],
        valid_mask: np.ndarray | None = None,
        shape: tuple[int, int] | None = None,
    ) -> Stack:
        """The same frames with a per-frame geometric/photometric transform applied on load."""
        frames = self.frames
        if shape is not None:
            frames = tuple(replace(f, height=shape[0], width=shape[1]) for f in frames)
        return Stack(frames, self._raw_loader_for(frames), self.notes, transforms, valid_mask)

    def _raw_loader_for(self, frames: Sequence[FrameInfo]) -> FrameLoader:
        originals = dict(zip(frames, self.frames))
        return lambda info: self._loader(originals.get(info, info))


def image_planes(array: np.ndarray) -> np.ndarray:
    """An H×W, H×W×1, H×W×3 or H×W×4 array as H×W or H×W×3 (a view: one channel squeezed, alpha
    dropped); ValueError for any other shape. The one shape rule of decoding and of the metrics."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[..., :3]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"unsupported image shape {array.shape}")
    return array


#: Rows per band when integer levels are converted band by band: ~1.5 MB of float32 colour at
#: 6000 pixels a row, so the band's temporaries stay in cache and are never page-faulted afresh.
LEVEL_BAND_ROWS = 64


def grey_from_levels(levels: np.ndarray, band_rows: int = LEVEL_BAND_ROWS) -> np.ndarray:
    """``to_grey(normalise_array(levels))`` of uint8/uint16 levels (H×W or H×W×3), exactly (the
    same float32 operations per pixel), converted band by band: the float32 colour frame is
    never held."""
    out = np.empty(levels.shape[:2], dtype=np.float32)
    for start in range(0, levels.shape[0], band_rows):
        band = slice(start, start + band_rows)
        out[band] = to_grey(normalise_array(levels[band]))
    return out


def normalise_array(array: np.ndarray) -> np.ndarray:
    """uint8/uint16/float array (H×W, H×W×1, H×W×3, H×W×4) → float32 [0,1] H×W or H×W×3."""
    array = image_planes(array)
    if array.dtype in (np.uint8, np.uint16):
        # In place (the same float32 values): one full-size float copy less while decoding.
        image = array.astype(np.float32)
        image /= 255.0 if array.dtype == np.uint8 else 65535.0
        return image
    return np.clip(array.astype(np.float32), 0.0, 1.0)


def from_unit_float(image: np.ndarray, dtype: str, rounding: Literal["round", "truncate"] = "round") -> np.ndarray:
    """float [0,1] → ``dtype`` (uint8/uint16 scaled, float32 unchanged), clipped first."""
    if dtype == "float32":
        return np.clip(image, 0.0, 1.0).astype(np.float32)
    scale = 255.0 if dtype == "uint8" else 65535.0
    output = np.empty(image.shape, dtype=np.uint8 if dtype == "uint8" else np.uint16)
    # Blocks of rows: the float64 intermediates of a 24 MP colour image would take ~1.5 GB at once
    # (the same values either way). ~2 MB blocks: larger ones are mapped afresh by malloc for
    # every temporary and page-faulted in again (0.4 s of system time on a 24 MP write), and the
    # threads below each hold one block's temporaries.
    rows_per_block = max(1, 2**18 // max(int(np.prod(image.shape[1:])), 1))

    def convert(start: int) -> None:
        block = slice(start, start + rows_per_block)
        scaled = np.clip(image[block].astype(np.float64) * scale, 0.0, scale)
        scaled = np.floor(scaled) if rounding == "truncate" else np.floor(scaled + 0.5)
        output[block] = scaled

    starts = range(0, max(image.shape[0], 1), rows_per_block)
    threads = min(len(starts), CONVERSION_THREADS, os.cpu_count() or 1)
    if threads <= 1:
        for start in starts:
            convert(start)
    else:
        # Blocks are independent (NumPy releases the GIL in their loops): the conversion of a
        # 24 MP result took ~0.3 s on one core at the very end of a run, with nothing to overlap.
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(convert, starts))
    return output


#: Threads of :func:`from_unit_float` (at most; one per block of ~1 M samples).
CONVERSION_THREADS = 4


MapKind = Literal["decision", "index", "activity", "attention", "weight", "mask", "other"]


@dataclass(frozen=True)
class FusionMap:
    """One explanation map a method exposes (decision map, activity, attention, ...)."""

    name: str
    kind: MapKind
    data: np.ndarray  # float32 H×W (or int32 for index maps)
    description: str = ""
    frame: int | None = None  # the frame this map belongs to, for per-frame maps

    @property
    def value_range(self) -> tuple[float, float]:
        if self.kind == "index":
            return (0.0, float(max(int(self.data.max()), 1)))
        if self.kind in ("decision", "weight", "mask", "attention"):
            return (0.0, 1.0)
        return (float(np.nanmin(self.data)), float(np.nanmax(self.data)))


@dataclass(frozen=True)
class FusionResult:
    """A fused image plus the maps that explain it, timings and provenance."""

    image: np.ndarray  # float32 [0,1], H×W or H×W×3
    method: str
    params: dict[str, Any]
    maps: dict[str, FusionMap] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"
    weights: str | None = None
    source_dtype: str = "uint8"
    source_names: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    #: Output rounding the method's reference code uses when converting to integers.
    rounding: Literal["round", "truncate"] = "round"
    #: The method's cached expensive stage (an ``Analysis``): pass it back to ``run_fusion`` to
    #: re-run only the post-processing. Not part of the provenance.
    analysis: Any = field(default=None, repr=False, compare=False)

    def as_dtype(self, dtype: str | None = None) -> np.ndarray:
        """The fused image in the source dtype (or ``dtype``), with the method's rounding."""
        return from_unit_float(self.image, dtype or self.source_dtype, self.rounding)

    def provenance(self) -> dict[str, Any]:
        from focusstudio import __version__

        return {
            "focusstudio": __version__,
            "method": self.method,
            "params": dict(self.params),
            "weights": self.weights,
            "device": self.device,
            "sources": list(self.source_names),
            "source_dtype": self.source_dtype,
            "maps": sorted(self.maps),
            "seconds": dict(self.timings),
            "notes": list(self.notes),
        }
