"""The retouch tool of the window: paint source frames over the result under the mouse (issue 16).

:class:`RetouchController` binds a :class:`~focusstudio.core.retouch.RetouchModel` to an image
pane (``viewer.main``). While active it takes the pane's left mouse button (wheel zoom and
middle-button pan stay with the view): press-drag-release paints one stroke from the chosen
source frame (or erases back to the method's result); Alt-click picks the frame that is sharpest
there, Alt+Shift-click the frame the method's map chose. The retouched pixels are drawn as tiles
over the pane's base image, and a segment redraws only the tiles it touched, so the cost per
mouse move does not grow with the image. A painted-mask overlay shows where and from which frame
(its colour is the frame's colour in the index map).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence, QMouseEvent, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem

from focusstudio.core.retouch import Brush, Rect, RetouchModel, SharpnessProbe, chosen_frame
from focusstudio.gui.viewer import CATEGORICAL, OVERLAY_Z

if TYPE_CHECKING:
    from focusstudio.core.types import FusionResult
    from focusstudio.gui.viewer import ImagePane

#: Stacking order: over the base image (0), under the map overlays (OVERLAY_Z and up).
RETOUCH_Z = 5
MASK_Z = OVERLAY_Z - 1
#: Edge of the display tiles: a segment redraws the whole tiles it touched (an ImageItem has no
#: partial update), so small tiles waste little; 24 MP painted all over is ~370 items.
DISPLAY_TILE = 256
#: Opacity of the painted-mask overlay where a pixel is fully painted.
MASK_ALPHA = 0.45


def _display(pixels: np.ndarray) -> np.ndarray:
    """float [0, 1] → uint8 for the screen in one pass (OpenCV rounds and saturates; the exact
    conversion of :func:`~focusstudio.core.types.from_unit_float` goes through float64 and is
    several times slower, which a tile redrawn on every mouse move cannot afford)."""
    return cv2.convertScaleAbs(pixels, alpha=255.0)


class RetouchController(QObject):
    """Paints under the mouse into a retouch model and keeps the pane's tiles up to date.

    Signals: ``imageChanged(rect)`` after each change of the model's image ((row0, row1, col0,
    col1)); ``historyChanged()`` when undo/redo availability changes; ``frameChanged(frame)`` when
    the source frame changes (None = eraser), e.g. by an Alt-click; ``message(str)`` for the
    status bar.
    """

    imageChanged = Signal(object)
    historyChanged = Signal()
    frameChanged = Signal(object)
    brushChanged = Signal()
    message = Signal(str)

    def __init__(self, pane: ImagePane, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pane = pane
        self.model: RetouchModel | None = None
        self.result: FusionResult | None = None
        self.probe: SharpnessProbe | None = None
        self.brush = Brush(size=64.0, hardness=0.5, opacity=1.0)
        self.frame: int | None = 0
        self.match = True
        #: Decodes a source frame for painting. The window sets a background job here (decoding a
        #: 24 MP frame on the GUI thread freezes it); None: decode at once, on this thread.
        self.prepare: Callable[[int], None] | None = None
        self._active = False
        self._before = False
        self._mask_visible = False
        self._painting = False
        self._tiles: dict[tuple[int, int], pg.ImageItem] = {}
        self._mask_tiles: dict[tuple[int, int], pg.ImageItem] = {}
        self._cursor = QGraphicsEllipseItem()
        pen = QPen(Qt.GlobalColor.white)
        pen.setCosmetic(True)  # one screen pixel wide at any zoom
        self._cursor.setPen(pen)
        self._cursor.setZValue(1000)
        self._cursor.setVisible(False)
        pane.view.addItem(self._cursor)

        self.undo_action = QAction("&Undo Stroke", self)
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.undo_action.triggered.connect(self.undo)
        self.redo_action = QAction("&Redo Stroke", self)
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence.StandardKey.Redo])
        self.redo_action.triggered.connect(self.redo)
        for action in (self.undo_action, self.redo_action):
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            pane.addAction(action)
        self._update_actions()

    # ------------------------------------------------------------------ set-up
    def set_model(self, model: RetouchModel | None, result: FusionResult | None = None,
                  probe: SharpnessProbe | None = None) -> None:
        """Retouch ``model`` (None: nothing to retouch); ``result`` gives the maps for the chosen-frame
        pick, ``probe`` the sharpest-frame pick."""
        if self._painting and self.model is not None:
            self.model.end_stroke()
        self._painting = False
        self._clear_tiles()
        self.model, self.result, self.probe = model, result, probe
        if model is not None:
            if self.frame is not None and self.frame >= model.frames.count:
                self.set_frame(0)
            if model.strokes:  # a rebased model: its strokes are already painted
                self._redraw((0, model.shape[0], 0, model.shape[1]))
        self._update_actions()

    @property
    def active(self) -> bool:
        return self._active

    def set_active(self, active: bool) -> None:
        """Retouch mode on (the pane's left button paints) or off (the view pans as usual)."""
        if active == self._active:
            return
        self._active = active
        viewport = self.pane.viewport()
        if active:
            viewport.installEventFilter(self)
            viewport.setCursor(Qt.CursorShape.CrossCursor)
        else:
            viewport.removeEventFilter(self)
            viewport.unsetCursor()
            self._cursor.setVisible(False)
            if self._painting:
                self._finish()

    def set_brush(self, size: float | None = None, hardness: float | None = None, opacity: float | None = None) -> None:
        self.brush = Brush(
            self.brush.size if size is None else float(size),
            self.brush.hardness if hardness is None else float(hardness),
            self.brush.opacity if opacity is None else float(opacity),
        )
        self._cursor.setRect(self._cursor_rect(self._cursor.rect().center()))
        self.brushChanged.emit()

    def set_frame(self, frame: int | None) -> None:
        """The source frame to paint from (0-based); None = the eraser."""
        if frame == self.frame:
            return
        self.frame = frame
        if frame is not None:
            # Decoded now, not at the first press (a 24 MP frame takes a moment).
            self.prepare_frame(frame)
        self.frameChanged.emit(frame)

    def prepare_frame(self, frame: int) -> None:
        if self.model is not None:
            (self.prepare or self.model.prepare_frame)(frame)

    def frame_ready(self, frame: int | None) -> bool:
        """Whether a stroke from ``frame`` can start without decoding it here (the eraser always can)."""
        return frame is None or self.model is None or self.prepare is None or self.model.frames.loaded(frame)

    def set_match(self, match: bool) -> None:
        self.match = bool(match)

    # ------------------------------------------------------------------ display
    def show_before(self, before: bool) -> None:
        """Before/after: hide the retouched tiles (the pane's own image is the method's result)."""
        self._before = before
        for item in self._tiles.values():
            item.setVisible(not before)

    @property
    def showing_before(self) -> bool:
        return self._before

    def show_mask(self, visible: bool) -> None:
        self._mask_visible = visible
        if visible and self.model is not None:
            self._redraw_mask((0, self.model.shape[0], 0, self.model.shape[1]))
        for item in self._mask_tiles.values():
            item.setVisible(visible)

    @property
    def mask_visible(self) -> bool:
        return self._mask_visible

    def retouched_result(self) -> FusionResult | None:
        """The result with the retouched image (for export), or the result when nothing is painted."""
        if self.result is None or self.model is None:
            return self.result
        return self.model.retouched_result(self.result)

    # ------------------------------------------------------------------ history
    def undo(self) -> None:
        if self.model is not None and not self._painting:
            self._changed(self.model.undo())
            self._update_actions()

    def redo(self) -> None:
        if self.model is not None and not self._painting:
            self._changed(self.model.redo())
            self._update_actions()

    def _update_actions(self) -> None:
        model = self.model
        self.undo_action.setEnabled(model is not None and model.can_undo())
        self.redo_action.setEnabled(model is not None and model.can_redo())
        self.historyChanged.emit()

    # ------------------------------------------------------------------ painting (also the API the tests drive)
    def press(self, x: float, y: float, modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
        """A left press at image coordinates (x, y): pick (with Alt) or begin a stroke."""
        if self.model is None:
            return
        if modifiers & Qt.KeyboardModifier.AltModifier:
            self.pick(x, y, chosen=bool(modifiers & Qt.KeyboardModifier.ShiftModifier))
            return
        if not self.frame_ready(self.frame):
            assert self.frame is not None
            self.prepare_frame(self.frame)
            self.message.emit(f"Frame {self.frame + 1} is still loading: paint again in a moment")
            return
        self._painting = True
        self._changed(self.model.begin_stroke(self.frame, self.brush, x, y, self.match))

    def move(self, x: float, y: float) -> None:
        self._cursor.setRect(self._cursor_rect(QPointF(x, y)))
        self._cursor.setVisible(self._active)
        if self._painting and self.model is not None:
            self._changed(self.model.extend_stroke(x, y))

    def release(self) -> None:
        if self._painting:
            self._finish()

    def _finish(self) -> None:
        assert self.model is not None
        self._painting = False
        self.model.end_stroke()
        self._update_actions()

    def pick(self, x: float, y: float, chosen: bool = False) -> int | None:
        """Make the frame sharpest at (x, y) — or, with ``chosen``, the frame the method's map chose
        there — the source frame; returns it (None when the result has no such map)."""
        if self.model is None:
            return None
        row = min(max(math.floor(y), 0), self.model.shape[0] - 1)
        col = min(max(math.floor(x), 0), self.model.shape[1] - 1)
        if chosen:
            maps = self.result.maps if self.result is not None else {}
            frame = chosen_frame(maps, row, col, self.model.shape)
            what = "the frame the method chose"
        else:
            if self.probe is None:
                self.message.emit("The sharpest-frame pick needs the stack's sharpness (not measured yet)")
                return None
            frame = self.probe.sharpest(row, col)
            what = "the sharpest frame"
        if frame is None:
            self.message.emit("This result has no index or decision map to pick from")
            return None
        self.set_frame(frame)
        name = self.model.names[frame] if frame < len(self.model.names) else f"frame {frame + 1}"
        self.message.emit(f"Painting from {name}: {what} at ({col}, {row})")
        return frame

    # ------------------------------------------------------------------ events
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind not in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove, QEvent.Type.MouseButtonRelease,
                        QEvent.Type.MouseButtonDblClick):
            return False
        assert isinstance(event, QMouseEvent)
        point = self.pane.view.mapSceneToView(self.pane.mapToScene(event.position().toPoint()))
        x, y = float(point.x()), float(point.y())
        if kind == QEvent.Type.MouseMove:
            self.move(x, y)
            return self._painting
        if event.button() != Qt.MouseButton.LeftButton:
            return False  # the middle button pans, the right button is the view's
        if kind in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonDblClick):
            self.press(x, y, event.modifiers())
        else:
            self.release()
        return True

    # ------------------------------------------------------------------ tiles
    def _cursor_rect(self, centre: QPointF) -> QRectF:
        radius = self.brush.radius
        return QRectF(centre.x() - radius, centre.y() - radius, 2 * radius, 2 * radius)

    def _changed(self, rect: Rect | None) -> None:
        if rect is None:
            return
        self._redraw(rect)
        self.imageChanged.emit(rect)

    def _tile_keys(self, rect: Rect) -> list[tuple[int, int]]:
        row0, row1, col0, col1 = rect
        return [(r, c) for r in range(row0 // DISPLAY_TILE, (row1 - 1) // DISPLAY_TILE + 1)
                for c in range(col0 // DISPLAY_TILE, (col1 - 1) // DISPLAY_TILE + 1)]

    def _tile_rect(self, key: tuple[int, int]) -> Rect:
        assert self.model is not None
        height, width = self.model.shape
        row0, col0 = key[0] * DISPLAY_TILE, key[1] * DISPLAY_TILE
        return (row0, min(row0 + DISPLAY_TILE, height), col0, min(col0 + DISPLAY_TILE, width))

    def _redraw(self, rect: Rect) -> None:
        assert self.model is not None
        for key in self._tile_keys(rect):
            tile = self._tile_rect(key)
            item = self._tiles.get(key)
            if item is None:
                if not self.model.painted(tile).any():
                    continue  # never painted here: the pane's base image already shows it
                item = self._tiles[key] = self._new_tile(key, RETOUCH_Z)
                item.setVisible(not self._before)
            row0, row1, col0, col1 = tile
            item.setImage(_display(self.model.image[row0:row1, col0:col1]), autoLevels=False)
        if self._mask_visible:
            self._redraw_mask(rect)

    def _redraw_mask(self, rect: Rect) -> None:
        assert self.model is not None
        for key in self._tile_keys(rect):
            tile = self._tile_rect(key)
            painted = self.model.painted(tile)
            item = self._mask_tiles.get(key)
            if item is None:
                if not painted.any():
                    continue
                item = self._mask_tiles[key] = self._new_tile(key, MASK_Z)
            frames = self.model.painted_frame(tile)
            colours = np.array(CATEGORICAL, np.uint8)[np.mod(frames, len(CATEGORICAL))]
            rgba = np.empty((*painted.shape, 4), np.uint8)
            rgba[..., :3] = colours
            rgba[..., 3] = np.round(np.clip(painted, 0.0, 1.0) * (255 * MASK_ALPHA)).astype(np.uint8)
            item.setImage(rgba, autoLevels=False)
            item.setVisible(self._mask_visible)

    def _new_tile(self, key: tuple[int, int], z: int) -> pg.ImageItem:
        row0, _row1, col0, _col1 = self._tile_rect(key)
        item = pg.ImageItem(axisOrder="row-major")
        item.setZValue(z)
        item.setPos(col0, row0)  # one image pixel per view unit, like the pane's base image
        self.pane.view.addItem(item)
        return item

    def _clear_tiles(self) -> None:
        for item in (*self._tiles.values(), *self._mask_tiles.values()):
            self.pane.view.removeItem(item)
        self._tiles.clear()
        self._mask_tiles.clear()

    def tile_count(self) -> int:
        """How many display tiles the retouched image has (the tests check none appear unpainted)."""
        return len(self._tiles)
