"""GUI tests: offscreen Qt, failing on Qt warnings and on background work left running.

Every test here gets an isolated QSettings/presets location, and the fake methods of
:mod:`tests.gui.fakes` registered for its duration only (the registry is restored after).
"""

from __future__ import annotations

import os

# Must happen before anything imports Qt: no window system is needed (or used) by these tests.
os.environ["QT_QPA_PLATFORM"] = "offscreen"

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")
pytest.importorskip("superqt")
pytest.importorskip("qimage2ndarray")

from PySide6.QtCore import QSettings, QThreadPool

from tests.gui import fakes

GUI_TESTS = Path(__file__).resolve().parent

#: Messages the offscreen platform prints for every top-level window; harmless.
IGNORED_QT_MESSAGES = (
    r"This plugin does not support propagateSizeHints\(\)",
    r"This plugin does not support raise\(\)",
    r"QFont::setPointSizeF: Point size <= 0",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if GUI_TESTS in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.qt_log_level_fail("WARNING"))
            item.add_marker(pytest.mark.qt_log_ignore(*IGNORED_QT_MESSAGES))


@pytest.fixture(scope="session", autouse=True)
def torch_imported() -> None:
    """Import torch once up front: the pipeline resolves the device with it, and a first import
    inside a test (seconds on a busy machine) would eat the time limits of the waits."""
    pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """QSettings and the presets file live in a fresh folder, never in the user's config."""
    folder = tmp_path_factory.mktemp("config")
    for settings_format in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(settings_format, QSettings.Scope.UserScope, str(folder))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder))
    return folder


@pytest.fixture(autouse=True)
def no_dangling_threads(qapp: object) -> Iterator[None]:
    """Fail a test that leaves a worker running or a Python thread behind.

    Once its workers are done, automatic garbage collection (turned off while the window has
    background jobs, :mod:`focusstudio.gui.gc_policy`) is back on for the next test."""
    from focusstudio.gui.gc_policy import restore_automatic_collection

    before = {thread.ident for thread in threading.enumerate()}
    yield
    drained = QThreadPool.globalInstance().waitForDone(2000)
    restore_automatic_collection()
    leftover = [
        thread.name
        for thread in threading.enumerate()
        if thread.ident not in before and not thread.daemon and not isinstance(thread, threading._DummyThread)
    ]
    assert drained, "a background job was still running 2 s after the test ended"
    assert not leftover, f"threads left running: {leftover}"


@pytest.fixture(autouse=True)
def no_modal_dialogs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A message box nobody expected fails the test instead of blocking it forever (a modal
    dialog under the offscreen platform never closes). Tests that expect one patch it themselves."""
    from PySide6.QtWidgets import QMessageBox

    shown: list[str] = []

    def record(kind: str) -> Callable[..., QMessageBox.StandardButton]:
        def show(_parent: object, title: str, text: str, *args: object, **kwargs: object) -> QMessageBox.StandardButton:
            shown.append(f"{kind}: {title}: {text}")
            return QMessageBox.StandardButton.Ok

        return show

    for kind in ("critical", "warning", "information", "question"):
        monkeypatch.setattr(QMessageBox, kind, record(kind))
    yield shown
    assert not shown, f"unexpected message box(es): {shown}"


@pytest.fixture(autouse=True)
def fake_methods(monkeypatch: pytest.MonkeyPatch) -> type[fakes.FakeMethod]:
    """Register the fake methods for this test only and reset their call counters."""
    from focusstudio.core.methods import registry

    registry.list_methods()  # load the real methods first so ours come after them
    for cls in (fakes.FakeMethod, fakes.SlowMethod, fakes.UnavailableMethod):
        monkeypatch.setitem(registry._SPECS, cls.name, registry.MethodSpec.of(cls))
    fakes.reset_counters()
    return fakes.FakeMethod


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    return tmp_path / "focusstudio.ini"


@pytest.fixture
def make_window(qtbot: object, settings_file: Path, tmp_path: Path) -> Iterator[Callable[..., object]]:
    """Factory for MainWindow instances that are closed (and their jobs stopped) after the test."""
    from focusstudio.gui.main_window import MainWindow
    from focusstudio.gui.settings import AppSettings, PresetStore

    windows: list[MainWindow] = []

    def make(method: str = fakes.FakeMethod.name) -> MainWindow:
        window = MainWindow(AppSettings(settings_file), PresetStore(tmp_path / "presets.json"))
        qtbot.addWidget(window)  # type: ignore[attr-defined]
        # pytest-qt closes the window after the test: results must then go without a question. The
        # tests of that question (test_window_trust.py) turn it back on.
        window.confirm_discard = False
        if method:
            window.select_method(method)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()


@pytest.fixture
def window(make_window: Callable[..., object]) -> object:
    return make_window()


def write_synthetic_stack(folder: Path, count: int = 3, size: int = 48, dtype: str = "uint8") -> list[Path]:
    """``count`` PNG frames of a tiny synthetic focus stack: frame i sharp on its own vertical band."""
    rng = np.random.default_rng(7)
    sharp = rng.random((size, size, 3)).astype(np.float32)
    blurred = cv2.GaussianBlur(sharp, (0, 0), 2.0)
    band = size // count
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    scale = 255.0 if dtype == "uint8" else 65535.0
    for index in range(count):
        frame = blurred.copy()
        frame[:, index * band:(index + 1) * band] = sharp[:, index * band:(index + 1) * band]
        pixels = np.round(frame * scale).astype(np.uint8 if dtype == "uint8" else np.uint16)
        path = folder / f"frame_{index + 1}.png"
        cv2.imwrite(str(path), pixels[..., ::-1])
        paths.append(path)
    return paths


@pytest.fixture
def stack_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "stack"
    write_synthetic_stack(folder)
    return folder


def open_and_wait(qtbot: object, window: object, paths: list[str] | list[Path], add: bool = False) -> None:
    with qtbot.waitSignal(window.stackLoaded, timeout=10000):  # type: ignore[attr-defined]
        window.open_paths([str(p) for p in paths], add=add)  # type: ignore[attr-defined]


def fuse_and_wait(qtbot: object, window: object, slot: str | None = None) -> None:
    with qtbot.waitSignal(window.resultReady, timeout=20000):  # type: ignore[attr-defined]
        assert window.fuse(slot) is not None  # type: ignore[attr-defined]
