"""The FocusStudio main window: builds the widgets and wires them to the workspace and its controllers.

The window computes nothing and keeps no session state itself: the stack, the results A/B, the
registration and the per-method values live in a Qt-free :class:`~focusstudio.core.workspace.Workspace`;
the controllers of :mod:`focusstudio.gui.controllers` own the work (opening stacks, the method and
its presets, fusion and live updates, the viewer's layers, metrics, export), each long step a
core-style generator on a :class:`~focusstudio.gui.workers.JobRunner` whose result comes back as a
frozen dataclass and only then touches widgets. The public methods here are the window's scripting
surface (tests, screenshots, benchmarks) and pass through to the controller that owns the work.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QThreadPool, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QToolBar,
    QWidget,
)

from focusstudio.core.align import ALIGN_BY_DEFAULT_FROM, ALIGN_PARAMS, AlignOptions
from focusstudio.core.methods.base import FusionMethod
from focusstudio.core.progress import ProgressEvent
from focusstudio.core.types import FusionMap, Stack
from focusstudio.core.workspace import Workspace
from focusstudio.gui import window_memory
from focusstudio.gui.controllers.alignment import AlignmentController
from focusstudio.gui.controllers.display import DisplayController
from focusstudio.gui.controllers.export import ExportController
from focusstudio.gui.controllers.fusion import FusionController
from focusstudio.gui.controllers.methods import MethodController
from focusstudio.gui.controllers.metrics import MetricsController
from focusstudio.gui.controllers.retouch import RetouchTool
from focusstudio.gui.controllers.stack import StackController
from focusstudio.gui.dialogs import PreferencesDialog, about_html
from focusstudio.gui.flicker import FlickerController
from focusstudio.gui.icon import resource_icon  # (the window sets it; others import it from here)
from focusstudio.gui.jobs import ExportOutcome, FrameDecoded, FusionOutcome, LoadOutcome
from focusstudio.gui.layers_panel import LayersPanel
from focusstudio.gui.metrics_panel import MetricsPanel
from focusstudio.gui.progress_text import ProgressClock
from focusstudio.gui.settings import AppSettings, PresetStore
from focusstudio.gui.side_panels import AlignmentPanel, MethodPanel, scrolled
from focusstudio.gui.stack_panel import StackPanel, dropped_paths
from focusstudio.gui.view_state import ViewState
from focusstudio.gui.viewer import Viewer
from focusstudio.gui.workers import JobRunner

if TYPE_CHECKING:
    from focusstudio.gui.wizard import TrainingWizard

log = logging.getLogger(__name__)

#: Quitting waits at most this long for cancelled background work to reach its next cancel check
#: (the core checks several times a second; the window must close within a second).
QUIT_WAIT_MS = 800
#: ...except for an export the user asked for: it finishes writing (a file cut short is never
#: left behind, but neither should the export silently not happen).
QUIT_EXPORT_WAIT_MS = 30_000


class MainWindow(QMainWindow):
    """The FocusStudio window."""

    #: A load job finished (the stack panel shows the good frames, problems were reported).
    stackLoaded = Signal()
    #: (slot) a fusion result was shown.
    resultReady = Signal(str)
    #: (slot) metrics of a result were shown.
    metricsReady = Signal(str)
    #: (ExportOutcome) files were written.
    exported = Signal(object)
    #: (message) a job failed; the message was shown to the user.
    jobFailed = Signal(str)
    #: (milliseconds) a live post-processing update reached the screen this long after the change.
    liveUpdated = Signal(float)

    def __init__(self, settings: AppSettings | None = None, presets: PresetStore | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("FocusStudioMainWindow")
        self.setWindowTitle("FocusStudio")
        self.setWindowIcon(resource_icon())
        self.setAcceptDrops(True)
        self.app_settings = settings or AppSettings()
        self.presets = presets or PresetStore()
        self.state = ViewState(self)
        self.workspace: Workspace[FusionOutcome] = Workspace()
        self._training_wizard: TrainingWizard | None = None
        #: Ask before an action discards results never exported (scripted runs turn it off).
        self.confirm_discard = True

        # The controllers first: the widgets built below connect to them.
        self.file_runner = JobRunner("files", self)
        self.fusion = FusionController(self)
        self.display = DisplayController(self)
        self.metrics = MetricsController(self)
        self.export = ExportController(self)
        self.stacks = StackController(self)
        self.methods = MethodController(self)

        d = self.display
        self.viewer = Viewer(self.state, d.layer_image, d.layer_title, d.shown_maps, placement=d.wipe_placement,
                             layer_extent=d.layer_extent)
        self.viewer.main.set_hint("Drop images or a folder here\nor use File → Open (Ctrl+O)")
        self.setCentralWidget(self.viewer)
        self.retouch = RetouchTool(self)  # paints over the viewer's main pane
        self._build_status_bar()
        self._build_docks()
        self._build_actions()
        self._build_toolbar()
        self._build_menus()
        self._connect_file_runner()
        self._follow_workspace()
        self.methods.populate()
        self._restore_layout()
        self.update_enabled()
        self.viewer.refresh()

    # ================================================================== construction
    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.stage_label = QLabel("Ready")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(260)
        self.progress.setMinimumWidth(160)
        self.progress.setTextVisible(True)
        self.progress.setFormat("%p %")
        self.progress_clock = ProgressClock()
        self.progress.setVisible(False)
        self.cursor_label = QLabel("")
        self.cursor_label.setObjectName("cursorReadout")
        self.timing_label = QLabel("")
        self.device_label = QLabel(f"Device: {self.app_settings.device}")
        self.device_label.setToolTip("The device the last fusion ran on (change it in Preferences)")
        bar.addWidget(self.stage_label)
        bar.addWidget(self.progress)
        bar.addWidget(self.cursor_label, 1)
        bar.addPermanentWidget(self.timing_label)
        bar.addPermanentWidget(self.device_label)

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)  # saveState() needs names to restore the layout
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_docks(self) -> None:
        self.stack_panel = StackPanel()
        self.stack_panel.selectionChanged.connect(self.workspace.set_active)
        self.stack_panel.frameActivated.connect(self.display.show_frame)
        self.stack_panel.frameSelected.connect(self.stacks.on_frame_selected)
        self.stack_panel.addRequested.connect(self.stacks.add_files_dialog)
        self.stack_panel.filesDropped.connect(self.stacks.on_files_dropped_on_list)
        self.stack_panel.removeRequested.connect(self.stacks.remove_frames)
        self.stack_dock = self._dock("Stack", "stackDock", self.stack_panel, Qt.DockWidgetArea.LeftDockWidgetArea)

        # Method, parameters, presets and the Fuse/Cancel buttons.
        method_panel = MethodPanel()
        self.method_combo, self.method_description = method_panel.method_combo, method_panel.description
        self.param_form, self.weights_chooser = method_panel.param_form, method_panel.weights_chooser
        self.preset_combo, self.slot_buttons = method_panel.preset_combo, method_panel.slot_buttons
        self.fuse_button, self.cancel_button = method_panel.fuse_button, method_panel.cancel_button
        self.method_combo.currentIndexChanged.connect(self.methods.on_method_chosen)
        self.param_form.valuesChanged.connect(self.fusion.on_params_changed)
        self.param_form.valuesChanged.connect(lambda _values: self.methods.update_unused())
        self.preset_combo.activated.connect(self.methods.on_preset_chosen)
        method_panel.save_preset_button.clicked.connect(self.methods.save_preset_dialog)
        method_panel.delete_preset_button.clicked.connect(self.methods.delete_preset)
        self.fuse_button.clicked.connect(lambda: self.fusion.fuse())
        self.cancel_button.clicked.connect(self.fusion.cancel)
        self.weights_chooser.choiceChanged.connect(self.methods.on_weights_chosen)
        self.weights_chooser.weightsEdited.connect(self.methods.refresh_weights)
        self.method_dock = self._dock("Method", "methodDock", method_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self._build_alignment_dock()

        self.layers_panel = LayersPanel(
            self.state, self.viewer.overlay_item, self.display.histogram_took_lut, self.display.map_description,
            self.display.frame_names,
        )
        # Scrolled: with the histogram shown its minimum height would push a 1366×768 window off screen.
        self.layers_dock = self._dock("Overlays", "layersDock", scrolled(self.layers_panel),
                                      Qt.DockWidgetArea.RightDockWidgetArea)
        self.metrics_panel = MetricsPanel()
        self.metrics_panel.computeRequested.connect(self.metrics.compute_now)
        self.metrics_dock = self._dock("Metrics", "metricsDock", self.metrics_panel,
                                       Qt.DockWidgetArea.BottomDockWidgetArea)
        self.viewer.cursorMoved.connect(self.display.on_cursor_moved)
        self.retouch_dock = self.retouch.build_dock()

    def _build_alignment_dock(self) -> None:
        panel = AlignmentPanel()
        self.align_mode, self.align_summary, self.align_form = panel.mode, panel.summary, panel.form
        self.align_dock = self._dock("Alignment", "alignDock", panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.alignments = AlignmentController(self, panel)  # load/save a registration, the frame table
        self.alignment_panel = panel
        self.flicker = FlickerController(self)  # two frames in turn, aligned and as loaded
        panel.flicker_button.clicked.connect(lambda _checked=False: self.flicker.open(self._selected_aligned_frame()))
        panel.frames.cellDoubleClicked.connect(lambda _row, _column: self.flicker.open(self._selected_aligned_frame()))
        # A tab beside the frame list: the list keeps its height, the settings are one click away
        # (the last registration is also summarised in the status bar after each fusion).
        self.tabifyDockWidget(self.stack_dock, self.align_dock)
        self.stack_dock.raise_()

    def _selected_aligned_frame(self) -> int | None:
        """The loaded-stack index of the alignment table's selected row (its first column is the
        frame's 1-based number in the fused selection), or None."""
        table = self.alignment_panel.frames
        item = table.item(table.currentRow(), 0) if table.currentRow() >= 0 else None
        active = self.workspace.active_indices
        if item is None or not item.text().isdigit() or not 0 < int(item.text()) <= len(active):
            return None
        return active[int(item.text()) - 1]

    def _action(self, text: str, slot: Any, shortcut: QKeySequence | str | None = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(f"{tip} ({action.shortcut().toString()})" if shortcut else tip)
        action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)  # shortcuts work even when the action's menu is hidden
        return action

    def _build_actions(self) -> None:
        K = QKeySequence.StandardKey
        self.open_action = self._action("&Open Images…", self.stacks.open_files_dialog, K.Open,
                                        "Open two or more images")
        self.open_folder_action = self._action("Open &Folder…", self.stacks.open_folder_dialog, "Ctrl+Shift+O",
                                               "Open every image of a folder")
        self.export_action = self._action("&Export Result…", lambda: self.export.export_dialog(False), "Ctrl+E",
                                          "Save the shown result with a sidecar JSON")
        self.export_maps_action = self._action("Export Result and &Maps…", lambda: self.export.export_dialog(True),
                                               "Ctrl+Shift+E", "Save the result, its maps and a sidecar JSON")
        self.quit_action = self._action("&Quit", self.close, K.Quit)
        self.fuse_action = self._action("&Fuse", self.fusion.fuse, "Ctrl+Return", "Fuse the included frames")
        self.fuse_action.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("F5")])
        self.cancel_action = self._action("&Cancel", self.fusion.cancel, "Escape", "Cancel the running fusion")
        self.fit_action = self._action("Zoom to &Fit", self.viewer.fit, "Ctrl+0", "Fit the image in the view")
        self.actual_action = self._action("&Actual Pixels", self.viewer.actual_size, "Ctrl+1",
                                          "One image pixel per screen pixel")
        self.zoom_in_action = self._action("Zoom &In", lambda: self.viewer.main.view.scaleBy((0.8, 0.8)), K.ZoomIn)
        self.zoom_out_action = self._action("Zoom &Out", lambda: self.viewer.main.view.scaleBy((1.25, 1.25)),
                                            K.ZoomOut)
        self.overlay_action = self._action("Toggle &Overlays", self.state.toggle_overlays, "O",
                                           "Show or hide the overlays")
        self.before_after_action = self._action("&Before/After", self.display.toggle_before_after, "B",
                                                "Switch between the result and a source frame")
        self.wipe_action = self._action("&Wipe", self.display.toggle_wipe, "W",
                                        "Wipe between the shown image and another")
        self.compare_action = self._action("Compare &A | B", self.display.compare_results, "Ctrl+B",
                                           "Wipe between result A and result B")
        self.preferences_action = self._action("&Preferences…", self.preferences_dialog, K.Preferences)
        self.train_action = self._action("&Train a Model…", self.open_training_wizard, None,
                                         "Train a deep method on your own images")
        self.batch_action = self._action("&Batch…", self.open_batch_dialog, None,
                                         "Fuse many stacks (a folder of stack folders, a manifest or a name pattern)")
        self.about_action = self._action("&About FocusStudio", self.about_dialog)

    def _build_toolbar(self) -> None:
        toolbar = QToolBar("View")
        toolbar.setObjectName("viewToolbar")
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, toolbar)
        toolbar.addAction(self.open_action)
        toolbar.addAction(self.fuse_action)
        toolbar.addAction(self.cancel_action)
        toolbar.addAction(self.export_action)
        toolbar.addSeparator()
        toolbar.addWidget(QLabel(" Show "))
        self.show_combo = QComboBox()
        self.show_combo.setObjectName("showCombo")
        self.show_combo.setMinimumContentsLength(16)
        self.show_combo.activated.connect(lambda _i: self.state.set_base(self.show_combo.currentData()))
        toolbar.addWidget(self.show_combo)
        self.wipe_check = QCheckBox("Wipe with")
        self.wipe_check.setToolTip("Drag the yellow line to compare (key W)")
        self.wipe_check.toggled.connect(lambda on: self.state.set_wipe(on, self.wipe_combo.currentData()))
        toolbar.addWidget(self.wipe_check)
        self.wipe_combo = QComboBox()
        self.wipe_combo.setMinimumContentsLength(16)
        self.wipe_combo.activated.connect(
            lambda _i: self.state.set_wipe(self.wipe_check.isChecked(), self.wipe_combo.currentData()))
        toolbar.addWidget(self.wipe_combo)
        self.side_check = QCheckBox("Side by side")
        self.side_check.setToolTip("A second, synchronized view")
        self.side_check.toggled.connect(lambda on: self.state.set_side_by_side(on, self.side_combo.currentData()))
        toolbar.addWidget(self.side_check)
        self.side_combo = QComboBox()
        self.side_combo.setMinimumContentsLength(16)
        self.side_combo.activated.connect(
            lambda _i: self.state.set_side_by_side(self.side_check.isChecked(), self.side_combo.currentData()))
        toolbar.addWidget(self.side_combo)
        toolbar.addSeparator()
        toolbar.addAction(self.fit_action)
        toolbar.addAction(self.actual_action)
        self.state.changed.connect(self.display.sync_view_controls)

    def _build_menus(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addAction(self.open_action)
        file_menu.addAction(self.open_folder_action)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        file_menu.addAction(self.export_action)
        file_menu.addAction(self.export_maps_action)
        file_menu.addSeparator()
        self.alignments.add_to_menu(file_menu)
        file_menu.addSeparator()
        file_menu.addAction(self.preferences_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        self.edit_menu = self.retouch.build_menu(menu)
        fusion_menu = menu.addMenu("F&usion")
        fusion_menu.addAction(self.fuse_action)
        fusion_menu.addAction(self.cancel_action)
        fusion_menu.addSeparator()
        fusion_menu.addAction(self.batch_action)
        view_menu = menu.addMenu("&View")
        for action in (self.fit_action, self.actual_action, self.zoom_in_action, self.zoom_out_action):
            view_menu.addAction(action)
        view_menu.addSeparator()
        for action in (self.overlay_action, self.before_after_action, self.wipe_action, self.compare_action):
            view_menu.addAction(action)
        view_menu.addSeparator()
        for dock in (self.stack_dock, self.method_dock, self.retouch_dock, self.layers_dock, self.metrics_dock):
            view_menu.addAction(dock.toggleViewAction())
        tools_menu = menu.addMenu("&Tools")
        tools_menu.addAction(self.train_action)
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self.about_action)

    def _connect_file_runner(self) -> None:
        """One runner for file work (loading and export): a load waits for an export, and the other way."""
        runner = self.file_runner
        runner.progressed.connect(self._on_file_progress)
        runner.succeeded.connect(self.export.note_done)
        runner.succeeded.connect(lambda _job, outcome: self._on_file_job_done(outcome))
        runner.failed.connect(lambda job, _message: self.export.note_failed(job))
        runner.cancelled.connect(self.export.note_failed)
        runner.failed.connect(lambda _job, message: self.on_job_failed("Could not complete", message))
        runner.busyChanged.connect(lambda _busy: self.update_enabled())
        runner.failed.connect(lambda _job, _message: self.stacks.on_load_ended())
        runner.cancelled.connect(lambda _job: self.stacks.on_load_ended())

    def _follow_workspace(self) -> None:
        """What Fuse and Export offer follows the workspace (method, frames, results)."""
        events = self.workspace.events
        for event in (events.method_changed, events.selection_changed, events.result_changed,
                      events.results_cleared):
            event.connect(lambda *_args: self.update_enabled())

    def _restore_layout(self) -> None:
        """Geometry fitted to the screen (or as remembered), the docks, the alignment settings."""
        window_memory.restore_layout(self)
        window_memory.restore_choices(self)

    # ================================================================== alignment settings
    def alignment_settings(self, frame_count: int) -> dict[str, Any] | None:
        """The alignment settings a fusion of ``frame_count`` frames uses now; None = no alignment."""
        mode = self.align_mode.currentData()
        if mode == "off" or (mode == "auto" and frame_count < ALIGN_BY_DEFAULT_FROM):
            return None
        settings = ALIGN_PARAMS.resolve(self.align_form.values())
        AlignOptions.from_params(settings).reference_index(frame_count)  # a missing frame: said now
        return settings

    def set_alignment_mode(self, mode: str) -> None:
        """``auto``, ``on`` or ``off`` (the combo box's choices)."""
        index = self.align_mode.findData(mode)
        if index < 0:
            raise ValueError(f"unknown alignment mode {mode!r}")
        self.align_mode.setCurrentIndex(index)

    def target_slot(self) -> str:
        checked = self.slot_buttons.checkedButton()
        return "B" if checked is not None and checked.objectName() == "slotB" else "A"

    def set_target_slot(self, slot: str) -> None:
        for button in self.slot_buttons.buttons():
            button.setChecked(button.objectName() == f"slot{slot}")

    # ================================================================== the session, as the workspace holds it
    @property
    def loaded_stack(self) -> Stack | None:
        return self.workspace.stack

    @property
    def active_indices(self) -> list[int]:
        return self.workspace.active_indices

    @property
    def results(self) -> dict[str, FusionOutcome]:
        return self.workspace.results

    @property
    def method(self) -> FusionMethod | None:
        return self.workspace.method

    def active_stack(self) -> Stack | None:
        return self.workspace.active_stack()

    def unexported_slots(self) -> list[str]:
        """The slots whose current result was never exported (a live update makes a new result)."""
        return self.workspace.unexported_slots()

    # ================================================================== scripting surface (to the controllers)
    @property
    def fusion_runner(self) -> JobRunner:
        return self.fusion.runner

    @property
    def last_live_latency_ms(self) -> float | None:
        return self.fusion.last_live_latency_ms

    def open_paths(self, paths: Sequence[str | Path], add: bool = False) -> int | None:
        return self.stacks.open_paths(paths, add)

    def load_stack_object(self, stack: Stack, paths: Sequence[str] = ()) -> None:
        self.stacks.load_stack_object(stack, paths)

    def method_names(self) -> list[str]:
        return self.methods.method_names()

    def select_method(self, name: str) -> None:
        self.methods.select_method(name)

    def save_preset(self, name: str) -> None:
        self.methods.save_preset(name)

    def refresh_weights(self) -> None:
        self.methods.refresh_weights()

    def fuse(self, slot: str | None = None) -> int | None:
        return self.fusion.fuse(slot)

    def cancel_fusion(self) -> None:
        self.fusion.cancel()

    def compare_results(self) -> None:
        self.display.compare_results()

    def toggle_before_after(self) -> None:
        self.display.toggle_before_after()

    def shown_maps(self) -> dict[str, FusionMap]:
        """The maps of the result shown (or about to be): what the overlays list offers."""
        return self.display.shown_maps()

    def cursor_readout(self, row: int, col: int) -> str:
        return self.display.cursor_readout(row, col)

    def export_dialog(self, with_maps: bool = False, slot: str | None = None) -> int | None:
        return self.export.export_dialog(with_maps, slot)

    def export_to(self, path: str | Path, with_maps: bool = False, overwrite: bool = False,
                  slot: str | None = None, bits: int | None = None) -> int | None:
        return self.export.export_to(path, with_maps, overwrite, slot, bits)

    # ================================================================== files dropped and file jobs
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if dropped_paths(event):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = dropped_paths(event)
        if paths:
            event.acceptProposedAction()
            self.stacks.open_paths(paths)

    def _on_file_progress(self, event: ProgressEvent) -> None:
        if isinstance(event, FrameDecoded):
            self.stacks.on_frame_decoded(event)
        self.show_busy(event.stage.capitalize(), event.fraction, event.message)

    def _on_file_job_done(self, outcome: object) -> None:
        if isinstance(outcome, LoadOutcome):
            self.stacks.on_loaded(outcome)
        elif isinstance(outcome, ExportOutcome):
            self.export.on_exported(outcome)

    # ================================================================== status and enabled state
    def show_busy(self, stage: str, fraction: float, message: str = "") -> None:
        self.stage_label.setText(self.progress_clock.text(stage, fraction, message))
        self.progress.setVisible(True)
        self.progress.setValue(round(fraction * 1000))

    def hide_busy(self) -> None:
        if not self.fusion.runner.busy and not self.file_runner.busy:
            self.progress.setVisible(False)
            self.progress_clock.reset()
            self.stage_label.setText("Ready")

    def on_job_failed(self, title: str, message: str) -> None:
        self.hide_busy()
        self.statusBar().showMessage(message, 8000)
        self.jobFailed.emit(message)
        QMessageBox.critical(self, title, message)

    def update_enabled(self) -> None:
        can_fuse = self.workspace.can_fuse()
        busy = self.fusion.runner.busy
        # A second Fuse during a run would silently throw the run away: Cancel first (a live
        # post-processing update is not a run the user started, Fuse replaces it).
        running = busy and not self.fusion.live_running
        self.fuse_button.setEnabled(can_fuse and not running)
        self.fuse_action.setEnabled(can_fuse and not running)
        self.fuse_button.setToolTip("A fusion is running: Cancel it first" if running else "")
        self.cancel_button.setEnabled(busy)
        self.cancel_action.setEnabled(busy)
        has_result = bool(self.workspace.results)
        self.export_action.setEnabled(has_result)
        self.export_maps_action.setEnabled(has_result)

    # ================================================================== menus and dialogs
    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        entries = self.app_settings.recent_stacks()
        for entry in entries:
            first = Path(entry[0])
            label = first.name + (f" (+{len(entry) - 1} files)" if len(entry) > 1 else "")
            action = self.recent_menu.addAction(label)
            action.setToolTip("\n".join(entry))
            action.triggered.connect(lambda _checked=False, paths=entry: self.stacks.open_paths(paths))
        if not entries:
            self.recent_menu.addAction("(none)").setEnabled(False)
        else:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear", self.app_settings.clear_recent_stacks)

    def preferences_dialog(self) -> None:
        dialog = PreferencesDialog(self.app_settings.device, self.app_settings.live_update, self)
        if dialog.exec():
            self.app_settings.device = dialog.chosen_device()
            self.app_settings.live_update = dialog.live.isChecked()
            if not self.workspace.results:
                self.device_label.setText(f"Device: {self.app_settings.device}")

    def about_dialog(self) -> None:
        from focusstudio.core.methods.registry import get_method, list_methods

        methods = []
        for name in list_methods():
            method = get_method(name)
            methods.append((name, method.title, method.description))
        QMessageBox.about(self, "About FocusStudio", about_html(methods))

    def open_batch_dialog(self) -> Any:
        """Fusion → Batch…: many stacks with the core batch runner, non-modal."""
        from focusstudio.gui.batch_dialog import open_batch_dialog

        self._batch_dialog = open_batch_dialog(self, self.app_settings.device, getattr(self, "_batch_dialog", None))
        return self._batch_dialog

    def open_training_wizard(self) -> TrainingWizard:
        """Tools → Train a Model…: the wizard, non-modal (the window stays usable while it trains)."""
        from focusstudio.gui.wizard import open_training_wizard

        self._training_wizard = open_training_wizard(self, self.app_settings.device,
                                                     self.methods.on_weights_installed, self._training_wizard)
        return self._training_wizard

    # ================================================================== closing
    def shutdown(self, timeout_ms: int = QUIT_WAIT_MS) -> bool:
        """Cancel every background job and wait at most ``timeout_ms`` for them to stop (called when
        the window closes; the core checks for a cancel several times a second). False when work
        was still running then: it stops at its next check, the window does not wait for it."""
        if self._training_wizard is not None:
            self._training_wizard.shutdown()  # training writes its checkpoint first: it may wait
        for timer in (self.fusion.live_timer, self.metrics.timer, self.retouch.settle_timer, self.flicker.timer):
            timer.stop()
        self.export.forget_pending_action()
        exporting = self.export.is_exporting()
        for runner in (self.fusion.runner, self.fusion.preview_runner, self.display.frame_runner, self.metrics.runner,
                       *self.retouch.runners, self.flicker.runner):
            runner.stop_all()
        if exporting:
            timeout_ms = max(timeout_ms, QUIT_EXPORT_WAIT_MS)
        else:
            self.file_runner.stop_all()
        done = bool(QThreadPool.globalInstance().waitForDone(timeout_ms))
        if not done:
            log.warning("background work did not stop within %d ms of the window closing", timeout_ms)
        return done

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.export.confirm_discard_results("quitting", self.close):
            event.ignore()
            return
        window_memory.save_choices(self)
        self.shutdown()
        super().closeEvent(event)
