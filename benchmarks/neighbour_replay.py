"""bench_real_stacks (or nframe_synth, ``--synth``) with the deep methods' neighbour-pair network
maps cached on disk, so that a change of the N-frame *decision* (focusstudio.core.methods.strategies)
is measured without running the networks again (issue 15).

    python -m benchmarks.neighbour_replay --cache /tmp/nb-cache -- --stacks pcb misc_owl \\
        --methods gacn,mfifgan,twostream --max-side 1024 --no-enfuse --out /tmp/nb-after

The first run of a (stack, method, frame size) records every network output that
``run_neighbour_decisions`` receives from its predictor (2·(N − 1) maps, lifted to full resolution,
stored as float16); a later run replays them in the same order instead of calling the network, so
before and after differ only in the decision and the composition. Benchmark-only: it patches the
name ``run_neighbour_decisions`` in the modules that call it. The alignment is deterministic, so
the recorded maps fit the frames of a later run; the key includes the aligned stack's size and
frame count as a check.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np

import benchmarks.bench_real_stacks as bench
import benchmarks.nframe_synth as synth
from focusstudio.core.methods import _deep_serial, gacn
from focusstudio.core.methods import strategies as strategies_module

_current: dict[str, str] = {}
_original_run = strategies_module.run_neighbour_decisions


def _cache_file(cache: Path, shape: tuple[int, int], count: int) -> Path:
    stack, method = _current.get("stack", "stack"), _current.get("method", "method")
    return cache / f"{stack}__{method}__{shape[0]}x{shape[1]}x{count}.npz"


def install(cache: Path) -> None:
    """Patch the benchmark and the deep methods so that network maps are recorded or replayed."""
    cache.mkdir(parents=True, exist_ok=True)

    def run(stack: Any, predict: Any, progress: Any, cancel: Any, keep_maps: int = 0,
            prepare: Any = None, keep_as: Any = None) -> Generator[Any, None, Any]:
        path = _cache_file(cache, stack.shape, len(stack))
        if path.exists():
            with np.load(path) as stored:
                recorded = [stored[f"m{i}"] for i in range(len(stored.files))]
            position = iter(recorded)

            def replay(first: Any, second: Any, progress_range: Any) -> Generator[Any, None, np.ndarray]:
                yield from ()
                return next(position).astype(np.float32)

            print(f"    replaying {path.name}", file=sys.stderr)
            return (yield from _original_run(stack, replay, progress, cancel, keep_maps, prepare, keep_as))
        outputs: list[np.ndarray] = []

        def record(first: Any, second: Any, progress_range: Any) -> Generator[Any, None, np.ndarray]:
            soft = yield from predict(first, second, progress_range)
            outputs.append(np.asarray(soft, dtype=np.float16))
            return soft

        chain = yield from _original_run(stack, record, progress, cancel, keep_maps, prepare, keep_as)
        np.savez(path, **{f"m{i}": m for i, m in enumerate(outputs)})
        return chain

    _deep_serial.run_neighbour_decisions = run  # type: ignore[assignment]
    gacn.run_neighbour_decisions = run  # type: ignore[assignment]

    import focusstudio.core.pipeline as pipeline

    original_methods, original_fuse = bench.bench_methods, pipeline.fuse

    def bench_methods(name: str, *rest: Any, **options: Any) -> list[dict[str, Any]]:
        _current["stack"] = name
        return original_methods(name, *rest, **options)

    def fuse(stack: Any, method: str, *rest: Any, **options: Any) -> Any:
        _current["method"] = method  # bench_methods imports fuse when it runs: this one
        return original_fuse(stack, method, *rest, **options)

    def run_methods(paths: list[Path], methods: list[str]) -> Any:
        _current["stack"] = paths[0].parent.parent.name  # nframe_synth's scene<i>_n<N> folder
        return original_run_methods(paths, methods)

    original_run_methods = synth.run_methods
    bench.bench_methods = bench_methods  # type: ignore[assignment]
    synth.run_methods = run_methods  # type: ignore[assignment]
    pipeline.fuse = fuse  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True, help="folder of the recorded network maps")
    parser.add_argument("--synth", action="store_true", help="run nframe_synth instead of bench_real_stacks")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="-- then the benchmark's own arguments")
    args = parser.parse_args(argv)
    install(args.cache)
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    return synth.main(rest) if args.synth else bench.main(rest)


if __name__ == "__main__":
    sys.exit(main())
