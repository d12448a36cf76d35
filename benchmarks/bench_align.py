"""Alignment speed and residual: focusstudio (this tree, and optionally an older tree) against
``align_image_stack -m`` (hugin-tools) on the same real frames, runs alternated because the
machine is shared.

    python -m benchmarks.bench_align --before /tmp/base --rounds 3
    python -m benchmarks.bench_align --stacks macro_object_6 --no-peer
    python -m benchmarks.bench_align --variant affine:model=affine --variant full:estimation_size=0

Per run: wall time of the registration (decode + estimate) and its CPU time (all threads: the
work done, less sensitive to a loaded machine than the wall time), of estimate + warping every frame
(what ``align_image_stack -a`` does, though it also writes TIFFs), and the residual measure: the
normalised correlation of every pair of neighbouring aligned frames, grey and low-passed (σ = 2 px,
so that their different focus matters less than their misregistration), on the area both frames
cover. Higher is better; the same measure is taken on align_image_stack's aligned TIFFs (their
alpha channel gives the covered area). Each focusstudio run is a fresh process (imports excluded).
``--variant LABEL:KEY=VALUE,...`` adds runs of this tree with other alignment settings.

A tree with the pair cache (focusstudio.core.align.cache) also reports a re-registration of the
same frames from a warm cache (``cached_s``: what a re-fusion after a change of method or crop
costs: decoding, hashing and composing, no pair registered).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import REPO_ROOT, SHARED_DIR

STACKS = ("macro_object_6", "microscopy_wbc_10")


def neighbour_correlations(frames: list[np.ndarray], masks: list[np.ndarray]) -> list[float]:
    """NCC of each pair of neighbouring grey frames, low-passed, over the area both cover."""
    blurred = [cv2.GaussianBlur(frame.astype(np.float32), (0, 0), 2.0) for frame in frames]
    scores = []
    for i in range(len(frames) - 1):
        valid = masks[i] & masks[i + 1]
        a = blurred[i][valid].astype(np.float64)
        b = blurred[i + 1][valid].astype(np.float64)
        a -= a.mean()
        b -= b.mean()
        scores.append(float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum())))
    return scores


def _frames(stack: str) -> list[str]:
    return sorted(str(p) for p in (SHARED_DIR / "stacks" / stack).glob("frame_*"))


def child(stack: str, settings: dict[str, object]) -> None:
    """One focusstudio run (in the tree on PYTHONPATH): prints its JSON line."""
    from focusstudio.core.align import AlignOptions, apply_alignment, estimate_alignment
    from focusstudio.core.io import load_stack
    from focusstudio.core.progress import run_to_completion

    try:
        from focusstudio.core.align.cache import RegistrationCache
        cache: object | None = RegistrationCache()
    except ImportError:  # a tree from before the cache
        cache = None
    options = AlignOptions.from_params(settings)
    extra = {"cache": cache} if cache is not None else {}
    started, cpu_started = time.perf_counter(), time.process_time()
    frames = load_stack(_frames(stack))
    alignment = run_to_completion(estimate_alignment(frames, options, **extra))
    estimated, cpu = time.perf_counter(), time.process_time() - cpu_started
    # The interpolation of the settings (a tree from before the setting existed warps cubic).
    aligned = apply_alignment(frames, alignment, crop=False, interpolation=options.interpolation)
    greys = [aligned.load(i, grey=True) for i in range(len(aligned))]
    warped = time.perf_counter()
    masks = [alignment.frame_coverage(i) for i in alignment.included]
    scores = neighbour_correlations(greys, masks)
    import focusstudio

    result: dict[str, object] = {
        "tree": str(Path(focusstudio.__file__).parent.parent),
        "estimate_s": estimated - started, "estimate_cpu_s": cpu, "estimate_warp_s": warped - started,
        "ncc_mean": statistics.fmean(scores), "ncc_min": min(scores),
        "methods": [f.method for f in alignment.frames],
    }
    if cache is not None:
        started, cpu_started = time.perf_counter(), time.process_time()
        again = run_to_completion(estimate_alignment(load_stack(_frames(stack)), options, **extra))
        result["cached_s"], result["cached_cpu_s"] = time.perf_counter() - started, time.process_time() - cpu_started
        assert all(np.allclose(a, b) for a, b in zip(again.matrices, alignment.matrices, strict=True))
    print(json.dumps(result))


def run_ours(tree: Path, stack: str, settings: dict[str, object] | None = None) -> dict[str, object]:
    # Run as a script (not -m, which would put the working directory, this tree, first on the
    # path): ``tree``'s focusstudio is imported, this tree only provides the benchmarks package.
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{REPO_ROOT}"}
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", stack, "--settings", json.dumps(settings or {})],
        env=env, cwd=tree, capture_output=True, text=True, check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run_peer(stack: str) -> dict[str, object]:
    """``align_image_stack -m -a`` (the recipe of the enfuse benchmarks) and the same residual."""
    with tempfile.TemporaryDirectory(prefix="bench_align_") as work:
        prefix = str(Path(work) / "aligned_")
        inputs = _frames(stack)
        started = time.perf_counter()
        subprocess.run(["align_image_stack", "-m", "-a", prefix, *inputs], capture_output=True, check=True)
        seconds = time.perf_counter() - started
        greys, masks = [], []
        for i in range(len(inputs)):
            image = cv2.imread(f"{prefix}{i:04d}.tif", cv2.IMREAD_UNCHANGED)  # BGRA, LZW
            scale = 65535.0 if image.dtype == np.uint16 else 255.0
            bgr = image[..., :3].astype(np.float32) / scale
            greys.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
            masks.append(image[..., 3] > 0 if image.shape[-1] == 4 else np.ones(image.shape[:2], bool))
        scores = neighbour_correlations(greys, masks)
    return {"estimate_warp_s": seconds, "ncc_mean": statistics.fmean(scores), "ncc_min": min(scores)}


def alignment_parser(description: str) -> argparse.ArgumentParser:
    """The options every alignment benchmark shares: a child run, ``--variant``, ``--before``, ``--no-peer``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--settings", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--variant", action="append", default=[], metavar="LABEL:KEY=VALUE,...",
                        help="also run this tree with these alignment settings (repeatable)")
    parser.add_argument("--before", type=Path, help="an older focusstudio tree to compare (e.g. git archive of main)")
    parser.add_argument("--no-peer", action="store_true", help="leave out align_image_stack")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = alignment_parser(__doc__.splitlines()[0])
    parser.add_argument("--stacks", nargs="+", default=list(STACKS))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, json.loads(args.settings))
        return 0
    peer = not args.no_peer and shutil.which("align_image_stack") is not None
    if not args.no_peer and not peer:
        print("align_image_stack is missing (apt-get install -y hugin-tools): left out", file=sys.stderr)
    variants: list[tuple[str, object, dict[str, object]]] = [("after", REPO_ROOT, {})]
    variants += [(label, REPO_ROOT, settings) for label, settings in map(variant_settings, args.variant)]
    if args.before is not None:
        variants.insert(0, ("before", args.before, {}))
    if peer:
        variants.append(("align_image_stack", None, {}))
    results: dict[tuple[str, str], list[dict[str, object]]] = {}
    for round_index in range(args.rounds):
        for stack in args.stacks:
            # Alternate the order every round, so that a load spike does not always hit the same one.
            order = variants if round_index % 2 == 0 else list(reversed(variants))
            for label, tree, settings in order:
                result = run_peer(stack) if tree is None else run_ours(Path(str(tree)), stack, settings)
                results.setdefault((stack, label), []).append(result)
                print(f"round {round_index + 1} {stack:18s} {label:17s} {json.dumps(result)}", flush=True)
    print("\nmedian over rounds (wall s; residual = mean / min NCC of neighbouring aligned frames)")
    for (stack, label), runs in results.items():
        frames = len(_frames(stack))

        def median(key: str, runs: list[dict[str, object]] = runs) -> float:
            values = [float(str(r[key])) for r in runs if key in r]
            return statistics.median(values) if values else float("nan")

        print(f"{stack:18s} {label:17s} estimate {median('estimate_s'):6.2f} (CPU {median('estimate_cpu_s'):6.2f})  "
              f"estimate+warp "
              f"{median('estimate_warp_s'):6.2f} ({median('estimate_warp_s') / frames:.2f}/frame)  "
              f"NCC {median('ncc_mean'):.5f} / {median('ncc_min'):.5f}"
              + (f"  cached {median('cached_s'):5.2f} (CPU {median('cached_cpu_s'):5.2f})"
                 if any("cached_s" in r for r in runs) else ""))
    return 0


def variant_settings(variant: str) -> tuple[str, dict[str, object]]:
    """``LABEL:KEY=VALUE,...`` (``--variant``) → (label, alignment settings)."""
    label, _, assignments = variant.partition(":")
    pairs = (item.partition("=") for item in assignments.split(",") if item)
    return label, {key: _value(value) for key, _, value in pairs}


def _value(text: str) -> object:
    """A ``--variant`` value: JSON when it parses (numbers, true/false), else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


if __name__ == "__main__":
    raise SystemExit(main())
