"""Side-by-side crops of one stack fused three ways, for docs/quality/ (issue 15's looked-at crops).

    python -m benchmarks.docs_crops /work/shared/stacks/macro_dsc_28 --box 430,250,160,120 \\
        --before-tree /tmp/before --out docs/quality/beetle_mandible.png

Panels, left to right: 'before (sf, e2d82e4)' (``focusstudio fuse -m sf`` run with the code of
``--before-tree``, a worktree of an older commit), 'after (sf)' (the same command on this tree) and
'enfuse' (benchmarks.common's recipe: ``align_image_stack -m -a`` then enfuse with contrast weight
only, hard mask, 5×5 window). Each result can be given ready-made (``--before-result``,
``--after-result``, ``--enfuse-result``) or is computed into ``--work``.

The three results have different geometry (each aligner crops and scales differently), so the
'before' and 'enfuse' results are registered onto the 'after' result with
focusstudio.core.align.register_pair before the same ``--box`` (x,y,w,h in the 'after' result's
pixels) is cut from each. The crops are enlarged ``--zoom``× with nearest-neighbour so that pixels,
not interpolation, are what one sees.

``--truth IMAGE`` (a synthetic stack's all-in-focus ground truth, e.g. from
``benchmarks.nframe_synth --out``) adds a first panel 'truth', registered onto 'after' like the others.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import REPO_ROOT, run_enfuse
from focusstudio.core.align import AlignOptions, RegistrationFailed, register_pair

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}
LABELS = ("before (sf, e2d82e4)", "after (sf)", "enfuse")
TRUTH_LABEL = "truth"


def stack_frames(folder: Path) -> list[Path]:
    """The folder's frames in name order; ``reference_*`` files (another tool's result) are skipped."""
    frames = sorted(p for p in folder.iterdir()
                    if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("reference_"))
    if len(frames) < 2:
        raise SystemExit(f"{folder}: fewer than two frames")
    return frames


def downscaled(frames: list[Path], max_side: int, work: Path) -> list[Path]:
    """The frames at ≤ ``max_side`` px (INTER_AREA) as PNGs in ``work``: all three tools fuse these."""
    folder = work / f"frames_{max_side}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, source in enumerate(frames):
        target = folder / f"frame_{index:02d}.png"
        if not target.exists():
            image = cv2.imread(str(source), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise SystemExit(f"{source}: cannot be read")
            factor = max_side / max(image.shape[:2])
            if factor < 1:
                size = (round(image.shape[1] * factor), round(image.shape[0] * factor))
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(target), image)
        paths.append(target)
    return paths


def fuse_sf(tree: Path, frames: list[Path], output: Path) -> Path:
    """``focusstudio fuse FRAMES -o OUTPUT -m sf`` (default settings) with the code of ``tree``."""
    command = [sys.executable, "-m", "focusstudio", "fuse", *map(str, frames), "-o", str(output),
               "-m", "sf", "--force", "--quiet"]
    print(f"PYTHONPATH={tree} {' '.join(command)}", file=sys.stderr)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run(command, cwd=tree, env=env, check=True)
    return output


def read_bgr8(path: Path) -> np.ndarray:
    """An 8-bit BGR picture of a result (alpha dropped, 16-bit scaled down)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise SystemExit(f"{path}: cannot be read")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    image = image[..., :3]
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image.astype(np.float32) * 255.0, 0, 255).round().astype(np.uint8)
    return image


def grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0


def onto(target: np.ndarray, moving: np.ndarray) -> tuple[np.ndarray, str]:
    """``moving`` warped into ``target``'s geometry, and a line describing the fit.

    register_pair wants equal sizes: ``moving`` is first pasted centred on a canvas of the target's
    size (the results differ by a few per cent), and that shift is folded into the matrix.
    """
    height, width = target.shape[:2]
    canvas = np.zeros((height, width), np.float32)
    dy, dx = (height - moving.shape[0]) // 2, (width - moving.shape[1]) // 2
    src_y, src_x = max(0, -dy), max(0, -dx)
    dst_y, dst_x = max(0, dy), max(0, dx)
    h = min(moving.shape[0] - src_y, height - dst_y)
    w = min(moving.shape[1] - src_x, width - dst_x)
    canvas[dst_y:dst_y + h, dst_x:dst_x + w] = grey(moving)[src_y:src_y + h, src_x:src_x + w]
    paste = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])
    try:
        pair = register_pair(grey(target), canvas, AlignOptions(method="features"))
    except RegistrationFailed as error:
        raise SystemExit(f"cannot register a result onto the 'after' result: {error}") from None
    matrix = pair.matrix @ paste
    warped = cv2.warpPerspective(moving, matrix, (width, height), flags=cv2.INTER_CUBIC,
                                 borderMode=cv2.BORDER_CONSTANT)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:2, :2]))))
    note = (f"{pair.method} fit, scale {scale:.4f}, shift ({matrix[0, 2]:.1f}, {matrix[1, 2]:.1f}) px, "
            f"correlation {pair.correlation:.3f}" if pair.correlation is not None else f"{pair.method} fit")
    return warped, note


def panel(crop: np.ndarray, label: str, zoom: int) -> np.ndarray:
    """The crop enlarged ``zoom``× (nearest-neighbour) under a white label bar."""
    big = cv2.resize(crop, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
    bar = np.full((28, big.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, label, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, big])


def side_by_side(
    results: list[np.ndarray], labels: list[str], box: tuple[int, int, int, int], zoom: int
) -> np.ndarray:
    x, y, w, h = box
    panels = [panel(image[y:y + h, x:x + w], label, zoom) for image, label in zip(results, labels, strict=True)]
    gap = np.full((panels[0].shape[0], 8, 3), 255, np.uint8)
    row = [panels[0]]
    for picture in panels[1:]:
        row += [gap, picture]
    return np.hstack(row)


def parse_box(text: str) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--box {text!r}: expected x,y,w,h (integers)") from None
    if min(x, y) < 0 or min(w, h) <= 0:
        raise argparse.ArgumentTypeError(f"--box {text!r}: negative origin or empty size")
    return x, y, w, h


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack", type=Path, help="folder of frames")
    parser.add_argument("--box", type=parse_box, required=True, help="x,y,w,h in the 'after' result")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--before-tree", type=Path, default=Path("/tmp/before"),
                        help="worktree of the 'before' commit (git worktree add /tmp/before e2d82e4)")
    parser.add_argument("--before-result", type=Path)
    parser.add_argument("--after-result", type=Path)
    parser.add_argument("--enfuse-result", type=Path)
    parser.add_argument("--truth", type=Path, help="ground truth of a synthetic stack: a first panel")
    parser.add_argument("--max-side", type=int, default=0, help="downscale frames to this long side first")
    parser.add_argument("--zoom", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/docs_crops"))
    args = parser.parse_args(argv)

    frames = stack_frames(args.stack)
    work = args.work / args.stack.name
    work.mkdir(parents=True, exist_ok=True)
    if args.max_side:
        frames = downscaled(frames, args.max_side, work)
    before = args.before_result or fuse_sf(args.before_tree, frames, work / "before.png")
    after = args.after_result or fuse_sf(REPO_ROOT, frames, work / "after.png")
    enfuse = args.enfuse_result
    if enfuse is None:
        enfuse = work / "enfuse.tif"
        measured, _ = run_enfuse("enfuse", frames, work / "enfuse_work", enfuse)
        if measured.returncode != 0:
            raise SystemExit(f"enfuse recipe failed (exit {measured.returncode})")

    target = read_bgr8(after)
    x, y, w, h = args.box
    if x + w > target.shape[1] or y + h > target.shape[0]:
        raise SystemExit(f"--box {args.box} leaves the 'after' result ({target.shape[1]}×{target.shape[0]})")
    others = [("before", before), ("enfuse", enfuse)] + ([("truth", args.truth)] if args.truth else [])
    registered = {}
    for name, path in others:
        warped, note = onto(target, read_bgr8(path))
        print(f"{name} → after: {note}", file=sys.stderr)
        registered[name] = warped
    images = [registered["before"], target, registered["enfuse"]]
    labels = list(LABELS)
    if args.truth:
        images, labels = [registered["truth"], *images], [TRUTH_LABEL, *labels]
    picture = side_by_side(images, labels, args.box, args.zoom)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_name(args.out.stem + ".partial.png")
    cv2.imwrite(str(partial), picture, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    partial.replace(args.out)  # atomic: a reader never sees half a picture
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
