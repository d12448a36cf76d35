"""Which source frame to paint from: the frame the method chose at a pixel, or the sharpest one there.

The sharpest frame uses the block sharpness of :mod:`focusstudio.core.metrics.recall` (mean squared
Laplacian of the lightly smoothed grey frame over 32-px blocks), measured once per frame and kept
as a few thousand numbers, so every later pick is a look-up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from focusstudio.core.metrics.recall import BLOCK, block_sharpness
from focusstudio.core.types import FusionMap, FusionResult, Stack

#: The maps that say which frame a pixel came from, most specific first (UFA's are derived
#: from its output, still the best guess of which frame is sharp there). Other maps of kind
#: "index" / "decision" are used after these, final ones before "*_raw".
INDEX_MAPS = ("index", "derived_index")
DECISION_MAPS = ("decision", "decision_post", "derived_decision")


def _sample(fusion_map: FusionMap, row: int, col: int, shape: tuple[int, int]) -> float:
    """The map's value at image pixel (row, col) (maps computed at a lower resolution are scaled)."""
    data = fusion_map.data
    map_row = min(int(row * data.shape[0] / shape[0]), data.shape[0] - 1)
    map_col = min(int(col * data.shape[1] / shape[1]), data.shape[1] - 1)
    return float(data[map_row, map_col])


def _first(maps: Mapping[str, FusionMap], names: tuple[str, ...], kind: str) -> FusionMap | None:
    for name in names:
        if name in maps:
            return maps[name]
    others = [m for m in maps.values() if m.kind == kind and m.frame is None]
    others.sort(key=lambda m: m.name.endswith("_raw"))
    return others[0] if others else None


def chosen_frame(maps: Mapping[str, FusionMap], row: int, col: int, shape: tuple[int, int]) -> int | None:
    """The frame the method's index map (or, for two frames, decision map: the weight of frame 0)
    chose at (row, col); None when the result has neither."""
    index = _first(maps, INDEX_MAPS, "index")
    if index is not None:
        return round(_sample(index, row, col, shape))
    decision = _first(maps, DECISION_MAPS, "decision")
    if decision is not None:
        return 0 if _sample(decision, row, col, shape) >= 0.5 else 1
    return None


def chosen_frame_of(result: FusionResult, row: int, col: int) -> int | None:
    return chosen_frame(result.maps, row, col, (int(result.image.shape[0]), int(result.image.shape[1])))


class SharpnessProbe:
    """The sharpest frame at a pixel. ``measure()`` reads every frame once (grey) — seconds on a long
    24 MP stack, so the window runs it in a worker; :meth:`sharpest` is then a look-up."""

    def __init__(self, load_grey: Callable[[int], np.ndarray], count: int, shape: tuple[int, int],
                 block: int = BLOCK) -> None:
        self._load_grey = load_grey
        self.count = count
        self.shape = shape
        self.block = block
        self._sharpness: np.ndarray | None = None  # frames × rows × cols

    @classmethod
    def of_stack(cls, stack: Stack, block: int = BLOCK) -> SharpnessProbe:
        return cls(lambda i: stack.load(i, grey=True), len(stack), stack.shape, block)

    @property
    def measured(self) -> bool:
        return self._sharpness is not None

    def measure(self) -> None:
        if self._sharpness is None:
            # Images smaller than a block are measured as one block of their own size.
            block = max(1, min(self.block, *self.shape))
            self.block = block
            self._sharpness = np.stack([block_sharpness(self._load_grey(i), block) for i in range(self.count)])

    def sharpest(self, row: int, col: int) -> int:
        """The frame whose block holding (row, col) has the most detail (the last, narrower blocks
        of a remainder strip count as their neighbours)."""
        self.measure()
        assert self._sharpness is not None
        _, rows, cols = self._sharpness.shape
        block_row = min(max(row, 0) // self.block, rows - 1)
        block_col = min(max(col, 0) // self.block, cols - 1)
        return int(np.argmax(self._sharpness[:, block_row, block_col]))
