"""GACN on N-frame stacks: decision calibration vs serial pairwise fusion (time and ratio).

    python -m benchmarks.bench_calibration                     # N = 2, 4, 8, 16 of macro_dsc_28
    python -m benchmarks.bench_calibration --frames 2 4 --scale 0.5 --runs 3

Calibration runs the feature path and the squared gradients once per frame and the decision path once
per pair (reference, j); serial runs the whole network N − 1 times on (running result, next
frame). A tiled image (larger than the memory budget allows in one piece: ``--scale 2``) is
calibrated tile by tile, the reference once per tile. The paper reports 30 % saved; the saving is
bounded by the feature path's share of a pair's cost, since the decision path (54 k of the 69 k
parameters, at full resolution) runs N − 1 times in both. The strategies alternate run by run.
Frames are spread evenly over the 28-frame ``macro_dsc_28`` stack (750×500) or, without the shared
data, a synthetic stack of the same size. Weights: as in :mod:`benchmarks.bench_deep_methods`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_deep_methods import weights_for
from benchmarks.common import SHARED_DIR

STACK = SHARED_DIR / "stacks" / "macro_dsc_28"


def load_frames(count: int, scale: float) -> list[np.ndarray]:
    import cv2
    from PIL import Image

    paths = sorted(STACK.glob("frame_*")) if STACK.is_dir() else []
    if paths:
        chosen = [paths[round(i * (len(paths) - 1) / max(count - 1, 1))] for i in range(count)]
        frames = [np.asarray(Image.open(p).convert("RGB")) for p in chosen]
    else:
        rng = np.random.default_rng(0)
        base = (rng.random((500, 750, 3)) * 255).astype(np.uint8)
        frames = [cv2.GaussianBlur(base, (0, 0), 0.5 + i) for i in range(count)]
    if scale != 1.0:
        frames = [cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) for f in frames]
    return frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--scale", type=float, default=1.0, help="resize the frames first")
    parser.add_argument("--weights-dir", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's; 1 = the work itself)")
    args = parser.parse_args(argv)

    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    from focusstudio.core.pipeline import fuse
    from focusstudio.core.types import Stack

    with tempfile.TemporaryDirectory() as scratch:
        weights, label = weights_for("gacn", args.weights_dir, Path(scratch))
        print(f"weights: {label}")
        print("wall s (CPU s); the ratio uses CPU time, which a busy machine distorts less")
        print(f"{'N':>3} {'size':>9} {'calibration s':>18} {'serial s':>18} {'ratio':>6} {'saved':>6}")
        for count in args.frames:
            frames = load_frames(count, args.scale)
            stack = Stack.from_arrays(frames)
            if count == args.frames[0]:  # warm-up: imports, weights, oneDNN's kernel generation
                fuse(Stack.from_arrays(frames[:2]), "gacn", weights=weights, device="cpu")
            samples: dict[str, tuple[list[float], list[float]]] = {"calibration": ([], []), "serial": ([], [])}
            for _ in range(args.runs):
                # the two strategies in turn, so a drift of the machine's speed hits both alike
                for strategy, (walls, cpus) in samples.items():
                    start, cpu = time.perf_counter(), time.process_time()
                    fuse(stack, "gacn", {"strategy": strategy}, weights=weights, device="cpu")
                    walls.append(time.perf_counter() - start)
                    cpus.append(time.process_time() - cpu)
            timings = {strategy: (statistics.median(walls), statistics.median(cpus))
                       for strategy, (walls, cpus) in samples.items()}
            ratio = timings["calibration"][1] / timings["serial"][1]
            height, width = stack.shape
            cells = [f"{wall:8.2f} ({cpu:7.2f})" for wall, cpu in (timings["calibration"], timings["serial"])]
            print(f"{count:>3} {width:>4}×{height:<4} {cells[0]:>18} {cells[1]:>18} "
                  f"{ratio:>6.2f} {100 * (1 - ratio):>5.0f}%", flush=True)
    print(f"(1-minute load average at the end: {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
