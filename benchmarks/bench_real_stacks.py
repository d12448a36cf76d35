"""Sharpness recall of every method's default N-frame result on the real stacks, and enfuse's.

    python -m benchmarks.bench_real_stacks                          # all stacks, all methods, enfuse
    python -m benchmarks.bench_real_stacks --stacks pcb macro_dsc_28 --methods sf,gacn --max-side 1200
    python -m benchmarks.bench_real_stacks --stacks pcb --methods sf --no-enfuse --set sf_radius=2 --out /tmp/r2

Issue 15: real stacks (``shared/stacks/*`` and ``shared/data/focus_stack/pcb``; frames NOT aligned)
come out with blurred patches that pair metrics do not see. Per stack:

1. the frames are downscaled once to ≤ ``--max-side`` px (INTER_AREA, saved as PNG in ``--out``),
   so every tool fuses the same pixels;
2. focusstudio: the frames are aligned once with the default alignment (``focusstudio fuse``'s
   default for 3+ frames, cropped to the common area) and every method fuses that aligned stack
   with its default parameters through the API (``run_fusion``, the CLI's code path);
3. enfuse: ``align_image_stack -m -a aligned_ frames...`` then ``enfuse --exposure-weight=0
   --saturation-weight=0 --contrast-weight=1 --hard-mask --contrast-window-size=5 -o enfuse.tif
   aligned_*.tif`` (benchmarks.common.enfuse_recipe);
4. sharpness recall (focusstudio.core.metrics.recall) of each result against the frames it fused,
   in its own geometry: focusstudio against its aligned frames (cropped), enfuse against
   align_image_stack's output, blocks outside any frame's alpha excluded.

Writes each result, its lost-block map and ``results.json`` under ``--out`` and prints a markdown
table: recall (lost %) per stack and tool. Not a test: the deep methods take minutes on a CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.alignment_examples import STACKS, stack_inputs
from benchmarks.common import ensure_peer_tools, run_enfuse
from benchmarks.nframe_synth import parse_value

METHODS = ("sf", "laplacian", "gff", "sesf", "gacn", "mfifgan", "twostream")


def downscaled_frames(name: str, max_side: int, out: Path) -> list[Path]:
    """The stack's frames at ≤ ``max_side`` px as 8/16-bit PNGs (cached)."""
    folder = out / name / f"frames_{max_side}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, source in enumerate(stack_inputs(name)):
        target = folder / f"frame_{index:02d}.png"
        if not target.exists():
            image = cv2.imread(str(source), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise SystemExit(f"{source}: cannot be read")
            if max(image.shape[:2]) > max_side:
                factor = max_side / max(image.shape[:2])
                size = (round(image.shape[1] * factor), round(image.shape[0] * factor))
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(target), image)
        paths.append(target)
    return paths


def lost_picture(result: np.ndarray, lost_map: np.ndarray) -> np.ndarray:
    """The result (8-bit BGR) with lost blocks tinted red, for looking at."""
    grey = result if result.ndim == 2 else cv2.cvtColor(result, cv2.COLOR_RGB2GRAY)
    picture = cv2.cvtColor(np.round(grey * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    tint = picture.copy()
    tint[lost_map > 0] = (0, 0, 255)
    return cv2.addWeighted(picture, 0.6, tint, 0.4, 0.0)


def bench_methods(
    name: str, frames: list[Path], methods: list[str], out: Path, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    from focusstudio.core.align import align
    from focusstudio.core.io import load_stack, write_result
    from focusstudio.core.metrics.recall import stack_sharpness_recall
    from focusstudio.core.pipeline import fuse

    started = time.perf_counter()
    aligned, _ = align(load_stack([str(f) for f in frames]))
    align_seconds = time.perf_counter() - started
    rows = []
    for method in methods:
        row: dict[str, Any] = {"stack": name, "tool": method, "frames": len(frames), "align_s": align_seconds}
        try:
            started = time.perf_counter()
            # "gacn:strategy=serial" runs a method with parameters (a variant's label)
            name_only, _, settings = method.partition(":")
            pairs = (item.split("=", 1) for item in settings.split(";") if item)
            variant = {key: parse_value(value) for key, value in pairs}
            result = fuse(aligned, name_only, {**(params or {}), **variant} or None)
            row["fuse_s"] = time.perf_counter() - started
        except Exception as error:  # a method that cannot run is a row, not the end of the benchmark
            row["error"] = f"{type(error).__name__}: {error}"
            rows.append(row)
            print(f"  {name} {method}: {row['error']}", file=sys.stderr)
            continue
        label = method.replace(":", "_").replace(";", "_").replace("=", "-")
        write_result(out / name / f"{label}.png", result, overwrite=True)
        recall = stack_sharpness_recall(result.image, aligned)
        row.update(recall.summary())
        cv2.imwrite(str(out / name / f"{label}_lost.png"), lost_picture(result.image, recall.lost_map()))
        rows.append(row)
        print(f"  {name} {method}: recall {recall.recall:.4f}, lost {recall.lost_fraction:.2%} "
              f"({row['fuse_s']:.1f} s)", file=sys.stderr)
    return rows


def bench_enfuse(name: str, frames: list[Path], out: Path) -> dict[str, Any]:
    from focusstudio.core.metrics.recall import sharpness_recall

    output = out / name / "enfuse.tif"
    measured, aligned = run_enfuse("enfuse", frames, out / name / "enfuse_work", output, align=True)
    row: dict[str, Any] = {"stack": name, "tool": "enfuse", "frames": len(frames),
                           "fuse_s": measured.wall_seconds}
    if measured.returncode != 0 or not output.exists():
        row["error"] = (measured.stderr_tail.strip().splitlines() or ["?"])[-1]
        return row
    fused = _read_with_alpha(output)[0]
    valid = np.ones(fused.shape[:2], bool)
    images = []
    for path in aligned:  # ≤ max-side frames: all in memory is fine here
        image, alpha = _read_with_alpha(path)
        valid &= alpha
        images.append(image)
    recall = sharpness_recall(fused, images, valid=valid)
    row.update(recall.summary())
    cv2.imwrite(str(out / name / "enfuse_lost.png"), lost_picture(fused, recall.lost_map()))
    print(f"  {name} enfuse: recall {recall.recall:.4f}, lost {recall.lost_fraction:.2%}", file=sys.stderr)
    return row


def _read_with_alpha(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """float32 [0, 1] RGB/grey and a bool 'has real pixels' mask (alpha > 0; all true without alpha)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    alpha = np.ones(image.shape[:2], bool)
    if image.ndim == 3 and image.shape[2] == 4:
        alpha = image[..., 3] > 0
        image = image[..., :3]
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image.astype(np.float32) / scale, alpha


def markdown(rows: list[dict[str, Any]], tools: list[str]) -> str:
    stacks = list(dict.fromkeys(r["stack"] for r in rows))
    lines = ["| stack | frames | " + " | ".join(tools) + " |", "|---|---|" + "---|" * len(tools)]
    for stack in stacks:
        cells = []
        frames = next(r["frames"] for r in rows if r["stack"] == stack)
        for tool in tools:
            row = next((r for r in rows if r["stack"] == stack and r["tool"] == tool), None)
            if row is None:
                cells.append("")
            elif "error" in row:
                cells.append("failed")
            else:
                cells.append(f"{row['recall']:.3f} ({100 * row['lost_fraction']:.1f} %)")
        lines.append(f"| {stack} | {frames} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", nargs="+", default=list(STACKS), choices=sorted(STACKS))
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated focusstudio methods; method:key=value;key=value for a variant")
    parser.add_argument("--max-side", type=int, default=1200, help="downscale frames to this longer edge")
    parser.add_argument("--out", type=Path, default=Path("/tmp/focusstudio-real-stacks"))
    parser.add_argument("--no-enfuse", action="store_true", help="skip the enfuse peer")
    parser.add_argument("--setup", action="store_true", help="apt-get install the peers when missing")
    parser.add_argument("--report", action="store_true", help="only print the table of --out/results.json")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                        help="a method parameter for every method run (repeatable; e.g. sf_radius=2)")
    args = parser.parse_args(argv)
    params = {key: json.loads(value) if value[:1].isdigit() or value in ("true", "false") else value
              for key, _, value in (item.partition("=") for item in args.assignments)}
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    results_path = args.out / "results.json"
    rows: list[dict[str, Any]] = json.loads(results_path.read_text()) if results_path.exists() else []
    peers = not args.report and not args.no_enfuse and ensure_peer_tools(args.setup)
    for name in [] if args.report else args.stacks:
        if not STACKS[name].is_dir():
            print(f"{name}: {STACKS[name]} not found, skipped", file=sys.stderr)
            continue
        frames = downscaled_frames(name, args.max_side, args.out)
        new = bench_methods(name, frames, methods, args.out, params) if methods else []
        if peers:
            new.append(bench_enfuse(name, frames, args.out))
        done = {(r["stack"], r["tool"]) for r in new}
        rows = [r for r in rows if (r["stack"], r["tool"]) not in done] + new
        results_path.write_text(json.dumps(rows, indent=1))  # kept after every stack: partial runs count
    present = list(dict.fromkeys(r["tool"] for r in rows))
    tools = [t for t in [*METHODS, "enfuse"] if t in present] + [t for t in present if t not in (*METHODS, "enfuse")]
    print(markdown(rows, tools))
    return 0


if __name__ == "__main__":
    sys.exit(main())
