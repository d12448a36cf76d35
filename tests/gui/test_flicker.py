"""The Alignment tab's flicker: two frames in turn, aligned and as loaded, with their overlap numbers."""

from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from focusstudio.gui.flicker import FLICKER_MS
from focusstudio.gui.main_window import MainWindow
from tests.gui.conftest import fuse_and_wait, open_and_wait
from tests.gui.test_alignment import SIZE, _write_shifted_stack


def _aligned_window(qtbot: QtBot, make_window: object, tmp_path: Path) -> MainWindow:
    window: MainWindow = make_window("sf")  # type: ignore[operator]
    window.metrics_panel.auto.setChecked(False)
    _write_shifted_stack(tmp_path / "handheld")
    open_and_wait(qtbot, window, [tmp_path / "handheld"])
    return window


def test_flicker_alternates_two_aligned_frames_and_the_same_two_as_loaded(
        qtbot: QtBot, make_window: object, tmp_path: Path) -> None:
    window = _aligned_window(qtbot, make_window, tmp_path)
    button = window.alignment_panel.flicker_button
    assert not button.isEnabled()  # nothing aligned yet
    fuse_and_wait(qtbot, window)
    alignment = window.results["A"].alignment
    assert alignment is not None and button.isEnabled()
    dialog = window.flicker.open()
    assert dialog is not None and dialog.isVisible()
    qtbot.waitUntil(lambda: window.flicker.frames is not None, timeout=10000)
    frames = window.flicker.frames
    assert frames is not None
    # The reference against another frame, each listed by its 1-based number.
    assert dialog.first.currentData() == alignment.reference and frames.first == alignment.reference
    assert frames.second != frames.first and dialog.second.currentText().startswith(f"{frames.second + 1}: ")
    # Aligned frames are the fused (cropped) ones; as loaded, the files' own size.
    _, _, width, height = alignment.crop_box  # type: ignore[misc]
    assert frames.aligned[0].shape[:2] == (height, width) and frames.loaded[0].shape[:2] == (SIZE, SIZE)
    # The frames take turns on screen.
    captions = {dialog.caption.text()}
    qtbot.waitUntil(lambda: captions.add(dialog.caption.text()) or len(captions) == 2, timeout=4 * FLICKER_MS + 2000)
    assert all(caption.endswith("— aligned") for caption in captions)
    numbers = {caption.split(":")[0] for caption in captions}
    assert numbers == {f"Frame {frames.first + 1}", f"Frame {frames.second + 1}"}
    dialog.aligned.setChecked(False)
    assert dialog.caption.text().endswith("— as loaded")
    # The numbers: the registration removed the motion between the two frames.
    check = frames.check
    assert check.aligned.correlation > check.loaded.correlation
    assert check.aligned.mean_difference < check.loaded.mean_difference
    assert f"frames {frames.first + 1} and {frames.second + 1}" in dialog.check.text()
    dialog.pause.setChecked(True)
    assert not window.flicker.timer.isActive()
    dialog.close()
    assert not window.flicker.timer.isActive()


def test_the_selected_table_row_is_flicked_against_the_reference(qtbot: QtBot, make_window: object,
                                                                 tmp_path: Path) -> None:
    window = _aligned_window(qtbot, make_window, tmp_path)
    fuse_and_wait(qtbot, window)
    reference = window.results["A"].alignment.reference  # type: ignore[union-attr]
    other = next(index for index in range(3) if index != reference)
    table = window.alignment_panel.frames
    row = next(row for row in range(table.rowCount()) if table.item(row, 0).text() == str(other + 1))
    table.setCurrentCell(row, 0)
    window.alignment_panel.flicker_button.click()
    dialog = window.flicker.dialog
    assert dialog is not None and dialog.second.currentData() == other
    qtbot.waitUntil(lambda: window.flicker.frames is not None and window.flicker.frames.second == other,
                    timeout=10000)
    dialog.close()


def test_an_unaligned_fusion_turns_the_flicker_off(qtbot: QtBot, make_window: object, tmp_path: Path) -> None:
    window = _aligned_window(qtbot, make_window, tmp_path)
    fuse_and_wait(qtbot, window)
    dialog = window.flicker.open()
    assert dialog is not None
    qtbot.waitUntil(lambda: window.flicker.frames is not None, timeout=10000)
    window.set_alignment_mode("off")
    fuse_and_wait(qtbot, window)
    assert not window.alignment_panel.flicker_button.isEnabled()
    assert not dialog.isVisible() and not window.flicker.timer.isActive()
    assert window.flicker.open() is None  # says why in the status bar instead
    assert "alignment on" in window.statusBar().currentMessage()
