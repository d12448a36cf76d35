"""Fusing in the background: results, progress, cancel, one job at a time, live post-processing."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from pytestqt.qtbot import QtBot

from focusstudio.core.progress import ProgressEvent
from focusstudio.gui.main_window import MainWindow
from tests.gui import fakes
from tests.gui.conftest import fuse_and_wait, open_and_wait


@pytest.fixture
def loaded(qtbot: QtBot, window: MainWindow, stack_folder: Path) -> MainWindow:
    open_and_wait(qtbot, window, [stack_folder])
    return window


def test_fusion_runs_in_the_background_and_shows_the_result(qtbot: QtBot, loaded: MainWindow) -> None:
    events: list[ProgressEvent] = []
    loaded.fusion_runner.progressed.connect(events.append)
    fuse_and_wait(qtbot, loaded)
    outcome = loaded.results["A"]
    assert outcome.result.method == "fake_test"
    assert outcome.result.image.shape == (48, 48, 3)
    stages = [e.stage for e in events]
    # Three frames: aligned first (the default, as on the command line), then fused.
    assert stages[:1] == ["align"] and "analysing" in stages and "composing" in stages
    assert [e.fraction for e in events] == sorted(e.fraction for e in events)  # one bar, never backwards
    assert all(0.0 <= e.fraction <= 1.0 for e in events)
    assert loaded.state.base == "result:A"
    shown = loaded.viewer.main.base_item.image
    assert shown is not None and shown.dtype == np.uint8 and shown.shape == (48, 48, 3)
    assert np.array_equal(shown, np.clip(outcome.result.image * 255 + 0.5, 0, 255).astype(np.uint8))
    assert "Device: cpu" in loaded.device_label.text()
    assert loaded.export_action.isEnabled() and not loaded.cancel_button.isEnabled()
    assert loaded.progress.isHidden()


def test_the_event_loop_keeps_running_during_a_fusion(qtbot: QtBot, loaded: MainWindow) -> None:
    from focusstudio.gui.latency import EventLoopProbe

    loaded.select_method("slow_test")
    probe = EventLoopProbe(10)
    probe.start()
    loaded.fuse()
    qtbot.waitUntil(lambda: len(probe.stalls) >= 30, timeout=5000)  # ~300 ms of a running fusion
    probe.stop()
    assert loaded.fusion_runner.busy
    # The job runs for ~10 s; a frozen window would not tick at all. The bound is loose because a
    # shared CI machine can deschedule the process for a while (benchmarks/gui_latency.py measures
    # the real stalls of a big fusion).
    assert probe.longest_ms < 500, probe.longest_ms
    loaded.cancel_fusion()


def test_cancel_stops_a_slow_fusion_at_once(qtbot: QtBot, loaded: MainWindow) -> None:
    loaded.select_method("slow_test")
    with qtbot.waitSignal(loaded.fusion_runner.progressed, timeout=5000):
        loaded.fuse()
    assert loaded.cancel_button.isEnabled()
    started = time.perf_counter()
    with qtbot.waitSignal(loaded.fusion_runner.cancelled, timeout=1000):
        loaded.cancel_button.click()
    assert not loaded.cancel_button.isEnabled() and loaded.progress.isHidden()
    # The worker itself ends at its next cancel check (every 10 ms), well before 10 s of work.
    # Loose bound (a shared CI core can deschedule us): what matters is "far less than the 10 s job".
    qtbot.waitUntil(lambda: loaded.fusion_runner.live_workers == 0, timeout=5000)
    assert time.perf_counter() - started < 5.0
    assert "A" not in loaded.results


def test_a_new_fusion_supersedes_the_running_one(qtbot: QtBot, loaded: MainWindow) -> None:
    loaded.select_method("slow_test")
    with qtbot.waitSignal(loaded.fusion_runner.progressed, timeout=5000):
        loaded.fuse()
    loaded.select_method("fake_test")
    shown: list[str] = []
    loaded.resultReady.connect(shown.append)
    fuse_and_wait(qtbot, loaded)
    qtbot.waitUntil(lambda: loaded.fusion_runner.live_workers == 0, timeout=2000)
    assert shown == ["A"]
    assert loaded.results["A"].result.method == "fake_test"


def test_a_failure_is_reported_not_raised(qtbot: QtBot, loaded: MainWindow, monkeypatch: pytest.MonkeyPatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    def broken_finish(*_args: object, **_kwargs: object) -> object:
        raise RuntimeError("boom in finish")  # superqt would swallow a bare RuntimeError

    monkeypatch.setattr(fakes.FakeMethod, "finish", broken_finish)
    dialogs: list[str] = []
    monkeypatch.setattr(QMessageBox, "critical", lambda _parent, _title, text, *a: dialogs.append(text))
    with qtbot.waitSignal(loaded.jobFailed, timeout=5000) as blocker:
        loaded.fuse()
    assert blocker.args == ["RuntimeError: boom in finish"]
    assert dialogs == ["RuntimeError: boom in finish"]
    assert not loaded.fusion_runner.busy


def test_post_processing_change_reuses_the_analysis(qtbot: QtBot, loaded: MainWindow) -> None:
    fuse_and_wait(qtbot, loaded)
    assert fakes.CALLS == {"analyze": 1, "finish": 1}
    loaded.state.show_only("index")
    before = loaded.viewer.overlay_item("index").image.copy()
    with qtbot.waitSignal(loaded.liveUpdated, timeout=5000) as blocker:
        loaded.param_form.set_values({"rule": "first"})
    assert fakes.CALLS == {"analyze": 1, "finish": 2}
    assert loaded.results["A"].reused_analysis
    assert loaded.results["A"].result.params["rule"] == "first"
    after = loaded.viewer.overlay_item("index").image
    assert not np.array_equal(before, after) and not after.any()  # "first" picks frame 0 everywhere
    assert 0 < blocker.args[0] < 5000
    assert loaded.last_live_latency_ms == blocker.args[0]


def test_rapid_changes_are_debounced_into_one_update(qtbot: QtBot, loaded: MainWindow) -> None:
    fuse_and_wait(qtbot, loaded)
    with qtbot.waitSignal(loaded.liveUpdated, timeout=5000):
        for bias in (0.1, 0.2, 0.3, 0.4):
            loaded.param_form.set_values({"bias": bias})
    assert fakes.CALLS["finish"] == 2  # one fusion, then one live update for the four changes
    assert loaded.results["A"].result.params["bias"] == 0.4


def test_analysis_change_waits_for_fuse(qtbot: QtBot, loaded: MainWindow) -> None:
    fuse_and_wait(qtbot, loaded)
    with qtbot.assertNotEmitted(loaded.liveUpdated, wait=400):
        loaded.param_form.set_values({"window": 5})
    assert fakes.CALLS == {"analyze": 1, "finish": 1}
    fuse_and_wait(qtbot, loaded)
    assert fakes.CALLS == {"analyze": 2, "finish": 2}


def test_preferences_choose_the_device_and_live_updates(
    qtbot: QtBot, loaded: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    from focusstudio.gui.dialogs import PreferencesDialog

    def accept(dialog: PreferencesDialog) -> int:
        dialog.device.setCurrentIndex(dialog.device.findData("cpu"))
        dialog.live.setChecked(False)
        return 1

    monkeypatch.setattr(PreferencesDialog, "exec", accept)
    loaded.preferences_action.trigger()
    assert loaded.app_settings.device == "cpu" and not loaded.app_settings.live_update
    assert loaded.device_label.text() == "Device: cpu"
    fuse_and_wait(qtbot, loaded)
    assert loaded.results["A"].request.device == "cpu"
    with qtbot.assertNotEmitted(loaded.liveUpdated, wait=400):
        loaded.param_form.set_values({"bias": 0.3})
    assert fakes.CALLS["finish"] == 1
