"""While a stack opens, the main view shows its frames as they are decoded: the first at once,
then the one the user selects in the list; once open, the frame shown stays (not decoded again)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from focusstudio.core.io import tolerant
from focusstudio.gui.main_window import MainWindow
from focusstudio.gui.view_state import frame_key
from tests.gui.conftest import open_and_wait, write_synthetic_stack


class GatedDecoder:
    """The tolerant loader's decoder, holding every frame from ``hold_from`` on until the test
    opens the gate: the load is then provably still running while the test looks at the view."""

    def __init__(self, hold_from: int) -> None:
        self.hold_from = hold_from
        self.gate = threading.Event()
        self.decoded: list[str] = []
        self._real = tolerant.decode_frame

    def __call__(self, info: Any) -> np.ndarray:
        if len(self.decoded) >= self.hold_from:
            self.gate.wait(20)  # never forever: a failing test must still end its worker
        self.decoded.append(info.name)
        return self._real(info)


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[int], GatedDecoder]]:
    made: list[GatedDecoder] = []

    def install(hold_from: int) -> GatedDecoder:
        decoder = GatedDecoder(hold_from)
        monkeypatch.setattr(tolerant, "decode_frame", decoder)
        made.append(decoder)
        return decoder

    yield install
    for decoder in made:
        decoder.gate.set()


def pixels(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]


def shown(window: MainWindow) -> np.ndarray | None:
    """The base image the view shows now (what the viewer's image item was given)."""
    if window.viewer.main.image_shape is None:
        return None
    return window.display.layer_image(window.state.base)


def test_the_first_frame_is_in_the_view_while_the_rest_decode(qtbot: QtBot, window: MainWindow, stack_folder: Path,
                                                              gated: Callable[[int], GatedDecoder]) -> None:
    decoder = gated(1)  # frames 2 and 3 wait
    window.open_paths([str(stack_folder)])
    qtbot.waitUntil(lambda: window.viewer.main.image_shape == (48, 48), timeout=8000)
    assert window.file_runner.busy and decoder.decoded == ["frame_1.png"]  # still opening
    assert window.state.base == frame_key(0)
    assert window.viewer.main_caption.text() == "Frame 1: frame_1.png"
    image = shown(window)
    assert image is not None and np.array_equal(image, pixels(stack_folder / "frame_1.png"))
    assert window.display.layer_choices() == [("Frame 1: frame_1.png", frame_key(0))]
    with qtbot.waitSignal(window.stackLoaded, timeout=10000):
        decoder.gate.set()
    # Open: the same frame stays on screen, made from the frames decoded once.
    assert window.state.base == frame_key(0) and window.viewer.main.image_shape == (48, 48)
    assert window.stack_panel.current_index() is None  # nothing picked: nothing selected
    assert sorted(decoder.decoded) == ["frame_1.png", "frame_2.png", "frame_3.png"]
    qtbot.wait(100)
    assert len(decoder.decoded) == 3


def test_the_view_follows_the_frame_selected_while_the_rest_decode(qtbot: QtBot, window: MainWindow,
                                                                   stack_folder: Path,
                                                                   gated: Callable[[int], GatedDecoder]) -> None:
    decoder = gated(2)  # frame 3 waits
    window.open_paths([str(stack_folder)])
    panel = window.stack_panel
    qtbot.waitUntil(lambda: panel.list.count() == 2 and window.viewer.main.image_shape is not None, timeout=8000)
    assert window.file_runner.busy
    # The user clicks the second frame, greyed in the list (not yet tickable, but selectable).
    item = panel.list.item(1)
    assert item.flags() & Qt.ItemFlag.ItemIsSelectable and not item.flags() & Qt.ItemFlag.ItemIsUserCheckable
    qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton,
                     pos=panel.list.visualItemRect(item).center())
    qtbot.waitUntil(lambda: window.viewer.main_caption.text() == "Frame 2: frame_2.png", timeout=8000)
    assert np.array_equal(shown(window), pixels(stack_folder / "frame_2.png"))
    assert window.file_runner.busy and len(decoder.decoded) == 2
    assert window.show_combo.currentText() == "Frame 2: frame_2.png"  # the toolbar says so too
    with qtbot.waitSignal(window.stackLoaded, timeout=10000):
        decoder.gate.set()
    # Open: the frame the user chose stays shown and selected; the list is the stack's.
    assert window.state.base == frame_key(1)
    assert np.array_equal(shown(window), pixels(stack_folder / "frame_2.png"))
    assert panel.current_index() == 1
    assert all(panel.list.item(row).flags() & Qt.ItemFlag.ItemIsUserCheckable for row in range(3))
    # Once open, a click selects (to tick or reorder) without changing the view.
    qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton,
                     pos=panel.list.visualItemRect(panel.list.item(2)).center())
    assert panel.current_index() == 2 and window.state.base == frame_key(1)


def test_a_cancelled_opening_gives_the_view_back(qtbot: QtBot, window: MainWindow, stack_folder: Path,
                                                 tmp_path: Path, gated: Callable[[int], GatedDecoder]) -> None:
    open_and_wait(qtbot, window, [stack_folder])
    qtbot.waitUntil(lambda: window.viewer.main.image_shape == (48, 48), timeout=8000)
    other = tmp_path / "other"
    write_synthetic_stack(other, count=3, size=40)
    decoder = gated(1)  # the other stack's frames 2 and 3 wait
    window.open_paths([str(other)])
    qtbot.waitUntil(lambda: window.viewer.main.image_shape == (40, 40), timeout=8000)
    assert np.array_equal(shown(window), pixels(other / "frame_1.png"))
    with qtbot.waitSignal(window.file_runner.cancelled, timeout=10000):
        window.file_runner.cancel()
        decoder.gate.set()
    qtbot.waitUntil(lambda: window.viewer.main.image_shape == (48, 48), timeout=8000)
    assert window.viewer.main_caption.text() == "Frame 1: frame_1.png"
    assert np.array_equal(shown(window), pixels(stack_folder / "frame_1.png"))
    assert [title for title, _ in window.display.layer_choices()] == [
        f"Frame {k + 1}: frame_{k + 1}.png" for k in range(3)]
