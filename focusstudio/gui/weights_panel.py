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
    QFileDialog,
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
    default_user_weights,
    delete_user_weights,
    install_user_weights,
    list_installed_weights,
    rename_user_weights,
    resolve_weights,
    set_default_user_weights,
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
        self.load_button = QPushButton("Load…")
        self.load_button.setObjectName("loadWeightsButton")
        self.load_button.setToolTip("Load weights file…: a .pt file trained elsewhere (focusstudio train, a colleague)")
        self.load_button.clicked.connect(self.load_dialog)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Weights"))
        layout.addWidget(self.combo, 1)
        layout.addWidget(self.load_button)
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
                default_path: object = resolve_weights(method.name).path
                default = resolve_weights(method.name).label
            except FocusStudioError:
                default_path = None  # no default: the user picks weights by name (said in the sidecar)
            installed = list_installed_weights(method.name)
            if default_path is not None:
                self.combo.addItem(f"Default: {default}", None)
            elif not installed:
                self.combo.addItem("Default (none installed: train or Load…)", None)
            for weights in installed:
                if default_path is not None and weights.path == default_path:
                    continue  # the default item already is this file: never listed twice
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
        if index < 0 and name and self._method is not None and self.combo.findData(None) == 0:
            default = default_user_weights(self._method.name)
            index = 0 if default is not None and default.name == name else -1  # the default item
        if index < 0:
            return False
        self.combo.setCurrentIndex(index)
        self.choiceChanged.emit(self.current_reference())
        return True

    def load_dialog(self) -> None:
        """Load weights file…: pick a .pt, name it, and say whether it becomes the method's default."""
        if self._method is None:
            return
        path, _ = QFileDialog.getOpenFileName(self, f"Load {self._method.name} weights", "",
                                              "FocusStudio weights (*.pt);;All files (*)")
        if not path:
            return
        from pathlib import Path

        name, accepted = QInputDialog.getText(self, "Name these weights", "Name:", text=Path(path).stem)
        if not accepted or not name.strip():
            return
        answer = QMessageBox.question(
            self, "Make them the default?",
            f"Use “{name.strip()}” whenever {self._method.name} runs without a choice of weights?\n"
            "(No: they are listed and used only when you choose them.)")
        try:
            self.load_file(path, name, answer == QMessageBox.StandardButton.Yes)
        except FocusStudioError as error:
            QMessageBox.warning(self, "Cannot load these weights", str(error))

    def load_file(self, path: str, name: str, make_default: bool = False) -> InstalledWeights:
        """Install ``path`` as the user's weights ``name`` of the method shown and choose them; the
        default changes only with ``make_default`` (the user said so)."""
        assert self._method is not None
        installed = install_user_weights(path, name, self._method.name)
        if make_default:
            set_default_user_weights(self._method.name, installed.name)
        self.refresh()
        self.select(installed.name)
        self.weightsEdited.emit()
        return installed

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
        self.default_button = QPushButton("Make default")
        self.default_button.setToolTip(
            f"Use these weights whenever {method} runs without a choice (no shipped weights)")
        self.default_button.clicked.connect(self.make_default)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(self.rename_button)
        row.addWidget(self.delete_button)
        row.addWidget(self.default_button)
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
        default = default_user_weights(self.method)
        is_default = weights is not None and default is not None and default.name == weights.name
        self.default_button.setEnabled(weights is not None)
        self.default_button.setText("No longer default" if is_default else "Make default")
        self.details.setText("" if weights is None else f"{weights.summary}\n{weights.path}")

    def rename(self, new_name: str) -> None:
        weights = self.selected()
        if weights is not None:
            rename_user_weights(weights.name, new_name)
            self.edited = True
            self.fill()

    def make_default(self) -> None:
        """The selected weights become the method's default (or stop being it)."""
        weights = self.selected()
        if weights is None:
            return
        default = default_user_weights(self.method)
        set_default_user_weights(self.method, None if default is not None and default.name == weights.name
                                 else weights.name)
        self.edited = True
        self._show_details()

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
