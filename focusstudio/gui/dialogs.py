"""Small dialogs: preferences (device, live updates), the About text, the file-problem report and
the question asked before results that were never exported are discarded."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from importlib import metadata

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from focusstudio import __version__
from focusstudio.core.device import DEVICE_CHOICES

DEVICE_LABELS = {
    "auto": "Automatic (CUDA, then Apple MPS, then CPU)",
    "cpu": "CPU",
    "cuda": "NVIDIA GPU (CUDA)",
    "mps": "Apple GPU (MPS)",
}


class PreferencesDialog(QDialog):
    """Where the work runs and whether post-processing sliders update the result live."""

    def __init__(self, device: str, live_update: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.device = QComboBox()
        self.device.setObjectName("deviceChoice")
        for choice in DEVICE_CHOICES:
            self.device.addItem(DEVICE_LABELS.get(choice, choice), choice)
        self.device.setCurrentIndex(max(0, self.device.findData(device)))
        self.device.setToolTip("A device that is not present is reported when a fusion starts")
        self.live = QCheckBox("Update the result while post-processing sliders move")
        self.live.setChecked(live_update)
        form = QFormLayout()
        form.addRow("Compute device", self.device)
        form.addRow("", self.live)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel("The device used by the last fusion is shown in the status bar."))
        layout.addWidget(buttons)

    def chosen_device(self) -> str:
        return str(self.device.currentData())


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def about_html(methods: Sequence[tuple[str, str, str]]) -> str:
    """Versions of FocusStudio and its main libraries, and each method with its description.

    ``methods`` are (name, title, description) triples. Versions come from package metadata,
    so torch is not imported just to show its version.
    """
    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import qVersion

    libraries = [
        ("Python", platform.python_version()),
        ("Qt", qVersion()),
        ("PySide6", pyside_version),
        ("pyqtgraph", _version("pyqtgraph")),
        ("superqt", _version("superqt")),
        ("NumPy", _version("numpy")),
        ("SciPy", _version("scipy")),
        ("OpenCV", _version("opencv-python-headless")),
        ("PyTorch", _version("torch")),
    ]
    rows = "".join(f"<tr><td>{name}</td><td>{version}</td></tr>" for name, version in libraries)
    method_rows = "".join(
        f"<li><b>{title}</b> (<code>{name}</code>): {description}</li>" for name, title, description in methods
    )
    return (
        f"<h3>FocusStudio {__version__}</h3>"
        "<p>Multi-focus image fusion (focus stacking): deep methods from the literature, classical "
        "baselines, quality metrics, a GUI and a CLI.</p>"
        f"<table>{rows}</table>"
        f"<p><b>Methods</b></p><ul>{method_rows or '<li>none registered</li>'}</ul>"
    )


def problems_text(problems: Sequence[object], loaded: int) -> str:
    """The one dialog's text: every bad file on its own line, then what did load."""
    lines = [f"• {problem}" for problem in problems]
    tail = (f"The other {loaded} frame{'s' if loaded != 1 else ''} were loaded." if loaded
            else "No frame could be loaded.")
    header = f"{len(problems)} file{'s' if len(problems) != 1 else ''} could not be used:"
    return "\n".join([header, *lines, "", tail])


def unexported_question(results: Sequence[tuple[str, str]], action: str) -> tuple[str, str]:
    """(title, text) of the question asked before ``action`` (e.g. "opening another stack")
    discards results never exported; ``results`` are (slot, method) pairs."""
    names = [f"result {slot} ({method})" for slot, method in results]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    one = len(names) == 1
    verb, it, they = ("has", "it", "it") if one else ("have", "them", "they")
    text = (
        f"{listed[0].upper()}{listed[1:]} {verb} not been exported.\n\n"
        f"Save exports {it} first, then goes on with {action}.\n"
        f"Discard goes on without {it}: {they} will be lost.\n"
        f"Cancel keeps {it} and goes back to the window."
    )
    return "Export the result first?" if len(names) == 1 else "Export the results first?", text
