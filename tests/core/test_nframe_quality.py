"""N-frame quality floors of every classical method on the thin-lens fixture (issue 15).

The stack (``make_nframe_stack``: 6 frames, 192×160, a textured depth ramp behind two textured
objects, disc defocus, noise) has a ground truth. Bounds are the results measured when the test
was written (sf 30.1 dB / recall 0.997, laplacian 32.5 dB / 0.9997, gff 29.0 dB / 0.981) less a
margin (1 dB; recall 0.01) that kernel differences between CPUs cannot use up but a region taken
from a defocused frame, a blurred patch or a seam would. Deep methods add their rows here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from focusstudio.core.metrics import sharpness_recall
from focusstudio.core.pipeline import fuse
from tests.conftest import NFrameStack

#: method → (PSNR floor dB, recall floor)
CLASSICAL_FLOORS = {
    "sf": (29.0, 0.985),
    "laplacian": (31.5, 0.99),
    "gff": (28.0, 0.97),
}



@pytest.mark.parametrize("method", sorted(CLASSICAL_FLOORS))
def test_classical_method_keeps_the_sharp_detail_of_an_n_frame_stack(
    method: str, make_nframe_stack: Callable[..., NFrameStack]
) -> None:
    synthetic = make_nframe_stack(6)
    result = fuse(synthetic.stack, method)
    psnr_floor, recall_floor = CLASSICAL_FLOORS[method]
    recall = sharpness_recall(result.image, synthetic.frames)
    assert recall.textured_blocks == 30  # every 32-px block of the 192×160 scene is textured
    assert recall.recall >= recall_floor, f"{method}: recall {recall.recall:.4f}"
    assert recall.lost_fraction == 0.0, f"{method}: lost blocks {np.argwhere(recall.lost).tolist()}"
    assert synthetic.psnr_of(result.image) >= psnr_floor


def test_the_fixture_is_a_real_focus_stack(make_nframe_stack: Callable[..., NFrameStack]) -> None:
    synthetic = make_nframe_stack(6)
    assert len(synthetic.stack) == 6 and synthetic.truth.shape == (160, 192, 3)
    # No single frame is the answer: each loses half or more of the scene's detail.
    for frame in synthetic.frames:
        assert sharpness_recall(frame, synthetic.frames).lost_fraction > 0.4
    assert synthetic.depth_edges.any() and not synthetic.depth_edges.all()
