"""Which stacks a batch fuses: a folder of stack folders, a CSV/JSON manifest, or a file-name
pattern that groups files into stacks.

Discovery only lists names and paths: a stack whose files are missing or broken is still a job,
and fails on its own (with its one-line reason) when it runs, so one bad stack never stops a batch.

* Folder: every non-hidden sub-folder of ROOT is a stack named after it. A ROOT holding images and
  no sub-folders is one stack.
* Manifest (``.csv`` or ``.json``): one stack per row / object. Columns / keys: ``stack`` (name),
  ``inputs`` (a folder, or files separated by ``;`` in CSV / a list in JSON; relative to the
  manifest's folder), optional ``method`` and ``output`` (a file name in the output folder), and
  any other column is a method parameter (``sf_radius``) or, prefixed with ``align.``, an alignment
  setting. JSON objects may instead give ``set`` and ``align`` objects.
* Pattern: ROOT is a path whose file name has ``{FIELD}`` placeholders, e.g.
  ``scans/pos{P}_z{Z}.tif``. The field ``Z`` (or ``z``, ``plane``) orders the planes of a stack; the
  other fields name it (``pos{P}`` → ``pos3``). ``*`` matches anything, as in a glob.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from natsort import natsorted, ns

from focusstudio.core.errors import InputError
from focusstudio.core.io.formats import is_hidden, is_image_name

__all__ = ["PLANE_FIELDS", "StackSpec", "discover_stacks", "read_manifest", "stacks_from_pattern"]

_NATURAL = ns.INT | ns.IGNORECASE
#: Field names that number the focus planes of a pattern (the others name the stack).
PLANE_FIELDS = ("Z", "z", "plane")
_MANIFEST_KEYS = {"stack", "name", "inputs", "method", "output", "set", "align"}


@dataclass(frozen=True)
class StackSpec:
    """One job of a batch: a name, its input files (or one folder) and per-stack overrides."""

    name: str
    inputs: tuple[Path, ...]
    method: str | None = None
    #: Method parameters as text (``--set`` semantics) or values, merged over the batch's.
    params: Mapping[str, Any] = field(default_factory=dict)
    #: Alignment settings merged over the batch's (a manifest's ``align.*`` columns).
    align: Mapping[str, Any] = field(default_factory=dict)
    #: Output file name (in the output folder) instead of the batch's template.
    output: str | None = None


def discover_stacks(root: str | Path) -> list[StackSpec]:
    """The stacks ROOT names (see the module docstring), in natural order of their names.

    Raises :class:`InputError` (one line) when ROOT does not exist, is unreadable, or holds no stack.
    """
    text = str(root)
    if "{" in Path(text).name:
        return stacks_from_pattern(text)
    path = Path(text)
    if not path.exists():
        raise InputError("does not exist", path)
    if path.is_file():
        if path.suffix.lower() in (".csv", ".json"):
            return read_manifest(path)
        raise InputError("is a file: give a folder of stack folders, a .csv/.json manifest or a pattern", path)
    try:
        entries = [entry for entry in path.iterdir() if not is_hidden(entry)]
    except OSError as exc:
        raise InputError(f"cannot be listed ({exc.strerror or exc})", path) from exc
    folders = [entry for entry in entries if entry.is_dir()]
    if not folders:
        if any(entry.is_file() and is_image_name(entry) for entry in entries):
            return [StackSpec(path.name, (path,))]
        raise InputError("holds no stack folders (expected ROOT/<stack>/<frames>)", path)
    folders = natsorted(folders, key=lambda entry: entry.name, alg=_NATURAL)
    return [StackSpec(folder.name, (folder,)) for folder in folders]


# ----------------------------------------------------------------------------- manifests
def read_manifest(path: Path) -> list[StackSpec]:
    """The stacks of a CSV or JSON manifest (see the module docstring)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot be read ({exc.strerror or exc})", path) from exc
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InputError(f"is not valid JSON ({exc})", path) from None
        rows = data.get("stacks") if isinstance(data, dict) else data
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise InputError('must be a list of stack objects (or {"stacks": [...]})', path)
    else:
        rows = [
            {key.strip(): (value or "").strip() for key, value in row.items() if key}
            for row in csv.DictReader(text.splitlines())
        ]
    specs = [_manifest_row(row, number, path) for number, row in enumerate(rows, start=1)]
    if not specs:
        raise InputError("lists no stacks", path)
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InputError(f"names stack '{duplicates[0]}' more than once", path)
    return specs


def _manifest_row(row: Mapping[str, Any], number: int, manifest: Path) -> StackSpec:
    inputs_value = row.get("inputs")
    if not inputs_value:
        raise InputError(f"stack {number} has no 'inputs'", manifest)
    if isinstance(inputs_value, str):
        parts = [part.strip() for part in inputs_value.split(";") if part.strip()]
    elif isinstance(inputs_value, list):
        parts = [str(part) for part in inputs_value]
    else:
        raise InputError(f"stack {number}: 'inputs' must be a path or a list of paths", manifest)
    inputs = tuple(_relative_to(manifest.parent, part) for part in parts)
    name = str(row.get("stack") or row.get("name") or (inputs[0].stem if len(inputs) == 1 else f"stack{number}"))
    params: dict[str, Any] = dict(row.get("set") or {})
    align: dict[str, Any] = dict(row.get("align") or {})
    for key, value in row.items():
        if key in _MANIFEST_KEYS or value in (None, ""):
            continue
        if key.startswith("align."):
            align[key.removeprefix("align.")] = value
        else:
            params[key] = value
    return StackSpec(
        name=name,
        inputs=inputs,
        method=str(row["method"]) if row.get("method") else None,
        params=params,
        align=align,
        output=str(row["output"]) if row.get("output") else None,
    )


def _relative_to(base: Path, text: str) -> Path:
    candidate = Path(text).expanduser()
    return candidate if candidate.is_absolute() else base / candidate


# ----------------------------------------------------------------------------- patterns
_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _pattern_regex(pattern: str) -> tuple[re.Pattern[str], list[str]]:
    fields: list[str] = []
    parts: list[str] = []
    position = 0
    for match in _FIELD.finditer(pattern):
        parts.append(re.escape(pattern[position : match.start()]).replace(r"\*", ".*?"))
        name = match.group(1)
        if name in fields:
            raise InputError(f"pattern '{pattern}' uses the field {{{name}}} twice")
        fields.append(name)
        parts.append(f"(?P<{name}>.+?)")
        position = match.end()
    parts.append(re.escape(pattern[position:]).replace(r"\*", ".*?"))
    return re.compile("".join(parts) + r"\Z", re.IGNORECASE), fields


def stacks_from_pattern(pattern_path: str) -> list[StackSpec]:
    """Group the files of the pattern's folder into stacks (see the module docstring)."""
    folder = Path(pattern_path).parent
    pattern = Path(pattern_path).name
    regex, fields = _pattern_regex(pattern)
    planes = [name for name in fields if name in PLANE_FIELDS]
    if not planes:
        raise InputError(f"pattern '{pattern}' needs a plane field: {{Z}} (or {{z}}, {{plane}})")
    plane = planes[0]
    others = [name for name in fields if name != plane]
    if not folder.is_dir():
        raise InputError("does not exist or is not a folder", folder)
    groups: dict[tuple[str, ...], list[tuple[str, Path]]] = {}
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise InputError(f"cannot be listed ({exc.strerror or exc})", folder) from exc
    for entry in entries:
        if is_hidden(entry) or not entry.is_file():
            continue
        match = regex.match(entry.name)
        if match is None:
            continue
        groups.setdefault(tuple(match.group(name) for name in others), []).append((match.group(plane), entry))
    if not groups:
        raise InputError(f"no file matches the pattern '{pattern}'", folder)
    template = _name_template(Path(pattern).stem if "." in pattern else pattern, plane)
    specs = []
    for key, members in groups.items():
        ordered = natsorted(members, key=lambda member: member[0], alg=_NATURAL)
        name = template
        for field_name, value in zip(others, key):
            name = name.replace("{" + field_name + "}", value)
        specs.append(StackSpec(name or "_".join(key) or "stack", tuple(path for _, path in ordered)))
    return natsorted(specs, key=lambda spec: spec.name, alg=_NATURAL)


def _name_template(stem: str, plane: str) -> str:
    """The stack name: the pattern's stem without the plane field, its letter prefix and separator
    (``pos{P}_z{Z}`` → ``pos{P}``), wildcards dropped."""
    without = re.sub(r"[_\-. ]*[A-Za-z]*\{" + re.escape(plane) + r"\}", "", stem)
    return without.replace("*", "").strip("_-. ")
