"""Open every usable frame of a set of files and folders, naming each file that cannot be used.

The interactive counterpart of :func:`~focusstudio.core.io.stacks.load_stack`: ``load_stack`` stops
at the first bad file (right for the command line, exit 2 naming it); a window loads the good files
and names every bad one. Both list folders with :func:`list_folder_images`, order loose files with
:func:`natural_sorted`, read headers with :func:`probe_image` and decode with :func:`decode_frame`.
Also here: joining the frames a user adds to a stack, and keeping a small stack's decoded frames.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from focusstudio.core.errors import FocusStudioError
from focusstudio.core.io.readers import decode_frame, probe_image
from focusstudio.core.io.stacks import list_folder_images, natural_sorted
from focusstudio.core.progress import CancelToken, ProgressEvent
from focusstudio.core.types import FrameInfo, Stack

__all__ = [
    "FRAME_CACHE_BUDGET",
    "FileProblem",
    "OpenedFiles",
    "expand_inputs",
    "merge_stacks",
    "open_files",
    "with_frame_cache",
]

T = TypeVar("T")


@dataclass(frozen=True)
class FileProblem:
    """A file that could not be used, with the one-line reason."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{Path(self.path).name}: {self.message}"


@dataclass(frozen=True, eq=False)
class OpenedFiles(Generic[T]):
    """The good frames of the opened files, what ``per_frame`` made of each, and what went wrong."""

    stack: Stack | None
    #: ``per_frame`` of each frame of ``stack``, in its order (the window: thumbnails).
    products: tuple[T, ...]
    problems: tuple[FileProblem, ...]
    notes: tuple[str, ...]
    paths: tuple[str, ...]


def expand_inputs(paths: Sequence[str | Path]) -> tuple[list[Path], list[str], list[FileProblem]]:
    """Files to open for ``paths`` (folders expanded and naturally sorted), notes and problems.

    Loose files are naturally sorted too: a drag from a file manager carries them in selection
    order, which is rarely the order the user wants (the window lets them reorder the list).
    """
    files: list[Path] = []
    notes: list[str] = []
    problems: list[FileProblem] = []
    loose: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            try:
                found, folder_notes = list_folder_images(item)
            except FocusStudioError as error:
                problems.append(FileProblem(str(item), error.message))
                continue
            if not found:
                problems.append(FileProblem(str(item), "contains no images"))
            files.extend(found)
            notes.extend(folder_notes)
        elif item.exists():
            loose.append(item)
        else:
            problems.append(FileProblem(str(item), "does not exist"))
    files.extend(natural_sorted(loose))
    unique: dict[str, Path] = {}
    for path in files:
        if _identity(path) in unique:
            notes.append(f"{path.name} was given twice: opened once")
        else:
            unique[_identity(path)] = path
    return list(unique.values()), notes, problems


def open_files(
    paths: Sequence[str | Path],
    cancel: CancelToken,
    per_frame: Callable[[np.ndarray], T],
    reference_shape: tuple[int, int] | None = None,
    already_open: Collection[str | Path] = (),
) -> Generator[ProgressEvent, None, OpenedFiles[T]]:
    """Open every usable frame of ``paths``; each bad file becomes a :class:`FileProblem`.

    Headers are probed file by file; then every frame is decoded once and handed to ``per_frame``
    (the window makes its thumbnail), which also catches files whose header is fine but whose pixel
    data is damaged. Frames must all have ``reference_shape`` (the size of the stack they are added
    to) or the size most frames have (one odd file sorting first must not reject every real frame).
    Files in ``already_open`` (the stack they are added to) are named, not added twice.
    """
    files, notes, problems = expand_inputs(paths)
    known = {_identity(path) for path in already_open}
    probed_files: list[tuple[Path, list[FrameInfo]]] = []
    for number, path in enumerate(files):
        cancel.raise_if_cancelled()
        yield ProgressEvent("reading headers", 0.1 * number / max(len(files), 1), path.name)
        if _identity(path) in known:
            problems.append(FileProblem(str(path), "is already in the stack"))
            continue
        try:
            probed_files.append((path, list(probe_image(path))))
        except FocusStudioError as error:
            problems.append(FileProblem(str(path), error.message))
    frames = _frames_of_one_size(probed_files, reference_shape, problems)

    stack = Stack(frames, decode_frame, notes)
    products: list[T] = []
    keep: list[int] = []
    for index, info in enumerate(frames):
        cancel.raise_if_cancelled()
        yield ProgressEvent("making thumbnails", 0.1 + 0.9 * index / max(len(frames), 1), info.name)
        try:
            products.append(per_frame(stack.load(index)))
        except FocusStudioError as error:
            problems.append(FileProblem(str(info.path or info.name), error.message))
            continue
        except Exception as error:  # a decoder failing on damaged pixel data
            problems.append(FileProblem(str(info.path or info.name), f"cannot be decoded ({error})"))
            continue
        keep.append(index)
    if len(keep) != len(frames):
        stack = stack.subset(keep)
    yield ProgressEvent("making thumbnails", 1.0, "")
    return OpenedFiles(
        stack=stack if len(stack) else None,
        products=tuple(products),
        problems=tuple(problems),
        notes=tuple(notes),
        paths=tuple(str(p) for p in paths),
    )


def _identity(path: str | Path) -> str:
    """One spelling per file (relative paths, symlinks, ``..``), to recognise a file given twice."""
    try:
        return str(Path(path).resolve())
    except OSError:
        return str(Path(path).absolute())


def _frames_of_one_size(probed_files: Sequence[tuple[Path, list[FrameInfo]]],
                        reference_shape: tuple[int, int] | None,
                        problems: list[FileProblem]) -> list[FrameInfo]:
    """The frames of the size the stack needs: ``reference_shape``, else the size most frames have
    (ties: the size that comes first); every file of another size becomes a problem."""
    if reference_shape is not None:
        expected, reason = reference_shape, f"the stack is {reference_shape[1]}×{reference_shape[0]}"
    else:
        sizes = Counter(info.shape for _, infos in probed_files for info in infos)
        if not sizes:
            return []
        expected, count = sizes.most_common(1)[0]
        total = sum(sizes.values())
        reason = f"the stack is {expected[1]}×{expected[0]} ({count} of the {total} frames)"
    frames: list[FrameInfo] = []
    for path, infos in probed_files:
        odd = [info for info in infos if info.shape != expected]
        if odd:
            problems.append(FileProblem(str(path), f"is {odd[0].width}×{odd[0].height} pixels but {reason}"))
            continue
        frames.extend(infos)
    return frames


#: Decoded frames kept in memory for live updates when the whole stack fits in this many bytes.
FRAME_CACHE_BUDGET = 512 * 2**20


def with_frame_cache(stack: Stack, budget_bytes: int = FRAME_CACHE_BUDGET,
                     decoded: Sequence[np.ndarray] = ()) -> Stack:
    """``stack`` with every decoded frame kept in memory, when the whole stack fits in the budget.

    Post-processing re-composes the result from the source pixels, so each live update would
    decode every frame again (≈0.1–0.4 s per megapixel PNG); a small stack is worth keeping.
    Callers get a copy of the cached frame, so a method that works in place cannot corrupt it.
    Stacks already in memory and stacks over the budget are returned unchanged. ``decoded``: the
    frames as ``stack.load`` gave them already (the window's loading decoded each for its
    thumbnail), kept instead of decoding them again.
    """
    if not len(stack) or any(info.path is None for info in stack.frames):
        return stack
    channels = 3 if stack.is_color else 1
    if sum(info.height * info.width * channels * 4 for info in stack.frames) > budget_bytes:
        return stack
    cache: dict[int, np.ndarray] = dict(enumerate(decoded)) if len(decoded) == len(stack) else {}
    positions = {info: index for index, info in enumerate(stack.frames)}

    def loader(info: FrameInfo) -> np.ndarray:
        index = positions[info]
        image = cache.get(index)
        if image is None:
            image = stack.load(index)  # concurrent first loads may both decode: harmless
            cache[index] = image
        return image.copy()

    return Stack(stack.frames, loader, stack.notes, None, stack.valid_mask, stack.coverages)


def merge_stacks(first: Stack, second: Stack) -> Stack:
    """``first`` followed by ``second`` (the frames the user added), each decoded by its own stack."""
    owners: dict[FrameInfo, tuple[Stack, int]] = {}
    for stack in (first, second):
        for index, info in enumerate(stack.frames):
            owners.setdefault(info, (stack, index))

    def loader(info: FrameInfo) -> np.ndarray:
        owner, index = owners[info]
        return owner.load(index)

    notes = list(dict.fromkeys([*first.notes, *second.notes]))
    return Stack([*first.frames, *second.frames], loader, notes)
