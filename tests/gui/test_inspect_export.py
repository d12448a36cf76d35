"""Inspecting (overlays, wipe, read-out), comparing with metrics, exporting, remembering settings."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtWidgets import QCheckBox, QComboBox, QMessageBox, QSlider
from pytestqt.qtbot import QtBot

from focusstudio.gui.main_window import MainWindow
from tests.gui.conftest import fuse_and_wait, open_and_wait, write_synthetic_stack


@pytest.fixture
def fused(qtbot: QtBot, window: MainWindow, stack_folder: Path) -> MainWindow:
    open_and_wait(qtbot, window, [stack_folder])
    fuse_and_wait(qtbot, window)
    return window


def test_overlays_list_the_result_maps(fused: MainWindow) -> None:
    result = fused.results["A"].result
    # Grouped by kind: what was chosen (index, decision) before why (activity); the index map of
    # the 3-frame fusion is shown (test_window_explains.py has the details).
    assert list(result.maps) == ["activity", "decision", "index"]
    assert fused.layers_panel.map_names() == ["index", "decision", "activity"]
    assert fused.layers_panel.table.rowCount() == 3
    assert fused.state.active_overlay == "index"
    kinds = {name: state.colormap for name, state in fused.state.overlays.items()}
    assert kinds == {"activity": "inferno", "decision": "CET-D1", "index": "categorical"}


def test_overlay_rows_control_visibility_opacity_and_colours(fused: MainWindow) -> None:
    table = fused.layers_panel.table
    row = fused.layers_panel.map_names().index("decision")
    visible = table.cellWidget(row, 0)
    opacity = table.cellWidget(row, 2)
    colours = table.cellWidget(row, 3)
    assert isinstance(visible, QCheckBox) and isinstance(opacity, QSlider) and isinstance(colours, QComboBox)
    # Hidden maps that are not the active one get no image item at all (a method may have dozens).
    assert "decision" not in fused.viewer.overlay_items
    visible.setChecked(True)
    item = fused.viewer.overlay_items["decision"]
    assert item.isVisible() and fused.state.overlays["decision"].visible
    assert np.array_equal(item.image, fused.results["A"].result.maps["decision"].data)
    opacity.setValue(80)
    assert item.opacity() == pytest.approx(0.8)
    lut_before = np.array(item.lut).copy()
    colours.setCurrentText("viridis")
    assert fused.state.overlays["decision"].colormap == "viridis"
    assert not np.array_equal(lut_before, np.array(item.lut))
    fused.state.toggle_overlays()  # the "O" key
    assert not item.isVisible()
    fused.state.toggle_overlays()
    assert item.isVisible()


def test_histogram_controls_the_levels_of_the_active_map(fused: MainWindow) -> None:
    fused.state.show_only("activity")
    histogram = fused.layers_panel.histogram
    assert histogram.item.imageItem() is fused.viewer.overlay_items["activity"]
    histogram.setLevels(0.1, 0.4)
    assert fused.state.overlays["activity"].levels == pytest.approx((0.1, 0.4))
    assert fused.viewer.overlay_items["activity"].getLevels() == pytest.approx((0.1, 0.4))
    fused.state.set_active_overlay("index")
    assert histogram.item.imageItem() is fused.viewer.overlay_items["index"]
    assert histogram.getLevels() == pytest.approx(fused.state.overlays["index"].levels)


def test_cursor_readout_names_the_source_frame(fused: MainWindow) -> None:
    result = fused.results["A"].result
    index = result.maps["index"].data
    row, col = np.argwhere(index == 2)[0]
    text = fused.cursor_readout(int(row), int(col))
    assert f"x {col}  y {row}" in text
    assert "index 3" in text and "from frame 3 (frame_3.png)" in text
    assert f"decision {float(result.maps['decision'].data[row, col]):.3g}" in text


def test_wipe_and_before_after(qtbot: QtBot, fused: MainWindow) -> None:
    fused.state.set_wipe(True, "frame:1")
    qtbot.waitUntil(lambda: fused.viewer.wipe_item.isVisible(), timeout=5000)  # the frame decodes in a worker
    assert fused.viewer.wipe_item.image.shape == (48, 24, 3)  # right half of the image
    fused.state.set_wipe_position(0.25)
    assert fused.viewer.wipe_item.image.shape == (48, 36, 3)
    assert fused.viewer.wipe_line.value() == 12
    fused.toggle_before_after()
    assert fused.state.base.startswith("frame:")
    fused.toggle_before_after()
    assert fused.state.base == "result:A"


def test_side_by_side_views_share_zoom_and_pan(qtbot: QtBot, fused: MainWindow) -> None:
    viewer = fused.viewer
    fused.state.set_side_by_side(True, "frame:0")
    qtbot.waitUntil(lambda: viewer.side.image_shape is not None and viewer.side.view.width() > 50, timeout=5000)

    def centre_and_scale(pane: object) -> tuple[float, float, float]:
        rect = pane.view.viewRect()  # type: ignore[attr-defined]
        return (rect.center().x(), rect.center().y(), rect.width() / pane.view.width())  # type: ignore[attr-defined]

    viewer.main.view.setRange(xRange=(5, 20), yRange=(5, 20), padding=0)  # zoom in on the main pane
    assert centre_and_scale(viewer.side) == pytest.approx(centre_and_scale(viewer.main))
    viewer.side.view.translateBy(x=4, y=-3)  # pan the side pane
    assert centre_and_scale(viewer.main) == pytest.approx(centre_and_scale(viewer.side))
    assert centre_and_scale(viewer.main)[:2] == pytest.approx((16.5, 9.5))


def test_compare_two_methods_with_metrics(qtbot: QtBot, fused: MainWindow) -> None:
    pytest.importorskip("focusstudio.core.metrics")
    with qtbot.waitSignal(fused.metricsReady, timeout=30000, check_params_cb=lambda slot: slot == "A"):
        pass
    fused.select_method("sf")
    fused.set_target_slot("B")
    with qtbot.waitSignal(fused.metricsReady, timeout=60000, check_params_cb=lambda slot: slot == "B"):
        fuse_and_wait(qtbot, fused)
    assert fused.results["B"].result.method == "sf"
    for slot in ("A", "B"):
        values = fused.metrics_panel.values(slot)
        assert set(values) == {"Qabf", "Qcb", "NCIE", "MI", "Recall"}
        assert all(float(text) == float(text) for text in values.values())  # numbers, not NaN or "…"
    fused.compare_results()
    assert fused.state.base == "result:A" and fused.state.wipe_enabled and fused.state.wipe_layer == "result:B"
    assert fused.viewer.wipe_item.isVisible()


def test_export_writes_the_image_maps_and_sidecar(qtbot: QtBot, fused: MainWindow, tmp_path: Path) -> None:
    from focusstudio.core.io import read_image

    target = tmp_path / "out" / "fused.png"
    target.parent.mkdir()
    with qtbot.waitSignal(fused.exported, timeout=10000) as blocker:
        fused.export_to(target, with_maps=True)
    outcome = blocker.args[0]
    result = fused.results["A"].result
    assert outcome.image == target
    assert np.abs(read_image(target) - result.image).max() <= 0.5 / 255 + 1e-6
    sidecar = json.loads((tmp_path / "out" / "fused.png.json").read_text())
    assert sidecar["method"] == "fake_test" and sidecar["params"] == result.params
    assert sidecar["command"][:2] == ["focusstudio", "fuse"] and "--method" in sidecar["command"]
    assert f"bias={result.params['bias']!r}" in sidecar["command_line"]
    assert sorted(p.name for p in (tmp_path / "out" / "fused_maps").iterdir()) == [
        "activity.png", "decision.png", "index.png", "index_grey.png"]
    # Atomic writes leave no temporary files behind.
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_export_keeps_sixteen_bits(qtbot: QtBot, window: MainWindow, tmp_path: Path) -> None:
    write_synthetic_stack(tmp_path / "deep", count=2, dtype="uint16")
    open_and_wait(qtbot, window, [tmp_path / "deep"])
    fuse_and_wait(qtbot, window)
    with qtbot.waitSignal(window.exported, timeout=10000):
        window.export_to(tmp_path / "deep.tif")
    written = cv2.imread(str(tmp_path / "deep.tif"), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16 and written.shape == (48, 48, 3)


def test_export_never_overwrites_an_input(
    qtbot: QtBot, fused: MainWindow, stack_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = stack_folder / "frame_1.png"
    original = source.read_bytes()
    dialogs: list[str] = []
    monkeypatch.setattr(QMessageBox, "critical", lambda _parent, _title, text, *a: dialogs.append(text))
    with qtbot.waitSignal(fused.jobFailed, timeout=10000):
        fused.export_to(source, overwrite=True)
    assert len(dialogs) == 1 and "input" in dialogs[0]
    assert source.read_bytes() == original


def test_window_remembers_method_and_recent_stacks(
    qtbot: QtBot, make_window: Callable[..., MainWindow], stack_folder: Path
) -> None:
    first = make_window("sf")
    open_and_wait(qtbot, first, [stack_folder])
    first.close()
    second = make_window(method="")
    assert second.method is not None and second.method.name == "sf"
    assert second.app_settings.recent_stacks()[0] == [str(stack_folder)]
    second.recent_menu.aboutToShow.emit()
    labels = [action.text() for action in second.recent_menu.actions()]
    assert "stack" in labels


def test_about_lists_versions_and_methods(window: MainWindow, monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "about", lambda _parent, _title, text: shown.append(text))
    window.about_action.trigger()
    assert "FocusStudio" in shown[0] and "PySide6" in shown[0] and "pyqtgraph" in shown[0]
    assert "Fake (tests)" in shown[0]


def test_keyboard_shortcuts(window: MainWindow) -> None:
    shortcuts = {action.text(): action.shortcut().toString() for action in window.actions()}
    assert shortcuts["&Fuse"] == "Ctrl+Return"
    assert shortcuts["&Cancel"] == "Esc"
    assert shortcuts["&Export Result…"] == "Ctrl+E"
    assert shortcuts["&Open Images…"] == "Ctrl+O"
    assert shortcuts["Toggle &Overlays"] == "O"


def test_overlay_choices_survive_switching_results(qapp: object) -> None:
    from focusstudio.core.types import FusionMap
    from focusstudio.gui.view_state import ViewState

    def maps(*names: str) -> dict[str, FusionMap]:
        return {name: FusionMap(name, "decision", np.zeros((4, 4), np.float32)) for name in names}

    state = ViewState()
    state.sync_maps(maps("decision", "weight"))
    state.update_overlay("weight", visible=True, opacity=0.8, colormap="magma")
    state.set_active_overlay("weight")
    state.sync_maps(maps("activity"))  # result B has other maps
    assert list(state.overlays) == ["activity"] and state.active_overlay == "activity"
    state.sync_maps(maps("decision", "weight"))  # back to a result like A
    assert state.overlays["weight"].visible and state.overlays["weight"].opacity == 0.8
    assert state.overlays["weight"].colormap == "magma" and state.active_overlay == "weight"


def test_metrics_wait_for_a_click_on_big_stacks(
    qtbot: QtBot, window: MainWindow, stack_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from focusstudio.gui.controllers import metrics

    monkeypatch.setattr(metrics, "AUTO_METRICS_MAX_MEGAPIXELS", 0.001)  # our 3×48×48 stack is "big"
    open_and_wait(qtbot, window, [stack_folder])
    with qtbot.assertNotEmitted(window.metricsReady, wait=900):
        fuse_and_wait(qtbot, window)
    assert "press Compute now" in window.metrics_panel.status.text()
    with qtbot.waitSignal(window.metricsReady, timeout=30000):
        window.metrics_panel.compute_button.click()
    assert window.metrics_panel.values("A")["Qabf"] not in ("", "…")
