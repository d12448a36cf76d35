"""The application icon, in a module of its own: the start-up frame shows it before the window's
heavy imports (pyqtgraph, OpenCV, the core) have run."""

from __future__ import annotations

from PySide6.QtGui import QIcon


def resource_icon() -> QIcon:
    """The application icon (resources/icons/focusstudio.png: checkout, install or frozen app)."""
    from focusstudio.core.errors import FocusStudioError
    from focusstudio.resources import resources_dir

    try:
        candidate = resources_dir() / "icons" / "focusstudio.png"
    except FocusStudioError:
        return QIcon()
    return QIcon(str(candidate)) if candidate.is_file() else QIcon()
