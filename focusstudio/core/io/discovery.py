"""Find the scenes of an evaluation data set (``focusstudio eval``).

Layout: ``<root>/<scene>/1.<ext>, 2.<ext>, … [gt.<ext>]`` in any readable format. Numbered
files are the sources, in numeric order (``2`` before ``10``); ``gt.*`` is the all-in-focus
ground truth (``Scene.gt``); other images (``mask.png``, ``labels.png``, ``reference_focus-stack.jpg``) are
kept as ``extras`` by name and never used as sources. A root that holds numbered sources itself
and no scene folders is one scene.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from natsort import natsorted, ns

from focusstudio.core.errors import InputError
from focusstudio.core.io.formats import is_hidden, is_image_name
from focusstudio.core.io.readers import read_image
from focusstudio.core.io.stacks import load_stack
from focusstudio.core.types import Stack

_SOURCE_STEM = re.compile(r"\d+")
_GROUND_TRUTH_STEM = "gt"


@dataclass(frozen=True)
class Scene:
    """One stack of a data set, with its ground truth when there is one."""

    name: str
    folder: Path
    sources: tuple[Path, ...]
    gt: Path | None = None  # the all-in-focus ground truth (gt.*)
    #: Other images in the scene folder by lower-case stem, e.g. ``{"mask": Path(...)}``.
    extras: Mapping[str, Path] = field(default_factory=dict, hash=False)

    def load_stack(self, **kwargs: Any) -> Stack:
        """The sources as a :class:`Stack` (keyword arguments go to :func:`load_stack`)."""
        return load_stack(self.sources, **kwargs)

    def load_gt(self) -> np.ndarray | None:
        """The ground truth as float32 [0, 1], or None when the scene has none."""
        return read_image(self.gt) if self.gt is not None else None


def _scan_scene(folder: Path, name: str) -> Scene:
    numbered: dict[int, Path] = {}
    ground_truth: Path | None = None
    extras: dict[str, Path] = {}
    for entry in natsorted(folder.iterdir(), key=lambda path: path.name, alg=ns.INT | ns.IGNORECASE):
        if is_hidden(entry) or not entry.is_file() or not is_image_name(entry):
            continue
        stem = entry.stem.lower()
        if _SOURCE_STEM.fullmatch(stem):
            number = int(stem)
            if number in numbered:
                raise InputError(
                    f"scene '{name}' has two files for source {number}: {numbered[number].name} and {entry.name}",
                    folder,
                )
            numbered[number] = entry
        elif stem == _GROUND_TRUTH_STEM:
            if ground_truth is not None:
                raise InputError(
                    f"scene '{name}' has two ground-truth files: {ground_truth.name} and {entry.name}", folder
                )
            ground_truth = entry
        else:
            extras.setdefault(stem, entry)
    if len(numbered) < 2:
        found = ", ".join(path.name for path in numbered.values()) or "none"
        raise InputError(
            f"scene '{name}' needs at least 2 numbered source images (1.png, 2.png, ...); found {found}",
            folder,
        )
    sources = tuple(numbered[number] for number in sorted(numbered))
    return Scene(name, folder, sources, ground_truth, extras)


def _has_numbered_images(folder: Path) -> bool:
    return any(
        entry.is_file() and is_image_name(entry) and _SOURCE_STEM.fullmatch(entry.stem) is not None
        for entry in folder.iterdir()
        if not is_hidden(entry)
    )


def discover_dataset(root: str | Path) -> list[Scene]:
    """The scenes under ``root`` in natural order of their folder names.

    Raises :class:`InputError` when ``root`` is missing or not a folder, when it holds no scene,
    and for a scene with fewer than two numbered sources or two files for one source number.
    """
    root = Path(root)
    if not root.exists():
        raise InputError("does not exist", root)
    if not root.is_dir():
        raise InputError("is not a folder; a data set is a folder of scene folders", root)
    try:
        scene_folders = [entry for entry in root.iterdir() if entry.is_dir() and not is_hidden(entry)]
        if not scene_folders and _has_numbered_images(root):
            return [_scan_scene(root, root.name)]
        scene_folders = natsorted(scene_folders, key=lambda path: path.name, alg=ns.INT | ns.IGNORECASE)
        scenes = [_scan_scene(folder, folder.name) for folder in scene_folders]
    except OSError as exc:
        raise InputError(f"cannot be listed ({exc.strerror or exc})", exc.filename or root) from exc
    if not scenes:
        raise InputError("holds no scenes: expected <root>/<scene>/1.png, 2.png, ... [gt.png]", root)
    return scenes
