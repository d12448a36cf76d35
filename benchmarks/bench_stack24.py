"""Every shipped method on an N-frame 24 MP stack against enfuse (issue 20): wall, CPU, peak RSS.

    python -m benchmarks.bench_stack24 --frames 3 8 --methods laplacian gff sesf gacn mfifgan twostream
    python -m benchmarks.bench_stack24 --frames 3 --baseline /tmp/base --timeout 600

The frames are :func:`benchmarks.bench_pair_enfuse.build_pair`'s (the five algae frames resized
to 6000×4000 JPEG q95, cycled and shifted for N > 5); each method runs ``focusstudio fuse
--no-align`` at its defaults in a process of its own under ``/usr/bin/time -v``: this tree, then
the ``--baseline`` tree (before a change), in turn, and enfuse's recipe once per N, so on a loaded
machine the tools share the load. ``--timeout`` stops a run that would take too long (rc 124: its
row says so; extrapolate from smaller N). Rows are printed as they finish, so a stopped benchmark
still leaves its numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from benchmarks.bench_pair_enfuse import build_pair, row
from benchmarks.common import REPO_ROOT, enfuse_recipe, focusstudio_fuse_command, measure

METHODS = ("laplacian", "gff", "sesf", "gacn", "mfifgan", "twostream")


def run_method(label: str, tree: Path, frames: list[Path], output: Path, method: str, timeout: int,
               extra: list[str]) -> dict[str, object]:
    command = ["env", f"PYTHONPATH={tree}", "timeout", str(timeout),
               *focusstudio_fuse_command(frames, output, method, ["--no-align", *extra])]
    return row(label, measure(label, command, cwd=tree))


def print_row(n: int, method: str, result: dict[str, object], enfuse: dict[str, object] | None) -> None:
    ratio = ""
    if enfuse is not None and float(enfuse["wall_s"]) > 0:  # type: ignore[arg-type]
        ratio = (f"  ({float(result['wall_s']) / float(enfuse['wall_s']):.2f}× wall, "  # type: ignore[arg-type]
                 f"{float(result['cpu_s']) / max(float(enfuse['cpu_s']), 1e-9):.2f}× CPU)")  # type: ignore[arg-type]
    print(f"N={n:<3} {method:<10} {result['tool']:<10} wall {float(result['wall_s']):8.1f} s  "  # type: ignore[arg-type]
          f"CPU {float(result['cpu_s']):8.1f} s  RSS {result['peak_rss_mib']:>6} MiB  rc {result['rc']}{ratio}",
          flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[3, 8])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--size", default="6000x4000")
    parser.add_argument("--baseline", type=Path, help="another checkout run in turn (the code before a change)")
    parser.add_argument("--no-ours", action="store_true", help="only the baseline (and enfuse)")
    parser.add_argument("--no-enfuse", action="store_true")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per run (rc 124 past it)")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE passed to every method")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/focusstudio-bench"))
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    extra = [item for value in args.set for item in ("--set", value)]
    out = args.cache / "stack24_out"
    out.mkdir(parents=True, exist_ok=True)
    print(f"# {args.size}, load {os.getloadavg()[0]:.1f}; wall s / CPU s (user + system) / peak RSS", flush=True)
    for n in args.frames:
        frames = build_pair(width, height, args.cache, n)
        enfuse = None
        if not args.no_enfuse:
            (_, command), = enfuse_recipe(frames, out, out / "enfuse.jpg", align=False)
            enfuse = row("enfuse", measure("enfuse", command))
            print_row(n, "enfuse", enfuse, None)
        for method in args.methods:
            if not args.no_ours:
                print_row(n, method, run_method("this", REPO_ROOT, frames, out / "ours.jpg", method, args.timeout,
                                                extra), enfuse)
            if args.baseline is not None:
                print_row(n, method, run_method("baseline", args.baseline, frames, out / "base.jpg", method,
                                                args.timeout, extra), enfuse)
    print(f"# load after: {os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
