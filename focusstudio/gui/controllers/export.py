"""Export from the window: the save dialog, the background write of image, maps and sidecar, and the
question asked before results never exported are discarded.

The write is :func:`focusstudio.gui.jobs.export_job` (the core's writers, output policy and sidecar)
on the window's file runner; the workspace remembers which result of each slot was exported.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QStandardPaths, QTimer
from PySide6.QtWidgets import QFileDialog, QMessageBox

from focusstudio.gui.dialogs import unexported_question
from focusstudio.gui.jobs import ExportOutcome, ExportRequest, FusionOutcome, export_job

if TYPE_CHECKING:
    from focusstudio.gui.main_window import MainWindow

EXPORT_FILTERS = {"PNG image (*.png)": ".png", "TIFF image (*.tif *.tiff)": ".tif", "JPEG image (*.jpg *.jpeg)": ".jpg"}
#: Offered for 8-bit sources: the fusion computes finer levels than 8 bits hold (blends, retouch gains).
SIXTEEN_BIT_FILTERS = {"PNG image, 16 bits per channel (*.png)": ".png",
                       "TIFF image, 16 bits per channel (*.tif *.tiff)": ".tif"}


class ExportController(QObject):
    """Writes results to files and keeps track of the ones never exported."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.workspace = window.workspace
        #: The result each running export job writes (its slot is marked exported when it is done).
        self._jobs: dict[int, FusionOutcome] = {}
        #: What to do once "Save" in the unexported-results question has exported everything.
        self._after_export: Callable[[], object] | None = None

    def _default_outcome(self) -> FusionOutcome | None:
        """The result shown, else the target slot's, else any."""
        results = self.workspace.results
        return (self.window.display.result_for_layer(self.window.state.base)
                or results.get(self.window.target_slot()) or next(iter(results.values()), None))

    def export_dialog(self, with_maps: bool = False, slot: str | None = None) -> int | None:
        outcome = self.workspace.results.get(slot) if slot else self._default_outcome()
        if outcome is None:
            self.window.statusBar().showMessage("Nothing to export yet: fuse first", 5000)
            return None
        stem = Path(outcome.result.source_names[0]).stem if outcome.result.source_names else "result"
        suggested = self.export_folder(outcome) / f"{stem}_{outcome.result.method}.png"
        if outcome.result.source_dtype != "uint8":
            suggested = suggested.with_suffix(".tif")
        filters = dict(EXPORT_FILTERS)
        if outcome.result.source_dtype == "uint8":
            filters.update(SIXTEEN_BIT_FILTERS)
        path, chosen_filter = QFileDialog.getSaveFileName(
            self.window, "Export result", str(suggested), ";;".join(filters),
            "TIFF image (*.tif *.tiff)" if suggested.suffix == ".tif" else "PNG image (*.png)",
        )
        if not path:
            return None
        target = Path(path)
        if not target.suffix:
            target = target.with_suffix(filters.get(chosen_filter, ".png"))
        bits = 16 if chosen_filter in SIXTEEN_BIT_FILTERS else None
        # The file dialog already asked before replacing an existing file; inputs stay protected.
        return self.export_to(target, with_maps=with_maps, overwrite=True, slot=slot, bits=bits)

    def export_folder(self, outcome: FusionOutcome) -> Path:
        """The folder the export dialog offers: the last export folder, else Pictures, else home;
        never a folder that holds the result's sources (a result saved among its frames would be
        offered as a frame next time, and a folder of sources is not where results belong)."""
        sources = {info.path.parent.resolve() for info in outcome.request.stack.frames if info.path is not None}
        pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
        candidates = [self.window.app_settings.last_export_directory, pictures, str(Path.home())]
        for candidate in candidates:
            if candidate and Path(candidate).is_dir() and Path(candidate).resolve() not in sources:
                return Path(candidate)
        return Path.home()

    def export_to(self, path: str | Path, with_maps: bool = False, overwrite: bool = False,
                  slot: str | None = None, bits: int | None = None) -> int | None:
        """Write ``slot``'s result (retouched when painted on) with the reference frame's metadata;
        ``bits``: 8 or 16 bits per channel (None: the frames' depth)."""
        outcome = self.workspace.results.get(slot) if slot else self._default_outcome()
        if outcome is None:
            return None
        sources = tuple(str(info.path) for info in outcome.request.stack.frames if info.path is not None)
        result, retouch = self.window.retouch.for_export(outcome)
        request = ExportRequest(
            path=Path(path),
            result=result,
            retouch=retouch,
            dtype={8: "uint8", 16: "uint16"}.get(bits) if bits else None,
            # The EXIF and colour profile of the frame the fusion registered to, as the CLI keeps them.
            metadata_frames=tuple(outcome.request.stack.frames),
            reference=outcome.alignment.reference if outcome.alignment is not None else None,
            source_paths=sources,
            device=outcome.request.device,
            weights=outcome.request.weights,
            align=outcome.request.align if outcome.alignment is not None else None,
            alignment=outcome.alignment,
            with_maps=with_maps,
            overwrite=overwrite,
        )
        self.window.show_busy("Saving", 0.0)
        job = self.window.file_runner.start(partial(export_job, request))
        self._jobs[job] = outcome
        return job

    def on_exported(self, outcome: ExportOutcome) -> None:
        self.window.hide_busy()
        message = f"Saved {outcome.image} and {outcome.sidecar.name}"
        if outcome.maps:
            message += f" and {len(outcome.maps)} maps"
        if outcome.notes:
            message += " — " + "; ".join(outcome.notes)
        self.window.statusBar().showMessage(message, 10000)
        self.window.app_settings.last_export_directory = str(outcome.image.parent)
        self.window.exported.emit(outcome)

    def is_exporting(self) -> bool:
        """Whether the file runner is writing an export now (quitting waits for it)."""
        runner = self.window.file_runner
        return runner.busy and runner.current_job in self._jobs

    # ------------------------------------------------------------------ unexported results
    def confirm_discard_results(self, action: str, repeat: Callable[[], object]) -> bool:
        """True when ``action`` may discard the results: all exported, or the user chose Discard.

        Save exports each unexported result (a file dialog each, one after the other) and then
        calls ``repeat`` (the action again); Cancel, or closing a file dialog, does nothing."""
        unexported = self.workspace.unexported_slots()
        if not unexported or not self.window.confirm_discard:
            return True
        results = self.workspace.results
        title, text = unexported_question([(slot, results[slot].result.method) for slot in unexported], action)
        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(self.window, title, text, buttons.Save | buttons.Discard | buttons.Cancel,
                                      buttons.Save)
        if answer == buttons.Discard:
            return True
        if answer == buttons.Save:
            self._after_export = repeat
            self._export_next_unexported()
        return False

    def forget_pending_action(self) -> None:
        """Quitting: the action waiting for the exports will not run."""
        self._after_export = None

    def _export_next_unexported(self) -> None:
        unexported = self.workspace.unexported_slots()
        if not unexported:
            repeat, self._after_export = self._after_export, None
            if repeat is not None:
                repeat()
            return
        if self.export_dialog(slot=unexported[0]) is None:
            self._after_export = None  # the user closed the file dialog: stay

    def note_done(self, job: int, outcome: object) -> None:
        exported = self._jobs.pop(job, None)
        if exported is None or not isinstance(outcome, ExportOutcome):
            return
        self.workspace.mark_exported(exported.request.slot, exported)
        if self._after_export is not None:
            QTimer.singleShot(0, self._export_next_unexported)

    def note_failed(self, job: int) -> None:
        if self._jobs.pop(job, None) is not None:
            self._after_export = None  # the failure was shown; the action waits for the user
