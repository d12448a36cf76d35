"""Opening stacks: folders, files, drops, bad files, reorder/exclude/add."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from focusstudio.gui.main_window import MainWindow
from tests.gui.conftest import open_and_wait, write_synthetic_stack


def test_window_opens_empty(window: MainWindow) -> None:
    assert window.windowTitle() == "FocusStudio"
    assert window.loaded_stack is None
    assert not window.fuse_button.isEnabled()
    assert not window.export_action.isEnabled()
    assert window.stack_panel.list.count() == 0
    assert not window.windowIcon().isNull()


def test_opening_a_folder_lists_its_frames(qtbot: QtBot, window: MainWindow, stack_folder: Path) -> None:
    open_and_wait(qtbot, window, [stack_folder])
    panel = window.stack_panel
    assert panel.list.count() == 3
    assert [panel.list.item(row).text().split("\n")[0] for row in range(3)] == [
        "frame_1.png", "frame_2.png", "frame_3.png"]
    assert "3 frames · 48×48 · 8-bit RGB" in panel.summary.text()
    assert all(not panel.list.item(row).icon().isNull() for row in range(3))
    assert window.active_indices == [0, 1, 2]
    assert window.fuse_button.isEnabled()
    assert window.app_settings.recent_stacks()[0] == [str(stack_folder)]


def test_sixteen_bit_depth_is_shown(qtbot: QtBot, window: MainWindow, tmp_path: Path) -> None:
    write_synthetic_stack(tmp_path / "deep", count=2, dtype="uint16")
    open_and_wait(qtbot, window, [tmp_path / "deep"])
    assert "2 frames · 48×48 · 16-bit RGB" in window.stack_panel.summary.text()


def test_bad_files_are_reported_in_one_dialog_while_good_ones_load(
    qtbot: QtBot, window: MainWindow, stack_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (stack_folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    (stack_folder / "empty.jpg").write_bytes(b"")
    write_synthetic_stack(stack_folder / "odd", count=1, size=20)
    (stack_folder / "odd" / "frame_1.png").rename(stack_folder / "wrong_size.png")
    dialogs: list[tuple[str, str]] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _parent, title, text, *a: dialogs.append((title, text)))
    open_and_wait(qtbot, window, [stack_folder])
    assert len(dialogs) == 1, dialogs
    text = dialogs[0][1]
    for name in ("broken.png", "empty.jpg", "wrong_size.png"):
        assert name in text
    assert "3 files could not be used" in text
    assert "other 3 frames were loaded" in text
    assert window.stack_panel.list.count() == 3


# PySide marks QDragEnterEvent's only constructor deprecated; there is no other way to build one.
@pytest.mark.filterwarnings("ignore:Function.*QDragEnterEvent:DeprecationWarning")
def test_dropping_a_folder_on_the_window_opens_it(qtbot: QtBot, window: MainWindow, stack_folder: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(stack_folder))])
    enter = QDragEnterEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    drop = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    # Qt delivers drag events only during a real drag, so the handlers are called as Qt would.
    window.dragEnterEvent(enter)
    assert enter.isAccepted()
    with qtbot.waitSignal(window.stackLoaded, timeout=10000):
        window.dropEvent(drop)
    assert window.stack_panel.list.count() == 3


def test_files_dropped_on_the_frame_list_are_added(
    qtbot: QtBot, window: MainWindow, stack_folder: Path, tmp_path: Path
) -> None:
    open_and_wait(qtbot, window, [stack_folder])
    extra = write_synthetic_stack(tmp_path / "extra", count=1)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(extra[0]))])
    drop = QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.stackLoaded, timeout=10000):
        window.stack_panel.list.dropEvent(drop)
    assert window.loaded_stack is not None and len(window.loaded_stack) == 4


def test_dropped_files_are_naturally_sorted(qtbot: QtBot, window: MainWindow, tmp_path: Path) -> None:
    paths = write_synthetic_stack(tmp_path / "s", count=3)
    renamed = []
    for path, name in zip(paths, ("img10.png", "img2.png", "img1.png")):
        renamed.append(path.rename(path.with_name(name)))
    open_and_wait(qtbot, window, renamed)
    assert window.loaded_stack is not None
    assert window.loaded_stack.names == ["img1.png", "img2.png", "img10.png"]


def test_reorder_exclude_and_add(qtbot: QtBot, window: MainWindow, stack_folder: Path, tmp_path: Path) -> None:
    open_and_wait(qtbot, window, [stack_folder])
    panel = window.stack_panel
    panel.set_order([2, 0, 1])
    panel.set_included(0, False)
    assert window.active_indices == [2, 1]
    stack = window.active_stack()
    assert stack is not None and stack.names == ["frame_3.png", "frame_2.png"]

    extra = write_synthetic_stack(tmp_path / "extra", count=2)
    open_and_wait(qtbot, window, [extra[0]], add=True)
    assert window.loaded_stack is not None and len(window.loaded_stack) == 4
    # The user's order and exclusions survive; the new frame is appended and included.
    assert panel.order() == [2, 0, 1, 3]
    assert window.active_indices == [2, 1, 3]
    added = window.active_stack()
    assert added is not None and added.load(2).shape == (48, 48, 3)


def test_adding_a_frame_of_another_size_is_refused(
    qtbot: QtBot, window: MainWindow, stack_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_and_wait(qtbot, window, [stack_folder])
    small = write_synthetic_stack(tmp_path / "small", count=1, size=20)
    dialogs: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _parent, _title, text, *a: dialogs.append(text))
    open_and_wait(qtbot, window, small, add=True)
    assert len(dialogs) == 1 and "20×20" in dialogs[0] and "48×48" in dialogs[0]
    assert window.loaded_stack is not None and len(window.loaded_stack) == 3
