"""Issue 20's GPU checks in one prepared run for a lent device: CUDA against CPU, timings, OOM fallback.

On the device machine (the repository root, nothing else needed: the frames are made here):

    python -m benchmarks.gpu_verify --out "$OUT"                    # 24 MP pair + 30 × 24 MP stack
    python -m benchmarks.gpu_verify --device cpu --size 960x640 --frames 4 --out /tmp/gv   # dry run

Steps, each written to ``--out`` as soon as it ends (``results.json``, ``results.md``), so a run
stopped by the device's time limit still leaves what it measured:

1. frames: a synthetic scene (multi-scale colour texture over a smooth depth ramp with raised
   discs), each frame focused at its own depth by blending pre-blurred copies; JPEG q95.
2. pair: every deep method fuses a 2-frame stack in process on ``--device`` twice (the first run
   warms the kernels; the second's timings are reported) and once on the CPU; the 8-bit results
   are compared (max / mean abs difference, share of samples off by more than 2 levels, PSNR).
   Peak device memory is recorded.
3. stack: ``focusstudio fuse FOLDER --no-align`` of the N-frame stack per method in a process of
   its own: wall time with start-up and decoding, as a user runs it.
4. OOM fallback: the device memory is capped (``torch.cuda.set_per_process_memory_fraction``) so
   that the first attempts fail; the run must still finish (tiles, then the CPU), say so in its
   notes, and equal the uncapped result within the same tolerance.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

DEEP_METHODS = ("sesf", "gacn", "mfifgan", "twostream")
STACK_METHODS = ("sf", *DEEP_METHODS)
#: Samples of two 8-bit results may differ by a level or two where a decision flips on float
#: noise (different kernels on CPU and GPU); more than this share off by > 2 levels is a failure.
MAX_SHARE_OFF = 0.001
BLUR_SIGMAS = (0.0, 1.0, 2.0, 4.0, 8.0)


def scene(width: int, height: int, seed: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(all-in-focus colour image in [0, 1], depth in [0, 1]) of the synthetic scene."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.float32)
    for scale in (2, 6, 18, 54):  # texture at several scales, like foliage or print
        small = rng.random((max(height // scale, 2), max(width // scale, 2), 3), dtype=np.float32)
        image += cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC) / 4
    image = np.clip((image - image.mean()) * 2.0 + 0.5, 0, 1)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    depth = 0.15 + 0.7 * cols / max(width - 1, 1)
    for cy, cx, radius, level in ((0.3, 0.25, 0.18, 0.95), (0.7, 0.7, 0.2, 0.05)):
        inside = (rows - cy * height) ** 2 + (cols - cx * width) ** 2 < (radius * height) ** 2
        depth[inside] = level
    return image, depth


def make_frames(width: int, height: int, count: int, folder: Path) -> list[Path]:
    """``count`` JPEG frames of the scene, frame k focused at depth (k + ½)/count."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"frame_{k:03d}.jpg" for k in range(count)]
    if all(path.exists() for path in paths):
        return paths
    image, depth = scene(width, height)
    # Blur per pixel ≈ 12 px per unit of depth from the focus plane, as a blend of the two copies
    # whose σ brackets it (σ ≈ radius / 2).
    blurred = [image if s == 0 else cv2.GaussianBlur(image, (0, 0), s) for s in BLUR_SIGMAS]
    levels = np.asarray(BLUR_SIGMAS, np.float32)
    for k, path in enumerate(paths):
        sigma = np.minimum(np.abs(depth - (k + 0.5) / count) * 6.0, levels[-1])
        upper = np.clip(np.searchsorted(levels, sigma, side="right"), 1, len(levels) - 1)
        frame = np.zeros_like(image)
        for index in range(1, len(levels)):
            where = upper == index
            low, high = levels[index - 1], levels[index]
            t = ((sigma - low) / (high - low))[..., None] * where[..., None]
            frame += where[..., None] * blurred[index - 1] * (1 - t) + blurred[index] * t
        cv2.imwrite(str(path), np.round(frame * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return paths


def compare(first: np.ndarray, second: np.ndarray) -> dict[str, float]:
    """Differences of two 8-bit results."""
    difference = np.abs(first.astype(np.int16) - second.astype(np.int16))
    mse = float(np.mean(difference.astype(np.float64) ** 2))
    return {
        "max_abs": int(difference.max()),
        "mean_abs": float(difference.mean()),
        "share_off_2": float(np.mean(difference > 2)),
        "psnr_db": float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse),
    }


class Report:
    """Results written after every step, so a stopped run keeps what it measured."""

    def __init__(self, out: Path) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.data: dict[str, Any] = {"environment": {}, "pair": [], "stack": [], "oom": []}

    def add(self, section: str, row: dict[str, Any]) -> None:
        self.data[section].append(row)
        print(section, json.dumps(row, default=str), flush=True)
        self.write()

    def write(self) -> None:
        (self.out / "results.json").write_text(json.dumps(self.data, indent=1, default=str))
        lines = [f"# GPU checks: {self.data['environment'].get('device_name', '?')}", ""]
        for section in ("pair", "stack", "oom"):
            rows = self.data[section]
            if rows:
                keys = list(dict.fromkeys(key for row in rows for key in row))
                lines += [f"## {section}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
                lines += ["| " + " | ".join(_cell(row.get(key)) for key in keys) + " |" for row in rows]
                lines.append("")
        (self.out / "results.md").write_text("\n".join(lines))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def fuse_in_process(paths: list[Path], method: str, device: str) -> tuple[np.ndarray, dict[str, Any]]:
    """(8-bit result, timings and notes) of one in-process fusion."""
    import torch

    from focusstudio.core.io.stacks import load_stack
    from focusstudio.core.pipeline import fuse

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = fuse(load_stack(paths), method, device=device)
    wall = time.perf_counter() - started
    info: dict[str, Any] = {"wall_s": wall, "device_used": result.device, "notes": list(result.notes)}
    info.update({f"t_{key}": value for key, value in result.timings.items()})
    if device.startswith("cuda"):
        info["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result.as_dtype("uint8"), info


def check_pair(report: Report, paths: list[Path], device: str, methods: list[str]) -> None:
    for method in methods:
        _, warm = fuse_in_process(paths, method, device)
        image, timed = fuse_in_process(paths, method, device)
        reference, on_cpu = fuse_in_process(paths, method, "cpu")
        difference = compare(image, reference)
        report.add("pair", {
            "method": method, "device": device, "first_wall_s": warm["wall_s"], "wall_s": timed["wall_s"],
            "fusion_s": timed.get("t_total"), "peak_gpu_mib": timed.get("peak_gpu_mib"),
            "cpu_wall_s": on_cpu["wall_s"], **difference,
            "equal_within_tolerance": difference["share_off_2"] <= MAX_SHARE_OFF,
            "timings": {k: v for k, v in timed.items() if k.startswith("t_")},
        })


def check_stack(report: Report, folder: Path, out: Path, device: str, methods: list[str], timeout: int) -> None:
    for method in methods:
        output = out / f"stack_{method}.jpg"
        command = [sys.executable, "-m", "focusstudio", "fuse", str(folder), "-o", str(output), "-m", method,
                   "--device", device, "--no-align", "--force", "--quiet"]
        started = time.perf_counter()
        try:
            completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
            rc, tail = completed.returncode, (completed.stderr or completed.stdout)[-300:]
        except subprocess.TimeoutExpired:
            rc, tail = 124, f"stopped after {timeout} s"
        report.add("stack", {"method": method, "device": device, "frames": len(list(folder.glob("*.jpg"))),
                             "wall_s": time.perf_counter() - started, "rc": rc, "tail": tail.strip()})
        output.unlink(missing_ok=True)  # the picture is not needed back, only the time


def check_oom(report: Report, paths: list[Path], device: str, method: str, caps_mib: list[int]) -> None:
    import torch

    reference, _ = fuse_in_process(paths, method, device)
    total = torch.cuda.get_device_properties(torch.device(device)).total_memory
    for cap in caps_mib:
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap * 2**20 / total), torch.device(device))
        try:
            image, info = fuse_in_process(paths, method, device)
            difference = compare(image, reference)
            retried = any("out of memory" in note for note in info["notes"])
            report.add("oom", {"method": method, "cap_mib": cap, "wall_s": info["wall_s"],
                               "device_used": info["device_used"], "retried": retried,
                               "notes": info["notes"], **difference,
                               "equal_within_tolerance": difference["share_off_2"] <= MAX_SHARE_OFF})
        except Exception as error:  # the check's point: report any failure instead of stopping
            report.add("oom", {"method": method, "cap_mib": cap, "error": f"{type(error).__name__}: {error}"[:300]})
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0, torch.device(device))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/gpu-verify")))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", default="6000x4000")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--methods", nargs="+", default=list(DEEP_METHODS))
    parser.add_argument("--work", type=Path, default=Path("/tmp/focusstudio-gpu-verify"), help="where frames are made")
    parser.add_argument("--steps", nargs="+", default=["pair", "stack", "oom"], choices=["pair", "stack", "oom"])
    parser.add_argument("--timeout", type=int, default=240, help="seconds per stack run")
    parser.add_argument("--oom-caps", type=int, nargs="+", default=[600, 40], help="device memory caps, MiB")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    import torch

    report = Report(args.out)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print("no CUDA device: nothing to verify", file=sys.stderr)
        return 2
    report.data["environment"] = {
        "torch": torch.__version__, "device": args.device, "cpu_count": os.cpu_count(), "size": args.size,
        "device_name": torch.cuda.get_device_name() if cuda else "cpu",
    }
    report.write()
    started = time.perf_counter()
    pair = make_frames(width, height, 2, args.work / f"pair_{args.size}")
    stack_folder = args.work / f"stack_{args.size}_{args.frames}"
    if "stack" in args.steps:
        make_frames(width, height, args.frames, stack_folder)
    report.data["environment"]["frames_made_s"] = time.perf_counter() - started
    if "pair" in args.steps:
        check_pair(report, pair, args.device, args.methods)
    if "stack" in args.steps:
        methods = [m for m in STACK_METHODS if m in args.methods or m == "sf"]
        check_stack(report, stack_folder, args.out, args.device, methods, args.timeout)
    if "oom" in args.steps and cuda:
        check_oom(report, pair, args.device, args.methods[0], args.oom_caps)
    report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
