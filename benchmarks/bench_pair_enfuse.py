"""A camera-size pair or stack (issue 20): ``focusstudio fuse`` against enfuse, wall, CPU and peak RSS.

    python -m benchmarks.bench_pair_enfuse                          # 6000×4000 pair, sf, 2 rounds
    python -m benchmarks.bench_pair_enfuse --size 3000x2000 --baseline /work/wt-baseline
    python -m benchmarks.bench_pair_enfuse --frames 10 --rounds 1   # a 10-frame 24 MP stack

The pair is frames 1 and 3 of the real microscopy stack ``shared/stacks/microscopy_algae_5``
(5440×3648 PNG) resized to ``--size`` (cubic up, area down) and written as JPEG q95, cached in
``--cache``. ``--frames N`` (N ≥ 3) takes the stack's five frames in order instead, cycled for
N > 5 with the k-th repeat shifted 16·k px to the right (exact repeats would tie everywhere and
never be composed; shifted ones are chosen in places, as distinct frames are); focusstudio runs
with ``--no-align`` like the enfuse recipe, so both measure the fusion alone. Each round runs, in
turn, this tree, the ``--baseline`` tree (another checkout, e.g. the code before a change) and
the enfuse recipe of :func:`benchmarks.common.enfuse_recipe` (without alignment), all writing
JPEG, so on a loaded machine the tools share the same load.
CPU seconds (user + system) are the steadier figure when other jobs hold the cores.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import REPO_ROOT, SHARED_DIR, enfuse_recipe, focusstudio_fuse_command, format_table, measure

SOURCE = SHARED_DIR / "stacks" / "microscopy_algae_5"
FRAMES = ("frame_01.png", "frame_03.png")


STACK_FRAMES = tuple(f"frame_{i:02d}.png" for i in range(5))


def build_pair(width: int, height: int, cache: Path, frames: int = 2) -> list[Path]:
    """The benchmark's frames (a pair, or ``frames`` ≥ 3 of the cycled stack), cached as JPEG."""
    cache.mkdir(parents=True, exist_ok=True)
    if frames == 2:
        names, paths = FRAMES, [cache / f"algae_pair_{width}x{height}_{i}.jpg" for i in range(2)]
    else:
        names = STACK_FRAMES
        paths = [cache / f"algae_stack_{width}x{height}_{i}.jpg" for i in range(len(STACK_FRAMES))]
    for name, path in zip(names, paths):
        if path.exists():
            continue
        image = cv2.imread(str(SOURCE / name), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"{SOURCE / name}: not found (the pair is made from this real stack)")
        upscale = width > image.shape[1]
        resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC if upscale else cv2.INTER_AREA)
        cv2.imwrite(str(path), resized, [cv2.IMWRITE_JPEG_QUALITY, 95])
    out = []
    for i in range(frames):
        repeat, position = divmod(i, len(paths))
        path = paths[position]
        if repeat:
            shifted = path.with_name(f"{path.stem}_shift{16 * repeat}.jpg")
            if not shifted.exists():
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                moved = np.float32([[1, 0, 16 * repeat], [0, 1, 0]])
                image = cv2.warpAffine(image, moved, (width, height), borderMode=cv2.BORDER_REFLECT)
                cv2.imwrite(str(shifted), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            path = shifted
        out.append(path)
    return out


def run_tree(label: str, tree: Path, pair: list[Path], output: Path, method: str) -> dict[str, object]:
    env_tree = str(tree)
    extra = ["--no-align"] if len(pair) > 2 else []
    command = ["env", f"PYTHONPATH={env_tree}", *focusstudio_fuse_command(pair, output, method, extra)]
    return row(label, measure(label, command, cwd=tree))


def row(label: str, measured) -> dict[str, object]:  # type: ignore[no-untyped-def]
    if measured.returncode != 0:
        print(f"# {label} failed (exit {measured.returncode}): {measured.stderr_tail[-400:]}", file=sys.stderr)
    cpu = measured.extra.get("user_seconds", 0.0) + measured.extra.get("system_seconds", 0.0)
    return {"tool": label, "wall_s": measured.wall_seconds, "cpu_s": round(cpu, 2),
            "peak_rss_mib": round(measured.max_rss_mib), "rc": measured.returncode}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="6000x4000", help="WIDTHxHEIGHT of the pair")
    parser.add_argument("--method", default="sf")
    parser.add_argument("--frames", type=int, default=2, help="2 = the pair; N ≥ 3 = the cycled 5-frame stack")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline", type=Path, help="another checkout to run in turn (e.g. before a change)")
    parser.add_argument("--no-enfuse", action="store_true")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/focusstudio-bench"))
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.frames < 2:
        parser.error("--frames must be at least 2")
    pair = build_pair(width, height, args.cache, args.frames)
    out = args.cache / "pair_out"
    out.mkdir(parents=True, exist_ok=True)
    print(f"# {args.size} × {args.frames} frames from {SOURCE.name}; load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    rows = []
    for _ in range(args.rounds):
        rows.append(run_tree(f"focusstudio {args.method}", REPO_ROOT, pair, out / "ours.jpg", args.method))
        if args.baseline is not None:
            rows.append(run_tree(f"baseline {args.method}", args.baseline, pair, out / "baseline.jpg", args.method))
        if not args.no_enfuse:
            (_, command), = enfuse_recipe(pair, out, out / "enfuse.jpg", align=False)
            rows.append(row("enfuse", measure("enfuse", command)))
    print(format_table(rows, ["tool", "wall_s", "cpu_s", "peak_rss_mib", "rc"]))
    print(f"# load after: {os.getloadavg()[0]:.1f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
