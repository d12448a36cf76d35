"""The image viewer: a base image, a before/after wipe, overlay layers and an optional linked pane.

Everything is pyqtgraph: each layer is an ``ImageItem`` stacked in one ``ViewBox`` with its own
opacity, lookup table and visibility (napari-style layers), and the side-by-side pane's ViewBox
is linked to the main one so zoom and pan stay synchronized. What is shown comes from a
:class:`~focusstudio.gui.view_state.ViewState`; the pixels come from provider callbacks, so the
viewer holds no results of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QLabel, QSplitter, QVBoxLayout, QWidget

from focusstudio.core.types import FusionMap
from focusstudio.gui.view_state import OverlayState, ViewState

#: Colours of the categorical map (frame numbers): Tableau 10.
CATEGORICAL = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)

# One convention for every image in the window: row-major arrays (H×W(×3)), like the core.
pg.setConfigOptions(imageAxisOrder="row-major")

LayerProvider = Callable[[str], "np.ndarray | None"]
LayerTitle = Callable[[str], str]
MapsProvider = Callable[[], "dict[str, FusionMap]"]
#: Where layer ``other`` lies in the pixels of layer ``base`` when their sizes differ: (x, y, width,
#: height), or the reason it cannot be said.
Placement = Callable[[str, str], "tuple[float, float, float, float] | str"]


#: The "mask" colour map: a mask's 0 leaves the image as it is, its 1 is red.
MASK_CLEAR = (0, 0, 0, 0)
MASK_RED = (230, 25, 25, 255)

#: Stacking order: base image 0, overlays from OVERLAY_Z up, the wipe's other image above them.
OVERLAY_Z = 10
WIPE_Z = 500


def make_colormap(name: str, categories: int = 10) -> pg.ColorMap:
    """A pyqtgraph colour map by name; "categorical" gets one colour per category."""
    if name == "categorical":
        count = max(int(categories), 2)
        positions = [(k + 0.5) / count for k in range(count)]
        return pg.ColorMap(positions, [CATEGORICAL[k % len(CATEGORICAL)] for k in range(count)])
    if name == "grey":
        return pg.ColorMap([0.0, 1.0], [(0, 0, 0), (255, 255, 255)])
    if name == "mask":
        return pg.ColorMap([0.0, 1.0], [MASK_CLEAR, MASK_RED])
    return pg.colormap.get(name)


def has_transparency(colormap: pg.ColorMap) -> bool:
    """Whether some colour of ``colormap`` is see-through (its lookup table then keeps alpha)."""
    _, colours = colormap.getStops(mode=pg.ColorMap.BYTE)
    return bool(np.asarray(colours).shape[1] == 4 and np.any(np.asarray(colours)[:, 3] < 255))


#: The histogram's gradient editor makes one draggable tick per colour-map stop; pyqtgraph's
#: maps have 256 stops, which costs ~0.1 s per map change. A few stops look the same.
GRADIENT_STOPS = 16


def gradient_colormap(colormap: pg.ColorMap) -> pg.ColorMap:
    """``colormap`` with at most GRADIENT_STOPS stops (for the histogram's gradient editor)."""
    positions, _ = colormap.getStops(mode=pg.ColorMap.BYTE)
    if len(positions) <= GRADIENT_STOPS:
        return colormap
    sampled = np.linspace(0.0, 1.0, GRADIENT_STOPS)
    return pg.ColorMap(sampled, colormap.map(sampled, mode=pg.ColorMap.BYTE))


def categories_for(state: OverlayState) -> int:
    return max(2, round(state.levels[1] - state.levels[0]))


class ImagePane(pg.GraphicsView):
    """One ViewBox with a base image item and a caption."""

    #: (row, col) under the mouse in image pixels, or None outside the image.
    cursorMoved = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setBackground("#202124")
        self.view = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.setCentralItem(self.view)
        self.base_item = pg.ImageItem(axisOrder="row-major")
        self.base_item.setZValue(0)
        self.view.addItem(self.base_item)
        # A plain label over the view (not a scene item, so no view range can move it off-centre).
        self.hint = QLabel(self)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setStyleSheet("color: #9aa0a6; font-size: 15px; background: transparent;")
        self.hint.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self._shape: tuple[int, int] | None = None
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)

    @property
    def image_shape(self) -> tuple[int, int] | None:
        return self._shape

    def set_hint(self, text: str) -> None:
        """Text shown in the middle of the pane while it has no image."""
        self.hint.setText(text)

    def resizeEvent(self, event: QResizeEvent | None) -> None:
        super().resizeEvent(event)
        hint = getattr(self, "hint", None)  # pyqtgraph calls this from its own __init__, before ours
        if hint is not None:
            hint.setGeometry(self.rect())

    def show_image(self, image: np.ndarray | None, extent: tuple[int, int] | None = None) -> None:
        """Show ``image`` over ``extent`` (height, width) image pixels: a reduced-resolution preview
        is stretched over the full result, so the view, the overlays and the cursor keep their place."""
        if image is None:
            self.base_item.clear()
            self._shape = None
            self.hint.setVisible(True)
            return
        self.hint.setVisible(False)
        first = self._shape is None
        self.base_item.setImage(image, autoLevels=False, levels=_levels_for(image))
        self._shape = extent or (int(image.shape[0]), int(image.shape[1]))
        self.base_item.setRect(QRectF(0, 0, self._shape[1], self._shape[0]))
        if first:
            self.view.autoRange(padding=0.01)

    def fit(self) -> None:
        self.view.autoRange(padding=0.01)

    def actual_size(self) -> None:
        """One image pixel per screen pixel, centred on the current view."""
        if self._shape is None:
            return
        centre = self.view.viewRect().center()
        width, height = self.view.width(), self.view.height()
        self.view.setRange(
            QRectF(centre.x() - width / 2, centre.y() - height / 2, width, height), padding=0
        )

    def _on_mouse_moved(self, position: QPointF) -> None:
        if self._shape is None or not self.view.sceneBoundingRect().contains(position):
            self.cursorMoved.emit(None)
            return
        point = self.view.mapSceneToView(position)
        row, col = math.floor(point.y()), math.floor(point.x())
        if 0 <= row < self._shape[0] and 0 <= col < self._shape[1]:
            self.cursorMoved.emit((row, col))
        else:
            self.cursorMoved.emit(None)


def _levels_for(image: np.ndarray) -> tuple[float, float] | None:
    if image.dtype == np.uint8:
        # No levels at all: pyqtgraph then hands uint8 pixels to Qt as they are, ~5x faster than
        # rescaling with levels (0, 255) (≈20 ms instead of ≈130 ms for 2700×1800 RGB).
        return None
    if image.dtype == np.uint16:
        return (0.0, 65535.0)
    return (0.0, 1.0)


class Viewer(QWidget):
    """The main pane (base + wipe + overlays) and a linked side pane, bound to a ViewState."""

    cursorMoved = Signal(object)

    def __init__(
        self,
        state: ViewState,
        layer_image: LayerProvider,
        layer_title: LayerTitle,
        maps: MapsProvider,
        parent: QWidget | None = None,
        placement: Placement | None = None,
        layer_extent: Callable[[str], tuple[int, int] | None] | None = None,
    ) -> None:
        super().__init__(parent)
        self.state = state
        self._placement = placement
        #: Why the wipe shows nothing (two images whose common area is unknown); "" when it works.
        self.wipe_problem = ""
        #: The image pixels a layer stands for when its image is a reduced-resolution preview.
        self._layer_extent = layer_extent
        self._layer_image = layer_image
        self._layer_title = layer_title
        self._maps = maps
        self.main = ImagePane()
        self.side = ImagePane()
        # Zoom and pan are synchronized by centre and scale (image pixels per screen pixel), not
        # by linking ranges: with locked aspect ratios, panes of different shapes cannot show the
        # same range, but they can show the same place at the same magnification.
        self._syncing = False
        self.main.view.sigRangeChanged.connect(lambda *_: self._sync_views(self.main, self.side))
        self.side.view.sigRangeChanged.connect(lambda *_: self._sync_views(self.side, self.main))
        self.side.view.sigResized.connect(lambda *_: self._sync_views(self.main, self.side))
        self.main_caption = QLabel()
        self.side_caption = QLabel()
        for caption in (self.main_caption, self.side_caption):
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.side_box = _captioned(self.side_caption, self.side)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(_captioned(self.main_caption, self.main))
        splitter.addWidget(self.side_box)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)
        self.side_box.setVisible(False)

        self.wipe_item = pg.ImageItem(axisOrder="row-major")
        # Above the overlays: the right of the wipe line shows the other image as it is.
        self.wipe_item.setZValue(WIPE_Z)
        self.main.view.addItem(self.wipe_item)
        self.wipe_line = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen("#ffd54f", width=2),
                                         hoverPen=pg.mkPen("#ffffff", width=3))
        self.wipe_line.setZValue(1000)
        self.main.view.addItem(self.wipe_line)
        self.wipe_line.sigPositionChanged.connect(self._on_wipe_dragged)
        self.overlay_items: dict[str, pg.ImageItem] = {}
        self._overlay_source: dict[str, np.ndarray] = {}  # the array each item shows
        self._overlay_lut_key: dict[str, tuple[str, int]] = {}

        self.main.cursorMoved.connect(self.cursorMoved)
        self.side.cursorMoved.connect(self.cursorMoved)
        # The owner calls refresh() once its providers can answer.
        state.changed.connect(self._on_state_changed)

    # ------------------------------------------------------------------ redraw
    def refresh(self) -> None:
        """Redraw every layer from the state and the providers (new result, new stack)."""
        self.refresh_images()
        self._draw_overlays()

    def refresh_images(self) -> None:
        """Redraw the base, wipe and side images (not the overlays)."""
        self._draw_base()
        self._draw_wipe()
        self._draw_side()

    def refresh_overlays(self) -> None:
        self._draw_overlays()

    def _on_state_changed(self, aspect: str) -> None:
        if aspect == "base":
            self._draw_base()
            self._draw_wipe()
            self._draw_overlays()  # the maps describe a result: not drawn over a source frame
        elif aspect == "wipe":
            self._draw_wipe()
        elif aspect == "side":
            self._draw_side()
        elif aspect in ("overlays", "active"):
            self._draw_overlays()

    def _draw_base(self) -> None:
        image = self._layer_image(self.state.base)
        extent = self._layer_extent(self.state.base) if self._layer_extent is not None else None
        self.main.show_image(image, extent)
        self.main_caption.setText(self._layer_title(self.state.base) if image is not None else "")

    def _wipe_rect(self, other: np.ndarray, shape: tuple[int, int]) -> tuple[float, float, float, float] | str:
        """Where the wipe's other image lies over the base, in base pixels (equal sizes: all of it)."""
        if other.shape[:2] == shape:
            return (0.0, 0.0, float(shape[1]), float(shape[0]))
        if self._placement is None:
            return f"the images differ in size ({other.shape[1]}×{other.shape[0]} and {shape[1]}×{shape[0]})"
        return self._placement(self.state.base, self.state.wipe_layer)

    def _hide_wipe(self) -> None:
        self.wipe_item.clear()
        self.wipe_item.setVisible(False)
        self.wipe_line.setVisible(False)

    def _draw_wipe(self) -> None:
        shape = self.main.image_shape
        other = self._layer_image(self.state.wipe_layer) if self.state.wipe_enabled else None
        self.wipe_problem = ""
        if shape is None or other is None:
            self._hide_wipe()
            if shape is not None:
                self.main_caption.setText(self._layer_title(self.state.base))
            return
        placed = self._wipe_rect(other, shape)
        if isinstance(placed, str):
            # Never silently nothing: the caption says why there is no wipe.
            self._hide_wipe()
            self.wipe_problem = f"No wipe with {self._layer_title(self.state.wipe_layer)}: {placed}"
            self.main_caption.setText(f"{self._layer_title(self.state.base)}  —  {self.wipe_problem}")
            return
        width = shape[1]
        left, top, span_w, span_h = placed
        split = round(self.state.wipe_position * width)
        split = min(max(split, 0), width - 1)
        # Only the part right of the line is drawn, so the base shows through on the left; the other
        # image covers its own area of the base (the common area of a cropped and an uncropped result).
        scale = other.shape[1] / span_w
        first = min(max(round((split - left) * scale), 0), other.shape[1])
        if first >= other.shape[1]:
            self.wipe_item.clear()
            self.wipe_item.setVisible(False)
        else:
            self.wipe_item.setImage(other[:, first:], autoLevels=False, levels=_levels_for(other))
            self.wipe_item.setRect(QRectF(left + first / scale, top, span_w - first / scale, span_h))
            self.wipe_item.setVisible(True)
        self.wipe_line.blockSignals(True)
        self.wipe_line.setPos(split)
        self.wipe_line.blockSignals(False)
        self.wipe_line.setVisible(True)
        common = "" if other.shape[:2] == shape else " (common area)"
        self.main_caption.setText(
            f"{self._layer_title(self.state.base)}  ◀ wipe ▶  {self._layer_title(self.state.wipe_layer)}{common}"
        )

    def _on_wipe_dragged(self) -> None:
        shape = self.main.image_shape
        if shape is not None:
            self.state.set_wipe_position(self.wipe_line.value() / shape[1])

    def _draw_side(self) -> None:
        self.side_box.setVisible(self.state.side_by_side)
        if not self.state.side_by_side:
            return
        image = self._layer_image(self.state.side_layer)
        self.side.show_image(image)
        self.side_caption.setText(self._layer_title(self.state.side_layer) if image is not None else "")
        self._sync_views(self.main, self.side)

    def _draw_overlays(self) -> None:
        maps = self._maps()
        shape = self.main.image_shape
        # Overlays are bound to the result they describe: over a source frame (before/after, the
        # per-frame view) they would say something false about it.
        if not self.state.base.startswith("result:"):
            shape = None
        visible = {state.name: state for state in self.state.visible_overlays()}
        for name in list(self.overlay_items):
            if name not in self.state.overlays or name not in maps:
                self.main.view.removeItem(self.overlay_items.pop(name))
                self._overlay_source.pop(name, None)
                self._overlay_lut_key.pop(name, None)
        for order, (name, overlay) in enumerate(self.state.overlays.items()):
            fusion_map = maps.get(name)
            if fusion_map is None:
                continue
            # Items exist only for visible maps and the active one (whose histogram is shown): a
            # method may expose dozens of full-size maps.
            needed = shape is not None and (name in visible or name == self.state.active_overlay)
            if not needed:
                if name in self.overlay_items:
                    self.overlay_items[name].setVisible(False)
                continue
            assert shape is not None
            item = self.overlay_item(name)
            item.setZValue(OVERLAY_Z + order)
            if self._overlay_source.get(name) is not fusion_map.data:
                item.setImage(fusion_map.data, autoLevels=False, levels=overlay.levels)
                self._overlay_source[name] = fusion_map.data
            # Maps computed at a lower resolution are stretched over the image.
            item.setRect(QRectF(0, 0, shape[1], shape[0]))
            if name not in visible:
                item.setVisible(False)
                continue
            lut_key = (overlay.colormap, categories_for(overlay) if overlay.colormap == "categorical" else 0)
            if self._overlay_lut_key.get(name) != lut_key:
                colormap = make_colormap(overlay.colormap, lut_key[1] or 10)
                item.setLookupTable(colormap.getLookupTable(nPts=256, alpha=has_transparency(colormap)))
                self._overlay_lut_key[name] = lut_key
            item.setLevels(overlay.levels)
            item.setOpacity(overlay.opacity)
            item.setVisible(True)

    def overlay_item(self, name: str) -> pg.ImageItem:
        """The ImageItem drawing map ``name`` (created on first use; the histogram binds to it)."""
        item = self.overlay_items.get(name)
        if item is None:
            item = pg.ImageItem(axisOrder="row-major")
            item.setVisible(False)
            self.main.view.addItem(item)
            self.overlay_items[name] = item
        return item

    def forget_overlay_lut(self, name: str) -> None:
        """The histogram changed this item's LUT: re-apply the state's colour map next time."""
        self._overlay_lut_key.pop(name, None)

    # ------------------------------------------------------------------ navigation
    def _sync_views(self, source: ImagePane, target: ImagePane) -> None:
        if self._syncing or not self.state.side_by_side or source.image_shape is None:
            return
        source_width = source.view.width()
        if source_width <= 0 or target.view.width() <= 0 or target.view.height() <= 0:
            return
        rect = source.view.viewRect()
        scale = rect.width() / source_width  # image pixels per screen pixel
        width, height = target.view.width() * scale, target.view.height() * scale
        centre = rect.center()
        self._syncing = True
        try:
            target.view.setRange(
                QRectF(centre.x() - width / 2, centre.y() - height / 2, width, height), padding=0
            )
        finally:
            self._syncing = False

    def fit(self) -> None:
        self.main.fit()

    def actual_size(self) -> None:
        self.main.actual_size()

    def view_range(self) -> list[list[float]]:
        return self.main.view.viewRange()


def _captioned(caption: QLabel, pane: QWidget) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(2)
    layout.addWidget(caption)
    layout.addWidget(pane, 1)
    return box
