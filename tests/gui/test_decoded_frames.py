"""Opening a stack: each frame is listed as soon as it is decoded, and each is decoded once for
the thumbnails, the quick draft, the full fusion and the frame view together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from focusstudio.core.io import tolerant
from focusstudio.gui.jobs import FrameDecoded
from focusstudio.gui.main_window import MainWindow
from tests.gui.conftest import fuse_and_wait, open_and_wait, write_synthetic_stack


def test_frames_are_listed_as_they_are_decoded(qtbot: QtBot, window: MainWindow, stack_folder: Path) -> None:
    seen: list[tuple[int, str, int, bool]] = []

    def on_progress(event: Any) -> None:  # connected after the window's own slot: sees its effect
        if isinstance(event, FrameDecoded):
            item = window.stack_panel.list.item(event.position)
            seen.append((event.position, event.name, window.stack_panel.list.count(),
                         bool(item.flags() & Qt.ItemFlag.ItemIsUserCheckable)))

    window.file_runner.progressed.connect(on_progress)
    open_and_wait(qtbot, window, [stack_folder])
    # One event per frame, in order, each frame listed (greyed, not yet tickable) before the next decodes.
    assert seen == [(0, "frame_1.png", 1, False), (1, "frame_2.png", 2, False), (2, "frame_3.png", 3, False)]
    panel = window.stack_panel
    assert panel.list.count() == 3 and window.active_indices == [0, 1, 2]
    # Once open, the list is the stack's: checkable, with the thumbnails.
    assert all(panel.list.item(row).flags() & Qt.ItemFlag.ItemIsUserCheckable for row in range(3))
    assert all(not panel.list.item(row).icon().isNull() for row in range(3))


def test_each_frame_is_decoded_once(qtbot: QtBot, window: MainWindow, stack_folder: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[str] = []
    real_decode = tolerant.decode_frame

    def counting(info: Any) -> np.ndarray:
        decoded.append(info.name)
        return real_decode(info)

    monkeypatch.setattr(tolerant, "decode_frame", counting)
    window.metrics_panel.auto.setChecked(False)
    open_and_wait(qtbot, window, [stack_folder])
    fuse_and_wait(qtbot, window)
    for index in range(3):  # the frame view reads the same frames
        window.display.show_frame(index)
    qtbot.wait(200)
    assert sorted(decoded) == ["frame_1.png", "frame_2.png", "frame_3.png"]


def test_a_cancelled_load_gives_the_stack_its_list_back(qtbot: QtBot, window: MainWindow, stack_folder: Path,
                                                       tmp_path: Path) -> None:
    open_and_wait(qtbot, window, [stack_folder])
    window.stack_panel.set_included(1, False)
    other = tmp_path / "other"
    write_synthetic_stack(other, count=3, size=40)
    listed: list[int] = []

    def cancel_after_the_first_frame(event: Any) -> None:
        if isinstance(event, FrameDecoded) and not listed:
            listed.append(window.stack_panel.list.count())
            window.file_runner.cancel()

    window.file_runner.progressed.connect(cancel_after_the_first_frame)
    with qtbot.waitSignal(window.file_runner.cancelled, timeout=10000):
        window.open_paths([str(other)])
    qtbot.waitUntil(lambda: window.file_runner.live_workers == 0, timeout=10000)
    assert listed == [1]  # the new stack's first frame had replaced the list
    panel = window.stack_panel
    names = [panel.list.item(row).text().split("\n")[0] for row in range(panel.list.count())]
    assert names == ["frame_1.png", "frame_3.png", "frame_2.png"]  # the included ones, then the excluded
    assert window.active_indices == [0, 2] and len(window.loaded_stack) == 3
    assert panel.excluded() == [1]
    assert all(panel.list.item(row).flags() & Qt.ItemFlag.ItemIsUserCheckable for row in range(3))
