"""The retouch tool on its own (an image pane, a controller and its panel): painting with the mouse,
undo/redo by shortcut, picks, before/after and the painted-mask overlay (issue 16)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from focusstudio.core.pipeline import fuse
from focusstudio.core.retouch import RetouchModel, SharpnessProbe
from focusstudio.core.types import FusionResult, Stack
from focusstudio.gui.retouch import MASK_Z, RETOUCH_Z, RetouchController
from focusstudio.gui.retouch_panel import ERASER_LABEL, RetouchPanel
from focusstudio.gui.viewer import ImagePane
from tests.conftest import build_focus_stack
from tests.gui.conftest import IGNORED_QT_MESSAGES

SIZE = 96


@pytest.fixture
def tool(qtbot: QtBot) -> tuple[ImagePane, RetouchController, RetouchPanel, Stack, FusionResult]:
    synthetic = build_focus_stack(2, size=SIZE, seed=7, colour=True)
    result = fuse(synthetic.stack, "sf")
    pane = ImagePane()
    pane.resize(SIZE * 4, SIZE * 4)
    qtbot.addWidget(pane)
    pane.show()
    qtbot.waitExposed(pane)
    pane.show_image(result.as_dtype("uint8"))
    pane.fit()
    controller = RetouchController(pane)
    panel = RetouchPanel(controller)
    qtbot.addWidget(panel)
    panel.set_frames(synthetic.stack.names)
    controller.set_model(RetouchModel.from_result(result, synthetic.stack), result,
                         SharpnessProbe.of_stack(synthetic.stack))
    return pane, controller, panel, synthetic.stack, result


def _at(pane: ImagePane, x: float, y: float) -> QPoint:
    """Viewport coordinates of image point (x, y)."""
    return pane.mapFromScene(pane.view.mapViewToScene(QPointF(x, y)))


def _drag(pane: ImagePane, points: list[tuple[float, float]],
          modifier: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    viewport = pane.viewport()
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, modifier, _at(pane, *points[0]))
    for point in points[1:]:
        QTest.mouseMove(viewport, _at(pane, *point))
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, modifier, _at(pane, *points[-1]))


def test_dragging_paints_one_stroke_from_the_chosen_frame(tool) -> None:  # type: ignore[no-untyped-def]
    pane, controller, panel, stack, result = tool
    model = controller.model
    panel.mode.setChecked(True)
    panel.source.setCurrentIndex(1)  # "2: frame_001"
    panel.size.setValue(20)
    panel.hardness.setValue(100)
    panel.match.setChecked(False)
    assert controller.frame == 1 and controller.brush.size == 20 and controller.brush.hardness == 1.0
    _drag(pane, [(30, 30), (40, 32), (50, 34)])
    assert len(model.strokes) == 1
    stroke = model.strokes[0]
    assert stroke.frame == 1 and stroke.brush.size == 20 and not stroke.match
    assert stroke.points[0] == pytest.approx((30, 30), abs=1.0)
    assert stroke.points[-1] == pytest.approx((50, 34), abs=1.0)
    np.testing.assert_allclose(model.image[31, 40], stack.load(1)[31, 40], atol=1e-4)
    np.testing.assert_array_equal(model.image[80, 80], result.image[80, 80])
    # The tiles over the pane show the retouched pixels.
    assert controller.tile_count() == 1
    tile = next(iter(controller._tiles.values()))
    assert tile.zValue() == RETOUCH_Z and tile.isVisible()
    expected = np.round(np.clip(model.image[31, 40], 0, 1) * 255)
    np.testing.assert_allclose(tile.image[31, 40], expected, atol=1)
    assert controller.undo_action.isEnabled() and not controller.redo_action.isEnabled()


def test_undo_and_redo_by_shortcut(tool, qtbot: QtBot) -> None:  # type: ignore[no-untyped-def]
    pane, controller, panel, _stack, result = tool
    model = controller.model
    panel.mode.setChecked(True)
    _drag(pane, [(20, 20), (60, 60)])
    first = model.image.copy()
    panel.source.setCurrentIndex(0)
    _drag(pane, [(70, 20), (70, 60)])
    assert len(model.strokes) == 2
    pane.setFocus()
    qtbot.waitUntil(pane.hasFocus)
    QTest.keyClick(pane, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert len(model.strokes) == 1
    np.testing.assert_allclose(model.image, first, atol=1e-6)
    QTest.keyClick(pane, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_allclose(model.image, result.image, atol=1e-6)
    assert not controller.undo_action.isEnabled()
    QTest.keyClick(pane, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    np.testing.assert_allclose(model.image, first, atol=1e-6)
    assert controller.redo_action.isEnabled()
    panel.redo.click()
    assert len(model.strokes) == 2
    tile = next(iter(controller._tiles.values()))
    np.testing.assert_allclose(tile.image[40, 70], np.round(np.clip(model.image[40, 70], 0, 1) * 255), atol=1)


def test_alt_click_picks_the_sharpest_frame_and_shift_the_chosen_one(tool) -> None:  # type: ignore[no-untyped-def]
    pane, controller, panel, _stack, result = tool
    panel.mode.setChecked(True)
    controller.set_frame(1)
    # Frame 0 is sharp in the central disc, frame 1 outside it.
    _drag(pane, [(48, 48)], Qt.KeyboardModifier.AltModifier)
    assert controller.frame == 0 and panel.source.currentIndex() == 0
    assert "sharpest" in panel.hint.text()
    _drag(pane, [(6, 6)], Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.ShiftModifier)
    assert controller.frame == 1 and "chose" in panel.hint.text()
    assert controller.model.strokes == []  # picking never paints
    assert result.maps["index"].data[6, 6] == 1


def test_eraser_before_after_and_mask_overlay(tool) -> None:  # type: ignore[no-untyped-def]
    pane, controller, panel, _stack, result = tool
    model = controller.model
    panel.mode.setChecked(True)
    panel.source.setCurrentIndex(1)
    _drag(pane, [(20, 48), (76, 48)])
    panel.mask.setChecked(True)
    mask_items = list(controller._mask_tiles.values())
    assert len(mask_items) == 1 and mask_items[0].zValue() == MASK_Z and mask_items[0].isVisible()
    assert mask_items[0].image[48, 48, 3] > 0 and mask_items[0].image[5, 5, 3] == 0
    panel.before.setChecked(True)
    assert not any(item.isVisible() for item in controller._tiles.values())
    panel.before.setChecked(False)
    assert all(item.isVisible() for item in controller._tiles.values())
    panel.source.setCurrentIndex(panel.source.findText(ERASER_LABEL))
    assert controller.frame is None
    panel.size.setValue(200)
    _drag(pane, [(48, 48)])
    np.testing.assert_allclose(model.image, result.image, atol=1e-6)
    assert mask_items[0].image[48, 48, 3] == 0


# Outside retouch mode the left button is the view's, which leaves a plain click unaccepted.
@pytest.mark.qt_log_ignore(*IGNORED_QT_MESSAGES, r'Mouse event "Mouse(Press|Release)" not accepted')
def test_outside_retouch_mode_the_mouse_is_the_views(tool) -> None:  # type: ignore[no-untyped-def]
    pane, controller, panel, _stack, _result = tool
    _drag(pane, [(20, 20), (60, 60)])
    assert controller.model.strokes == [] and controller.tile_count() == 0
    panel.mode.setChecked(True)
    panel.mode.setChecked(False)
    _drag(pane, [(20, 20), (60, 60)])
    assert controller.model.strokes == []


def test_a_rebased_model_is_drawn_only_where_painted(tool, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from focusstudio.core.retouch import Brush, Stroke
    from focusstudio.gui import retouch

    monkeypatch.setattr(retouch, "DISPLAY_TILE", 32)  # 3×3 tiles on the 96-px image
    _pane, controller, _panel, stack, _result = tool
    controller.model.apply(Stroke(1, Brush(10, 1.0, 1.0), [(10.0, 10.0)], match=False))
    other = fuse(stack, "sf", {"use_guided_filter": False})
    controller.set_model(controller.model.rebased(other.image), other)
    assert controller.tile_count() == 1
    assert controller.retouched_result().image[10, 10] == pytest.approx(stack.load(1)[10, 10], abs=1e-4)
    assert controller.undo_action.isEnabled()


def test_export_saves_the_strokes_and_the_cli_reproduces_the_result(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    import cv2

    from focusstudio.cli import main
    from focusstudio.core.io import load_stack
    from focusstudio.core.progress import CancelToken, run_to_completion
    from focusstudio.core.retouch import Brush, Stroke, retouch_section
    from focusstudio.gui.jobs import ExportRequest, export_job
    from tests.cli.test_cli import _write_stack

    _write_stack(tmp_path / "in", n=2, size=80)
    sources = (str(tmp_path / "in"),)
    stack = load_stack(list(sources))
    result = fuse(stack, "sf")
    model = RetouchModel.from_result(result, stack)
    model.apply(Stroke(1, Brush(30, 0.5, 1.0), [(25.0, 25.0), (45.0, 30.0)]))
    exported = tmp_path / "retouched.png"
    request = ExportRequest(exported, model.retouched_result(result), sources, align=None,
                            retouch=retouch_section(model))
    outcome = run_to_completion(export_job(request, CancelToken()))
    sidecar = json.loads(outcome.sidecar.read_text(encoding="utf-8"))
    assert sidecar["retouch"]["strokes"][0]["frame"] == 1
    command = sidecar["command"]
    assert command[-2:] == ["--retouch", str(outcome.sidecar)]
    again = tmp_path / "again.png"
    command[command.index("-o") + 1] = str(again)
    assert main([*command[1:], "--quiet"]) == 0
    capsys.readouterr()
    first, second = (cv2.imread(str(path)).astype(np.int16) for path in (exported, again))
    assert np.abs(first - second).max() <= 1
