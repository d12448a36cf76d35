"""Sharpness recall in the window: its figure in the metrics panel and the lost blocks as an
overlay of the result they describe, red with a legend saying what red means, measured in the
background with the other metrics (as ``fuse --maps`` measures them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from focusstudio.core.metrics import sharpness_recall
from focusstudio.gui.main_window import MainWindow
from focusstudio.gui.metrics_panel import METRIC_KEYS
from focusstudio.gui.view_state import RESULT_A, frame_key
from focusstudio.gui.viewer import MASK_RED
from tests.gui.conftest import fuse_and_wait, open_and_wait, write_synthetic_stack


@pytest.fixture
def banded(tmp_path: Path) -> Path:
    """3 frames of 192² px, each sharp on its own vertical band: 6×6 blocks of 32 px to measure."""
    folder = tmp_path / "banded"
    write_synthetic_stack(folder, count=3, size=192)
    return folder


def _screen_pixel(window: MainWindow, row: int, col: int) -> np.ndarray:
    """RGB the main view shows at image pixel (row, col)."""
    pane = window.viewer.main
    QApplication.processEvents()
    point = pane.mapFromScene(pane.view.mapViewToScene(QPointF(col + 0.5, row + 0.5)))
    colour = pane.grab().toImage().pixelColor(point)
    return np.array([colour.red(), colour.green(), colour.blue()], float)


def _fuse_and_measure(qtbot: QtBot, window: MainWindow, folder: Path, rule: str) -> None:
    open_and_wait(qtbot, window, [folder])
    window.param_form.set_values({"rule": rule})
    with qtbot.waitSignal(window.metricsReady, timeout=30000):
        fuse_and_wait(qtbot, window)


def test_the_lost_blocks_are_an_overlay_with_the_recall_in_the_metrics(qtbot: QtBot, window: MainWindow,
                                                                       banded: Path) -> None:
    # "first" takes every pixel from frame 1: the bands sharp in frames 2 and 3 are lost.
    _fuse_and_measure(qtbot, window, banded, "first")
    outcome = window.results["A"]
    stack = outcome.fused_stack
    expected = sharpness_recall(outcome.result.image, [stack.load(i) for i in range(len(stack))],
                                valid=stack.valid_mask)
    assert 0.0 < expected.lost_fraction < 1.0  # some blocks lost, not all
    # The recall figure, as the core measures it (shown to 4 decimals).
    assert "Recall" in METRIC_KEYS
    shown = window.metrics_panel.values("A")["Recall"]
    assert abs(float(shown) - expected.recall) <= 5e-5
    # The map: an overlay of result A, as a mask, the blocks the core calls lost.
    assert "lost_blocks" in window.state.overlays and "lost_blocks" in window.shown_maps()
    overlay = window.state.overlays["lost_blocks"]
    assert overlay.kind == "mask" and overlay.colormap == "mask"
    lost_map = window.shown_maps()["lost_blocks"]
    assert np.array_equal(lost_map.data > 0.5, expected.lost_map() > 0.5)
    assert "lost_blocks" in window.layers_panel.map_names()
    # Shown: drawn red over the result, and the legend says what red means.
    window.state.show_only("lost_blocks")
    legend = window.layers_panel.legend
    assert legend.isVisibleTo(window.layers_panel)
    assert legend.labels() == [lost_map.description]
    assert "sharpness recall" in lost_map.description and "lost" in lost_map.description
    item = window.viewer.overlay_items["lost_blocks"]
    assert item.isVisible()
    # On screen: a lost block turns red; a kept block stays as it was (the mask is clear at 0).
    rows, cols = np.nonzero(expected.lost)
    kept_rows, kept_cols = np.nonzero(expected.textured & ~expected.lost)
    lost_at = (32 * rows[0] + 16, 32 * cols[0] + 16)
    kept_at = (32 * kept_rows[0] + 16, 32 * kept_cols[0] + 16)
    with_mask = [_screen_pixel(window, *at) for at in (lost_at, kept_at)]
    window.state.toggle_overlays()
    without = [_screen_pixel(window, *at) for at in (lost_at, kept_at)]
    window.state.toggle_overlays()
    red = np.array(MASK_RED[:3], float)
    blend = 0.5 * without[0] + 0.5 * red  # the default opacity
    assert np.abs(with_mask[0] - blend).max() <= 12  # screen rounding
    assert np.abs(with_mask[1] - without[1]).max() <= 2
    # Bound to the result: not drawn over a source frame.
    window.display.show_frame(1)
    assert not item.isVisible()
    window.state.set_base(RESULT_A)
    assert item.isVisible()


def test_a_good_result_has_no_lost_block_and_a_full_recall(qtbot: QtBot, window: MainWindow, banded: Path) -> None:
    _fuse_and_measure(qtbot, window, banded, "max")
    lost_map = window.shown_maps()["lost_blocks"]
    assert not (lost_map.data > 0.5).any()
    assert float(window.metrics_panel.values("A")["Recall"]) > 0.99


def test_without_metrics_there_is_no_lost_blocks_map(qtbot: QtBot, window: MainWindow, banded: Path) -> None:
    window.metrics_panel.auto.setChecked(False)
    open_and_wait(qtbot, window, [banded])
    fuse_and_wait(qtbot, window)
    qtbot.wait(800)  # past the metrics' delay: nothing is measured
    assert "lost_blocks" not in window.state.overlays and window.metrics.started_count == 0
    # Asked for: measured in the background, then offered.
    with qtbot.waitSignal(window.metricsReady, timeout=30000):
        window.metrics.compute_now()
    assert "lost_blocks" in window.state.overlays
    assert window.state.base == RESULT_A and window.state.base != frame_key(0)
