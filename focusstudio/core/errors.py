"""Errors that reach the user as one clear line (CLI exit code 2, a dialog in the GUI)."""

from __future__ import annotations

from pathlib import Path


class FocusStudioError(Exception):
    """An error caused by the user's input or environment, with a one-line message."""

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = str(path) if path is not None else None
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class InputError(FocusStudioError):
    """An input file or folder cannot be used (missing, unreadable, wrong shape...)."""


class OutputError(FocusStudioError):
    """An output cannot be written (would overwrite an input or an existing file...)."""


class ParameterError(FocusStudioError):
    """A method parameter is unknown or out of range."""


class MethodUnavailableError(FocusStudioError):
    """A method cannot run here (e.g. its weights are missing)."""


class WeightsError(FocusStudioError):
    """A weights file is missing, corrupt or does not fit the network."""
