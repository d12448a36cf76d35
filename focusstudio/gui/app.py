"""Start the FocusStudio window (``focusstudio gui PATH...`` and the frozen app call :func:`main`).

``main(paths, screenshot=OUT)`` is also a headless entry for checks and documentation: it opens
the stack, runs the fusion through the real worker, shows the named overlay, saves a screenshot
of the whole window and exits (works with ``QT_QPA_PLATFORM=offscreen`` and under Xvfb).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from PySide6.QtCore import QBuffer, QEventLoop, QIODevice, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication, QLabel, QVBoxLayout, QWidget

from focusstudio import __version__
from focusstudio.core.errors import OutputError
from focusstudio.gui.icon import resource_icon
from focusstudio.gui.settings import APPLICATION, ORGANISATION, AppSettings

#: Give up on a screenshot run after this long (a stuck fusion must not hang a CI job).
SCREENSHOT_TIMEOUT_S = 900


def create_application(argv: Sequence[str] | None = None, views: bool = True) -> QApplication:
    """The QApplication (reused when one exists), named so QSettings find their place.

    ``views``: also configure the image views (imports pyqtgraph, ~1 s of a cold start); the app
    itself does that after its start-up frame is on screen (:func:`configure_views`)."""
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(list(argv or [sys.argv[0]]))
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationVersion(__version__)
    app.setWindowIcon(resource_icon())
    if views:
        configure_views()
    return app


def configure_views() -> None:
    """pyqtgraph's options for the image views (before the first view is made)."""
    import pyqtgraph as pg

    pg.setConfigOptions(imageAxisOrder="row-major")


def show_startup_frame(settings: AppSettings) -> QWidget:
    """A plain window where the main window will be, painted now, before the heavy imports.

    Importing the window's libraries (pyqtgraph, OpenCV, the core) takes seconds on a cold or
    busy machine; the user sees the application start at once instead of nothing."""
    frame = QWidget()
    frame.setWindowTitle("FocusStudio")
    geometry = settings.window_geometry()
    if geometry is None or not frame.restoreGeometry(geometry):
        screen = QApplication.primaryScreen()
        available = screen.availableGeometry() if screen is not None else None
        width = min(1500, int(available.width() * 0.9)) if available is not None else 1500
        height = min(950, int(available.height() * 0.9)) if available is not None else 950
        frame.resize(width, height)
    layout = QVBoxLayout(frame)
    label = QLabel("Starting FocusStudio…")
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setStyleSheet("color: #9aa0a6; font-size: 15px;")
    layout.addWidget(label)
    frame.show()
    QApplication.processEvents()
    frame.repaint()  # painted now, not when the event loop next runs (after the imports)
    return frame


def explaining_map(maps: Mapping[str, Any]) -> str | None:
    """The map that explains a result best: the final decision (or index) map, not a raw one."""
    candidates = [name for name, fusion_map in maps.items() if fusion_map.kind in ("decision", "index")]
    final = [name for name in candidates if not name.endswith("_raw")]
    return (final or candidates or [None])[0]


class ScreenshotRun(QObject):
    """Drive the window through open → fuse → overlay → screenshot → close, via its signals."""

    #: (exit code) the screenshot was written (or the run failed) and the window closed.
    finished = Signal(int)

    def __init__(
        self,
        window: Any,
        paths: Sequence[str],
        output: Path,
        overlay: str | None = None,
        fuse: bool = True,
        params: Mapping[str, Any] | None = None,
        settle_ms: int = 400,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.paths = list(paths)
        self.output = output
        self.overlay = overlay
        self.fuse = fuse
        self.params = dict(params or {})
        self.settle_ms = settle_ms
        self.exit_code = 0
        window.confirm_discard = False  # a scripted run closes the window without asking
        window.stackLoaded.connect(self._on_loaded)
        window.resultReady.connect(self._on_result)
        window.jobFailed.connect(self._on_failed)
        self._timeout = QTimer(self)
        self._timeout.setSingleShot(True)
        self._timeout.timeout.connect(self._on_timeout)

    def start(self) -> None:
        self._timeout.start(SCREENSHOT_TIMEOUT_S * 1000)
        if self.paths:
            self.window.open_paths(self.paths)
        else:
            self._capture_later()

    def _on_loaded(self) -> None:
        if self.params:
            self.window.param_form.set_values(self.params)
        if self.fuse and self.window.fuse() is not None:
            return
        self._capture_later()

    def _on_result(self, _slot: str) -> None:
        maps = self.window.shown_maps()
        name = self.overlay
        if name is None:
            name = explaining_map(maps)
        if name is not None:
            if name not in maps:
                print(f"focusstudio: no map named {name!r}; maps: {', '.join(maps) or 'none'}", file=sys.stderr)
                self.exit_code = 2
            else:
                self.window.state.show_only(name)
        self._capture_later()

    def _on_failed(self, message: str) -> None:
        print(f"focusstudio: {message}", file=sys.stderr)
        self.exit_code = 1
        self._capture_later()

    def _on_timeout(self) -> None:
        print("focusstudio: screenshot run timed out", file=sys.stderr)
        self.exit_code = 1
        self._capture()

    def _capture_later(self) -> None:
        # Let pending paints and the frame-display jobs finish before grabbing.
        QTimer.singleShot(self.settle_ms, self._capture)

    def _capture(self) -> None:
        self._timeout.stop()
        self.output.parent.mkdir(parents=True, exist_ok=True)
        # Through the output policy: never one of the opened files, atomic (replacing is the
        # documented behaviour of --screenshot, so force).
        buffer = QBuffer()
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        try:
            if not self.window.grab().save(buffer, (self.output.suffix.lstrip(".") or "png").upper()):
                raise OutputError("cannot encode the screenshot in this format", self.output)
            from focusstudio.core.io.output_policy import publish_bytes

            publish_bytes(self.output, bytes(buffer.data().data()), inputs=self.paths, force=True,
                          role="the screenshot")
        except OutputError as error:
            print(f"focusstudio: could not write {error}", file=sys.stderr)
            self.exit_code = 1
        self.window.close()
        self.finished.emit(self.exit_code)


def main(
    paths: list[str],
    *,
    method: str | None = None,
    overlay: str | None = None,
    screenshot: str | Path | None = None,
    params: Mapping[str, Any] | None = None,
    fuse: bool = True,
) -> int:
    """Open the window (with ``paths`` when given) and run until it closes; returns the exit code.

    With ``screenshot``, run headless: open ``paths``, fuse with ``method`` (unless ``fuse`` is
    False), show ``overlay``, save the window to ``screenshot`` and exit.
    """
    from focusstudio.core.errors import FocusStudioError
    from focusstudio.gui.preload import preload_deep_runtime

    app = create_application(views=False)
    # On screen first (within a second of the start), then the heavy imports and the real window.
    frame = show_startup_frame(AppSettings()) if screenshot is None else None
    configure_views()
    from focusstudio.gui.main_window import MainWindow

    window = MainWindow()
    if method is not None:
        try:
            window.select_method(method)
        except FocusStudioError as error:
            print(f"focusstudio: error: {error}", file=sys.stderr)
            if frame is not None:
                frame.close()
            return 2
    window.show()
    if frame is not None:
        frame.close()
    if screenshot is not None:
        run = ScreenshotRun(window, paths, Path(screenshot), overlay, fuse, params)
        # A local event loop, not app.exec()/app.exit(): exiting the application's loop would
        # also end every later event loop of a host that embeds this call (a test session).
        loop = QEventLoop()
        run.finished.connect(loop.exit)
        QTimer.singleShot(0, run.start)
        loop.exec()
        return run.exit_code
    if paths:
        window.open_paths(paths)
    preload_deep_runtime()
    exit_now(app.exec())
    return 0  # not reached


def exit_now(code: int) -> NoReturn:
    """End the process once the window has closed, skipping Python's own shutdown.

    The window saved its settings and stopped its jobs when it closed. Python's shutdown with
    torch loaded then takes 0.5–2.5 s more, and a cancelled job still inside one long library
    call would hold the process until that call returns; a quit must take under a second."""
    import contextlib
    import logging
    import os

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken stream: nothing to say
            stream.flush()
    os._exit(code)
