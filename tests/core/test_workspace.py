"""The window's Qt-free model: stack and selection, results A/B, the registration cache, per-method values, events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from focusstudio.core.align import Alignment, FrameAlignment
from focusstudio.core.io.tolerant import FileProblem
from focusstudio.core.methods.registry import get_method, list_methods
from focusstudio.core.types import Stack
from focusstudio.core.workspace import Event, StackKey, Workspace


@dataclass(frozen=True, eq=False)
class Result:
    """A stand-in for the window's FusionOutcome: the workspace needs only its stack key."""

    stack_key: StackKey
    label: str = ""


def _stack(count: int, prefix: str = "f", size: int = 8) -> Stack:
    arrays = [np.full((size, size), (i + 1) / 10, np.float32) for i in range(count)]
    return Stack.from_arrays(arrays, names=[f"{prefix}{i}" for i in range(count)])


def _alignment(count: int, excluded: tuple[int, ...] = ()) -> Alignment:
    frames = tuple(
        FrameAlignment(i, f"f{i}", np.eye(3), "excluded" if i in excluded else ("reference" if i == 0 else "ok"))
        for i in range(count)
    )
    return Alignment(frames, reference=0, model="translation", shape=(8, 8), crop_box=None)


class Recorder:
    """Every event of a workspace, in order, with its arguments."""

    def __init__(self, workspace: Workspace[Any]) -> None:
        self.seen: list[tuple[Any, ...]] = []
        events = workspace.events
        for event in (events.stack_changed, events.selection_changed, events.result_changed,
                      events.results_cleared, events.frame_view_changed, events.method_changed):
            event.connect(lambda *args, name=event.name: self.seen.append((name, *args)))

    def names(self) -> list[str]:
        return [entry[0] for entry in self.seen]


def test_opening_a_stack_drops_results_and_says_so_in_order() -> None:
    workspace: Workspace[Result] = Workspace()
    workspace.set_stack(_stack(3), ["/a"], thumbnails=[np.zeros((2, 2), np.uint8)] * 3)
    workspace.set_active([0, 1, 2])
    workspace.set_result("A", Result(workspace.stack_key()))
    recorder = Recorder(workspace)
    problem = FileProblem("/b/bad.png", "is not an image")
    workspace.set_stack(_stack(2, "g"), ["/b"], problems=[problem])
    # Observers of results_cleared still see the old generation; stack_changed comes last.
    assert recorder.names() == ["results_cleared", "frame_view_changed", "stack_changed"]
    assert recorder.seen[-1] == ("stack_changed", False)
    assert workspace.results == {} and workspace.generation == 2
    assert workspace.paths == ["/b"] and workspace.thumbnails == [] and workspace.problems == (problem,)


def test_added_frames_follow_the_loaded_ones_and_make_results_stale() -> None:
    workspace: Workspace[Result] = Workspace()
    workspace.set_stack(_stack(2, "a"), ["/a"])
    workspace.set_active([0, 1])
    result = Result(workspace.stack_key())
    workspace.set_result("A", result)
    assert workspace.is_current(result) and workspace.stale_slots() == []
    recorder = Recorder(workspace)
    workspace.add_frames(_stack(2, "b"), ["/b"])
    assert recorder.seen[-1] == ("stack_changed", True)
    assert workspace.stack is not None and workspace.stack.names == ["a0", "a1", "b0", "b1"]
    assert workspace.stack.load(3)[0, 0] == pytest.approx(0.2)  # decoded by the stack it came from
    assert workspace.paths == ["/a", "/b"]
    assert workspace.results["A"] is result and workspace.stale_slots() == ["A"]  # kept, but stale


def test_adding_to_nothing_opens_the_frames() -> None:
    workspace: Workspace[Result] = Workspace()
    recorder = Recorder(workspace)
    workspace.add_frames(_stack(2), ["/a"])
    assert workspace.stack is not None and len(workspace.stack) == 2
    assert recorder.seen[-1] == ("stack_changed", False)


def test_the_selection_decides_the_frames_to_fuse_and_what_is_current() -> None:
    workspace: Workspace[Result] = Workspace()
    assert workspace.active_stack() is None and not workspace.can_fuse()
    workspace.set_stack(_stack(4))
    recorder = Recorder(workspace)
    workspace.set_active([3, 1])
    assert recorder.seen == [("selection_changed", [3, 1])]
    active = workspace.active_stack()
    assert active is not None and active.names == ["f3", "f1"]
    assert workspace.excluded_indices() == [0, 2]
    result = Result(workspace.stack_key())
    workspace.set_result("B", result)
    workspace.set_active([3, 1, 0])
    assert not workspace.is_current(result) and workspace.stale_slots() == ["B"]
    assert not workspace.can_fuse()  # no method chosen yet
    workspace.choose_method(get_method("sf"))
    assert workspace.can_fuse()
    workspace.set_active([2])
    assert not workspace.can_fuse()  # one frame is not a stack


def test_results_go_into_the_two_slots_only() -> None:
    workspace: Workspace[Result] = Workspace()
    recorder = Recorder(workspace)
    workspace.set_result("A", Result(()))
    assert recorder.seen == [("result_changed", "A")]
    with pytest.raises(ValueError, match="unknown result slot 'C'"):
        workspace.set_result("C", Result(()))


def test_a_result_counts_as_exported_only_while_it_is_the_slot_s_result() -> None:
    workspace: Workspace[Result] = Workspace()
    first, live_update = Result((), "first"), Result((), "live")
    workspace.set_result("A", first)
    workspace.set_result("B", Result((), "b"))
    assert workspace.unexported_slots() == ["A", "B"]
    workspace.mark_exported("A", first)
    assert workspace.unexported_slots() == ["B"]
    workspace.set_result("A", live_update)  # a live update is a new result, never exported
    assert workspace.unexported_slots() == ["A", "B"]
    workspace.mark_exported("A", first)  # an export of the replaced result finishing late
    assert workspace.unexported_slots() == ["A", "B"]
    workspace.clear_results()
    assert workspace.unexported_slots() == [] and workspace.exported == {}


def test_a_registration_is_reused_for_the_same_frames_and_settings_only() -> None:
    workspace: Workspace[Result] = Workspace()
    workspace.set_stack(_stack(3))
    workspace.set_active([0, 1, 2])
    aligned, alignment = _stack(3, "aligned"), _alignment(3)
    settings = {"model": "translation", "crop": True}
    workspace.remember_registration(workspace.stack_key(), settings, aligned, alignment)
    assert workspace.cached_registration(dict(settings)) == (aligned, alignment)
    assert workspace.cached_registration({"model": "affine", "crop": True}) is None
    workspace.set_active([0, 1])
    assert workspace.cached_registration(settings) is None  # other frames
    workspace.set_active([0, 1, 2])
    assert workspace.cached_registration(settings) == (aligned, alignment)
    workspace.add_frames(_stack(1, "new"))
    assert workspace.cached_registration(settings) is None and workspace.aligned_view is None  # new frames


def test_frames_are_shown_as_the_last_registration_placed_them() -> None:
    workspace: Workspace[Result] = Workspace()
    loaded = _stack(4)
    workspace.set_stack(loaded)
    workspace.set_active([2, 0, 3])
    assert workspace.frame_source(1) == (loaded, 1) and workspace.frame_source(4) is None
    # Fused frames 2, 0, 3 in that order; the middle one (loaded frame 0) did not register.
    aligned = _stack(2, "aligned")
    recorder = Recorder(workspace)
    view = workspace.frame_view
    workspace.remember_registration(workspace.stack_key(), {}, aligned, _alignment(3, excluded=(1,)))
    assert recorder.names() == ["frame_view_changed"] and workspace.frame_view == view + 1
    assert workspace.aligned_view is not None and workspace.aligned_view[1] == {2: 0, 3: 1}
    assert workspace.frame_source(2) == (aligned, 0) and workspace.frame_source(3) == (aligned, 1)
    assert workspace.frame_source(0) == (loaded, 0)  # not in the registration: as loaded
    # The same registration again (re-fusing with another method) keeps the shown frames.
    workspace.remember_registration(workspace.stack_key(), {}, aligned, _alignment(3, excluded=(1,)))
    assert workspace.frame_view == view + 1
    workspace.forget_aligned_view()
    assert workspace.frame_view == view + 2 and workspace.frame_source(2) == (loaded, 2)
    registration = workspace.cached_registration({})  # not aligned last time, but still reusable
    assert registration is not None and registration[0] is aligned
    workspace.forget_aligned_view()  # already as loaded: nothing to redo
    assert workspace.frame_view == view + 2


def test_each_method_keeps_the_values_the_user_set() -> None:
    workspace: Workspace[Result] = Workspace()
    recorder = Recorder(workspace)
    sf = get_method("sf")
    first = get_method(next(name for name in list_methods() if name != "sf"))
    workspace.choose_method(sf)
    workspace.remember_values({"block_size": 9})
    workspace.choose_method(first, current_values={"block_size": 11})  # the form's values when leaving sf
    assert workspace.values_for("sf") == {"block_size": 11}
    assert workspace.values_for(first.name) is None
    workspace.remember_values({"x": 1})
    workspace.choose_method(sf, current_values={"x": 2})
    assert workspace.values_for(first.name) == {"x": 2} and workspace.method is sf
    copy = workspace.values_for("sf")
    assert copy is not None
    copy["block_size"] = 99  # callers get a copy
    assert workspace.values_for("sf") == {"block_size": 11}
    workspace.choose_method(None)
    assert workspace.method is None and workspace.values_for("sf") == {"block_size": 11}
    assert [entry for entry in recorder.seen if entry[0] == "method_changed"] == [
        ("method_changed", "sf"), ("method_changed", first.name), ("method_changed", "sf"), ("method_changed", None)
    ]


def test_an_observer_may_disconnect_while_the_event_is_emitted() -> None:
    event = Event("changed")
    calls: list[str] = []

    def once(value: int) -> None:
        calls.append(f"once {value}")
        event.disconnect(once)

    event.connect(once)
    event.connect(lambda value: calls.append(f"always {value}"))
    event.emit(1)
    event.emit(2)
    assert calls == ["once 1", "always 1", "always 2"]
