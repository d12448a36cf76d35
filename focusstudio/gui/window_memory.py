"""The window's place on screen and the choices it remembers from one start to the next.

The first window fits the screen it opens on (a fixed 1500×950 put Cancel, the metrics and the
progress bar off a 1366×768 laptop screen); a remembered geometry is used only where it still fits
the available screen (a monitor may have gone). Parameters of every method used, the alignment mode
and settings, and the last method are kept in :class:`~focusstudio.gui.settings.AppSettings`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, QRect, QSize, Qt
from PySide6.QtGui import QGuiApplication

if TYPE_CHECKING:
    from focusstudio.gui.main_window import MainWindow

#: The first window's size where the screen allows (the layout was designed for it).
PREFERRED_SIZE = QSize(1500, 950)
#: Screens shorter than this (available pixels) start with the overlay histogram folded away.
SHORT_SCREEN = 900
#: Room left around a first window (the desktop's panels are already outside the available area).
SCREEN_MARGIN = 24



#: Version of the dock layout saved with the window state. Raise it whenever docks are added or
#: moved: a layout saved by an older version is then ignored (restoreState refuses another version)
#: instead of being restored around the new docks (a layout saved before the Retouch dock existed
#: came back with Retouch stacked under the overlays, squeezing the parameters to one row).
DOCK_LAYOUT_VERSION = 2

def available_rect(window: MainWindow) -> QRect:
    screen = window.screen() or QGuiApplication.primaryScreen()
    return screen.availableGeometry() if screen is not None else QRect(0, 0, 1500, 950)


def fitted_size(available: QRect) -> QSize:
    """The preferred size, shrunk to the available area less a margin."""
    return QSize(min(PREFERRED_SIZE.width(), available.width() - SCREEN_MARGIN),
                 min(PREFERRED_SIZE.height(), available.height() - SCREEN_MARGIN))


def fit_to_screen(window: MainWindow) -> None:
    """Keep the whole window (its frame included) inside the available screen area, centred when moved."""
    available = available_rect(window)
    frame = window.frameGeometry()
    if available.contains(frame):
        return
    extra_w = frame.width() - window.width()
    extra_h = frame.height() - window.height()
    width = min(window.width(), available.width() - extra_w)
    height = min(window.height(), available.height() - extra_h)
    window.resize(max(width, 320), max(height, 240))
    x = available.x() + max((available.width() - window.frameGeometry().width()) // 2, 0)
    y = available.y() + max((available.height() - window.frameGeometry().height()) // 2, 0)
    window.move(x, y)


def restore_layout(window: MainWindow) -> None:
    """The remembered geometry and dock layout, or a first layout fitted to the screen."""
    # The side columns run the full height and the metrics strip sits under the image only: the
    # right column's parameters, Fuse/Cancel and overlays then fit a 768-pixel screen.
    for corner, area in ((Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea),
                         (Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)):
        window.setCorner(corner, area)
    settings = window.app_settings
    geometry, state = settings.window_geometry(), settings.window_state()
    if geometry is None or not window.restoreGeometry(geometry):
        available = available_rect(window)
        size = fitted_size(available)
        window.resize(size)
        window.move(available.x() + (available.width() - size.width()) // 2,
                    available.y() + (available.height() - size.height()) // 2)
    fit_to_screen(window)
    # On a short screen the parameters need the room more than the histogram (one click away).
    window.layers_panel.levels_check.setChecked(available_rect(window).height() >= SHORT_SCREEN)
    if state is None or not window.restoreState(state, DOCK_LAYOUT_VERSION):
        # First start: a large viewer, the parameters taller than the overlay list, and a
        # metrics strip that does not eat the image (in proportion on a small screen).
        height = window.height()
        window.resizeDocks([window.stack_dock, window.method_dock], [260, 400], Qt.Orientation.Horizontal)
        window.resizeDocks([window.method_dock, window.layers_dock],
                           [round(height * 0.55), round(height * 0.38)], Qt.Orientation.Vertical)
        window.resizeDocks([window.metrics_dock], [min(130, round(height * 0.14))], Qt.Orientation.Vertical)


def restore_choices(window: MainWindow) -> None:
    """The alignment mode and settings (a method's values are restored when it is chosen)."""
    mode, values = window.app_settings.alignment()
    if mode is not None and window.align_mode.findData(mode) >= 0:
        window.align_mode.setCurrentIndex(window.align_mode.findData(mode))
    if values:
        window.align_form.set_values(values)


def save_choices(window: MainWindow) -> None:
    """Everything :func:`restore_layout` and :func:`restore_choices` read, written when the window closes."""
    settings = window.app_settings
    settings.save_window(QByteArray(window.saveGeometry()), QByteArray(window.saveState(DOCK_LAYOUT_VERSION)))
    method = window.workspace.method
    if method is not None:
        settings.last_method = method.name
        window.workspace.remember_values(window.param_form.values())
    for name, values in window.workspace.method_values.items():
        settings.set_method_values(name, values)
    settings.set_alignment(str(window.align_mode.currentData()), window.align_form.values())
    settings.sync()
