"""The training wizard, driven end to end offscreen on a tiny synthetic folder.

Method → Data (bad folder refused, live preview) → Settings (bad crop refused, measured time per
step) → Train (plot points, pause, cancel with a checkpoint) → the first page lists the run →
resume → Result (new vs starting metrics, before/after) → saved weights are registered, appear in
the main window's weights list and fuse by name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PySide6.QtWidgets import QWizard
from pytestqt.qtbot import QtBot

from focusstudio.core.pipeline import fuse
from focusstudio.core.training.manifest import read_manifest
from focusstudio.core.types import Stack
from focusstudio.core.weights import list_installed_weights, user_weights_dir
from focusstudio.gui.wizard import (
    PAGE_DATA,
    PAGE_METHOD,
    PAGE_RESULT,
    PAGE_SETTINGS,
    PAGE_TRAIN,
    TrainingWizard,
    format_duration,
)

SIZE = 64
#: Waits are generous: the test machine is shared; training the first step also imports torch's
#: compiler stack (Adam's constructor does), which alone takes seconds there.
WAIT_MS = 90_000


@pytest.fixture(autouse=True)
def private_user_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """User data (runs, weights) in a temporary folder; no shipped weights; one torch thread."""
    import platformdirs

    shipped = tmp_path / "shipped-weights"
    shipped.mkdir()
    monkeypatch.setenv("FOCUSSTUDIO_WEIGHTS_DIR", str(shipped))
    user = tmp_path / "user-data"
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda *args, **kwargs: str(user))
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the CPU is shared with other test runs
    yield user
    torch.set_num_threads(previous)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """6 sharp 64×64 grey textures (blocky, so blur is visible)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(21)
    for index in range(6):
        coarse = cv2.resize(rng.random((SIZE // 8, SIZE // 8)).astype(np.float32), (SIZE, SIZE),
                            interpolation=cv2.INTER_NEAREST)
        fine = rng.random((SIZE, SIZE)).astype(np.float32)
        cv2.imwrite(str(folder / f"photo{index}.png"), np.clip((0.75 * coarse + 0.25 * fine) * 255, 0, 255)
                    .astype(np.uint8))
    return folder


def _next_enabled(wizard: QWizard) -> bool:
    button = wizard.button(QWizard.WizardButton.NextButton)
    commit = wizard.button(QWizard.WizardButton.CommitButton)
    return (button.isVisible() and button.isEnabled()) or (commit.isVisible() and commit.isEnabled())


def _settle(wizard: TrainingWizard, qtbot: QtBot) -> None:
    qtbot.waitUntil(lambda: not wizard.busy(), timeout=WAIT_MS)


def test_format_duration() -> None:
    assert format_duration(None) == "—"
    assert format_duration(4.25) == "4.2 s"
    assert format_duration(200) == "3 min 20 s"
    assert format_duration(3 * 3600 + 5 * 60) == "3 h 05 min"


def test_the_wizard_trains_cancels_resumes_and_registers_weights(
    qtbot: QtBot, photos: Path, tmp_path: Path, make_window: object
) -> None:
    window = make_window("")  # type: ignore[operator]
    window.select_method("gacn")
    assert window.weights_chooser.isVisible() and window.weights_chooser.combo.count() == 1  # only "Default"
    wizard = window.open_training_wizard()
    wizard.confirm_stop = lambda: True
    installed: list[tuple[str, str]] = []
    wizard.weightsInstalled.connect(lambda method, name: installed.append((method, name)))
    qtbot.waitExposed(wizard)

    # ---------------------------------------------------------------- Method
    page = wizard.method_page
    assert wizard.currentId() == PAGE_METHOD
    assert not page.resume_radio.isEnabled() and page.runs_list.count() == 0
    page.select_method("gacn")
    assert page.scratch_radio.isChecked() and not page.finetune_radio.isEnabled()  # no gacn weights yet
    assert "masks" in page.details.text()
    assert _next_enabled(wizard)
    wizard.next()

    # ---------------------------------------------------------------- Data
    data = wizard.data_page
    assert wizard.currentId() == PAGE_DATA
    assert not _next_enabled(wizard)  # no folder yet
    data.data_field.set_path(tmp_path / "nowhere")
    data.inspect_now()
    qtbot.waitUntil(lambda: data.current_report() is not None, timeout=WAIT_MS)
    assert not data.current_report().usable and "not found" in data.problems_list.item(0).text()
    assert not _next_enabled(wizard)
    wizard.next()
    assert wizard.currentId() == PAGE_DATA  # refused
    data.data_field.set_path(photos)
    data.inspect_now()
    data.preview_now()
    qtbot.waitUntil(lambda: data.isComplete(), timeout=WAIT_MS)
    assert "6 photos" in data.summary_label.text() and data.split_label.text() == "5 for training, 1 for validation"
    qtbot.waitUntil(lambda: not data.preview_label.pixmap().isNull(), timeout=WAIT_MS)
    first_preview = data.preview_label.pixmap().toImage()
    assert first_preview.height() >= 4 * 120 and "Mask" in data.preview_titles.text()
    data.synthesis_form.set_values({"blur": "gaussian", "sigma_min": 4.0, "sigma_max": 4.0})
    qtbot.waitUntil(lambda: data.preview_label.pixmap().toImage() != first_preview, timeout=WAIT_MS)
    data.val_spin.setValue(0.34)
    assert data.split_label.text() == "4 for training, 2 for validation"
    assert _next_enabled(wizard)
    wizard.next()

    # ---------------------------------------------------------------- Settings
    settings = wizard.settings_page
    assert wizard.currentId() == PAGE_SETTINGS
    settings.form.set_values({"length": 60, "batch_size": 2, "crop": 100, "resize": SIZE, "val_every": 2,
                              "val_samples": 2, "checkpoint_interval_s": 5.0, "device": "cpu", "seed": 3})
    assert not settings.isComplete() and "crop 100 is larger than the resize 64" in settings.error_label.text()
    assert not _next_enabled(wizard)
    settings.form.set_values({"crop": 32})
    assert settings.isComplete() and settings.error_label.text() == ""
    assert "60 steps" in settings.steps_label.text()
    # The time per step is measured by itself in the background once the settings are valid.
    qtbot.waitUntil(lambda: settings.estimate is not None, timeout=WAIT_MS)
    assert settings.estimate.seconds_per_step > 0 and "s per step" in settings.estimate_label.text()
    wizard.next()  # the commit button: "Start training"

    # ---------------------------------------------------------------- Train: points, pause, cancel
    train = wizard.train_page
    assert wizard.currentId() == PAGE_TRAIN
    qtbot.waitUntil(lambda: len(train.steps) >= 3 and len(train.val_steps) >= 2, timeout=WAIT_MS)
    train.toggle_pause()
    qtbot.waitUntil(lambda: train.last_event is not None and train.last_event.phase == "paused", timeout=WAIT_MS)
    assert train.last_checkpoint is not None and Path(train.last_checkpoint).is_file()
    train.toggle_pause()
    qtbot.waitUntil(lambda: train.last_event.phase in ("resumed", "train", "validate"), timeout=WAIT_MS)
    train.cancel()
    qtbot.waitUntil(lambda: train.result is not None, timeout=WAIT_MS)
    cancelled = train.result
    assert cancelled.status == "cancelled" and 3 <= cancelled.step < 60
    assert cancelled.checkpoint is not None and cancelled.checkpoint.is_file()
    train._refresh_plots()
    xs, ys = train.train_curve.getData()
    assert len(xs) == cancelled.step and np.all(np.isfinite(ys))
    assert len(train.val_curve.getData()[0]) >= 2 and len(train.metric_curve.getData()[0]) >= 2
    assert train.plotted_metric == "accuracy"  # GACN's primary metric is its loss, already on the left
    assert not train.isComplete() and not _next_enabled(wizard) and train.resume_button.isVisibleTo(train)

    # ---------------------------------------------------------------- the first page lists the run; resume it
    wizard.restart()
    assert wizard.currentId() == PAGE_METHOD
    assert page.resume_radio.isEnabled() and page.runs_list.count() == 1
    assert f"gacn — step {cancelled.step} of 60 (cancelled" in page.runs_list.item(0).text()
    page.resume_radio.setChecked(True)
    page.resume_steps.setValue(cancelled.step + 3)
    assert _next_enabled(wizard)
    wizard.next()
    assert wizard.currentId() == PAGE_TRAIN
    qtbot.waitUntil(lambda: train.result is not None, timeout=WAIT_MS)
    assert train.result.status == "completed" and train.result.step == cancelled.step + 3
    assert train.steps[0] == cancelled.step + 1  # continued from the checkpoint, not from step 1
    assert train.isComplete() and _next_enabled(wizard)
    wizard.next()

    # ---------------------------------------------------------------- Result: compare, before/after, save
    result = wizard.result_page
    assert wizard.currentId() == PAGE_RESULT
    qtbot.waitUntil(lambda: result.comparison is not None and result.before_after is not None, timeout=WAIT_MS)
    _settle(wizard, qtbot)
    assert result.table.rowCount() >= 3 and result.table.item(0, 0).text() == "loss ★"
    assert result.comparison.base_label == "random initialisation"
    assert result.before_after.before is None and result.before_after.after.shape == (SIZE, SIZE)
    assert not result.before_after_label.pixmap().isNull()
    assert not result.save("../bad")  # refused, nothing written
    assert "Not saved" in result.saved_label.text() and list_installed_weights("gacn") == []
    assert result.save("tiny gacn")
    assert installed == [("gacn", "tiny gacn")]
    saved = list_installed_weights("gacn")
    assert [(w.name, w.source) for w in saved] == [("tiny gacn", "user")]
    entry = read_manifest(user_weights_dir() / "manifest.json")["weights"]["tiny gacn.pt"]
    assert entry["steps"] == cancelled.step + 3 and entry["resumed_at_steps"] == [cancelled.step]
    assert entry["evaluation"]["baseline"] == "random initialisation"

    # ---------------------------------------------------------------- registered: window and fusion by name
    assert window.weights_chooser.current_reference() == "tiny gacn"
    assert window.weights_chooser.combo.findData("tiny gacn") >= 0
    rng = np.random.default_rng(0)
    frames = [(rng.random((40, 44)) * 255).astype(np.uint8) for _ in range(2)]
    fused = fuse(Stack.from_arrays(frames), "gacn", weights="tiny gacn", device="cpu")
    assert fused.image.shape == (40, 44) and fused.weights == "tiny gacn (user weights)"
    wizard.accept()
    _settle(wizard, qtbot)


def test_closing_the_wizard_while_training_leaves_a_resumable_checkpoint(
    qtbot: QtBot, photos: Path, tmp_path: Path
) -> None:
    wizard = TrainingWizard(runs_root=tmp_path / "runs", default_device="cpu", method="sesf")
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.next()
    wizard.data_page.data_field.set_path(photos)
    wizard.data_page.inspect_now()
    qtbot.waitUntil(wizard.data_page.isComplete, timeout=WAIT_MS)
    wizard.next()
    wizard.settings_page.form.set_values({"length": 500, "batch_size": 2, "crop": 32, "resize": SIZE,
                                          "val_samples": 2, "device": "cpu"})
    wizard.next()
    train = wizard.train_page
    qtbot.waitUntil(lambda: len(train.steps) >= 2, timeout=WAIT_MS)
    asked: list[bool] = []
    wizard.confirm_stop = lambda: asked.append(True) or True
    wizard.close()
    assert asked == [True] and wizard.isVisible()  # stays open until the checkpoint is written
    qtbot.waitUntil(lambda: not wizard.isVisible(), timeout=WAIT_MS)
    assert train.result is not None and train.result.status == "cancelled"
    from focusstudio.core.training.trainer import list_runs

    runs = list_runs(tmp_path / "runs")
    assert len(runs) == 1 and runs[0]["step"] == train.result.step and runs[0]["status"] == "cancelled"


def test_the_window_chooses_renames_and_deletes_user_weights(
    qtbot: QtBot, tmp_path: Path, make_window: object, stack_folder: Path
) -> None:
    from focusstudio.core.methods.archs import SESFNet
    from focusstudio.core.training.manifest import save_weights
    from focusstudio.core.weights import install_user_weights
    from focusstudio.gui.weights_panel import WeightsManagerDialog
    from tests.gui.conftest import fuse_and_wait, open_and_wait

    torch.manual_seed(0)
    source = tmp_path / "sesf-mine.pt"
    save_weights(source, "sesf", {"reduction": 8}, SESFNet().state_dict())
    install_user_weights(source, "first", "sesf")
    window = make_window("")  # type: ignore[operator]
    assert "&Train a Model…" in [a.text() for menu in window.menuBar().actions() for a in menu.menu().actions()]
    window.select_method("sesf")  # usable: the user's own weights, chosen by name (no default is set)
    chooser = window.weights_chooser
    assert [chooser.combo.itemText(i) for i in range(chooser.combo.count())] == ["first (yours)"]
    assert chooser.manage_button.isEnabled()
    assert chooser.select("first") and chooser.current_reference() == "first"
    open_and_wait(qtbot, window, [stack_folder])
    fuse_and_wait(qtbot, window)
    assert window.results["A"].request.weights == "first"
    assert window.results["A"].result.weights == "first (user weights)"

    dialog = WeightsManagerDialog("sesf", window)
    qtbot.addWidget(dialog)
    assert dialog.listing.count() == 1 and dialog.selected().name == "first"
    dialog.rename("second")
    assert [dialog.listing.item(i).text() for i in range(dialog.listing.count())] == ["second"]
    dialog.delete()
    assert dialog.listing.count() == 0 and dialog.edited and list_installed_weights() == []
    window.refresh_weights()  # sesf has no weights any more: the window moves to a usable method
    assert window.method.name != "sesf" and not chooser.isVisible()
    sesf_row = window.method_combo.findData("sesf")
    assert not window.method_combo.model().item(sesf_row).isEnabled()
