"""Retouching a fusion result by painting which source frame each pixel comes from (issue 16).

Qt-free: the window's retouch tool (focusstudio.gui.retouch) and ``focusstudio fuse --retouch``
both drive :class:`RetouchModel`.
"""

from focusstudio.core.retouch.brush import Brush, Rect, Stroke
from focusstudio.core.retouch.model import FrameCache, RetouchModel
from focusstudio.core.retouch.persist import (
    RetouchDocument,
    apply_retouch,
    parse_retouch,
    read_retouch_file,
    retouch_section,
)
from focusstudio.core.retouch.pick import SharpnessProbe, chosen_frame, chosen_frame_of

__all__ = [
    "Brush",
    "FrameCache",
    "Rect",
    "RetouchDocument",
    "RetouchModel",
    "SharpnessProbe",
    "Stroke",
    "apply_retouch",
    "chosen_frame",
    "chosen_frame_of",
    "parse_retouch",
    "read_retouch_file",
    "retouch_section",
]
