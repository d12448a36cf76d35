"""Looking at training data before a run: counts, sizes, problems, the split, and preview samples.

:func:`inspect_training_data` checks a folder the way the trainer will read it (the same scanning
functions) and reports every problem at once, so a run never fails an hour in on a bad file.
:func:`preview_samples` synthesizes a few pairs with the chosen recipe, exactly as training would
(same synthesizer, its preview random stream).
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from focusstudio.core.errors import FocusStudioError
from focusstudio.core.progress import CancelToken, ProgressEvent
from focusstudio.core.training.datasets import PairFolderDataset, scan_pair_folder, split_train_validation
from focusstudio.core.training.recipe import get_recipe
from focusstudio.core.training.settings import TRAIN_SPEC
from focusstudio.core.training.synthesis import (
    IMAGE_SUFFIXES,
    PREVIEW_STREAM,
    VALIDATION_STREAM,
    ImageSource,
    PairSynthesizer,
    scan_image_folder,
)
from focusstudio.core.training.trainer import make_config

Severity = Literal["error", "warning"]
#: Problems listed per kind before the rest are only counted (a folder of 10 000 bad files).
MAX_LISTED = 12
SPLIT_ERROR = "one item cannot be split into training and validation: add some or set the validation share to 0"


@dataclass(frozen=True)
class DataProblem:
    """Something wrong with the data: errors stop a run, warnings are worth knowing."""

    severity: Severity
    path: str
    message: str

    def __str__(self) -> str:
        return f"{Path(self.path).name}: {self.message}" if self.path else self.message


@dataclass(frozen=True)
class DataReport:
    """What a training folder holds, as the trainer will read it."""

    data_format: Literal["images", "pairs"]
    folder: str
    items: int  # usable photos (or scenes)
    with_mask: int
    left_out: int  # photos the corpus manifest marks as shallow depth of field
    train_items: int
    val_items: int
    smallest: tuple[int, int] | None  # (width, height) of the smallest item
    largest: tuple[int, int] | None
    problems: tuple[DataProblem, ...] = field(default=())
    #: Split groups of the usable items (photos of one video sequence share a group).
    groups: tuple[str, ...] = field(default=())

    def split_counts(self, val_fraction: float, seed: int = 1) -> tuple[int, int]:
        """(training, validation) item counts for another validation share, as the trainer splits."""
        if not self.groups:
            return 0, 0
        train, validation = split_train_validation(list(self.groups), val_fraction, seed)
        return len(train), len(validation)

    def with_split(self, val_fraction: float, seed: int = 1) -> DataReport:
        """This report for another validation share (the one-item error is re-evaluated)."""
        from dataclasses import replace

        train, validation = self.split_counts(val_fraction, seed)
        problems = tuple(p for p in self.problems if "cannot be split" not in p.message)
        if self.items == 1 and val_fraction > 0:
            problems = (DataProblem("error", self.folder, SPLIT_ERROR), *problems)
        return replace(self, train_items=train, val_items=validation, problems=problems)

    @property
    def errors(self) -> list[DataProblem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[DataProblem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def usable(self) -> bool:
        return not self.errors and self.train_items > 0

    def summary(self) -> str:
        noun = "scene" if self.data_format == "pairs" else "photo"
        lines = [f"{self.items} {noun}{'' if self.items == 1 else 's'}"]
        if self.data_format == "images":
            lines[0] += f", {self.with_mask} with a mask"
            if self.left_out:
                lines[0] += f" ({self.left_out} left out: shallow depth of field in the corpus manifest)"
        elif self.with_mask:
            lines[0] += f", {self.with_mask} with a mask"
        if self.smallest and self.largest:
            if self.smallest == self.largest:
                lines.append(f"size {self.smallest[0]}×{self.smallest[1]}")
            else:
                lines.append(f"sizes {self.smallest[0]}×{self.smallest[1]} … {self.largest[0]}×{self.largest[1]}")
        lines.append(f"{self.train_items} for training, {self.val_items} for validation")
        return "; ".join(lines)


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header (no pixel decoding)."""
    from PIL import Image

    with Image.open(path) as image:
        return int(image.size[0]), int(image.size[1])


def _decodes(path: Path) -> bool:
    # A reduced decode is enough to find truncated or corrupt pixel data, and fast for JPEG.
    return cv2.imread(str(path), cv2.IMREAD_REDUCED_GRAYSCALE_2) is not None


class _Problems:
    """Collects problems, listing at most MAX_LISTED of each message kind."""

    def __init__(self) -> None:
        self.items: list[DataProblem] = []
        self._counts: dict[tuple[Severity, str], int] = {}

    def add(self, severity: Severity, path: str | Path, message: str, kind: str | None = None) -> None:
        key = (severity, kind or message)
        self._counts[key] = self._counts.get(key, 0) + 1
        if self._counts[key] <= MAX_LISTED:
            self.items.append(DataProblem(severity, str(path), message))

    def finish(self) -> tuple[DataProblem, ...]:
        extra = [DataProblem(severity, "", f"… and {count - MAX_LISTED} more like “{kind}”")
                 for (severity, kind), count in self._counts.items() if count > MAX_LISTED]
        ordered = sorted(self.items + extra, key=lambda p: p.severity != "error")
        return tuple(ordered)


def inspect_training_data(
    method: str,
    data: str | Path,
    masks: str | Path | None = None,
    data_format: str = "auto",
    val_fraction: float = TRAIN_SPEC.default("val_fraction"),
    seed: int = TRAIN_SPEC.default("seed"),
    crop: int | None = None,
    resize: int | None = None,
    cancel: CancelToken | None = None,
) -> Generator[ProgressEvent, None, DataReport]:
    """Check ``data`` for ``method``; every problem is reported, none raised."""
    recipe = get_recipe(method)
    token = cancel or CancelToken()
    crop = crop or recipe.defaults().crop
    pairs = recipe.data_kind == "pairs" or data_format == "pairs"
    if pairs:
        return (yield from _inspect_pairs(recipe.data_kind != "pairs", Path(data), val_fraction, seed, crop, token))
    return (yield from _inspect_images(Path(data), masks, val_fraction, seed, crop, resize, token))


def _empty(data_format: Literal["images", "pairs"], folder: Path, error: FocusStudioError) -> DataReport:
    return DataReport(data_format, str(folder), 0, 0, 0, 0, 0, None, None,
                      (DataProblem("error", error.path or "", error.message),))


def _inspect_images(
    folder: Path, masks: str | Path | None, val_fraction: float, seed: int, crop: int, resize: int | None,
    cancel: CancelToken,
) -> Generator[ProgressEvent, None, DataReport]:
    yield ProgressEvent("scanning", 0.0, str(folder))
    try:
        records = scan_image_folder(folder, masks)
    except FocusStudioError as error:
        return _empty("images", folder, error)
    problems = _Problems()
    image_dir = folder / "images" if (folder / "images").is_dir() else folder
    on_disk = [p for p in image_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    left_out = len(on_disk) - len(records)
    if masks is not None or (image_dir != folder and (folder / "masks").is_dir()):
        mask_dir = Path(masks) if masks is not None else folder / "masks"
        stems = {p.stem for p in on_disk}
        for path in sorted(mask_dir.iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and path.stem not in stems:
                problems.add("warning", path, "mask without a photo of the same name (not used)",
                             "mask without a photo")
    sizes: list[tuple[int, int]] = []
    usable = []
    for number, record in enumerate(records):
        cancel.raise_if_cancelled()
        if number % 8 == 0:
            yield ProgressEvent("checking photos", number / max(len(records), 1), record.name)
        try:
            size = _image_size(record.image)
            if not _decodes(record.image):
                raise OSError("undecodable pixels")
        except Exception:
            problems.add("error", record.image, "cannot be read as an image (remove or replace it)",
                         "unreadable photo")
            continue
        sizes.append(size)
        usable.append(record)
        if resize is None and min(size) < crop:
            problems.add("warning", record.image, f"{size[0]}×{size[1]} is smaller than the {crop}-pixel crop: "
                         "it will be upscaled", "smaller than the crop")
        if record.mask is not None:
            _check_mask(record.mask, size, problems)
    groups = [record.group for record in usable]
    train, validation = split_train_validation(groups, val_fraction, seed) if groups else ([], [])
    if len(usable) == 1 and val_fraction > 0:
        problems.add("error", folder, SPLIT_ERROR)
    elif not usable:
        problems.add("error", folder, "no readable photos")
    yield ProgressEvent("checking photos", 1.0, "")
    return DataReport(
        "images", str(folder), len(usable), sum(r.mask is not None for r in usable), left_out,
        len(train), len(validation),
        min(sizes, key=lambda s: s[0] * s[1]) if sizes else None,
        max(sizes, key=lambda s: s[0] * s[1]) if sizes else None,
        problems.finish(), tuple(groups),
    )


def _check_mask(path: Path, image_size: tuple[int, int], problems: _Problems) -> None:
    try:
        size = _image_size(path)
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise OSError("undecodable pixels")
    except Exception:
        problems.add("error", path, "mask cannot be read (remove or replace it)", "unreadable mask")
        return
    image_ratio = image_size[0] / image_size[1]
    mask_ratio = size[0] / size[1]
    if abs(image_ratio - mask_ratio) > 0.02 * image_ratio:
        problems.add("error", path, f"mask is {size[0]}×{size[1]} but its photo is {image_size[0]}×{image_size[1]}"
                     " (another shape: not its mask?)", "mask shape differs")
        return
    fraction = float((mask > (127 if mask.max() > 1 else 0)).mean())
    if not 0.03 <= fraction <= 0.9:
        problems.add("warning", path, f"mask covers {fraction:.0%} of the frame: random masks are used instead",
                     "mask nearly empty or full")


def _inspect_pairs(
    needs_mask: bool, folder: Path, val_fraction: float, seed: int, crop: int, cancel: CancelToken
) -> Generator[ProgressEvent, None, DataReport]:
    yield ProgressEvent("scanning", 0.0, str(folder))
    try:
        scenes = scan_pair_folder(folder)
    except FocusStudioError as error:
        return _empty("pairs", folder, error)
    problems = _Problems()
    names = {scene.name for scene in scenes}
    for path in sorted(folder.iterdir()):
        if path.is_dir() and path.name not in names:
            problems.add("warning", path, "not a scene (needs 1.*, 2.* and gt.*): skipped", "not a scene")
    sizes: list[tuple[int, int]] = []
    usable = []
    for number, scene in enumerate(scenes):
        cancel.raise_if_cancelled()
        yield ProgressEvent("checking scenes", number / max(len(scenes), 1), scene.name)
        files = [scene.first, scene.second, scene.ground_truth] + ([scene.mask] if scene.mask else [])
        try:
            scene_sizes = [_image_size(path) for path in files]
            bad = next((path for path in files if not _decodes(path)), None)
        except Exception:
            problems.add("error", scene.first.parent, "a file cannot be read as an image", "unreadable scene")
            continue
        if bad is not None:
            problems.add("error", bad, "cannot be read as an image", "unreadable scene")
            continue
        if len(set(scene_sizes)) > 1:
            listed = ", ".join(f"{p.name} {w}×{h}" for p, (w, h) in zip(files, scene_sizes))
            problems.add("error", scene.first.parent, f"sizes differ ({listed})", "sizes differ")
            continue
        if min(scene_sizes[0]) < crop:
            problems.add("error", scene.first.parent, f"{scene_sizes[0][0]}×{scene_sizes[0][1]} is smaller than "
                         f"the {crop}-pixel crop", "smaller than the crop")
            continue
        if needs_mask and scene.mask is None:
            problems.add("error", scene.first.parent, "no mask.* (this method learns a decision map from it)",
                         "no mask")
            continue
        sizes.append(scene_sizes[0])
        usable.append(scene)
    train, validation = split_train_validation([s.name for s in usable], val_fraction, seed) if usable else ([], [])
    if len(usable) == 1 and val_fraction > 0:
        problems.add("error", folder, SPLIT_ERROR)
    yield ProgressEvent("checking scenes", 1.0, "")
    return DataReport(
        "pairs", str(folder), len(usable), sum(s.mask is not None for s in usable), 0, len(train), len(validation),
        min(sizes, key=lambda s: s[0] * s[1]) if sizes else None,
        max(sizes, key=lambda s: s[0] * s[1]) if sizes else None,
        problems.finish(), tuple(s.name for s in usable),
    )


# ---------------------------------------------------------------------------------- preview
@dataclass(frozen=True, eq=False)
class PreviewSample:
    """One generated training sample: float32 [0, 1] arrays (``a``/``b``/``mask`` may be None)."""

    name: str
    sharp: np.ndarray
    a: np.ndarray | None
    b: np.ndarray | None
    mask: np.ndarray | None


# The decoded photos of the last previewed folder: moving a slider must not decode them again.
_SOURCE_LOCK = threading.Lock()
_SOURCE_CACHE: dict[tuple[Any, ...], ImageSource] = {}


def _cached_source(key: tuple[Any, ...], make: Any) -> ImageSource:
    with _SOURCE_LOCK:
        source = _SOURCE_CACHE.get(key)
        if source is None:
            _SOURCE_CACHE.clear()
            source = _SOURCE_CACHE[key] = make()
        return source


def preview_samples(
    method: str,
    data: str | Path,
    masks: str | Path | None = None,
    data_format: str = "auto",
    synthesis: Mapping[str, Any] | None = None,
    resize: int | None = None,
    crop: int | None = None,
    seed: int = 1,
    count: int = 4,
    cancel: CancelToken | None = None,
) -> Generator[ProgressEvent, None, list[PreviewSample]]:
    """``count`` samples as training would make them from ``data`` (spread over the folder).

    Auto-encoders (no synthesis in training) show their validation pairs, as the CLI preview does.
    """
    token = cancel or CancelToken()
    recipe = get_recipe(method)
    defaults = recipe.defaults()
    crop = crop or defaults.crop
    config = make_config(method, data, masks=str(masks) if masks else None, resize=resize or None, crop=crop,
                         synthesis=dict(synthesis or {}), seed=seed, data_format=data_format,
                         batch_size=defaults.batch_size)
    if recipe.data_kind == "pairs" or data_format == "pairs":
        scenes = scan_pair_folder(data)
        dataset = PairFolderDataset(scenes, crop, seed, recipe.grey, VALIDATION_STREAM)
        samples = []
        for number, index in enumerate(_spread(len(scenes), count)):
            token.raise_if_cancelled()
            yield ProgressEvent("preview", number / max(count, 1), scenes[index].name)
            item = dataset[index]
            samples.append(PreviewSample(scenes[index].name, item["sharp"], item["a"], item["b"], item.get("mask")))
        return samples
    records = scan_image_folder(config.data, config.masks, config.segs, config.min_background_sharpness_ratio)
    key = (tuple(records), recipe.grey, config.resize)
    source = _cached_source(key, lambda: ImageSource(records, grey=recipe.grey, resize=config.resize))
    synthesis_config = recipe.synthesis(config)
    if synthesis_config.mode == "none":
        synthesis_config = recipe.validation_synthesis(config)
    synthesizer = PairSynthesizer(source, synthesis_config, seed)
    samples: list[PreviewSample] = []
    unreadable: set[int] = set()
    last_error: FocusStudioError | None = None
    for number, wanted in enumerate(_spread(len(records), count)):
        # An unreadable photo (the inspection lists it) must not hide the others: take the next one.
        for index in [(wanted + offset) % len(records) for offset in range(len(records))]:
            if index in unreadable:
                continue
            token.raise_if_cancelled()
            yield ProgressEvent("preview", number / max(count, 1), records[index].name)
            try:
                item = synthesizer.sample(index, number, PREVIEW_STREAM)
            except FocusStudioError as error:
                unreadable.add(index)
                last_error = error
                continue
            samples.append(PreviewSample(records[index].name, item["sharp"], item.get("a"), item.get("b"),
                                         item.get("mask")))
            break
    if not samples and last_error is not None:
        raise last_error
    yield ProgressEvent("preview", 1.0, "")
    return samples


def _spread(total: int, count: int) -> Sequence[int]:
    """``count`` indices spread evenly over ``range(total)`` (repeating when there are fewer)."""
    if total <= 0:
        return []
    return [int(i * total / count) % total if count <= total else i % total for i in range(count)]
