"""sf's row bands and its boundary refinement on 3+ frames (a smaller window decides again the
pixels next to a change of frame); :mod:`focusstudio.core.methods.sf` explains where they act."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

#: Pixels of one row band of the banded passes: a few float64 planes of a band stay in the cache
#: and numpy reuses the band temporaries instead of mapping (and faulting in) full-size arrays.
BAND_PIXELS = 1 << 18


def band_rows(width: int, halo: int = 0) -> int:
    """Rows of one band for an image ``width`` wide (at least 4 halos, so the halo stays cheap)."""
    return max(BAND_PIXELS // max(width, 1), 4 * halo, 16)



class FineSelection:
    """The running arg-max of the activity in a smaller window (:func:`refine_boundaries`), and
    the small-window activity of the frame that holds the main (large-window) maximum.

    Activities are held as float32 (4 bytes a pixel instead of 8: this selection only decides
    near the boundaries of the main one, where an exact tie of two frames matters little). Ties
    go to the later frame, as in the main selection.
    """

    def __init__(self, shape: tuple[int, int], radius: int) -> None:
        self.radius = radius
        self.best = np.empty(shape, dtype=np.float32)
        self.index = np.zeros(shape, dtype=np.int32)
        self.of_main = np.empty(shape, dtype=np.float32)

    def fold(self, frame: int, rows: slice, activity: np.ndarray, main_wins: np.ndarray | None) -> None:
        """Frame ``frame``'s small-window activity of ``rows``; ``main_wins``: where it took the
        main maximum (None: the first frame, which initialises everything)."""
        values = activity.astype(np.float32)
        if main_wins is None:
            self.best[rows] = values
            self.index[rows] = frame
            self.of_main[rows] = values
            return
        self.of_main[rows][main_wins] = values[main_wins]
        later_wins = values >= self.best[rows]
        self.index[rows][later_wins] = frame
        np.maximum(self.best[rows], values, out=self.best[rows])

    def candidate(self) -> np.ndarray:
        """The small window's choice where it is decisive, else -1 (see :data:`FINE_MARGIN`)."""
        out = self.index
        out[self.best < FINE_MARGIN * self.of_main] = -1
        return out


#: The small window overrules the main selection only where its best activity is at least this
#: many times the small-window activity of the main selection's frame. At a depth edge the main
#: frame is the foreground's, whose background just past the edge is blurred (a small fraction of
#: the sharp background's activity); in flat, noisy areas the frames' small-window activities are
#: alike and the main decision stays. Measured (benchmarks/README.md, issue 15): with no margin
#: the 10-frame blood smear at 1920 px fell from recall 0.963 to 0.911 (its grainy background
#: fragmented), with 2 to 0.951, with 4 to 0.962; nframe_synth N = 8 in the truth's geometry
#: gained 0.37 / 0.26 / 0.21 dB with 0 / 2 / 4.
FINE_MARGIN = 4.0


def fine_radius_of(params: dict[str, Any] | Any, count: int) -> int:
    """The boundary refinement's window radius for ``count`` frames (0 = off): pairs keep SESF's
    decision, and a depth order decides its own boundaries (near frames first)."""
    if count <= 2 or str(params.get("depth_order", "none")) != "none":
        return 0
    return max(min(int(params.get("boundary_radius", 0)), int(params["sf_radius"])), 0)


def refine_boundaries(index: np.ndarray, fine: np.ndarray, radius: int) -> np.ndarray:
    """``index``, in place: within ``radius`` of a change of label, ``fine`` replaces it wherever
    ``fine`` lies between the smallest and the largest label of that neighbourhood (a negative
    ``fine`` never does).

    A (2r+1)² window that touches a sharp edge is won by the frame holding the edge up to r px
    beyond it: at a depth edge the foreground's frame spreads over a background that is blurred in
    that frame (nframe_synth's halo band). The smaller window decides those pixels again, but only
    between the labels (focus planes) already present around them, so it brings no far frame's
    noise into a region. Neighbourhood: cv2's ellipse of (2r+1)² (the disc x²+y² ≤ r² up to
    rounding); labels are held as float32 for cv2's min/max filters (exact below 2^24). Row bands
    read the *unchanged* labels with a halo of r rows (the rows above come from a copy kept before
    the previous band was written), so the result equals the whole-frame one without a full copy.
    """
    if radius <= 0 or index.size == 0:
        return index
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    rows = band_rows(index.shape[1], radius)  # ≥ 4·radius: a halo never reaches two bands back
    height = index.shape[0]
    above: np.ndarray | None = None  # the original labels of the rows above this band's core
    for start in range(0, height, rows):
        stop = min(start + rows, height)
        top, bottom = max(start - radius, 0), min(stop + radius, height)
        labels = index[top:bottom].astype(np.float32)
        if above is not None:
            labels[:start - top] = above
        above = labels[max(stop - radius, top) - top:stop - top].copy()
        # Replicated border: a constant one would act as a label of its own.
        low = cv2.erode(labels, kernel, borderType=cv2.BORDER_REPLICATE)[start - top:stop - top]
        high = cv2.dilate(labels, kernel, borderType=cv2.BORDER_REPLICATE)[start - top:stop - top]
        candidate = fine[start:stop]
        take = (low != high) & (candidate >= low) & (candidate <= high)
        index[start:stop][take] = candidate[take]
    return index
