"""The FocusStudio main window: open a stack, pick a method, fuse in the background, inspect, export.

The window wires widgets to the core and to background jobs; it computes nothing itself. Every
long step (opening files, decoding frames, fusing, metrics, writing) runs as a core-style
generator in a :class:`~focusstudio.gui.workers.JobRunner`, one job per runner, a new job
cancelling the old; results come back as frozen dataclasses and only then touch widgets.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import qimage2ndarray
from PySide6.QtCore import QByteArray, QStandardPaths, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QIcon,
    QKeySequence,
    QPixmap,
    QStandardItemModel,
)
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from focusstudio.core.align import ALIGN_BY_DEFAULT_FROM, ALIGN_PARAMS, Alignment, AlignOptions
from focusstudio.core.errors import FocusStudioError, ParameterError
from focusstudio.core.methods.base import FusionMethod
from focusstudio.core.progress import ProgressEvent
from focusstudio.core.types import FusionMap, Stack
from focusstudio.gui.dialogs import PreferencesDialog, about_html, problems_text, unexported_question
from focusstudio.gui.jobs import (
    ExportOutcome,
    ExportRequest,
    FrameDisplay,
    FusionOutcome,
    FusionRequest,
    LoadOutcome,
    MetricsOutcome,
    bit_depth_label,
    describe_stack,
    export_job,
    frame_display_job,
    fusion_job,
    load_files,
    merge_stacks,
    metrics_job,
    with_frame_cache,
)
from focusstudio.gui.layers_panel import LayersPanel
from focusstudio.gui.metrics_panel import METRIC_KEYS, MetricsPanel
from focusstudio.gui.param_form import ParamForm
from focusstudio.gui.settings import AppSettings, PresetStore
from focusstudio.gui.stack_panel import FrameEntry, StackPanel, dropped_paths
from focusstudio.gui.view_state import RESULT_A, RESULT_B, ViewState, frame_key, parse_layer
from focusstudio.gui.viewer import Viewer
from focusstudio.gui.weights_panel import WeightsChooser
from focusstudio.gui.workers import JobRunner

if TYPE_CHECKING:
    from focusstudio.gui.training_wizard import TrainingWizard

log = logging.getLogger(__name__)

#: Post-processing changes are applied this long after the last slider movement.
LIVE_DEBOUNCE_MS = 150
#: Quitting waits at most this long for cancelled background work to reach its next cancel check
#: (the core checks several times a second; the window must close within a second).
QUIT_WAIT_MS = 800
#: ...except for an export the user asked for: it finishes writing (a file cut short is never
#: left behind, but neither should the export silently not happen).
QUIT_EXPORT_WAIT_MS = 30_000
#: Metrics wait until the result has been still this long (they would slow live updates).
METRICS_DELAY_MS = 600
#: Metrics are computed automatically only up to this many megapixels summed over the frames.
AUTO_METRICS_MAX_MEGAPIXELS = 40.0
#: Decoded source frames kept for display.
FRAME_CACHE_SIZE = 6
#: The "Align frames" choices: (key, label).
ALIGN_MODES = (("auto", f"Auto ({ALIGN_BY_DEFAULT_FROM} or more frames)"), ("on", "Always"), ("off", "Never"))
SLOTS = ("A", "B")
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.tif *.tiff *.bmp *.webp *.dng *.cr2 *.nef *.arw);;All files (*)"
EXPORT_FILTERS = {"PNG image (*.png)": ".png", "TIFF image (*.tif *.tiff)": ".tif", "JPEG image (*.jpg *.jpeg)": ".jpg"}


def resource_icon() -> QIcon:
    """The application icon (resources/icons/focusstudio.png: checkout, install or frozen app)."""
    from focusstudio.core.errors import FocusStudioError
    from focusstudio.resources import resources_dir

    try:
        candidate = resources_dir() / "icons" / "focusstudio.png"
    except FocusStudioError:
        return QIcon()
    return QIcon(str(candidate)) if candidate.is_file() else QIcon()


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

        self.loaded_stack: Stack | None = None
        self.loaded_paths: list[str] = []
        self.thumbnails: list[np.ndarray] = []
        self.active_indices: list[int] = []
        self._stack_generation = 0
        self.results: dict[str, FusionOutcome] = {}
        self._frames: OrderedDict[int, FrameDisplay] = OrderedDict()
        self._frame_queue: list[int] = []
        #: Frames are shown as the last aligned fusion registered them: (aligned stack, loaded
        #: index → position in it); None = as loaded. ``_frame_view`` counts the changes.
        self._aligned_view: tuple[Stack, dict[int, int]] | None = None
        self._frame_view = 0
        #: The last registration: (frame selection, settings, (aligned stack, alignment)).
        self._alignment_cache: tuple[tuple[Any, ...], dict[str, Any], tuple[Stack, Alignment]] | None = None
        self._metrics_queue: list[str] = []
        self._method_values: dict[str, dict[str, Any]] = {}
        self._method: FusionMethod | None = None
        self._pending_add = False
        self._before_layer = frame_key(0)
        self._live_requested_at = 0.0
        self._live_running = False  # the fusion runner's current job is a live update
        self._showing_result = False
        self._after_layer = RESULT_A
        self.last_live_latency_ms: float | None = None
        self._training_wizard: TrainingWizard | None = None
        #: Ask before an action discards results never exported (scripted runs turn it off).
        self.confirm_discard = True
        #: The result of each slot as it was last exported (identity: a live update makes a new one).
        self._exported_results: dict[str, FusionOutcome] = {}
        self._export_jobs: dict[int, FusionOutcome] = {}
        #: What to do once "Save" in the unexported-results question has exported everything.
        self._after_export: Callable[[], object] | None = None

        self.fusion_runner = JobRunner("fusion", self)
        self.file_runner = JobRunner("files", self)
        self.frame_runner = JobRunner("frames", self)
        self.metrics_runner = JobRunner("metrics", self)
        self._live_timer = QTimer(self)
        self._live_timer.setSingleShot(True)
        self._live_timer.setInterval(LIVE_DEBOUNCE_MS)
        self._live_timer.timeout.connect(self._run_live_update)
        self._metrics_timer = QTimer(self)
        self._metrics_timer.setSingleShot(True)
        self._metrics_timer.setInterval(METRICS_DELAY_MS)
        self._metrics_timer.timeout.connect(self._start_next_metrics)

        self.viewer = Viewer(self.state, self._layer_image, self._layer_title, self._shown_maps)
        self.viewer.main.set_hint("Drop images or a folder here\nor use File → Open (Ctrl+O)")
        self.setCentralWidget(self.viewer)
        self._build_status_bar()
        self._build_docks()
        self._build_actions()
        self._build_toolbar()
        self._build_menus()
        self._connect_runners()
        self._populate_methods()
        self._restore_layout()
        self._update_enabled()
        self.viewer.refresh()

    # ================================================================== construction
    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.stage_label = QLabel("Ready")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(False)
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
        self.stack_panel.selectionChanged.connect(self._on_selection_changed)
        self.stack_panel.frameActivated.connect(self._show_frame)
        self.stack_panel.addRequested.connect(self.add_files_dialog)
        self.stack_panel.filesDropped.connect(self._on_files_dropped_on_list)
        self.stack_dock = self._dock("Stack", "stackDock", self.stack_panel, Qt.DockWidgetArea.LeftDockWidgetArea)

        # Method, parameters, presets and the Fuse/Cancel buttons.
        method_panel = QWidget()
        layout = QVBoxLayout(method_panel)
        self.method_combo = QComboBox()
        self.method_combo.setObjectName("methodCombo")
        self.method_combo.currentIndexChanged.connect(self._on_method_chosen)
        self.method_description = QLabel()
        self.method_description.setWordWrap(True)
        self.param_form = ParamForm()
        self.param_form.valuesChanged.connect(self._on_params_changed)
        form_scroll = QScrollArea()
        form_scroll.setWidgetResizable(True)
        form_scroll.setWidget(self.param_form)
        form_scroll.setFrameShape(QScrollArea.Shape.NoFrame)

        self.preset_combo = QComboBox()
        self.preset_combo.setObjectName("presetCombo")
        self.preset_combo.setToolTip("Named parameter sets saved for this method")
        self.preset_combo.activated.connect(self._on_preset_chosen)
        save_preset = QPushButton("Save…")
        save_preset.setToolTip("Save the current parameters as a named preset of this method")
        save_preset.clicked.connect(self.save_preset_dialog)
        delete_preset = QPushButton("Delete")
        delete_preset.clicked.connect(self._delete_preset)
        presets_row = QHBoxLayout()
        presets_row.addWidget(QLabel("Preset"))
        presets_row.addWidget(self.preset_combo, 1)
        presets_row.addWidget(save_preset)
        presets_row.addWidget(delete_preset)

        self.slot_buttons = QButtonGroup(self)
        slot_row = QHBoxLayout()
        slot_row.addWidget(QLabel("Fuse into"))
        for slot in SLOTS:
            button = QRadioButton(f"Result {slot}")
            button.setObjectName(f"slot{slot}")
            button.setToolTip("Fuse with two methods into A and B to compare them")
            self.slot_buttons.addButton(button)
            slot_row.addWidget(button)
            if slot == "A":
                button.setChecked(True)
        slot_row.addStretch(1)
        self.fuse_button = QPushButton("Fuse")
        self.fuse_button.setObjectName("fuseButton")
        self.fuse_button.setDefault(True)
        self.fuse_button.clicked.connect(lambda: self.fuse())
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.clicked.connect(self.cancel_fusion)
        buttons = QHBoxLayout()
        buttons.addWidget(self.fuse_button, 1)
        buttons.addWidget(self.cancel_button)

        layout.addWidget(QLabel("Method"))
        layout.addWidget(self.method_combo)
        layout.addWidget(self.method_description)
        self.weights_chooser = WeightsChooser()
        self.weights_chooser.choiceChanged.connect(self._on_weights_chosen)
        self.weights_chooser.weightsEdited.connect(self.refresh_weights)
        layout.addWidget(self.weights_chooser)
        layout.addWidget(form_scroll, 1)
        layout.addLayout(presets_row)
        layout.addLayout(slot_row)
        layout.addLayout(buttons)
        self.method_dock = self._dock("Method", "methodDock", method_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self._build_alignment_dock()

        self.layers_panel = LayersPanel(
            self.state, self.viewer.overlay_item, self._histogram_took_lut, self._map_description
        )
        self.layers_dock = self._dock("Overlays", "layersDock", self.layers_panel,
                                      Qt.DockWidgetArea.RightDockWidgetArea)
        self.metrics_panel = MetricsPanel()
        self.metrics_panel.computeRequested.connect(self.compute_metrics_now)
        self.metrics_dock = self._dock("Metrics", "metricsDock", self.metrics_panel,
                                       Qt.DockWidgetArea.BottomDockWidgetArea)
        self.viewer.cursorMoved.connect(self._on_cursor_moved)

    def _build_alignment_dock(self) -> None:
        """Registration of the frames before fusion: when, and with the declared settings."""
        panel = QWidget()
        layout = QVBoxLayout(panel)
        self.align_mode = QComboBox()
        self.align_mode.setObjectName("alignMode")
        for key, text in ALIGN_MODES:
            self.align_mode.addItem(text, key)
        self.align_mode.setToolTip(
            "Register every frame to the reference before fusing (handheld stacks, focus breathing, stage "
            f"drift). Auto aligns stacks of {ALIGN_BY_DEFAULT_FROM} or more frames, as the command line does."
        )
        mode_row = QHBoxLayout()
        mode_row.addWidget(QLabel("Align frames"))
        mode_row.addWidget(self.align_mode, 1)
        self.align_summary = QLabel("No alignment yet")
        self.align_summary.setObjectName("alignSummary")
        self.align_summary.setWordWrap(True)
        self.align_form = ParamForm(ALIGN_PARAMS, group_titles={"analysis": "Registration", "post": "Result"})
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.align_form)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        layout.addLayout(mode_row)
        layout.addWidget(self.align_summary)
        layout.addWidget(scroll, 1)
        self.align_dock = self._dock("Alignment", "alignDock", panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        # A tab beside the frame list: the list keeps its height, the settings are one click away
        # (the last registration is also summarised in the status bar after each fusion).
        self.tabifyDockWidget(self.stack_dock, self.align_dock)
        self.stack_dock.raise_()

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
        self.open_action = self._action("&Open Images…", self.open_files_dialog, K.Open, "Open two or more images")
        self.open_folder_action = self._action("Open &Folder…", self.open_folder_dialog, "Ctrl+Shift+O",
                                               "Open every image of a folder")
        self.export_action = self._action("&Export Result…", lambda: self.export_dialog(False), "Ctrl+E",
                                          "Save the shown result with a sidecar JSON")
        self.export_maps_action = self._action("Export Result and &Maps…", lambda: self.export_dialog(True),
                                               "Ctrl+Shift+E", "Save the result, its maps and a sidecar JSON")
        self.quit_action = self._action("&Quit", self.close, K.Quit)
        self.fuse_action = self._action("&Fuse", self.fuse, "Ctrl+Return", "Fuse the included frames")
        self.fuse_action.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("F5")])
        self.cancel_action = self._action("&Cancel", self.cancel_fusion, "Escape", "Cancel the running fusion")
        self.fit_action = self._action("Zoom to &Fit", self.viewer.fit, "Ctrl+0", "Fit the image in the view")
        self.actual_action = self._action("&Actual Pixels", self.viewer.actual_size, "Ctrl+1",
                                          "One image pixel per screen pixel")
        self.zoom_in_action = self._action("Zoom &In", lambda: self.viewer.main.view.scaleBy((0.8, 0.8)), K.ZoomIn)
        self.zoom_out_action = self._action("Zoom &Out", lambda: self.viewer.main.view.scaleBy((1.25, 1.25)),
                                            K.ZoomOut)
        self.overlay_action = self._action("Toggle &Overlays", self.state.toggle_overlays, "O",
                                           "Show or hide the overlays")
        self.before_after_action = self._action("&Before/After", self.toggle_before_after, "B",
                                                "Switch between the result and a source frame")
        self.wipe_action = self._action("&Wipe", self.toggle_wipe, "W", "Wipe between the shown image and another")
        self.compare_action = self._action("Compare &A | B", self.compare_results, "Ctrl+B",
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
        self.state.changed.connect(self._sync_view_controls)

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
        file_menu.addAction(self.preferences_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
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
        for dock in (self.stack_dock, self.method_dock, self.layers_dock, self.metrics_dock):
            view_menu.addAction(dock.toggleViewAction())
        tools_menu = menu.addMenu("&Tools")
        tools_menu.addAction(self.train_action)
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self.about_action)

    def _connect_runners(self) -> None:
        self.fusion_runner.progressed.connect(self._on_fusion_progress)
        self.fusion_runner.succeeded.connect(lambda _job, outcome: self._on_fusion_done(outcome))
        self.fusion_runner.failed.connect(lambda _job, message: self._on_fusion_failed(message))
        self.fusion_runner.cancelled.connect(lambda _job: self._on_fusion_cancelled())
        self.fusion_runner.busyChanged.connect(lambda _busy: self._update_enabled())
        self.file_runner.progressed.connect(self._on_file_progress)
        self.file_runner.succeeded.connect(self._note_export_done)
        self.file_runner.succeeded.connect(lambda _job, outcome: self._on_file_job_done(outcome))
        self.file_runner.failed.connect(lambda job, _message: self._note_export_failed(job))
        self.file_runner.cancelled.connect(self._note_export_failed)
        self.file_runner.failed.connect(lambda _job, message: self._on_job_failed("Could not complete", message))
        self.file_runner.busyChanged.connect(lambda _busy: self._update_enabled())
        self.frame_runner.succeeded.connect(lambda _job, frame: self._on_frame_loaded(frame))
        self.frame_runner.failed.connect(lambda _job, message: self._on_frame_failed(message))
        self.metrics_runner.succeeded.connect(lambda _job, outcome: self._on_metrics_done(outcome))
        self.metrics_runner.failed.connect(lambda _job, message: self._on_metrics_failed(message))

    def _restore_layout(self) -> None:
        geometry, state = self.app_settings.window_geometry(), self.app_settings.window_state()
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1500, 950)
        if state is None or not self.restoreState(state):
            # First start: a large viewer, the parameters taller than the overlay list, and a
            # metrics strip that does not eat the image.
            self.resizeDocks([self.stack_dock, self.method_dock], [260, 400], Qt.Orientation.Horizontal)
            self.resizeDocks([self.method_dock, self.layers_dock], [560, 360], Qt.Orientation.Vertical)
            self.resizeDocks([self.metrics_dock], [130], Qt.Orientation.Vertical)

    # ================================================================== methods and parameters
    def _populate_methods(self) -> None:
        from focusstudio.core.methods.registry import get_method, list_methods

        self.method_combo.blockSignals(True)
        self.method_combo.clear()
        model = self.method_combo.model()
        assert isinstance(model, QStandardItemModel)
        for name in list_methods():
            method = get_method(name)
            try:
                available, reason = method.availability()
            except Exception as error:  # a broken method must not stop the window from opening
                available, reason = False, str(error)
            label = f"{method.title} ({name})" if available else f"{method.title} ({name}) — unavailable"
            self.method_combo.addItem(label, name)
            row = self.method_combo.count() - 1
            item = model.item(row)
            item.setToolTip(method.description if available else f"Unavailable: {reason}")
            item.setEnabled(available)
        self.method_combo.blockSignals(False)
        wanted = self.app_settings.last_method
        preferred = [wanted, "sf"] + [self.method_combo.itemData(i) for i in range(self.method_combo.count())]
        for name in preferred:
            index = self.method_combo.findData(name)
            if name and index >= 0 and model.item(index).isEnabled():
                self.method_combo.setCurrentIndex(index)
                break
        self._on_method_chosen(self.method_combo.currentIndex())

    def method_names(self) -> list[str]:
        return [self.method_combo.itemData(i) for i in range(self.method_combo.count())]

    def select_method(self, name: str) -> None:
        index = self.method_combo.findData(name)
        if index < 0:
            raise FocusStudioError(f"unknown method '{name}'; valid: {', '.join(self.method_names())}")
        self.method_combo.setCurrentIndex(index)

    @property
    def method(self) -> FusionMethod | None:
        return self._method

    def _on_method_chosen(self, index: int) -> None:
        from focusstudio.core.methods.registry import get_method

        name = self.method_combo.itemData(index)
        if not name:
            self._method = None
            return
        if self._method is not None:
            self._method_values[self._method.name] = self.param_form.values()
        self._method = get_method(name)
        self.method_description.setText(self._method.description)
        self.weights_chooser.set_method(self._method)
        self.param_form.blockSignals(True)
        self.param_form.set_params(self._method.params)
        remembered = self._method_values.get(name)
        if remembered:
            self.param_form.set_values(remembered)
        self.param_form.blockSignals(False)
        self._fill_presets()
        self.app_settings.last_method = name
        self._update_enabled()

    def _fill_presets(self) -> None:
        self.preset_combo.clear()
        self.preset_combo.addItem("(choose a preset)", None)
        if self._method is not None:
            for name in self.presets.names(self._method.name):
                self.preset_combo.addItem(name, name)

    def _on_preset_chosen(self, index: int) -> None:
        name = self.preset_combo.itemData(index)
        if name and self._method is not None:
            skipped = self.param_form.set_values(self.presets.get(self._method.name, name))
            message = f"Preset '{name}' applied"
            if skipped:
                message += f" (ignored: {', '.join(skipped)})"
            self.statusBar().showMessage(message, 5000)

    def save_preset_dialog(self) -> None:
        if self._method is None:
            return
        name, accepted = QInputDialog.getText(self, "Save preset", f"Name of the {self._method.title} preset:")
        if accepted and name.strip():
            self.save_preset(name.strip())

    def save_preset(self, name: str) -> None:
        assert self._method is not None
        self.presets.save(self._method.name, name, self.param_form.values())
        self._fill_presets()
        self.preset_combo.setCurrentIndex(self.preset_combo.findData(name))

    def _delete_preset(self) -> None:
        name = self.preset_combo.currentData()
        if name and self._method is not None:
            self.presets.delete(self._method.name, name)
            self._fill_presets()

    # ================================================================== opening stacks
    def open_files_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Open images", self.app_settings.last_directory, IMAGE_FILTER)
        if paths:
            self.open_paths(paths)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of images", self.app_settings.last_directory)
        if folder:
            self.open_paths([folder])

    def add_files_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add images", self.app_settings.last_directory, IMAGE_FILTER)
        if paths:
            self.open_paths(paths, add=True)

    def open_paths(self, paths: Sequence[str | Path], add: bool = False) -> int | None:
        """Open ``paths`` (files and/or folders) in the background; ``add`` appends to the stack.

        Opening another stack discards the results: when one was never exported the user is asked
        first (None: the user kept the results, or is exporting them and the opening follows)."""
        paths = [str(p) for p in paths]
        add = add and self.loaded_stack is not None
        if not add and not self.confirm_discard_results("opening another stack",
                                                        partial(self.open_paths, paths, add)):
            return None
        reference = self.loaded_stack.shape if add and self.loaded_stack is not None else None
        self._pending_add = add
        self.app_settings.last_directory = str(Path(paths[0]).parent if Path(paths[0]).is_file() else paths[0])
        self._show_busy("Opening", 0.0)
        return self.file_runner.start(partial(load_files, paths, reference_shape=reference))

    def _on_files_dropped_on_list(self, paths: list[str]) -> None:
        self.open_paths(paths, add=self.loaded_stack is not None)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if dropped_paths(event):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = dropped_paths(event)
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    def _on_file_progress(self, event: ProgressEvent) -> None:
        self._show_busy(event.stage.capitalize(), event.fraction, event.message)

    def _on_file_job_done(self, outcome: object) -> None:
        if isinstance(outcome, LoadOutcome):
            self._on_loaded(outcome)
        elif isinstance(outcome, ExportOutcome):
            self._on_exported(outcome)

    def _on_loaded(self, outcome: LoadOutcome) -> None:
        self._hide_busy()
        good = with_frame_cache(outcome.stack) if outcome.stack is not None else None
        if good is not None:
            if self._pending_add and self.loaded_stack is not None:
                order, excluded = self.stack_panel.order(), self.stack_panel.excluded()
                first_new = len(self.loaded_stack)
                self.loaded_stack = merge_stacks(self.loaded_stack, good)
                self.thumbnails.extend(outcome.thumbnails)
                self.loaded_paths.extend(outcome.paths)
                order += list(range(first_new, len(self.loaded_stack)))
            else:
                self.loaded_stack = good
                self.thumbnails = list(outcome.thumbnails)
                self.loaded_paths = list(outcome.paths)
                order, excluded = list(range(len(good))), []
                self._clear_results()
            self._stack_generation += 1
            self._reset_frame_view()
            self.app_settings.add_recent_stack(self.loaded_paths)
            self._show_stack(order, excluded)
        if outcome.problems:
            loaded = len(good) if good is not None else 0
            QMessageBox.warning(self, "Some files could not be used", problems_text(outcome.problems, loaded))
        self.stackLoaded.emit()

    def _show_stack(self, order: list[int], excluded: list[int]) -> None:
        stack = self.loaded_stack
        assert stack is not None
        entries = []
        for info in stack.frames:
            detail = f"{info.width}×{info.height} · {bit_depth_label(info.dtype)}"
            where = str(info.path) if info.path is not None else "in memory"
            entries.append(FrameEntry(info.name, detail, f"{info.name}\n{where}\n{detail}"))
        self.stack_panel.set_frames(entries, order, excluded)
        for index, thumbnail in enumerate(self.thumbnails):
            image = qimage2ndarray.array2qimage(thumbnail)  # QImage made here, on the main thread
            self.stack_panel.set_thumbnail(index, QIcon(QPixmap.fromImage(image)))
        summary = describe_stack(stack)
        if stack.notes:
            summary += "<br><small>" + "<br>".join(stack.notes) + "</small>"
        self.stack_panel.set_summary(summary)
        self.stack_panel.summary.setToolTip("\n".join(stack.notes))
        if not self.results:
            first = self.active_indices[0] if self.active_indices else 0
            self.state.set_base(frame_key(first))
            self._before_layer = frame_key(first)
        self._refresh_layer_combos()
        self.viewer.refresh()
        self.viewer.fit()

    def load_stack_object(self, stack: Stack, paths: Sequence[str] = ()) -> None:
        """Show an in-memory stack (the Python API and tests); thumbnails are made here."""
        from focusstudio.gui.jobs import make_thumbnail

        self.loaded_stack = stack
        self.loaded_paths = list(paths)
        self.thumbnails = [make_thumbnail(stack.load(i)) for i in range(len(stack))]
        self._stack_generation += 1
        self._reset_frame_view()
        self._clear_results()
        self._show_stack(list(range(len(stack))), [])
        self.stackLoaded.emit()

    def _on_selection_changed(self, indices: list[int]) -> None:
        self.active_indices = list(indices)
        for slot, outcome in self.results.items():
            if outcome.request.stack_key != self._stack_key():
                self.statusBar().showMessage(
                    f"The frame selection changed: result {slot} is from the previous selection (press Fuse)", 6000)
        self._update_enabled()

    def _reset_frame_view(self) -> None:
        """New frames: drop the displayed frames, the aligned view and the cached registration."""
        self._frames.clear()
        self._frame_queue.clear()
        self._aligned_view = None
        self._alignment_cache = None
        self._frame_view += 1

    def active_stack(self) -> Stack | None:
        if self.loaded_stack is None or not self.active_indices:
            return None
        return self.loaded_stack.subset(self.active_indices)

    def _stack_key(self) -> tuple[Any, ...]:
        return (self._stack_generation, tuple(self.active_indices))

    # ================================================================== fusion
    def target_slot(self) -> str:
        checked = self.slot_buttons.checkedButton()
        return "B" if checked is not None and checked.objectName() == "slotB" else "A"

    def set_target_slot(self, slot: str) -> None:
        for button in self.slot_buttons.buttons():
            button.setChecked(button.objectName() == f"slot{slot}")

    def fuse(self, slot: str | None = None) -> int | None:
        """Fuse the included frames with the chosen method into ``slot`` (default: the chosen slot)."""
        stack = self.active_stack()
        if stack is None or len(stack) < 2 or self._method is None:
            self.statusBar().showMessage("Open a stack with at least 2 included frames first", 5000)
            return None
        try:
            params = self._method.params.resolve(self.param_form.values())
        except ParameterError as error:
            self._on_job_failed("Invalid parameter", str(error))
            return None
        try:
            align = self.alignment_settings(len(stack))
        except ParameterError as error:
            self._on_job_failed("Invalid alignment setting", str(error))
            return None
        aligned = None
        if align is not None and self._alignment_cache is not None:
            key, settings, registration = self._alignment_cache
            if key == self._stack_key() and settings == align:
                aligned = registration  # same frames, same settings: no need to register again
        self._live_timer.stop()
        request = FusionRequest(
            stack=stack,
            method=self._method.name,
            params=params,
            device=self.app_settings.device,
            slot=slot or self.target_slot(),
            stack_key=self._stack_key(),
            weights=self.weights_chooser.current_reference(),
            align=align,
            aligned=aligned,
        )
        self._show_busy("Starting", 0.0)
        self._live_running = False  # a full fusion: slider moves must not cancel it
        job = self.fusion_runner.start(partial(fusion_job, request))
        self._update_enabled()  # Fuse is off until it ends (a live update it replaced left it on)
        return job

    def cancel_fusion(self) -> None:
        self._live_timer.stop()
        self.fusion_runner.cancel()

    def _on_fusion_progress(self, event: ProgressEvent) -> None:
        self._show_busy(event.stage.capitalize(), event.fraction, event.message)

    def _on_fusion_cancelled(self) -> None:
        self._live_running = False
        self._hide_busy()
        self.statusBar().showMessage("Fusion cancelled", 4000)

    def _on_fusion_failed(self, message: str) -> None:
        self._live_running = False
        self._on_job_failed("Fusion failed", message)

    def _on_fusion_done(self, outcome: FusionOutcome) -> None:
        """Show a finished result: the image now, the maps and panels in the next loop iteration.

        Splitting the work keeps every step on the GUI thread short (the maps of a big stack
        mean dozens of overlay rows and a histogram).
        """
        self._live_running = False
        self._hide_busy()
        slot = outcome.request.slot
        self.results[slot] = outcome
        if not outcome.request.live:
            self._show_alignment(outcome)
        key = RESULT_A if slot == "A" else RESULT_B
        self._showing_result = True  # the maps are synced in _finish_result_display
        try:
            if not self.state.base.startswith("result:") or not outcome.request.live:
                self.state.set_base(key)
            self._refresh_layer_combos()
            self.viewer.refresh_images()
        finally:
            self._showing_result = False
        self.device_label.setText(f"Device: {outcome.result.device}")
        QTimer.singleShot(0, partial(self._finish_result_display, outcome))

    def _show_alignment(self, outcome: FusionOutcome) -> None:
        """Remember a registration for re-use, describe it, and show the frames as it aligned them."""
        alignment = outcome.alignment
        view: tuple[Stack, dict[int, int]] | None = None
        if alignment is not None and outcome.request.align is not None:
            self._alignment_cache = (outcome.request.stack_key, dict(outcome.request.align),
                                     (outcome.fused_stack, alignment))
            selection = list(outcome.request.stack_key[1]) if len(outcome.request.stack_key) > 1 else []
            view = (outcome.fused_stack, {selection[kept]: position
                                          for position, kept in enumerate(alignment.included)
                                          if kept < len(selection)})
            failed = len(alignment.failed)
            summary = (f"{len(alignment.included)} frames registered to frame "
                       f"{alignment.reference + 1} ({alignment.model}) in {alignment.seconds:.1f} s")
            if failed:
                summary += f"; {failed} did not register (see the tooltip)"
            if alignment.crop_box is not None and outcome.request.align.get("crop", True):
                _, _, width, height = alignment.crop_box
                summary += f"; cropped to {width}×{height}"
            self.align_summary.setText(summary)
            self.align_summary.setToolTip("\n".join(alignment.describe()))
        else:
            self.align_summary.setText("Last fusion: frames not aligned")
            self.align_summary.setToolTip("")
        same = (view is None and self._aligned_view is None) or (
            view is not None and self._aligned_view is not None and view[0] is self._aligned_view[0]
        )
        if not same:  # another registration (or none): the shown frames must be made again
            self._aligned_view = view
            self._frame_view += 1
            self._frames.clear()
            self._frame_queue.clear()

    def _finish_result_display(self, outcome: FusionOutcome) -> None:
        slot = outcome.request.slot
        if self.results.get(slot) is not outcome:
            return  # a newer result already replaced this one
        result = outcome.result
        if self.state.base == (RESULT_A if slot == "A" else RESULT_B):
            self.state.sync_maps(result.maps, outcome.levels)
        self.viewer.refresh_overlays()
        timings = result.timings
        if outcome.request.live:
            latency = (time.perf_counter() - outcome.request.requested_at) * 1000.0
            self.last_live_latency_ms = latency
            self.timing_label.setText(
                f"Live update {latency:.0f} ms (post-processing {timings.get('finish', 0.0) * 1000:.0f} ms)")
            self.liveUpdated.emit(latency)
        else:
            self.timing_label.setText(f"{result.method}: {timings.get('total', outcome.worker_seconds):.2f} s")
            aligned = f" ({self.align_summary.text()})" if outcome.alignment is not None else ""
            self.statusBar().showMessage(f"Fused {len(result.source_names)} frames with {result.method} "
                                         f"into result {slot}{aligned}", 8000)
        self._queue_metrics(slot)
        self._update_enabled()
        self.resultReady.emit(slot)
        # The user may have moved a post-processing slider while the full fusion ran.
        if not outcome.request.live:
            self._on_params_changed(self.param_form.values())

    def _on_job_failed(self, title: str, message: str) -> None:
        self._hide_busy()
        self.statusBar().showMessage(message, 8000)
        self.jobFailed.emit(message)
        QMessageBox.critical(self, title, message)

    # ------------------------------------------------------------------ live post-processing
    def _on_params_changed(self, values: dict[str, Any]) -> None:
        if self._method is None:
            return
        self._method_values[self._method.name] = dict(values)
        slot = self.target_slot()
        outcome = self.results.get(slot)
        if outcome is None or outcome.result.method != self._method.name:
            return
        try:
            resolved = self._method.params.resolve(values)
        except ParameterError as error:
            self.statusBar().showMessage(str(error), 5000)
            return
        if resolved == dict(outcome.result.params):
            return
        reusable = (
            outcome.result.analysis is not None
            and outcome.request.stack_key == self._stack_key()
            and self._method.params.post_only_change(outcome.result.params, resolved)
        )
        if not reusable:
            self.statusBar().showMessage("Analysis parameters changed: press Fuse to update the result", 6000)
            return
        if not self.app_settings.live_update:
            return
        if self.fusion_runner.busy and not self._live_running:
            return  # a full fusion is running; it re-checks the form when it finishes
        self._live_requested_at = time.perf_counter()
        self._live_timer.start()  # restarted by every change: the debounce

    def _run_live_update(self) -> None:
        if self._method is None:
            return
        slot = self.target_slot()
        outcome = self.results.get(slot)
        if outcome is None or outcome.result.analysis is None:
            return
        try:
            params = self._method.params.resolve(self.param_form.values())
        except ParameterError:
            return
        request = FusionRequest(
            stack=outcome.request.stack,
            method=outcome.request.method,
            params=params,
            device=outcome.request.device,
            slot=slot,
            analysis=outcome.result.analysis,
            weights=outcome.request.weights,
            stack_key=outcome.request.stack_key,
            requested_at=self._live_requested_at,
            live=True,
            align=outcome.request.align,
            # The analysis was made on these (aligned) frames: post-process the same ones.
            aligned=(outcome.fused_stack, outcome.alignment) if outcome.alignment is not None else None,
        )
        self.stage_label.setText("Updating…")
        self._live_running = True
        self.fusion_runner.start(partial(fusion_job, request))
        self._update_enabled()

    # ================================================================== display
    def _result_for_layer(self, key: str) -> FusionOutcome | None:
        kind, which = parse_layer(key)
        return self.results.get(str(which)) if kind == "result" else None

    def _frame_image(self, index: int) -> FrameDisplay | None:
        frame = self._frames.get(index)
        if frame is not None:
            self._frames.move_to_end(index)
            return frame
        if self.loaded_stack is not None and 0 <= index < len(self.loaded_stack):
            self._request_frame(index)
        return None

    def _layer_image(self, key: str) -> np.ndarray | None:
        kind, which = parse_layer(key)
        if kind == "result":
            outcome = self.results.get(str(which))
            return outcome.display if outcome is not None else None
        frame = self._frame_image(int(which))
        return frame.display if frame is not None else None

    def _layer_title(self, key: str) -> str:
        kind, which = parse_layer(key)
        if kind == "result":
            outcome = self.results.get(str(which))
            if outcome is None:
                return f"Result {which}"
            stale = "" if outcome.request.stack_key == self._stack_key() else " · previous frame selection"
            return f"Result {which}: {outcome.result.method}{stale}"
        index = int(which)
        if self.loaded_stack is None or index >= len(self.loaded_stack):
            return f"Frame {index + 1}"
        return f"Frame {index + 1}: {self.loaded_stack.frames[index].name}"

    def _shown_outcome(self) -> FusionOutcome | None:
        """The result whose maps are overlaid: the base result, else the target slot's."""
        outcome = self._result_for_layer(self.state.base)
        return outcome or self.results.get(self.target_slot()) or next(iter(self.results.values()), None)

    def _shown_maps(self) -> dict[str, FusionMap]:
        outcome = self._shown_outcome()
        return dict(outcome.result.maps) if outcome is not None else {}

    def _map_description(self, name: str) -> str:
        fusion_map = self._shown_maps().get(name)
        return fusion_map.description if fusion_map is not None else ""

    def _histogram_took_lut(self, name: str) -> None:
        self.viewer.forget_overlay_lut(name)
        self.viewer.refresh_overlays()

    def _request_frame(self, index: int) -> None:
        if index in self._frame_queue:
            return
        self._frame_queue.append(index)
        if not self.frame_runner.busy:
            self._start_next_frame()

    def _start_next_frame(self) -> None:
        if self._frame_queue and self.loaded_stack is not None:
            index = self._frame_queue[0]
            stack, position = self.loaded_stack, index
            if self._aligned_view is not None and index in self._aligned_view[1]:
                stack, position = self._aligned_view[0], self._aligned_view[1][index]
            self.frame_runner.start(
                partial(frame_display_job, stack, position, index=index, view=self._frame_view)
            )

    def _on_frame_loaded(self, frame: FrameDisplay) -> None:
        if self._frame_queue and self._frame_queue[0] == frame.index:
            self._frame_queue.pop(0)
        if frame.view != self._frame_view:  # made for a view that changed meanwhile
            self._start_next_frame()
            return
        self._frames[frame.index] = frame
        while len(self._frames) > FRAME_CACHE_SIZE:
            self._frames.popitem(last=False)
        self.viewer.refresh()
        self._start_next_frame()

    def _on_frame_failed(self, message: str) -> None:
        if self._frame_queue:
            self._frame_queue.pop(0)
        self.statusBar().showMessage(message, 8000)
        self._start_next_frame()

    def _show_frame(self, index: int) -> None:
        self._before_layer = frame_key(index)
        self.state.set_base(frame_key(index))
        self._sync_view_controls("base")

    def _layer_choices(self) -> list[tuple[str, str]]:
        choices = [(self._layer_title(key), key) for key in (RESULT_A, RESULT_B) if key[-1] in self.results]
        if self.loaded_stack is not None:
            choices += [(self._layer_title(frame_key(i)), frame_key(i)) for i in range(len(self.loaded_stack))]
        return choices

    def _refresh_layer_combos(self) -> None:
        choices = self._layer_choices()
        for combo in (self.show_combo, self.wipe_combo, self.side_combo):
            current = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            for title, key in choices:
                combo.addItem(title, key)
            combo.blockSignals(False)
            if current is not None and combo.findData(current) >= 0:
                combo.setCurrentIndex(combo.findData(current))
        self._sync_view_controls("base")

    def _sync_view_controls(self, aspect: str) -> None:
        pairs = ((self.show_combo, self.state.base), (self.wipe_combo, self.state.wipe_layer),
                 (self.side_combo, self.state.side_layer))
        for combo, key in pairs:
            index = combo.findData(key)
            if index >= 0 and index != combo.currentIndex():
                combo.blockSignals(True)
                combo.setCurrentIndex(index)
                combo.blockSignals(False)
        for check, on in ((self.wipe_check, self.state.wipe_enabled), (self.side_check, self.state.side_by_side)):
            check.blockSignals(True)
            check.setChecked(on)
            check.blockSignals(False)
        if aspect == "base" and not self._showing_result:
            outcome = self._result_for_layer(self.state.base)
            if outcome is not None:
                self.state.sync_maps(outcome.result.maps, outcome.levels)

    def toggle_before_after(self) -> None:
        """Switch the base between the shown result and the last source frame looked at."""
        if self.state.base.startswith("result:"):
            self._after_layer = self.state.base
            self.state.set_base(self._before_layer)
        else:
            self._before_layer = self.state.base
            after = self._after_layer
            if self._result_for_layer(after) is None:
                after = RESULT_A if "A" in self.results else RESULT_B
            if self._result_for_layer(after) is not None:
                self.state.set_base(after)
        self._sync_view_controls("base")

    def toggle_wipe(self) -> None:
        other = self.wipe_combo.currentData() or self._before_layer
        if other == self.state.base:
            other = self._before_layer if self.state.base.startswith("result:") else RESULT_A
        self.state.set_wipe(not self.state.wipe_enabled, other)

    def compare_results(self) -> None:
        if "A" in self.results and "B" in self.results:
            self.state.set_base(RESULT_A)
            self.state.set_wipe(True, RESULT_B)
        else:
            self.statusBar().showMessage("Fuse into result A and result B first (choose 'Fuse into')", 5000)

    def _on_cursor_moved(self, position: tuple[int, int] | None) -> None:
        self.cursor_label.setText(self.cursor_readout(*position) if position is not None else "")

    def cursor_readout(self, row: int, col: int) -> str:
        """Pixel position, the shown value, every map's value and the frame the pixel came from."""
        parts = [f"x {col}  y {row}"]
        kind, which = parse_layer(self.state.base)
        pixel: np.ndarray | None = None
        if kind == "result" and str(which) in self.results:
            pixel = self.results[str(which)].result.image[row, col]
        elif kind == "frame" and int(which) in self._frames:
            pixel = self._frames[int(which)].image[row, col]
        if pixel is not None:
            values = np.atleast_1d(pixel)
            parts.append("value " + "/".join(f"{v:.3f}" for v in values))
        outcome = self._shown_outcome()
        if outcome is None:
            return "   ".join(parts)
        height, width = outcome.result.image.shape[:2]
        names = outcome.result.source_names
        origin = ""
        for name, fusion_map in outcome.result.maps.items():
            data = fusion_map.data
            # Maps may be smaller than the image (computed at a lower resolution).
            map_row = min(data.shape[0] - 1, row * data.shape[0] // height)
            map_col = min(data.shape[1] - 1, col * data.shape[1] // width)
            value = data[map_row, map_col]
            if fusion_map.kind == "index":
                frame = int(value)
                parts.append(f"{name} {frame}")
                if not origin and 0 <= frame < len(names):
                    origin = f"from frame {frame + 1} ({names[frame]})"
            else:
                parts.append(f"{name} {float(value):.3g}")
                if fusion_map.kind == "decision" and not origin and len(names) == 2:
                    weight = float(value)
                    frame = 0 if weight >= 0.5 else 1
                    origin = f"from frame {frame + 1} ({names[frame]}, weight {max(weight, 1 - weight):.2f})"
        if origin:
            parts.append(origin)
        return "   ".join(parts)

    # ================================================================== metrics
    def _queue_metrics(self, slot: str) -> None:
        if not self.metrics_panel.auto.isChecked():
            return
        outcome = self.results[slot]
        stack = outcome.request.stack
        megapixels = len(stack) * stack.shape[0] * stack.shape[1] / 1e6
        if megapixels > AUTO_METRICS_MAX_MEGAPIXELS:
            # The metrics need every source frame in memory and minutes of CPU on a big stack.
            self.metrics_panel.clear_slot(slot)
            self.metrics_panel.status.setText(
                f"Large stack ({megapixels:.0f} MP over all frames): press Compute now for the metrics.")
            return
        if slot not in self._metrics_queue:
            self._metrics_queue.append(slot)
        self.metrics_panel.set_pending(slot, outcome.result.method)
        self._metrics_timer.start()

    def compute_metrics_now(self) -> None:
        for slot in self.results:
            if slot not in self._metrics_queue:
                self._metrics_queue.append(slot)
            self.metrics_panel.set_pending(slot, self.results[slot].result.method)
        self._start_next_metrics()

    def _start_next_metrics(self) -> None:
        if self.metrics_runner.busy or not self._metrics_queue:
            return
        slot = self._metrics_queue.pop(0)
        outcome = self.results.get(slot)
        if outcome is None:
            self._start_next_metrics()
            return
        self.metrics_runner.start(partial(
            metrics_job, slot, outcome.result.method, outcome.result.image, outcome.fused_stack,
            METRIC_KEYS,
        ))

    def _on_metrics_done(self, outcome: MetricsOutcome) -> None:
        self.metrics_panel.set_values(outcome.slot, outcome.label, outcome.values)
        self.metricsReady.emit(outcome.slot)
        self._start_next_metrics()

    def _on_metrics_failed(self, message: str) -> None:
        self.metrics_panel.set_error(message)
        self._start_next_metrics()

    # ================================================================== export
    def _export_outcome(self) -> FusionOutcome | None:
        return self._result_for_layer(self.state.base) or self.results.get(self.target_slot()) or next(
            iter(self.results.values()), None)

    def export_dialog(self, with_maps: bool = False, slot: str | None = None) -> int | None:
        outcome = self.results.get(slot) if slot else self._export_outcome()
        if outcome is None:
            self.statusBar().showMessage("Nothing to export yet: fuse first", 5000)
            return None
        stem = Path(outcome.result.source_names[0]).stem if outcome.result.source_names else "result"
        suggested = self.export_folder(outcome) / f"{stem}_{outcome.result.method}.png"
        if outcome.result.source_dtype != "uint8":
            suggested = suggested.with_suffix(".tif")
        path, chosen_filter = QFileDialog.getSaveFileName(
            self, "Export result", str(suggested), ";;".join(EXPORT_FILTERS),
            "TIFF image (*.tif *.tiff)" if suggested.suffix == ".tif" else "PNG image (*.png)",
        )
        if not path:
            return None
        target = Path(path)
        if not target.suffix:
            target = target.with_suffix(EXPORT_FILTERS.get(chosen_filter, ".png"))
        # The file dialog already asked before replacing an existing file; inputs stay protected.
        return self.export_to(target, with_maps=with_maps, overwrite=True, slot=slot)

    def export_folder(self, outcome: FusionOutcome) -> Path:
        """The folder the export dialog offers: the last export folder, else Pictures, else home;
        never a folder that holds the result's sources (a result saved among its frames would be
        offered as a frame next time, and a folder of sources is not where results belong)."""
        sources = {info.path.parent.resolve() for info in outcome.request.stack.frames if info.path is not None}
        pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
        candidates = [self.app_settings.last_export_directory, pictures, str(Path.home())]
        for candidate in candidates:
            if candidate and Path(candidate).is_dir() and Path(candidate).resolve() not in sources:
                return Path(candidate)
        return Path.home()

    def export_to(self, path: str | Path, with_maps: bool = False, overwrite: bool = False,
                  slot: str | None = None) -> int | None:
        outcome = self.results.get(slot) if slot else self._export_outcome()
        if outcome is None:
            return None
        sources = tuple(str(info.path) for info in outcome.request.stack.frames if info.path is not None)
        request = ExportRequest(
            path=Path(path),
            result=outcome.result,
            source_paths=sources,
            device=outcome.request.device,
            weights=outcome.request.weights,
            align=outcome.request.align if outcome.alignment is not None else None,
            alignment=outcome.alignment,
            with_maps=with_maps,
            overwrite=overwrite,
        )
        self._show_busy("Saving", 0.0)
        job = self.file_runner.start(partial(export_job, request))
        self._export_jobs[job] = outcome
        return job

    def _on_exported(self, outcome: ExportOutcome) -> None:
        self._hide_busy()
        message = f"Saved {outcome.image} and {outcome.sidecar.name}"
        if outcome.maps:
            message += f" and {len(outcome.maps)} maps"
        if outcome.notes:
            message += " — " + "; ".join(outcome.notes)
        self.statusBar().showMessage(message, 10000)
        self.app_settings.last_export_directory = str(outcome.image.parent)
        self.exported.emit(outcome)

    # ================================================================== misc
    def _show_busy(self, stage: str, fraction: float, message: str = "") -> None:
        self.stage_label.setText(f"{stage}: {message}" if message else stage)
        self.progress.setVisible(True)
        self.progress.setValue(round(fraction * 1000))

    def _hide_busy(self) -> None:
        if not self.fusion_runner.busy and not self.file_runner.busy:
            self.progress.setVisible(False)
            self.stage_label.setText("Ready")

    def _clear_results(self) -> None:
        self.fusion_runner.cancel()
        self.metrics_runner.cancel()
        self._metrics_queue.clear()
        self.results.clear()
        self._exported_results.clear()
        self.state.sync_maps({})
        self.metrics_panel.clear_all()
        self.state.set_wipe(False)

    def _update_enabled(self) -> None:
        can_fuse = (self._method is not None and self.loaded_stack is not None and len(self.active_indices) >= 2)
        busy = self.fusion_runner.busy
        # A second Fuse during a run would silently throw the run away: Cancel first (a live
        # post-processing update is not a run the user started, Fuse replaces it).
        running = busy and not self._live_running
        self.fuse_button.setEnabled(can_fuse and not running)
        self.fuse_action.setEnabled(can_fuse and not running)
        self.fuse_button.setToolTip("A fusion is running: Cancel it first" if running else "")
        self.cancel_button.setEnabled(busy)
        self.cancel_action.setEnabled(busy)
        has_result = bool(self.results)
        self.export_action.setEnabled(has_result)
        self.export_maps_action.setEnabled(has_result)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        entries = self.app_settings.recent_stacks()
        for entry in entries:
            first = Path(entry[0])
            label = first.name + (f" (+{len(entry) - 1} files)" if len(entry) > 1 else "")
            action = self.recent_menu.addAction(label)
            action.setToolTip("\n".join(entry))
            action.triggered.connect(lambda _checked=False, paths=entry: self.open_paths(paths))
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
            if not self.results:
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

    # ================================================================== training and weights
    def open_training_wizard(self) -> TrainingWizard:
        """Tools → Train a Model…: the wizard, non-modal (the window stays usable while it trains)."""
        from focusstudio.gui.training_wizard import open_training_wizard

        self._training_wizard = open_training_wizard(self, self.app_settings.device, self._on_weights_installed,
                                                     self._training_wizard)
        return self._training_wizard

    def _on_weights_installed(self, method: str, name: str) -> None:
        self.refresh_weights()
        if self._method is not None and self._method.name == method:
            self.weights_chooser.select(name)
        self.statusBar().showMessage(f"Weights “{name}” saved for {method}", 6000)

    def refresh_weights(self) -> None:
        """Installed weights changed: method availability and the weights list follow."""
        current = self._method.name if self._method is not None else None
        self._populate_methods()
        index = self.method_combo.findData(current) if current is not None else -1
        model = self.method_combo.model()
        if index >= 0 and isinstance(model, QStandardItemModel) and model.item(index).isEnabled():
            self.method_combo.setCurrentIndex(index)  # still usable: stay on it
        self.weights_chooser.refresh()

    def _on_weights_chosen(self, name: object) -> None:
        if self.results:
            self.statusBar().showMessage("Weights changed: press Fuse to update the result", 6000)

    def shutdown(self, timeout_ms: int = QUIT_WAIT_MS) -> bool:
        """Cancel every background job and wait at most ``timeout_ms`` for them to stop (called when
        the window closes; the core checks for a cancel several times a second). False when work
        was still running then: it stops at its next check, the window does not wait for it."""
        if self._training_wizard is not None:
            self._training_wizard.shutdown()  # training writes its checkpoint first: it may wait
        self._live_timer.stop()
        self._metrics_timer.stop()
        self._after_export = None
        exporting = self.file_runner.busy and self.file_runner.current_job in self._export_jobs
        for runner in (self.fusion_runner, self.frame_runner, self.metrics_runner):
            runner.stop_all()
        if exporting:
            timeout_ms = max(timeout_ms, QUIT_EXPORT_WAIT_MS)
        else:
            self.file_runner.stop_all()
        done = bool(QThreadPool.globalInstance().waitForDone(timeout_ms))
        if not done:
            log.warning("background work did not stop within %d ms of the window closing", timeout_ms)
        return done

    # ================================================================== unexported results
    def unexported_slots(self) -> list[str]:
        """The slots whose current result was never exported (a live update makes a new result)."""
        return [slot for slot in SLOTS
                if slot in self.results and self._exported_results.get(slot) is not self.results[slot]]

    def confirm_discard_results(self, action: str, repeat: Callable[[], object]) -> bool:
        """True when ``action`` may discard the results: all exported, or the user chose Discard.

        Save exports each unexported result (a file dialog each, one after the other) and then
        calls ``repeat`` (the action again); Cancel, or closing a file dialog, does nothing."""
        unexported = self.unexported_slots()
        if not unexported or not self.confirm_discard:
            return True
        title, text = unexported_question([(slot, self.results[slot].result.method) for slot in unexported], action)
        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(self, title, text, buttons.Save | buttons.Discard | buttons.Cancel,
                                      buttons.Save)
        if answer == buttons.Discard:
            return True
        if answer == buttons.Save:
            self._after_export = repeat
            self._export_next_unexported()
        return False

    def _export_next_unexported(self) -> None:
        unexported = self.unexported_slots()
        if not unexported:
            repeat, self._after_export = self._after_export, None
            if repeat is not None:
                repeat()
            return
        if self.export_dialog(slot=unexported[0]) is None:
            self._after_export = None  # the user closed the file dialog: stay

    def _note_export_done(self, job: int, outcome: object) -> None:
        exported = self._export_jobs.pop(job, None)
        if exported is None or not isinstance(outcome, ExportOutcome):
            return
        slot = exported.request.slot
        if self.results.get(slot) is exported:
            self._exported_results[slot] = exported
        if self._after_export is not None:
            QTimer.singleShot(0, self._export_next_unexported)

    def _note_export_failed(self, job: int) -> None:
        if self._export_jobs.pop(job, None) is not None:
            self._after_export = None  # the failure was shown; the action waits for the user

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.confirm_discard_results("quitting", self.close):
            event.ignore()
            return
        self.app_settings.save_window(QByteArray(self.saveGeometry()), QByteArray(self.saveState()))
        if self._method is not None:
            self.app_settings.last_method = self._method.name
        self.app_settings.sync()
        self.shutdown()
        super().closeEvent(event)
