"""Where FocusStudio's data files live: a source checkout, an installed copy or a frozen app.

``resources/`` and ``weights/`` sit at the top of the project (fixed layout). A PyInstaller bundle
puts them under ``sys._MEIPASS``. The environment variables ``FOCUSSTUDIO_RESOURCES_DIR`` and
``FOCUSSTUDIO_WEIGHTS_DIR`` override both.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from focusstudio.core.errors import FocusStudioError


def _candidates(folder: str, env_var: str) -> list[Path]:
    found: list[Path] = []
    override = os.environ.get(env_var)
    if override:
        found.append(Path(override))
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        found.append(Path(frozen_root) / folder)
    found.append(Path(__file__).resolve().parent.parent / folder)
    found.append(Path(sys.prefix) / "share" / "focusstudio" / folder)
    return found


def resources_dir() -> Path:
    for candidate in _candidates("resources", "FOCUSSTUDIO_RESOURCES_DIR"):
        if candidate.is_dir():
            return candidate
    raise FocusStudioError("the resources folder was not found (set FOCUSSTUDIO_RESOURCES_DIR)")


def weights_dir() -> Path:
    """The folder with the shipped weights and their manifest (may not exist in a bare install)."""
    candidates = _candidates("weights", "FOCUSSTUDIO_WEIGHTS_DIR")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return candidates[-2]


def sample_stack_dir() -> Path:
    folder = resources_dir() / "sample_stack"
    if not folder.is_dir():
        raise FocusStudioError(f"{folder}: the bundled sample stack is missing")
    return folder
