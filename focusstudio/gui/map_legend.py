"""Which map explains a result best, how the overlay list groups maps, and the frame-colour legend.

A method may expose dozens of maps; the user first wants the one that says where each pixel came
from (the index map of an N-frame fusion, the decision map of a pair), then the activity maps
that explain that choice. The legend says which colour is which frame, by the 1-based numbers and
the names the stack list shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

from focusstudio.core.types import FusionMap
from focusstudio.gui.view_state import OverlayState, grouped_names
from focusstudio.gui.viewer import categories_for, make_colormap

#: Legend rows shown at most (a 40-frame stack gets the first ones and a "… and N more" line).
LEGEND_ROWS = 24


def _finality(name: str) -> int:
    """Methods expose raw and refined variants of a map ("decision", "decision_post"): prefer the final one."""
    lowered = name.lower()
    return 0 if ("final" in lowered or "post" in lowered) else 1


def telling_map(maps: Mapping[str, FusionMap], frame_count: int) -> str | None:
    """The map that best says where the result came from: the index map for N frames, the decision map
    of a pair (an index map when a pair has none), else the first map in group order."""
    if not maps:
        return None
    preference = ("decision", "index") if frame_count == 2 else ("index", "decision")
    for kind in (*preference, "weight", "mask"):
        candidates = [name for name in maps if maps[name].kind == kind]
        if candidates:
            return sorted(candidates, key=lambda name: (_finality(name), list(maps).index(name)))[0]
    return grouped_names(maps)[0]


def legend_entries(overlay: OverlayState, names: Sequence[str], description: str = "") -> list[tuple[QColor, str]]:
    """(colour, "frame k: name") for each frame a map's colours stand for; for a mask, (colour of
    its 1, what it marks: the map's ``description``); empty when the colours stand for none of these.

    Index maps hold 0-based frame positions of the fused stack; the label uses the 1-based number of
    the list. A decision map of a pair is 1 where frame 1 was chosen and 0 where frame 2 was.
    """
    low, high = overlay.levels
    span = high - low if high > low else 1.0
    colormap = make_colormap(overlay.colormap, categories_for(overlay))

    def colour(value: float) -> QColor:
        rgb = colormap.map([min(max((value - low) / span, 0.0), 1.0)], mode="byte")[0]
        return QColor(int(rgb[0]), int(rgb[1]), int(rgb[2]))

    if overlay.kind == "mask":
        return [(colour(1.0), description or f"{overlay.name} is 1")]
    if overlay.kind == "index":
        values = [(float(k), k) for k in range(len(names))]
    elif overlay.kind in ("decision", "weight") and len(names) == 2:
        values = [(1.0, 0), (0.0, 1)]
    else:
        return []
    return [(colour(value), f"{frame + 1}: {names[frame]}") for value, frame in values]


def legend_title(overlay: OverlayState) -> str:
    """The legend's heading: what its colours say of a pixel."""
    if overlay.kind == "mask":
        return f"<b>{overlay.name}</b>: marked in colour"
    return f"<b>{overlay.name}</b>: pixel taken from frame"


class MapLegend(QWidget):
    """A colour swatch and "frame number: name" per frame of the shown map (the legend of an index map)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mapLegend")
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setHorizontalSpacing(6)
        self._grid.setVerticalSpacing(1)
        self.title = QLabel()
        self._labels: list[str] = []
        self.setVisible(False)

    def labels(self) -> list[str]:
        """The rows shown ("1: frame_a.png", …), for tests and screenshots."""
        return list(self._labels)

    def set_entries(self, title: str, entries: Sequence[tuple[QColor, str]]) -> None:
        while self._grid.count():
            item = self._grid.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None and widget is not self.title:
                widget.deleteLater()
        self._labels = [label for _, label in entries]
        if not entries:
            self.setVisible(False)
            return
        self.title.setText(title)
        self._grid.addWidget(self.title, 0, 0, 1, 4)
        shown = entries[:LEGEND_ROWS]
        rows = (len(shown) + 1) // 2  # two columns: a 10-frame legend stays short
        for position, (colour, label) in enumerate(shown):
            row, column = 1 + position % rows, 2 * (position // rows)
            swatch = QLabel()
            swatch.setFixedSize(14, 14)
            swatch.setStyleSheet(f"background: {colour.name()}; border: 1px solid #555;")
            text = QLabel(label)
            text.setToolTip(label)
            text.setWordWrap(len(shown) == 1)  # one long line (what a mask marks) wraps in the dock
            self._grid.addWidget(swatch, row, column)
            self._grid.addWidget(text, row, column + 1)
        if len(entries) > LEGEND_ROWS:
            self._grid.addWidget(QLabel(f"… and {len(entries) - LEGEND_ROWS} more frames"), rows + 1, 0, 1, 4)
        self.setVisible(True)
