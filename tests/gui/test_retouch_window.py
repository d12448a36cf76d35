"""The retouch tool inside the real main window (issue 16): painting after a fusion, undo/redo from the
Edit menu, strokes carried over a live post-processing update, and an export that carries the
strokes, 16 bits and the camera's EXIF, reproduced by the CLI from its sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog
from pytestqt.qtbot import QtBot

from focusstudio.gui.controllers.export import SIXTEEN_BIT_FILTERS
from focusstudio.gui.main_window import MainWindow
from focusstudio.gui.retouch_panel import MODE_OFF_LABEL, MODE_ON_LABEL
from focusstudio.gui.viewer import ImagePane
from tests.gui.conftest import fuse_and_wait, open_and_wait, write_synthetic_stack

MAKE, MODEL = "FocusCam", "FC-1 Macro"


def _at(pane: ImagePane, x: float, y: float) -> QPoint:
    """Viewport coordinates of image point (x, y)."""
    return pane.mapFromScene(pane.view.mapViewToScene(QPointF(x, y)))


def _drag(pane: ImagePane, points: list[tuple[float, float]]) -> None:
    viewport = pane.viewport()
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _at(pane, *points[0]))
    for point in points[1:]:
        QTest.mouseMove(viewport, _at(pane, *point))
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _at(pane, *points[-1]))


def _fused(qtbot: QtBot, window: MainWindow, paths: list[Path]) -> MainWindow:
    window.set_alignment_mode("off")  # the model paints from the frames as loaded: exact values
    open_and_wait(qtbot, window, paths)
    fuse_and_wait(qtbot, window)
    qtbot.waitExposed(window)
    window.viewer.fit()
    return window


def _paint_from(qtbot: QtBot, window: MainWindow, frame: int, points: list[tuple[float, float]]) -> None:
    """Retouch mode on, a hard opaque 12-px brush from ``frame`` without brightness matching, one drag."""
    tool = window.retouch
    panel, controller = tool.panel, tool.controller
    assert panel.isEnabled()
    panel.mode.setChecked(True)
    panel.source.setCurrentIndex(panel.source.findData(frame))
    panel.size.setValue(12)
    panel.hardness.setValue(100)
    panel.match.setChecked(False)
    model = controller.model
    assert model is not None
    # The frame is decoded in the background; painting starts once it is in memory.
    qtbot.waitUntil(lambda: model.frames.loaded(frame), timeout=5000)
    _drag(window.viewer.main, points)


@pytest.fixture
def fused(qtbot: QtBot, window: MainWindow, stack_folder: Path) -> MainWindow:
    return _fused(qtbot, window, sorted(stack_folder.iterdir()))


def test_painting_in_the_window_after_a_fusion(qtbot: QtBot, fused: MainWindow) -> None:
    tool = fused.retouch
    controller = tool.controller
    assert fused.retouch_dock.widget().widget() is tool.panel  # inside its scroll area
    result = fused.results["A"].result
    assert controller.model is tool.slots["A"].model and controller.result is result
    assert tool.panel.source.count() == 4  # three frames and the eraser
    _paint_from(qtbot, fused, 2, [(10, 24), (20, 24), (30, 24)])
    model = controller.model
    assert len(model.strokes) == 1 and model.strokes[0].frame == 2
    frame = fused.results["A"].fused_stack.load(2)
    np.testing.assert_allclose(model.image[24, 20], frame[24, 20], atol=1e-4)
    np.testing.assert_array_equal(model.image[2, 2], result.image[2, 2])  # outside the brush
    assert controller.tile_count() == 1 and tool.panel.mode.text() == MODE_ON_LABEL
    # The Alt-click pick has the stack's sharpness once the background measurement is done.
    qtbot.waitUntil(lambda: controller.probe is not None and controller.probe.measured, timeout=5000)
    # Another layer shown: no painting, and the retouched tiles leave the pane.
    fused.display.show_frame(0)
    assert controller.model is None and not controller.active and controller.tile_count() == 0
    assert not tool.panel.isEnabled() and not tool.panel.mode.isChecked()
    assert tool.panel.mode.text() == MODE_OFF_LABEL
    # Back on the result: the strokes are there again.
    fused.toggle_before_after()
    assert fused.state.base == "result:A"
    assert controller.model is model and controller.tile_count() == 1 and tool.panel.isEnabled()


def test_undo_and_redo_from_the_edit_menu(qtbot: QtBot, fused: MainWindow) -> None:
    controller = fused.retouch.controller
    edit = fused.edit_menu
    assert [a.text() for a in edit.actions()] == ["&Undo Stroke", "&Redo Stroke"]
    undo, redo = edit.actions()
    assert undo is controller.undo_action and redo is controller.redo_action
    assert undo.shortcutContext() == Qt.ShortcutContext.WindowShortcut
    assert not undo.isEnabled() and not redo.isEnabled()
    original = fused.results["A"].result.image
    _paint_from(qtbot, fused, 1, [(5, 10), (40, 10)])
    _paint_from(qtbot, fused, 0, [(24, 30), (24, 44)])
    model = controller.model
    assert len(model.strokes) == 2 and undo.isEnabled()
    one_stroke = None
    undo.trigger()
    assert len(model.strokes) == 1 and redo.isEnabled()
    one_stroke = model.image.copy()
    undo.trigger()
    np.testing.assert_allclose(model.image, original, atol=1e-6)
    assert not undo.isEnabled()
    redo.trigger()
    np.testing.assert_allclose(model.image, one_stroke, atol=1e-6)
    # The shortcut works with the focus anywhere in the window, not only on the image.
    fused.activateWindow()
    fused.stack_panel.setFocus()
    QTest.keyClick(fused.stack_panel, Qt.Key.Key_Z,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert len(model.strokes) == 2
    assert "A" in fused.unexported_slots()  # painting changed the result


def test_strokes_survive_a_live_post_processing_update(qtbot: QtBot, fused: MainWindow) -> None:
    tool = fused.retouch
    _paint_from(qtbot, fused, 2, [(10, 24), (30, 24)])
    old_model = tool.controller.model
    old_result = fused.results["A"].result
    with qtbot.waitSignal(fused.liveUpdated, timeout=5000):
        fused.param_form.set_values({"rule": "first"})  # post-processing only: a live update
    outcome = fused.results["A"]
    assert outcome.reused_analysis and outcome.result is not old_result
    model = tool.controller.model
    assert model is tool.slots["A"].model and model is not old_model
    assert model.base is outcome.result.image
    assert [(s.frame, s.points) for s in model.strokes] == [(s.frame, s.points) for s in old_model.strokes]
    frame = outcome.fused_stack.load(2)
    np.testing.assert_allclose(model.image[24, 20], frame[24, 20], atol=1e-4)  # still painted
    np.testing.assert_array_equal(model.image[2, 40], outcome.result.image[2, 40])  # the new result elsewhere
    assert tool.controller.tile_count() == 1
    assert "re-applied" in fused.statusBar().currentMessage()
    tool.controller.undo_action.trigger()  # the carried stroke is an undo step of the new model
    np.testing.assert_allclose(model.image, outcome.result.image, atol=1e-6)


def _exif_jpeg_stack(folder: Path, other_profile_last: bool = False) -> list[Path]:
    """The synthetic stack as JPEG frames with camera EXIF and an sRGB profile (the last frame with
    another profile when ``other_profile_last``)."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    other = profile.replace("sRGB".encode("utf-16-be"), "Wide".encode("utf-16-be"))
    paths = []
    pngs = write_synthetic_stack(folder / "png")
    for number, png in enumerate(pngs):
        exif = Image.Exif()
        exif[0x010F], exif[0x0110] = MAKE, MODEL
        path = folder / png.with_suffix(".jpg").name
        last = number == len(pngs) - 1
        with Image.open(png) as image:
            image.save(path, quality=95, exif=exif.tobytes(),
                       icc_profile=other if other_profile_last and last else profile)
        paths.append(path)
    return paths


def test_export_without_metadata_when_the_profiles_differ(qtbot: QtBot, window: MainWindow, tmp_path: Path) -> None:
    """The CLI refuses frames in different colour spaces; the window still saves what it shows and says why
    the camera's metadata is missing."""
    fused = _fused(qtbot, window, _exif_jpeg_stack(tmp_path / "in", other_profile_last=True))
    target = tmp_path / "fused.tif"
    with qtbot.waitSignal(fused.exported, timeout=10000) as blocker:
        fused.export_to(target)
    notes = blocker.args[0].notes
    assert any("without the camera's metadata" in note and "frame_3.jpg" in note for note in notes), notes
    assert "without the camera's metadata" in fused.statusBar().currentMessage()
    with Image.open(target) as image:
        assert 0x010F not in image.getexif()
    assert cv2.imread(str(target), cv2.IMREAD_UNCHANGED).dtype == np.uint8


def test_export_carries_the_strokes_sixteen_bits_and_exif(
    qtbot: QtBot, window: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from focusstudio.cli import main

    frames = _exif_jpeg_stack(tmp_path / "in")
    fused = _fused(qtbot, window, frames)
    _paint_from(qtbot, fused, 2, [(10, 24), (30, 24)])
    model = fused.retouch.controller.model
    target = tmp_path / "out" / "fused.png"
    target.parent.mkdir()
    # The export dialog offers 16 bits per channel for these 8-bit frames.
    offered: list[str] = []

    def save_name(_parent: object, _title: str, _folder: str, filters: str, _chosen: str) -> tuple[str, str]:
        offered.extend(filters.split(";;"))
        return str(target), next(iter(SIXTEEN_BIT_FILTERS))

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_name)
    with qtbot.waitSignal(fused.exported, timeout=10000):
        assert fused.export_dialog() is not None
    assert set(SIXTEEN_BIT_FILTERS) <= set(offered)
    written = cv2.imread(str(target), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert written.dtype == np.uint16
    # The retouched pixels, to half a 16-bit level.
    np.testing.assert_allclose(written / 65535.0, model.image, atol=0.5 / 65535 + 1e-6)
    with Image.open(target) as image:
        exif = image.getexif()
        assert (exif[0x010F], exif[0x0110], exif[0x0112]) == (MAKE, MODEL, 1)
        assert image.info.get("icc_profile")
    sidecar = json.loads(target.with_name("fused.png.json").read_text())
    assert sidecar["output_dtype"] == "uint16"
    assert len(sidecar["retouch"]["strokes"]) == 1 and sidecar["retouch"]["strokes"][0]["frame"] == 2
    command = sidecar["command"]
    assert command[command.index("--retouch") + 1] == str(target.with_name("fused.png.json"))
    assert command[command.index("--bits") + 1] == "16"
    # The CLI reproduces the retouched result from the sidecar's command (within one 16-bit level).
    again = tmp_path / "again.png"
    argv = list(command[1:])
    argv[argv.index("-o") + 1] = str(again)
    assert main([*argv, "--quiet"]) == 0
    reproduced = cv2.imread(str(again), cv2.IMREAD_UNCHANGED)
    assert np.abs(reproduced.astype(np.int32) - written[..., ::-1].astype(np.int32)).max() <= 1
