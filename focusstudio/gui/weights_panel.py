"""Choosing, renaming and deleting the weights of a deep method in the window.

The choices are :func:`focusstudio.core.weights.list_installed_weights` (shipped weights and the
user's own, e.g. from the training wizard); the chosen *name* is what a fusion request carries,
so the sidecar and the reproduce command say ``--weights NAME`` exactly as the CLI accepts it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from focusstudio.core.errors import FocusStudioError
from focusstudio.core.methods.base import FusionMethod
from focusstudio.core.weights import (
    InstalledWeights,
    delete_user_weights,
    list_installed_weights,
    rename_user_weights,
    resolve_weights,
)


class WeightsChooser(QWidget):
    """"Weights: [default ▾] [Manage…]" for the chosen method (hidden for classical methods)."""

    #: (name or None) the user picked other weights (None = the method's default).
    choiceChanged = Signal(object)
    #: User weights were renamed or deleted here (other lists may need a refresh).
    weightsEdited = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._method: FusionMethod | None = None
        self.combo = QComboBox()
        self.combo.setObjectName("weightsCombo")
        self.combo.setToolTip("Which trained weights the method uses (yours appear here after training)")
        self.combo.activated.connect(lambda _index: self.choiceChanged.emit(self.current_reference()))
        self.manage_button = QPushButton("Manage…")
        self.manage_button.setToolTip("Rename or delete your own weights")
        self.manage_button.clicked.connect(self.manage)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Weights"))
        layout.addWidget(self.combo, 1)
        layout.addWidget(self.manage_button)
        self.setVisible(False)

    def set_method(self, method: FusionMethod | None) -> None:
        self._method = method
        self.refresh()

    def refresh(self) -> None:
        """Re-read the installed weights, keeping the current choice when it still exists."""
        previous = self.current_reference()
        method = self._method
        deep = method is not None and method.family == "deep"
        self.setVisible(deep)
        self.combo.blockSignals(True)
        self.combo.clear()
        if method is not None and deep:
            try:
                default = resolve_weights(method.name).label
            except FocusStudioError:
                default = "none installed"
            self.combo.addItem(f"Default ({default})", None)
            for weights in list_installed_weights(method.name):
                self.combo.addItem(weights.label, weights.name)
                self.combo.setItemData(self.combo.count() - 1, weights.summary or str(weights.path),
                                       Qt.ItemDataRole.ToolTipRole)
            index = self.combo.findData(previous) if previous is not None else 0
            self.combo.setCurrentIndex(max(index, 0))
        self.combo.blockSignals(False)
        has_user = deep and method is not None and any(
            w.source == "user" for w in list_installed_weights(method.name))
        self.manage_button.setEnabled(has_user)

    def current_reference(self) -> str | None:
        """The chosen weights' name, or None for the method's default."""
        data = self.combo.currentData()
        return str(data) if data else None

    def select(self, name: str | None) -> bool:
        index = self.combo.findData(name) if name else 0
        if index < 0:
            return False
        self.combo.setCurrentIndex(index)
        self.choiceChanged.emit(self.current_reference())
        return True

    def manage(self) -> None:
        if self._method is None:
            return
        dialog = WeightsManagerDialog(self._method.name, self)
        dialog.exec()
        if dialog.edited:
            self.refresh()
            self.weightsEdited.emit()


class WeightsManagerDialog(QDialog):
    """The user's own weights of one method, with Rename and Delete."""

    def __init__(self, method: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Your {method} weights")
        self.method = method
        self.edited = False
        self.listing = QListWidget()
        self.listing.setObjectName("userWeightsList")
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.rename_button = QPushButton("Rename…")
        self.rename_button.clicked.connect(self._ask_rename)
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(self._ask_delete)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(self.rename_button)
        row.addWidget(self.delete_button)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.listing, 1)
        layout.addWidget(self.details)
        layout.addLayout(row)
        layout.addWidget(buttons)
        self.listing.currentItemChanged.connect(lambda *_: self._show_details())
        self.fill()

    def fill(self) -> None:
        self.listing.clear()
        for weights in list_installed_weights(self.method):
            if weights.source != "user":
                continue
            item = QListWidgetItem(weights.name)
            item.setData(Qt.ItemDataRole.UserRole, weights)
            self.listing.addItem(item)
        if self.listing.count():
            self.listing.setCurrentRow(0)
        self._show_details()

    def selected(self) -> InstalledWeights | None:
        item = self.listing.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def _show_details(self) -> None:
        weights = self.selected()
        self.rename_button.setEnabled(weights is not None)
        self.delete_button.setEnabled(weights is not None)
        self.details.setText("" if weights is None else f"{weights.summary}\n{weights.path}")

    def rename(self, new_name: str) -> None:
        weights = self.selected()
        if weights is not None:
            rename_user_weights(weights.name, new_name)
            self.edited = True
            self.fill()

    def delete(self) -> None:
        weights = self.selected()
        if weights is not None:
            delete_user_weights(weights.name)
            self.edited = True
            self.fill()

    def _ask_rename(self) -> None:
        weights = self.selected()
        if weights is None:
            return
        name, accepted = QInputDialog.getText(self, "Rename weights", "New name:", text=weights.name)
        if accepted and name.strip():
            try:
                self.rename(name)
            except FocusStudioError as error:
                QMessageBox.warning(self, "Cannot rename", str(error))

    def _ask_delete(self) -> None:
        weights = self.selected()
        if weights is None:
            return
        answer = QMessageBox.question(self, "Delete weights", f"Delete the weights “{weights.name}”?\n{weights.path}")
        if answer == QMessageBox.StandardButton.Yes:
            try:
                self.delete()
            except FocusStudioError as error:
                QMessageBox.warning(self, "Cannot delete", str(error))
