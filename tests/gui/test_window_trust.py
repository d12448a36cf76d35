"""The window keeps the command line's promises: it asks before discarding a result never exported,
never offers the source folder for an export nor loads its own exports as frames, and a Cancel or
a quit during a run stops the work (not only the display) at once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from PySide6.QtCore import QThreadPool
from PySide6.QtWidgets import QFileDialog, QMessageBox
from pytestqt.qtbot import QtBot

from focusstudio.core.methods.base import Analysis, RunContext
from focusstudio.core.progress import ProgressGen
from focusstudio.core.types import Stack
from focusstudio.gui.main_window import QUIT_WAIT_MS, MainWindow
from tests.gui import fakes
from tests.gui.conftest import fuse_and_wait, open_and_wait, write_synthetic_stack

Buttons = QMessageBox.StandardButton


class Questions:
    """Stands in for QMessageBox.question: records each question and gives the planned answer."""

    def __init__(self, answer: QMessageBox.StandardButton) -> None:
        self.answer = answer
        self.asked: list[tuple[str, str]] = []

    def __call__(self, _parent: object, title: str, text: str, *args: object) -> QMessageBox.StandardButton:
        self.asked.append((title, text))
        return self.answer


@pytest.fixture
def questions(monkeypatch: pytest.MonkeyPatch) -> Questions:
    recorder = Questions(Buttons.Cancel)
    monkeypatch.setattr(QMessageBox, "question", recorder)
    return recorder


@pytest.fixture
def fused(qtbot: QtBot, window: MainWindow, stack_folder: Path) -> MainWindow:
    window.confirm_discard = True  # the behaviour under test (the fixture turns it off)
    open_and_wait(qtbot, window, [stack_folder])
    fuse_and_wait(qtbot, window)
    return window


@pytest.fixture
def other_stack(tmp_path: Path) -> Path:
    folder = tmp_path / "other"
    write_synthetic_stack(folder, count=2)
    return folder


def _names(window: MainWindow) -> list[str]:
    assert window.loaded_stack is not None
    return list(window.loaded_stack.names)


# ----------------------------------------------------------------------------- unexported results
def test_opening_another_stack_asks_and_cancel_keeps_the_result(
    qtbot: QtBot, fused: MainWindow, questions: Questions, other_stack: Path
) -> None:
    before = fused.results["A"]
    assert fused.open_paths([other_stack]) is None
    assert len(questions.asked) == 1
    title, text = questions.asked[0]
    assert title == "Export the result first?"
    assert "Result A (fake_test) has not been exported" in text and "opening another stack" in text
    assert fused.results["A"] is before and len(_names(fused)) == 3


def test_discard_opens_the_other_stack(
    qtbot: QtBot, fused: MainWindow, questions: Questions, other_stack: Path
) -> None:
    questions.answer = Buttons.Discard
    with qtbot.waitSignal(fused.stackLoaded, timeout=10000):
        assert fused.open_paths([other_stack]) is not None
    assert len(questions.asked) == 1 and not fused.results and len(_names(fused)) == 2


def test_adding_frames_does_not_ask(qtbot: QtBot, fused: MainWindow, questions: Questions, other_stack: Path) -> None:
    with qtbot.waitSignal(fused.stackLoaded, timeout=10000):
        fused.open_paths([other_stack / "frame_1.png"], add=True)
    assert not questions.asked and "A" in fused.results


def test_an_exported_result_goes_without_a_question_until_it_changes(
    qtbot: QtBot, fused: MainWindow, questions: Questions, other_stack: Path, tmp_path: Path
) -> None:
    with qtbot.waitSignal(fused.exported, timeout=10000):
        fused.export_to(tmp_path / "fused.png")
    assert fused.unexported_slots() == []
    # A post-processing change makes a new result: it is unexported again.
    with qtbot.waitSignal(fused.liveUpdated, timeout=10000):
        fused.param_form.set_values({"bias": 0.25})
    assert fused.unexported_slots() == ["A"]
    with qtbot.waitSignal(fused.exported, timeout=10000):
        fused.export_to(tmp_path / "fused2.png", slot="A")
    with qtbot.waitSignal(fused.stackLoaded, timeout=10000):
        fused.open_paths([other_stack])
    assert not questions.asked


def test_both_results_are_named(qtbot: QtBot, fused: MainWindow, questions: Questions, other_stack: Path) -> None:
    fuse_and_wait(qtbot, fused, "B")
    fused.open_paths([other_stack])
    assert "Result A (fake_test) and result B (fake_test) have not been exported" in questions.asked[0][1]


def test_save_exports_then_opens_the_other_stack(
    qtbot: QtBot, fused: MainWindow, questions: Questions, other_stack: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    questions.answer = Buttons.Save
    target = tmp_path / "saved" / "kept.png"
    target.parent.mkdir()
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(target), ""))
    with qtbot.waitSignal(fused.stackLoaded, timeout=15000):
        assert fused.open_paths([other_stack]) is None  # it happens after the export
    assert target.is_file() and (tmp_path / "saved" / "kept.png.json").is_file()
    assert len(_names(fused)) == 2 and len(questions.asked) == 1


def test_closing_the_save_dialog_keeps_everything(
    qtbot: QtBot, fused: MainWindow, questions: Questions, other_stack: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    questions.answer = Buttons.Save
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: ("", ""))
    assert fused.open_paths([other_stack]) is None
    qtbot.wait(200)
    assert "A" in fused.results and len(_names(fused)) == 3 and not fused.file_runner.busy


def test_open_recent_asks(qtbot: QtBot, fused: MainWindow, questions: Questions, other_stack: Path) -> None:
    fused.app_settings.add_recent_stack([str(other_stack)])
    fused.recent_menu.aboutToShow.emit()
    entry = next(action for action in fused.recent_menu.actions() if action.text() == "other")
    entry.trigger()
    assert len(questions.asked) == 1 and len(_names(fused)) == 3


@pytest.mark.filterwarnings("ignore:Function.*QDragEnterEvent:DeprecationWarning")
def test_dropping_a_stack_asks(qtbot: QtBot, fused: MainWindow, questions: Questions, other_stack: Path) -> None:
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(other_stack))])
    drop = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    fused.dropEvent(drop)
    assert len(questions.asked) == 1 and len(_names(fused)) == 3


def test_quitting_asks_and_cancel_keeps_the_window_open(qtbot: QtBot, fused: MainWindow, questions: Questions) -> None:
    assert not fused.close()
    assert fused.isVisible() and "quitting" in questions.asked[0][1]
    questions.answer = Buttons.Discard
    assert fused.close()
    assert not fused.isVisible()


# ----------------------------------------------------------------------------- export folder and own outputs
def test_the_export_dialog_never_offers_the_source_folder(
    qtbot: QtBot, fused: MainWindow, stack_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    offered: list[str] = []

    def save_dialog(_parent: object, _title: str, suggested: str, *args: object) -> tuple[str, str]:
        offered.append(suggested)
        return "", ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_dialog)
    fused.export_dialog()
    assert Path(offered[0]).parent != stack_folder  # the folder the stack was opened from
    assert fused.app_settings.last_directory == str(stack_folder)
    # After an export, its folder is offered; but never a source folder, even when exported there.
    elsewhere = tmp_path / "exports"
    elsewhere.mkdir()
    with qtbot.waitSignal(fused.exported, timeout=10000):
        fused.export_to(elsewhere / "one.png")
    fused.export_dialog()
    assert Path(offered[1]).parent == elsewhere
    with qtbot.waitSignal(fused.exported, timeout=10000):
        fused.export_to(stack_folder / "among_sources.png")
    fused.export_dialog()
    assert Path(offered[2]).parent != stack_folder


def test_reopening_a_folder_skips_the_result_exported_into_it(
    qtbot: QtBot, fused: MainWindow, stack_folder: Path
) -> None:
    with qtbot.waitSignal(fused.exported, timeout=10000):
        fused.export_to(stack_folder / "frame_1_fake_test.png")
    with qtbot.waitSignal(fused.stackLoaded, timeout=10000):
        fused.open_paths([stack_folder])  # exported: no question
    assert _names(fused) == ["frame_1.png", "frame_2.png", "frame_3.png"]
    assert fused.loaded_stack is not None
    assert any("FocusStudio result" in note and "frame_1_fake_test.png" in note for note in fused.loaded_stack.notes)
    assert "FocusStudio result" in fused.stack_panel.summary.text()


# ----------------------------------------------------------------------------- runs: Fuse, Cancel, quit
@pytest.fixture
def loaded(qtbot: QtBot, window: MainWindow, stack_folder: Path) -> MainWindow:
    open_and_wait(qtbot, window, [stack_folder])
    return window


def test_fuse_is_disabled_while_a_fusion_runs(qtbot: QtBot, loaded: MainWindow) -> None:
    loaded.select_method("slow_test")
    assert loaded.fuse_button.isEnabled()
    with qtbot.waitSignal(loaded.fusion_runner.progressed, timeout=5000):
        loaded.fuse_button.click()
    assert not loaded.fuse_button.isEnabled() and not loaded.fuse_action.isEnabled()
    job = loaded.fusion_runner.current_job
    loaded.fuse_action.trigger()  # the shortcut's action is off too: nothing restarts
    assert loaded.fusion_runner.current_job == job
    loaded.cancel_fusion()
    assert loaded.fuse_button.isEnabled()
    qtbot.waitUntil(lambda: loaded.fusion_runner.live_workers == 0, timeout=2000)


def test_fuse_is_disabled_when_it_replaces_a_live_update(qtbot: QtBot, loaded: MainWindow) -> None:
    fuse_and_wait(qtbot, loaded)
    loaded.fusion.live_running = True  # as during a live post-processing update
    loaded.update_enabled()
    assert loaded.fuse_button.isEnabled()  # Fuse may replace a live update...
    loaded.select_method("slow_test")
    with qtbot.waitSignal(loaded.fusion_runner.progressed, timeout=5000):
        loaded.fuse()
    assert not loaded.fuse_button.isEnabled()  # ...but then it is a run of its own
    loaded.cancel_fusion()
    qtbot.waitUntil(lambda: loaded.fusion_runner.live_workers == 0, timeout=2000)


class StubbornMethod(fakes.FakeMethod):
    """A method with one long step that never checks the token (a stuck library call)."""

    name: ClassVar[str] = "stubborn_test"
    title: ClassVar[str] = "Stubborn (tests)"
    blocking_seconds: ClassVar[float] = 2.5

    def analyze(self, stack: Stack, params: dict[str, Any], context: RunContext) -> ProgressGen[Analysis]:
        yield context.progress.event("analysing", 0.0, "stuck")
        time.sleep(self.blocking_seconds)
        return (yield from super().analyze(stack, params, context))


@pytest.fixture
def stubborn(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from focusstudio.core.methods import registry

    monkeypatch.setitem(registry._SPECS, StubbornMethod.name, registry.MethodSpec.of(StubbornMethod))
    yield
    QThreadPool.globalInstance().waitForDone(10000)  # the stuck step ends on its own


def test_quitting_during_a_run_does_not_wait_for_a_stuck_step(
    qtbot: QtBot, stubborn: None, loaded: MainWindow
) -> None:
    loaded.select_method(StubbornMethod.name)
    with qtbot.waitSignal(loaded.fusion_runner.progressed, timeout=5000):
        loaded.fuse()
    started = time.perf_counter()
    assert loaded.close()
    # Functional bound (the stuck step alone takes 2.5 s); benchmarks/gui_latency.py --cancel has the figures.
    assert time.perf_counter() - started < QUIT_WAIT_MS / 1000 + 1.0


def test_quitting_during_a_run_stops_the_work(qtbot: QtBot, loaded: MainWindow) -> None:
    loaded.select_method("slow_test")  # ~10 s of work checking the token every 10 ms
    with qtbot.waitSignal(loaded.fusion_runner.progressed, timeout=5000):
        loaded.fuse()
    assert loaded.close()
    assert QThreadPool.globalInstance().activeThreadCount() == 0  # stopped, not abandoned
    assert "A" not in loaded.results


@pytest.mark.parametrize("method", ["sesf"])
def test_cancel_stops_a_deep_method_inside_its_network_pass(
    qtbot: QtBot, make_window: Callable[..., MainWindow], tmp_path: Path, method: str
) -> None:
    """A real network on a stack that takes many seconds: the worker ends soon after Cancel (a
    generous functional bound; the latency figures are in benchmarks/gui_latency.py --cancel)."""
    from focusstudio.core.methods.registry import get_method

    if not get_method(method).availability()[0]:
        pytest.skip(f"{method} weights are not installed")
    window = make_window(method)
    write_synthetic_stack(tmp_path / "big", count=3, size=900)
    open_and_wait(qtbot, window, [tmp_path / "big"])
    window.set_alignment_mode("off")
    messages: list[str] = []
    window.fusion_runner.progressed.connect(lambda event: messages.append(event.message))
    window.fuse()
    qtbot.waitUntil(lambda: any("deep SF" in message for message in messages), timeout=20000)
    qtbot.wait(300)  # well inside the first frame's network pass
    started = time.perf_counter()
    window.cancel_fusion()
    qtbot.waitUntil(lambda: window.fusion_runner.live_workers == 0, timeout=10000)
    assert time.perf_counter() - started < 2.0
    assert "A" not in window.results
    assert not np.any([message.startswith("deep SF, frame 3") for message in messages])
