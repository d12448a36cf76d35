"""Speed and peak memory of ``focusstudio fuse`` on synthetic stacks of a given size and depth,
side by side with enfuse on the same stacks.

    python -m benchmarks.bench_stacks --preset tiff16-2700x1800-20 --methods sf
    python -m benchmarks.bench_stacks --preset jpeg-24mp-30 --methods sf --enfuse --setup
    python -m benchmarks.bench_stacks --width 1200 --height 800 --frames 8 --format png

A stack is a multi-scale random texture with hard-edged discs over a smooth depth map; frame i is
sharp where the depth equals its focus distance and increasingly blurred (up to ``max_blur`` px
σ) elsewhere. The all-in-focus scene is saved as ``gt.*`` so PSNR/SSIM against the truth can be
reported. ``--breathing`` adds a per-frame magnification change (focus breathing) so that the
alignment stage has work to do. Stacks are cached in ``--cache`` and rebuilt only when the spec
changes.

Not a test: numbers depend on the machine and its load. Each command runs in its own process
under ``/usr/bin/time -v`` (peak RSS of that process only).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.common import (
    Measurement,
    cli_supports,
    ensure_peer_tools,
    format_table,
    image_dtype,
    quality,
    run_enfuse,
    run_focusstudio,
)


@dataclass(frozen=True)
class StackSpec:
    """What a synthetic stack looks like."""

    width: int
    height: int
    frames: int
    dtype: str = "uint8"  # uint8 or uint16
    fmt: str = "png"  # jpg, png or tif
    channels: int = 3
    breathing: float = 0.0  # magnification change per frame (0.002 = 0.2 %)
    max_blur: float = 0.0  # σ of the strongest defocus (px); 0 = scale with the frame size
    seed: int = 0

    @property
    def name(self) -> str:
        depth = "8" if self.dtype == "uint8" else "16"
        motion = f"_b{self.breathing:g}" if self.breathing else ""
        return f"{self.width}x{self.height}_{self.frames}f_{depth}bit_{self.fmt}_{self.channels}c{motion}_s{self.seed}"

    @property
    def blur(self) -> float:
        return self.max_blur or 4.0 * max(self.width, self.height) / 2000.0


PRESETS = {
    # The "30 × 24 MP frames, 8-bit": JPEG as a camera writes them.
    "jpeg-24mp-30": StackSpec(6000, 4000, 30, "uint8", "jpg"),
    "png-24mp-30": StackSpec(6000, 4000, 30, "uint8", "png"),
    # The "20-frame 16-bit microscope" stack.
    "tiff16-2700x1800-20": StackSpec(2700, 1800, 20, "uint16", "tif"),
    "tiff16-2700x1800-20-grey": StackSpec(2700, 1800, 20, "uint16", "tif", channels=1),
    # A quick smoke run.
    "small": StackSpec(1200, 800, 8, "uint8", "png"),
}


# ------------------------------------------------------------------------------------ synthesis
def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Random values on a grid of ``cell`` px, upsampled smoothly to height×width (float32)."""
    rows, cols = max(2, math.ceil(height / cell) + 1), max(2, math.ceil(width / cell) + 1)
    grid = rng.random((rows, cols)).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def synthesize_scene(spec: StackSpec) -> tuple[np.ndarray, np.ndarray]:
    """(all-in-focus scene float32 H×W×C in [0,1], depth map float32 H×W in [0,1])."""
    rng = np.random.default_rng(spec.seed)
    height, width = spec.height, spec.width
    unit = max(width, height) / 2000.0
    scene = np.zeros((height, width, spec.channels), np.float32)
    for channel in range(spec.channels):
        for cell, amplitude in ((2.0, 0.3), (6.0 * unit, 0.25), (25.0 * unit, 0.2), (120.0 * unit, 0.25)):
            scene[..., channel] += amplitude * _smooth_noise(rng, height, width, cell)
    # Hard-edged discs: the edges are where fusion errors and ghosting show.
    for _ in range(int(300 * unit)):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        radius = int(rng.integers(int(5 * unit) + 2, int(60 * unit) + 4))
        colour = [float(v) for v in rng.random(spec.channels)]
        cv2.circle(scene, centre, radius, colour + [0.0] * (4 - spec.channels), thickness=-1, lineType=cv2.LINE_AA)
    scene = np.clip((scene - scene.min()) / max(float(scene.max() - scene.min()), 1e-6), 0.0, 1.0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    depth = 0.6 * (xx / width) + 0.4 * (yy / height) + 0.5 * (_smooth_noise(rng, height, width, 700 * unit) - 0.5)
    depth = (depth - depth.min()) / max(float(depth.max() - depth.min()), 1e-6)
    return scene, depth.astype(np.float32)


def render_frames(spec: StackSpec, scene: np.ndarray, depth: np.ndarray, folder: Path) -> list[Path]:
    """Write the frames: each pixel blurred by |depth − focus_i| via blur levels blended per pixel."""
    sigmas = [0.0, spec.blur / 4, spec.blur / 2, spec.blur]
    levels = [scene if s == 0 else cv2.GaussianBlur(scene, (0, 0), s).reshape(scene.shape) for s in sigmas]
    paths = []
    middle = (spec.frames - 1) / 2.0
    for i in range(spec.frames):
        focus = i / max(spec.frames - 1, 1)
        # Blur level (0..3) grows with the distance from the focal plane, in steps of one frame.
        position = np.clip(np.abs(depth - focus) * (spec.frames - 1), 0.0, len(levels) - 1.0)
        frame = np.zeros_like(scene)
        for level, image in enumerate(levels):
            weight = np.clip(1.0 - np.abs(position - level), 0.0, 1.0)[..., None]
            frame += weight * image
        if spec.breathing:
            frame = _magnify(frame, 1.0 + spec.breathing * (i - middle))
        paths.append(_write(folder / f"frame_{i:02d}.{spec.fmt}", frame, spec))
    return paths


def _magnify(image: np.ndarray, scale: float) -> np.ndarray:
    height, width = image.shape[:2]
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    matrix = np.array([[scale, 0.0, cx - scale * cx], [0.0, scale, cy - scale * cy]])
    warped = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return np.clip(warped.reshape(image.shape), 0.0, 1.0)


def _write(path: Path, image: np.ndarray, spec: StackSpec) -> Path:
    scale = 255.0 if spec.dtype == "uint8" else 65535.0
    data = np.round(np.clip(image, 0.0, 1.0) * scale).astype(spec.dtype)
    if data.shape[2] == 1:
        data = data[..., 0]
    if spec.fmt == "tif":
        import tifffile

        tifffile.imwrite(path, data, photometric="rgb" if data.ndim == 3 else "minisblack")
        return path
    bgr = data[..., ::-1] if data.ndim == 3 else data
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if spec.fmt == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    if not cv2.imwrite(str(path), np.ascontiguousarray(bgr), params):
        raise OSError(f"could not write {path}")
    return path


def build_stack(spec: StackSpec, cache: Path) -> tuple[list[Path], Path]:
    """(frame paths, ground-truth path), building them unless the cache holds this spec."""
    folder = cache / spec.name
    manifest = folder / "spec.json"
    gt_path = folder / f"gt.{'tif' if spec.fmt == 'tif' else 'png'}"
    frames = [folder / f"frame_{i:02d}.{spec.fmt}" for i in range(spec.frames)]
    if manifest.exists() and json.loads(manifest.read_text()) == asdict(spec) and all(p.exists() for p in frames):
        return frames, gt_path
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    scene, depth = synthesize_scene(spec)
    _write(gt_path, scene, StackSpec(**{**asdict(spec), "fmt": gt_path.suffix[1:]}))
    render_frames(spec, scene, depth, folder)
    manifest.write_text(json.dumps(asdict(spec)))
    print(f"built {spec.name} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return frames, gt_path


# ------------------------------------------------------------------------------------ running
def bench(spec: StackSpec, args: argparse.Namespace) -> list[dict[str, Any]]:
    frames, gt_path = build_stack(spec, args.cache)
    out_dir = args.cache / "results" / spec.name
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "tif" if spec.dtype == "uint16" else "png"
    moving = spec.breathing != 0.0
    align_flags: list[str] = []
    if cli_supports("--no-align"):
        # A still synthetic stack needs no alignment: compare the fusion itself with the peer.
        align_flags = ["--align"] if moving else ["--no-align"]
    extra = [*align_flags, *args.extra]
    rows: list[dict[str, Any]] = []
    measurements: list[tuple[Measurement, Path]] = []
    for method in args.methods:
        for limit in args.memory_limits:
            flags = extra if limit == "default" else [*extra, "--memory-limit", limit]
            label = f"focusstudio {method}" + ("" if limit == "default" else f" (--memory-limit {limit})")
            output = out_dir / f"focusstudio_{method}_{limit}.{suffix}"
            measured = run_focusstudio(label, frames, output, method, flags)
            measurements.append((measured, output))
    if args.enfuse and ensure_peer_tools(args.setup):
        output = out_dir / "enfuse.tif"
        measured, _ = run_enfuse("enfuse", frames, out_dir / "enfuse_work", output, align=moving)
        measurements.append((measured, output))
    baseline = next((m for m, _ in measurements if m.label == "enfuse"), None)
    for measured, output in measurements:
        row: dict[str, Any] = {
            "stack": spec.name,
            "tool": measured.label,
            "wall_s": measured.wall_seconds,
            "peak_rss_mib": measured.max_rss_mib,
            "rc": measured.returncode,
        }
        if measured.returncode != 0:
            row["error"] = measured.stderr_tail.strip().splitlines()[-1:] or ["?"]
        elif output.exists():
            row["out_dtype"] = image_dtype(output)
            if baseline is not None and baseline is not measured and baseline.returncode == 0:
                row["time_vs_enfuse"] = measured.wall_seconds / max(baseline.wall_seconds, 1e-9)
                row["rss_vs_enfuse"] = measured.max_rss_bytes / max(baseline.max_rss_bytes, 1)
            if args.metrics:
                try:
                    row.update(quality(output, list(frames), gt_path, metrics=args.metrics, longest=args.metric_size))
                except ValueError as error:
                    row["metrics_note"] = str(error)
        row["details"] = measured.to_json()
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", action="append", choices=sorted(PRESETS), help="a named stack (repeatable)")
    parser.add_argument("--width", type=int)
    parser.add_argument("--height", type=int)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--dtype", choices=("uint8", "uint16"), default="uint8")
    parser.add_argument("--format", dest="fmt", choices=("jpg", "png", "tif"), default="png")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=3)
    parser.add_argument("--breathing", type=float, default=0.0, help="magnification change per frame")
    parser.add_argument("--methods", type=lambda s: s.split(","), default=["sf"], help="comma-separated")
    parser.add_argument("--memory-limits", type=lambda s: s.split(","), default=["default"],
                        help="run each method once per budget, e.g. default,1500M")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more 'focusstudio fuse' flags")
    parser.add_argument("--enfuse", action="store_true", help="also run the enfuse recipe on the same stack")
    parser.add_argument("--setup", action="store_true", help="apt-get install enfuse, hugin-tools, time if missing")
    parser.add_argument("--metrics", type=lambda s: [m for m in s.split(",") if m], default=[],
                        help="quality metrics, e.g. Qabf,SF (PSNR/SSIM vs the truth are added)")
    parser.add_argument("--metric-size", type=int, default=1024, help="metrics on copies of this longest edge")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/focusstudio-bench"))
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    specs = [PRESETS[name] for name in args.preset or []]
    if args.width and args.height:
        specs.append(StackSpec(args.width, args.height, args.frames, args.dtype, args.fmt, args.channels,
                               args.breathing))
    if not specs:
        parser.error("give --preset or --width/--height")
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, python {platform.python_version()}")
    rows = []
    for spec in specs:
        rows.extend(bench(spec, args))
    columns = ["stack", "tool", "wall_s", "peak_rss_mib", "out_dtype", "time_vs_enfuse", "rss_vs_enfuse",
               *[m for m in ("PSNR", "SSIM", *args.metrics)], "rc"]
    print(format_table(rows, columns))
    for row in rows:
        if "error" in row:
            print(f"{row['tool']} on {row['stack']} failed: {row['error']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
