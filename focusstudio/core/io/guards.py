"""Guards of the image decoders against hostile or odd files.

* The pixel limit: every format's header size is checked against it before any pixel buffer is
  allocated, so a 320-byte TIFF declaring 50000×50000 pixels is refused by name instead of
  exhausting memory. ``--max-pixels`` (command line) or the ``FOCUSSTUDIO_MAX_PIXELS``
  environment variable (the window, scripts) raise it.
* Decoder noise: libpng and libtiff (inside OpenCV) print their complaints straight to the C
  ``stderr``; :func:`captured_c_stderr` takes them off file descriptor 2 while a decoder runs, so a
  damaged file yields our one line (with the decoder's reason in it) and nothing else. tifffile
  logs header oddities through :mod:`logging`; with no handler configured Python would print them
  on stderr, so its logger gets a ``NullHandler`` (an application that configures logging still
  receives them).
"""

from __future__ import annotations

import logging
import math
import operator
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from focusstudio.core.errors import InputError, ParameterError

if TYPE_CHECKING:
    import numpy as np

    from focusstudio.core.types import FrameInfo

#: Default pixel limit (width × height of one frame). Above the largest still cameras
#: (151 MP medium format) with room for stitched frames, below sizes whose float32 RGB copy
#: (12 bytes a pixel: 3 GB at 250 MP) no longer fits a typical machine's memory.
DEFAULT_MAX_PIXELS = 250_000_000
MAX_PIXELS_ENV = "FOCUSSTUDIO_MAX_PIXELS"
RAISE_LIMIT_HINT = f"raise the limit with --max-pixels or the {MAX_PIXELS_ENV} environment variable"

_override: int | None = None
_PIXELS = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmg]?)(?:p|px|pixels?)?\s*$", re.IGNORECASE)
_PIXEL_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}

logging.getLogger("tifffile").addHandler(logging.NullHandler())


def parse_pixel_count(text: str, source: str = "--max-pixels") -> int:
    """'300M', '300MP', '1.2G', '40000000' → pixels (decimal units). ParameterError when the
    text is not a finite positive count."""
    match = _PIXELS.match(str(text))
    if match is None:
        raise ParameterError(f"{source}: cannot read pixel count {text!r} (use e.g. 400M or 400000000)")
    value = float(match.group(1)) * _PIXEL_UNITS[match.group(2).lower()]
    if not math.isfinite(value) or value < 1:
        raise ParameterError(f"{source} must be a positive number of pixels, got {text!r}")
    return int(value)


def set_max_pixels(pixels: int | None) -> None:
    """Set (or with None, clear) the process-wide pixel limit; it wins over the environment."""
    global _override
    if pixels is not None and pixels < 1:
        raise ParameterError(f"the pixel limit must be positive, got {pixels}")
    _override = pixels


def max_pixels() -> int:
    """The pixel limit in force: :func:`set_max_pixels`, else the environment, else the default."""
    if _override is not None:
        return _override
    text = os.environ.get(MAX_PIXELS_ENV)
    if text:
        return parse_pixel_count(text, MAX_PIXELS_ENV)
    return DEFAULT_MAX_PIXELS


def _megapixels(pixels: float) -> str:
    megapixels = pixels / 1e6
    return f"{megapixels:,.0f} MP" if megapixels >= 10 else f"{megapixels:.3g} MP"


def check_frame_size(path: Path, width: object, height: object, where: str = "") -> tuple[int, int]:
    """(width, height) from a header once they are positive integers within the pixel limit;
    else InputError naming the file (before the decoder allocates anything)."""
    sizes: list[int] = []
    for name, value in (("width", width), ("height", height)):
        try:
            if isinstance(value, bool):
                raise TypeError(name)
            sizes.append(operator.index(value))  # int and NumPy integers; not str, float
        except TypeError:
            problem = f"{where}has a damaged header: its {name} is {value!r}, not a whole number"
            raise InputError(problem, path) from None
    width_px, height_px = sizes
    if width_px <= 0 or height_px <= 0:
        raise InputError(f"{where}has a damaged header: it declares {width_px}x{height_px} pixels", path)
    limit = max_pixels()
    if width_px * height_px > limit:
        raise InputError(
            f"{where}is {width_px}x{height_px} pixels ({_megapixels(width_px * height_px)}), over the "
            f"{_megapixels(limit)} limit that guards against decompression bombs; {RAISE_LIMIT_HINT}",
            path,
        )
    return width_px, height_px


# --------------------------------------------------------------------------- C-library stderr
# One capture at a time: file descriptor 2 is process-wide. Whatever reaches it while a decoder
# runs (milliseconds) is taken as the decoder's: libtiff's and libpng's messages have no common
# prefix to filter on, and the window's other threads do not write to stderr.
_CAPTURE_LOCK = threading.Lock()


@contextmanager
def captured_c_stderr() -> Iterator[list[str]]:
    """Run the block with the C-level stderr redirected; the list it yields receives the lines
    written meanwhile when the block ends."""
    lines: list[str] = []
    with _CAPTURE_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no usable fd 2 (a windowed app)
            yield lines
            return
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield lines
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                lines.extend(sink.read().decode("utf-8", "replace").splitlines())


def decoder_reason(lines: list[str]) -> str | None:
    """The first decoder complaint without its library prefix ('IDAT: CRC error'), if any."""
    for line in lines:
        text = re.sub(r"^libpng (error|warning): ", "", line).strip()
        if text:
            return text if len(text) <= 120 else text[:117] + "..."
    return None


def check_unchanged(image: np.ndarray, info: FrameInfo) -> None:
    """Refuse a decoded frame whose file no longer has the size it had when the stack was opened."""
    if image.shape[:2] != info.shape:
        raise InputError(
            f"changed since it was opened: it is now {image.shape[1]}x{image.shape[0]} pixels, "
            f"it was {info.width}x{info.height}",
            info.path,
        )
