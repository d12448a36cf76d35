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
    assert table.item(0, 1).text().startswith("index") and "activity" in table.item(2, 1).text()
    assert table.minimumHeight() >= 6 * table.verticalHeader().defaultSectionSize()


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
