"""The list of source frames: thumbnails, reorder by drag or keyboard, exclude by checkbox, add, remove.

The panel only records the user's order and choices; the main window turns them into
``stack.subset(indices)``. Files dropped on the list are handed on (the window loads them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction, QDragEnterEvent, QDragMoveEvent, QDropEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

THUMBNAIL_SIZE = 96
_INDEX_ROLE = Qt.ItemDataRole.UserRole


def dropped_paths(event: QDropEvent | QDragEnterEvent | QDragMoveEvent) -> list[str]:
    """Local file/folder paths carried by a drag, in the order given."""
    mime = event.mimeData()
    if not mime.hasUrls():
        return []
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]


@dataclass(frozen=True)
class FrameEntry:
    """What the list shows for one frame of the full (loaded) stack."""

    name: str
    detail: str  # e.g. "2700×1800 · 16-bit"
    tooltip: str


class _FrameList(QListWidget):
    """A list that reorders its own items by drag and hands external file drops on."""

    filesDropped = Signal(list)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.source() is not self and dropped_paths(event):
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if event.source() is not self and dropped_paths(event):
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        if event.source() is not self and dropped_paths(event):
            event.acceptProposedAction()
            self.filesDropped.emit(dropped_paths(event))
        else:
            super().dropEvent(event)


class StackPanel(QWidget):
    """Thumbnails of the loaded frames with order, inclusion and a summary line."""

    #: (indices into the loaded stack, in the user's order, included frames only)
    selectionChanged = Signal(list)
    #: (index into the loaded stack) the user double-clicked a frame to look at it.
    frameActivated = Signal(int)
    #: (index into the loaded stack, or position in a stack being opened) the selected frame changed.
    frameSelected = Signal(int)
    addRequested = Signal()
    filesDropped = Signal(list)
    #: (indices into the loaded stack) the user asked to take these frames out of the stack.
    removeRequested = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QLabel("No stack loaded. Drop images or a folder here.")
        self.summary.setWordWrap(True)
        self.list = _FrameList()
        self.list.setObjectName("frameList")
        self.list.setIconSize(QSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        self.list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.list.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setAcceptDrops(True)
        self.list.setToolTip("Drag or Ctrl+Up/Down to reorder, untick (Space) to exclude, Delete to remove,\n"
                             "double-click to view a frame; right-click for more")
        self._build_actions()
        self.add_button = QPushButton("Add images…")
        self.add_button.clicked.connect(self.addRequested)
        self.include_all_button = QPushButton("Include all")
        self.include_all_button.clicked.connect(self.include_all)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.include_all_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self.list.itemChanged.connect(self._emit_selection)
        self.list.model().rowsMoved.connect(self._emit_selection)
        self.list.itemDoubleClicked.connect(lambda item: self.frameActivated.emit(int(item.data(_INDEX_ROLE))))
        self.list.currentItemChanged.connect(
            lambda item, _previous: item is not None and self.frameSelected.emit(int(item.data(_INDEX_ROLE))))
        self.list.filesDropped.connect(self.filesDropped)

    def _build_actions(self) -> None:
        """The frame actions: on the list's context menu, with keys that work while the list has focus."""
        def action(text: str, keys: str | QKeySequence.StandardKey | None, slot: object) -> QAction:
            item = QAction(text, self.list)
            if keys is not None:
                item.setShortcut(QKeySequence(keys))
                item.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
            item.triggered.connect(lambda _checked=False: slot())  # type: ignore[operator]
            self.list.addAction(item)
            return item

        self.view_action = action("View this frame", "Return", self._view_current)
        self.toggle_action = action("Include / exclude", None, self._toggle_current)
        self.move_up_action = action("Move up", "Ctrl+Up", lambda: self.move_current(-1))
        self.move_down_action = action("Move down", "Ctrl+Down", lambda: self.move_current(1))
        separator = QAction(self.list)
        separator.setSeparator(True)
        self.list.addAction(separator)
        self.remove_action = action("Remove from the stack", QKeySequence.StandardKey.Delete, self._remove_current)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)

    def current_index(self) -> int | None:
        """The loaded-stack index of the selected frame (None: nothing selected)."""
        item = self.list.currentItem()
        return int(item.data(_INDEX_ROLE)) if item is not None else None

    def _view_current(self) -> None:
        index = self.current_index()
        if index is not None:
            self.frameActivated.emit(index)

    def _toggle_current(self) -> None:
        index = self.current_index()
        if index is not None:
            self.set_included(index, index in self.excluded())

    def _remove_current(self) -> None:
        index = self.current_index()
        if index is not None:
            self.removeRequested.emit([index])

    def move_current(self, step: int) -> None:
        """Move the selected frame ``step`` places (the keyboard's drag); it stays selected."""
        index = self.current_index()
        if index is None:
            return
        order = self.order()
        position = order.index(index)
        target = min(max(position + step, 0), len(order) - 1)
        if target == position:
            return
        order.insert(target, order.pop(position))
        self.set_order(order)
        self.list.setCurrentRow(target)

    # ------------------------------------------------------------------ content
    def set_frames(self, entries: Sequence[FrameEntry], order: Sequence[int] | None = None,
                   excluded: Sequence[int] = ()) -> None:
        """Show ``entries`` (the loaded stack) in ``order``, with ``excluded`` unticked."""
        self.list.blockSignals(True)
        self.list.clear()
        for index in order if order is not None else range(len(entries)):
            entry = entries[index]
            item = QListWidgetItem(f"{entry.name}\n{entry.detail}")
            item.setToolTip(entry.tooltip)
            item.setData(_INDEX_ROLE, index)
            item.setFlags(
                Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsUserCheckable
                | Qt.ItemFlag.ItemIsDragEnabled
            )
            item.setCheckState(Qt.CheckState.Unchecked if index in excluded else Qt.CheckState.Checked)
            self.list.addItem(item)
        self.list.blockSignals(False)
        self._emit_selection()

    def show_decoded(self, position: int, name: str, icon: QIcon) -> None:
        """A frame of a stack being opened was decoded: list it now, greyed (the list becomes the
        stack's, checkable and movable, with :meth:`set_frames` once the last frame is in). It can
        be selected already: the view shows the frame selected."""
        if position == 0:
            self.list.blockSignals(True)
            self.list.clear()
            self.list.blockSignals(False)
        item = QListWidgetItem(icon, f"{name}\ndecoded")
        item.setData(_INDEX_ROLE, position)
        # Looked at, not yet ticked or dragged (that needs the stack, once open).
        item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        item.setForeground(self.palette().placeholderText())  # greyed: the frame is not in a stack yet
        self.list.blockSignals(True)
        self.list.addItem(item)
        self.list.blockSignals(False)
        if self.list.currentItem() is None:
            self.list.scrollToItem(item)  # follow the decoding until the user picks a frame to look at

    def select_frame(self, index: int) -> None:
        """Make frame ``index`` the selected one (the list keeps the user's pick across reloads)."""
        for row in range(self.list.count()):
            if int(self.list.item(row).data(_INDEX_ROLE)) == index:
                self.list.setCurrentRow(row)
                return

    def set_thumbnail(self, index: int, icon: QIcon) -> None:
        for row in range(self.list.count()):
            item = self.list.item(row)
            if int(item.data(_INDEX_ROLE)) == index:
                item.setIcon(icon)
                return

    def set_summary(self, text: str) -> None:
        self.summary.setText(text)

    def include_all(self) -> None:
        self.list.blockSignals(True)
        for row in range(self.list.count()):
            self.list.item(row).setCheckState(Qt.CheckState.Checked)
        self.list.blockSignals(False)
        self._emit_selection()

    # ------------------------------------------------------------------ state
    def order(self) -> list[int]:
        """Indices of every listed frame, in the user's order (included or not)."""
        return [int(self.list.item(row).data(_INDEX_ROLE)) for row in range(self.list.count())]

    def excluded(self) -> list[int]:
        return [
            int(item.data(_INDEX_ROLE))
            for item in (self.list.item(row) for row in range(self.list.count()))
            if item.checkState() != Qt.CheckState.Checked
        ]

    def active_indices(self) -> list[int]:
        excluded = set(self.excluded())
        return [index for index in self.order() if index not in excluded]

    def set_order(self, order: Sequence[int]) -> None:
        """Reorder the listed frames (the keyboard/menu equivalent of dragging)."""
        items = {int(self.list.item(row).data(_INDEX_ROLE)): row for row in range(self.list.count())}
        if sorted(order) != sorted(items):
            raise ValueError("set_order needs a permutation of the listed frames")
        taken = {index: self.list.takeItem(self.list.row(self._item_for(index))) for index in order}
        self.list.blockSignals(True)
        for index in order:
            self.list.addItem(taken[index])
        self.list.blockSignals(False)
        self._emit_selection()

    def set_included(self, index: int, included: bool) -> None:
        self._item_for(index).setCheckState(Qt.CheckState.Checked if included else Qt.CheckState.Unchecked)

    def _item_for(self, index: int) -> QListWidgetItem:
        for row in range(self.list.count()):
            item = self.list.item(row)
            if int(item.data(_INDEX_ROLE)) == index:
                return item
        raise KeyError(index)

    def _emit_selection(self, *_: object) -> None:
        self.selectionChanged.emit(self.active_indices())
