"""Before/after alignment on the real stacks: transforms found, time, and a crop showing ghosting.

    python -m benchmarks.alignment_examples                 # pcb, misc_owl, microscopy_wbc_10
    python -m benchmarks.alignment_examples --stacks misc_owl --method sf --docs docs/alignment

For every stack the frames are fused by ``--method`` twice: as given, and after
:func:`focusstudio.core.align.align_stack` (default options: similarity, middle reference, crop).
The unaligned result is cut to the same crop box (the reference frame is never moved, so both are
in its coordinates). The window where the two differ most is saved side by side (left: unaligned,
right: aligned), together with the alignment JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import SHARED_DIR

STACKS = {
    "pcb": SHARED_DIR / "data" / "focus_stack" / "pcb",
    "misc_owl": SHARED_DIR / "stacks" / "misc_owl",
    "microscopy_wbc_10": SHARED_DIR / "stacks" / "microscopy_wbc_10",
    "macro_object_6": SHARED_DIR / "stacks" / "macro_object_6",
    "macro_dsc_28": SHARED_DIR / "stacks" / "macro_dsc_28",
    "misc_houses": SHARED_DIR / "stacks" / "misc_houses",
    "misc_damselfly": SHARED_DIR / "stacks" / "misc_damselfly",
    "misc_text": SHARED_DIR / "stacks" / "misc_text",
    "microscopy_algae_5": SHARED_DIR / "stacks" / "microscopy_algae_5",
}


def stack_inputs(name: str) -> list[Path]:
    """The frames of a named stack (pcb: 1..7.jpg, without the upstream tool's own result)."""
    folder = STACKS[name]
    if name == "pcb":
        return [folder / f"{i}.jpg" for i in range(1, 8)]
    return sorted(p for p in folder.iterdir() if p.name.startswith("frame_"))


def most_different_window(before: np.ndarray, after: np.ndarray, size: int) -> tuple[int, int, int]:
    """(x, y, edge) of the square window where the two results differ most (mean |Δgrey|)."""
    grey_before = before.mean(axis=2) if before.ndim == 3 else before
    grey_after = after.mean(axis=2) if after.ndim == 3 else after
    difference = np.abs(grey_before - grey_after).astype(np.float32)
    edge = min(size, *difference.shape)
    mean = cv2.boxFilter(difference, -1, (edge, edge), normalize=True, borderType=cv2.BORDER_CONSTANT)
    half = edge // 2
    inner = mean[half : difference.shape[0] - (edge - half) + 1, half : difference.shape[1] - (edge - half) + 1]
    y, x = np.unravel_index(int(np.argmax(inner)), inner.shape)
    return int(x), int(y), edge


def run(name: str, method: str, docs: Path, window: int) -> dict[str, object]:
    from focusstudio.core.align import align_stack
    from focusstudio.core.io import load_stack, write_image
    from focusstudio.core.pipeline import fuse
    from focusstudio.core.progress import run_to_completion

    stack = load_stack(stack_inputs(name))
    started = time.perf_counter()
    aligned, alignment = run_to_completion(align_stack(stack))
    align_seconds = time.perf_counter() - started
    started = time.perf_counter()
    fused_aligned = fuse(aligned, method).image
    fuse_seconds = time.perf_counter() - started
    fused_raw = fuse(stack, method).image
    assert alignment.crop_box is not None
    x0, y0, width, height = alignment.crop_box
    before = fused_raw[y0 : y0 + height, x0 : x0 + width]
    x, y, edge = most_different_window(before, fused_aligned, window)
    pair = np.concatenate(
        [before[y : y + edge, x : x + edge], np.ones((edge, 4, *before.shape[2:]), np.float32),
         fused_aligned[y : y + edge, x : x + edge]],
        axis=1,
    )
    docs.mkdir(parents=True, exist_ok=True)
    picture = write_image(docs / f"{name}_{method}_before_after.png", pair, "uint8", overwrite=True)
    (docs / f"{name}_alignment.json").write_text(json.dumps(alignment.to_json(), indent=1))
    return {
        "stack": name,
        "frames": len(stack),
        "size": f"{stack.shape[1]}x{stack.shape[0]}",
        "align_seconds": round(align_seconds, 2),
        "fuse_seconds": round(fuse_seconds, 2),
        "crop_box": alignment.crop_box,
        "window": (x + x0, y + y0, edge),
        "picture": str(picture),
        "transforms": alignment.describe(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", nargs="+", default=["pcb", "misc_owl", "microscopy_wbc_10"],
                        choices=sorted(STACKS))
    parser.add_argument("--method", default="sf")
    parser.add_argument("--docs", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "alignment")
    parser.add_argument("--window", type=int, default=256, help="edge of the saved crop (px)")
    args = parser.parse_args(argv)
    for name in args.stacks:
        if not STACKS[name].is_dir():
            print(f"{name}: {STACKS[name]} not found, skipped", file=sys.stderr)
            continue
        report = run(name, args.method, args.docs, args.window)
        print(f"== {report['stack']}: {report['frames']} frames {report['size']}, aligned in "
              f"{report['align_seconds']} s, fused ({args.method}) in {report['fuse_seconds']} s, crop "
              f"{report['crop_box']}, window {report['window']} → {report['picture']}")
        for line in report["transforms"]:  # type: ignore[attr-defined]
            print("   " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
