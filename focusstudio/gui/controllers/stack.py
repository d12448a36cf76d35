"""Opening stacks in the window: the file dialogs, the background load, and the stack list it fills.

Loading runs :func:`focusstudio.gui.jobs.load_files` (the core's tolerant loader plus thumbnails) on
the window's file runner; the good frames go into the workspace, the bad files into one warning.
The list shows each frame as soon as it is decoded (greyed until the stack is open) and the view
shows the first one at once, then whichever the user selects in the list; the frames decoded for
the thumbnails are kept (when the stack fits the frame cache), so neither the view, the quick
draft, the full fusion nor the frame view decodes a frame a second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import qimage2ndarray
from PySide6.QtCore import QObject
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import QFileDialog, QMessageBox

from focusstudio.core.io.tolerant import with_frame_cache
from focusstudio.core.types import Stack
from focusstudio.gui.dialogs import problems_text
from focusstudio.gui.jobs import FrameDecoded, LoadOutcome, bit_depth_label, describe_stack, load_files, make_thumbnail
from focusstudio.gui.stack_panel import FrameEntry

if TYPE_CHECKING:
    from focusstudio.gui.main_window import MainWindow

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.tif *.tiff *.bmp *.webp *.dng *.cr2 *.nef *.arw);;All files (*)"


class StackController(QObject):
    """Opens files and folders (replacing or adding to the stack) and shows the frames in the list."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.workspace = window.workspace
        #: The running load adds its frames to the stack instead of replacing it.
        self._pending_add = False
        #: The running load listed decoded frames in place of the stack shown before (whose list
        #: comes back if the load brings no stack).
        self._streamed = False
        self.workspace.events.selection_changed.connect(self._on_selection_changed)

    # ------------------------------------------------------------------ asking for files
    def open_files_dialog(self) -> None:
        settings = self.window.app_settings
        paths, _ = QFileDialog.getOpenFileNames(self.window, "Open images", settings.last_directory, IMAGE_FILTER)
        if paths:
            self.open_paths(paths)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Open a folder of images",
                                                  self.window.app_settings.last_directory)
        if folder:
            self.open_paths([folder])

    def add_files_dialog(self) -> None:
        settings = self.window.app_settings
        paths, _ = QFileDialog.getOpenFileNames(self.window, "Add images", settings.last_directory, IMAGE_FILTER)
        if paths:
            self.open_paths(paths, add=True)

    def on_files_dropped_on_list(self, paths: list[str]) -> None:
        self.open_paths(paths, add=self.workspace.stack is not None)

    def open_paths(self, paths: Sequence[str | Path], add: bool = False) -> int | None:
        """Open ``paths`` (files and/or folders) in the background; ``add`` appends to the stack.

        Opening another stack discards the results: when one was never exported the user is asked
        first (None: the user kept the results, or is exporting them and the opening follows)."""
        paths = [str(p) for p in paths]
        stack = self.workspace.stack
        add = add and stack is not None
        if not add and not self.window.export.confirm_discard_results("opening another stack",
                                                                      partial(self.open_paths, paths, add)):
            return None
        reference = stack.shape if add and stack is not None else None
        # A file dropped again is named, not added twice.
        already = [str(info.path) for info in stack.frames if info.path is not None] if add and stack else []
        self._pending_add = add
        self._restore_list_if_streamed()  # a load replaced by this one
        self.window.app_settings.last_directory = str(Path(paths[0]).parent if Path(paths[0]).is_file() else paths[0])
        self.window.show_busy("Opening", 0.0)
        return self.window.file_runner.start(partial(load_files, paths, reference_shape=reference,
                                                     already_open=already))

    # ------------------------------------------------------------------ what came back
    def on_frame_decoded(self, event: FrameDecoded) -> None:
        """One more frame of the stack being opened is decoded: list it (not when adding frames:
        the stack's own list stays usable then)."""
        if self._pending_add or event.thumbnail is None:
            return
        self._streamed = True
        image = qimage2ndarray.array2qimage(event.thumbnail)
        self.window.stack_panel.show_decoded(event.position, event.name, QIcon(QPixmap.fromImage(image)))
        count = event.position + 1
        self.window.stack_panel.set_summary(f"Opening… {count} frame{'s' if count > 1 else ''} decoded so far")
        self.window.display.show_decoded(event.position, event.name, event.image)

    def on_frame_selected(self, index: int) -> None:
        """The user selected a frame in the list: while the stack opens, the view follows it (once
        open, a double-click or Return shows a frame, so ticking and reordering keep the view)."""
        if self._streamed and self.window.display.opening:
            self.window.display.refresh_layer_combos()  # the frames decoded so far
            self.window.display.show_frame(index)

    def _restore_list_if_streamed(self) -> None:
        """Show the current stack's list again where a load that brought nothing had replaced it."""
        if not self._streamed:
            return
        self._streamed = False
        self.window.display.end_opening(opened=False)
        stack = self.workspace.stack
        if stack is None:
            self.window.stack_panel.set_frames([], [], [])
            self.window.stack_panel.set_summary("No stack loaded. Drop images or a folder here.")
            self.window.display.refresh_layer_combos()
            self.window.viewer.refresh()
        else:
            active = self.workspace.active_indices
            order = active + [index for index in range(len(stack)) if index not in active]
            self.show_stack(order, [index for index in range(len(stack)) if index not in active])

    def on_load_ended(self) -> None:
        """A load was cancelled or failed: the list is the stack's again."""
        self._restore_list_if_streamed()

    def on_loaded(self, outcome: LoadOutcome) -> None:
        window, workspace = self.window, self.workspace
        window.hide_busy()
        # A frame the user selected in the list while the stack opened stays selected.
        picked = window.stack_panel.current_index() if self._streamed else None
        if outcome.stack is None:
            self._restore_list_if_streamed()
        self._streamed = False
        good = with_frame_cache(outcome.stack, decoded=outcome.decoded) if outcome.stack is not None else None
        if good is not None:
            looked_at = None
            if self._pending_add and workspace.stack is not None:
                order, excluded = window.stack_panel.order(), window.stack_panel.excluded()
                first_new = len(workspace.stack)
                workspace.add_frames(good, outcome.paths, outcome.thumbnails, outcome.problems)
                order += list(range(first_new, len(workspace.stack)))
            else:
                workspace.set_stack(good, outcome.paths, outcome.thumbnails, outcome.problems)
                order, excluded = list(range(len(good))), []
                # The frames shown while it opened are this stack's frames as loaded: kept.
                looked_at = window.display.end_opening(opened=True)
            window.app_settings.add_recent_stack(workspace.paths)
            self.show_stack(order, excluded, looked_at, picked)
        if outcome.problems:
            loaded = len(good) if good is not None else 0
            QMessageBox.warning(window, "Some files could not be used", problems_text(outcome.problems, loaded))
        window.stackLoaded.emit()

    def load_stack_object(self, stack: Stack, paths: Sequence[str] = ()) -> None:
        """Show an in-memory stack (the Python API and tests); thumbnails are made here."""
        thumbnails = [make_thumbnail(stack.load(i)) for i in range(len(stack))]
        self.workspace.set_stack(stack, paths, thumbnails)
        self.show_stack(list(range(len(stack))), [])
        self.window.stackLoaded.emit()

    def show_stack(self, order: list[int], excluded: list[int], looked_at: int | None = None,
                   picked: int | None = None) -> None:
        """Fill the stack list (frames in ``order``, ``excluded`` unticked) and show the first frame
        (``looked_at``: the frame shown while the stack opened, shown still; ``picked``: the frame
        the user selected in the list meanwhile, selected still)."""
        window, stack = self.window, self.workspace.stack
        assert stack is not None
        entries = []
        for info in stack.frames:
            detail = f"{info.width}×{info.height} · {bit_depth_label(info.dtype)}"
            where = str(info.path) if info.path is not None else "in memory"
            entries.append(FrameEntry(info.name, detail, f"{info.name}\n{where}\n{detail}"))
        window.stack_panel.set_frames(entries, order, excluded)
        for index, thumbnail in enumerate(self.workspace.thumbnails):
            image = qimage2ndarray.array2qimage(thumbnail)  # QImage made here, on the main thread
            window.stack_panel.set_thumbnail(index, QIcon(QPixmap.fromImage(image)))
        summary = describe_stack(stack)
        if stack.notes:
            summary += "<br><small>" + "<br>".join(stack.notes) + "</small>"
        window.stack_panel.set_summary(summary)
        window.stack_panel.summary.setToolTip("\n".join(stack.notes))
        if picked is not None:
            window.stack_panel.select_frame(picked)
        window.display.show_new_stack(looked_at)

    def remove_frames(self, indices: list[int]) -> None:
        """Take frames out of the stack (the list's Delete key and context menu); order and ticks stay."""
        window, workspace = self.window, self.workspace
        if workspace.stack is None or not indices:
            return
        names = [workspace.stack.frames[i].name for i in indices if i < len(workspace.stack)]
        order, excluded = window.stack_panel.order(), set(window.stack_panel.excluded())
        keep = workspace.remove_frames(indices)
        new_index = {old: new for new, old in enumerate(keep)}
        if workspace.stack is None:
            window.stack_panel.set_frames([], [], [])
            window.stack_panel.set_summary("No stack loaded. Drop images or a folder here.")
            window.display.show_new_stack()
        else:
            self.show_stack([new_index[i] for i in order if i in new_index],
                            [new_index[i] for i in excluded if i in new_index])
            if window.state.base.startswith("frame:"):  # the frame looked at may be gone
                window.display.show_frame((workspace.active_indices or [0])[0])
        window.statusBar().showMessage(f"Removed {', '.join(names)} from the stack", 6000)

    def _on_selection_changed(self, _indices: list[int]) -> None:
        for slot in self.workspace.stale_slots():
            self.window.statusBar().showMessage(
                f"The frame selection changed: result {slot} is from the previous selection (press Fuse)", 6000)
