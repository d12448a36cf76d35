"""Screenshots of retouching a blurred patch in the main window (issue 16), before and after.

    xvfb-run -s "-screen 0 1600x1000x24" python -m benchmarks.retouch_window_shots [--stack macro_dsc_28]

Every step goes through the real window and its workers, with the mouse: open the stack, fuse it
(``sf``, aligned), find the patch the result lost (the largest cluster of ``lost_blocks``, as
``benchmarks.retouch_example`` does), zoom on it, raise the Retouch tab, Alt-click the patch to
pick the sharpest frame there, drag one stroke along it and show the painted mask. Writes
``window_<stack>_<method>_before.png`` / ``_after.png`` / ``_mask.png`` (the window, ``QWidget.grab()``, reduced to
a 256-colour palette to stay small) and prints what was picked and the patch's detail before/after.
Runs with ``QT_QPA_PLATFORM=offscreen`` too.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import REPO_ROOT, SHARED_DIR
from benchmarks.retouch_example import _largest_cluster, stroke_over_patch
from focusstudio.core.metrics.recall import BLOCK, block_sharpness
from focusstudio.core.pipeline import fuse
from focusstudio.core.types import to_grey


def _save_small(window: object, target: Path) -> None:
    """The window's picture as a palette PNG (a photo-bearing screenshot is ~1 MB in full colour)."""
    from PIL import Image
    from PySide6.QtCore import QBuffer, QIODevice

    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    window.grab().save(buffer, "PNG")  # type: ignore[attr-defined]
    import io

    image = Image.open(io.BytesIO(bytes(buffer.data().data()))).convert("RGB")
    image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(target, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="macro_dsc_28")
    parser.add_argument("--method", default="sf")
    parser.add_argument("--out", default=str(REPO_ROOT / "docs" / "retouch"))
    parser.add_argument("--patch", type=lambda text: [int(v) for v in text.split(",")], default=[576, 224, 32, 32],
                        metavar="X,Y,W,H", help="the patch to retouch when the result has no lost blocks "
                        "(default: macro_dsc_28's, from docs/retouch/README.md)")
    args = parser.parse_args()
    if "DISPLAY" not in os.environ:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QPointF, QRectF, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from focusstudio.gui.main_window import MainWindow
    from focusstudio.gui.settings import AppSettings, PresetStore
    from resources.make_screenshots import _settle, _wait

    app = QApplication.instance() or QApplication(sys.argv)
    config = Path(tempfile.mkdtemp(prefix="focusstudio-shots-"))
    window = MainWindow(AppSettings(config / "settings.ini"), PresetStore(config / "presets.json"))
    window.confirm_discard = False
    window.resize(1500, 950)
    window.show()
    window.select_method(args.method)
    window.set_alignment_mode("on")
    window.open_paths([str(SHARED_DIR / "stacks" / args.stack)])
    _wait(window.stackLoaded)
    window.fuse()
    if not _wait(window.resultReady):
        print("the fusion did not finish", file=sys.stderr)
        return 1
    outcome = window.results["A"]
    stack = outcome.fused_stack
    # Where the result lost detail: the quality map of the same method on the same aligned frames.
    lost = fuse(stack, args.method, quality_maps=True).maps["lost_blocks"].data
    if lost.any():
        row0, row1, col0, col1 = _largest_cluster(lost)
    else:
        # The window's registration differs a little from align_stack's, and so does the result:
        # then the patch docs/retouch/README.md names (found on align_stack's frames).
        col0, row0, patch_w, patch_h = args.patch
        row1, col1 = row0 + patch_h, col0 + patch_w
        print(f"no lost blocks in the window's result: the documented patch at ({col0}, {row0})")
    centre = ((col0 + col1) / 2, (row0 + row1) / 2)
    width, height = col1 - col0, row1 - row0
    size, points = stroke_over_patch(col0, row0, col1, row1)  # the brush size spin box takes whole pixels
    size = round(size)

    tool = window.retouch
    panel, controller, pane = tool.panel, tool.controller, window.viewer.main
    window.state.sync_maps({})  # no overlays: the picture is about the retouched pixels
    window.retouch_dock.raise_()
    margin = max(width, height) + BLOCK
    pane.view.setRange(QRectF(col0 - margin, row0 - margin, width + 2 * margin, height + 2 * margin), padding=0)
    _settle(800)

    def at(x: float, y: float) -> object:
        return pane.mapFromScene(pane.view.mapViewToScene(QPointF(x, y)))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"window_{args.stack}_{args.method}"
    while controller.probe is None:  # the sharpness is measured in the background
        _settle(200)
    panel.mode.setChecked(True)
    panel.size.setValue(size)
    panel.hardness.setValue(70)
    viewport = pane.viewport()
    QTest.mouseClick(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.AltModifier, at(*centre))
    frame = controller.frame
    assert frame is not None
    while not controller.model.frames.loaded(frame):  # decoded in the background
        _settle(100)
    QTest.mouseMove(viewport, at(*centre))  # the brush outline over the patch
    _settle(400)
    _save_small(window, out / f"{stem}_before.png")
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(*points[0]))
    for step in np.linspace(0.0, 1.0, 9)[1:]:
        x = points[0][0] + step * (points[1][0] - points[0][0])
        y = points[0][1] + step * (points[1][1] - points[0][1])
        QTest.mouseMove(viewport, at(x, y))
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(*points[1]))
    panel.mode.setChecked(False)  # retouch mode off: the brush outline leaves the patch
    _settle(600)
    _save_small(window, out / f"{stem}_after.png")
    panel.mask.setChecked(True)
    _settle(400)
    _save_small(window, out / f"{stem}_mask.png")
    model = controller.model

    def detail(image: np.ndarray) -> float:
        return float(block_sharpness(to_grey(image[row0:row1, col0:col1]), BLOCK).mean())

    sharpest = detail(stack.load(frame))
    print(f"{args.stack}, {args.method}: patch {width}×{height} px at ({col0}, {row0}); Alt-click picked frame "
          f"{frame} ({stack.names[frame]}); {len(model.strokes)} stroke(s), brush {size} px; status: "
          f"{window.statusBar().currentMessage()!r}")
    print(f"  patch detail / sharpest frame's: before {detail(outcome.result.image) / sharpest:.3f}, "
          f"after {detail(model.image) / sharpest:.3f}")
    print(f"  wrote {out / stem}_before.png, _after.png and _mask.png")
    window.close()
    from PySide6.QtCore import QThreadPool

    QThreadPool.globalInstance().waitForDone(60_000)  # cancelled jobs (metrics) reach their check
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
