"""FocusStudio: multi-focus image fusion (focus stacking).

Importing this package is cheap and changes nothing in the host process: it pulls in neither Qt
nor torch and leaves the allocator alone (the entry points opt into
:func:`focusstudio.core.runtime.tune_process`; a notebook may call it too). The public API is
re-exported lazily from :mod:`focusstudio.api`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API_NAMES = ("fuse", "load_stack", "list_methods", "get_method", "compute_metrics")


def __getattr__(name: str) -> Any:
    if name in _API_NAMES:
        from focusstudio import api

        return getattr(api, name)
    raise AttributeError(f"module 'focusstudio' has no attribute {name!r}")


__all__ = ["__version__", *_API_NAMES]
