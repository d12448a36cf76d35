"""The state of one interactive session, without a window: stack, results A/B, registration, method values.

The model half of the window, as napari's ``ViewerModel`` is to its ``QtViewer``: it holds what the
user opened and made, decides what is current and what is stale, and tells its observers through
plain-Python :class:`Event`\\ s; it imports no Qt, so it is tested (and could be driven by a notebook
or another front end) without a window. The window's controllers change it; its widgets follow it.

Results are whatever the front end keeps per slot (the window: a ``FusionOutcome`` with its display
image); the workspace only needs each result's :attr:`SlotResult.stack_key`, the frame selection
it was made from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import numpy as np

from focusstudio.core.io.tolerant import FileProblem, merge_stacks
from focusstudio.core.types import Stack

if TYPE_CHECKING:
    from focusstudio.core.align import Alignment
    from focusstudio.core.methods.base import FusionMethod

__all__ = ["SLOTS", "Event", "SlotResult", "StackKey", "Workspace"]

#: The result slots: fuse with two methods (or settings) into A and B to compare them.
SLOTS = ("A", "B")
#: Identifies a frame selection: (stack generation, active frame indices).
StackKey = tuple[Any, ...]


class Event:
    """A list of callbacks called in the order they connected, with the arguments of :meth:`emit`.

    Synchronous and single-threaded, like a direct Qt connection: the model is changed on one
    thread (the window's) and every observer has run when ``emit`` returns.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._callbacks: list[Callable[..., object]] = []

    def connect(self, callback: Callable[..., object]) -> None:
        self._callbacks.append(callback)

    def disconnect(self, callback: Callable[..., object]) -> None:
        self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        for callback in list(self._callbacks):  # an observer may disconnect while we iterate
            callback(*args)


class SlotResult(Protocol):
    """What the workspace needs of a result: the frame selection it was made from."""

    @property
    def stack_key(self) -> StackKey: ...


R = TypeVar("R", bound=SlotResult)


class WorkspaceEvents:
    """The workspace's events; each says what changed, observers read the new state from the model."""

    def __init__(self) -> None:
        #: (added: bool) a stack was opened (False) or frames were added to it (True).
        self.stack_changed = Event("stack_changed")
        #: (indices) the frames to fuse (order and exclusion) changed.
        self.selection_changed = Event("selection_changed")
        #: (slot) a result was stored in a slot.
        self.result_changed = Event("result_changed")
        #: every result was dropped (another stack was opened).
        self.results_cleared = Event("results_cleared")
        #: the frames as shown changed (another stack, or another registration): cached displays of
        #: source frames are outdated.
        self.frame_view_changed = Event("frame_view_changed")
        #: (method name or None) another fusion method was chosen.
        self.method_changed = Event("method_changed")


class Workspace(Generic[R]):
    """One session: the loaded stack and frame selection, results A and B, the last registration,
    the chosen method and the parameter values the user set for each method."""

    def __init__(self) -> None:
        self.events = WorkspaceEvents()
        self.stack: Stack | None = None
        #: The paths the user opened (files and folders), for "Open Recent".
        self.paths: list[str] = []
        #: One small image per frame of :attr:`stack` (uint8; the front end decides what they are).
        self.thumbnails: list[np.ndarray] = []
        #: The files of the last opening that could not be used, with the reason.
        self.problems: tuple[FileProblem, ...] = ()
        #: The loaded frames to fuse, in fusion order (the rest are excluded).
        self.active_indices: list[int] = []
        #: Counts stack changes: a result's stack key names the generation it was made from.
        self.generation = 0
        self.results: dict[str, R] = {}
        #: Each slot's result as it was last exported (identity: a live update makes a new result).
        self.exported: dict[str, R] = {}
        #: The last registration: (frame selection, settings, (aligned stack, alignment)).
        self._registration: tuple[StackKey, dict[str, Any], tuple[Stack, Alignment]] | None = None
        #: Frames are shown as the last aligned fusion registered them: (aligned stack, loaded index
        #: → position in it); None = as loaded. :attr:`frame_view` counts the changes.
        self.aligned_view: tuple[Stack, dict[int, int]] | None = None
        self.frame_view = 0
        self.method: FusionMethod | None = None
        self.method_values: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ the stack
    def set_stack(self, stack: Stack, paths: Sequence[str] = (), thumbnails: Sequence[np.ndarray] = (),
                  problems: Sequence[FileProblem] = ()) -> None:
        """Open ``stack`` instead of the current one: the results and the registration are dropped."""
        self.stack = stack
        self.paths = list(paths)
        self.thumbnails = list(thumbnails)
        self.problems = tuple(problems)
        self.clear_results()
        self._new_generation()
        self.events.stack_changed.emit(False)

    def add_frames(self, stack: Stack, paths: Sequence[str] = (), thumbnails: Sequence[np.ndarray] = (),
                   problems: Sequence[FileProblem] = ()) -> None:
        """Append the frames of ``stack`` to the loaded one (the results stay, marked stale by the
        new generation); with nothing loaded, the same as :meth:`set_stack`."""
        if self.stack is None:
            self.set_stack(stack, paths, thumbnails, problems)
            return
        self.stack = merge_stacks(self.stack, stack)
        self.paths.extend(paths)
        self.thumbnails.extend(thumbnails)
        self.problems = tuple(problems)
        self._new_generation()
        self.events.stack_changed.emit(True)

    def remove_frames(self, indices: Sequence[int]) -> list[int]:
        """Take the loaded frames at ``indices`` out of the stack (the results stay, marked stale).

        Returns, for each frame kept, its old index (the caller maps its own per-frame state with
        it); removing every frame leaves no stack.
        """
        if self.stack is None:
            return []
        gone = set(indices)
        keep = [index for index in range(len(self.stack)) if index not in gone]
        if not keep:
            self.stack, self.thumbnails = None, []
        else:
            self.stack = self.stack.subset(keep)
            self.thumbnails = [self.thumbnails[i] for i in keep if i < len(self.thumbnails)]
        new_index = {old: new for new, old in enumerate(keep)}
        self.active_indices = [new_index[i] for i in self.active_indices if i in new_index]
        self._new_generation()
        self.events.stack_changed.emit(True)
        return keep

    def _new_generation(self) -> None:
        """New frames: results made before are stale, and the registration and frame view are dropped."""
        self.generation += 1
        self.aligned_view = None
        self._registration = None
        self.frame_view += 1
        self.events.frame_view_changed.emit()

    def set_active(self, indices: Sequence[int]) -> None:
        """The frames to fuse, in order (the stack list's order without its excluded frames)."""
        self.active_indices = list(indices)
        self.events.selection_changed.emit(list(self.active_indices))

    def excluded_indices(self) -> list[int]:
        """The loaded frames left out of the fusion (unticked in the list), in loaded order."""
        active = set(self.active_indices)
        return [index for index in range(len(self.stack or ())) if index not in active]

    def active_stack(self) -> Stack | None:
        """The frames to fuse, as a stack; None when no frame is loaded or included."""
        if self.stack is None or not self.active_indices:
            return None
        return self.stack.subset(self.active_indices)

    def stack_key(self) -> StackKey:
        """The current frame selection: a result made from another one is stale."""
        return (self.generation, tuple(self.active_indices))

    def can_fuse(self) -> bool:
        return self.method is not None and self.stack is not None and len(self.active_indices) >= 2

    # ------------------------------------------------------------------ results
    def set_result(self, slot: str, result: R) -> None:
        if slot not in SLOTS:
            raise ValueError(f"unknown result slot {slot!r}; valid: {', '.join(SLOTS)}")
        self.results[slot] = result
        self.events.result_changed.emit(slot)

    def is_current(self, result: SlotResult) -> bool:
        """Whether ``result`` was made from the frames selected now."""
        return result.stack_key == self.stack_key()

    def stale_slots(self) -> list[str]:
        """The slots whose result was made from another frame selection."""
        return [slot for slot, result in self.results.items() if not self.is_current(result)]

    def clear_results(self) -> None:
        self.results.clear()
        self.exported.clear()
        self.events.results_cleared.emit()

    def mark_exported(self, slot: str, result: R) -> None:
        """``result`` was written to a file; it counts only while it is still the slot's result."""
        if self.results.get(slot) is result:
            self.exported[slot] = result

    def unexported_slots(self) -> list[str]:
        """The slots whose current result was never exported (a live update makes a new result)."""
        return [slot for slot in SLOTS
                if slot in self.results and self.exported.get(slot) is not self.results[slot]]

    # ------------------------------------------------------------------ registration
    def cached_registration(self, settings: Mapping[str, Any]) -> tuple[Stack, Alignment] | None:
        """The registration made for the current frame selection with ``settings``, if any (fusing
        again, or with another method, needs no new registration)."""
        if self._registration is None:
            return None
        key, cached_settings, registration = self._registration
        return registration if key == self.stack_key() and cached_settings == dict(settings) else None

    def remember_registration(self, stack_key: StackKey, settings: Mapping[str, Any], aligned: Stack,
                              alignment: Alignment) -> None:
        """Keep a fusion's registration for re-use, and show the frames as it aligned them."""
        self._registration = (stack_key, dict(settings), (aligned, alignment))
        selection = list(stack_key[1]) if len(stack_key) > 1 else []
        self._set_aligned_view((aligned, {selection[kept]: position
                                          for position, kept in enumerate(alignment.included)
                                          if kept < len(selection)}))

    def forget_aligned_view(self) -> None:
        """The last fusion did not align: show the frames as loaded."""
        self._set_aligned_view(None)

    def _set_aligned_view(self, view: tuple[Stack, dict[int, int]] | None) -> None:
        current = self.aligned_view
        same = (view is None and current is None) or (
            view is not None and current is not None and view[0] is current[0]
        )
        if same:
            return
        self.aligned_view = view
        self.frame_view += 1  # another registration (or none): the shown frames must be made again
        self.events.frame_view_changed.emit()

    def frame_source(self, index: int) -> tuple[Stack, int] | None:
        """(stack, position) to read loaded frame ``index`` from as it is shown: aligned when the
        last fusion registered it, else as loaded; None when there is no such frame."""
        if self.stack is None or not 0 <= index < len(self.stack):
            return None
        if self.aligned_view is not None and index in self.aligned_view[1]:
            return self.aligned_view[0], self.aligned_view[1][index]
        return self.stack, index

    # ------------------------------------------------------------------ method and parameters
    def choose_method(self, method: FusionMethod | None, current_values: Mapping[str, Any] | None = None) -> None:
        """Switch to ``method``; ``current_values`` (the form's values for the method chosen until
        now) are remembered, so coming back to that method restores them."""
        if self.method is not None and current_values is not None:
            self.method_values[self.method.name] = dict(current_values)
        self.method = method
        self.events.method_changed.emit(method.name if method is not None else None)

    def remember_values(self, values: Mapping[str, Any]) -> None:
        """The user changed the current method's parameters to ``values``."""
        if self.method is not None:
            self.method_values[self.method.name] = dict(values)

    def values_for(self, name: str) -> dict[str, Any] | None:
        """The values last set for method ``name`` in this session (None: never changed)."""
        remembered = self.method_values.get(name)
        return dict(remembered) if remembered is not None else None
