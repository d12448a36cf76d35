"""Screenshots of issue 19's window behaviours: frames listed as they are decoded, a live-tuning
preview, and the Alignment tab's flicker (aligned and as loaded), through the real window.

    xvfb-run -s "-screen 0 1600x1000x24" python -m benchmarks.fluency_window_shots [--out DIR]
    xvfb-run -s "-screen 0 1366x768x24" python -m benchmarks.fluency_window_shots --fit-screen --suffix -1366x768

Each picture is ``QWidget.grab()`` of the window, the flicker dialog painted over it where it lies.
Needs ``../shared/stacks`` (macro_object_6, misc_owl).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
STACKS = REPO.parent / "shared" / "stacks"


def _settle(ms: int = 600) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def _grab(window: Any, path: Path, dialog: Any = None) -> Path:
    """The window, with ``dialog`` painted where it lies over it (composed here: a grab of the X
    screen without a window manager does not reliably stack a new dialog over the window)."""
    from PySide6.QtGui import QPainter

    picture = window.grab()
    if dialog is not None and dialog.isVisible():
        painter = QPainter(picture)
        painter.drawPixmap(dialog.frameGeometry().topLeft() - window.frameGeometry().topLeft(), dialog.grab())
        painter.end()
    if not picture.save(str(path)):
        raise OSError(f"could not write {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--fit-screen", action="store_true", help="keep the size the window chooses for the screen")
    parser.add_argument("--suffix", default="", help="added to every file name (e.g. -1366x768)")
    args = parser.parse_args(argv)
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import tempfile

    from focusstudio.gui.app import create_application
    from focusstudio.gui.jobs import FrameDecoded
    from focusstudio.gui.main_window import MainWindow
    from focusstudio.gui.settings import AppSettings, PresetStore

    create_application()
    # (imported once the application exists: the module defaults the platform to offscreen)
    from benchmarks.gui_latency import _process_events_until, _wait

    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="focusstudio-fluency-shots-"))
    written: list[Path] = []

    def new_window(name: str, method: str) -> Any:
        window = MainWindow(AppSettings(scratch / f"{name}.ini"), PresetStore(scratch / f"{name}.json"))
        window.select_method(method)
        if not args.fit_screen:
            window.resize(1600, 1000)
        window.show()
        window.confirm_discard = False
        window.metrics_panel.auto.setChecked(False)
        return window

    # 1. A stack being opened: the frames decoded so far are listed (greyed), the others follow...
    window = new_window("decoding", "gff")
    macro = sorted(str(path) for path in (STACKS / "macro_object_6").glob("frame_*"))
    decoded: list[int] = []
    window.file_runner.progressed.connect(
        lambda event: decoded.append(event.position) if isinstance(event, FrameDecoded) else None)
    window.open_paths(macro)
    # ...and the first frame in the view (shown as soon as it is decoded, made 8-bit in the background).
    _process_events_until(lambda: len(decoded) >= 3 and window.viewer.main.image_shape is not None, 120)
    written.append(_grab(window, args.out / f"11-frames-as-decoded{args.suffix}.png"))
    _wait(window.stackLoaded, 600)
    # 2. Live tuning of gff: the change is shown at the viewport's resolution at once.
    window.set_alignment_mode("off")
    window.fuse()
    _wait(window.resultReady, 1800)
    window.param_form.set_values({"base_gf_radius": 20, "detail_gf_radius": 4})
    _wait(window.liveUpdated, 600)
    written.append(_grab(window, args.out / f"12-live-preview-gff{args.suffix}.png"))
    _process_events_until(lambda: not window.fusion.pending_full and not window.fusion_runner.busy, 600)
    window.close()
    # 3. A handheld stack aligned before fusing: the flicker of the reference and the frame moved most.
    window = new_window("flicker", "sf")
    window.open_paths([str(STACKS / "misc_owl")])
    _wait(window.stackLoaded, 600)
    window.set_alignment_mode("on")
    window.fuse()
    _wait(window.resultReady, 1800)
    window.align_dock.raise_()
    dialog = window.flicker.open()
    assert dialog is not None
    dialog.pause.setChecked(True)  # a still picture of each state
    _process_events_until(lambda: window.flicker.frames is not None, 120)
    dialog.move(window.geometry().center() - dialog.rect().center())
    dialog.raise_()
    dialog.activateWindow()
    _settle(800)
    window.flicker._show()  # the label has its final size now
    _settle(300)
    written.append(_grab(window, args.out / f"13-flicker-aligned{args.suffix}.png", dialog))
    dialog.aligned.setChecked(False)
    window.flicker._swap()
    _settle(300)
    written.append(_grab(window, args.out / f"14-flicker-as-loaded{args.suffix}.png", dialog))
    dialog.close()
    window.close()
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
