"""Every fusion method, imported explicitly so the registry is complete (also when frozen)."""

from focusstudio.core.methods.registry import (
    MethodSpec,
    NetworkSpec,
    get_method,
    get_spec,
    list_methods,
    list_specs,
    register,
    register_method,
    trainable_methods,
    unregister_method,
)

__all__ = [
    "MethodSpec", "NetworkSpec", "get_method", "get_spec", "list_methods", "list_specs", "register",
    "register_method", "trainable_methods", "unregister_method",
]

# Method modules register themselves on import. Keep this list explicit: no directory scanning.
# (Each import is placed after the registry import on purpose.)
from focusstudio.core.methods import gacn as _gacn  # noqa: F401
from focusstudio.core.methods import gff as _gff  # noqa: F401
from focusstudio.core.methods import laplacian as _laplacian  # noqa: F401
from focusstudio.core.methods import mfifgan as _mfifgan  # noqa: F401
from focusstudio.core.methods import sesf as _sesf  # noqa: F401
from focusstudio.core.methods import sf as _sf  # noqa: F401
from focusstudio.core.methods import twostream as _twostream  # noqa: F401
from focusstudio.core.methods import ufa as _ufa  # noqa: F401
