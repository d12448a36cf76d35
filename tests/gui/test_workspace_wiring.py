"""The window as a view of its workspace: what it opens and fuses lands in the model; widgets follow its events."""

from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from focusstudio.gui.main_window import MainWindow
from tests.gui.conftest import fuse_and_wait, open_and_wait


def test_opened_frames_and_results_live_in_the_workspace(qtbot: QtBot, window: MainWindow, stack_folder: Path) -> None:
    workspace = window.workspace
    open_and_wait(qtbot, window, [stack_folder])
    assert workspace.stack is window.loaded_stack and workspace.stack is not None
    assert len(workspace.thumbnails) == len(workspace.stack) == 3
    assert workspace.paths == [str(stack_folder)] and workspace.problems == ()
    assert workspace.active_indices == [0, 1, 2] and workspace.method is window.method
    fuse_and_wait(qtbot, window)
    outcome = workspace.results["A"]
    assert window.results["A"] is outcome and workspace.is_current(outcome)
    assert workspace.unexported_slots() == ["A"]
    # Excluding a frame in the list makes the result stale, and the viewer's title says so.
    window.stack_panel.set_included(2, False)
    assert workspace.active_indices == [0, 1] and workspace.stale_slots() == ["A"]
    assert window.display.layer_title("result:A").endswith("previous frame selection")


def test_fuse_and_export_follow_the_workspace_events(qtbot: QtBot, window: MainWindow, stack_folder: Path) -> None:
    open_and_wait(qtbot, window, [stack_folder])
    assert window.fuse_button.isEnabled() and not window.export_action.isEnabled()
    window.workspace.set_active([1])  # one frame is not a stack
    assert not window.fuse_button.isEnabled() and not window.fuse_action.isEnabled()
    window.workspace.set_active([1, 0])
    assert window.fuse_button.isEnabled()
    fuse_and_wait(qtbot, window)
    assert window.export_action.isEnabled() and window.export_maps_action.isEnabled()
    window.workspace.clear_results()  # as opening another stack does
    assert not window.export_action.isEnabled()
    assert window.state.overlays == {} and not window.state.wipe_enabled
