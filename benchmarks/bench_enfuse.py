"""focusstudio side by side with enfuse on the real stacks: time, peak memory and quality.

    python -m benchmarks.bench_enfuse --setup                   # every real stack, method sf
    python -m benchmarks.bench_enfuse --stacks pcb misc_owl --methods sf,laplacian

The peer runs the issue's recipe: ``align_image_stack -m -a aligned_ frames...`` then
``enfuse --exposure-weight=0 --saturation-weight=0 --contrast-weight=1 --hard-mask
--contrast-window-size=5``. focusstudio runs ``focusstudio fuse`` with its own alignment (when the
CLI has ``--align``; until then the same pipeline through the Python API,
``benchmarks/fuse_aligned.py``).

Quality has no ground truth here: each result is scored against the frames it actually fused, in
its own geometry — enfuse against align_image_stack's output, focusstudio against the frames as
:func:`focusstudio.core.align.align_stack` warps them (or the raw frames when fused unaligned).
The source-based metrics (Qabf, Qcb, MI) therefore compare two slightly different source sets; SF
and AG depend on the result only. Metrics are computed on copies ≤ ``--metric-size`` px.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.alignment_examples import STACKS, stack_inputs
from benchmarks.common import (
    REPO_ROOT,
    cli_supports,
    ensure_peer_tools,
    format_table,
    image_dtype,
    measure,
    quality,
    run_enfuse,
    run_focusstudio,
)


def aligned_sources(frames: list[Path]) -> list[np.ndarray]:
    """The frames in the geometry of focusstudio's result (aligned with the default options, cropped)."""
    from focusstudio.core.align import align_stack
    from focusstudio.core.io import load_stack
    from focusstudio.core.progress import run_to_completion

    stack, _ = run_to_completion(align_stack(load_stack(frames)))
    return [stack.load(i) for i in range(len(stack))]


def bench_stack(name: str, args: argparse.Namespace, cli_align: bool, peers: bool) -> list[dict[str, Any]]:
    frames = stack_inputs(name)
    out_dir = args.out / name
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "tif" if image_dtype(frames[0]) == "uint16" else "png"
    rows: list[dict[str, Any]] = []
    runs = []
    for method in args.methods:
        output = out_dir / f"focusstudio_{method}.{suffix}"
        if cli_align:
            measured = run_focusstudio(f"focusstudio {method}", frames, output, method, ["--align"])
        else:
            # The CLI cannot align yet: the same pipeline through the Python API.
            command = [sys.executable, "-m", "benchmarks.fuse_aligned", *map(str, frames), "-o", str(output),
                       "--method", method]
            measured = measure(f"focusstudio {method} (API)", command, cwd=REPO_ROOT)
        runs.append(("focusstudio", measured, output))
    if peers:
        output = out_dir / "enfuse.tif"
        measured, enfuse_sources = run_enfuse("enfuse", frames, out_dir / "enfuse_work", output, align=True)
        runs.append(("enfuse", measured, output))
    baseline = next((m for tool, m, _ in runs if tool == "enfuse" and m.returncode == 0), None)
    own_sources: list[np.ndarray] | None = None
    for tool, measured, output in runs:
        row: dict[str, Any] = {
            "stack": name,
            "frames": len(frames),
            "tool": measured.label,
            "wall_s": measured.wall_seconds,
            "peak_rss_mib": measured.max_rss_mib,
            "rc": measured.returncode,
        }
        if measured.returncode != 0 or not output.exists():
            row["error"] = (measured.stderr_tail.strip().splitlines() or ["?"])[-1]
            rows.append(row)
            continue
        row["out_dtype"] = image_dtype(output)
        if baseline is not None and measured is not baseline:
            row["time_vs_enfuse"] = measured.wall_seconds / max(baseline.wall_seconds, 1e-9)
            row["rss_vs_enfuse"] = measured.max_rss_bytes / max(baseline.max_rss_bytes, 1)
        if args.metrics:
            if tool == "enfuse":
                sources: list[np.ndarray] | list[Path] = list(enfuse_sources)
            else:
                own_sources = own_sources if own_sources is not None else aligned_sources(frames)
                sources = own_sources
            try:
                row.update(quality(output, sources, metrics=args.metrics, longest=args.metric_size))
            except ValueError as error:
                row["metrics_note"] = str(error)
        row["details"] = measured.to_json()
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", nargs="+", default=sorted(STACKS), choices=sorted(STACKS))
    parser.add_argument("--methods", type=lambda s: s.split(","), default=["sf"])
    parser.add_argument("--setup", action="store_true", help="apt-get install enfuse, hugin-tools, time if missing")
    parser.add_argument("--no-peer", action="store_true", help="run focusstudio only")
    parser.add_argument("--metrics", type=lambda s: [m for m in s.split(",") if m],
                        default=["Qabf", "Qcb", "MI", "SF", "AG"])
    parser.add_argument("--metric-size", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=Path("/tmp/focusstudio-bench/real"))
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    peers = not args.no_peer and ensure_peer_tools(args.setup)
    cli_align = cli_supports("--align")
    if not cli_align:
        print("note: 'focusstudio fuse' has no --align yet: aligning and fusing through the Python API "
              "(benchmarks/fuse_aligned.py)", file=sys.stderr)
    rows = []
    for name in args.stacks:
        if not STACKS[name].is_dir():
            print(f"{name}: not found, skipped", file=sys.stderr)
            continue
        rows.extend(bench_stack(name, args, cli_align, peers))
        print(format_table(rows[-len(args.methods) - int(peers):], ["stack", "tool", "wall_s", "peak_rss_mib"]),
              file=sys.stderr)
    columns = ["stack", "frames", "tool", "wall_s", "peak_rss_mib", "out_dtype", "time_vs_enfuse", "rss_vs_enfuse",
               *args.metrics, "rc"]
    print(format_table(rows, columns))
    for row in rows:
        if "error" in row or "metrics_note" in row:
            print(f"{row['tool']} on {row['stack']}: {row.get('error') or row.get('metrics_note')}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
