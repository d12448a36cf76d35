"""Align then fuse through the Python API, for benchmarking while the CLI has no ``--align``.

    python -m benchmarks.fuse_aligned FRAME... -o OUT --method sf [--memory-limit BYTES]

Prints one JSON line like ``focusstudio fuse --json`` (method, seconds per stage, dtype, notes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--method", default="sf")
    parser.add_argument("--memory-limit", type=int)
    args = parser.parse_args(argv)

    from focusstudio.core.align import align_stack
    from focusstudio.core.io import load_stack, write_result
    from focusstudio.core.pipeline import run_fusion
    from focusstudio.core.progress import run_to_completion

    started = time.perf_counter()
    stack = load_stack(args.inputs)
    aligned, alignment = run_to_completion(align_stack(stack))
    align_seconds = time.perf_counter() - started
    result = run_to_completion(run_fusion(aligned, args.method, device="cpu", memory_limit=args.memory_limit))
    write_start = time.perf_counter()
    write_result(args.output, result, overwrite=True, protected=[f.path for f in stack.frames])
    seconds = {"align": align_seconds, **result.timings, "write": time.perf_counter() - write_start}
    print(json.dumps({"method": result.method, "seconds": seconds, "dtype": result.source_dtype,
                      "crop": alignment.crop_box, "failed": alignment.failed, "notes": list(result.notes)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
