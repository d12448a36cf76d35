"""Modules imported on first use.

Importing torch costs about two seconds and 240 MiB. The registry imports every method module
to read their declarations (names, parameters, help), and the classical methods never touch
torch, so the deep methods' modules bind torch and their architectures to :class:`LazyModule`
proxies: ``focusstudio fuse -m sf`` and the method list start without torch, and the first
attribute access (a deep method actually running) imports the real module.
"""

from __future__ import annotations

import importlib
import types
from typing import Any


class LazyModule(types.ModuleType):
    """Stands for the module ``name``; any attribute access imports it and forwards."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__dict__["_lazy_target"] = name

    def __getattr__(self, attribute: str) -> Any:
        # Called only for names not in the proxy's own __dict__: the value is kept there, so
        # the next access is a plain lookup (import_module takes ~10 µs even when loaded, and
        # the deep methods' inner loops make thousands of such accesses per fusion).
        value = getattr(importlib.import_module(self.__dict__["_lazy_target"]), attribute)
        self.__dict__[attribute] = value
        return value

    def __repr__(self) -> str:
        return f"<lazy module {self.__dict__['_lazy_target']!r}>"


def lazy_import(name: str) -> Any:
    """A proxy for module ``name`` that imports it on first attribute access (typed ``Any`` so
    call sites read like the real module)."""
    return LazyModule(name)
