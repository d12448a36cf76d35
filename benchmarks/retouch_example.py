"""Before/after of retouching a blurred patch on a real stack (issue 16), written to docs/retouch/.

The stack is aligned and fused (``sf`` by default) with the quality maps; the largest cluster of
``lost_blocks`` (32-px blocks where the result keeps under half the sharpest frame's detail) is
repainted with one stroke from the frame the sharpness probe finds sharpest at its centre, as an
Alt-click then a drag in the window would do. The picture is three crops side by side: the
method's result, the retouched result, the painted mask over the retouched result. The numbers
(sharpness recall of the patch before and after) are printed.

    python -m benchmarks.retouch_example [--stack macro_object_6] [--method sf] [--out docs/retouch]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import REPO_ROOT, SHARED_DIR
from focusstudio.core.align import align_stack
from focusstudio.core.io import load_stack
from focusstudio.core.metrics.recall import BLOCK, block_sharpness
from focusstudio.core.pipeline import fuse
from focusstudio.core.progress import run_to_completion
from focusstudio.core.retouch import Brush, RetouchModel, SharpnessProbe, Stroke
from focusstudio.core.types import FusionResult, Stack, to_grey


def _largest_cluster(lost: np.ndarray) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) in pixels of the largest 8-connected group of lost blocks."""
    blocks = (lost[::BLOCK, ::BLOCK] > 0).astype(np.uint8)
    count, _labels, stats, _ = cv2.connectedComponentsWithStats(blocks, connectivity=8)
    if count < 2:
        raise SystemExit("no lost blocks: nothing to retouch in this result")
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[best, :4])
    return y * BLOCK, (y + h) * BLOCK, x * BLOCK, (x + w) * BLOCK


def stroke_over_patch(col0: int, row0: int, col1: int, row1: int) -> tuple[float, list[tuple[float, float]]]:
    """(brush size, points) of one stroke along a patch's longer side, its fully painted core
    (hardness 0.7) wider than the patch's shorter side."""
    centre = ((col0 + col1) / 2, (row0 + row1) / 2)
    width, height = col1 - col0, row1 - row0
    size = float(1.5 * min(width, height) + BLOCK)
    if width >= height:
        return size, [(col0 + size / 4, centre[1]), (col1 - size / 4, centre[1])]
    return size, [(centre[0], row0 + size / 4), (centre[0], row1 - size / 4)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="macro_object_6")
    parser.add_argument("--method", default="sf")
    parser.add_argument("--out", default=str(REPO_ROOT / "docs" / "retouch"))
    parser.add_argument("--screenshot", action="store_true",
                        help="also grab the retouch tool (image pane and panel, offscreen) after the stroke")
    args = parser.parse_args()
    stack = load_stack([str(SHARED_DIR / "stacks" / args.stack)])
    stack, _alignment = run_to_completion(align_stack(stack))
    result = fuse(stack, args.method, quality_maps=True)
    row0, row1, col0, col1 = _largest_cluster(result.maps["lost_blocks"].data)
    centre = ((col0 + col1) / 2, (row0 + row1) / 2)
    probe = SharpnessProbe.of_stack(stack)
    frame = probe.sharpest(int(centre[1]), int(centre[0]))
    model = RetouchModel.from_result(result, stack)
    width, height = col1 - col0, row1 - row0
    size, points = stroke_over_patch(col0, row0, col1, row1)
    model.apply(Stroke(frame, Brush(size, 0.7, 1.0), points))

    def detail(image: np.ndarray) -> float:
        return float(block_sharpness(to_grey(image[row0:row1, col0:col1]), BLOCK).mean())

    sharpest = detail(stack.load(frame))
    print(f"{args.stack}, {args.method}: patch {width}×{height} px at ({col0}, {row0}), painted from frame "
          f"{frame} ({stack.names[frame]}), brush {size:.0f} px")
    print(f"  patch detail / sharpest frame's: before {detail(result.image) / sharpest:.3f}, "
          f"after {detail(model.image) / sharpest:.3f}")
    margin = max(width, height) // 2 + BLOCK
    top, bottom = max(row0 - margin, 0), min(row1 + margin, stack.shape[0])
    left, right = max(col0 - margin, 0), min(col1 + margin, stack.shape[1])

    def bgr(image: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)

    def crop(image: np.ndarray) -> np.ndarray:
        return bgr(image[top:bottom, left:right])

    painted = model.painted((top, bottom, left, right))[..., None]
    tint = np.array([0.1, 0.5, 1.0], np.float32)  # RGB: the mask in blue over the retouched crop
    masked = model.image[top:bottom, left:right] * (1 - 0.5 * painted) + tint * 0.5 * painted
    gap = np.full((bottom - top, 8, 3), 255, np.uint8)
    picture = np.hstack([crop(result.image), gap, crop(model.image), gap,
                         bgr(masked)])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{args.stack}_{args.method}_before_after.png"
    cv2.imwrite(str(target), picture)
    print(f"  wrote {target} (before | after | painted mask)")
    if args.screenshot:
        shot = out / f"{args.stack}_{args.method}_tool.png"
        _screenshot(result, stack, Stroke(frame, Brush(size, 0.7, 1.0), points), (top, bottom, left, right), shot)
        print(f"  wrote {shot}")


def _screenshot(result: FusionResult, stack: Stack, stroke: Stroke, view: tuple[int, int, int, int],
                target: Path) -> None:
    """The retouch tool as the window will host it: the pane (zoomed on the patch, mask shown) and
    its panel; the stroke is painted through the controller as a drag would."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QRectF
    from PySide6.QtWidgets import QApplication, QHBoxLayout, QWidget

    from focusstudio.gui.retouch import RetouchController
    from focusstudio.gui.retouch_panel import RetouchPanel
    from focusstudio.gui.viewer import ImagePane

    app = QApplication.instance() or QApplication([])
    window = QWidget()
    pane = ImagePane()
    controller = RetouchController(pane)
    panel = RetouchPanel(controller)
    layout = QHBoxLayout(window)
    layout.addWidget(pane, 1)
    layout.addWidget(panel)
    window.resize(1000, 600)
    window.show()
    pane.show_image(result.as_dtype("uint8"))
    panel.set_frames(stack.names)
    controller.set_model(RetouchModel.from_result(result, stack), result, SharpnessProbe.of_stack(stack))
    panel.mode.setChecked(True)
    panel.source.setCurrentIndex(stroke.frame if stroke.frame is not None else panel.source.count() - 1)
    panel.size.setValue(round(stroke.brush.size))
    panel.hardness.setValue(round(stroke.brush.hardness * 100))
    controller.press(*stroke.points[0])
    for point in stroke.points[1:]:
        controller.move(*point)
    controller.release()
    panel.mask.setChecked(True)
    top, bottom, left, right = view
    pane.view.setRange(QRectF(left, top, right - left, bottom - top), padding=0)
    app.processEvents()
    window.grab().save(str(target))
    window.close()


if __name__ == "__main__":
    main()
