"""The small public Python API (re-exported lazily by :mod:`focusstudio`).

>>> import focusstudio
>>> stack = focusstudio.load_stack(["a.png", "b.png"])
>>> result = focusstudio.fuse(stack, method="sf")
>>> result.image.shape, sorted(result.maps)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from focusstudio.core.io import load_stack
from focusstudio.core.methods.registry import get_method, list_methods
from focusstudio.core.metrics import compute_metrics
from focusstudio.core.pipeline import fuse as _fuse
from focusstudio.core.types import FusionResult, Stack


def fuse(
    stack: Stack | Sequence[str | Path | np.ndarray],
    method: str = "sf",
    params: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> FusionResult:
    """Fuse a :class:`Stack`, a list of paths, or a list of arrays."""
    if not isinstance(stack, Stack):
        items = list(stack)
        if items and isinstance(items[0], np.ndarray):
            stack = Stack.from_arrays(items)  # type: ignore[arg-type]
        else:
            stack = load_stack([str(p) for p in items])
    return _fuse(stack, method, params, **kwargs)


__all__ = ["compute_metrics", "fuse", "get_method", "list_methods", "load_stack"]
