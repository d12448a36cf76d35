"""End-to-end time of SESF-Fuse and GACN on a 520×520 colour pair (median of several runs).

    python -m benchmarks.bench_deep_methods                       # both methods, 7 runs each
    python -m benchmarks.bench_deep_methods --methods sesf --runs 11 --profile
    python -m benchmarks.bench_deep_methods --bytes-per-pixel 1000   # working memory per pixel
    python -m benchmarks.bench_deep_methods --camera 2450 --trees /tmp/base .   # tiled vs untiled

``--camera EDGE``: the command line (``focusstudio fuse``, each run its own process under
``/usr/bin/time -v``: wall, user + system CPU, peak RSS) on a synthetic EDGE² colour pair, once
with the default budget (tiled at camera sizes) per tree of ``--trees`` in turn for ``--rounds``
rounds (before/after alternately: the machine's load changes), then once untiled
(``--memory-limit 48G``) with the last tree.

End to end = ``focusstudio.core.pipeline.fuse`` on an in-memory stack: grey conversion, network,
post-processing and composition (file decoding excluded). Weights: ``--weights-dir`` (files
``sesf*.p*``/``gacn*.p*``), else the authors' checkpoints in ``../shared/official`` when present,
else our shipped weights, else a random initialisation (the cost does not depend on the values).
Both wall and process CPU time are printed with the 1-minute load average: on a shared machine
the wall time is inflated by other jobs (CPU ≈ 2 × wall means both cores were ours).
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

from benchmarks.common import SHARED_DIR

OFFICIAL = SHARED_DIR / "official"
OFFICIAL_CHECKPOINTS = {"sesf": "sesf_fuse_official.pkl", "gacn": "gacn_official.pkl"}
PAIR = "color_lytro_01"


def load_pair() -> list[np.ndarray]:
    """The Lytro pair the authors' timings used, or a synthetic pair of the same size."""
    from PIL import Image

    first, second = OFFICIAL / "inputs" / f"{PAIR}_1.png", OFFICIAL / "inputs" / f"{PAIR}_2.png"
    if first.is_file() and second.is_file():
        return [np.asarray(Image.open(first)), np.asarray(Image.open(second))]
    rng = np.random.default_rng(0)
    base = (rng.random((520, 520, 3)) * 255).astype(np.uint8)
    return [base, base[::-1].copy()]


def weights_for(method: str, folder: Path | None, scratch: Path) -> tuple[Path | None, str]:
    if folder is not None:
        found = sorted(folder.glob(f"{method}*.p*"))
        if found:
            return found[0], str(found[0])
    official = OFFICIAL / "checkpoints" / OFFICIAL_CHECKPOINTS[method]
    if official.is_file():
        return official, "authors' checkpoint"
    from focusstudio.core.weights import weights_availability

    if weights_availability(method)[0]:
        return None, "shipped weights"
    import torch

    from focusstudio.core.methods.registry import get_spec

    path = scratch / f"{method}_random.pt"
    torch.manual_seed(0)
    network = get_spec(method).build_network()
    torch.save({"state_dict": network.state_dict(), "arch": network.arch_config()}, path)
    return path, "random initialisation"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["sesf", "gacn"])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--weights-dir", type=Path, default=None)
    parser.add_argument("--profile", action="store_true", help="print the analyze/finish split")
    parser.add_argument("--bytes-per-pixel", type=int, default=None, metavar="EDGE",
                        help="instead: working memory per pixel of an untiled EDGE×EDGE grey pair "
                             "(peak RSS growth; compare with the methods' *_BYTES_PER_PIXEL)")
    parser.add_argument("--one-process-bytes-per-pixel", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's; 1 = the work itself)")
    parser.add_argument("--camera", type=int, default=None, metavar="EDGE",
                        help="instead: default (tiled) vs untiled CLI runs on an EDGE×EDGE colour pair")
    parser.add_argument("--trees", nargs="+", type=Path, default=[Path(".")],
                        help="with --camera: source trees to run in turn (e.g. a checkout of main, then this one)")
    parser.add_argument("--rounds", type=int, default=2, help="with --camera: rounds over the trees")
    parser.add_argument("--no-untiled", action="store_true", help="with --camera: skip the untiled runs")
    parser.add_argument("--budget", default=None, help="with --camera: --memory-limit of the tiled runs")
    args = parser.parse_args(argv)
    if args.camera is not None:
        return camera_runs(args.methods, args.camera, [t.resolve() for t in args.trees], args.rounds,
                           not args.no_untiled, args.budget)

    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    from focusstudio.core.pipeline import fuse
    from focusstudio.core.types import Stack

    if args.one_process_bytes_per_pixel is not None:
        return print_bytes_per_pixel(args.methods[0], args.one_process_bytes_per_pixel, args.weights_dir)
    if args.bytes_per_pixel is not None:
        return measure_bytes_per_pixel(args.methods, args.bytes_per_pixel, args.weights_dir)
    stack = Stack.from_arrays(load_pair(), names=["a", "b"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"pair {stack.shape[1]}×{stack.shape[0]} colour")
    with tempfile.TemporaryDirectory() as scratch:
        for method in args.methods:
            weights, label = weights_for(method, args.weights_dir, Path(scratch))
            fuse(stack, method, weights=weights, device="cpu")  # warm-up: imports, weights, allocator
            walls, cpus, splits = [], [], []
            for _ in range(args.runs):
                wall, cpu = time.perf_counter(), time.process_time()
                result = fuse(stack, method, weights=weights, device="cpu")
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
                splits.append((result.timings.get("analyze", 0.0), result.timings.get("finish", 0.0)))
            load = os.getloadavg()[0]
            print(f"{method:5s} median wall {statistics.median(walls):.3f} s (min {min(walls):.3f}), "
                  f"median CPU {statistics.median(cpus):.3f} s, load {load:.1f}, weights: {label}")
            if args.profile:
                analyze = statistics.median(s[0] for s in splits)
                finish = statistics.median(s[1] for s in splits)
                print(f"      analyze {analyze:.3f} s, finish {finish:.3f} s (medians)")
    return 0


def camera_runs(
    methods: list[str], edge: int, trees: list[Path], rounds: int, untiled: bool, budget: str | None = None
) -> int:
    """The CLI on an edge² pair: default budget (or ``budget``) per tree and round, then untiled once."""
    from benchmarks.bench_memory import write_stack
    from benchmarks.common import measure

    def run(tree: Path, method: str, extra: list[str], frames: list[Path], out: Path) -> str:
        command = ["env", f"PYTHONPATH={tree}", sys.executable, "-m", "focusstudio", "fuse",
                   *map(str, frames), "-o", str(out), "--method", method, "--device", "cpu", "--force", "--quiet",
                   *extra]
        m = measure(method, command, cwd=tree)
        if m.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{m.stderr_tail}")
        cpu = m.extra.get("user_seconds", 0.0) + m.extra.get("system_seconds", 0.0)
        return (f"wall {m.wall_seconds:6.1f} s, CPU {cpu:6.1f} s, peak {m.max_rss_mib:6.0f} MiB, "
                f"load {os.getloadavg()[0]:.1f}")

    with tempfile.TemporaryDirectory(prefix="fs-camera-") as scratch:
        root = Path(scratch)
        frames = write_stack(root / "pair", edge)
        print(f"{edge}×{edge} colour pair ({edge * edge / 1e6:.1f} MP), {os.cpu_count()} CPUs", flush=True)
        for method in methods:
            for round_number in range(rounds):
                for tree in trees:
                    extra = [] if budget is None else ["--memory-limit", budget]
                    line = run(tree, method, extra, frames, root / "out.png")
                    print(f"{method:5s} {budget or 'default'} budget round {round_number + 1} {tree}: {line}",
                          flush=True)
            if untiled:
                line = run(trees[-1], method, ["--memory-limit", "48G"], frames, root / "out.png")
                print(f"{method:5s} untiled (--memory-limit 48G) {trees[-1]}: {line}", flush=True)
    return 0


def measure_bytes_per_pixel(methods: list[str], edge: int, weights_dir: Path | None) -> int:
    """Each method in a fresh process (the peak RSS is a per-process high-water mark)."""
    import subprocess

    for method in methods:
        command = [sys.executable, "-m", "benchmarks.bench_deep_methods", "--methods", method,
                   "--one-process-bytes-per-pixel", str(edge)]
        if weights_dir is not None:
            command += ["--weights-dir", str(weights_dir)]
        subprocess.run(command, check=True)
    return 0


def print_bytes_per_pixel(method: str, edge: int, weights_dir: Path | None) -> int:
    """Peak RSS growth of one untiled EDGE×EDGE grey pair, per pixel, after a small warm-up."""
    import resource

    from focusstudio.core.pipeline import fuse
    from focusstudio.core.types import Stack

    rng = np.random.default_rng(0)
    a, b = (rng.random((edge, edge)).astype(np.float32) for _ in range(2))
    with tempfile.TemporaryDirectory() as scratch:
        weights, _ = weights_for(method, weights_dir, Path(scratch))
        fuse(Stack.from_arrays([a[:64, :64], b[:64, :64]]), method, weights=weights, device="cpu")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        fuse(Stack.from_arrays([a, b]), method, weights=weights, device="cpu", memory_limit=64 * 1024**3)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{method:5s} {edge}×{edge} untiled: {(after - before) * 1024 / edge**2:.0f} bytes per pixel")
    return 0


if __name__ == "__main__":
    sys.exit(main())
