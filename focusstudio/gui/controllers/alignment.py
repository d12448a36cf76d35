"""Saved registrations in the window: File → Load alignment… (applied on the next Fuse instead of
registering the frames), File → Save alignment… (the last fusion's registration, through the output
policy), and the Alignment tab's per-frame table of the last registration.

The loaded registration is checked against the frames when it is loaded and again at each Fuse (the
frame selection may have changed since); a misfit is a dialog of one line naming the file, as
``fuse --alignment FILE`` says it on the command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox, QTableWidgetItem

from focusstudio.core.align import ALIGN_PARAMS, Alignment
from focusstudio.core.align.storage import alignment_misfit, alignment_text, load_alignment_for
from focusstudio.core.errors import FocusStudioError
from focusstudio.core.types import Stack

if TYPE_CHECKING:
    from focusstudio.gui.jobs import FusionOutcome
    from focusstudio.gui.main_window import MainWindow
    from focusstudio.gui.side_panels import AlignmentPanel

JSON_FILTER = "Registration (*.json)"


class AlignmentController(QObject):
    """The loaded registration, the last fusion's registration, and their menu items."""

    def __init__(self, window: MainWindow, panel: AlignmentPanel) -> None:
        super().__init__(window)
        self.window = window
        self.panel = panel
        #: The registration loaded from a file (applied on each Fuse until cleared), and that file.
        self.saved: Alignment | None = None
        self.saved_path: Path | None = None
        #: Every registration ever loaded: a cached registration that is one of them is re-used
        #: only while it is the loaded one (after Clear, the frames are registered again).
        self._loaded: list[Alignment] = []
        #: The registration of the last fusion (None: it did not align), for Save alignment….
        self.last: Alignment | None = None
        self.load_action = window._action("&Load Alignment…", self.load_dialog,
                                          tip="Apply a saved registration to this stack on the next Fuse")
        self.save_action = window._action("&Save Alignment…", self.save_dialog,
                                          tip="Save the last fusion's registration, for other stacks of the same rig")
        self.save_action.setEnabled(False)
        panel.clear_loaded.clicked.connect(self.clear)

    def add_to_menu(self, menu: QMenu) -> None:
        menu.addAction(self.load_action)
        menu.addAction(self.save_action)

    # ------------------------------------------------------------------ loading
    def load_dialog(self) -> bool:
        path, _ = QFileDialog.getOpenFileName(self.window, "Load alignment", "", f"{JSON_FILTER};;All files (*)")
        return self.load(Path(path)) if path else False

    def load(self, path: str | Path) -> bool:
        """Apply the registration saved in ``path`` from the next Fuse on; False (after a one-line
        dialog) when it cannot be read or does not fit the current frames."""
        stack = self.window.workspace.active_stack()
        if stack is None:
            self.window.statusBar().showMessage("Open a stack first: a registration is checked against its frames",
                                                5000)
            return False
        try:
            alignment = load_alignment_for(path, stack)
        except FocusStudioError as error:
            QMessageBox.warning(self.window, "Alignment not loaded", str(error))
            return False
        self.saved, self.saved_path = alignment, Path(path)
        self._loaded.append(alignment)
        self.panel.loaded.setText(f"Using registration from {self.saved_path.name}")
        self.panel.loaded.setToolTip(str(self.saved_path))
        self.panel.loaded_row.setVisible(True)
        self.window.statusBar().showMessage(f"The next fusion applies the registration from {path}", 5000)
        return True

    def clear(self) -> None:
        """Register the frames again on the next Fuse (the Alignment tab's settings)."""
        self.saved, self.saved_path = None, None
        self.panel.loaded_row.setVisible(False)

    def request(self, stack: Stack, settings: dict[str, Any] | None) -> tuple[dict[str, Any] | None, bool]:
        """(alignment settings, ok) of a Fuse of ``stack``: a loaded registration is applied whatever
        "Align frames" says (with the tab's crop and interpolation); not ok (after a one-line
        dialog) when it no longer fits the frames."""
        if self.saved is None:
            return settings, True
        problem = alignment_misfit(self.saved, len(stack), stack.shape)
        if problem is not None:
            QMessageBox.warning(self.window, "Alignment not applied", f"{self.saved_path}: {problem}")
            return None, False
        return settings if settings is not None else ALIGN_PARAMS.resolve(self.window.align_form.values()), True

    def reusable(self, alignment: Alignment) -> bool:
        """Whether a cached registration may serve the next Fuse: the loaded one only while loaded,
        an estimated one only while none is loaded."""
        if self.saved is not None:
            return alignment is self.saved
        return not any(alignment is loaded for loaded in self._loaded)

    # ------------------------------------------------------------------ saving
    def save_dialog(self) -> Path | None:
        if self.last is None:
            return None
        path, _ = QFileDialog.getSaveFileName(self.window, "Save alignment", "alignment.json", JSON_FILTER)
        if not path:
            return None
        # The file dialog already asked before replacing an existing file; inputs stay protected.
        return self.save_to(Path(path), overwrite=True)

    def save_to(self, path: Path, overwrite: bool = False) -> Path | None:
        """Write the last fusion's registration as JSON through the output policy (never over an
        input frame; an existing file only with ``overwrite``)."""
        from focusstudio.core.io.output_policy import publish_bytes

        if self.last is None:
            return None
        stack = self.window.workspace.active_stack()
        inputs = [info.path for info in stack.frames] if stack is not None else []
        try:
            written = publish_bytes(path, alignment_text(self.last).encode("utf-8"), inputs=inputs,
                                    force=overwrite, role="the saved registration")
        except FocusStudioError as error:
            QMessageBox.warning(self.window, "Alignment not saved", str(error))
            return None
        self.window.statusBar().showMessage(f"Registration saved to {written}", 5000)
        return written

    # ------------------------------------------------------------------ the last registration
    def show(self, outcome: FusionOutcome) -> None:
        """The last full fusion's registration: one table row per frame, and Save alignment…."""
        alignment = outcome.alignment
        self.last = alignment
        self.save_action.setEnabled(alignment is not None)
        table = self.panel.frames
        table.setVisible(alignment is not None)
        table.setRowCount(0)
        if alignment is None:
            return
        height, width = alignment.shape
        table.setRowCount(len(alignment.frames))
        for row, frame in enumerate(alignment.frames):
            p = frame.parameters(width, height)
            if frame.correlation is not None:
                check = f"r = {frame.correlation:.3f}"
            elif frame.inliers is not None:
                check = f"{frame.inliers} inliers"
            else:
                check = "; ".join(frame.messages)
            cells = (str(frame.index + 1), frame.status, f"{p['shift_x']:+.2f}", f"{p['shift_y']:+.2f}",
                     f"{p['rotation_deg']:+.3f}", f"{p['scale']:.4f}", check)
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip("\n".join(frame.messages) or f"{frame.method}: {frame.status}")
                table.setItem(row, column, item)
        table.resizeColumnsToContents()
