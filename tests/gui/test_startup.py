"""Start-up: a window is painted before the heavy imports (pyqtgraph, OpenCV, the core's I/O)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pytestqt.qtbot import QtBot

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
from focusstudio.gui.app import create_application, show_startup_frame
from focusstudio.gui.settings import AppSettings

create_application(views=False)
frame = show_startup_frame(AppSettings(sys.argv[1]))
assert frame.isVisible()
heavy = [name for name in ("pyqtgraph", "cv2", "focusstudio.core.io", "focusstudio.gui.main_window", "torch")
         if name in sys.modules]
assert not heavy, f"imported before the first window: {heavy}"
print("ok")
"""


def test_the_startup_frame_is_shown_before_the_heavy_imports(tmp_path: Path) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    completed = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "settings.ini")],
                               capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout.strip().endswith("ok")


def test_the_startup_frame_takes_the_last_window_geometry(qtbot: QtBot, tmp_path: Path) -> None:
    from PySide6.QtCore import QByteArray
    from PySide6.QtWidgets import QWidget

    from focusstudio.gui.app import show_startup_frame
    from focusstudio.gui.settings import AppSettings

    settings = AppSettings(tmp_path / "settings.ini")
    previous = QWidget()
    qtbot.addWidget(previous)
    previous.resize(640, 480)
    settings.save_window(QByteArray(previous.saveGeometry()), QByteArray())
    frame = show_startup_frame(settings)
    qtbot.addWidget(frame)
    assert frame.isVisible() and frame.windowTitle() == "FocusStudio"
    assert (frame.width(), frame.height()) == (640, 480)
