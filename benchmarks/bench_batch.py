"""Batch throughput: ``focusstudio batch`` over synthetic stacks locally with ``--workers 1`` and
``2`` and on a 2-worker Dask LocalCluster (``--dask --workers 2``): stacks per minute and the
peak memory of each worker process.

Stacks are built once (cached in ``/tmp/focusstudio-bench``) by :mod:`benchmarks.bench_stacks`,
one scene per stack (seeds 0..N-1). Every configuration writes to a fresh output folder, so
nothing is skipped. Wall time is the whole command (process start, for Dask the cluster start
too); the report's own time is printed beside it. The peak per worker is the largest per-stack
peak RSS (VmHWM) the report gives for that worker process. The load average before each run is
printed, since the machine may be shared.

    python -m benchmarks.bench_batch [--stacks 20] [--frames 10] [--size 1632x1224] [--configs w1,w2,dask2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.bench_stacks import StackSpec, build_stack
from benchmarks.common import REPO_ROOT

CONFIGS: dict[str, list[str]] = {
    "w1": ["--workers", "1"],
    "w2": ["--workers", "2"],
    "dask2": ["--dask", "--workers", "2"],
}
LABELS = {"w1": "local, --workers 1", "w2": "local, --workers 2", "dask2": "Dask LocalCluster, 2 workers"}


def build_root(count: int, frames: int, width: int, height: int, cache: Path) -> Path:
    """ROOT/<stack>/frame_*.jpg for ``count`` stacks (links into the bench_stacks cache)."""
    root = cache / f"batch_{count}x{frames}f_{width}x{height}"
    for seed in range(count):
        spec = StackSpec(width, height, frames, "uint8", "jpg", seed=seed)
        paths, _ = build_stack(spec, cache)
        folder = root / f"stack{seed:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for path in paths:
            link = folder / path.name
            if not link.exists():
                link.symlink_to(path)
    return root


def run_config(name: str, root: Path, out: Path, method: str) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "focusstudio", "batch", str(root), "-o", str(out), "--method", method,
               "--no-align", "--json", *CONFIGS[name]]
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    load = os.getloadavg()[0]
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"{name} failed ({completed.returncode}): {completed.stderr[-2000:]}")
    report = json.loads(completed.stdout)
    peaks: dict[str, float] = defaultdict(float)
    for stack in report["stacks"]:
        peaks[stack["worker"]] = max(peaks[stack["worker"]], stack["peak_mib"] or 0.0)
    count = len(report["stacks"])
    return {
        "config": LABELS[name],
        "stacks": count,
        "wall_s": round(wall, 1),
        "report_s": round(report["seconds"], 1),
        "stacks_per_min": round(count / wall * 60, 2),
        "workers": len(peaks),
        "peak_mib_per_worker": [round(value) for value in sorted(peaks.values())],
        "load_before": round(load, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", type=int, default=20)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--size", default="1632x1224", help="WIDTHxHEIGHT of every frame (default: 2 MP)")
    parser.add_argument("--method", default="sf")
    parser.add_argument("--configs", default="w1,w2,dask2", help=f"comma-separated: {', '.join(CONFIGS)}")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/focusstudio-bench"))
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    width, height = (int(value) for value in args.size.lower().split("x"))
    root = build_root(args.stacks, args.frames, width, height, args.cache)
    rows = []
    for name in args.configs.split(","):
        row = run_config(name.strip(), root, args.cache / f"batch_out_{name.strip()}", args.method)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{args.stacks} stacks × {args.frames} frames of {width}×{height}, {args.method}, {os.cpu_count()} CPUs")
    print("| configuration | wall s | stacks/min | peak RSS per worker (MiB) | load before |")
    print("|---|---|---|---|---|")
    for row in rows:
        peaks = ", ".join(str(value) for value in row["peak_mib_per_worker"])
        print(f"| {row['config']} | {row['wall_s']} | {row['stacks_per_min']} | {peaks} | {row['load_before']} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
