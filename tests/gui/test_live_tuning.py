"""Live tuning: a drag shows screen-resolution previews, then the full result once the control
rests; the next change cancels a pending full-resolution update; metrics wait for the final result."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import pytest
from pytestqt.qtbot import QtBot

from focusstudio.core.methods.base import Analysis, RunContext
from focusstudio.core.progress import ProgressGen
from focusstudio.core.types import FusionResult, Stack
from focusstudio.gui.main_window import MainWindow
from tests.gui import fakes
from tests.gui.conftest import fuse_and_wait

#: The stack's size and the viewport the previews are made for (a quarter of the width).
SIZE = 160
VIEW = 40


class SlowFinishMethod(fakes.FakeMethod):
    """The fake method whose full-resolution post-processing takes ~1 s (the preview stays fast)."""

    name: ClassVar[str] = "slow_finish_test"
    title: ClassVar[str] = "Slow finish (tests)"

    def finish(self, analysis: Analysis, stack: Stack, params: dict[str, Any],
               context: RunContext) -> ProgressGen[FusionResult]:
        if stack.shape == (SIZE, SIZE) and params["bias"] != 0.0:  # the live full-resolution updates
            for _ in range(100):
                context.cancel.raise_if_cancelled()
                time.sleep(0.01)
        return (yield from super().finish(analysis, stack, params, context))


def synthetic(count: int = 3) -> Stack:
    rng = np.random.default_rng(3)
    sharp = rng.random((SIZE, SIZE, 3)).astype(np.float32)
    frames = []
    for index in range(count):
        frame = np.full_like(sharp, 0.5)
        band = slice(index * SIZE // count, (index + 1) * SIZE // count)
        frame[:, band] = sharp[:, band]
        frames.append(frame)
    return Stack.from_arrays(frames, [f"f{index}" for index in range(count)])


@pytest.fixture
def tuned(qtbot: QtBot, make_window: Any, monkeypatch: pytest.MonkeyPatch) -> MainWindow:
    from focusstudio.core.methods import registry

    monkeypatch.setitem(registry._SPECS, SlowFinishMethod.name, registry.MethodSpec.of(SlowFinishMethod))
    window: MainWindow = make_window(SlowFinishMethod.name)
    # The viewport's pixels decide the preview's size; fixed here so the test does not depend on
    # the offscreen screen's size.
    monkeypatch.setattr(window.fusion, "view_pixels", lambda: (VIEW, VIEW))
    window.load_stack_object(synthetic())
    return window


def final(window: MainWindow, bias: float) -> bool:
    return window.results["A"].result.params["bias"] == bias and not window.fusion.pending_full


def test_a_drag_shows_a_screen_resolution_preview_then_the_full_result(qtbot: QtBot, tuned: MainWindow) -> None:
    tuned.metrics_panel.auto.setChecked(False)
    fuse_and_wait(qtbot, tuned)
    original = tuned.results["A"]
    with qtbot.waitSignal(tuned.liveUpdated, timeout=5000):
        tuned.param_form.set_values({"bias": 0.5})
    preview = tuned.fusion.preview
    assert preview is not None and preview.display.shape[:2] == (VIEW, VIEW)
    # Drawn in place of the result, stretched over the full size (view, overlays, cursor unmoved)...
    assert tuned.viewer.main.base_item.image.shape[:2] == (VIEW, VIEW)
    assert tuned.viewer.main.image_shape == (SIZE, SIZE)
    # ...and not a result: the workspace (export, metrics) still holds the full-resolution one.
    assert tuned.results["A"] is original
    assert tuned.fusion.pending_full
    qtbot.waitUntil(lambda: final(tuned, 0.5), timeout=10000)
    assert tuned.fusion.preview is None
    assert tuned.viewer.main.base_item.image.shape[:2] == (SIZE, SIZE)
    assert tuned.results["A"].result.image.shape[:2] == (SIZE, SIZE)
    assert tuned.results["A"].reused_analysis
    # bias 0.5 favours frame 0 everywhere it is not flat: the preview and the result agree on it.
    assert tuned.fusion.previews_shown >= 1


def test_the_fusion_hands_over_its_preview_inputs_so_the_first_change_shrinks_nothing(
        qtbot: QtBot, tuned: MainWindow, monkeypatch: pytest.MonkeyPatch) -> None:
    from focusstudio.gui.controllers import fusion as fusion_module

    requests: list[Any] = []
    real_preview_job = fusion_module.preview_job

    def recording(request: Any, cancel: Any) -> Any:
        requests.append(request)
        return real_preview_job(request, cancel)

    monkeypatch.setattr(fusion_module, "preview_job", recording)
    tuned.metrics_panel.auto.setChecked(False)
    tuned.set_alignment_mode("off")
    fuse_and_wait(qtbot, tuned)
    outcome = tuned.results["A"]
    # Shrunk in the fusion's worker, to the view's size, from the result's own analysis.
    assert outcome.proxy is not None and outcome.proxy.stack.shape == (VIEW, VIEW)
    assert outcome.proxy.scale == pytest.approx(VIEW / SIZE)
    # The frames are the ones the quick draft shrank (unaligned: the same frames at the same size).
    assert outcome.request.shrunk is not None
    assert outcome.proxy.stack is outcome.request.shrunk.get(outcome.request.stack, (VIEW, VIEW))
    with qtbot.waitSignal(tuned.liveUpdated, timeout=5000):
        tuned.param_form.set_values({"bias": 0.4})
    # No preparation job after the fusion, and the first preview ran on the inputs it handed over.
    assert [request.prepare_only for request in requests] == [False]
    assert requests[0].proxy is outcome.proxy
    qtbot.waitUntil(lambda: final(tuned, 0.4), timeout=10000)


def test_the_retouch_tool_waits_until_the_tuning_rests(qtbot: QtBot, tuned: MainWindow) -> None:
    """Its sharpness probe and frame decoding would share the CPU with the first preview."""
    tuned.metrics_panel.auto.setChecked(False)
    retouch = tuned.retouch
    started: list[str] = []
    for runner in retouch.runners:
        name = runner.objectName()
        runner.started.connect(lambda _job, name=name: started.append(name))
    fuse_and_wait(qtbot, tuned)
    with qtbot.waitSignal(tuned.liveUpdated, timeout=5000):
        tuned.param_form.set_values({"bias": 0.3})
    assert started == [] and retouch.settle_timer.isActive()
    qtbot.waitUntil(lambda: final(tuned, 0.3), timeout=10000)
    qtbot.waitUntil(lambda: "retouch-probe" in started, timeout=5000)  # once settled, it runs
    qtbot.waitUntil(lambda: not any(runner.busy for runner in retouch.runners), timeout=5000)


def test_no_preview_inputs_for_a_method_without_post_processing(qtbot: QtBot, make_window: Any,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    window: MainWindow = make_window(fakes.FakeMethod.name)
    monkeypatch.setattr(window.fusion, "view_pixels", lambda: (VIEW, VIEW))
    monkeypatch.setattr(window.fusion, "_tunable", lambda _method: False)
    window.metrics_panel.auto.setChecked(False)
    window.load_stack_object(synthetic())
    fuse_and_wait(qtbot, window)
    assert window.results["A"].proxy is None and window.results["A"].preview_note == ""


def test_a_new_change_cancels_the_pending_full_resolution_update(qtbot: QtBot, tuned: MainWindow) -> None:
    tuned.metrics_panel.auto.setChecked(False)
    fuse_and_wait(qtbot, tuned)
    tuned.param_form.set_values({"bias": 0.3})
    # The control rests: the full resolution starts (and takes ~1 s).
    qtbot.waitUntil(lambda: tuned.fusion.live_running, timeout=5000)
    first_job = tuned.fusion_runner.current_job
    with qtbot.waitSignal(tuned.fusion_runner.cancelled, timeout=1000) as cancelled:
        tuned.param_form.set_values({"bias": 0.6})
    assert cancelled.args == [first_job]
    qtbot.waitUntil(lambda: final(tuned, 0.6), timeout=15000)
    assert "Fusion cancelled" not in tuned.statusBar().currentMessage()  # superseded, not cancelled by the user


def test_metrics_wait_until_the_drag_rests(qtbot: QtBot, tuned: MainWindow) -> None:
    metrics = tuned.metrics
    with qtbot.waitSignal(tuned.metricsReady, timeout=30000):
        fuse_and_wait(qtbot, tuned)
    started = metrics.started_count
    assert started == 1
    # A drag: a change every 50 ms for a second, each sooner than the rest the full resolution waits for.
    metrics.compute_now()  # metrics running when the drag begins are cancelled at its first change
    assert metrics.runner.busy
    for step in range(20):
        tuned.param_form.set_values({"bias": 0.05 * (step + 1)})
        assert not metrics.runner.busy and not metrics.timer.isActive()
        qtbot.wait(50)
    assert metrics.started_count == started + 1  # only the compute_now above, cancelled
    assert not tuned.fusion.live_running or tuned.fusion.pending_full
    # Rested: the final result, then its metrics, once.
    with qtbot.waitSignal(tuned.metricsReady, timeout=60000):
        qtbot.waitUntil(lambda: final(tuned, 1.0), timeout=15000)
    assert metrics.started_count == started + 2
    assert tuned.fusion.previews_shown >= 2  # the drag was shown while it went on


def test_low_priority_jobs_run_in_a_lowered_thread_of_their_own() -> None:
    import os
    import sys
    import threading

    from focusstudio.core.progress import CancelToken, ProgressEvent
    from focusstudio.gui.live_jobs import at_low_priority

    seen: dict[str, Any] = {}

    def job(cancel: CancelToken) -> Any:
        seen["thread"] = threading.get_ident()
        if sys.platform.startswith("linux"):
            seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        yield ProgressEvent("metrics", 0.5, "half")
        return 42

    linux = sys.platform.startswith("linux")
    caller = os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) if linux else 0
    generator = at_low_priority(job)(CancelToken())
    events = []
    with pytest.raises(StopIteration) as stop:
        while True:
            events.append(next(generator))
    assert stop.value.value == 42 and [event.message for event in events] == ["half"]
    assert seen["thread"] != threading.get_ident()
    if linux:
        assert seen["nice"] == 19
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == caller  # the caller is untouched

    def failing(cancel: CancelToken) -> Any:
        yield ProgressEvent("metrics", 0.0)
        raise ValueError("bad pixels")

    with pytest.raises(ValueError, match="bad pixels"):
        list(at_low_priority(failing)(CancelToken()))


class SlowAnalysisMethod(fakes.FakeMethod):
    """The fake method whose full-resolution analysis takes ~1.5 s (a screen-sized draft is quick)."""

    name: ClassVar[str] = "slow_analysis_test"
    title: ClassVar[str] = "Slow analysis (tests)"

    def analyze(self, stack: Stack, params: dict[str, Any], context: RunContext) -> ProgressGen[Analysis]:
        if stack.shape == (SIZE, SIZE):
            for _ in range(150):
                context.cancel.raise_if_cancelled()
                time.sleep(0.01)
        return (yield from super().analyze(stack, params, context))


@pytest.fixture
def drafting(qtbot: QtBot, make_window: Any, monkeypatch: pytest.MonkeyPatch) -> MainWindow:
    from focusstudio.core.methods import registry

    monkeypatch.setitem(registry._SPECS, SlowAnalysisMethod.name, registry.MethodSpec.of(SlowAnalysisMethod))
    window: MainWindow = make_window(SlowAnalysisMethod.name)
    monkeypatch.setattr(window.fusion, "view_pixels", lambda: (VIEW, VIEW))
    window.metrics_panel.auto.setChecked(False)
    window.load_stack_object(synthetic())
    return window


def test_fuse_shows_a_quick_draft_then_the_full_result(qtbot: QtBot, drafting: MainWindow) -> None:
    with qtbot.waitSignal(drafting.fusion.draftShown, timeout=10000) as shown:
        drafting.fuse()
    assert shown.args == ["A"] and drafting.fusion_runner.busy  # the full fusion still runs
    assert not drafting.results  # a draft is no result (nothing to export or measure)
    assert drafting.state.base == "result:A"
    assert drafting.viewer.main.base_item.image.shape[:2] == (VIEW, VIEW)
    assert drafting.viewer.main.image_shape == (SIZE, SIZE)  # stretched over the full size
    with qtbot.waitSignal(drafting.resultReady, timeout=20000):
        pass
    assert drafting.fusion.draft is None
    assert drafting.viewer.main.base_item.image.shape[:2] == (SIZE, SIZE)


def test_cancel_drops_the_draft_and_shows_the_frame_again(qtbot: QtBot, drafting: MainWindow) -> None:
    before = drafting.state.base
    with qtbot.waitSignal(drafting.fusion.draftShown, timeout=10000):
        drafting.fuse()
    drafting.cancel_fusion()
    assert drafting.fusion.draft is None and drafting.state.base == before
    qtbot.waitUntil(lambda: drafting.fusion_runner.live_workers == 0, timeout=3000)
