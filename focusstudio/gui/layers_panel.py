"""The overlay list (one row per map of the shown result) and the histogram/levels control.

Rows edit the :class:`ViewState` (visibility, opacity, colour map); the selected row is the
"active" map whose histogram and levels the ``HistogramLUTWidget`` shows and controls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from focusstudio.gui.map_legend import MapLegend, legend_entries, legend_title
from focusstudio.gui.view_state import COLORMAPS, ViewState
from focusstudio.gui.viewer import categories_for, gradient_colormap, make_colormap

ItemForMap = Callable[[str], pg.ImageItem]


class LayersPanel(QWidget):
    """Overlay rows (visible, name, opacity, colour map) and the histogram of the active map."""

    COLUMNS = ("Show", "Map", "Opacity", "Colours")

    def __init__(self, state: ViewState, item_for_map: ItemForMap, on_lut_taken: Callable[[str], None],
                 descriptions: Callable[[str], str], frame_names: Callable[[], Sequence[str]] = tuple,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._item_for_map = item_for_map
        self._on_lut_taken = on_lut_taken
        self._descriptions = descriptions
        self._frame_names = frame_names
        self._names: list[str] = []
        self._bound: str | None = None
        self._bound_key: tuple[object, ...] | None = None
        self._binding = False

        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setObjectName("overlayTable")
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Fixed)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setColumnWidth(2, 90)
        # Never the ~2 rows it once was: four maps stay in view on a 768-pixel screen, and the first
        # layout gives the list most of its dock (window_memory.restore_layout).
        self.table.setMinimumHeight(self.table.horizontalHeader().sizeHint().height()
                                    + 4 * self.table.verticalHeader().defaultSectionSize() + 4)
        self.legend = MapLegend()
        self.table.itemSelectionChanged.connect(self._on_row_selected)
        self.empty_label = QLabel("Fuse a stack to see the maps the method exposes.")
        self.empty_label.setWordWrap(True)

        self.hide_all = QCheckBox("Hide all overlays")
        self.hide_all.setToolTip("Hide every overlay without losing the choices (key O)")
        self.hide_all.toggled.connect(lambda checked: checked != state.overlays_hidden and state.toggle_overlays())

        self.histogram_title = QLabel()
        self.histogram = pg.HistogramLUTWidget(orientation="horizontal")
        self.histogram.setObjectName("mapHistogram")
        self.histogram.setMinimumHeight(90)
        self.histogram.item.sigLevelsChanged.connect(self._on_levels_changed)
        self.histogram.item.sigLevelChangeFinished.connect(self._on_levels_changed)
        self.histogram.setEnabled(False)
        self.histogram.setVisible(False)

        layout = QVBoxLayout(self)
        layout.addWidget(self.empty_label)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.legend)
        self.levels_check = QCheckBox("Levels")
        self.levels_check.setObjectName("showLevels")
        self.levels_check.setToolTip("Show the histogram and levels of the selected map")
        self.levels_check.setChecked(True)
        self.levels_check.toggled.connect(lambda _on: self._bind_histogram())
        checks = QHBoxLayout()
        checks.addWidget(self.hide_all)
        checks.addStretch(1)
        checks.addWidget(self.levels_check)
        layout.addLayout(checks)
        layout.addWidget(self.histogram_title)
        layout.addWidget(self.histogram)
        state.changed.connect(self._on_state_changed)
        self._rebuild()

    # ------------------------------------------------------------------ model → widgets
    def _on_state_changed(self, aspect: str) -> None:
        if aspect == "overlays":
            if list(self.state.overlays) != self._names:
                self._rebuild()
            else:
                self._refresh_rows()
            self._bind_histogram()
            self._update_legend()
        elif aspect == "active":
            self._select_active()
            self._bind_histogram()
            self._update_legend()
        elif aspect == "base":
            self._update_legend()

    def _update_legend(self) -> None:
        """Frame colours of the visible index/decision map (the active one first), or no legend."""
        visible = self.state.visible_overlays()
        names = list(self._frame_names())
        if not self.state.base.startswith("result:"):
            visible = []  # the overlays are not drawn over a source frame
        ordered = sorted(visible, key=lambda overlay: overlay.name != self.state.active_overlay)
        for overlay in ordered:
            entries = legend_entries(overlay, names, self._descriptions(overlay.name))
            if entries:
                self.legend.set_entries(legend_title(overlay), entries)
                return
        self.legend.set_entries("", [])

    def map_names(self) -> list[str]:
        return list(self._names)

    def _rebuild(self) -> None:
        self._names = list(self.state.overlays)
        self.table.blockSignals(True)
        self.table.setRowCount(len(self._names))
        group = -1  # maps come grouped by kind (ViewState); alternate groups are shaded
        for row, name in enumerate(self._names):
            overlay = self.state.overlays[name]
            visible = QCheckBox()
            visible.setObjectName(f"visible_{name}")
            visible.setToolTip(f"Show the {name} overlay")
            visible.toggled.connect(lambda checked, n=name: self.state.update_overlay(n, visible=checked))
            self.table.setCellWidget(row, 0, visible)
            label = QTableWidgetItem(name)
            if row == 0 or self.state.overlays[self._names[row - 1]].kind != overlay.kind:
                group += 1
                font = label.font()
                font.setBold(True)  # the first map of each kind: the groups show at a glance
                label.setFont(font)
            if group % 2:
                label.setBackground(self.palette().alternateBase())
            label.setToolTip(f"{name} ({overlay.kind})\n{self._descriptions(name)}".strip())
            self.table.setItem(row, 1, label)
            opacity = QSlider(Qt.Orientation.Horizontal)
            opacity.setObjectName(f"opacity_{name}")
            opacity.setRange(0, 100)
            opacity.setToolTip("Opacity of this overlay")
            opacity.valueChanged.connect(
                lambda value, n=name: self.state.update_overlay(n, opacity=value / 100.0)
            )
            self.table.setCellWidget(row, 2, opacity)
            colours = QComboBox()
            colours.setObjectName(f"colormap_{name}")
            colours.addItems(list(COLORMAPS))
            colours.setToolTip("Colour map (lookup table) of this overlay")
            colours.currentTextChanged.connect(
                lambda text, n=name: self.state.update_overlay(n, colormap=text)
            )
            self.table.setCellWidget(row, 3, colours)
        self.table.blockSignals(False)
        self.empty_label.setVisible(not self._names)
        self._refresh_rows()
        self._select_active()

    def _refresh_rows(self) -> None:
        for row, name in enumerate(self._names):
            overlay = self.state.overlays[name]
            widgets = [self.table.cellWidget(row, column) for column in (0, 2, 3)]
            for widget in widgets:
                widget.blockSignals(True)
            visible, opacity, colours = widgets
            assert isinstance(visible, QCheckBox) and isinstance(opacity, QSlider)
            assert isinstance(colours, QComboBox)
            visible.setChecked(overlay.visible)
            opacity.setValue(round(overlay.opacity * 100))
            colours.setCurrentText(overlay.colormap)
            for widget in widgets:
                widget.blockSignals(False)
        self.hide_all.blockSignals(True)
        self.hide_all.setChecked(self.state.overlays_hidden)
        self.hide_all.blockSignals(False)

    def _select_active(self) -> None:
        active = self.state.active_overlay
        self.table.blockSignals(True)
        if active in self._names:
            self.table.selectRow(self._names.index(active))
        else:
            self.table.clearSelection()
        self.table.blockSignals(False)

    def _bind_histogram(self) -> None:
        """Point the histogram at the active map; only what changed is redone (it is not cheap)."""
        name = self.state.active_overlay
        if name is None or name not in self.state.overlays:
            self.histogram.setEnabled(False)
            self.histogram.setVisible(False)
            self.histogram_title.setText("")
            self._bound_key = None
            return
        overlay = self.state.overlays[name]
        item = self._item_for_map(name)
        key = (name, overlay.colormap, categories_for(overlay), id(item))
        self._binding = True
        try:
            if key != self._bound_key:
                if self._bound is not None and self._bound != name:
                    # The histogram set a LUT on the previously bound item: let the viewer re-apply its own.
                    self._on_lut_taken(self._bound)
                if self._bound_key is None or self._bound_key[0] != name or self._bound_key[3] != id(item):
                    self.histogram.setImageItem(item)
                self.histogram.gradient.setColorMap(
                    gradient_colormap(make_colormap(overlay.colormap, categories_for(overlay))))
                # The colour map is chosen in the row; the gradient only shows it (no tick editing).
                self.histogram.gradient.showTicks(False)
                self._bound_key = key
                self._bound = name
            if tuple(self.histogram.getLevels()) != overlay.levels:
                self.histogram.setLevels(*overlay.levels)
        finally:
            self._binding = False
        self.histogram.setEnabled(True)
        wanted = self.levels_check.isChecked()  # a short screen starts without it (window_memory)
        self.histogram.setVisible(wanted)
        self.histogram_title.setVisible(wanted)
        self.histogram_title.setText(f"Levels of <b>{name}</b>")

    # ------------------------------------------------------------------ widgets → model
    def _on_row_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.state.set_active_overlay(self._names[rows[0].row()])

    def _on_levels_changed(self, *_: object) -> None:
        name = self.state.active_overlay
        if self._binding or name is None or name not in self.state.overlays:
            return
        low, high = self.histogram.getLevels()
        self.state.update_overlay(name, levels=(float(low), float(high)))
