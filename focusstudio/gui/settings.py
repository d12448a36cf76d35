"""What the window remembers between sessions (QSettings) and per-method parameter presets (JSON).

Presets live in a JSON file in the user's config directory rather than in QSettings so they can
be read, shared and edited by hand, and later reused by the CLI.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

from focusstudio.core.device import DEVICE_CHOICES

ORGANISATION = "FocusStudio"
APPLICATION = "FocusStudio"
MAX_RECENT = 10
#: Version of the saved alignment values; 2: ecc_epsilon no longer rounded to 0 by its field.
ALIGNMENT_SETTINGS_VERSION = 2


class AppSettings:
    """Typed access to the window's QSettings (recent stacks, layout, last method, device)."""

    def __init__(self, path: str | Path | None = None) -> None:
        # An explicit ini file keeps tests and portable installs away from the user's registry.
        if path is None:
            self._settings = QSettings(ORGANISATION, APPLICATION)
        else:
            self._settings = QSettings(str(path), QSettings.Format.IniFormat)

    def sync(self) -> None:
        self._settings.sync()

    # ------------------------------------------------------------------ recent stacks
    def recent_stacks(self) -> list[list[str]]:
        """Most recent first; each entry is the list of paths that was opened together."""
        raw = self._settings.value("recent/stacks", "[]")
        try:
            entries = json.loads(str(raw))
        except json.JSONDecodeError:
            return []
        return [[str(p) for p in entry] for entry in entries if isinstance(entry, list) and entry]

    def add_recent_stack(self, paths: Sequence[str | Path]) -> None:
        entry = [str(p) for p in paths]
        if not entry:
            return
        entries = [e for e in self.recent_stacks() if e != entry]
        entries.insert(0, entry)
        self._settings.setValue("recent/stacks", json.dumps(entries[:MAX_RECENT]))

    def clear_recent_stacks(self) -> None:
        self._settings.setValue("recent/stacks", "[]")

    # ------------------------------------------------------------------ simple values
    @property
    def last_method(self) -> str | None:
        value = self._settings.value("method/last", None)
        return str(value) if value else None

    @last_method.setter
    def last_method(self, name: str) -> None:
        self._settings.setValue("method/last", name)

    @property
    def device(self) -> str:
        value = str(self._settings.value("compute/device", "auto"))
        return value if value in DEVICE_CHOICES else "auto"

    @device.setter
    def device(self, choice: str) -> None:
        if choice not in DEVICE_CHOICES:
            raise ValueError(f"unknown device {choice!r}")
        self._settings.setValue("compute/device", choice)

    @property
    def live_update(self) -> bool:
        return str(self._settings.value("compute/live_update", "true")).lower() == "true"

    @live_update.setter
    def live_update(self, enabled: bool) -> None:
        self._settings.setValue("compute/live_update", "true" if enabled else "false")

    @property
    def last_directory(self) -> str:
        return str(self._settings.value("paths/last_directory", ""))

    @last_directory.setter
    def last_directory(self, path: str) -> None:
        self._settings.setValue("paths/last_directory", path)

    @property
    def last_export_directory(self) -> str:
        """Where the last result was exported (kept apart from the folder stacks are opened from)."""
        return str(self._settings.value("paths/last_export_directory", ""))

    @last_export_directory.setter
    def last_export_directory(self, path: str) -> None:
        self._settings.setValue("paths/last_export_directory", path)

    # ------------------------------------------------------------------ values remembered across starts
    def _json(self, key: str) -> Any:
        try:
            return json.loads(str(self._settings.value(key, "null")))
        except json.JSONDecodeError:
            return None

    def method_values(self, method: str) -> dict[str, Any] | None:
        """The parameter values ``method`` had when the window last closed (None: never used)."""
        value = self._json(f"method_values/{method}")
        return value if isinstance(value, dict) else None

    def set_method_values(self, method: str, values: Mapping[str, Any]) -> None:
        self._settings.setValue(f"method_values/{method}", json.dumps(dict(values), default=str))

    def alignment(self) -> tuple[str | None, dict[str, Any]]:
        """(mode, settings) of the Alignment tab when the window last closed."""
        mode = self._settings.value("alignment/mode", None)
        values = self._json("alignment/values")
        values = values if isinstance(values, dict) else {}
        if self._settings.value("alignment/version", None) is None and values.get("ecc_epsilon") == 0.0:
            # Saved before version 2: the form rounded ecc_epsilon's default 1e-5 to 0 (4 decimals,
            # which made ECC run every iteration: issue 19); the old slider could not give 1e-5, so 0
            # there was the default, not a choice.
            del values["ecc_epsilon"]
        return (str(mode) if mode else None, values)

    def set_alignment(self, mode: str, values: Mapping[str, Any]) -> None:
        self._settings.setValue("alignment/mode", mode)
        self._settings.setValue("alignment/values", json.dumps(dict(values), default=str))
        self._settings.setValue("alignment/version", ALIGNMENT_SETTINGS_VERSION)

    # ------------------------------------------------------------------ window layout
    def window_geometry(self) -> QByteArray | None:
        value = self._settings.value("window/geometry", None)
        return value if isinstance(value, QByteArray) else None

    def window_state(self) -> QByteArray | None:
        value = self._settings.value("window/state", None)
        return value if isinstance(value, QByteArray) else None

    def save_window(self, geometry: QByteArray, state: QByteArray) -> None:
        self._settings.setValue("window/geometry", geometry)
        self._settings.setValue("window/state", state)


def default_presets_path() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir("focusstudio", appauthor=False)) / "presets.json"


class PresetStore:
    """Named parameter sets per method, stored as ``{method: {preset: {param: value}}}``."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_presets_path()

    def _read(self) -> dict[str, dict[str, dict[str, Any]]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, json.JSONDecodeError):
            # A damaged presets file must not stop the window from opening.
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: Mapping[str, Any]) -> None:
        # Imported here: the core's I/O (image codecs) is not needed to put the window on screen.
        from focusstudio.core.io import atomic_output

        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Atomic, so a crash never leaves half a presets file.
        with atomic_output(self.path, text=True) as stream:
            json.dump(data, stream, indent=2, sort_keys=True)

    def names(self, method: str) -> list[str]:
        return sorted(self._read().get(method, {}))

    def get(self, method: str, name: str) -> dict[str, Any]:
        return dict(self._read().get(method, {}).get(name, {}))

    def save(self, method: str, name: str, values: Mapping[str, Any]) -> None:
        data = self._read()
        data.setdefault(method, {})[name] = dict(values)
        self._write(data)

    def delete(self, method: str, name: str) -> None:
        data = self._read()
        if name in data.get(method, {}):
            del data[method][name]
            if not data[method]:
                del data[method]
            self._write(data)
