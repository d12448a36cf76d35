"""The window explains itself (#19): the telling map after a fusion, its legend, maps grouped by kind,
overlays bound to the result they describe."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from focusstudio.gui.main_window import MainWindow
from focusstudio.gui.view_state import frame_key
from focusstudio.gui.viewer import CATEGORICAL
from tests.gui.conftest import fuse_and_wait, open_and_wait


@pytest.fixture
def fused(qtbot: QtBot, window: MainWindow, stack_folder: Path) -> MainWindow:
    open_and_wait(qtbot, window, [stack_folder])
    fuse_and_wait(qtbot, window)
    return window


def test_a_fusion_shows_its_index_map_with_a_legend_of_frames(fused: MainWindow) -> None:
    visible = [overlay.name for overlay in fused.state.visible_overlays()]
    assert visible == ["index"]  # 3 frames: where each pixel came from
    assert fused.viewer.overlay_items["index"].isVisible()
    legend = fused.layers_panel.legend
    assert not legend.isHidden()
    assert legend.labels() == ["1: frame_1.png", "2: frame_2.png", "3: frame_3.png"]
    # The swatches are the colours the overlay paints frame k with (categorical, Tableau 10).
    from PySide6.QtWidgets import QLabel

    swatches = [w for w in legend.findChildren(QLabel) if w.width() == 14 and "background" in w.styleSheet()]
    colours = [w.styleSheet().split("background: ")[1].split(";")[0] for w in swatches]
    assert colours == ["#{:02x}{:02x}{:02x}".format(*CATEGORICAL[k]) for k in range(3)]


def test_maps_are_grouped_by_kind_and_the_table_is_tall(fused: MainWindow) -> None:
    assert fused.layers_panel.map_names() == ["index", "decision", "activity"]
    table = fused.layers_panel.table
    assert [table.item(row, 1).text() for row in range(3)] == ["index", "decision", "activity"]
    assert all(table.item(row, 1).font().bold() for row in range(3))  # each the first of its kind
    assert table.minimumHeight() >= 4 * table.verticalHeader().defaultSectionSize()
    assert table.height() >= table.minimumHeight()


def test_the_users_choice_of_maps_survives_the_next_fusion(qtbot: QtBot, fused: MainWindow) -> None:
    fused.state.update_overlay("index", visible=False)
    fuse_and_wait(qtbot, fused)
    assert fused.state.visible_overlays() == []
    assert fused.layers_panel.legend.isHidden()


def test_result_overlays_are_not_painted_over_source_frames(qtbot: QtBot, fused: MainWindow) -> None:
    item = fused.viewer.overlay_items["index"]
    assert item.isVisible()
    fused.toggle_before_after()  # to a source frame
    assert fused.state.base == frame_key(0)
    assert not item.isVisible() and fused.layers_panel.legend.isHidden()
    fused.display.show_frame(2)  # the per-frame view
    assert not item.isVisible()
    fused.toggle_before_after()  # back to the result: its overlay returns
    assert fused.state.base == "result:A"
    assert item.isVisible() and not fused.layers_panel.legend.isHidden()


def test_a_pair_shows_its_decision_map(qtbot: QtBot, window: MainWindow, stack_folder: Path) -> None:
    open_and_wait(qtbot, window, sorted(stack_folder.iterdir())[:2])
    fuse_and_wait(qtbot, window)
    assert [overlay.name for overlay in window.state.visible_overlays()] == ["decision"]
    assert window.layers_panel.legend.labels() == ["1: frame_1.png", "2: frame_2.png"]


# ---------------------------------------------------------------------------- the stack list
def test_an_odd_file_sorting_first_does_not_decide_the_stack_size(
        qtbot: QtBot, window: MainWindow, stack_folder: Path, no_modal_dialogs: list[str]) -> None:
    import cv2
    import numpy as np

    cv2.imwrite(str(stack_folder / "a_preview.png"), np.zeros((10, 20, 3), np.uint8))
    open_and_wait(qtbot, window, [stack_folder])
    assert window.loaded_stack is not None and window.loaded_stack.names == [
        "frame_1.png", "frame_2.png", "frame_3.png"]
    assert len(no_modal_dialogs) == 1 and "a_preview.png: is 20×10 pixels but the stack is 48×48" in no_modal_dialogs[0]
    no_modal_dialogs.clear()


def test_dropping_a_file_again_does_not_add_it_twice(
        qtbot: QtBot, window: MainWindow, stack_folder: Path, no_modal_dialogs: list[str]) -> None:
    open_and_wait(qtbot, window, [stack_folder])
    open_and_wait(qtbot, window, [stack_folder / "frame_2.png"], add=True)
    assert window.loaded_stack is not None and len(window.loaded_stack) == 3
    assert window.stack_panel.list.count() == 3
    assert "frame_2.png: is already in the stack" in no_modal_dialogs[0]
    no_modal_dialogs.clear()


def test_frames_are_removed_and_reordered_from_the_keyboard(
        qtbot: QtBot, window: MainWindow, stack_folder: Path) -> None:
    from PySide6.QtCore import Qt

    open_and_wait(qtbot, window, [stack_folder])
    panel = window.stack_panel
    texts = [action.text() for action in panel.list.actions() if not action.isSeparator()]
    assert panel.list.contextMenuPolicy() == Qt.ContextMenuPolicy.ActionsContextMenu
    assert "Remove from the stack" in texts and "Move up" in texts and "Move down" in texts
    panel.list.setFocus()
    panel.list.setCurrentRow(0)
    qtbot.keyClick(panel.list, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    assert panel.order() == [1, 0, 2] and window.active_indices == [1, 0, 2]
    assert panel.list.currentRow() == 1
    panel.set_included(2, False)
    panel.list.setCurrentRow(0)  # frame_2.png
    qtbot.keyClick(panel.list, Qt.Key.Key_Delete)
    assert window.loaded_stack is not None and window.loaded_stack.names == ["frame_1.png", "frame_3.png"]
    # The order and the unticked frame survive the removal.
    assert panel.order() == [0, 1] and panel.excluded() == [1] and window.active_indices == [0]
    assert [panel.list.item(r).text().split("\n")[0] for r in range(2)] == ["frame_1.png", "frame_3.png"]


# ---------------------------------------------------------------------------- geometry and memory
def test_the_first_window_fits_a_1366x768_screen(
        qtbot: QtBot, make_window: object, monkeypatch: pytest.MonkeyPatch, stack_folder: Path) -> None:
    from PySide6.QtCore import QPoint, QRect

    from focusstudio.gui import window_memory

    available = QRect(0, 0, 1366, 728)  # 1366×768 less a 40 px taskbar
    monkeypatch.setattr(window_memory, "available_rect", lambda _window: available)
    window = make_window()  # type: ignore[operator]
    open_and_wait(qtbot, window, [stack_folder])
    fuse_and_wait(qtbot, window)  # the overlays, their legend and histogram are shown now
    qtbot.wait(50)
    # The short screen folds the histogram away: the parameters get the room; one click brings it.
    assert window.layers_panel.histogram.isHidden() and not window.layers_panel.levels_check.isChecked()
    window.layers_panel.levels_check.setChecked(True)
    assert not window.layers_panel.histogram.isHidden()
    assert available.contains(window.frameGeometry()), window.frameGeometry()
    inside = window.rect()
    for widget in (window.cancel_button, window.fuse_button, window.metrics_panel, window.statusBar()):
        top_left = widget.mapTo(window, QPoint(0, 0))
        assert inside.contains(QRect(top_left, widget.size())), (widget.objectName(), top_left, widget.size())
    window.show_busy("Fusing", 0.5)
    top_left = window.progress.mapTo(window, QPoint(0, 0))
    assert inside.contains(QRect(top_left, window.progress.size()))
    window.hide_busy()


def test_parameters_alignment_and_method_are_remembered_across_starts(
        qtbot: QtBot, make_window: object) -> None:
    first = make_window()  # type: ignore[operator]
    name, changed = "window", 5  # the fake method's default is 3
    first.param_form.set_values({name: changed})
    first.set_alignment_mode("off")
    align_name = next(iter(first.align_form.values()))
    first.close()
    second = make_window(method="")  # type: ignore[operator]
    assert second.method is not None and second.method.name == first.method.name
    assert second.param_form.values()[name] == changed
    assert second.align_mode.currentData() == "off"
    assert second.align_form.values()[align_name] == first.align_form.values()[align_name]


def test_a_dock_layout_saved_by_an_older_version_is_ignored(qtbot: QtBot, make_window: object) -> None:
    from PySide6.QtCore import QByteArray, Qt

    from focusstudio.gui import window_memory

    first = make_window()  # type: ignore[operator]
    first.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, first.method_dock)  # an old, other layout
    old_state = QByteArray(first.saveState())  # version 0: what saveState() wrote before versions
    assert window_memory.DOCK_LAYOUT_VERSION != 0
    first.close()
    first.app_settings.save_window(QByteArray(first.saveGeometry()), old_state)
    second = make_window()  # type: ignore[operator]
    assert second.dockWidgetArea(second.method_dock) == Qt.DockWidgetArea.RightDockWidgetArea
    assert second.retouch_dock in second.tabifiedDockWidgets(second.method_dock)
    second.close()  # this start's own layout is saved with the current version and restored
    third = make_window()  # type: ignore[operator]
    assert third.retouch_dock in third.tabifiedDockWidgets(third.method_dock)


# ---------------------------------------------------------------------------- numbering, timing, progress
def test_progress_says_stage_percentage_and_time_left() -> None:
    from focusstudio.gui.progress_text import ProgressClock

    now = [100.0]
    clock = ProgressClock(lambda: now[0])
    assert clock.text("Align", 0.0, "aligning 6 frames to frame 4") == "Align: aligning 6 frames to frame 4 — 0 %"
    now[0] += 10.0
    # A quarter in 10 s: three quarters left take about 30 s.
    assert clock.text("Analysing", 0.25) == "Analysing — 25 % · about 30 s left"
    clock.reset()
    assert clock.text("Opening", 0.5) == "Opening — 50 %"  # a new job: too early to say


def test_the_timing_label_includes_alignment_and_total(qtbot: QtBot, fused: MainWindow) -> None:
    outcome = fused.results["A"]
    assert outcome.alignment is not None  # 3 frames are aligned by default
    text = fused.timing_label.text()
    assert text.startswith("fake_test: ") and " in all (alignment " in text and ", fusion " in text
    assert fused.progress.isTextVisible() and fused.progress.format() == "%p %"


def test_frame_numbers_are_one_based_in_messages(fused: MainWindow) -> None:
    alignment = fused.results["A"].alignment
    assert alignment is not None
    lines = alignment.describe()
    heads = sorted(line.split(":")[0] for line in lines if line.startswith("frame "))
    assert heads == ["frame 1 (frame_1.png)", "frame 2 (frame_2.png)", "frame 3 (frame_3.png)"]
    text = fused.cursor_readout(0, 47)
    index_value = int(fused.results["A"].result.maps["index"].data[0, 47])
    assert f"index {index_value + 1}" in text and f"from frame {index_value + 1}" in text


# ---------------------------------------------------------------------------- comparing results of different sizes
def _with_b_as(window: MainWindow, display: object, crop_box: tuple[int, int, int, int] | None) -> None:
    """Result B as an aligned result of another size would be (its display image and crop box)."""
    import dataclasses

    outcome = window.results["B"]
    alignment = outcome.alignment or window.results["A"].alignment
    assert alignment is not None
    window.workspace.results["B"] = dataclasses.replace(
        outcome, display=display, alignment=dataclasses.replace(alignment, crop_box=crop_box))


def test_compare_a_b_wipes_over_the_common_area_of_a_cropped_result(qtbot: QtBot, fused: MainWindow) -> None:
    fuse_and_wait(qtbot, fused, "B")
    a_display = fused.results["A"].display
    _with_b_as(fused, a_display[2:46, 4:44].copy(), (4, 2, 40, 44))  # aligned and cropped; A is not:
    import dataclasses

    fused.workspace.results["A"] = dataclasses.replace(fused.results["A"], alignment=None)
    fused.compare_results()
    viewer = fused.viewer
    assert viewer.wipe_problem == "" and viewer.wipe_item.isVisible() and viewer.wipe_line.isVisible()
    rect = viewer.wipe_item.mapRectToParent(viewer.wipe_item.boundingRect())
    # The line is at column 24: B's columns from 20 on cover A's columns 24–44, rows 2–46.
    assert (rect.x(), rect.y(), rect.width(), rect.height()) == pytest.approx((24, 2, 20, 44))
    assert "(common area)" in viewer.main_caption.text()


def test_compare_a_b_says_why_when_the_common_area_is_unknown(
        qtbot: QtBot, fused: MainWindow) -> None:
    import numpy as np

    fuse_and_wait(qtbot, fused, "B")
    _with_b_as(fused, np.zeros((30, 40, 3), np.uint8), None)
    fused.compare_results()
    viewer = fused.viewer
    assert not viewer.wipe_item.isVisible()
    assert viewer.wipe_problem.startswith("No wipe with Result B") and "40×30" in viewer.wipe_problem
    assert viewer.wipe_problem in viewer.main_caption.text()
    assert fused.statusBar().currentMessage() == viewer.wipe_problem
    # The same view at another resolution is stretched over the base.
    _with_b_as(fused, fused.results["A"].display[::2, ::2].copy(), None)
    fused.state.set_wipe(True, "result:B")
    rect = viewer.wipe_item.mapRectToParent(viewer.wipe_item.boundingRect())
    assert viewer.wipe_problem == "" and (rect.x(), rect.width(), rect.height()) == pytest.approx((24, 24, 48))


# ---------------------------------------------------------------------------- weights
@pytest.fixture
def private_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No shipped weights, user weights in a temporary folder."""
    import platformdirs

    shipped = tmp_path / "shipped-weights"
    shipped.mkdir()
    monkeypatch.setenv("FOCUSSTUDIO_WEIGHTS_DIR", str(shipped))
    user = tmp_path / "user-data"
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda *args, **kwargs: str(user))
    return user


def test_load_weights_file_lists_each_file_once_and_sets_the_default_only_when_asked(
        qtbot: QtBot, make_window: object, tmp_path: Path, private_weights: Path) -> None:
    import torch

    from focusstudio.core.errors import WeightsError
    from focusstudio.core.methods.archs import SESFNet
    from focusstudio.core.training.manifest import save_weights
    from focusstudio.core.weights import install_user_weights, resolve_weights

    torch.manual_seed(0)
    source = tmp_path / "trained-elsewhere.pt"
    save_weights(source, "sesf", {"reduction": 8}, SESFNet().state_dict())
    install_user_weights(source, "first", "sesf")  # e.g. a short run of the training wizard
    window = make_window("")  # type: ignore[operator]
    window.select_method("sesf")
    chooser = window.weights_chooser
    assert chooser.load_button.isVisible() and chooser.load_button.text() == "Load…"

    def items() -> list[str]:
        return [chooser.combo.itemText(i) for i in range(chooser.combo.count())]

    assert items() == ["first (yours)"]  # chosen by name, not silently the default
    with pytest.raises(WeightsError, match="no default sesf weights"):
        resolve_weights("sesf")
    chooser.load_file(str(source), "second")
    assert items() == ["first (yours)", "second (yours)"] and chooser.current_reference() == "second"
    with pytest.raises(WeightsError):
        resolve_weights("sesf")
    chooser.load_file(str(source), "third", make_default=True)
    assert resolve_weights("sesf").name == "third"
    assert items() == ["Default: third (user weights)", "first (yours)", "second (yours)"]
    assert chooser.current_reference() is None  # the default item is the one file, listed once
    from focusstudio.core.weights import rename_user_weights

    rename_user_weights("third", "renamed")  # the default follows its weights
    assert resolve_weights("sesf").name == "renamed"


def test_showing_only_one_map_holds_across_results() -> None:
    import numpy as np

    from focusstudio.core.types import FusionMap
    from focusstudio.gui.view_state import ViewState

    state = ViewState()
    data = np.zeros((2, 2), np.float32)
    a = {"decision": FusionMap("decision", "decision", data), "index": FusionMap("index", "index", data)}
    b = {"index": FusionMap("index", "index", data.copy())}
    state.sync_maps(a)
    state.show_only("decision")
    state.sync_maps(b)  # result B has no decision map: its index map is shown
    state.show_only("index")
    state.sync_maps(a)  # back to A: one map, not the remembered decision map as well
    assert [overlay.name for overlay in state.visible_overlays()] == ["index"]
