"""Applying a registration: each frame warped (and cropped) onto the reference when it is loaded."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from focusstudio.core.align.geometry import _row_intervals_to_mask, _translation, _warp, covered_columns
from focusstudio.core.align.params import Interpolation
from focusstudio.core.align.results import Alignment
from focusstudio.core.errors import FocusStudioError
from focusstudio.core.types import Stack

#: OpenCV flag of each interpolation setting.
_FLAGS = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}


class FrameWarp:
    """The per-frame transform applied on load: warp (and crop) onto the reference, match brightness."""

    def __init__(
        self,
        matrix: np.ndarray,
        output_shape: tuple[int, int],
        interpolation: Interpolation = "cubic",
        gain: float = 1.0,
        offset: float = 0.0,
        before: Callable[[np.ndarray], np.ndarray] | None = None,
        source_shape: tuple[int, int] | None = None,
    ) -> None:
        self.matrix = matrix
        self.output_shape = output_shape
        #: (height, width) of the frame the matrix maps from, when known (for :meth:`coverage`).
        self.source_shape = source_shape
        self.flags = _FLAGS[interpolation]
        self.gain = gain
        self.offset = offset
        self.before = before

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if self.before is not None:
            image = self.before(image)
        height, width = self.output_shape
        window = self._integer_window(image.shape[0], image.shape[1])
        if window is not None:
            # An integer shift inside the frame (the reference when cropping): a slice, no resampling.
            x0, y0 = window
            out = np.array(image[y0 : y0 + height, x0 : x0 + width], dtype=np.float32, copy=True)
        else:
            out = _warp(image, self.matrix, (width, height), self.flags, cv2.BORDER_REPLICATE)
            if self.flags != cv2.INTER_LINEAR:
                np.clip(out, 0.0, 1.0, out=out)  # cubic and Lanczos kernels overshoot at edges
        if self.gain != 1.0 or self.offset != 0.0:
            out = np.clip(out * np.float32(self.gain) + np.float32(self.offset), 0.0, 1.0)
        return out.astype(np.float32, copy=False)

    def coverage(self) -> np.ndarray | None:
        """Output-sized bool mask of where the frame has real pixels (elsewhere the warp replicates
        its border); None when the source shape is unknown."""
        if self.source_shape is None:
            return None
        height, width = self.output_shape
        left, right = covered_columns([self.matrix], height, width, self.source_shape)
        return _row_intervals_to_mask(left, right, width)

    def _integer_window(self, source_height: int, source_width: int) -> tuple[int, int] | None:
        """(x0, y0) when the warp is a pure integer shift whose output lies inside the source."""
        matrix = self.matrix
        if not (np.allclose(matrix[:2, :2], np.eye(2), atol=1e-12) and np.allclose(matrix[2], (0, 0, 1))):
            return None
        shift = matrix[:2, 2]
        if not np.allclose(shift, np.round(shift), atol=1e-9):
            return None
        x0, y0 = -round(float(shift[0])), -round(float(shift[1]))
        height, width = self.output_shape
        if x0 < 0 or y0 < 0 or x0 + width > source_width or y0 + height > source_height:
            return None
        return x0, y0

    def __repr__(self) -> str:
        return f"FrameWarp(matrix={self.matrix.tolist()}, output_shape={self.output_shape})"


def apply_alignment(
    stack: Stack,
    alignment: Alignment,
    crop: bool = True,
    interpolation: Interpolation = "cubic",
) -> Stack:
    """The stack with every included frame warped onto the reference when it is loaded.

    ``crop=True`` gives frames of the crop box size; ``crop=False`` keeps the full frame size and
    sets ``valid_mask`` (True where every aligned frame has real pixels; border pixels elsewhere are
    replicated). Excluded frames are left out. Any transform the stack already had runs first.
    """
    if len(stack) != len(alignment.frames):
        raise FocusStudioError(
            f"the alignment describes {len(alignment.frames)} frames but the stack has {len(stack)}"
        )
    if stack.shape != alignment.shape:
        raise FocusStudioError(
            f"the alignment is for {alignment.shape[1]}×{alignment.shape[0]} frames, the stack has "
            f"{stack.shape[1]}×{stack.shape[0]}"
        )
    keep = alignment.included
    if len(keep) < 2:
        raise FocusStudioError(f"only {len(keep)} frame(s) left after excluding the unregistered ones")
    valid_mask: np.ndarray | None = None
    if crop:
        if alignment.crop_box is None:
            raise FocusStudioError("the aligned frames share no common area: nothing to crop to")
        x, y, box_width, box_height = alignment.crop_box
        placement = _translation(-x, -y)
        output_shape = (box_height, box_width)
    else:
        placement = np.eye(3)
        output_shape = alignment.shape
        mask = alignment.valid_mask()
        valid_mask = None if mask.all() else mask
    transforms = []
    for index in keep:
        frame = alignment.frames[index]
        transforms.append(
            FrameWarp(
                placement @ frame.matrix,
                output_shape,
                interpolation,
                frame.gain,
                frame.offset,
                before=stack.transforms[index],
                source_shape=alignment.shape,
            )
        )
    aligned = stack.subset(keep).with_transforms(transforms, valid_mask=valid_mask, shape=output_shape)
    aligned.notes.extend(note for note in alignment.notes if note not in aligned.notes)
    return aligned
