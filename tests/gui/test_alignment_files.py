"""Saved registrations in the window: File → Save alignment… / Load alignment… (one rig's registration
serves many stacks), a misfit refused in one line, and the Alignment tab's per-frame table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pytestqt.qtbot import QtBot

from focusstudio.core.align import load_alignment
from focusstudio.gui.main_window import MainWindow
from tests.gui.conftest import fuse_and_wait
from tests.gui.test_alignment import shifted  # noqa: F401  (the fixture: a 3-frame handheld stack)


def _no_estimation(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("the frames were registered although a saved registration was loaded")


def test_save_writes_the_registration_and_the_table_has_a_row_per_frame(
    qtbot: QtBot, shifted: MainWindow, tmp_path: Path  # noqa: F811
) -> None:
    assert not shifted.alignments.save_action.isEnabled()  # nothing registered yet
    fuse_and_wait(qtbot, shifted)
    alignment = shifted.results["A"].alignment
    assert alignment is not None and shifted.alignments.save_action.isEnabled()
    table = shifted.alignments.panel.frames
    assert table.rowCount() == 3
    assert [table.item(row, 0).text() for row in range(3)] == ["1", "2", "3"]  # 1-based
    shift_column = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())].index("Shift x")
    shifts = [float(table.item(row, shift_column).text()) for row in range(3)]
    expected = [alignment.frames[row].parameters(alignment.shape[1], alignment.shape[0])["shift_x"]
                for row in range(3)]
    assert np.allclose(shifts, expected, atol=0.006)  # shown to 2 decimals
    target = tmp_path / "rig.json"
    assert shifted.alignments.save_to(target) == target.resolve()
    again = load_alignment(target)
    assert len(again.frames) == 3 and again.shape == alignment.shape
    assert all(np.allclose(a, b, atol=1e-9) for a, b in zip(again.matrices, alignment.matrices, strict=True))
    # Never over an input frame: the output policy refuses it (one-line dialog), the frame is kept.
    frame = next(iter(shifted.workspace.active_stack().frames)).path
    before = frame.read_bytes()
    shown: list[str] = []
    from PySide6.QtWidgets import QMessageBox

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(QMessageBox, "warning", lambda _p, _t, text, *a, **k: shown.append(text))
        assert shifted.alignments.save_to(frame, overwrite=True) is None
    assert len(shown) == 1 and "\n" not in shown[0] and frame.read_bytes() == before


def test_a_loaded_registration_is_applied_without_registering(
    qtbot: QtBot, shifted: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    fuse_and_wait(qtbot, shifted)
    estimated = shifted.results["A"].alignment
    target = tmp_path / "rig.json"
    shifted.alignments.save_to(target)
    # Another rig's registration: frame 3 moved half a pixel more (so applying it is visible).
    data = json.loads(target.read_text())
    data["frames"][2]["matrix"][0][2] += 0.5
    target.write_text(json.dumps(data))
    monkeypatch.setattr("focusstudio.core.align.stage.estimate_alignment", _no_estimation)
    assert shifted.alignments.load(target)
    assert "using registration from rig.json" in shifted.alignments.panel.loaded.text().lower()
    assert shifted.alignments.panel.loaded_row.isVisibleTo(shifted.alignments.panel)
    fuse_and_wait(qtbot, shifted)
    outcome = shifted.results["A"]
    assert outcome.alignment is shifted.alignments.saved and outcome.alignment is not estimated
    assert outcome.alignment.frames[2].matrix[0, 2] == pytest.approx(estimated.frames[2].matrix[0, 2] + 0.5)
    assert "with the loaded registration" in shifted.align_summary.text()
    # Even with "Align frames: Never" the loaded registration applies (it was asked for explicitly).
    shifted.set_alignment_mode("off")
    fuse_and_wait(qtbot, shifted)
    assert shifted.results["A"].alignment is shifted.alignments.saved
    # Cleared: the tab's settings decide again (Never: the frames as loaded).
    shifted.alignments.panel.clear_loaded.click()
    assert shifted.alignments.saved is None and not shifted.alignments.panel.loaded_row.isVisibleTo(
        shifted.alignments.panel)
    fuse_and_wait(qtbot, shifted)
    assert shifted.results["A"].alignment is None


def test_a_registration_of_other_frames_is_refused_in_one_line(
    qtbot: QtBot, shifted: MainWindow, tmp_path: Path, no_modal_dialogs: list[str]  # noqa: F811
) -> None:
    fuse_and_wait(qtbot, shifted)
    target = tmp_path / "other_rig.json"
    shifted.alignments.save_to(target)
    data = json.loads(target.read_text())
    data["frame_width"] += 10
    target.write_text(json.dumps(data))
    assert not shifted.alignments.load(target)
    assert len(no_modal_dialogs) == 1
    message = no_modal_dialogs[0]
    assert "\n" not in message and "other_rig.json" in message and "frames of" in message
    assert shifted.alignments.saved is None and not shifted.alignments.panel.loaded_row.isVisibleTo(
        shifted.alignments.panel)
    no_modal_dialogs.clear()  # the dialog was the expected answer


def test_a_loaded_registration_that_no_longer_fits_the_frames_is_refused_at_fuse(
    qtbot: QtBot, shifted: MainWindow, tmp_path: Path, no_modal_dialogs: list[str]  # noqa: F811
) -> None:
    fuse_and_wait(qtbot, shifted)
    target = tmp_path / "rig.json"
    shifted.alignments.save_to(target)
    assert shifted.alignments.load(target)
    shifted.workspace.set_active([0, 1])  # a frame left out since: 2 frames, the file holds 3
    assert shifted.fuse() is None
    assert len(no_modal_dialogs) == 1 and "\n" not in no_modal_dialogs[0] and "rig.json" in no_modal_dialogs[0]
    no_modal_dialogs.clear()  # the dialog was the expected answer
