"""Analysis at a working resolution (issue 20): Q^{AB/F} of the deep methods at scale 1 and at a
reduced analysis scale on Lytro pairs upscaled 4×, and the 24 MP pair's time against enfuse.

    python -m benchmarks.bench_analysis_scale quality --scales none auto --pairs 20 --reference-pairs 3
    python -m benchmarks.bench_analysis_scale quality --scales none 0.25 0.5 --pairs 5 --methods sesf gacn
    python -m benchmarks.bench_analysis_scale pair --before /tmp/base --rounds 2

``quality``: each Lytro pair (``shared/data/lytro``, 520×520) is enlarged ``--up`` times (cv2
INTER_CUBIC, uint8 as a camera would store it), fused in-process with ``analysis_scale`` set, the
result brought back to 520×520 (INTER_AREA) and measured against the native sources with the
project's Q^{AB/F}. One worker process per (method, scale) runs every pair, so its peak RSS and
CPU time are its own; the fused images are cached (``--cache``) by tree, method, scale and pair,
so another tree (``--tree``, e.g. a checkout of main for the scale-1 reference, bit-identical to
this tree's scale 1) can fill the reference once. ``pair``: ``focusstudio fuse`` on a 6000×4000
pair (benchmarks/bench_pair_enfuse.py's recipe) in turn with enfuse, wall, CPU seconds, peak RSS;
with ``--before TREE`` that checkout's run alternates with this tree's for every method, and the
results' pixel differences (before against after) are tabled.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

# The worker runs as a file under another tree's PYTHONPATH: only the driver imports benchmarks.*.
REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
LYTRO = SHARED_DIR / "data" / "lytro"
METHODS = ("sesf", "gacn", "mfifgan", "twostream")


def lytro_pairs(count: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(scene, frame 1, frame 2) of the first ``count`` Lytro scenes, RGB uint8."""
    scenes = sorted(p for p in LYTRO.iterdir() if p.is_dir())[:count]
    out = []
    for scene in scenes:
        files = sorted(scene.glob("*.jpg")) + sorted(scene.glob("*.png")) + sorted(scene.glob("*.tif"))
        first, second = (cv2.cvtColor(cv2.imread(str(f), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for f in files[:2])
        out.append((scene.name, first, second))
    return out


def enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    height, width = image.shape[:2]
    return cv2.resize(image, (width * factor, height * factor), interpolation=cv2.INTER_CUBIC)


def cache_file(cache: Path, tree: str, method: str, scale: str, up: int, scene: str) -> Path:
    return cache / f"{tree}" / f"{method}_s{scale}_up{up}_{scene}.npy"


# ---------------------------------------------------------------------------------------- worker
def worker(args: argparse.Namespace) -> int:
    """Fuse every pair with one method at one scale in this process; JSON of times on stdout."""
    from focusstudio.api import fuse

    params: dict[str, object] = {}
    if args.scale != "none":  # "none": a tree without the setting (the reference, scale 1)
        params["analysis_scale"] = args.scale if args.scale == "auto" else float(args.scale)
    wall = 0.0
    for scene, first, second in lytro_pairs(args.pairs):
        target = cache_file(args.cache, args.tree_label, args.method, args.scale_label, args.up, scene)
        if target.exists():
            continue
        frames = [enlarge(first, args.up), enlarge(second, args.up)] if args.up > 1 else [first, second]
        start = time.perf_counter()
        result = fuse(frames, args.method, params)
        wall += time.perf_counter() - start
        image = np.asarray(result.image, dtype=np.float32)
        back = cv2.resize(image, (first.shape[1], first.shape[0]), interpolation=cv2.INTER_AREA)
        target.parent.mkdir(parents=True, exist_ok=True)
        np.save(target, back)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_rss_mib": usage.ru_maxrss / 1024}))
    return 0


def run_worker(tree: Path, tree_label: str, method: str, scale: str, pairs: int, up: int, cache: Path) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "worker", "--method", method,
               "--scale", scale, "--pairs", str(pairs), "--up", str(up), "--cache", str(cache),
               "--tree-label", tree_label]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    completed = subprocess.run(command, capture_output=True, text=True, check=False, env=env, cwd=REPO_ROOT)
    if completed.returncode != 0:
        raise SystemExit(f"worker {method} {scale} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def quality(args: argparse.Namespace) -> int:
    from benchmarks.common import format_table
    from focusstudio.core.metrics import compute_metrics

    pairs = lytro_pairs(args.pairs)

    def scores(label: str, method: str, scale: str, up: int, count: int) -> np.ndarray:
        return np.asarray([
            compute_metrics(np.load(cache_file(args.cache, label, method, scale, up, scene)), [first, second],
                            metrics=["Qabf"])["Qabf"]
            for scene, first, second in pairs[:count]
        ])

    rows = []
    for method in args.methods:
        # the native 520² pairs analysed at full resolution: what a Lytro-scale image gets today
        times = run_worker(REPO_ROOT, "this", method, "1", args.pairs, 1, args.cache)
        native = scores("this", method, "1", 1, args.pairs)
        rows.append({"method": method, "input": "native 520²", "scale": "1", "pairs": args.pairs,
                     "Qabf": native.mean(), **{k: round(v, 2) for k, v in times.items()}})
        full: np.ndarray | None = None
        for scale in args.scales:
            reference = scale == "none"
            tree, label = (args.tree, args.tree.name) if reference else (REPO_ROOT, "this")
            count = args.reference_pairs if reference else args.pairs
            times = run_worker(tree, label, method, scale, count, args.up, args.cache)
            values = scores(label, method, "1" if reference else scale, args.up, count)
            if reference:
                full = values
            row = {"method": method, "input": f"{args.up}× up", "scale": f"1 ({label})" if reference else scale,
                   "pairs": count, "Qabf": values.mean(), "dQ_native": (values - native[:count]).mean(),
                   "worst_dQ_native": (values - native[:count]).min(), **{k: round(v, 2) for k, v in times.items()}}
            if full is not None and not reference:
                common = min(len(full), count)
                row["dQ_full"] = (values[:common] - full[:common]).mean()
                row["worst_dQ_full"] = (values[:common] - full[:common]).min()
            rows.append(row)
            print(format_table(rows[-1:], list(rows[-1])), file=sys.stderr)
    columns = ["method", "input", "scale", "pairs", "Qabf", "dQ_native", "worst_dQ_native", "dQ_full",
               "worst_dQ_full", "wall_s", "cpu_s", "peak_rss_mib"]
    print(f"# Lytro pairs ×{args.up} (cubic), results back to 520² (area), Q^{{AB/F}} against the native sources; "
          "dQ_native: against the native pairs at scale 1, dQ_full: against the enlarged pairs at scale 1 (first "
          "pairs in common); wall/cpu/peak of the worker process (pairs already cached are not timed)")
    print(format_table(rows, columns))
    return 0


def pair(args: argparse.Namespace) -> int:
    from benchmarks.bench_pair_enfuse import build_pair, row
    from benchmarks.common import enfuse_recipe, focusstudio_fuse_command, format_table, measure

    width, height = (int(v) for v in args.size.lower().split("x"))
    frames = build_pair(width, height, args.cache)
    out = args.cache / "pair_out"
    out.mkdir(parents=True, exist_ok=True)
    print(f"# {args.size} pair; load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    trees = [("before", args.before)] if args.before is not None else []
    trees.append(("after" if args.before is not None else "", REPO_ROOT))
    rows = []
    for _ in range(args.rounds):
        for method in args.methods:
            for scale in args.scales:
                for label, tree in trees:  # before and after in turn: the same load for both
                    target = out / f"{method}_{scale}_{label or 'this'}.jpg"
                    extra = [] if method == "sf" else ["--analysis-scale", scale]
                    command = ["env", f"PYTHONPATH={tree}",
                               *focusstudio_fuse_command(frames, target, method, extra)]
                    name = f"{method} {label}".strip() if method == "sf" else f"{method} scale {scale} {label}".strip()
                    rows.append(row(name, measure(method, command, cwd=tree)))
                    print(format_table(rows[-1:], list(rows[-1])), file=sys.stderr)
        (_, command), = enfuse_recipe(frames, out, out / "enfuse.jpg", align=False)
        rows.append(row("enfuse", measure("enfuse", command)))
    print(format_table(rows, ["tool", "wall_s", "cpu_s", "peak_rss_mib", "rc"]))
    if args.before is not None:
        print(format_table(pixel_differences(out, args.methods, args.scales), ["method", "max_abs", "mean_abs",
                                                                               "changed", "psnr_db"]))
    print(f"# load after: {os.getloadavg()[0]:.1f}", file=sys.stderr)
    return 0


def pixel_differences(out: Path, methods: list[str], scales: list[str]) -> list[dict[str, object]]:
    """Before against after, per method: max and mean absolute difference of the 8-bit results,
    the share of changed samples and the PSNR (JPEG q95 outputs: the encoder's own rounding of
    equal inputs is equal, so 0 means the same pixels went in)."""
    rows = []
    for method in methods:
        for scale in scales:
            before, after = (cv2.imread(str(out / f"{method}_{scale}_{label}.jpg")) for label in ("before", "after"))
            if before is None or after is None:
                continue
            difference = np.abs(before.astype(np.int16) - after.astype(np.int16))
            rows.append({"method": f"{method} {scale}", "max_abs": int(difference.max()),
                         "mean_abs": float(difference.mean()), "changed": float((difference > 0).mean()),
                         "psnr_db": float(cv2.PSNR(before, after))})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quality", help="Q^{AB/F} on enlarged Lytro pairs at several analysis scales")
    q.add_argument("--methods", nargs="+", default=list(METHODS))
    q.add_argument("--scales", nargs="+", default=["none", "auto"],
                   help="analysis scales of the enlarged pairs; 'none' = scale 1 run by --tree (a checkout of "
                   "main: the same code path as scale 1 here), first when given")
    q.add_argument("--pairs", type=int, default=20)
    q.add_argument("--reference-pairs", type=int, default=3, help="pairs of the (slow) scale-1 reference")
    q.add_argument("--up", type=int, default=4)
    q.add_argument("--tree", type=Path, default=REPO_ROOT.parent / "main")
    q.add_argument("--cache", type=Path, default=Path("/tmp/focusstudio-bench/analysis_scale"))
    p = sub.add_parser("pair", help="a camera-size pair at the given scales, in turn with enfuse")
    p.add_argument("--methods", nargs="+", default=["sf", *METHODS], help="sf runs without --analysis-scale")
    p.add_argument("--before", type=Path, default=None,
                   help="a checkout run in turn with this tree (e.g. `git worktree add /tmp/base main`)")
    p.add_argument("--scales", nargs="+", default=["auto"])
    p.add_argument("--size", default="6000x4000")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--cache", type=Path, default=Path("/tmp/focusstudio-bench"))
    w = sub.add_parser("worker")
    w.add_argument("--method", required=True)
    w.add_argument("--scale", required=True)
    w.add_argument("--pairs", type=int, required=True)
    w.add_argument("--up", type=int, required=True)
    w.add_argument("--cache", type=Path, required=True)
    w.add_argument("--tree-label", required=True)
    args = parser.parse_args(argv)
    if args.command == "worker":
        args.scale_label = "1" if args.scale == "none" else args.scale
        return worker(args)
    return quality(args) if args.command == "quality" else pair(args)


if __name__ == "__main__":
    sys.exit(main())
