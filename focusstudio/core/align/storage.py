"""Saved registrations: the JSON file ``save_alignment`` writes, ``fuse --maps`` writes as
alignment.json and a sidecar holds, read back by ``load_alignment`` (``--alignment FILE``)."""

from __future__ import annotations

import json
from pathlib import Path

from focusstudio.core.align.results import Alignment
from focusstudio.core.errors import InputError, ParameterError
from focusstudio.core.types import Stack


def alignment_text(alignment: Alignment) -> str:
    """The registration as the JSON text every saved registration holds."""
    return json.dumps(alignment.to_json(), indent=2) + "\n"


def save_alignment(path: str | Path, alignment: Alignment) -> Path:
    """Write the registration as JSON (atomically), for re-use on other stacks of the same rig."""
    from focusstudio.core.io import atomic_write_text

    return atomic_write_text(path, alignment_text(alignment))


def load_alignment(path: str | Path) -> Alignment:
    """Read a registration saved by :func:`save_alignment`, ``fuse --maps`` (alignment.json) or found
    in a result's sidecar (its ``alignment`` entry); InputError (one line) when it is none of these."""
    source = Path(path)
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot be read ({exc.strerror or exc})", source) from None
    except ValueError as exc:
        raise InputError(f"is not valid JSON ({exc})", source) from None
    if isinstance(data, dict) and "frames" not in data and isinstance(data.get("alignment"), dict):
        data = data["alignment"]  # a sidecar: the registration its result was made with
    if not isinstance(data, dict):
        raise InputError("holds no alignment (expected the JSON of a saved registration)", source)
    try:
        return Alignment.from_json(data)
    except ParameterError as error:
        raise InputError(error.message, source) from None


def alignment_misfit(alignment: Alignment, frames: int, shape: tuple[int, int]) -> str | None:
    """Why ``alignment`` cannot be applied to ``frames`` frames of ``shape`` (height, width), or None."""
    height, width = alignment.shape
    if len(alignment.frames) == frames and alignment.shape == tuple(shape):
        return None
    return (
        f"holds a registration of {len(alignment.frames)} frames of {width}×{height}, the stack has "
        f"{frames} frames of {shape[1]}×{shape[0]}"
    )


def load_alignment_for(path: str | Path, stack: Stack) -> Alignment:
    """:func:`load_alignment`, refused (InputError naming ``path``, one line) when the registration
    does not fit ``stack``'s frame count and size: the core of ``fuse --alignment FILE`` and of a
    window's "Load alignment…"."""
    alignment = load_alignment(path)
    problem = alignment_misfit(alignment, len(stack), stack.shape)
    if problem is not None:
        raise InputError(problem, Path(path))
    return alignment
