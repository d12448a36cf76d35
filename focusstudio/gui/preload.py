"""Load torch in the background once the window shows.

The core imports torch only when a deep method runs (``focusstudio.core.lazy``), so the window
opens quickly. Importing torch takes ~2 s and its C extension initialises while holding the GIL,
so an import started by the first deep fusion would stall the GUI thread for a few hundred
milliseconds in the middle of a run. Starting it right after the window shows moves that one
hiccup to a moment when the user is still choosing files.
"""

from __future__ import annotations

import sys
import threading

PRELOAD_THREAD_NAME = "focusstudio-preload"


def _import_deep_runtime() -> None:
    try:
        import torch  # noqa: F401

        import focusstudio.core.methods.archs  # noqa: F401
    except Exception:  # the fusion that needs torch reports the real error
        return


def preload_deep_runtime() -> threading.Thread | None:
    """Start importing torch and the networks in a daemon thread; None when already loaded."""
    if "torch" in sys.modules:
        return None
    thread = threading.Thread(target=_import_deep_runtime, name=PRELOAD_THREAD_NAME, daemon=True)
    thread.start()
    return thread
