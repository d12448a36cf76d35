"""Screenshots of the FocusStudio window in its main states, for the README and the docs.

    xvfb-run -s "-screen 0 1600x1000x24" python resources/make_screenshots.py [STACK] [--out DIR]

States: empty window, stack loaded, fused with the decision-map overlay, live tuning (a
post-processing change applied, overlay and wipe against a source frame), A/B comparison, the
question asked before results never exported are discarded, and a handheld stack aligned before
fusing (the Alignment tab). Every step goes
through the real window and its workers; each picture is ``QWidget.grab()`` of the window.
Runs with ``QT_QPA_PLATFORM=offscreen`` too (the default when no display is set).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_STACK = REPO.parent / "shared" / "data" / "lytro" / "lytro_01"
DEFAULT_ALIGNED_STACK = REPO.parent / "shared" / "stacks" / "misc_owl"


def _wait(signal: Any, timeout_s: float = 600) -> list[Any]:
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    received: list[Any] = []

    def done(*args: Any) -> None:
        received.extend(args)
        loop.quit()

    signal.connect(done)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    signal.disconnect(done)
    return received


def _settle(ms: int = 600) -> None:
    """Let repaints and frame-decoding jobs finish before a grab."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def question_shot(window: Any, path: Path) -> None:
    """The question quitting asks with results never exported: the box the window shows
    (``QMessageBox.question``, which is modal, so an equal box is shown without blocking)."""
    from PySide6.QtWidgets import QMessageBox

    from focusstudio.gui.dialogs import unexported_question

    slots = window.unexported_slots()
    title, text = unexported_question([(slot, window.results[slot].result.method) for slot in slots], "quitting")
    buttons = QMessageBox.StandardButton
    box = QMessageBox(QMessageBox.Icon.Question, title, text, buttons.Save | buttons.Discard | buttons.Cancel, window)
    box.setDefaultButton(buttons.Save)
    box.show()
    _settle()
    if not box.grab().save(str(path)):
        raise OSError(f"could not write {path}")
    box.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stack", nargs="?", type=Path, default=DEFAULT_STACK)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--method", default="sf")
    parser.add_argument("--compare", default="gff", help="the second method, fused into result B")
    parser.add_argument("--aligned-stack", type=Path, default=DEFAULT_ALIGNED_STACK,
                        help="an unaligned stack for the alignment picture (skipped when absent)")
    parser.add_argument("--fit-screen", action="store_true",
                        help="keep the size the window chooses for the screen (e.g. xvfb -screen 0 1366x768x24)")
    args = parser.parse_args(argv)
    size = None if args.fit_screen else (1600, 1000)
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    import tempfile

    from focusstudio.gui.app import create_application
    from focusstudio.gui.main_window import MainWindow
    from focusstudio.gui.settings import AppSettings, PresetStore

    create_application()
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="focusstudio-shots-"))
    window = MainWindow(AppSettings(scratch / "settings.ini"), PresetStore(scratch / "presets.json"))
    window.select_method(args.method)
    if size is not None:
        window.resize(*size)
    window.show()
    written: list[Path] = []

    def shot(name: str) -> None:
        _settle()
        path = args.out / f"{name}.png"
        if not window.grab().save(str(path)):
            raise OSError(f"could not write {path}")
        written.append(path)

    shot("01-empty")
    window.open_paths([str(args.stack)])
    _wait(window.stackLoaded)
    shot("02-stack-loaded")
    window.fuse()
    _wait(window.resultReady)
    _wait(window.metricsReady, 300)
    # Two frames explain themselves with a decision map, more frames with the index map.
    overlay = "decision" if "decision" in window.state.overlays else "index"
    window.state.show_only(overlay)
    window.state.update_overlay(overlay, opacity=0.45)
    shot("03-fused-decision-overlay")
    # Tuning: a post-processing change re-runs only the cheap stage on the cached analysis.
    window.param_form.set_values({"gf_radius": 12, "morphology_radius": 9})
    _wait(window.liveUpdated)
    window.state.set_wipe(True, "frame:1")
    window.state.set_wipe_position(0.55)
    shot("04-tuning-wipe")
    # Compare: a second method into result B, wiped against A, metrics of both.
    if args.compare in window.method_names():
        window.state.set_wipe(False)
        window.select_method(args.compare)
        window.set_target_slot("B")
        window.fuse()
        _wait(window.resultReady)
        while _wait(window.metricsReady, 300) not in (["B"], []):
            pass  # result A's metrics may come first
        window.compare_results()
        window.state.set_wipe_position(0.5)
        window.state.toggle_overlays()
        shot("05-compare-a-b")
    question_shot(window, args.out / "07-unexported-question.png")
    written.append(args.out / "07-unexported-question.png")
    window.confirm_discard = False  # asked in the picture above; a script must not wait on it
    window.close()
    if args.aligned_stack is not None and args.aligned_stack.is_dir():
        # A handheld stack: registered before fusing, the Alignment tab with what was found, and
        # the result wiped against an aligned source frame.
        window = MainWindow(AppSettings(scratch / "settings2.ini"), PresetStore(scratch / "presets2.json"))
        window.select_method(args.method)
        if size is not None:
            window.resize(*size)
        window.show()
        window.open_paths([str(args.aligned_stack)])
        _wait(window.stackLoaded)
        window.fuse()
        _wait(window.resultReady)
        window.align_dock.raise_()
        window.state.show_only("index")
        window.state.update_overlay("index", opacity=0.35)
        window.state.set_wipe(True, "frame:0")
        window.state.set_wipe_position(0.5)
        _settle(1500)
        shot("06-aligned-stack")
        window.confirm_discard = False
        window.close()
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
