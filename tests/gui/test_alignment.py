"""Alignment in the window: registered before fusing (auto for 3+ frames), shown, re-used, exported."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pytestqt.qtbot import QtBot

from focusstudio.gui.main_window import MainWindow
from tests.gui.conftest import fuse_and_wait, open_and_wait

SIZE, SHIFT = 96, 4


def _write_shifted_stack(folder: Path) -> list[Path]:
    """Three frames of one textured scene, each sharp on its own band, frame i moved i·SHIFT px
    to the right (a handheld stack)."""
    rng = np.random.default_rng(3)
    scene = cv2.GaussianBlur(rng.random((SIZE, SIZE + 3 * SHIFT, 3)).astype(np.float32), (0, 0), 1.2)
    scene = np.clip((scene - scene.mean()) * 4 + 0.5, 0, 1)
    blurred = cv2.GaussianBlur(scene, (0, 0), 2.0)
    folder.mkdir(parents=True)
    paths = []
    band = (SIZE + 3 * SHIFT) // 3
    for index in range(3):
        frame = blurred.copy()
        frame[:, index * band : (index + 1) * band] = scene[:, index * band : (index + 1) * band]
        offset = SHIFT * (3 - index)
        view = frame[:, offset - SHIFT : offset - SHIFT + SIZE]
        path = folder / f"frame_{index + 1}.png"
        cv2.imwrite(str(path), np.round(view[..., ::-1] * 255).astype(np.uint8))
        paths.append(path)
    return paths


@pytest.fixture
def shifted(qtbot: QtBot, make_window: object, tmp_path: Path) -> MainWindow:
    window = make_window("sf")  # type: ignore[operator]
    _write_shifted_stack(tmp_path / "handheld")
    open_and_wait(qtbot, window, [tmp_path / "handheld"])
    return window


def test_a_handheld_stack_is_aligned_before_fusing(qtbot: QtBot, shifted: MainWindow) -> None:
    assert shifted.alignment_settings(3) is not None  # auto: 3 frames are aligned
    fuse_and_wait(qtbot, shifted)
    outcome = shifted.results["A"]
    alignment = outcome.alignment
    assert alignment is not None and outcome.request.align is not None
    shifts = [frame.matrix[0, 2] for frame in alignment.frames]
    assert np.allclose(np.abs(np.diff(shifts)), SHIFT, atol=0.3), shifts
    _, _, width, height = alignment.crop_box  # type: ignore[misc]
    assert outcome.result.image.shape[:2] == (height, width) and width <= SIZE - 2 * SHIFT + 1
    assert "3 frames registered" in shifted.align_summary.text()
    # The frames are shown as they were fused (same size as the result, for the wipe and overlays).
    shifted.state.set_base("frame:0")
    qtbot.waitUntil(lambda: 0 in shifted.display._frames, timeout=10000)
    assert shifted.display._frames[0].image.shape[:2] == (height, width)


def test_refusing_and_live_tuning_reuse_the_registration(qtbot: QtBot, shifted: MainWindow) -> None:
    fuse_and_wait(qtbot, shifted)
    first = shifted.results["A"]
    fuse_and_wait(qtbot, shifted)
    second = shifted.results["A"]
    assert second.request.aligned is not None and second.alignment is first.alignment
    assert "align" not in second.result.timings
    with qtbot.waitSignal(shifted.liveUpdated, timeout=20000):
        shifted.param_form.set_values({"gf_radius": 6})
    live = shifted.results["A"]
    assert live.request.live and live.alignment is first.alignment and live.reused_analysis
    assert live.result.image.shape == first.result.image.shape
    # Other alignment settings: registered again.
    shifted.align_form.set_values({"model": "translation"})
    fuse_and_wait(qtbot, shifted)
    assert shifted.results["A"].request.aligned is None and shifted.results["A"].alignment.model == "translation"


def test_never_fuses_the_frames_as_loaded(qtbot: QtBot, shifted: MainWindow) -> None:
    shifted.set_alignment_mode("off")
    fuse_and_wait(qtbot, shifted)
    outcome = shifted.results["A"]
    assert outcome.alignment is None and outcome.result.image.shape[:2] == (SIZE, SIZE)
    assert "not aligned" in shifted.align_summary.text()


def test_export_records_the_alignment_for_the_command_line(qtbot: QtBot, shifted: MainWindow,
                                                           tmp_path: Path) -> None:
    shifted.align_form.set_values({"model": "translation", "crop": True})
    fuse_and_wait(qtbot, shifted)
    target = tmp_path / "fused.png"
    with qtbot.waitSignal(shifted.exported, timeout=10000):
        shifted.export_to(target)
    sidecar = json.loads((tmp_path / "fused.png.json").read_text())
    command = sidecar["command"]
    assert "--align" in command and command[command.index("--align-model") + 1] == "translation"
    assert sidecar["alignment"]["model"] == "translation" and len(sidecar["alignment"]["frames"]) == 3
    # The command line run from the sidecar gives the same image.
    from focusstudio.cli import main

    again = tmp_path / "again.png"
    command[command.index("-o") + 1] = str(again)
    assert main(command[1:]) == 0
    assert np.abs(cv2.imread(str(again)).astype(int) - cv2.imread(str(target)).astype(int)).max() <= 1


def test_a_reference_frame_that_does_not_exist_is_refused_before_running(
    qtbot: QtBot, shifted: MainWindow, no_modal_dialogs: list[str]
) -> None:
    shifted.align_form.set_values({"reference": 7})
    assert shifted.fuse() is None
    assert len(no_modal_dialogs) == 1 and "reference frame 7 does not exist" in no_modal_dialogs[0]
    no_modal_dialogs.clear()  # the dialog was the expected answer


def test_the_window_aligns_with_the_command_lines_settings(shifted: MainWindow) -> None:
    """The default window and ``fuse --align`` make the same AlignRequest: a setting that differs
    (ecc_epsilon rounded to 0 by its field) made the window's alignment ~5× slower (issue 19)."""
    from focusstudio.cli import _align_request, build_parser
    from focusstudio.core.align import ALIGN_PARAMS

    args = build_parser().parse_args(["fuse", "frames", "-m", "sf", "--align", "-o", "fused.tif"])
    cli = _align_request(args, 3)
    assert cli is not None and cli.estimates
    assert shifted.alignment_settings(3) == ALIGN_PARAMS.resolve(cli.settings)


def test_an_epsilon_rounded_to_zero_by_an_older_window_is_not_restored(
    qtbot: QtBot, make_window: object, settings_file: Path
) -> None:
    """Settings saved before the fix hold ecc_epsilon 0 (the rounded default); restoring it would
    keep the slow alignment. Settings saved since are restored as they are, 0 included."""
    from focusstudio.core.align import ALIGN_PARAMS
    from focusstudio.gui.settings import AppSettings

    old = AppSettings(settings_file)
    old._settings.setValue("alignment/values", json.dumps({"ecc_epsilon": 0.0, "model": "affine"}))
    old.sync()
    window = make_window("sf")  # type: ignore[operator]
    settings = window.alignment_settings(3)
    assert settings["ecc_epsilon"] == ALIGN_PARAMS.defaults()["ecc_epsilon"] and settings["model"] == "affine"
    window.app_settings.set_alignment("on", {"ecc_epsilon": 0.0})
    assert window.app_settings.alignment() == ("on", {"ecc_epsilon": 0.0})
