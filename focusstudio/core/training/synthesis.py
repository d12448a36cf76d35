"""Synthesis of multi-focus training pairs from sharp images and (optional) foreground masks.

A pair is made from a sharp image I, a focus mask M (1 = the region that is sharp in source A)
and a blur operator G (METHODS.md, "Synthetic training pairs"):

* ``plain``:       A = M·I + (1−M)·G(I),  B = M·G(I) + (1−M)·I
* ``alpha_matte``: A = M·I + (1−M)·G((1−M)·I),  B = G(M·I) + (1−G(M))·((1−M)·I)
  (MFIF-GAN's defocus-spread model: a blurred foreground bleeds over the boundary)
* ``gacn``:        A = M·I + (1−M)·G(I),  B = (1−Ms)·I + Ms·G(I) with the soft matte
  Ms = Gaussian(M, σ=8, radius 45) (GACN's released training code, REFERENCE-NOTES §2.4)
* ``none``:        only the (augmented) sharp image, for auto-encoders (SESF-Fuse)

The target decision map is M (the weight of A) and the ground-truth fused image is I.

Determinism: every random choice of sample ``index`` comes from a numpy Generator seeded with
``(seed, stream, index)``; choices shared by a group of samples (GACN draws one blur radius and
one noise level per batch) come from ``(seed, stream, GROUP, index // group_size)``. So a given
(seed, index) always gives the same pair, whatever the batch order or worker count.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from focusstudio.core.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")

#: RNG stream tags: training and validation samples never share random numbers.
TRAIN_STREAM = 0
VALIDATION_STREAM = 1
PREVIEW_STREAM = 2
_GROUP_TAG = 7919  # distinguishes the per-group generator from the per-sample one

CompositionMode = Literal["plain", "alpha_matte", "gacn", "none"]
BlurKind = Literal["gaussian", "gaussian_radius", "mean"]


@dataclass(frozen=True)
class SynthesisConfig:
    """How pairs are made. Defaults are GACN's released training recipe (grey, 256 → 156 crop)."""

    mode: CompositionMode = "gacn"
    grey: bool = True
    #: Every image is resized to resize×resize first (as SESF/GACN do); None keeps the stored size.
    resize: int | None = 256
    crop: int = 156
    #: ``gaussian``: σ ~ U(sigma_range), kernel radius ⌈3σ⌉; ``gaussian_radius``: fixed σ
    #: (``sigma_range[0]``) truncated to a radius ~ U{radius_range} (GACN); ``mean``: box filter
    #: whose size is drawn from one of ``mean_size_ranges`` (UFA-Fuse).
    blur: BlurKind = "gaussian_radius"
    sigma_range: tuple[float, float] = (2.0, 2.0)
    radius_range: tuple[int, int] = (1, 7)
    mean_size_ranges: tuple[tuple[int, int], ...] = ((2, 3), (4, 5), (5, 7), (8, 10))
    #: One blur draw (and one noise level) per group of this many consecutive samples (GACN: batch).
    group_size: int = 1
    soft_matte_sigma: float = 8.0
    soft_matte_radius: int = 45
    flip: bool = True
    rotation_step_deg: int = 30  # 0 disables rotation
    offset_probability: float = 0.5
    max_offset: int = 2
    noise_max_std: float = 0.1  # 0 disables the noise augmentation
    swap_probability: float = 0.5
    #: Probability of a random shape mask even when the image has a real mask or segmentation.
    random_mask_probability: float = 0.0
    #: Real masks covering less / more of the frame than this are replaced by random masks.
    mask_fraction_range: tuple[float, float] = (0.03, 0.9)

    def for_validation(self) -> SynthesisConfig:
        """The same composition and blur without geometric/photometric augmentation (centre crop)."""
        return replace(
            self, flip=False, rotation_step_deg=0, offset_probability=0.0, noise_max_std=0.0,
            swap_probability=0.0,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SynthesisConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(values) - known
        if unknown:
            raise InputError(f"unknown synthesis option(s): {', '.join(sorted(unknown))}")
        converted: dict[str, Any] = {}
        for key, value in values.items():
            if key == "mean_size_ranges":
                value = tuple(tuple(int(v) for v in pair) for pair in value)
            elif isinstance(value, list):
                value = tuple(value)
            converted[key] = value
        return cls(**converted)


@dataclass(frozen=True)
class ImageRecord:
    """One sharp training image and its optional annotations."""

    name: str
    image: Path
    mask: Path | None = None
    segmentation: Path | None = None
    #: Images from one video sequence share a group so a train/val split keeps them together.
    group: str = ""


@dataclass
class ImageSource:
    """The images of a training folder, decoded once, resized and cached in memory (uint8)."""

    records: list[ImageRecord]
    grey: bool = True
    resize: int | None = 256
    _images: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _masks: dict[int, np.ndarray | None] = field(default_factory=dict, repr=False)
    _segs: dict[int, np.ndarray | None] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.records)

    def image(self, index: int) -> np.ndarray:
        """uint8 H×W (grey) or H×W×3 (RGB) image, resized."""
        cached = self._images.get(index)
        if cached is None:
            cached = self._load_image(self.records[index].image)
            self._images[index] = cached
        return cached

    def mask(self, index: int) -> np.ndarray | None:
        """uint8 {0, 1} mask at the image's (resized) size, or None."""
        if index not in self._masks:
            path = self.records[index].mask
            self._masks[index] = None if path is None else self._load_label(path, binary=True, index=index)
        return self._masks[index]

    def segmentation(self, index: int) -> np.ndarray | None:
        """uint8 label map at the image's (resized) size, or None."""
        if index not in self._segs:
            path = self.records[index].segmentation
            self._segs[index] = None if path is None else self._load_label(path, binary=False, index=index)
        return self._segs[index]

    def _load_image(self, path: Path) -> np.ndarray:
        flag = cv2.IMREAD_GRAYSCALE if self.grey else cv2.IMREAD_COLOR
        data = cv2.imread(str(path), flag)
        if data is None:
            raise InputError("cannot decode this image", path)
        if data.dtype != np.uint8:
            data = cv2.convertScaleAbs(data, alpha=255.0 / max(float(data.max()), 1.0))
        if not self.grey:
            data = cv2.cvtColor(data, cv2.COLOR_BGR2RGB)
        if self.resize is not None:
            # INTER_AREA: downscaling must not alias, the result is the "sharp" ground truth.
            data = cv2.resize(data, (self.resize, self.resize), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(data)

    def _load_label(self, path: Path, binary: bool, index: int) -> np.ndarray:
        data = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if data is None:
            raise InputError("cannot decode this mask", path)
        height, width = self.image(index).shape[:2]
        if binary:
            unit = (data > (127 if data.max() > 1 else 0)).astype(np.float32)
            if unit.shape != (height, width):
                unit = cv2.resize(unit, (width, height), interpolation=cv2.INTER_LINEAR)
            return (unit >= 0.5).astype(np.uint8)
        if data.shape != (height, width):
            data = cv2.resize(data, (width, height), interpolation=cv2.INTER_NEAREST)
        return data


def _list_images(folder: Path) -> dict[str, Path]:
    return {
        path.stem: path
        for path in sorted(folder.iterdir())
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
    }


def scan_image_folder(
    data_dir: str | Path,
    masks_dir: str | Path | None = None,
    segs_dir: str | Path | None = None,
    min_background_sharpness_ratio: float = 0.2,
) -> list[ImageRecord]:
    """The sharp images of a training folder with their masks.

    ``data_dir`` is either a flat folder of images or a corpus folder with ``images/`` (and
    optionally ``masks/``, ``segs/``, ``manifest.csv``, as ``../shared/train-corpus``). Masks are
    matched by file stem. With a manifest, photos whose background is much blurrier than their
    foreground (``bg_lapvar / fg_lapvar < min_background_sharpness_ratio``: shallow depth of field,
    not a valid all-in-focus ground truth) are left out, and DAVIS frames are grouped by sequence.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise InputError("training data folder not found", root)
    image_dir = root / "images" if (root / "images").is_dir() else root
    if masks_dir is None and (root / "masks").is_dir() and image_dir != root:
        masks_dir = root / "masks"
    if segs_dir is None and (root / "segs").is_dir() and image_dir != root:
        segs_dir = root / "segs"
    images = _list_images(image_dir)
    if not images:
        raise InputError("no images (jpg, png, tif, bmp, webp) in the training folder", image_dir)
    masks: dict[str, Path] = {}
    if masks_dir is not None:
        if not Path(masks_dir).is_dir():
            raise InputError("mask folder not found", masks_dir)
        masks = _list_images(Path(masks_dir))
    segs = _list_images(Path(segs_dir)) if segs_dir is not None and Path(segs_dir).is_dir() else {}
    manifest = _read_manifest(root / "manifest.csv")
    records = []
    for name, path in images.items():
        row = manifest.get(name, {})
        if _shallow_depth_of_field(row, min_background_sharpness_ratio):
            continue
        group = name.rsplit("_", 1)[0] if row.get("source", "").startswith("DAVIS") else name
        records.append(ImageRecord(name, path, masks.get(name), segs.get(name), group))
    return records


def _read_manifest(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["id"]: row for row in csv.DictReader(handle) if "id" in row}


def _shallow_depth_of_field(row: dict[str, str], min_ratio: float) -> bool:
    try:
        foreground, background = float(row["fg_lapvar"]), float(row["bg_lapvar"])
    except (KeyError, ValueError):
        return False
    return foreground > 0 and background / foreground < min_ratio


# --------------------------------------------------------------------------------- blur kernels
def gaussian_kernel_1d(sigma: float, radius: int) -> np.ndarray:
    """Normalised 1-D Gaussian of length 2·radius+1."""
    coords = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-(coords**2) / (2.0 * sigma * sigma))
    return (kernel / kernel.sum()).astype(np.float32)


def separable_blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Blur an H×W[×C] float32 image with a separable kernel, mirrored borders.

    Mirroring (not GACN's zero padding) keeps the crop borders from darkening, which would be a
    cue that real defocus never gives.
    """
    return cv2.sepFilter2D(image, cv2.CV_32F, kernel, kernel, borderType=cv2.BORDER_REFLECT_101)


@dataclass(frozen=True)
class BlurDraw:
    """One blur operator: a separable kernel and a description for the preview/manifest."""

    kernel: np.ndarray
    label: str


def draw_blur(config: SynthesisConfig, rng: np.random.Generator) -> BlurDraw:
    if config.blur == "gaussian_radius":
        low, high = config.radius_range
        radius = int(rng.integers(low, high + 1))
        sigma = float(config.sigma_range[0])
        return BlurDraw(gaussian_kernel_1d(sigma, radius), f"g σ{sigma:g} r{radius}")
    if config.blur == "gaussian":
        sigma = float(rng.uniform(*config.sigma_range))
        radius = max(1, math.ceil(3.0 * sigma))
        return BlurDraw(gaussian_kernel_1d(sigma, radius), f"g σ{sigma:.2f}")
    if config.blur == "mean":
        low, high = config.mean_size_ranges[int(rng.integers(len(config.mean_size_ranges)))]
        size = int(rng.integers(low, high + 1))
        return BlurDraw(np.full(size, 1.0 / size, dtype=np.float32), f"mean {size}")
    raise InputError(f"unknown blur kind {config.blur!r}")


# --------------------------------------------------------------------------------- random masks
def random_mask(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth random focus region (blobs, ellipses or a polygon) covering 15–85 % of the frame."""
    height, width = size
    kind = int(rng.integers(3))
    canvas = np.zeros((height, width), np.float32)
    if kind == 0:
        # Blobs: low-pass filtered noise thresholded at a random quantile (fraction guaranteed).
        noise = rng.standard_normal((height, width)).astype(np.float32)
        smooth = max(height, width) / float(rng.uniform(6.0, 14.0))
        field_ = cv2.GaussianBlur(noise, (0, 0), smooth, borderType=cv2.BORDER_REFLECT_101)
        return (field_ > np.quantile(field_, rng.uniform(0.2, 0.8))).astype(np.uint8)
    if kind == 1:
        for _ in range(int(rng.integers(1, 4))):
            centre = (int(rng.uniform(0.15, 0.85) * width), int(rng.uniform(0.15, 0.85) * height))
            axes = (int(rng.uniform(0.12, 0.45) * width), int(rng.uniform(0.12, 0.45) * height))
            cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    else:
        vertices = int(rng.integers(5, 13))
        angles = np.sort(rng.uniform(0, 2 * math.pi, vertices))
        radii = rng.uniform(0.15, 0.45, vertices) * min(height, width)
        cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
        points = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
        cv2.fillPoly(canvas, [np.round(points).astype(np.int32)], 1.0)
    # Smooth the outline so masks have natural, not polygonal, boundaries.
    canvas = cv2.GaussianBlur(canvas, (0, 0), max(height, width) / 40.0)
    mask = (canvas >= 0.5).astype(np.uint8)
    fraction = float(mask.mean())
    if fraction < 0.15 or fraction > 0.85:
        return random_mask(size, rng) if kind != 0 else mask
    return mask


def _mask_from_segmentation(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    values = np.unique(labels)
    if values.size < 2:
        return None
    chosen = values[rng.random(values.size) < 0.5]
    mask = np.isin(labels, chosen).astype(np.uint8)
    fraction = float(mask.mean())
    return mask if 0.1 <= fraction <= 0.9 else None


# --------------------------------------------------------------------------------- composition
def compose_pair(
    sharp: np.ndarray,
    mask: np.ndarray,
    blur: np.ndarray,
    mode: CompositionMode,
    soft_matte_sigma: float = 8.0,
    soft_matte_radius: int = 45,
) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) from a float32 sharp image (H×W[×C]), a {0,1} float mask (H×W) and a 1-D kernel."""
    m = mask.astype(np.float32)
    if sharp.ndim == 3:
        m = m[..., None]
    if mode == "plain":
        blurred = _blur_like(sharp, blur)
        return m * sharp + (1 - m) * blurred, m * blurred + (1 - m) * sharp
    if mode == "alpha_matte":
        background = (1 - m) * sharp
        near = m * sharp + (1 - m) * _blur_like(background, blur)
        blurred_mask = _blur_like(m, blur)
        far = _blur_like(m * sharp, blur) + (1 - blurred_mask) * background
        return near, far
    if mode == "gacn":
        blurred = _blur_like(sharp, blur)
        kernel = gaussian_kernel_1d(soft_matte_sigma, soft_matte_radius)
        soft = _blur_like(m, kernel)
        return m * sharp + (1 - m) * blurred, (1 - soft) * sharp + soft * blurred
    raise InputError(f"unknown composition mode {mode!r}")


def _blur_like(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    out = separable_blur(np.ascontiguousarray(image, dtype=np.float32), kernel)
    return out.reshape(image.shape)


def _shift(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate by (dy, dx) pixels with zero fill (a small misregistration)."""
    out = np.zeros_like(image)
    height, width = image.shape[:2]
    src_y = slice(max(0, -dy), min(height, height - dy))
    dst_y = slice(max(0, dy), min(height, height + dy))
    src_x = slice(max(0, -dx), min(width, width - dx))
    dst_x = slice(max(0, dx), min(width, width + dx))
    out[dst_y, dst_x] = image[src_y, src_x]
    return out


def _rotate(image: np.ndarray, degrees: int, nearest: bool) -> np.ndarray:
    """Rotate about the centre keeping the size; corners filled with 0 (as PIL ``rotate``)."""
    if degrees % 360 == 0:
        return image
    if degrees % 90 == 0:
        return np.ascontiguousarray(np.rot90(image, k=(degrees // 90) % 4))
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2.0, (height - 1) / 2.0), degrees, 1.0)
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.warpAffine(image, matrix, (width, height), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


class PairSynthesizer:
    """Makes deterministic training samples from an :class:`ImageSource`.

    :meth:`sample` returns float32 arrays in [0, 1]: ``a``, ``b`` (sources), ``mask`` (target
    decision map = weight of ``a``, H×W), ``sharp`` (ground truth); images are H×W (grey) or
    H×W×3. With ``mode="none"`` only ``sharp`` is produced.
    """

    def __init__(self, source: ImageSource, config: SynthesisConfig, seed: int) -> None:
        if config.resize is not None and config.crop > config.resize:
            raise InputError(f"crop {config.crop} is larger than the resize {config.resize}")
        self.source = source
        self.config = config
        self.seed = int(seed)

    def sample_rng(self, stream: int, index: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, stream, index]))

    def group_rng(self, stream: int, index: int) -> np.random.Generator:
        group = index // max(1, self.config.group_size)
        return np.random.default_rng(np.random.SeedSequence([self.seed, stream, _GROUP_TAG, group]))

    def sample(self, image_index: int, index: int, stream: int = TRAIN_STREAM) -> dict[str, np.ndarray]:
        """Sample number ``index`` of ``stream``, built from image ``image_index``."""
        config = self.config
        rng = self.sample_rng(stream, index)
        group = self.group_rng(stream, index)
        image = self.source.image(image_index).astype(np.float32) / 255.0
        mask = None if config.mode == "none" else self._choose_mask(image_index, image.shape[:2], rng)
        image, mask = self._crop(image, mask, rng, centre=stream == VALIDATION_STREAM)
        if config.flip:
            if rng.random() < 0.5:
                image, mask = image[:, ::-1], None if mask is None else mask[:, ::-1]
            if rng.random() < 0.5:
                image, mask = image[::-1], None if mask is None else mask[::-1]
        if config.rotation_step_deg > 0:
            degrees = config.rotation_step_deg * int(rng.integers(360 // config.rotation_step_deg))
            image = _rotate(np.ascontiguousarray(image), degrees, nearest=True)
            mask = None if mask is None else _rotate(np.ascontiguousarray(mask), degrees, nearest=True)
        image = np.ascontiguousarray(image)
        if mask is None:
            return {"sharp": image}
        mask = np.ascontiguousarray(mask).astype(np.float32)
        blur = draw_blur(config, group)
        near, far = compose_pair(image, mask, blur.kernel, config.mode, config.soft_matte_sigma,
                                 config.soft_matte_radius)
        if config.offset_probability > 0 and rng.random() < config.offset_probability:
            dy, dx = (int(v) for v in rng.integers(-config.max_offset, config.max_offset + 1, 2))
            if rng.random() < 0.5:
                near = _shift(near, dy, dx)
            else:
                far = _shift(far, dy, dx)
        if config.noise_max_std > 0:
            # GACN: one noise level per batch, the same noise field added to both sources.
            std = float(group.uniform(0.0, config.noise_max_std))
            noise = rng.standard_normal(near.shape).astype(np.float32) * std
            near = 0.95 * near + 0.05 * noise
            far = 0.95 * far + 0.05 * noise
        if config.swap_probability > 0 and rng.random() < config.swap_probability:
            near, far, mask = far, near, 1.0 - mask
        return {"a": near.astype(np.float32), "b": far.astype(np.float32), "mask": mask, "sharp": image}

    def _choose_mask(self, image_index: int, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        config = self.config
        use_random = rng.random() < config.random_mask_probability
        if not use_random:
            mask = self.source.mask(image_index)
            if mask is not None:
                low, high = config.mask_fraction_range
                if low <= float(mask.mean()) <= high:
                    return mask
            labels = self.source.segmentation(image_index)
            if labels is not None:
                from_labels = _mask_from_segmentation(labels, rng)
                if from_labels is not None:
                    return from_labels
        return random_mask(shape, rng)

    def _crop(
        self, image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator, centre: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        size = self.config.crop
        height, width = image.shape[:2]
        if height < size or width < size:
            scale = size / min(height, width)
            new_size = (max(size, round(width * scale)), max(size, round(height * scale)))
            image = cv2.resize(image, new_size, interpolation=cv2.INTER_LINEAR)
            if mask is not None:
                mask = cv2.resize(mask, new_size, interpolation=cv2.INTER_NEAREST)
            height, width = image.shape[:2]
        if centre:
            top, left = (height - size) // 2, (width - size) // 2
        else:
            top, left = int(rng.integers(height - size + 1)), int(rng.integers(width - size + 1))
        image = image[top : top + size, left : left + size]
        if mask is not None:
            mask = mask[top : top + size, left : left + size]
        return image, mask

    def save_preview(self, path: str | Path, count: int = 8, indices: Sequence[int] | None = None, *,
                     overwrite: bool = True, protected: Sequence[str | Path] = ()) -> Path:
        """Write a grid of ``count`` generated samples (rows: A | B | mask | sharp) as an image,
        through the output policy (never one of ``protected``; an existing file with ``overwrite``)."""
        rows = []
        for row, image_index in enumerate(indices or range(min(count, len(self.source)))):
            sample = self.sample(image_index % len(self.source), row, PREVIEW_STREAM)
            tiles = [sample[key] for key in ("a", "b", "mask", "sharp") if key in sample]
            tiles = [_as_rgb(tile) for tile in tiles]
            separator = np.ones((tiles[0].shape[0], 4, 3), np.float32)
            rows.append(np.concatenate([part for tile in tiles for part in (tile, separator)][:-1], axis=1))
        gap = np.ones((4, rows[0].shape[1], 3), np.float32)
        grid = np.concatenate([part for row in rows for part in (row, gap)][:-1], axis=0)
        from focusstudio.core.io import write_image

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.clip(grid * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return write_image(target, pixels.astype(np.float32) / 255.0, "uint8", overwrite=overwrite,
                           protected=protected)


def _as_rgb(tile: np.ndarray) -> np.ndarray:
    tile = np.clip(tile, 0.0, 1.0).astype(np.float32)
    return np.repeat(tile[..., None], 3, axis=2) if tile.ndim == 2 else tile
