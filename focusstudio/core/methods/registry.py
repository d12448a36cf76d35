"""The one registry of fusion methods, keyed by name.

Methods register themselves with :func:`register`; :mod:`focusstudio.core.methods` imports every
method module explicitly (no directory scanning: it breaks in frozen apps).
"""

from __future__ import annotations

from typing import TypeVar

from focusstudio.core.errors import FocusStudioError
from focusstudio.core.methods.base import FusionMethod

_REGISTRY: dict[str, type[FusionMethod]] = {}

M = TypeVar("M", bound=type[FusionMethod])


def register(cls: M) -> M:
    """Class decorator adding a method to the registry under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"method name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _ensure_loaded() -> None:
    import focusstudio.core.methods  # noqa: F401  (imports every method module)


def list_methods() -> list[str]:
    """Names of every registered method, in registration order."""
    _ensure_loaded()
    return list(_REGISTRY)


def get_method(name: str) -> FusionMethod:
    """A fresh instance of the method called ``name``; unknown names list the valid ones."""
    _ensure_loaded()
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise FocusStudioError(
            f"unknown method '{name}'; valid: {', '.join(_REGISTRY)}"
        ) from None
