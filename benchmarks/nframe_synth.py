"""N-frame focus stacks with ground truth, rendered by a thin-lens layer model (issue 15).

    python -m benchmarks.nframe_synth --out /tmp/nframe            # generate (seed 15) and score all
    python -m benchmarks.nframe_synth --frames 3 8 --methods sf,laplacian --no-enfuse

Scenes (``--scenes``, 512×384): a textured photograph of ``shared/train-corpus`` on a smooth depth
ramp (a tilted plane) and two objects cut out with their real foreground masks, each a flat layer
in front of it. Depth u is inverse depth normalised to the focus range: the ramp spans u ∈ [0,
0.55], the objects sit at u = 0.72 and 0.93, and a point at u is blurred by a disc of radius
``MAX_BLUR · |u − u_focus|`` px (thin lens: the circle of confusion grows with |1/z − 1/z_focus|;
12 px across the whole range). The same scene and optics are shot with N = 3, 8, 16 or 30 frames
focused at u = (i + ½)/N: more frames sample the focus range more finely (a depth midway between
two focus planes is blurred by 2 px at N = 3, 0.75 px at N = 8, 0.2 px at N = 30), so with
more frames a perfect method can only gain; a score that falls with N is the method's doing.

Occlusion as in a camera: layers are composited back to front, each layer's colour·alpha and its
alpha blurred together with the layer's disc (a defocused foreground spreads over the background
and turns semi-transparent at its edges: where halos come from). The ramp (no self-occlusion)
uses a gather blur: per pixel, linear interpolation between the layer blurred at the two nearest
of a set of radii. Then per frame: focus breathing (magnification 1.00 → 1.02 across the stack,
relative to the middle frame, which is the ground truth's geometry and the reference of both
aligners), a ±0.5 % gain (exposure flicker), Gaussian sensor noise, 8-bit quantisation, JPEG q90
for every other scene. Ground truth = the same composite with no blur.

Measured against the ground truth on the interior (a 12-px border left out: breathing leaves up
to 5 px uncovered): PSNR (RGB), SSIM (grey), **halo** = PSNR in an 8-px band on both sides of every
depth discontinuity (the objects' outlines), **seam** = RMS gradient (8-bit levels/px) of the
σ = 2 smoothed error R − GT over flat ground-truth regions (GT gradient < 1.5 levels/px, 6 px away
from any edge): there the truth has no edges, pixel noise is smoothed away, and what remains are
the steps a switch between frames of slightly different brightness leaves; and sharpness recall
against the frames mapped back to the ground truth's geometry by their known magnification.

Tools: every focusstudio method with its defaults on the stack aligned by the default aligner
without cropping (``--no-crop``: the result keeps the reference geometry), and enfuse after
``align_image_stack -m -a`` with the middle frame given first (its reference), ``enfuse
--exposure-weight=0 --saturation-weight=0 --contrast-weight=1 --hard-mask --contrast-window-size=5``;
with ``--enfuse-ideal`` also enfuse on the frames mapped back by their known magnification
(``enfuse_ideal``: its fusion without align_image_stack's registration errors).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

SEED = 15
WIDTH, HEIGHT = 512, 384
MAX_BLUR = 12.0  # disc radius (px) for a defocus of the whole focus range (Δu = 1)
BREATHING = 0.02  # magnification change from the first to the last frame
GAIN_JITTER = 0.005
BORDER = 12
HALO_BAND = 8
RADII = (0.0, 0.6, 1.2, 2.0, 3.0, 4.5, 6.5, 9.0, 13.0, 18.0, 25.0, 36.0, 50.0)
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "train-corpus"
METHODS = ("sf", "laplacian", "gff", "sesf", "gacn", "mfifgan", "twostream")


# ------------------------------------------------------------------------------------ rendering
def disc_kernel(radius: float) -> np.ndarray:
    """Anti-aliased uniform disc of ``radius`` px (pixel coverage ≈ clip(r + ½ − distance)), sum 1."""
    if radius < 0.5:
        # Below half a pixel: identity blended towards the 3×3 disc, so blur grows continuously.
        kernel = np.zeros((3, 3), np.float32)
        kernel[1, 1] = 1.0
        if radius > 0:
            ring = disc_kernel(0.5)
            kernel = (1 - 2 * radius) * kernel + 2 * radius * ring
        return kernel
    half = math.ceil(radius + 0.5)
    y, x = np.mgrid[-half : half + 1, -half : half + 1]
    kernel = np.clip(radius + 0.5 - np.hypot(x, y), 0.0, 1.0).astype(np.float32)
    return kernel / kernel.sum()


def blur(image: np.ndarray, radius: float) -> np.ndarray:
    """Disc blur; from 8 px on, on a copy shrunk by ⌊r/4⌋ (the blur leaves nothing finer) for speed."""
    if radius <= 0:
        return image.copy()
    factor = int(radius // 4) if radius >= 8 else 1
    if factor == 1:
        return cv2.filter2D(image, -1, disc_kernel(radius), borderType=cv2.BORDER_REFLECT)
    height, width = image.shape[:2]
    small = cv2.resize(image, (math.ceil(width / factor), math.ceil(height / factor)), interpolation=cv2.INTER_AREA)
    small = cv2.filter2D(small, -1, disc_kernel(radius / factor), borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class Layer:
    """A flat object layer: premultiplied colour needs ``colour`` (H×W×3) and ``alpha`` (H×W)."""

    colour: np.ndarray
    alpha: np.ndarray
    depth: float  # u in [0, 1] (larger = nearer)


@dataclass(frozen=True)
class Scene:
    """Background on a depth ramp plus object layers; depth u in [0, 1] across the focus range."""

    background: np.ndarray  # H×W×3 float32 [0, 1]
    ramp: np.ndarray  # H×W float32: u of the background
    layers: tuple[Layer, ...]  # far to near
    max_blur: float = MAX_BLUR
    #: The background blurred at each of RADII: the same for every frame, only the weights differ.
    cache: dict[float, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    def render(self, focus: float | None) -> np.ndarray:
        """The image focused at u = ``focus`` (None: everything sharp, the ground truth)."""
        if focus is None:
            canvas = self.background.copy()
        else:
            canvas = gather_blur(self.background, self.max_blur * np.abs(self.ramp - focus), self.cache)
        for layer in self.layers:
            radius = 0.0 if focus is None else self.max_blur * abs(layer.depth - focus)
            alpha = blur(layer.alpha, radius)
            premultiplied = blur(layer.colour * layer.alpha[..., None], radius)
            canvas = premultiplied + (1.0 - alpha[..., None]) * canvas
        return np.clip(canvas, 0.0, 1.0).astype(np.float32)

    def depth_edges(self) -> np.ndarray:
        """H×W bool: pixels within HALO_BAND px of a depth discontinuity (an object's outline)."""
        top = np.zeros(self.ramp.shape, np.uint8)
        for index, layer in enumerate(self.layers, start=1):
            top[layer.alpha > 0.5] = index
        edges = cv2.morphologyEx(top, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
        size = 2 * HALO_BAND + 1
        return cv2.dilate(edges.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))) > 0


def gather_blur(image: np.ndarray, radius: np.ndarray, cache: dict[float, np.ndarray] | None = None) -> np.ndarray:
    """Spatially varying disc blur for a surface without self-occlusion: per pixel, linear
    interpolation between ``image`` blurred at the two bracketing radii of ``RADII`` (``cache``
    keeps those blurred copies between calls on the same image)."""
    cache = {} if cache is None else cache

    def blurred(level: float) -> np.ndarray:
        if level not in cache:
            cache[level] = blur(image, level)
        return cache[level]

    top = float(radius.max())
    levels = [r for r in RADII if r < top] + [next((r for r in RADII if r >= top), top)]
    if len(levels) == 1:
        return blurred(levels[0]).copy()
    stack = np.stack([blurred(level) for level in levels])
    edges = np.asarray(levels, np.float32)
    index = np.clip(np.searchsorted(edges, radius, side="right") - 1, 0, len(levels) - 2)
    weight = ((radius - edges[index]) / (edges[index + 1] - edges[index]))[..., None]
    low = np.take_along_axis(stack, index[None, ..., None], axis=0)[0]
    high = np.take_along_axis(stack, (index + 1)[None, ..., None], axis=0)[0]
    return (low + np.clip(weight, 0.0, 1.0) * (high - low)).astype(np.float32)


def breathe(image: np.ndarray, magnification: float) -> np.ndarray:
    """Scale about the image centre (pixel-centre convention), edges replicated."""
    height, width = image.shape[:2]
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    matrix = np.float32([[magnification, 0, cx * (1 - magnification)], [0, magnification, cy * (1 - magnification)]])
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def magnifications(frames: int) -> list[float]:
    """Frame i's magnification relative to the middle frame (the reference)."""
    scales = [1.0 + BREATHING * i / max(frames - 1, 1) for i in range(frames)]
    reference = scales[frames // 2]
    return [s / reference for s in scales]


def focus_positions(frames: int) -> list[float]:
    """Frame i focuses at u = (i + ½)/N: the focus range sampled evenly."""
    return [(i + 0.5) / frames for i in range(frames)]


def render_stack(
    scene: Scene, frames: int, rng: np.random.Generator, noise: float, jpeg: bool
) -> tuple[list[np.ndarray], np.ndarray]:
    """(8-bit RGB frames as the camera writes them, float ground truth)."""
    stack = []
    for focus, magnification in zip(focus_positions(frames), magnifications(frames)):
        image = breathe(scene.render(focus), magnification)
        image = image * (1.0 + rng.uniform(-GAIN_JITTER, GAIN_JITTER))
        image = image + rng.normal(0.0, noise, image.shape).astype(np.float32)
        frame = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
        if jpeg:
            ok, data = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert ok
            frame = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        stack.append(frame)
    return stack, scene.render(None)


# ------------------------------------------------------------------------------------ scenes
def _corpus_rows() -> list[dict[str, str]]:
    with (CORPUS / "manifest.csv").open() as handle:
        return list(csv.DictReader(handle))


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"{path}: cannot be read")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def _cover(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to cover width×height, centre crop."""
    factor = max(width / image.shape[1], height / image.shape[0])
    size = (math.ceil(image.shape[1] * factor), math.ceil(image.shape[0] * factor))
    scaled = cv2.resize(image, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC)
    y0, x0 = (scaled.shape[0] - height) // 2, (scaled.shape[1] - width) // 2
    return np.ascontiguousarray(scaled[y0 : y0 + height, x0 : x0 + width])


def make_scene(rng: np.random.Generator, rows: list[dict[str, str]]) -> tuple[Scene, list[str]]:
    """A corpus background on a tilted depth ramp (far half of the range) and two masked objects."""
    textured = [r for r in rows if float(r["lapvar"] or 0) > 300 and int(r["width"]) >= 384]
    objects = [r for r in rows if r["has_mask"] == "1" and r["fg_frac"] and 0.08 < float(r["fg_frac"]) < 0.35
               and float(r["fg_lapvar"] or 0) > 200]
    background_row = textured[rng.integers(len(textured))]
    background = _cover(_read_rgb(CORPUS / "images" / f"{background_row['id']}.jpg"), WIDTH, HEIGHT)
    # The ramp: a plane tilted in a random direction, u from 0 to 0.55.
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    along = np.cos(angle) * (x - WIDTH / 2) + np.sin(angle) * (y - HEIGHT / 2)
    along = (along - along.min()) / (along.max() - along.min())
    ramp = (0.55 * along).astype(np.float32)
    layers = []
    names = [background_row["id"]]
    for depth_fraction in (0.72, 0.93):
        row = objects[rng.integers(len(objects))]
        names.append(row["id"])
        image = _read_rgb(CORPUS / "images" / f"{row['id']}.jpg")
        mask = cv2.imread(str(CORPUS / "masks" / f"{row['id']}.png"), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
        ys, xs = np.nonzero(mask > 0.5)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        target_height = rng.uniform(0.45, 0.7) * HEIGHT
        factor = min(target_height / (y1 - y0), 0.6 * WIDTH / (x1 - x0))
        size = (max(round((x1 - x0) * factor), 2), max(round((y1 - y0) * factor), 2))
        # INTER_AREA keeps the mask's outline anti-aliased (soft alpha over ~1 px).
        crop_image = cv2.resize(image[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)
        crop_alpha = cv2.resize(mask[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)
        colour = np.zeros((HEIGHT, WIDTH, 3), np.float32)
        alpha = np.zeros((HEIGHT, WIDTH), np.float32)
        top = int(rng.integers(0, HEIGHT - size[1] + 1))
        left = int(rng.integers(0, WIDTH - size[0] + 1))
        colour[top : top + size[1], left : left + size[0]] = crop_image
        alpha[top : top + size[1], left : left + size[0]] = crop_alpha
        layers.append(Layer(colour, alpha, depth_fraction))
    return Scene(background, ramp, tuple(layers)), names


# ------------------------------------------------------------------------------------ measures
def _grey(image: np.ndarray) -> np.ndarray:
    from focusstudio.core.types import to_grey

    return to_grey(image)


def flat_region(truth: np.ndarray) -> np.ndarray:
    """Where the ground truth has no edge: smoothed gradient < 1.5 levels/px, 6 px from any edge."""
    grey = cv2.GaussianBlur(_grey(truth) * 255.0, (0, 0), 2.0)
    gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3) / 8.0, cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    busy = (np.hypot(gx, gy) >= 1.5).astype(np.uint8)
    return cv2.dilate(busy, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (13, 13))) == 0


def measure(
    result: np.ndarray, truth: np.ndarray, edges: np.ndarray, flat: np.ndarray, frames_in_truth: list[np.ndarray]
) -> dict[str, float]:
    """PSNR, SSIM, halo PSNR, seam RMS and sharpness recall of ``result`` (float RGB, truth geometry)."""
    from focusstudio.core.metrics import ssim
    from focusstudio.core.metrics.recall import sharpness_recall

    interior = np.zeros(truth.shape[:2], bool)
    interior[BORDER:-BORDER, BORDER:-BORDER] = True
    # Measure the 8-bit image as written.
    result = np.round(np.clip(result, 0, 1) * 255.0) / 255.0
    error = result.astype(np.float64) - truth.astype(np.float64)
    squared = np.mean(error**2, axis=2)

    def psnr_of(mask: np.ndarray) -> float:
        mse = float(squared[mask].mean()) if mask.any() else float("nan")
        return 10.0 * math.log10(1.0 / mse) if mse > 0 else float("inf")

    box = (slice(BORDER, -BORDER), slice(BORDER, -BORDER))
    ssim_value = ssim(np.round(_grey(result)[box] * 255.0).astype(np.float64),
                      np.round(_grey(truth)[box] * 255.0).astype(np.float64))
    smooth_error = cv2.GaussianBlur((_grey(result) - _grey(truth)).astype(np.float32) * 255.0, (0, 0), 2.0)
    gx = cv2.Sobel(smooth_error, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(smooth_error, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    seam_mask = flat & interior
    seam = float(np.sqrt(np.mean((gx * gx + gy * gy)[seam_mask]))) if seam_mask.any() else float("nan")
    recall = sharpness_recall(result.astype(np.float32), frames_in_truth, valid=interior)
    return {
        "psnr": psnr_of(interior),
        "ssim": float(ssim_value),
        "halo_psnr": psnr_of(edges & interior),
        "seam": seam,
        "recall": recall.recall,
        "lost": recall.lost_fraction,
    }


# ------------------------------------------------------------------------------------ tools
def write_frames(frames: list[np.ndarray], folder: Path, jpeg: bool) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, frame in enumerate(frames):
        # JPEG scenes were compressed when rendered; PNG stores the decoded pixels losslessly.
        path = folder / f"frame_{index:02d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def parse_value(text: str) -> Any:
    """A variant's parameter value: a number where it reads as one, else the string."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def run_methods(paths: list[Path], methods: list[str]) -> dict[str, tuple[np.ndarray | None, float, str]]:
    from focusstudio.core.align import align
    from focusstudio.core.io import load_stack
    from focusstudio.core.pipeline import fuse

    aligned, _ = align(load_stack([str(p) for p in paths]), {"crop": False})
    out: dict[str, tuple[np.ndarray | None, float, str]] = {}
    for method in methods:
        started = time.perf_counter()
        try:
            # "sf:depth_order=back;depth_margin=2" runs a method with parameters (a variant's label).
            name, _, settings = method.partition(":")
            params = dict(item.split("=", 1) for item in settings.split(";") if item)
            result = fuse(aligned, name, {key: parse_value(value) for key, value in params.items()})
            out[method] = (result.image, time.perf_counter() - started, "")
        except Exception as error:  # one failing method is a table cell, not the end of the run
            out[method] = (None, time.perf_counter() - started, f"{type(error).__name__}: {error}")
    return out


def run_enfuse_middle_first(
    paths: list[Path], work: Path, align: bool = True
) -> tuple[np.ndarray | None, float, str]:
    """The enfuse recipe; ``align=False`` for frames already in the truth's geometry."""
    from benchmarks.common import enfuse_recipe, measure

    middle = len(paths) // 2
    ordered = [paths[middle], *paths[:middle], *paths[middle + 1 :]]  # align_image_stack's reference first
    output = work / "enfuse.tif"
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for label, command in enfuse_recipe(ordered, work, output, align=align):
        step = measure(label, command)
        if step.returncode != 0:
            return None, time.perf_counter() - started, f"{label} failed: {step.stderr_tail.strip()[-200:]}"
    image = cv2.imread(str(output), cv2.IMREAD_UNCHANGED)
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    rgb = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB).astype(np.float32) / scale
    return rgb, time.perf_counter() - started, ""


# ------------------------------------------------------------------------------------ driver
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--scenes", type=int, default=3)
    parser.add_argument("--frames", type=int, nargs="+", default=[3, 8, 16, 30])
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--no-enfuse", action="store_true")
    parser.add_argument("--enfuse-ideal", action="store_true",
                        help="also enfuse the frames mapped back by their known magnification (no aligner)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/focusstudio-nframe"))
    parser.add_argument("--report", action="store_true", help="only print the table of --out/results.json")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    rows = _corpus_rows()
    results_path = args.out / "results.json"
    records: list[dict[str, Any]] = json.loads(results_path.read_text()) if results_path.exists() else []
    for scene_index in range(0 if args.report else args.scenes):
        # One generator per (seed, scene): the same scene and optics at every N.
        scene, names = make_scene(np.random.default_rng([args.seed, scene_index]), rows)
        noise = (0.004, 0.008)[scene_index % 2]
        jpeg = scene_index % 2 == 1
        for frames in args.frames:
            stack_rng = np.random.default_rng([args.seed, scene_index, frames])
            stack, truth = render_stack(scene, frames, stack_rng, noise, jpeg)
            folder = args.out / f"scene{scene_index}_n{frames:02d}"
            paths = write_frames(stack, folder / "frames", jpeg)
            cv2.imwrite(str(folder / "gt.png"), cv2.cvtColor(np.round(truth * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
            edges, flat = scene.depth_edges(), flat_region(truth)
            in_truth = [breathe(f.astype(np.float32) / 255.0, 1.0 / m)
                        for f, m in zip(stack, magnifications(frames))]
            outputs = run_methods(paths, methods) if methods else {}
            if not args.no_enfuse:
                outputs["enfuse"] = run_enfuse_middle_first(paths, folder / "enfuse_work")
            if args.enfuse_ideal:
                # Separates enfuse's fusion from align_image_stack's registration errors.
                # Clipped: cubic resampling overshoots past 1 (255.5 would wrap round to 0 in uint8).
                ideal = write_frames([np.round(np.clip(f, 0, 1) * 255).astype(np.uint8) for f in in_truth],
                                     folder / "ideal", jpeg)
                outputs["enfuse_ideal"] = run_enfuse_middle_first(ideal, folder / "enfuse_ideal_work", align=False)
            for tool, (image, seconds, error) in outputs.items():
                record: dict[str, Any] = {"scene": scene_index, "frames": frames, "tool": tool, "seconds": seconds,
                                          "sources": names, "noise": noise, "jpeg": jpeg}
                if image is None:
                    record["error"] = error
                else:
                    record.update(measure(image, truth, edges, flat, in_truth))
                    cv2.imwrite(str(folder / f"{tool}.png"),
                                cv2.cvtColor(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
                records = [r for r in records if (r["scene"], r["frames"], r["tool"]) != (scene_index, frames, tool)]
                records.append(record)
                print(f"scene {scene_index} N={frames} {tool}: " + (error or ", ".join(
                    f"{k} {record[k]:.4g}" for k in ("psnr", "ssim", "halo_psnr", "seam", "recall", "lost"))),
                    file=sys.stderr)
            args.out.mkdir(parents=True, exist_ok=True)
            results_path.write_text(json.dumps(records, indent=1))
    print(table(records))
    return 0


def table(records: list[dict[str, Any]]) -> str:
    """Markdown: per tool and N, the means over scenes."""
    known = [*METHODS, "enfuse", "enfuse_ideal"]
    present = list(dict.fromkeys(r["tool"] for r in records))
    # variants ("gacn:strategy=serial") after the plain tools, in the order they were run
    tools = [t for t in known if t in present] + [t for t in present if t not in known]
    counts = sorted({r["frames"] for r in records})
    lines = ["| tool | N | PSNR dB | SSIM | halo PSNR dB | seam | recall | lost % | scenes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for tool in tools:
        for n in counts:
            done = [r for r in records if r["tool"] == tool and r["frames"] == n and "psnr" in r]
            failed = [r for r in records if r["tool"] == tool and r["frames"] == n and "error" in r]
            if not done:
                if failed:
                    lines.append(f"| {tool} | {n} | failed | | | | | | {len(failed)} |")
                continue

            def mean(key: str, rows: list[dict[str, Any]] = done) -> float:
                return float(np.mean([r[key] for r in rows]))

            lines.append(f"| {tool} | {n} | {mean('psnr'):.2f} | {mean('ssim'):.4f} | {mean('halo_psnr'):.2f} | "
                         f"{mean('seam'):.3f} | {mean('recall'):.3f} | {100 * mean('lost'):.1f} | {len(done)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
