"""Torch datasets for training: synthesized pairs from sharp images, or real pairs with a ground truth.

Samples are addressed by a *global* index so training is a pure function of (seed, step): sample
``g`` of the training stream uses image ``perm_e[g mod n]`` where ``perm_e`` is the seeded
permutation of epoch ``e = g div n``. Resuming at step s therefore draws exactly the samples an
uninterrupted run would have drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from focusstudio.core.errors import InputError
from focusstudio.core.training.synthesis import (
    IMAGE_SUFFIXES,
    TRAIN_STREAM,
    VALIDATION_STREAM,
    ImageRecord,
    PairSynthesizer,
)

Sample = dict[str, np.ndarray]

_SPLIT_TAG = 104729
_EPOCH_TAG = 1299709


def split_train_validation(
    groups: Sequence[str], val_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Indices for training and validation; items sharing a group stay on one side.

    The split depends only on ``seed`` and the sorted group names, not on file order.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"validation fraction must be in [0, 1), got {val_fraction}")
    unique = sorted(set(groups))
    rng = np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_TAG]))
    order = rng.permutation(len(unique))
    count = round(val_fraction * len(unique))
    if val_fraction > 0 and len(unique) > 1:
        count = min(max(count, 1), len(unique) - 1)
    validation_groups = {unique[i] for i in order[:count]}
    train = [i for i, g in enumerate(groups) if g not in validation_groups]
    validation = [i for i, g in enumerate(groups) if g in validation_groups]
    return train, validation


class SyntheticPairDataset(Dataset[Sample]):
    """Pairs synthesized on the fly from a subset of an image source.

    ``len()`` is one epoch; any index ≥ 0 is valid (later epochs reshuffle).
    """

    def __init__(
        self, synthesizer: PairSynthesizer, image_indices: Sequence[int], stream: int = TRAIN_STREAM
    ) -> None:
        if not image_indices:
            raise InputError("no images left for this split (add images or lower --val-fraction)")
        self.synthesizer = synthesizer
        self.image_indices = list(image_indices)
        self.stream = stream

    def __len__(self) -> int:
        return len(self.image_indices)

    def image_for(self, index: int) -> int:
        count = len(self.image_indices)
        if self.stream == VALIDATION_STREAM:
            return self.image_indices[index % count]
        permutation = _epoch_permutation(self.synthesizer.seed, index // count, count)
        return self.image_indices[int(permutation[index % count])]

    def __getitem__(self, index: int) -> Sample:
        return self.synthesizer.sample(self.image_for(index), index, self.stream)


@lru_cache(maxsize=4)
def _epoch_permutation(seed: int, epoch: int, count: int) -> np.ndarray:
    return np.random.default_rng(np.random.SeedSequence([seed, _EPOCH_TAG, epoch])).permutation(count)


@dataclass(frozen=True)
class PairScene:
    """A real registered pair with its all-in-focus ground truth (and optional focus mask)."""

    name: str
    first: Path
    second: Path
    ground_truth: Path
    mask: Path | None = None


def scan_pair_folder(folder: str | Path) -> list[PairScene]:
    """Scenes of a ``<scene>/1.*, 2.*, gt.*`` folder (``mask.*`` optional)."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError("pair folder not found", root)
    scenes = []
    for scene in sorted(p for p in root.iterdir() if p.is_dir()):
        files = {p.stem.lower(): p for p in scene.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
        if not {"1", "2", "gt"} <= set(files):
            continue
        scenes.append(PairScene(scene.name, files["1"], files["2"], files["gt"], files.get("mask")))
    if not scenes:
        raise InputError("no scene folders with 1.*, 2.* and gt.* images", root)
    return scenes


class PairFolderDataset(Dataset[Sample]):
    """Random crops (deterministic per (seed, index)) of real pairs with a ground truth.

    Images are decoded once and cached as uint8. Returns ``a``, ``b``, ``sharp`` (the ground
    truth) and, when the scene has one, ``mask``; validation samples use a centre crop.
    """

    def __init__(
        self,
        scenes: Sequence[PairScene],
        crop: int,
        seed: int,
        grey: bool = True,
        stream: int = TRAIN_STREAM,
        flip: bool = True,
    ) -> None:
        if not scenes:
            raise InputError("no scenes left for this split")
        self.scenes = list(scenes)
        self.crop = crop
        self.seed = seed
        self.grey = grey
        self.stream = stream
        self.flip = flip and stream == TRAIN_STREAM
        self._cache: dict[int, list[np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.scenes)

    def _load(self, scene_index: int) -> list[np.ndarray]:
        cached = self._cache.get(scene_index)
        if cached is not None:
            return cached
        scene = self.scenes[scene_index]
        paths = [scene.first, scene.second, scene.ground_truth] + ([scene.mask] if scene.mask else [])
        arrays = []
        for position, path in enumerate(paths):
            is_mask = position == 3
            flag = cv2.IMREAD_GRAYSCALE if (self.grey or is_mask) else cv2.IMREAD_COLOR
            data = cv2.imread(str(path), flag)
            if data is None:
                raise InputError("cannot decode this image", path)
            if data.ndim == 3:
                data = cv2.cvtColor(data, cv2.COLOR_BGR2RGB)
            if arrays and data.shape[:2] != arrays[0].shape[:2]:
                raise InputError(f"size {data.shape[1]}×{data.shape[0]} differs from the scene's first image", path)
            arrays.append(data)
        if min(arrays[0].shape[:2]) < self.crop:
            raise InputError(f"scene is smaller than the crop size {self.crop}", scene.first)
        self._cache[scene_index] = arrays
        return arrays

    def __getitem__(self, index: int) -> Sample:
        scene_index = index % len(self.scenes)
        arrays = self._load(scene_index)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.stream, index]))
        height, width = arrays[0].shape[:2]
        if self.stream == TRAIN_STREAM:
            top, left = int(rng.integers(height - self.crop + 1)), int(rng.integers(width - self.crop + 1))
        else:
            top, left = (height - self.crop) // 2, (width - self.crop) // 2
        flip_x = self.flip and rng.random() < 0.5
        out: Sample = {}
        for key, data in zip(("a", "b", "sharp", "mask"), arrays):
            patch = data[top : top + self.crop, left : left + self.crop].astype(np.float32) / 255.0
            if key == "mask":
                patch = (patch >= 0.5).astype(np.float32)
            if flip_x:
                patch = patch[:, ::-1]
            out[key] = np.ascontiguousarray(patch)
        return out


def collate(samples: Sequence[Sample]) -> dict[str, torch.Tensor]:
    """Stack samples into N×C×H×W float tensors (masks become N×1×H×W)."""
    batch: dict[str, torch.Tensor] = {}
    for key in samples[0]:
        stacked = np.stack([sample[key] for sample in samples])
        tensor = torch.from_numpy(np.ascontiguousarray(stacked))
        tensor = tensor.unsqueeze(1) if tensor.dim() == 3 else tensor.permute(0, 3, 1, 2).contiguous()
        batch[key] = tensor
    return batch


def load_batch(dataset: Dataset[Sample], start: int, size: int) -> dict[str, torch.Tensor]:
    """Samples ``start .. start+size−1`` of ``dataset`` as a batch (the trainer's data path)."""
    return collate([dataset[index] for index in range(start, start + size)])


__all__ = [
    "ImageRecord",
    "PairFolderDataset",
    "PairScene",
    "SyntheticPairDataset",
    "collate",
    "load_batch",
    "scan_pair_folder",
    "split_train_validation",
]
