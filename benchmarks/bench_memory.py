"""Does ``--memory-limit`` bound the peak? Peak RSS of ``focusstudio fuse`` per method and budget.

    python -m benchmarks.bench_memory                                  # sf, sesf, gacn × 256M, 1G, default
    python -m benchmarks.bench_memory --methods sf --limits 256M --classical-size 3000
    python -m benchmarks.bench_memory --json memory.json

Each run is the real command line in its own process under ``/usr/bin/time -v``, on a synthetic
colour stack (PNG, 8-bit; ``--frames``, default 2): ``--classical-size`` px square for the classical methods,
``--deep-size`` for the deep ones (CPU). The promise measured (issue 13): peak RSS ≤ budget +
the fixed cost, where the fixed cost is the peak of the same command on a 64×64 stack (the
interpreter, NumPy/OpenCV, torch and the network's weights when the method loads them: what a
run costs before any pixel). "default" is the budget the run resolves itself (half the free
memory, at most 1.5 GiB); the driver prints the value it resolves just before the run. A limit
below the method's whole-frame arrays is refused before any work (exit 2): printed as "refused".
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import Measurement, run_focusstudio

CLASSICAL = {"sf"}
MIB = 1024**2


def write_stack(folder: Path, size: int, frames: int = 2, seed: int = 0) -> list[Path]:
    """``frames`` colour frames of a random texture, each sharp in a different vertical band."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    # Texture drawn small and scaled up: random noise at full size would make huge PNGs.
    texture = cv2.resize((rng.random((size // 8, size // 8, 3)) * 255).astype(np.uint8), (size, size),
                         interpolation=cv2.INTER_CUBIC)
    blurred = cv2.GaussianBlur(texture, (0, 0), 4.0)
    paths = []
    for index in range(frames):
        frame = blurred.copy()
        band = slice(index * size // frames, (index + 1) * size // frames)
        frame[:, band] = texture[:, band]
        path = folder / f"{index + 1}.png"
        cv2.imwrite(str(path), frame)
        paths.append(path)
    return paths


def parse_budget(text: str) -> int | None:
    from focusstudio.cli import parse_size

    return None if text == "default" else parse_size(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="sf,sesf,gacn")
    parser.add_argument("--limits", default="256M,1G,default")
    parser.add_argument("--classical-size", type=int, default=4000)
    parser.add_argument("--deep-size", type=int, default=2400)
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args(argv)
    from focusstudio.core.tiling import resolve_memory_limit

    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="fs-memory-") as scratch:
        root = Path(scratch)
        tiny = write_stack(root / "tiny", 64)
        stacks: dict[int, list[Path]] = {}
        print(f"{'method':<6} {'size':>9} {'budget':>8} {'fixed':>7} {'peak':>7} {'bound':>7} {'over':>7}  s")
        for method in args.methods.split(","):
            size = args.classical_size if method in CLASSICAL else args.deep_size
            if size not in stacks:
                stacks[size] = write_stack(root / f"s{size}", size, args.frames)
            fixed = run_focusstudio(f"{method} fixed", tiny, root / "tiny.png", method)
            _check(fixed)
            for limit_text in args.limits.split(","):
                budget = parse_budget(limit_text)
                extra = [] if budget is None else ["--memory-limit", limit_text]
                resolved = budget if budget is not None else resolve_memory_limit(None)
                run = run_focusstudio(f"{method} {limit_text}", stacks[size], root / "out.png", method, extra)
                if run.returncode == 2 and "too small" in run.stderr_tail:
                    # Refused before any work: the limit cannot hold the method's whole-frame arrays.
                    reason = next(line for line in run.stderr_tail.splitlines() if "too small" in line)
                    rows.append({"method": method, "size": size, "frames": args.frames, "limit": limit_text,
                                 "refused": reason, "peak_mib": run.max_rss_mib})
                    print(f"{method:<6} {size:>4}²x{args.frames} {resolved / MIB:>6.0f}Mi refused "
                          f"(peak {run.max_rss_mib:.0f}M): {reason.split('error: ')[-1]}", flush=True)
                    continue
                _check(run)
                resolved = _raised_budget(run.extra.get("notes") or []) or resolved
                bound = resolved + fixed.max_rss_bytes
                over = run.max_rss_bytes - bound
                rows.append({
                    "method": method, "size": size, "frames": args.frames, "limit": limit_text,
                    "budget_mib": resolved / MIB,
                    "fixed_mib": fixed.max_rss_mib, "peak_mib": run.max_rss_mib, "bound_mib": bound / MIB,
                    "over_mib": over / MIB, "seconds": run.wall_seconds, "notes": run.extra.get("notes"),
                })
                print(f"{method:<6} {size:>4}²x{args.frames} {resolved / MIB:>6.0f}Mi {fixed.max_rss_mib:>6.0f}M "
                      f"{run.max_rss_mib:>6.0f}M {bound / MIB:>6.0f}M {over / MIB:>+6.0f}M  {run.wall_seconds:.0f}",
                      flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


def _raised_budget(notes: list[str]) -> int | None:
    """The budget a run raised itself to (its note), in bytes; None when it kept the default."""
    for note in notes:
        found = re.search(r"memory budget raised from .* to ([\d.]+) (GiB|MiB)", note)
        if found:
            return int(float(found.group(1)) * (1024**3 if found.group(2) == "GiB" else MIB))
    return None


def _check(measurement: Measurement) -> None:
    if measurement.returncode != 0:
        raise SystemExit(f"{measurement.label} failed:\n{measurement.stderr_tail}")


if __name__ == "__main__":
    raise SystemExit(main())
