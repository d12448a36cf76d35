"""Checks of the standalone bundle that ``packaging/build.sh`` builds into ``dist/FocusStudio``.

Skipped unless the bundle exists (``FOCUSSTUDIO_BUNDLE`` may point at another one-folder bundle).
Every run is isolated from this machine: a fresh home and data folders, proxies pointing at a dead
port and, where the kernel allows it (``unshare -n``), no network at all, so a bundle that tried
to download anything (torch hub weights, fonts, ...) would fail here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import focusstudio
from focusstudio.core.methods.registry import list_methods

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = Path(os.environ.get("FOCUSSTUDIO_BUNDLE", ROOT / "dist" / "FocusStudio"))
EXECUTABLE = BUNDLE / ("FocusStudio.exe" if sys.platform == "win32" else "FocusStudio")
# On Windows FocusStudio.exe is windowed (prints nothing); its console twin runs the command line.
CLI_EXECUTABLE = BUNDLE / "focusstudio-cli.exe" if sys.platform == "win32" else EXECUTABLE
BUNDLED_WEIGHTS = BUNDLE / "_internal" / "weights"
CLASSICAL_METHODS = ("sf", "laplacian", "gff")  # need no weights, so they always run
#: A port nothing listens on: any HTTP(S) request through the proxy fails at once.
DEAD_PROXY = "http://127.0.0.1:9"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not EXECUTABLE.is_file(), reason=f"no bundle at {EXECUTABLE} (bash packaging/build.sh)"),
]


def _isolated_env(tmp_path: Path, platform: str = "offscreen") -> dict[str, str]:
    """This process's environment minus everything that could make the bundle use local state."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FOCUSSTUDIO_", "PYTHON", "QT_", "XDG_", "TORCH"))
        and key.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    home = tmp_path / "home"
    for sub in ("data", "config", "cache"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_CACHE_HOME=str(home / "cache"),
        TORCH_HOME=str(home / "torch"),  # where torch hub would download to: must stay absent
        QT_QPA_PLATFORM=platform,
    )
    for key in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[key] = DEAD_PROXY
    return env


def _offline(command: list[str]) -> list[str]:
    """``command`` in a network namespace without interfaces when this machine allows it."""
    if sys.platform.startswith("linux") and shutil.which("unshare"):
        probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["unshare", "-n", *command]
    return command


def _run(arguments: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _offline([str(CLI_EXECUTABLE), *arguments]),
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )


def _shipped_weights() -> set[str]:
    return {path.stem for path in BUNDLED_WEIGHTS.glob("*.pt")} if BUNDLED_WEIGHTS.is_dir() else set()


def test_version_matches_the_source(tmp_path: Path) -> None:
    completed = _run(["--version"], _isolated_env(tmp_path))
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == f"focusstudio {focusstudio.__version__}", "stale bundle? rebuild it"


def test_methods_are_all_bundled_and_ready(tmp_path: Path) -> None:
    completed = _run(["methods", "--json"], _isolated_env(tmp_path))
    assert completed.returncode == 0, completed.stderr
    entries = {entry["name"]: entry for entry in json.loads(completed.stdout)}
    # A method missing here was not collected by PyInstaller (or the bundle predates it).
    assert set(entries) == set(list_methods())
    for name in CLASSICAL_METHODS:
        assert entries[name]["available"], entries[name]["reason"]
    for name in _shipped_weights() & set(entries):
        assert entries[name]["available"], f"{name}: weights shipped but unavailable: {entries[name]['reason']}"


def test_self_test_passes_offline(tmp_path: Path) -> None:
    env = _isolated_env(tmp_path)
    completed = _run(["--self-test"], env, timeout=1800)
    report = completed.stdout + completed.stderr
    assert completed.returncode == 0, report
    assert "self-test passed" in completed.stdout, report
    lines = {line.split()[0]: line for line in completed.stdout.splitlines()[1:] if line.startswith("  ")}
    for name in (*CLASSICAL_METHODS, *sorted(_shipped_weights() & set(lines))):
        assert lines[name].split()[1] == "ok", f"{name} did not run: {lines[name]}"
    assert not (tmp_path / "home" / "torch").exists(), "the bundle wrote to TORCH_HOME (a hub download?)"


def test_train_then_fuse_with_the_new_weights_offline(tmp_path: Path) -> None:
    """Training and a deep method run in the bundle whatever weights ship: torch's optimizers import
    torch._dynamo and sympy, which a too eager exclusion list breaks (it did once)."""
    import cv2

    images = tmp_path / "sharp"
    images.mkdir()
    rng = np.random.default_rng(0)
    for index in range(2):
        texture = cv2.GaussianBlur((rng.random((96, 96, 3)) * 255).astype(np.uint8), (0, 0), 1.0)
        cv2.imwrite(str(images / f"{index}.png"), texture)
    env = _isolated_env(tmp_path)
    weights = tmp_path / "out" / "gacn.pt"
    trained = _run(
        ["train", "--method", "gacn", "--data", str(images), "--out", str(weights), "--steps", "2",
         "--batch-size", "1", "--crop", "64", "--val-fraction", "0", "--run-dir", str(tmp_path / "run")],
        env, timeout=600,
    )
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert weights.is_file()
    fused_path = tmp_path / "fused.png"
    stack = BUNDLE / "_internal" / "resources" / "sample_stack"
    fused = _run(
        ["fuse", str(stack), "-o", str(fused_path), "--method", "gacn", "--weights", str(weights)], env, timeout=600
    )
    assert fused.returncode == 0, fused.stdout + fused.stderr
    image = cv2.imread(str(fused_path))
    frame = cv2.imread(str(sorted(stack.iterdir())[0]))
    assert image is not None and image.shape == frame.shape


def _free_display() -> int:
    for number in range(90, 140):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            return number
    pytest.skip("no free X display number")


def _wait_for_window(env: dict[str, str], process: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the bundle exited with {process.returncode}"
        tree = subprocess.run(
            ["xwininfo", "-root", "-tree"], env=env, capture_output=True, text=True, check=False
        ).stdout
        if "FocusStudio" in tree:
            return
        time.sleep(1.0)
    pytest.fail(f"no FocusStudio window after {timeout:.0f} s")


def test_window_opens_a_stack_under_xvfb(tmp_path: Path) -> None:
    """Start the bundle on a real X server with the sample stack, screenshot the screen, look at it."""
    tools = ("Xvfb", "xwininfo", "import")
    if not sys.platform.startswith("linux") or not all(shutil.which(tool) for tool in tools):
        pytest.skip(f"needs {', '.join(tools)} (apt-get install xvfb x11-utils imagemagick)")
    display = _free_display()
    env = _isolated_env(tmp_path, platform="xcb")
    env["DISPLAY"] = f":{display}"
    server = subprocess.Popen(["Xvfb", f":{display}", "-screen", "0", "1400x900x24", "-nolisten", "tcp"])
    stack = BUNDLE / "_internal" / "resources" / "sample_stack"
    app = None
    try:
        socket_path = Path(f"/tmp/.X11-unix/X{display}")
        for _ in range(100):
            if socket_path.exists():
                break
            time.sleep(0.1)
        # Not under unshare: the X server's abstract socket lives in this network namespace.
        app = subprocess.Popen(
            [str(EXECUTABLE), str(stack)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        _wait_for_window(env, app, timeout=120)
        time.sleep(5.0)  # let the stack load and the window paint
        assert app.poll() is None, f"the bundle exited with {app.returncode}"
        shot = tmp_path / "screen.png"
        subprocess.run(["import", "-display", f":{display}", "-window", "root", str(shot)], env=env, check=True)
        import cv2

        image = cv2.imread(str(shot), cv2.IMREAD_GRAYSCALE)
        assert image is not None and image.shape == (900, 1400)
        # A painted window has text, frames and the stack's pixels: far from a blank screen.
        assert float(np.std(image)) > 10.0
        assert len(np.unique(image)) > 64
    finally:
        output = ""
        if app is not None:
            app.terminate()
            try:
                output = app.communicate(timeout=20)[0]
            except subprocess.TimeoutExpired:
                app.kill()
                output = app.communicate()[0]
        server.terminate()
        server.wait(timeout=20)
    assert "Traceback" not in output, output
