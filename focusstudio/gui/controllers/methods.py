"""The fusion method in the window: the method list, the parameter form it fills, presets and installed weights.

The chosen method and the values set for each method live in the workspace; this controller keeps
the method combo box, the parameter form, the preset list and the weights chooser in step with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import QInputDialog

from focusstudio.core.errors import FocusStudioError

if TYPE_CHECKING:
    from focusstudio.gui.main_window import MainWindow


class MethodController(QObject):
    """Lists the methods (unavailable ones disabled, with the reason), switches between them, and
    saves, applies and deletes presets of the current one."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.workspace = window.workspace
        # Which parameters a run would use depends on the frames too (N-frame strategies).
        self.workspace.events.selection_changed.connect(lambda *_args: self.update_unused())

    # ------------------------------------------------------------------ the method list
    def populate(self) -> None:
        from focusstudio.core.methods.registry import get_method, list_methods

        combo = self.window.method_combo
        combo.blockSignals(True)
        combo.clear()
        model = combo.model()
        assert isinstance(model, QStandardItemModel)
        for name in list_methods():
            method = get_method(name)
            try:
                available, reason = method.availability()
            except Exception as error:  # a broken method must not stop the window from opening
                available, reason = False, str(error)
            label = f"{method.title} ({name})" if available else f"{method.title} ({name}) — unavailable"
            combo.addItem(label, name)
            row = combo.count() - 1
            item = model.item(row)
            item.setToolTip(method.description if available else f"Unavailable: {reason}")
            item.setEnabled(available)
        combo.blockSignals(False)
        wanted = self.window.app_settings.last_method
        preferred = [wanted, "sf"] + [combo.itemData(i) for i in range(combo.count())]
        for name in preferred:
            index = combo.findData(name)
            if name and index >= 0 and model.item(index).isEnabled():
                combo.setCurrentIndex(index)
                break
        self.on_method_chosen(combo.currentIndex())

    def method_names(self) -> list[str]:
        combo = self.window.method_combo
        return [combo.itemData(i) for i in range(combo.count())]

    def select_method(self, name: str) -> None:
        index = self.window.method_combo.findData(name)
        if index < 0:
            raise FocusStudioError(f"unknown method '{name}'; valid: {', '.join(self.method_names())}")
        self.window.method_combo.setCurrentIndex(index)

    def on_method_chosen(self, index: int) -> None:
        from focusstudio.core.methods.registry import get_method

        window, workspace = self.window, self.workspace
        name = window.method_combo.itemData(index)
        if not name:
            workspace.choose_method(None)
            return
        # The values of the method left are remembered, so coming back to it restores them.
        previous_values = window.param_form.values() if workspace.method is not None else None
        method = get_method(name)
        workspace.choose_method(method, previous_values)
        window.method_description.setText(method.description)
        window.weights_chooser.set_method(method)
        window.param_form.blockSignals(True)
        window.param_form.set_params(method.params)
        # This session's values, else those the method had when the window last closed.
        remembered = workspace.values_for(name) or window.app_settings.method_values(name)
        if remembered:
            window.param_form.set_values(remembered)
        window.param_form.blockSignals(False)
        self.update_unused()
        self.fill_presets()
        window.app_settings.last_method = name

    def update_unused(self) -> None:
        """Grey the parameters the method says a run of the selected frames with these values would
        not use (e.g. the post-processing of an N-frame strategy that has none), saying why."""
        method, form = self.workspace.method, self.window.param_form
        if method is None:
            return
        frames = len(self.workspace.active_indices) if self.workspace.stack is not None else 0
        form.set_unused(method.unused_params(form.values(), frames))

    # ------------------------------------------------------------------ presets
    def fill_presets(self) -> None:
        combo, method = self.window.preset_combo, self.workspace.method
        combo.clear()
        combo.addItem("(choose a preset)", None)
        if method is not None:
            for name in self.window.presets.names(method.name):
                combo.addItem(name, name)

    def on_preset_chosen(self, index: int) -> None:
        name = self.window.preset_combo.itemData(index)
        method = self.workspace.method
        if name and method is not None:
            skipped = self.window.param_form.set_values(self.window.presets.get(method.name, name))
            message = f"Preset '{name}' applied"
            if skipped:
                message += f" (ignored: {', '.join(skipped)})"
            self.window.statusBar().showMessage(message, 5000)

    def save_preset_dialog(self) -> None:
        method = self.workspace.method
        if method is None:
            return
        name, accepted = QInputDialog.getText(self.window, "Save preset", f"Name of the {method.title} preset:")
        if accepted and name.strip():
            self.save_preset(name.strip())

    def save_preset(self, name: str) -> None:
        method = self.workspace.method
        assert method is not None
        self.window.presets.save(method.name, name, self.window.param_form.values())
        self.fill_presets()
        self.window.preset_combo.setCurrentIndex(self.window.preset_combo.findData(name))

    def delete_preset(self) -> None:
        name = self.window.preset_combo.currentData()
        method = self.workspace.method
        if name and method is not None:
            self.window.presets.delete(method.name, name)
            self.fill_presets()

    # ------------------------------------------------------------------ installed weights
    def on_weights_installed(self, method: str, name: str) -> None:
        self.refresh_weights()
        current = self.workspace.method
        if current is not None and current.name == method:
            self.window.weights_chooser.select(name)
        self.window.statusBar().showMessage(f"Weights “{name}” saved for {method}", 6000)

    def refresh_weights(self) -> None:
        """Installed weights changed: method availability and the weights list follow."""
        current = self.workspace.method.name if self.workspace.method is not None else None
        self.populate()
        combo = self.window.method_combo
        index = combo.findData(current) if current is not None else -1
        model = combo.model()
        if index >= 0 and isinstance(model, QStandardItemModel) and model.item(index).isEnabled():
            combo.setCurrentIndex(index)  # still usable: stay on it
        self.window.weights_chooser.refresh()

    def on_weights_chosen(self, _name: object) -> None:
        if self.workspace.results:
            self.window.statusBar().showMessage("Weights changed: press Fuse to update the result", 6000)
