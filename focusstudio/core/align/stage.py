"""The pipeline's alignment stage: estimate a registration, apply a saved one (``--alignment FILE``,
a sidecar's), or take frames already aligned (the window's cache); with progress, cancel and the
stage's time. :func:`focusstudio.core.pipeline.run_pipeline` runs it before the fusion."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from focusstudio.core.align.cache import RegistrationCache
from focusstudio.core.align.estimate import estimate_alignment
from focusstudio.core.align.params import AlignOptions
from focusstudio.core.align.results import Alignment
from focusstudio.core.align.storage import load_alignment
from focusstudio.core.align.warp import apply_alignment
from focusstudio.core.progress import CancelToken, ProgressGen, ProgressRange, run_to_completion
from focusstudio.core.types import Stack


@dataclass(frozen=True, eq=False)
class AlignRequest:
    """What the alignment stage does with a stack.

    ``settings``: :data:`~focusstudio.core.align.params.ALIGN_PARAMS` values (missing ones take
    their defaults). Without ``saved`` a registration is estimated with them; with ``saved`` that
    registration is applied instead (only the ``post`` settings, crop and interpolation, matter);
    ``aligned``: the frames ``saved`` already gave, used as they are (nothing is decoded again);
    ``cache``: pair registrations to re-use and add to when estimating (the window and the batch
    pass :func:`~focusstudio.core.align.cache.registration_cache`, so a re-fusion registers only
    the frames that changed; None: every pair is registered).
    """

    settings: Mapping[str, Any] = field(default_factory=dict)
    saved: Alignment | None = None
    aligned: Stack | None = None
    cache: RegistrationCache | None = None

    @property
    def estimates(self) -> bool:
        """Whether the stage registers the frames (the long part) rather than re-using a registration."""
        return self.saved is None

    @classmethod
    def from_file(cls, path: str | Path, settings: Mapping[str, Any] | None = None) -> AlignRequest:
        """Apply the registration saved in ``path`` (InputError, one line, when it holds none)."""
        return cls(dict(settings or {}), load_alignment(path))


@dataclass(frozen=True, eq=False)
class AlignedFrames:
    """The stage's output: the frames to fuse, their registration (None: not aligned), its time."""

    stack: Stack
    alignment: Alignment | None
    seconds: float = 0.0


def align_frames(
    stack: Stack,
    request: AlignRequest | None,
    cancel: CancelToken | None = None,
    progress: ProgressRange | None = None,
) -> ProgressGen[AlignedFrames]:
    """Run the alignment stage on ``stack`` (``request`` None: the frames as they are).

    The aligned stack decodes and warps each frame on load, so nothing is held in memory beyond
    what the caller keeps.
    """
    if request is None:
        return AlignedFrames(stack, None)
    started = time.perf_counter()
    options = AlignOptions.from_params(request.settings)
    if request.saved is None:
        alignment = yield from estimate_alignment(stack, options, cancel, progress, request.cache)
    else:
        alignment = request.saved
    if request.aligned is not None:
        aligned = request.aligned
    else:
        aligned = apply_alignment(stack, alignment, crop=options.crop, interpolation=options.interpolation)
    return AlignedFrames(aligned, alignment, time.perf_counter() - started)


def align_stack(
    stack: Stack,
    options: AlignOptions | Mapping[str, Any] | None = None,
    cancel: CancelToken | None = None,
    progress: ProgressRange | None = None,
) -> ProgressGen[tuple[Stack, Alignment]]:
    """Estimate and apply the alignment (:func:`align_frames` with ``options``).

    Returns (aligned stack, alignment).
    """
    if options is None or isinstance(options, Mapping):
        options = AlignOptions.from_params(options)
    frames = yield from align_frames(stack, AlignRequest(options.to_params()), cancel, progress)
    assert frames.alignment is not None  # an estimating request always gives one
    return frames.stack, frames.alignment


def align(stack: Stack, options: AlignOptions | Mapping[str, Any] | None = None) -> tuple[Stack, Alignment]:
    """Blocking wrapper around :func:`align_stack`."""
    return run_to_completion(align_stack(stack, options))
