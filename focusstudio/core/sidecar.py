"""The JSON sidecar written next to a fused image: provenance and the command that reproduces it.

The one sidecar writer, shared by the window's export and ``focusstudio batch`` (which adds a
``batch`` section used to tell whether an output is complete and current). ``result.png`` →
``result.png.json``. The sidecar is staged in the run's :class:`OutputPlan`, so it is checked with
the image before any work and published together with it.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from focusstudio.core.io.sidecars import sidecar_path
from focusstudio.core.param_flags import cli_value

if TYPE_CHECKING:
    from focusstudio.core.align import Alignment
    from focusstudio.core.io.output_policy import OutputPlan
    from focusstudio.core.types import FusionResult

__all__ = [
    "align_arguments",
    "cli_value",
    "read_sidecar",
    "reproduce_command",
    "sidecar_data",
    "sidecar_path",
    "stage_sidecar",
]


def align_arguments(align: Mapping[str, Any] | None) -> list[str]:
    """``--no-align``, or ``--align`` and every alignment setting that differs from its default
    (the flags generated from the alignment declarations)."""
    from focusstudio.core.align import align_arguments_for

    return ["--no-align"] if align is None else ["--align", *align_arguments_for(align)]


def reproduce_command(
    result: FusionResult,
    source_paths: Sequence[str],
    output: str | Path,
    device: str = "auto",
    weights: str | None = None,
    align: Mapping[str, Any] | None = None,
    retouch: str | Path | None = None,
) -> list[str]:
    """The ``focusstudio fuse`` arguments that give the same result from the command line
    (alignment always explicit: the CLI's default depends on the frame count). ``retouch``: the
    file holding the result's retouch strokes (its own sidecar), when it was retouched."""
    command = ["focusstudio", "fuse", *source_paths, "-o", str(output), "--method", result.method]
    for name, value in result.params.items():
        command += ["--set", f"{name}={cli_value(value)}"]
    command += align_arguments(align)
    if weights:
        command += ["--weights", weights]
    if device != "auto":
        command += ["--device", device]
    if retouch is not None:
        command += ["--retouch", str(retouch)]
    return command


def sidecar_data(
    result: FusionResult,
    output: Path,
    source_paths: Sequence[str],
    command: Sequence[str],
    alignment: Alignment | None = None,
    map_files: Sequence[Path] = (),
    retouch: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The sidecar's content: the result's provenance, where it went, and how to make it again.
    ``retouch``: the strokes painted over the result (focusstudio.core.retouch.retouch_section),
    re-applied by ``focusstudio fuse --retouch`` and when the window fuses the stack again."""
    data = {
        **result.provenance(),
        "output": str(output),
        "output_dtype": result.source_dtype,
        "source_paths": list(source_paths),
        "map_files": [str(path) for path in map_files],
        "command": list(command),
        "command_line": shlex.join(command),
        "alignment": alignment.to_json() if alignment is not None else None,
    }
    if retouch is not None:
        data["retouch"] = dict(retouch)
    return data


def stage_sidecar(plan: OutputPlan, path: Path, data: Mapping[str, Any]) -> Path:
    """Write the sidecar ``data`` into ``plan`` (published with the run's other outputs at its
    commit; declared, and so checked, now if the run has not declared it yet)."""
    plan.write_text(path, json.dumps(data, indent=2, default=str) + "\n", "the sidecar")
    return path


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """A sidecar's content, or None when it is missing or not a JSON object (damaged, foreign)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
