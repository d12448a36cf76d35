"""The FocusStudio window: a thin PySide6 layer over :mod:`focusstudio.core`.

Nothing here computes a fusion: widgets collect choices, workers run the core's generators in
the thread pool and hand back frozen results, and the viewer only displays arrays.
"""

from focusstudio.gui._compat import protect_bool_singletons as _protect_bool_singletons

#: Whether a binding bug had to be worked around (see :mod:`focusstudio.gui._compat`).
BOOL_REFERENCE_WORKAROUND = _protect_bool_singletons()
