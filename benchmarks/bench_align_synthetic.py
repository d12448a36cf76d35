"""Registration accuracy on synthetic stacks with known motion: focusstudio against
``align_image_stack -m`` (hugin-tools) on the same frames, in pixels of misregistration.

    python -m benchmarks.bench_align_synthetic                       # 2 sizes × 2 seeds
    python -m benchmarks.bench_align_synthetic --before /tmp/base    # also an older tree, alternated
    python -m benchmarks.bench_align_synthetic --variant affine:model=affine  # other settings too

A stack: a multi-scale random texture, defocused per frame (frame k sharp in the k-th vertical band,
blurred away from it, as in tests/core/test_align.py), then rendered with a known frame→reference
similarity (focus breathing: scale 0.985–1.02, rotation ±0.5°, shifts of a few px), written as 8-bit
PNG. The *ideal* aligned frame k is the same defocused scene rendered in the reference geometry, so
a perfect registration reproduces it up to resampling. Each tool's aligned frame k is then registered
onto the ideal one with ECC (homography, full resolution, on the area both cover; the two images have
the same content and focus, so this fit is accurate to ~0.01 px): the residual warp is the tool's
misregistration, given as the RMS displacement over the frame and the largest at its corners.
align_image_stack is given the middle frame first (its reference), so both tools map onto the same
geometry. Lower is better. Timings here are for orientation only (see bench_align for speed).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import REPO_ROOT

#: (scale, rotation in degrees, shift x, shift y) of each frame; the middle one is the reference.
MOTION = ((0.985, -0.3, -2.5, 1.5), (0.990, 0.2, 1.2, -0.7), (1.000, 0.0, 0.0, 0.0),
          (1.010, 0.4, -1.7, 2.2), (1.020, -0.5, 3.1, 0.4))
SIZES = ((640, 480), (1600, 1200))
#: Pixels left out at the border of the common area (resampling and defocus edge effects).
MARGIN = 8


def textured_scene(height: int, width: int, seed: int) -> np.ndarray:
    """Multi-scale random texture, so every frame has detail at several scales (also the
    alignment tests' scene)."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width), np.float32)
    for step, amplitude in ((2, 0.35), (6, 0.3), (20, 0.35)):
        noise = rng.random((height // step + 2, width // step + 2)).astype(np.float32)
        image += amplitude * cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(image, 0.0, 1.0)


def band_defocus(image: np.ndarray, index: int, count: int, strength: float = 2.0) -> np.ndarray:
    """Frame ``index`` of ``count`` is sharp in the ``index``-th vertical band and increasingly
    blurred away from it (also the alignment tests' defocus)."""
    width = image.shape[1]
    distance = np.abs(np.arange(width)[None, :] / width - (index + 0.5) / count)
    sigma = np.broadcast_to(strength * distance * count / 2.0, image.shape)
    out = image.copy()
    for level in (1.0, 2.0, 3.0):
        weight = np.clip(sigma - (level - 1.0), 0.0, 1.0)
        out = out * (1.0 - weight) + cv2.GaussianBlur(image, (0, 0), level) * weight
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _similarity(width: int, height: int, scale: float, degrees: float, dx: float, dy: float) -> np.ndarray:
    """Frame → reference: rotation and scale about the centre, then a shift (px at 640 wide, scaled)."""
    cx, cy, unit = (width - 1) / 2.0, (height - 1) / 2.0, width / 640.0
    c, s = scale * math.cos(math.radians(degrees)), scale * math.sin(math.radians(degrees))
    return np.array([[c, -s, cx + unit * dx - c * cx + s * cy], [s, c, cy + unit * dy - s * cx - c * cy], [0, 0, 1]])


def write_stack(folder: Path, width: int, height: int, seed: int) -> list[np.ndarray]:
    """Write the frames (PNG); returns the ideal aligned frames (grey float, reference geometry)."""
    margin = width // 16  # the scene extends past the reference frame: every frame pixel is real content
    scene = textured_scene(height + 2 * margin, width + 2 * margin, seed)
    offset = np.array([[1.0, 0.0, margin], [0.0, 1.0, margin], [0.0, 0.0, 1.0]])
    tint = np.array([0.9, 1.0, 0.8], np.float32)  # colour frames, as a camera gives

    def as_uint8(grey: np.ndarray) -> np.ndarray:
        return np.round(np.clip(grey[..., None] * tint, 0, 1) * 255).astype(np.uint8)  # RGB

    ideals = []
    for index, motion in enumerate(MOTION):
        focused = band_defocus(scene, index, len(MOTION))
        matrix = offset @ _similarity(width, height, *motion)
        # Frame pixel p shows the scene at reference position M·p.
        frame = cv2.warpAffine(focused, matrix[:2], (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
        cv2.imwrite(str(folder / f"frame_{index:02d}.png"), as_uint8(frame)[..., ::-1])
        ideal = as_uint8(focused[margin : margin + height, margin : margin + width])
        ideals.append(cv2.cvtColor(ideal, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255)
    return ideals


def misregistration(aligned: np.ndarray, ideal: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(RMS over the frame, max at the corners) in px of the warp that registers ``aligned`` onto ``ideal``."""
    height, width = ideal.shape
    valid = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=MARGIN)
    warp = np.eye(3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-7)
    _, warp = cv2.findTransformECC(ideal, aligned.astype(np.float32), warp, cv2.MOTION_HOMOGRAPHY, criteria, valid, 1)
    ys, xs = np.mgrid[0:height:8, 0:width:8]
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)]).astype(np.float64)
    corners = np.array([[0, width - 1, width - 1, 0], [0, 0, height - 1, height - 1], [1, 1, 1, 1]], float)

    def moved(p: np.ndarray) -> np.ndarray:
        q = warp.astype(np.float64) @ p
        return np.linalg.norm(q[:2] / q[2] - p[:2], axis=0)

    return float(np.sqrt(np.mean(moved(points) ** 2))), float(moved(corners).max())


def child(folder: str, settings: dict[str, object]) -> None:
    """One focusstudio run (the tree on PYTHONPATH): aligned grey frames and masks to ``folder``."""
    from focusstudio.core.align import AlignOptions, apply_alignment, estimate_alignment
    from focusstudio.core.io import load_stack
    from focusstudio.core.progress import run_to_completion

    paths = sorted(Path(folder).glob("frame_*.png"))
    started, cpu_started = time.perf_counter(), time.process_time()
    frames = load_stack([str(p) for p in paths])
    alignment = run_to_completion(estimate_alignment(frames, AlignOptions.from_params(settings)))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    aligned = apply_alignment(frames, alignment, crop=False)
    out = Path(folder) / "ours"
    out.mkdir(exist_ok=True)
    for i in range(len(aligned)):
        np.save(out / f"{i}.npy", aligned.load(i, grey=True))
        np.save(out / f"{i}_mask.npy", alignment.frame_coverage(i))
    print(json.dumps({"estimate_s": seconds, "estimate_cpu_s": cpu}))


def run_ours(
    tree: Path, folder: Path, settings: dict[str, object]
) -> tuple[dict[str, float], list[np.ndarray], list[np.ndarray]]:
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{REPO_ROOT}"}
    script = str(Path(__file__).resolve())
    command = [sys.executable, script, "--child", str(folder), "--settings", json.dumps(settings)]
    completed = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True, check=True)
    timing = json.loads(completed.stdout.strip().splitlines()[-1])
    count = len(MOTION)
    greys = [np.load(folder / "ours" / f"{i}.npy") for i in range(count)]
    masks = [np.load(folder / "ours" / f"{i}_mask.npy") for i in range(count)]
    shutil.rmtree(folder / "ours")
    return timing, greys, masks


def run_peer(folder: Path) -> tuple[dict[str, float], list[np.ndarray], list[np.ndarray]]:
    paths = sorted(folder.glob("frame_*.png"))
    middle = len(paths) // 2
    order = [middle, *range(middle), *range(middle + 1, len(paths))]  # its reference first
    prefix = str(folder / "aisk_")
    started = time.perf_counter()
    subprocess.run(["align_image_stack", "-m", "-a", prefix, *(str(paths[i]) for i in order)],
                   capture_output=True, check=True)
    seconds = time.perf_counter() - started
    greys: list[np.ndarray] = [np.empty(0)] * len(paths)
    masks: list[np.ndarray] = [np.empty(0)] * len(paths)
    for position, index in enumerate(order):
        image = cv2.imread(f"{prefix}{position:04d}.tif", cv2.IMREAD_UNCHANGED)
        scale = 65535.0 if image.dtype == np.uint16 else 255.0
        greys[index] = cv2.cvtColor(image[..., :3].astype(np.float32) / scale, cv2.COLOR_BGR2GRAY)
        masks[index] = image[..., 3] > 0 if image.shape[-1] == 4 else np.ones(image.shape[:2], bool)
    return {"estimate_warp_s": seconds}, greys, masks


def main(argv: list[str] | None = None) -> int:
    from benchmarks.bench_align import alignment_parser

    parser = alignment_parser(__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, json.loads(args.settings))
        return 0
    from benchmarks.bench_align import variant_settings

    variants: list[tuple[str, Path | None, dict[str, object]]] = [("after", REPO_ROOT, {})]
    variants += [(label, REPO_ROOT, settings) for label, settings in map(variant_settings, args.variant)]
    if args.before is not None:
        variants.insert(0, ("before", args.before, {}))
    if not args.no_peer and shutil.which("align_image_stack") is not None:
        variants.append(("align_image_stack", None, {}))
    summary: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for round_index, ((width, height), seed) in enumerate((s, seed) for s in SIZES for seed in args.seeds):
        with tempfile.TemporaryDirectory(prefix="bench_align_synth_") as work:
            folder = Path(work)
            ideals = write_stack(folder, width, height, seed)
            order = variants if round_index % 2 == 0 else list(reversed(variants))
            for label, tree, settings in order:
                timing, greys, masks = run_peer(folder) if tree is None else run_ours(tree, folder, settings)
                errors = [misregistration(greys[i], ideals[i], masks[i]) for i in range(len(MOTION))
                          if i != len(MOTION) // 2]
                summary.setdefault((f"{width}x{height}", label), []).extend(errors)
                print(f"{width}x{height} seed {seed} {label:17s} {json.dumps(timing)} px error RMS/corner "
                      + " ".join(f"{rms:.3f}/{corner:.3f}" for rms, corner in errors), flush=True)
    print("\nmisregistration over the non-reference frames of every seed (px; mean RMS, mean and max corner)")
    for (size, label), errors in summary.items():
        rms = [e[0] for e in errors]
        corner = [e[1] for e in errors]
        print(f"{size:10s} {label:17s} RMS {statistics.fmean(rms):.3f}  corner {statistics.fmean(corner):.3f} "
              f"(max {max(corner):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
