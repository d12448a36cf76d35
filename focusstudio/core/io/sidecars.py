"""Recognise FocusStudio's own results by the JSON sidecar written next to every export.

The window writes ``result.png`` with ``result.png.json`` beside it (the method, parameters and
sources that made it). A folder opened as a stack must never take such a result for a frame: the
next fusion would then fuse the old result with its own sources (and align and crop them).
"""

from __future__ import annotations

import json
from pathlib import Path

#: A sidecar is a few kilobytes; anything much larger is not ours (and is not read whole).
MAX_SIDECAR_BYTES = 4 * 2**20
#: Keys every sidecar holds (``FusionResult.provenance()``).
_SIDECAR_KEYS = ("focusstudio", "method", "sources")


def sidecar_path(image_path: Path) -> Path:
    """``result.png`` → ``result.png.json`` (keeps the extension, so result.png and result.tif differ)."""
    return image_path.with_name(image_path.name + ".json")


def is_focusstudio_output(image_path: Path) -> bool:
    """True when ``image_path`` has a FocusStudio sidecar: a JSON object with our provenance keys
    whose ``output``, when given, names this file. An unreadable or foreign ``.json`` is not ours."""
    candidate = sidecar_path(image_path)
    try:
        if not candidate.is_file() or candidate.stat().st_size > MAX_SIDECAR_BYTES:
            return False
        data = json.loads(candidate.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    if not isinstance(data, dict) or not all(key in data for key in _SIDECAR_KEYS):
        return False
    output = data.get("output")
    # The folder may have been moved or copied since: compare the names, not the full paths.
    return not isinstance(output, str) or Path(output).name == image_path.name
