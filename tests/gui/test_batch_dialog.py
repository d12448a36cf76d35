"""The Batch dialog: opened from Fusion → Batch…, runs the core batch with a per-stack queue,
cancels, and opens a result."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pytestqt.qtbot import QtBot

from focusstudio.gui.batch_dialog import BatchDialog
from tests.core.test_batch import BROKEN, write_stacks

WAIT_MS = 30_000


def _select(dialog: BatchDialog, method: str, align: bool | None) -> None:
    dialog.method_combo.setCurrentIndex(dialog.method_combo.findData(method))
    dialog.align_combo.setCurrentIndex(dialog.align_combo.findData(align))


def test_the_dialog_runs_the_batch_shows_each_stack_and_opens_a_result(
    qtbot: QtBot, tmp_path: Path, make_window: Callable[..., object]
) -> None:
    window = make_window()
    window.batch_action.trigger()  # type: ignore[attr-defined]
    dialog: BatchDialog = window._batch_dialog  # type: ignore[attr-defined]
    qtbot.waitExposed(dialog)
    opened: list[Path] = []
    dialog._open_result = opened.append
    root = write_stacks(tmp_path / "root", count=4, size=40)
    dialog.root_edit.setText(str(root))
    dialog.output_edit.setText(str(tmp_path / "out"))
    _select(dialog, "sf", False)
    dialog.param_form.set_values({"sf_radius": 3})
    dialog.start_button.click()
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=WAIT_MS)
    assert [dialog.row_status(row) for row in range(4)] == ["done", "done", "done", "failed"]
    reason = dialog.table.item(3, 3).text()
    assert BROKEN in reason and "2.png" in reason
    assert dialog.report is not None and dialog.report.count("done") == 3
    assert "3 fused" in dialog.status_label.text()
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tif")) == ["s0_sf.tif", "s1_sf.tif", "s2_sf.tif"]
    assert '"sf_radius": 3' in (tmp_path / "out" / "s0_sf.tif.json").read_text()

    assert not dialog.open_button.isEnabled()
    dialog.table.selectRow(3)  # the failed stack has no result
    assert not dialog.open_button.isEnabled()
    dialog.table.selectRow(1)
    dialog.open_button.click()
    assert opened == [tmp_path / "out" / "s1_sf.tif"]

    # Start again: the finished stacks are skipped.
    dialog.start_button.click()
    qtbot.waitUntil(lambda: not dialog.runner.busy, timeout=WAIT_MS)
    assert [dialog.row_status(row) for row in range(4)] == ["skipped", "skipped", "skipped", "failed"]


def test_cancel_stops_the_batch_and_keeps_finished_stacks(qtbot: QtBot, tmp_path: Path) -> None:
    dialog = BatchDialog()
    qtbot.addWidget(dialog)
    root = write_stacks(tmp_path / "root", count=3, size=32, broken=None)
    dialog.root_edit.setText(str(root))
    dialog.output_edit.setText(str(tmp_path / "out"))
    _select(dialog, "slow_test", False)
    dialog.start_button.click()
    qtbot.waitUntil(lambda: dialog.row_status(0) == "running", timeout=WAIT_MS)
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: not dialog.runner.busy, timeout=WAIT_MS)
    assert dialog.row_status(0) == "cancelled"
    assert "Cancelled" in dialog.status_label.text()
    assert dialog.start_button.isEnabled() and not dialog.cancel_button.isEnabled()
    assert not list((tmp_path / "out").glob("*.tif"))


def test_a_bad_root_is_one_line_in_the_dialog(qtbot: QtBot, tmp_path: Path) -> None:
    dialog = BatchDialog()
    qtbot.addWidget(dialog)
    dialog.root_edit.setText(str(tmp_path / "missing"))
    dialog.start_button.click()
    assert "does not exist" in dialog.status_label.text()
    assert not dialog.runner.busy
