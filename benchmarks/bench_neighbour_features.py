"""Cost of a deep method's ``neighbours`` N-frame analysis in two source trees, measured alternately
in one run (the per-frame feature cache of issue 20 against the tree before it).

    python benchmarks/bench_neighbour_features.py --trees /tmp/base-featcache . --method mfifgan
    python benchmarks/bench_neighbour_features.py --trees /tmp/base . --frames 8 --long-side 1024 --rounds 2

Each measurement is its own process (``PYTHONPATH`` = the tree) fusing a synthetic focus sweep of
``--frames`` colour frames (frame k sharp in its own band, blurred elsewhere) with the shipped
weights, ``strategy=neighbours`` at ``--long-side`` pixels (the analysis resolution the methods
pick for camera frames: the analysis is what the cache changes). Reported per run: wall and CPU
seconds of the ``fuse`` call alone (start-up and the stack's creation excluded) and the process's
peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import cv2
import numpy as np
from focusstudio.core.pipeline import fuse
from focusstudio.core.types import Stack

method, frames, long_side = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
height, width = round(long_side * 2 / 3), long_side
rng = np.random.default_rng(0)
texture = rng.random((height, width, 3)).astype(np.float32)
texture = cv2.GaussianBlur(texture, (0, 0), 1.0)
blurred = cv2.GaussianBlur(texture, (0, 0), 4.0)
stack = []
for k in range(frames):
    frame = blurred.copy()
    band = slice(k * width // frames, (k + 1) * width // frames)
    frame[:, band] = texture[:, band]
    stack.append((frame * 255).astype(np.uint8))
stack = Stack.from_arrays(stack)
wall, cpu = time.perf_counter(), time.process_time()
result = fuse(stack, method, {"strategy": "neighbours"}, device="cpu")
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
index = result.maps["index"].data
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_rss_mib": peak,
                  "index_hist": np.bincount(index.ravel(), minlength=frames).tolist()}))
"""


def run(tree: Path, method: str, frames: int, long_side: int) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", CHILD, method, str(frames), str(long_side)], env=env,
                          capture_output=True, text=True, check=True, cwd=tree)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", nargs="+", type=Path, required=True, help="source trees, measured in turn")
    parser.add_argument("--method", default="mfifgan")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--long-side", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"{args.method}, neighbours, {args.frames} frames at {args.long_side} px long side; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    for round_ in range(args.rounds):
        for tree in args.trees:
            measured = run(tree.resolve(), args.method, args.frames, args.long_side)
            print(f"round {round_ + 1} {tree!s:28s} wall {measured['wall_s']:7.1f} s  "
                  f"cpu {measured['cpu_s']:7.1f} s  "
                  f"peak RSS {measured['peak_rss_mib']:6.0f} MiB  index histogram {measured['index_hist']}", flush=True)


if __name__ == "__main__":
    main()
