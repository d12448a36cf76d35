"""No-reference quality metrics of each result (A and B), computed in the background.

The panel only shows numbers; the main window runs ``focusstudio.core.metrics`` in a worker and
fills the rows as results arrive.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

#: The metrics shown, as (key for ``compute_metrics``, column title, tooltip).
METRIC_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("Qabf", "Q^AB/F", "Edge-information preservation (Xydeas & Petrović); higher is better"),
    ("Qcb", "Q_cb", "Human-perception based (Chen & Blum); higher is better"),
    ("NCIE", "NCIE", "Nonlinear correlation information entropy; higher is better"),
    ("MI", "MI", "Mutual information between the result and the sources; higher is better"),
    ("Recall", "Recall", "Sharpness recall: how much of what was sharp in some frame is sharp in the result "
     "(0..1, 32-px blocks); higher is better. The blocks lost (under half the detail) are the lost_blocks overlay"),
)
METRIC_KEYS: tuple[str, ...] = tuple(key for key, _, _ in METRIC_COLUMNS)
SLOTS = ("A", "B")


class MetricsPanel(QWidget):
    """One row per result slot, one column per metric."""

    computeRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QTableWidget(len(SLOTS), 1 + len(METRIC_COLUMNS))
        self.table.setObjectName("metricsTable")
        self.table.setHorizontalHeaderLabels(["Result", *(title for _, title, _ in METRIC_COLUMNS)])
        for column, (_, _, tip) in enumerate(METRIC_COLUMNS, start=1):
            self.table.horizontalHeaderItem(column).setToolTip(tip)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.status = QLabel("Metrics appear here after a fusion.")
        self.auto = QCheckBox("Compute after each fusion")
        self.auto.setChecked(True)
        self.compute_button = QPushButton("Compute now")
        self.compute_button.clicked.connect(self.computeRequested)
        controls = QHBoxLayout()
        controls.addWidget(self.status, 1)
        controls.addWidget(self.auto)
        controls.addWidget(self.compute_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addWidget(self.table)
        layout.addLayout(controls)
        for row, slot in enumerate(SLOTS):
            self._set_row(row, f"{slot}: —", {})
        # Exactly the header and one row per slot: the strip should not take room from the image.
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        height = self.table.horizontalHeader().sizeHint().height() + sum(
            self.table.rowHeight(row) for row in range(len(SLOTS))) + 2 * self.table.frameWidth()
        self.table.setFixedHeight(height)
        self.setSizePolicy(self.sizePolicy().horizontalPolicy(), QSizePolicy.Policy.Maximum)

    def _set_row(self, row: int, label: str, cells: Mapping[str, str]) -> None:
        self.table.setItem(row, 0, QTableWidgetItem(label))
        for column, (key, _, _) in enumerate(METRIC_COLUMNS, start=1):
            item = QTableWidgetItem(cells.get(key, ""))
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, column, item)

    def set_pending(self, slot: str, label: str) -> None:
        self._set_row(SLOTS.index(slot), f"{slot}: {label}", {key: "…" for key in METRIC_KEYS})
        self.status.setText("Computing metrics in the background…")

    def set_values(self, slot: str, label: str, values: Mapping[str, float]) -> None:
        cells = {key: f"{values[key]:.4f}" for key in METRIC_KEYS if key in values}
        row = SLOTS.index(slot)
        self._set_row(row, f"{slot}: {label}", cells)
        if "Recall" in values and "Lost" in values:
            column = 1 + METRIC_KEYS.index("Recall")
            lost = values["Lost"]
            self.table.item(row, column).setToolTip(
                f"{lost:.1%} of the textured blocks lost: the lost_blocks overlay shows them in red"
                if lost == lost else "No textured block to measure")  # NaN: nothing to measure
        self.status.setText("Higher is better for every metric shown.")

    def set_error(self, message: str) -> None:
        self.status.setText(f"Metrics unavailable: {message}")

    def clear_slot(self, slot: str) -> None:
        self._set_row(SLOTS.index(slot), f"{slot}: —", {})

    def values(self, slot: str) -> dict[str, str]:
        row = SLOTS.index(slot)
        return {key: self.table.item(row, column).text() for column, (key, _, _) in
                enumerate(METRIC_COLUMNS, start=1)}

    def clear_all(self, slots: Sequence[str] = SLOTS) -> None:
        for slot in slots:
            self.clear_slot(slot)
